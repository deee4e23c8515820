"""``qt demo --compare``: the default and a comparison model run the same episodes over ROS (real
policy node and sim driver processes) and both success rates are printed side by side."""

from __future__ import annotations

import pytest
from helpers.qt_command import run_qt
from helpers.tiny_policy import export_tiny_policy

pytest.importorskip("qt_sim.driver_node")


def test_demo_compare_runs_both_models_on_the_same_episodes(tmp_path):
    from qt_sim.tasks import instructions

    wordings = instructions("pick/red", "train")
    first = export_tiny_policy(tmp_path / "first", image_size=(48, 64), seed=3, instructions=wordings)
    second = export_tiny_policy(tmp_path / "second", image_size=(48, 64), seed=4, instructions=wordings)
    result = run_qt("demo", "--model", first, "--compare", second, "--episodes", "2", "--horizon", "5",
                    "--rate-hz", "10", "--out", tmp_path / "out", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "the same 2 episodes with" in out
    table = out[out.rindex("model "):]
    rows = table.splitlines()[1:3]
    assert "(first)" in rows[0] and "(second)" in rows[1] and all("/2" in r and "%" in r for r in rows)
    assert "intervals overlap" in table  # two 2-episode runs never show a difference
    assert (tmp_path / "out" / "compare-second" / "eval.json").is_file()
