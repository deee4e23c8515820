"""`qt q-diagnostics` on a bandit whose Q is known: its figures must match the closed form."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from helpers.trainer_mdp import tiny_config, write_mdp
from qt_common.cli import main as qt_main
from qt_trainer.q_diagnostics import diagnose
from qt_trainer.train import Trainer

GAMMA = 0.9


def test_diagnostics_report_q_of_data_greedy_and_unseen_bins(tmp_path: Path, train_mdp) -> None:
    # Every pair of {60, 190} x {30, 220} is in the data (so every prefix has been seen with
    # both next bins); only (190, 220) pays. Closed form: Q = 1 on the paying pair, 0 elsewhere.
    episodes = [([0], [(x, y)], "success" if (x, y) == (190, 220) else "failure") for x in (60, 190) for y in (30, 220)]
    data = write_mdp(tmp_path / "bandit", episodes, GAMMA, repeat=4)
    trainer = train_mdp(data, 300)
    run = tmp_path / "run"
    trainer.out_dir = run
    trainer.save()

    report = diagnose(run, data.path, tmp_path / "diag", episodes_per_outcome=2, which="last")

    success, failure = report["summary"]["success"], report["summary"]["failure"]
    assert success["mc_return_mean"] == pytest.approx(1.0) and failure["mc_return_mean"] == 0.0
    assert abs(success["q_data_mean"] - 1.0) < 0.05  # the paying pair is worth its return
    assert failure["q_data_mean"] < 0.05  # the failing pair is worth nothing
    assert success["greedy_equals_data"] == 1.0  # the greedy bin is the paying one
    assert list(success["by_steps_left"]) == ["1-5"]  # one-step episodes: every frame is the last
    assert success["by_steps_left"]["1-5"]["q_data_mean"] == pytest.approx(success["q_data_mean"])
    assert failure["greedy_equals_data"] < 1.0  # on the failed episode greedy leaves the data
    assert success["q_never_seen_max_mean"] < 0.05  # conservative term: bins never taken stay low
    rows = report["episodes"][0]["rows"]
    assert {r["dim"] for r in rows} == {0, 1} and all(0.0 <= r["q_greedy"] <= 1.0 for r in rows)
    assert (tmp_path / "diag" / "q_along_episodes.png").stat().st_size > 1000
    assert report["never_seen_bins_per_dim"] == [254, 254]  # two bins seen per dimension
    with pytest.raises(ValueError, match=r"--task 'push/': no episode .* has a task_id starting with it"):
        diagnose(run, data.path, tmp_path / "diag-push", episodes_per_outcome=2, which="last", task="push/")


def test_diagnostics_refuse_a_behaviour_cloning_checkpoint(tmp_path: Path, embedder,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = write_mdp(tmp_path / "bandit", [([0], [(1, 2)], "success")], GAMMA)
    config = tiny_config(2)
    bc = Trainer(replace(config, model=replace(config.model, algorithm="bc")), data, tmp_path / "bc",
                 embedder=embedder, progress=False)
    bc.run()
    bc.save()
    with pytest.raises(SystemExit) as exited:
        qt_main(["q-diagnostics", str(tmp_path / "bc"), str(data.path), "--out", str(tmp_path / "d")])
    assert exited.value.code == 2 and "needs a Q-Transformer" in capsys.readouterr().err
