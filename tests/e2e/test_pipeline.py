"""The whole loop at toy scale, through the real commands and processes:

qt collect (sim driver + expert teleop + recorder, twice: the second run appends) -> qt convert
--proprio ee_pose -> qt train (tiny model, a few steps) -> qt export -> qt eval --mode ros (the
policy node + sim driver) --write-card -> qt eval --mode inprocess. Each stage's real output is
checked against the previous stage's, so the pipeline cannot silently break.

Hermetic: QT_CACHE_DIR points into the test's folder, so no text encoder from an earlier export
is found; the wordings the evaluation uses are cached in the card by ``qt export --instruction``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.qt_command import run_qt
from qt_common.dataset import Dataset
from qt_eval.plan import make_plan

pytest.importorskip("qt_sim.driver_node")

IMAGE = (48, 64)  # small frames keep the tiny training fast; non-square on purpose
COLLECT = ["--tasks", "pick/", "--rate-hz", "50", "--horizon", "40", "--image", f"{IMAGE[0]}x{IMAGE[1]}"]
TRAIN_STEPS = 6
EVAL_TASK = "pick/red"
EVAL_HORIZON = 12


def _ok(result, what: str) -> str:
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{output}"
    return result.stdout


def test_collect_convert_train_export_eval(tmp_path: Path):
    env = dict(os.environ, QT_CACHE_DIR=str(tmp_path / "cache"))
    bags = tmp_path / "bags"

    # ---- collect: two runs into one folder; the second appends with the next seeds ----------------
    _ok(run_qt("collect", "--episodes", "2", "--bags", bags, *COLLECT, "--summary", tmp_path / "c1.json", env=env),
        "qt collect (clean)")
    out = _ok(run_qt("collect", "--episodes", "1", "--bags", bags, *COLLECT, "--noise-std", "0.3",
                     "--summary", tmp_path / "c2.json", env=env), "qt collect (noisy)")
    assert "[1/1] pick/red" in out and "3 labelled bag(s) in total" in out
    runs = [json.loads((tmp_path / f"c{i}.json").read_text()) for i in (1, 2)]
    episodes = runs[0]["episodes"] + runs[1]["episodes"]
    assert [(e["task_id"], e["seed"]) for e in episodes] == [("pick/red", 0), ("pick/green", 1), ("pick/red", 2)]
    assert runs[1]["knobs"]["noise_std"] == 0.3 and runs[0]["successes"] == 2  # the clean expert picks
    metas = {}
    for e in episodes:
        custom = yaml.safe_load((Path(e["bag"]) / "metadata.yaml").read_text())["rosbag2_bagfile_information"][
            "custom_data"]
        metas[e["episode_id"]] = custom
        assert (custom["task_id"], int(custom["seed"]), custom["outcome"]) == (e["task_id"], e["seed"], e["outcome"])
        assert float(custom["control_rate_hz"]) == 10.0  # the simulated robot's rate, not the 50 Hz wall rate
    assert len({p.name for p in bags.iterdir()}) == 3 == len(metas)
    assert "noise_std=0.3" in metas[episodes[2]["episode_id"]]["operator"]

    # ---- convert: one dataset step per recorded decision --------------------------------------------
    ds_dir = tmp_path / "dataset"
    _ok(run_qt("convert", bags, "-o", ds_dir, "--proprio", "ee_pose", "--image-size", f"{IMAGE[0]}x{IMAGE[1]}",
               "--no-progress", "-j", "1", env=env), "qt convert")
    ds = Dataset(ds_dir)
    by_id = {e["episode_id"]: e for e in ds.episodes}
    assert sorted(by_id) == sorted(metas)
    for e in episodes:
        assert e["lockstep_misses"] == 0, e  # every tick executed the expert's action for the previous frame
        assert by_id[e["episode_id"]]["length"] == e["steps"] > 5, (by_id[e["episode_id"]], e)
        assert by_id[e["episode_id"]]["outcome"] == e["outcome"]
    assert ds.meta["num_frames"] == sum(e["steps"] for e in episodes)
    assert ds.proprio.shape == (ds.meta["num_frames"], 7) and ds.images.shape[1:] == (*IMAGE, 3)

    # ---- train + export ---------------------------------------------------------------------------
    run_dir = tmp_path / "run"
    _ok(run_qt("train", ds_dir, "--out", run_dir, "--model-size", "tiny", "--steps", str(TRAIN_STEPS),
               "--batch-size", "4", "--threads", "1", "--no-progress", env=env), "qt train")
    import torch

    checkpoint = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert checkpoint["step"] == TRAIN_STEPS and checkpoint["data_digest"] == ds.digest()
    plan = make_plan((EVAL_TASK,), "train", 100_000, 2)
    extra = [arg for spec in plan for arg in ("--instruction", spec.instruction)]
    models = tmp_path / "models"
    _ok(run_qt("export", run_dir, "--name", "toy", "--models-dir", models, "--no-text-encoder", *extra, env=env),
        "qt export")
    model = models / "toy"
    card = json.loads((model / "policy.json").read_text())
    assert card["proprio_dim"] == 7 and (card["image"]["height"], card["image"]["width"]) == IMAGE
    assert card["control_rate_hz"] == 10.0 and card["training"]["steps"] == TRAIN_STEPS
    assert card["training"]["data_digest"] == ds.digest() and card["evaluation"] == {}
    assert {s.instruction for s in plan} <= set(card["text_encoder"]["embeddings"])

    # ---- evaluate: the policy node over ROS, then in process: same episodes, same outcomes ---------
    common = ["--model", model, "--tasks", EVAL_TASK, "--episodes", "2", "--split", "train", "--horizon",
              str(EVAL_HORIZON)]
    out = _ok(run_qt("eval", *common, "--mode", "ros", "--rate-hz", "30", "--out", tmp_path / "eval_ros",
                     "--write-card", env=env), "qt eval --mode ros")
    assert "evaluation (train) written into" in out
    ros = json.loads((tmp_path / "eval_ros" / "eval.json").read_text())
    assert (ros["mode"], ros["split"], ros["overall"]["episodes"]) == ("ros", "train", 2)
    assert [r["task"] for r in ros["tasks"]] == [EVAL_TASK]
    assert [(e["seed"], e["instruction"]) for e in ros["episodes"]] == [(s.seed, s.instruction) for s in plan]
    for e in ros["episodes"]:
        assert e["outcome"] in ("success", "failure") and 1 <= e["steps"] <= EVAL_HORIZON - 1
        assert e["decode_ms"]["n"] >= 1 and e["command_latency_ms"]["n"] == e["steps"]
        assert e["lockstep_misses"] == 0 and e["control_rate_hz"] > 5
    assert (tmp_path / "eval_ros" / "summary.png").stat().st_size > 1000
    assert "| **all** | 2 |" in (tmp_path / "eval_ros" / "eval.md").read_text()
    card = json.loads((model / "policy.json").read_text())
    assert card["evaluation"]["train"]["overall"]["episodes"] == 2 and card["evaluation"]["train"]["mode"] == "ros"

    _ok(run_qt("eval", *common, "--mode", "inprocess", "--out", tmp_path / "eval_in", env=env), "qt eval inprocess")
    local = json.loads((tmp_path / "eval_in" / "eval.json").read_text())
    assert [(e["outcome"], e["steps"]) for e in local["episodes"]] == [
        (e["outcome"], e["steps"]) for e in ros["episodes"]]
    assert np.isclose(local["overall"]["success_rate"], ros["overall"]["success_rate"])
