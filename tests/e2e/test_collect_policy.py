"""``qt collect --policy MODEL --inprocess``: a policy's own rollouts as episode bags.

Checked against the in-process evaluator (the same decision path): with epsilon 0 the bag's
commands are exactly the commands ``run_inprocess`` executes on the same layout and wording;
every command has source POLICY; the outcome is the sim's success check; epsilon 1 replaces
every dimension by a random bin; ``qt convert`` turns the bags into a dataset whose episodes
carry source ``policy``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.bag_reading import bag_messages, custom_data
from helpers.qt_command import run_qt
from helpers.tiny_policy import export_tiny_policy
from qt_common.dataset import Dataset
from qt_eval.inprocess import run_inprocess
from qt_eval.plan import EpisodeSpec, node_parameters
from qt_policy_node.run import default_params_file

from qt_msgs.msg import ArmAction

pytest.importorskip("qt_sim.env")

HORIZON = 12


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from qt_sim.tasks import instructions

    return export_tiny_policy(tmp_path_factory.mktemp("model") / "tiny", image_size=(48, 64), seed=3,
                              instructions=instructions("pick/red", "train"))


def collect(model: Path, bags: Path, epsilon: float) -> list[Path]:
    result = run_qt("collect", "--inprocess", "--policy", model, "--episodes", "2", "--bags", bags, "--seed", "7",
                    "--horizon", str(HORIZON), "--epsilon", str(epsilon))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"epsilon {epsilon:g}" in result.stdout
    return sorted(p.parent for p in bags.glob("*/metadata.yaml"))


def test_policy_rollouts_are_the_in_process_evaluators_decisions(model, tmp_path):
    bags = collect(model, tmp_path / "bags", epsilon=0.0)
    assert len(bags) == 2
    params = node_parameters(default_params_file())
    for bag in bags:
        custom = custom_data(bag)
        assert custom["task_id"] == "pick/red" and custom["outcome"] in ("success", "failure")
        sent = bag_messages(bag, "/qt/action")
        assert {int(m.source) for m in sent} == {ArmAction.SOURCE_POLICY}
        spec = EpisodeSpec("pick/red", int(custom["seed"]), custom["instruction"], "train")
        local = run_inprocess(model, params, [spec], horizon=HORIZON, keep_executed=True)[0]
        assert local.outcome == custom["outcome"]
        # The bag also holds the decision on the final frame (never executed; qt convert drops it).
        assert len(sent) == len(local.executed) + 1
        np.testing.assert_array_equal(np.array([list(m.values) for m in sent[:-1]], dtype=np.float64),
                                      np.array(local.executed))


def test_epsilon_explores_and_convert_keeps_the_source(model, tmp_path):
    bags = collect(model, tmp_path / "bags", epsilon=1.0)
    bins = np.array([list(m.bins) for bag in bags for m in bag_messages(bag, "/qt/action")])
    assert len(bins) >= 2 * (HORIZON - 1)
    for dim in range(bins.shape[1]):  # every dimension random: about as many distinct bins as steps
        assert len(set(bins[:, dim])) > len(bins) // 2, f"dimension {dim} was not explored"
    converted = run_qt("convert", tmp_path / "bags", "-o", tmp_path / "ds", "--image-size", "48x64")
    assert converted.returncode == 0, converted.stderr
    ds = Dataset(tmp_path / "ds")
    assert len(ds.episodes) == 2 and {e["source"] for e in ds.episodes} == {"policy"}
    assert sum(ds.summary()["per_source"]["policy"].values()) == 2
    assert all(e["operator"].endswith("epsilon 1") for e in ds.episodes)
