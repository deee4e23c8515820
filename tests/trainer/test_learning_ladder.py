"""bench/learning_ladder.py: the stages a warm-start comparison rung runs, in order, with the
arguments that make the comparison fair (same data, same total steps, every learner from the
same BC phase). The stages themselves (`qt collect/convert/train/export/eval`) have their own
tests; here a recorder stands in for the subprocess and writes what each stage would leave."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

LADDER_FILE = Path(__file__).resolve().parents[2] / "bench" / "learning_ladder.py"


@pytest.fixture
def ladder():
    spec = importlib.util.spec_from_file_location("learning_ladder", LADDER_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _fake_stage(commands: list[list[str]]):
    """Record each command and write the files the real stage leaves behind."""

    def run(cmd: list[str], log: Path) -> None:
        commands.append(cmd)
        log.write_text("")
        verb, value = cmd[1], lambda flag: cmd[cmd.index(flag) + 1]
        if verb == "collect":
            Path(value("--summary")).write_text(json.dumps({"wall_s": 10.0}))
        elif verb == "convert":
            dataset = Path(value("-o"))
            dataset.mkdir(parents=True)
            outcomes = ["success", "failure", "success", "failure"]
            (dataset / "meta.json").write_text(json.dumps(
                {"num_frames": 40, "episodes": [{"outcome": o} for o in outcomes]}))
        elif verb == "train":
            run_dir = Path(value("--out"))
            run_dir.mkdir(parents=True)
            (run_dir / "checkpoint.pt").write_bytes(b"")
            steps = int(value("--steps"))
            (run_dir / "eval_log.jsonl").write_text("\n".join(json.dumps(
                {"step": s, "train_wall_s": 60.0 * s / steps, "success_rate": s / steps, "successes": 1,
                 "episodes": 15}) for s in (steps // 2, steps)) + "\n")
        elif verb == "eval":
            out = Path(value("--out"))
            out.mkdir(parents=True)
            k = 30 if "qt" in value("--model") else 6
            (out / "eval.json").write_text(json.dumps({"tasks": [{"task": "pick/red", "successes": k,
                                                                  "episodes": 60}]}))

    return run


def test_warm_start_rung_trains_every_learner_from_the_same_bc_phase(ladder, tmp_path, monkeypatch) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(ladder, "_run", _fake_stage(commands))
    rung = replace(ladder.RUNGS["R6"], extra_collect=(30, 1000), steps=100, seeds=(0,), warm_start=True,
                   train_args=(), variant="")

    result = ladder.run_rung(rung, tmp_path)

    collects = [c for c in commands if c[1] == "collect"]
    assert [c[c.index("--seed") + 1] for c in collects] == ["0", "1000"]
    convert = next(c for c in commands if c[1] == "convert")
    assert convert[2:4] == [str(tmp_path / "R6" / "bags"), str(tmp_path / "R6" / "bags-extra")]
    trains = [c for c in commands if c[1] == "train"]
    phase = tmp_path / "R6" / "run-bc-s0"
    assert trains[0][trains[0].index("--out") + 1] == str(phase)  # the BC phase first, once
    assert "--init-from" not in trains[0]
    outs = [c[c.index("--out") + 1] for c in trains[1:]]
    assert outs == [str(tmp_path / "R6" / "run-bc-initbc-s0"), str(tmp_path / "R6" / "run-qt-initbc-s0")]
    for command in trains[1:]:
        assert command[command.index("--init-from") + 1] == str(phase / "checkpoint.pt")
        assert command[command.index("--steps") + 1] == "100"
    by_learner = {r["learner"]: r for r in result["runs"]}
    assert by_learner["qt"]["training"] == {"minutes": 2.0, "steps": 200, "best_step": 200, "all_steps": True}
    assert result["data"] == {"episodes": 4, "successes": 2, "frames": 40, "collect_wall_s": 20.0}
    assert result["met_target"] and by_learner["qt"]["success"]["successes"] == 30


def test_rung_without_warm_start_trains_from_scratch(ladder, tmp_path, monkeypatch) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(ladder, "_run", _fake_stage(commands))
    rung = replace(ladder.RUNGS["R5"], learners=("bc", "qt"), steps=100, seeds=(0,))
    assert not rung.warm_start

    result = ladder.run_rung(rung, tmp_path)

    trains = [c for c in commands if c[1] == "train"]
    assert [c[c.index("--out") + 1] for c in trains] == [str(tmp_path / "R5" / "run-bc-objects-s0"),
                                                         str(tmp_path / "R5" / "run-qt-objects-s0")]
    assert not any("--init-from" in c for c in trains)
    assert all(c[c.index("--obs-tokens") + 1] == "objects" for c in trains)
    assert {r["learner"]: r["training"]["steps"] for r in result["runs"]} == {"bc": 100, "qt": 100}


def test_a_variant_adds_its_flags_to_every_training_and_names_its_runs(ladder, tmp_path, monkeypatch) -> None:
    """Runs of another network on the same data (object tokens) never reuse the runs of the
    default one: the variant is in every run folder's name (the BC phase's too), its flags in
    every qt train."""
    commands: list[list[str]] = []
    monkeypatch.setattr(ladder, "_run", _fake_stage(commands))
    rung = replace(ladder.RUNGS["R6"], steps=100, train_args=("--obs-tokens", "objects"), variant="objects",
                   warm_start=True)

    ladder.run_rung(rung, tmp_path)

    trains = [c for c in commands if c[1] == "train"]
    assert [c[c.index("--out") + 1] for c in trains] == [
        str(tmp_path / "R6" / name) for name in ("run-bc-objects-s0", "run-bc-initbc-objects-s0",
                                                 "run-qt-initbc-objects-s0")]
    assert all(c[c.index("--obs-tokens") + 1] == "objects" for c in trains)
    assert (tmp_path / "R6" / "eval-qt-initbc-objects-s0.json").is_file()


def test_a_comparison_counts_only_when_significant(ladder) -> None:
    rung = ladder.RUNGS["R6"]  # target: Q-T above BC

    def runs(qt: int, bc: int) -> list[dict]:
        return [{"learner": name, "seed": 0, "success": {"successes": k, "episodes": 150},
                 "training": {"steps": 24000, "all_steps": True}} for name, k in (("qt", qt), ("bc", bc))]

    data = {"successes": 750, "episodes": 1500}
    met, checks = ladder._verdict(rung, runs(9, 8), data)
    assert not met and checks == ["Q-T >= 1 x BC (p = 0.4): NO"]
    assert ladder._verdict(rung, runs(30, 8), data)[0]


def test_the_family_table_pools_each_family_over_seeds_and_skips_single_family_rungs(ladder) -> None:
    def run(learner: str, seed: int, per_task: dict[str, list[int]]) -> dict:
        return {"learner": learner, "seed": seed, "success": {"per_task": per_task}}

    mixed = {"rung": {"name": "R6", "learners": ["bc", "qt"]}, "runs": [
        run("bc", 0, {"pick/red": [3, 10], "push/red/yellow": [2, 10]}),
        run("qt", 0, {"pick/red": [7, 10], "push/red/yellow": [0, 10]}),
        run("qt", 1, {"pick/red": [5, 10], "push/red/yellow": [1, 10]})]}
    pick_only = {"rung": {"name": "R5", "learners": ["bc", "qt"]},
                 "runs": [run("qt", 0, {"pick/red": [9, 10], "pick/blue": [8, 10]})]}
    lines = ladder.family_table([pick_only, mixed]).splitlines()
    assert lines[0] == "| R6 task family | bc | qt |"
    assert lines[2].startswith("| pick | 3/10 = 30%") and "| 12/20 = 60%" in lines[2]
    assert lines[3].startswith("| push | 2/10 = 20%") and "| 1/20 = 5%" in lines[3]
    assert not any("R5" in line for line in lines)


def test_q_learner_flags_leave_the_bc_runs_of_the_rung_the_data_comes_from(ladder, tmp_path, monkeypatch) -> None:
    """R5n1: R5's folder and data; its Q-learners train with --n-step 1 into runs named -n1, while
    BC (no TD target) is R5's own run, found by name and not trained again."""
    commands: list[list[str]] = []
    monkeypatch.setattr(ladder, "_run", _fake_stage(commands))
    r5 = replace(ladder.RUNGS["R5"], learners=("bc",), steps=100, seeds=(0,))
    ladder.run_rung(r5, tmp_path)
    commands.clear()

    result = ladder.run_rung(replace(ladder.RUNGS["R5n1"], steps=100, seeds=(0,)), tmp_path)

    assert not [c for c in commands if c[1] in ("collect", "convert")]
    trains = [c for c in commands if c[1] == "train"]
    assert [c[c.index("--out") + 1] for c in trains] == [
        str(tmp_path / "R5" / name) for name in ("run-qt-objects-n1-s0", "run-qt-no-mc-bound-objects-n1-s0")]
    assert all(c[c.index("--n-step") + 1] == "1" for c in trains)
    assert [r["learner"] for r in result["runs"]] == ["bc", "qt", "qt-no-mc-bound"]
    assert (tmp_path / "R5" / "result-R5n1.json").is_file() and not (tmp_path / "R5n1").exists()


def test_r6x3_is_r6_with_three_times_the_episodes_on_new_layouts(ladder) -> None:
    """The data-size experiment changes one thing: R6's collection plus a second one whose seeds
    start where R6's end (new layouts, none collected twice), 300 episodes per task in all."""
    r6, r6x3 = ladder.RUNGS["R6"], ladder.RUNGS["R6x3"]
    extra_episodes, extra_first_seed = r6x3.extra_collect
    assert extra_first_seed == r6.episodes
    assert (r6x3.episodes + extra_episodes) == 3 * r6.episodes
    changed = {name for name, value in vars(r6x3).items() if value != getattr(r6, name)}
    assert changed == {"name", "title", "extra_collect"}


@pytest.mark.parametrize("base", ["R4", "R5", "R6x3"])
def test_the_3_step_rung_changes_only_the_q_learners_n_step(ladder, base: str) -> None:
    """An n-step experiment changes one thing: the Q-learners' n-step, on the base rung's data,
    with every learner of the base rung (BC's runs are the base rung's own: q_args never reach BC)."""
    rung, n3 = ladder.RUNGS[base], ladder.RUNGS[f"{base}n3"]
    changed = {name for name, value in vars(n3).items() if value != getattr(rung, name)}
    assert changed == {"name", "title", "q_args", "q_variant", "data_from"}
    assert n3.data_from == base and n3.q_setting("qt") == (("--n-step", "3"), "-n3")
    assert n3.q_setting("bc") == ((), "")
    assert n3.title == f"{rung.title}, 3-step returns"


def test_the_48k_rung_changes_only_the_steps_and_keeps_its_runs_apart(ladder) -> None:
    """R6x3n3-48k is R6x3n3 with twice the steps: a budget that leaves the steps the limit, and run
    folders of its own for every learner (BC's included), so the 24 000-step runs are never reused."""
    rung, longer = ladder.RUNGS["R6x3n3"], ladder.RUNGS["R6x3n3-48k"]
    changed = {name for name, value in vars(longer).items() if value != getattr(rung, name)}
    assert changed == {"name", "title", "steps", "budget_min", "eval_every", "variant"}
    assert longer.steps == 2 * rung.steps and longer.budget_min > 2 * rung.budget_min
    assert longer.data_from == "R6x3" and longer.variant != rung.variant


def test_a_run_the_clock_stopped_voids_the_comparison(ladder, tmp_path, monkeypatch) -> None:
    """Equal gradient steps for every learner: a run that the wall-clock budget ended early (a
    slower host) makes the rung MISSED with the run named, whatever the success rates say."""
    commands: list[list[str]] = []
    fake = _fake_stage(commands)

    def short_qt(cmd: list[str], log: Path) -> None:
        if cmd[1] == "train" and "q_transformer" in cmd:
            cmd = [*cmd[:cmd.index("--steps") + 1], "60", *cmd[cmd.index("--steps") + 2:]]
        fake(cmd, log)

    monkeypatch.setattr(ladder, "_run", short_qt)
    result = ladder.run_rung(replace(ladder.RUNGS["R6"], steps=100), tmp_path)

    assert [r["training"]["all_steps"] for r in result["runs"]] == [True, False]
    assert not result["met_target"]
    assert result["checks"] == ["equal steps: NO, stopped by the clock before 100: qt s0 at 60"]
