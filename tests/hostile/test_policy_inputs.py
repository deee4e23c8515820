"""Hostile inputs against the policy's decision path: one table row per input, each with its promise.

The controller, safety layer, decoder and instruction embedder are the node's whole decision
path (the node only converts messages), so every row drives those plain classes with chosen
clocks and a synthetic model that always proposes the same non-zero action: any non-zero
command published while the input is bad is a decision made on bad input. docs/POLICY_NODE.md
"Hostile inputs" lists the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hostile.synthetic_policy import IMAGE_SIZE, INSTRUCTION, SPEC
from qt_policy_node.controller import PolicyController
from qt_policy_node.decoder import PolicyCardError, PolicyDecoder
from qt_policy_node.images import BadImage, ImageConverter
from qt_policy_node.instructions import InstructionEmbedder
from qt_policy_node.proprio import ProprioAssembler
from qt_policy_node.safety import (
    ESTOP,
    FUTURE_IMAGE_STAMP,
    FUTURE_PROPRIO_STAMP,
    INSTRUCTION_TOO_LONG,
    MODEL_FAULT,
    NO_HEARTBEAT,
    STALE_IMAGE,
    STALE_PROPRIO,
    SafetyConfig,
    SafetyLayer,
    as_sent,
)

FRAME = np.full((*IMAGE_SIZE, 3), 128, np.uint8)
TIMEOUT_S = 0.5
PERIOD_S = 0.1


def controller(model: Path, **safety: object) -> PolicyController:
    decoder = PolicyDecoder(model, expected_action_spec_digest=SPEC.digest(), expected_image_size=IMAGE_SIZE)
    text = decoder.card["text_encoder"]
    embedder = InstructionEmbedder(text["embeddings"], int(text["dim"]), max_chars=200)
    config = SafetyConfig(image_timeout_s=TIMEOUT_S, require_proprio=decoder.proprio_dim > 0, slew_limit=(),
                          **safety)
    c = PolicyController(decoder, SafetyLayer(SPEC, config), embedder, decoder.proprio_dim)
    c.embedder.set(INSTRUCTION)
    return c


def run(c: PolicyController, start_s: float, seconds: float, heartbeat_age: float | None = None) -> list:
    """Ticks at 10 Hz from ``start_s``; returns (now, command) of every tick."""
    ticks = []
    for i in range(round(seconds / PERIOD_S)):
        now = start_s + i * PERIOD_S
        result = c.tick(now, heartbeat_age)
        ticks.append((now, result.command.publish, result.command.values.copy(), list(result.command.interventions)))
    return ticks


def moving(ticks: list, after_s: float = -np.inf) -> list:
    """Published non-zero commands at or after ``after_s``."""
    return [t for t in ticks if t[0] >= after_s and t[1] and np.any(t[2] != 0)]


# ---- the rows ----------------------------------------------------------------------------------


def future_image(offset_s: float) -> Callable[[Callable[..., Path]], None]:
    def check(policy_dir: Callable[..., Path]) -> None:
        c = controller(policy_dir())
        c.set_image(FRAME, stamp_s=100.0 + offset_s, received_s=100.0)  # the last frame, then the camera dies
        ticks = run(c, 100.0, 3.0)
        assert not moving(ticks), "a future-stamped frame decided motion"
        assert all(FUTURE_IMAGE_STAMP in t[3] for t in ticks)
        assert c.decodes == 0
    return check


def image_within_tolerance_then_camera_dies(policy_dir: Callable[..., Path]) -> None:
    c = controller(policy_dir(), future_stamp_tolerance_s=0.05)
    c.set_image(FRAME, stamp_s=100.04, received_s=100.0)  # a little ahead: accepted
    ticks = run(c, 100.0, 3.0)
    assert moving(ticks), "a frame within the tolerance is a valid frame"
    assert not moving(ticks, after_s=100.0 + TIMEOUT_S + 0.05), "the arm kept moving after the camera died"
    assert STALE_IMAGE in ticks[-1][3]


def stale_image(policy_dir: Callable[..., Path]) -> None:
    c = controller(policy_dir())
    c.set_image(FRAME, stamp_s=90.0, received_s=100.0)  # arrived now, measured 10 s ago
    assert not moving(run(c, 100.0, 1.0))


def future_pose(policy_dir: Callable[..., Path]) -> None:
    c = controller(policy_dir(proprio_dim=7))
    c.proprio[:] = [0, 0, 0.5, 0, 0, 0, 1]
    c.proprio_updated(stamp_s=100.0 + 3600, received_s=100.0)
    c.set_image(FRAME, stamp_s=100.0)
    ticks = run(c, 100.0, 1.0)
    assert not moving(ticks) and FUTURE_PROPRIO_STAMP in ticks[0][3]


def pose_stops_coming(policy_dir: Callable[..., Path]) -> None:
    c = controller(policy_dir(proprio_dim=7))
    c.proprio_updated(stamp_s=100.04, received_s=100.0)
    ticks = []
    for i in range(30):  # the camera keeps going; the pose does not
        c.set_image(FRAME, stamp_s=100.0 + i * PERIOD_S)
        ticks += run(c, 100.0 + i * PERIOD_S, PERIOD_S)
    assert moving(ticks) and not moving(ticks, after_s=100.0 + TIMEOUT_S + 0.05)
    assert STALE_PROPRIO in ticks[-1][3]


def nan_pose(policy_dir: Callable[..., Path]) -> None:
    out = np.zeros(7, np.float32)
    assembler = ProprioAssembler("ee_pose", out)
    point = SimpleNamespace(x=float("nan"), y=0.0, z=0.0)
    msg = SimpleNamespace(pose=SimpleNamespace(position=point, orientation=SimpleNamespace(x=0, y=0, z=0, w=1)))
    assert not assembler.pose(msg) and not assembler.ready and not out.any()


def estop_storm(policy_dir: Callable[..., Path]) -> None:
    c = controller(policy_dir())
    ticks = []
    for i in range(300):  # 100 Hz toggling for 3 s, ticks at 10 Hz
        c.safety.on_estop(i % 2 == 0)
        now = 100.0 + i * 0.01
        c.set_image(FRAME, stamp_s=now)
        if i % 10 == 0:
            ticks += run(c, now, PERIOD_S)
    assert not moving(ticks) and all(ESTOP in t[3] for t in ticks)
    c.safety.on_estop(True)
    assert not c.safety.reset_estop()[0] and c.safety.estop_latched  # input still asserted: reset refused
    c.safety.on_estop(False)
    assert c.safety.reset_estop()[0] and moving(run(c, 103.0, PERIOD_S))


def lost_heartbeat(policy_dir: Callable[..., Path]) -> None:
    c = controller(policy_dir(), require_heartbeat=True)
    c.set_image(FRAME, stamp_s=100.0)
    ticks = run(c, 100.0, 0.3, heartbeat_age=5.0)
    assert not moving(ticks) and NO_HEARTBEAT in ticks[0][3]


def nan_action(policy_dir: Callable[..., Path]) -> None:
    c = controller(policy_dir(action=np.full(SPEC.num_dims, np.nan, np.float32)))
    c.set_image(FRAME, stamp_s=100.0)
    ticks = run(c, 100.0, 0.5)
    assert not moving(ticks) and MODEL_FAULT in ticks[0][3]


def malformed_frames(policy_dir: Callable[..., Path]) -> None:
    converter = ImageConverter(*IMAGE_SIZE)
    h, w = IMAGE_SIZE
    bad = [
        dict(encoding="yuv422", height=h, width=w, step=w * 3, data=bytes(h * w * 3)),
        dict(encoding="rgb8", height=h + 1, width=w, step=w * 3, data=bytes((h + 1) * w * 3)),
        dict(encoding="rgb8", height=h, width=w, step=1, data=bytes(h * w * 3)),
        dict(encoding="rgb8", height=h, width=w, step=w * 3, data=bytes(10)),
        dict(encoding="rgb8", height=0, width=0, step=0, data=b""),
    ]
    for fields in bad:
        with pytest.raises(BadImage, match=r"Image\.?\w*"):
            converter.from_image(SimpleNamespace(**fields))
    with pytest.raises(BadImage, match="CompressedImage"):
        converter.from_compressed(SimpleNamespace(format="jpeg", data=b"not a jpeg"))


def overlong_instruction(policy_dir: Callable[..., Path]) -> None:
    c = controller(policy_dir())
    c.embedder.set("lift " * 200_000)  # 1 MB
    assert "max_instruction_chars=200" in c.embedder.problem and len(c.embedder.shown) < 200
    c.set_image(FRAME, stamp_s=100.0)
    ticks = run(c, 100.0, 0.3)
    assert not moving(ticks) and INSTRUCTION_TOO_LONG in ticks[0][3]


def graph_disagrees(field: str, **graph: object) -> Callable[[Callable[..., Path]], None]:
    def check(policy_dir: Callable[..., Path]) -> None:
        with pytest.raises(PolicyCardError, match=f"field '{field}'"):
            PolicyDecoder(policy_dir(**graph), expected_action_spec_digest=SPEC.digest(),
                          expected_image_size=IMAGE_SIZE)
    return check


def edited_action_spec(policy_dir: Callable[..., Path]) -> None:
    spec = SPEC.to_dict()
    spec["dimensions"][0]["high"] = 0.5  # dx limit edited, digest left as it was
    with pytest.raises(PolicyCardError, match=r"'action_spec_digest'.*edited"):
        PolicyDecoder(policy_dir(card_changes={"action_spec": spec}), expected_action_spec_digest=SPEC.digest())


def nan_cached_embedding(policy_dir: Callable[..., Path]) -> None:
    with pytest.raises(ValueError, match=r"embeddings\['go'\].*1 NaN/inf value"):
        InstructionEmbedder({"go": [0.0, float("nan"), 0.0]}, 3)


def bins_agree_with_sent_values(policy_dir: Callable[..., Path]) -> None:
    # Half-way between two bins (0.01 m, the default slew limit, is one): float32 rounding
    # decides the side, so bins taken from the float64 values would disagree with the message's.
    bins = np.arange(SPEC.num_bins - 1)[:, None].repeat(SPEC.num_dims, axis=1)
    values = (SPEC.bins_to_values(bins) + SPEC.bins_to_values(bins + 1)) / 2
    for row in values:
        sent, bins = as_sent(SPEC, row)
        assert sent.dtype == np.float32
        np.testing.assert_array_equal(bins, SPEC.values_to_bins(sent.astype(np.float64)))


@dataclass(frozen=True)
class Row:
    name: str
    promise: str
    check: Callable[[Callable[..., Path]], None]


TABLE = [
    Row("image stamped +5 s", "hold future_image_stamp; no command from it", future_image(5.0)),
    Row("image stamped +1 h", "hold future_image_stamp; no command from it", future_image(3600.0)),
    Row("image +40 ms, then camera dies", "motion ends image_timeout_s after arrival",
        image_within_tolerance_then_camera_dies),
    Row("image stamped 10 s ago", "hold stale_image", stale_image),
    Row("pose stamped +1 h", "hold future_proprio_stamp", future_pose),
    Row("pose stops coming", "hold stale_proprio image_timeout after arrival", pose_stops_coming),
    Row("NaN pose", "rejected, proprio unchanged", nan_pose),
    Row("e-stop toggled at 100 Hz", "latched: no motion until released and reset", estop_storm),
    Row("heartbeat lost", "hold no_heartbeat", lost_heartbeat),
    Row("NaN action from the model", "hold model_fault", nan_action),
    Row("malformed frames", "BadImage naming the field", malformed_frames),
    Row("1 MB instruction", "hold instruction_too_long; shown truncated", overlong_instruction),
    Row("graph image 96x96 under a 48x64 card", "configure error naming 'image'",
        graph_disagrees("image", graph_image=(96, 96))),
    Row("graph with 4 action dims", "configure error naming 'action_spec.dimensions'",
        graph_disagrees("action_spec.dimensions", graph_dims=4)),
    Row("graph with 512-wide embedding", "configure error naming 'text_encoder.dim'",
        graph_disagrees("text_encoder.dim", graph_embed=512)),
    Row("graph takes a float image", "configure error naming 'image'",
        graph_disagrees("image", image_dtype=np.float32)),
    Row("card action spec edited, digest kept", "configure error naming 'action_spec_digest'", edited_action_spec),
    Row("NaN cached embedding", "error naming the entry and its NaN", nan_cached_embedding),
    Row("values near bin edges", "published bins are those of the float32 values", bins_agree_with_sent_values),
]


@pytest.mark.parametrize("row", TABLE, ids=[row.name for row in TABLE])
def test_hostile_policy_input(row: Row, policy_dir: Callable[..., Path]) -> None:
    row.check(policy_dir)
