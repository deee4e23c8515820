"""``qt convert BAGS... -o DATASET``: episode bags -> the training dataset (no ROS runtime needed).

Alignment rule (the control clock): **one dataset step per commanded action**. The actions
on the action topic are the control ticks; each is paired with the newest camera frame whose
header stamp is at or before the action's header stamp (for a policy the action carries the
stamp of the image it was computed from, so it gets exactly that frame; for teleop it gets
the last frame the operator could have seen). The episode's last camera frame stamped at or
before its END event is the outcome it ended on (the sim publishes it right before END): an
action paired with it was never executed and is not a step, so reward 1 always sits on the
action that led to success. Frames stamped after END belong to the next episode (a loaded
recorder can write one) and are dropped (counted), like the actions before the first frame
and those on the final frame; a frame older
than ``--max-image-age`` is an error, because a frozen camera would silently teach the
policy the wrong observation. Proprioception, when requested, uses
the same rule on its topic.

Labels: reward 1 on the last step of a successful episode, 0 elsewhere; the Monte Carlo
return-to-go is computed by qt_common.dataset (DatasetWriter), which also writes the format.

Every bag is validated first; a bad bag raises BagError naming the bag, the topic and the
field. Without ``--skip-bad`` the first bad bag stops the run and the dataset is left as it
was; with it, bad bags are listed at the end and everything else is written.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import multiprocessing
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qt_common.action_spec import ActionSpec
from qt_common.dataset import Dataset, DatasetError, DatasetWriter, Episode

from qt_common import proprio as layouts
from qt_data_logger import bag_format as bf
from qt_data_logger import topic_options
from qt_data_logger.bag_status import BagStatus, bag_digest, find_bags, inspect_bag, scan_bags
from qt_data_logger.images import ImageFieldError, compressed_to_rgb, image_to_rgb, parse_image_cdr, resize_rgb

# Values this far outside [low, high] (relative to the range) are float32 rounding, not errors.
RANGE_TOLERANCE = 1e-5


class BagError(ValueError):
    """A bag cannot become training data; the message names bag, topic and field."""

    def __init__(self, bag: str | Path, topic: str, field_name: str, problem: str):
        self.bag, self.topic, self.field, self.problem = str(bag), topic, field_name, problem
        super().__init__(f"{bag}: topic {topic or '-'}, field {field_name or '-'}: {problem}")


@dataclass
class ConvertOptions:
    """What to read from each bag and how to shape it (defaults match docs/CONTRACTS.md)."""

    image_shape: tuple[int, int, int] = (96, 96, 3)
    camera_topic: str = "/camera/image_raw"
    compressed_camera_topic: str = "/camera/image_raw/compressed"
    action_topic: str = "/qt/action"
    events_topic: str = "/episode/events"
    instruction_topic: str = "/instruction"
    ee_pose_topic: str = "/ee_pose"
    joint_states_topic: str = "/joint_states"
    label_topic: str = "/qt/action_label"  # "" ignores labels: bins from the executed actions
    object_poses_topic: str = "/sim/object_poses"  # "" stores no object poses
    proprio: str = "none"  # a qt_common.proprio layout; the CLI picks the default (default_proprio)
    finger_joints: tuple[str, ...] = layouts.DEFAULT_FINGER_JOINTS
    finger_travel_m: float = layouts.DEFAULT_FINGER_TRAVEL_M
    max_image_age_s: float = 0.5
    spec: ActionSpec = field(default_factory=ActionSpec.default)

    @property
    def proprio_dim(self) -> int:
        return layouts.layout(self.proprio).dim


@dataclass
class BagResult:
    """What a worker hands back for one bag: an episode, a skip, or an error."""

    bag: str
    episode: Episode | None = None
    digest: str = ""
    skipped: str = ""  # reason, e.g. "already converted"
    error: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


def _stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _check_monotonic(bag: Path, topic: str, stamps: list[int], index: int, stamp: int) -> None:
    if stamps and stamp < stamps[-1]:
        raise BagError(
            bag,
            topic,
            "header.stamp",
            f"non-monotonic stamps: message {index} has {stamp} ns, before the previous {stamps[-1]} ns",
        )


SOURCE_NAMES = {0: "unknown", 1: "teleop", 2: "expert", 3: "policy"}  # qt_msgs/ArmAction SOURCE_*


def action_source(codes: list[int]) -> str:
    """Who commanded the episode's steps (qt_msgs/ArmAction ``source``): ``teleop``, ``expert``,
    ``policy`` or ``unknown``; several joined with ``+`` (e.g. a teleoperator taking over from
    the policy). Kept per episode so a training run can weigh or filter demonstrations and the
    robot's own rollouts (qt eval --robot, qt collect --policy)."""
    names = sorted({SOURCE_NAMES.get(c, f"code{c}") for c in codes})
    return "+".join(names) if names else "unknown"


def _action_bins(bag: Path, topic: str, index: int, msg: Any, spec: ActionSpec) -> np.ndarray:
    """Validate one ArmAction and return its bins (values are authoritative when present)."""
    names = list(msg.dimension_names)
    if names and names != spec.names:
        raise BagError(bag, topic, "dimension_names", f"message {index}: {names}, the action spec has {spec.names}")
    if msg.num_bins and int(msg.num_bins) != spec.num_bins:
        raise BagError(bag, topic, "num_bins", f"message {index}: {msg.num_bins}, the action spec has {spec.num_bins}")
    values = np.asarray(msg.values, dtype=np.float64)
    if values.size:
        if values.size != spec.num_dims:
            raise BagError(bag, topic, "values", f"message {index}: {values.size} values, expected {spec.num_dims}")
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            j = int(bad[0])
            raise BagError(bag, topic, f"values[{j}]", f"message {index}: {values[j]} ({spec.names[j]}) is not finite")
        span = spec.high - spec.low
        outside = np.flatnonzero(
            (values < spec.low - RANGE_TOLERANCE * span) | (values > spec.high + RANGE_TOLERANCE * span)
        )
        if outside.size:
            j = int(outside[0])
            raise BagError(
                bag,
                topic,
                f"values[{j}]",
                f"message {index}: {values[j]:.6g} is outside [{spec.low[j]:g}, {spec.high[j]:g}] of {spec.names[j]}",
            )
        return spec.values_to_bins(values)
    bins = np.asarray(msg.bins, dtype=np.int64)
    if bins.size != spec.num_dims:
        raise BagError(bag, topic, "values", f"message {index}: neither values nor {spec.num_dims} bins given")
    if bins.min() < 0 or bins.max() >= spec.num_bins:
        raise BagError(bag, topic, "bins", f"message {index}: {bins.tolist()} outside [0, {spec.num_bins - 1}]")
    return bins


def _pair(stamps: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the newest stamp <= each ``at`` (-1 if none): the alignment rule."""
    return np.searchsorted(stamps, at, side="right") - 1


@dataclass
class _Series:
    """The messages of one stamped topic: header stamps (checked monotonic) and a value each."""

    topic: str
    stamps: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def add(self, bag: Path, index: int, stamp: int, value: Any) -> None:
        _check_monotonic(bag, self.topic, self.stamps, index, stamp)
        self.stamps.append(stamp)
        self.values.append(value)

    def newest(self, bag: Path, steps_at: np.ndarray) -> list[Any]:
        """Per step, the value of the newest message stamped at or before it (the alignment rule)."""
        of = _pair(np.asarray(self.stamps, dtype=np.int64), steps_at)
        if (of < 0).any():
            i = int(np.argmax(of < 0))
            raise BagError(bag, self.topic, "header.stamp", f"step {i} (action stamped {steps_at[i]} ns) has no "
                           "message stamped at or before it")
        return [self.values[j] for j in of]

    def matching(self, bag: Path, steps_at: np.ndarray) -> list[Any]:
        """Per step, the value of the message stamped exactly like the action (a label echoes it)."""
        by_stamp = dict(zip(self.stamps, self.values, strict=True))
        missing = [int(t) for t in steps_at if int(t) not in by_stamp]
        if missing:
            raise BagError(bag, self.topic, "header.stamp", f"{len(missing)} action(s) without a message of the same "
                           f"stamp, the first at {missing[0]} ns")
        return [by_stamp[int(t)] for t in steps_at]


def _check_types(bag: Path, options: ConvertOptions, topics: dict[str, Any]) -> None:
    """A topic of the wrong message type is a BagError naming it, not an AttributeError later."""
    expected = {
        options.action_topic: "qt_msgs/msg/ArmAction",
        options.label_topic: "qt_msgs/msg/ArmAction",
        options.events_topic: "qt_msgs/msg/EpisodeEvent",
        options.instruction_topic: "std_msgs/msg/String",
        options.ee_pose_topic: "geometry_msgs/msg/PoseStamped",
        options.joint_states_topic: "sensor_msgs/msg/JointState",
        options.object_poses_topic: "geometry_msgs/msg/PoseArray",
    }
    for topic, msgtype in expected.items():
        if topic in topics and topics[topic].msgtype != msgtype:
            raise BagError(bag, topic, "type", f"{topics[topic].msgtype}, expected {msgtype}")


def _needed_topics(options: ConvertOptions) -> list[tuple[str, str]]:
    """(topic, reason) of the topics the proprio layout is built from."""
    if options.proprio == "none":
        return []
    topics = [(options.ee_pose_topic, f"--proprio {options.proprio}")]
    if layouts.layout(options.proprio).needs_joint_states:
        topics.append((options.joint_states_topic, f"--proprio {options.proprio}"))
    return topics


def _value(bag: Path, options: ConvertOptions, topic: str, index: int, msg: Any) -> Any:
    """What the converter keeps of one message of a proprio, label or object-pose topic."""
    if topic == options.label_topic:
        return _action_bins(bag, topic, index, msg, options.spec)
    if topic == options.ee_pose_topic:
        p, q = msg.pose.position, msg.pose.orientation
        return (p.x, p.y, p.z), (q.w, q.x, q.y, q.z)
    if topic == options.joint_states_topic:
        positions = dict(zip(msg.name, msg.position, strict=False))
        missing = [j for j in options.finger_joints if j not in positions]
        if missing:
            raise BagError(bag, topic, "name", f"message {index}: no joint {missing[0]!r} (joints {list(msg.name)}); "
                           "name the gripper's joints with --finger-joints, or choose another --proprio")
        return [float(positions[j]) for j in options.finger_joints]
    # object poses: x y z, w x y z per pose, in message order
    return [v for pose in msg.poses for v in (pose.position.x, pose.position.y, pose.position.z, pose.orientation.w,
                                              pose.orientation.x, pose.orientation.y, pose.orientation.z)]


def _proprio(bag: Path, options: ConvertOptions, series: dict[str, _Series], steps_at: np.ndarray) -> np.ndarray | None:
    """The proprio layout per step, from the newest pose (and joint states) at or before each action."""
    if options.proprio == "none":
        return None
    poses = series[options.ee_pose_topic].newest(bag, steps_at)
    fingers: list[Any] = [None] * len(poses)
    if options.joint_states_topic in series:
        fingers = series[options.joint_states_topic].newest(bag, steps_at)
    return np.stack([layouts.build(options.proprio, xyz, wxyz, f, options.finger_travel_m)
                     for (xyz, wxyz), f in zip(poses, fingers, strict=True)])


def read_episode(bag: Path, options: ConvertOptions, known_digests: frozenset[str] = frozenset()) -> BagResult:
    """Validate one bag and turn it into an Episode (runs in a worker process)."""
    status = inspect_bag(bag)
    _require_finalised(status)
    with ThreadPoolExecutor(max_workers=1) as hasher:
        digesting = hasher.submit(bag_digest, status)  # overlaps with the decoding below
        if known_digests and digesting.result() in known_digests:
            return BagResult(str(bag), digest=digesting.result(), skipped="already converted")
        result = _read_validated(bag, options, status)
        result.digest = result.episode.bag_digest = digesting.result()
    return result


def _read_validated(bag: Path, options: ConvertOptions, status: BagStatus) -> BagResult:
    from rosbags.highlevel import AnyReader

    custom = status.custom
    if custom.get(bf.KEY_FORMAT, bf.BAG_FORMAT) != bf.BAG_FORMAT:
        raise BagError(
            bag, "", "custom_data.qt_bag_format", f"{custom[bf.KEY_FORMAT]!r}, this converter reads {bf.BAG_FORMAT!r}"
        )
    height, width = options.image_shape[:2]
    with AnyReader([bag]) as reader:
        topics = {c.topic: c for c in reader.connections}
        counts = {c.topic: c.msgcount for c in reader.connections}
        _check_types(bag, options, topics)
        camera = _pick_camera(bag, options, topics, counts)
        if options.action_topic not in topics or not counts.get(options.action_topic):
            raise BagError(
                bag, options.action_topic, "", f"missing topic (no messages); topics in bag: {sorted(topics)}"
            )
        wanted = [camera, options.action_topic, options.events_topic, options.instruction_topic]
        for topic, why in _needed_topics(options):
            if not counts.get(topic):
                raise BagError(bag, topic, "", f"missing topic (needed for {why})")
            wanted.append(topic)
        optional = [t for t in (options.label_topic, options.object_poses_topic) if t and counts.get(t)]
        connections = [topics[t] for t in wanted + optional if t in topics]
        image_stamps: list[int] = []
        images: list[np.ndarray] = []
        actions = _Series(options.action_topic)
        action_sources: list[int] = []  # ArmAction.source of each action, in order
        series = {t: _Series(t) for t in wanted[4:] + optional}
        events: list[Any] = []
        instructions: list[str] = []
        seen: Counter[str] = Counter()
        for connection, _, raw in reader.messages(connections=connections):
            topic = connection.topic
            index = seen[topic]
            seen[topic] += 1
            if topic == camera:
                try:
                    view = parse_image_cdr(raw) if connection.msgtype == "sensor_msgs/msg/Image" else None
                    msg = view or reader.deserialize(raw, connection.msgtype)
                    stamp = view.stamp_ns if view else _stamp_ns(msg)
                    _check_monotonic(bag, topic, image_stamps, index, stamp)
                    rgb = (
                        compressed_to_rgb(msg) if connection.msgtype.endswith("CompressedImage") else image_to_rgb(msg)
                    )
                except ImageFieldError as exc:
                    raise BagError(bag, topic, exc.field, f"message {index}: {exc.problem}") from None
                image_stamps.append(stamp)
                images.append(resize_rgb(rgb, height, width))
                continue
            msg = reader.deserialize(raw, connection.msgtype)
            if topic == options.action_topic:
                actions.add(bag, index, _stamp_ns(msg), _action_bins(bag, topic, index, msg, options.spec))
                action_sources.append(int(getattr(msg, "source", 0)))
            elif topic == options.events_topic:
                events.append(msg)
            elif topic == options.instruction_topic:
                instructions.append(str(msg.data))
            elif topic in series:
                series[topic].add(bag, index, _stamp_ns(msg), _value(bag, options, topic, index, msg))
    outcome = _outcome(bag, options, custom, events)
    instruction = _instruction(bag, options, custom, events, instructions)
    if not images:
        raise BagError(bag, camera, "", "no camera frames")
    after_end = _frames_after_end(bag, options, camera, image_stamps, events)
    if after_end:
        del image_stamps[-after_end:], images[-after_end:]
    steps_at = np.asarray(actions.stamps, dtype=np.int64)
    frame_of = _pair(np.asarray(image_stamps, dtype=np.int64), steps_at)
    keep = frame_of >= 0
    if not keep.any():
        raise BagError(bag, camera, "header.stamp", "no action has a camera frame stamped at or before it")
    first = int(np.argmax(keep))  # actions before the first frame can only be leading ones
    _check_start(bag, camera, custom, int(steps_at[0]), image_stamps[0])
    age = (steps_at[first:] - np.asarray(image_stamps, dtype=np.int64)[frame_of[first:]]) / 1e9
    if options.max_image_age_s > 0 and (age > options.max_image_age_s).any():
        i = int(np.argmax(age > options.max_image_age_s))
        raise BagError(
            bag,
            camera,
            "header.stamp",
            f"action {first + i} has no camera frame within {options.max_image_age_s} s (newest is {age[i]:.3f} s old)",
        )
    # The last frame is the outcome the episode ended on: an action decided on it never ran.
    last = int(np.searchsorted(frame_of, len(images) - 1, side="left"))
    if last <= first:
        raise BagError(bag, camera, "header.stamp", "no action before the episode's final camera frame")
    on_final = len(frame_of) - last
    steps_at, frame_of = steps_at[first:last], frame_of[first:last]
    labels = series.get(options.label_topic)
    bins = labels.matching(bag, steps_at) if labels else actions.values[first:last]
    objects = series.get(options.object_poses_topic)
    episode = Episode(
        images=np.stack([images[i] for i in frame_of]),
        bins=np.stack(bins).astype(np.uint16),
        instruction=instruction,
        outcome=outcome,
        proprio=_proprio(bag, options, series, steps_at),
        object_poses=np.stack(objects.newest(bag, steps_at)).astype(np.float32) if objects else None,
        episode_id=custom.get(bf.KEY_EPISODE_ID, "") or _event_field(events, bf.EVENT_START, "episode_id") or bag.name,
        task_id=custom.get(bf.KEY_TASK_ID, "") or _event_field(events, bf.EVENT_START, "task_id"),
        source_bag=str(bag.resolve()),
        extra={
            "robot": custom.get(bf.KEY_ROBOT, ""),
            "operator": custom.get(bf.KEY_OPERATOR, ""),
            "control_rate_hz": float(custom.get(bf.KEY_CONTROL_RATE, "0") or 0),
            "camera_frames": len(images),
            "actions_before_first_frame": first,
            "actions_on_final_frame": on_final,
            "frames_after_end": after_end,
            "labels": "label_topic" if labels else "action",
            "source": action_source(action_sources[first:last]),
        },
    )
    stats = {
        "frames_read": len(images),
        "actions": len(actions.stamps),
        "steps": len(steps_at),
        "dropped_leading": first,
        "dropped_on_final_frame": on_final,
        "frames_after_end": after_end,
        "step_stamps_ns": steps_at,  # the control ticks kept (the LeRobot export pairs a second camera with them)
    }
    return BagResult(str(bag), episode=episode, stats=stats)


def _frames_after_end(bag: Path, options: ConvertOptions, camera: str, stamps: list[int], events: list[Any]) -> int:
    """How many trailing frames are stamped after the END event: the next episode's, not this one's.

    An episode covers the stamps [START, END]. The recorder holds messages ``end_grace_s`` to
    sort out a frame stamped after END that it handled before END, but a machine loaded for
    longer than that writes the frame anyway; without this cut, that frame would become the
    outcome frame and the action on the real outcome frame a step that never ran.
    """
    ends = [e for e in events if int(e.event) == bf.EVENT_END]
    end_ns = _stamp_ns(ends[-1]) if ends else 0
    if not end_ns:
        return 0  # no END, or one without a stamp: the last frame is the outcome frame
    inside = int(np.searchsorted(np.asarray(stamps, dtype=np.int64), end_ns, side="right"))
    if inside == 0:
        raise BagError(
            bag, options.events_topic, "header.stamp",
            f"END is stamped {(stamps[0] - end_ns) / 1e9:.3f} s before the first {camera} frame: "
            "the camera and the episode events do not share a clock",
        )
    return len(stamps) - inside


def _check_start(bag: Path, camera: str, custom: dict[str, str], first_action_ns: int, first_frame_ns: int) -> None:
    """Actions more than one control period before the first frame: the bag lacks the episode's
    first frames (a recorder that joined late), so its start is not what the robot saw. A human's
    key press just before the first frame (within a period) only drops that action."""
    period_ns = 1e9 / (float(custom.get(bf.KEY_CONTROL_RATE, "0") or 0) or 10.0)
    lead_ns = first_frame_ns - first_action_ns
    if lead_ns > period_ns:
        raise BagError(
            bag, camera, "header.stamp",
            f"actions begin {lead_ns / 1e9:.3f} s before the first camera frame: the episode's first frames are "
            "missing (recorder joined late); not training data",
        )


def _require_finalised(status: BagStatus) -> None:
    if status.state in ("ok", "incomplete"):  # incomplete: reading names the empty topic precisely
        return
    if status.state == "unlabelled":
        raise BagError(status.path, "", "custom_data.outcome", f"episode without outcome: {status.detail}")
    hint = {
        "recording": "wait until the recorder finalises it",
        "interrupted": "run `qt bags check/repair/quarantine` (see docs/DATA.md); unfinished bags are never converted",
        "corrupt": "run `qt bags quarantine`",
        "not_a_bag": "expected a rosbag2 directory",
    }.get(status.state, "")
    raise BagError(status.path, "", bf.METADATA_FILE, f"bag is {status.state}: {status.detail}; {hint}")


def _pick_camera(bag: Path, options: ConvertOptions, topics: dict[str, Any], counts: dict[str, int]) -> str:
    for topic in (options.camera_topic, options.compressed_camera_topic):
        if topic and counts.get(topic):
            return topic
    wanted = [t for t in (options.camera_topic, options.compressed_camera_topic) if t]
    raise BagError(bag, " or ".join(wanted), "", f"missing topic (no camera messages); topics in bag: {sorted(topics)}")


def _event_field(events: list[Any], kind: int, name: str) -> str:
    for event in events:
        if int(event.event) == kind and str(getattr(event, name)):
            return str(getattr(event, name))
    return ""


def _outcome(bag: Path, options: ConvertOptions, custom: dict[str, str], events: list[Any]) -> str:
    ends = [e for e in events if int(e.event) == bf.EVENT_END]
    from_event = bf.EVENT_OUTCOME_NAMES.get(int(ends[-1].outcome), "") if ends else ""
    labelled = custom.get(bf.KEY_OUTCOME, "")
    if labelled and from_event and labelled != from_event and custom.get(bf.KEY_END_REASON) != "label":
        raise BagError(
            bag,
            options.events_topic,
            "outcome",
            f"END event says {from_event!r} but custom_data.outcome says {labelled!r}",
        )
    outcome = labelled or from_event
    if outcome not in bf.TRAINABLE_OUTCOMES:
        raise BagError(
            bag,
            options.events_topic,
            "outcome",
            f"episode without outcome (custom_data.outcome={labelled!r}, END events={len(ends)}); "
            "label it with `qt bags label` or leave it out",
        )
    return outcome


def _instruction(
    bag: Path, options: ConvertOptions, custom: dict[str, str], events: list[Any], texts: list[str]
) -> str:
    instruction = custom.get(bf.KEY_INSTRUCTION, "") or _event_field(events, bf.EVENT_START, "instruction")
    instruction = instruction or (texts[-1] if texts else "")
    if not instruction:
        raise BagError(
            bag, options.instruction_topic, "instruction", "no instruction in custom_data, START event or topic"
        )
    return instruction


# ---- running many bags ----------------------------------------------------------------------


def _init_worker() -> None:
    """One OpenCV thread per worker process: the processes are the parallelism."""
    import cv2

    cv2.setNumThreads(1)


def _worker(bag: str, options: ConvertOptions, known: frozenset[str]) -> BagResult:
    try:
        return read_episode(Path(bag), options, known)
    except BagError as exc:
        return BagResult(bag, error=str(exc))
    except Exception as exc:
        return BagResult(bag, error=f"{bag}: topic -, field -: unreadable bag ({type(exc).__name__}: {exc})")


@dataclass
class ConvertReport:
    added: list[BagResult] = field(default_factory=list)
    skipped: list[BagResult] = field(default_factory=list)
    bad: list[BagResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dataset: Any = None

    @property
    def frames(self) -> int:
        return sum(r.episode.length for r in self.added if r.episode is not None)


def convert(
    bags: list[str | Path],
    output: str | Path,
    options: ConvertOptions | None = None,
    gamma: float = 0.98,
    jobs: int = 0,
    skip_bad: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> ConvertReport:
    """Convert bags into the dataset at ``output`` (appending unless ``overwrite``).

    Raises ConvertError (with the bag's BagError text) on the first bad bag unless ``skip_bad``;
    the dataset on disk is then unchanged (DatasetWriter publishes atomically on commit only).
    """
    options = options or ConvertOptions()
    started = time.perf_counter()
    scan = scan_bags(list(bags))
    if not scan.bags:
        raise ConvertError(
            f"no bag directory in {[str(b) for b in bags]} (a bag is a folder with {bf.METADATA_FILE}); "
            f"not bags: {[str(s) for s in scan.strays][:10]}; nothing written"
        )
    paths = [str(p) for p in scan.bags]
    report = ConvertReport()
    report.notes.extend(f"ignored {stray}: not a bag directory" for stray in scan.strays)
    existing = None if overwrite or not (Path(output) / "meta.json").exists() else Dataset(output)
    known = frozenset(e.get("bag_digest", "") for e in existing.episodes) if existing else frozenset()
    results = _run(paths, options, known, jobs, progress)
    writer = DatasetWriter(
        output,
        options.spec,
        options.image_shape,
        options.proprio_dim,
        gamma,
        append=not overwrite,
        created_by="qt convert",
        proprio_layout=options.proprio,
        object_pose_dim=_object_pose_dim(results, existing, report.notes),
    )
    try:
        for result in results:  # input order, so the dataset does not depend on scheduling
            if result.error:
                if not skip_bad:
                    raise ConvertError(result.error)
                report.bad.append(result)
            elif result.skipped or writer.has_bag(result.digest):
                result.skipped = result.skipped or "duplicate of another bag in this run"
                report.skipped.append(result)
            else:
                assert result.episode is not None
                try:
                    writer.add_episode(result.episode)
                except DatasetError as exc:
                    result.error = f"{result.bag}: topic -, field -: {exc}"
                    if not skip_bad:
                        raise ConvertError(result.error) from None
                    report.bad.append(result)
                    continue
                report.added.append(result)
        if writer.num_new_episodes or writer.existing is None:
            if writer.num_new_episodes == 0:
                raise ConvertError(f"no episode could be converted from {len(paths)} bag(s); nothing written")
            report.dataset = writer.commit()
        else:
            writer.close()
            report.dataset = Dataset(output)
    except BaseException:
        writer.close()
        raise
    report.seconds = time.perf_counter() - started
    return report


def _object_pose_dim(results: list[BagResult], existing: Dataset | None, notes: list[str]) -> int:
    """Per-step object poses are stored only if every new episode has them alike (and, when
    appending, only if the dataset already stores them): a dataset is one consistent table."""
    episodes = [r.episode for r in results if r.episode is not None]
    dims = Counter(0 if e.object_poses is None else int(e.object_poses.shape[1]) for e in episodes)
    if existing is not None:
        dim = 0 if existing.object_poses is None else int(existing.object_poses.shape[1])
        if dim == 0 and set(dims) - {0}:
            notes.append("object poses not stored: the dataset being appended to has none")
        return dim
    if len(dims) > 1:
        notes.append(f"object poses not stored: only {sum(n for d, n in dims.items() if d)} of {len(episodes)} "
                     f"episode(s) have them alike ({dict(dims)} values per step)")
        return 0
    return next(iter(dims), 0)


class ConvertError(ValueError):
    """The conversion stopped (a bad bag without --skip-bad, or nothing to convert); nothing was written."""


def _run(
    paths: list[str], options: ConvertOptions, known: frozenset[str], jobs: int, progress: bool
) -> list[BagResult]:
    from tqdm import tqdm

    jobs = jobs or min(len(paths), os.cpu_count() or 1)
    results: dict[int, BagResult] = {}
    if jobs <= 1 or len(paths) <= 1:
        with tqdm(total=len(paths), unit="bag", desc="convert", disable=not progress, file=sys.stderr) as bar:
            for i, path in enumerate(paths):
                results[i] = _worker(path, options, known)
                bar.update(1)
        return [results[i] for i in range(len(paths))]
    # fork: workers start in milliseconds with numpy/OpenCV/rosbags already imported (spawn
    # costs about a second each). The pool is created before the progress bar's thread.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker) as pool:
        pending = {pool.submit(_worker, path, options, known): i for i, path in enumerate(paths)}
        with tqdm(total=len(paths), unit="bag", desc="convert", disable=not progress, file=sys.stderr) as bar:
            for future in futures.as_completed(pending):
                results[pending[future]] = future.result()
                bar.update(1)
    return [results[i] for i in range(len(paths))]


# ---- command line ---------------------------------------------------------------------------


def _image_size(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from exc
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}")
    return sizes[0], sizes[1], 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qt convert",
        description="Convert episode bags (rosbag2 directories, or folders of them) into a training dataset.",
        epilog="Alignment: one step per action, paired with the newest camera frame stamped at or before it. "
        "See docs/DATA.md.",
    )
    parser.add_argument("bags", nargs="+", help="bag directories or folders holding bag directories")
    parser.add_argument("-o", "--output", required=True, help="dataset directory (appended to if it exists)")
    parser.add_argument("--image-size", type=_image_size, default=None, help="N or HxW (default 96, or the dataset's)")
    parser.add_argument("--gamma", type=float, default=None, help="discount of the stored returns (default 0.98)")
    parser.add_argument(
        "--proprio", choices=sorted(layouts.LAYOUTS), default=None,
        help="proprio layout (qt_common.proprio); default: the dataset's when appending, else ee_yaw_gripper if "
        "the bags record /ee_pose and /joint_states with the finger joints, else none",
    )
    parser.add_argument("--finger-joints", type=lambda t: tuple(j.strip() for j in t.split(",") if j.strip()),
                        default=layouts.DEFAULT_FINGER_JOINTS,
                        help=f"joint names of the gripper fingers (default {','.join(layouts.DEFAULT_FINGER_JOINTS)})")
    parser.add_argument("--finger-travel", type=float, default=layouts.DEFAULT_FINGER_TRAVEL_M,
                        help=f"finger travel in m for an opening of 1 (default {layouts.DEFAULT_FINGER_TRAVEL_M:g})")
    parser.add_argument("--jobs", "-j", type=int, default=0, help="worker processes (default: CPU count)")
    parser.add_argument("--skip-bad", action="store_true", help="skip invalid bags and report them instead of stopping")
    parser.add_argument("--overwrite", action="store_true", help="rebuild the dataset instead of appending")
    parser.add_argument("--max-image-age", type=float, default=0.5, help="seconds; older paired frames are an error")
    parser.add_argument("--camera-topic", default="/camera/image_raw")
    parser.add_argument("--compressed-camera-topic", default="/camera/image_raw/compressed")
    parser.add_argument("--action-topic", default="/qt/action")
    parser.add_argument("--events-topic", default="/episode/events")
    parser.add_argument("--instruction-topic", default="/instruction")
    parser.add_argument("--ee-pose-topic", default="/ee_pose")
    parser.add_argument("--joint-states-topic", default="/joint_states")
    parser.add_argument("--label-topic", default="/qt/action_label",
                        help="training bins from these labels when a bag has them (\"\" = from the actions)")
    parser.add_argument("--object-poses-topic", default="/sim/object_poses",
                        help="per-step object poses when every bag has them (\"\" = never)")
    parser.add_argument("--topics", default="", metavar="FILE",
                        help="topic map YAML (qt_common.topic_map, config/topics.yaml): names for the topic options")
    parser.add_argument("--format", choices=("qt", "lerobot"), default="qt",
                        help="qt: the training dataset (default); lerobot: a LeRobot v3.0 dataset in OUTPUT "
                        "(docs/DATA.md)")
    parser.add_argument("--video-codec", default="libsvtav1", help="--format lerobot: MP4 codec (default libsvtav1)")
    parser.add_argument("--crf", type=int, default=30, help="--format lerobot: video quality, lower is better (30)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def default_proprio(bags: list[Path], options: ConvertOptions) -> str:
    """ee_yaw_gripper when every bag records the end-effector pose and joint states that name
    the finger joints (read from the first joint-state message), else none."""
    from rosbags.highlevel import AnyReader

    for bag in bags:
        try:
            with AnyReader([bag]) as reader:
                counts = {c.topic: c.msgcount for c in reader.connections}
                if not counts.get(options.ee_pose_topic) or not counts.get(options.joint_states_topic):
                    return "none"
                joints = [c for c in reader.connections if c.topic == options.joint_states_topic]
                _, _, raw = next(reader.messages(connections=joints))
                names = set(reader.deserialize(raw, joints[0].msgtype).name)
        except Exception:
            continue  # an unreadable bag is reported (or skipped, --skip-bad) by the conversion itself
        if not set(options.finger_joints) <= names:
            return "none"
    return "ee_yaw_gripper" if bags else "none"


def _defaults_from_existing(args: argparse.Namespace) -> None:
    """Appending: shape, gamma and proprio layout default to what the dataset already has."""
    meta_path = Path(args.output) / "meta.json"
    existing: dict[str, Any] = {}
    if meta_path.exists() and not args.overwrite:
        import json

        existing = json.loads(meta_path.read_text())
    if args.image_size is None:
        args.image_size = tuple(existing.get("image_shape", (96, 96, 3)))
    if args.gamma is None:
        args.gamma = float(existing.get("gamma", 0.98))
    if args.proprio is None and existing:
        args.proprio = existing.get("proprio_layout") or layouts.layout_for_dim(int(existing.get("proprio_dim", 0)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _defaults_from_existing(args)
    options = ConvertOptions(
        image_shape=tuple(args.image_size),
        camera_topic=args.camera_topic,
        compressed_camera_topic=args.compressed_camera_topic,
        action_topic=args.action_topic,
        events_topic=args.events_topic,
        instruction_topic=args.instruction_topic,
        ee_pose_topic=args.ee_pose_topic,
        joint_states_topic=args.joint_states_topic,
        label_topic=args.label_topic,
        object_poses_topic=args.object_poses_topic,
        proprio=args.proprio or "none",
        finger_joints=args.finger_joints,
        finger_travel_m=args.finger_travel,
        max_image_age_s=args.max_image_age,
    )
    topic_options.apply(build_parser(), args, options)
    if args.proprio is None:
        options.proprio = default_proprio(find_bags(args.bags), options)
    if args.format == "lerobot":
        from qt_data_logger import lerobot_export

        return lerobot_export.main(args, options)
    try:
        report = convert(
            args.bags,
            args.output,
            options,
            gamma=args.gamma,
            jobs=args.jobs,
            skip_bad=args.skip_bad,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (ConvertError, DatasetError) as exc:
        print(f"qt convert: error: {exc}", file=sys.stderr)
        print("qt convert: nothing written (use --skip-bad to convert the other bags)", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0


def format_report(report: ConvertReport) -> str:
    lines = []
    added = [r.episode for r in report.added if r.episode is not None]
    successes = sum(1 for e in added if e.outcome == "success")
    per_instruction = Counter(e.instruction for e in added)
    rate = report.frames / report.seconds if report.seconds else 0.0
    lines.append(
        f"converted {len(added)} episode(s), {report.frames} frames in {report.seconds:.1f} s ({rate:.0f} frames/s); "
        f"success rate {successes / len(added):.0%}"
        if added
        else "nothing new converted"
    )
    for text, count in sorted(per_instruction.items()):
        lines.append(f"  {count:4d}  {text}")
    lines.extend(f"note: {note}" for note in report.notes)
    if report.skipped:
        lines.append(f"skipped {len(report.skipped)} bag(s):")
        lines.extend(f"  {r.bag}: {r.skipped}" for r in report.skipped)
    if report.bad:
        lines.append(f"skipped {len(report.bad)} bad bag(s) (--skip-bad):")
        lines.extend(f"  {r.error}" for r in report.bad)
    if report.dataset is not None:
        s = report.dataset.summary()
        lines.append(
            f"dataset {s['path']}: {s['episodes']} episodes, {s['frames']} frames, success rate "
            f"{s['success_rate']:.0%}, {len(s['per_instruction'])} instruction(s), digest {s['digest']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
