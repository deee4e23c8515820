"""The pipeline verbs refuse bad input with a message that says what is wrong, before starting anything."""

from __future__ import annotations

import json
import os

import pytest
from helpers.qt_command import run_qt


def test_verbs_are_listed():
    out = run_qt("--help", timeout=60).stdout
    for verb in ("collect", "eval", "demo"):
        assert f"  {verb} " in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["collect", "--episodes", "0", "--bags", "b"], "--episodes: expected >= 1"),
        (["collect", "--episodes", "2", "--bags", "b", "--tasks", "pick/orange"], "'pick/orange' matches no task"),
        (["collect", "--episodes", "2", "--bags", "b", "--noise-std", "-1"], "noise_std: expected"),
        (["collect", "--episodes", "2", "--bags", "b", "--image", "5x5"], "--image: expected N or HxW"),
        (["eval", "--model", "m", "--split", "test"], "invalid choice: 'test'"),
        (["collect", "--episodes", "2", "--bags", "b", "--policy", "models/default"],
         "--policy: only with --inprocess"),
        (["collect", "--episodes", "2", "--bags", "b", "--epsilon", "0.1"], "--epsilon: only with --policy"),
        (["collect", "--episodes", "2", "--bags", "b", "--inprocess", "--policy", "nowhere"], "--policy: "),
        (["eval", "--robot", "--model", "m", "--time-limit", "0"], "--time-limit: expected > 0 seconds"),
        (["eval", "--robot", "--model", "m", "--task", "=x"], "--task: expected TASK=INSTRUCTION"),
    ],
)
def test_bad_arguments_are_refused_by_name(args, message, tmp_path):
    result = run_qt(*args, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "b").exists()


def test_demo_without_a_model_says_how_to_get_one(tmp_path):
    result = run_qt("demo", "--model", tmp_path / "missing", timeout=60)
    assert result.returncode == 1
    assert "no usable model" in result.stderr and "qt export" in result.stderr and "docs/E2E.md" in result.stderr


def test_eval_refuses_wordings_it_cannot_embed_before_starting_nodes(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    card = {"format": "qt-policy", "schema_version": 1, "model_id": "m", "algorithm": "q_transformer",
            "action_spec": {}, "action_spec_digest": "x", "image": {"height": 48, "width": 64}, "proprio_dim": 0,
            "text_encoder": {"id": "e", "dim": 4, "embeddings": {"pick up the red cube": [0.5, 0.5, 0.5, 0.5]}},
            "control_rate_hz": 10.0, "onnx_io": {}}
    (model / "policy.json").write_text(json.dumps(card))
    env = dict(os.environ, QT_CACHE_DIR=str(tmp_path / "empty-cache"))  # no text encoder there
    result = run_qt("eval", "--model", model, "--episodes", "2", "--split", "heldout", env=env, timeout=60)
    assert result.returncode == 1
    assert "not cached in" in result.stderr and "no text encoder" in result.stderr and "--split train" in result.stderr
    assert "episode(s) of" not in result.stdout  # refused before the run began
