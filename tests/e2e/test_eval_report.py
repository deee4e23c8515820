"""The evaluation's arithmetic and writers, and the pieces both evaluation modes share (no ROS)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from qt_eval.plan import card_tasks, make_plan, missing_embeddings, node_parameters
from qt_eval.report import (
    EpisodeResult,
    bar_chart,
    build_report,
    markdown_table,
    merge_into_card,
    wilson_interval,
    write_outputs,
)
from qt_sim.tasks import TASK_IDS, instructions, select_tasks


def test_wilson_interval_matches_hand_computed_values():
    # p = 0.5, n = 10: centre 0.5, half width z*sqrt(0.025 + z^2/400)/(1 + z^2/10)
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 10 + z * z / 400) / (1 + z * z / 10)
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-12)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)  # the textbook figure
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "n"), [(1, 3), (7, 20), (19, 20), (50, 100), (1, 1000)])
def test_wilson_interval_contains_the_rate_and_narrows_with_n(k, n):
    low, high = wilson_interval(k, n)
    assert 0.0 <= low < k / n < high <= 1.0
    low10, high10 = wilson_interval(10 * k, 10 * n)
    assert high10 - low10 < high - low
    mirrored = wilson_interval(n - k, n)
    assert mirrored == pytest.approx((1 - high, 1 - low), abs=1e-12)


@pytest.mark.parametrize(("k", "n"), [(-1, 3), (4, 3), (0, -1)])
def test_wilson_interval_refuses_impossible_counts(k, n):
    with pytest.raises(ValueError, match="successes/n"):
        wilson_interval(k, n)


def test_plan_cycles_tasks_seeds_and_wordings():
    plan = make_plan(("pick/red", "push/blue/yellow"), "heldout", 100_000, 5)
    assert [s.task_id for s in plan] == ["pick/red", "push/blue/yellow"] * 2 + ["pick/red"]
    assert [s.seed for s in plan] == list(range(100_000, 100_005))
    red = [s.instruction for s in plan if s.task_id == "pick/red"]
    assert red == [*instructions("pick/red", "heldout"), instructions("pick/red", "heldout")[0]]
    assert not set(red) & set(instructions("pick/red", "train"))
    with pytest.raises(ValueError, match="split"):
        make_plan(("pick/red",), "test", 0, 1)
    with pytest.raises(ValueError, match="episodes"):
        make_plan(("pick/red",), "train", 0, 0)


def test_task_selection_by_prefix_and_from_a_card():
    assert select_tasks("pick/,place/red/yellow") == ("pick/red", "pick/green", "pick/blue", "place/red/yellow")
    assert select_tasks("") == TASK_IDS == select_tasks("all")
    with pytest.raises(ValueError, match="'pick/orange' matches no task"):
        select_tasks("pick/orange")
    card = {"text_encoder": {"embeddings": {instructions("push/red/purple")[1]: [0.0], "say hello": [0.0],
                                            instructions("pick/blue")[0]: [0.0]}}}
    assert card_tasks(card) == ("pick/blue", "push/red/purple")
    assert card_tasks({"text_encoder": {"embeddings": {}}}) == TASK_IDS
    plan = make_plan(("pick/blue",), "train", 0, 3)
    missing = missing_embeddings(plan, card)
    assert missing == sorted(instructions("pick/blue")[1:])


def test_node_parameters_come_from_the_yaml_over_the_defaults(tmp_path):
    from qt_policy_node.run import default_params_file

    params = node_parameters(default_params_file())
    assert params["slew_limit"] == [0.01, 0.01, 0.01, 0.075, 0.0] and params["execution_providers"]
    custom = tmp_path / "p.yaml"
    custom.write_text("/**/policy_node:\n  ros__parameters:\n    slew_limit: [0.0, 0.0, 0.0, 0.0, 0.0]\n")
    assert node_parameters(custom)["slew_limit"] == [0.0] * 5
    custom.write_text("/**/policy_node:\n  ros__parameters:\n    slew_limt: [0.0]\n")
    with pytest.raises(ValueError, match="slew_limt"):
        node_parameters(custom)


def _result(task: str, outcome: str, steps: int, seed: int = 0, frames: int = 0) -> EpisodeResult:
    r = EpisodeResult(task, seed, "w", "heldout", outcome, steps, 1.0, 29.5, decode_ms=[1.0, 2.0, 3.0],
                      command_latency_ms=[30.0, 32.0])
    r.frames = [np.full((24, 32, 3), 40 * k, np.uint8) for k in range(frames)]
    return r


def _report() -> tuple[dict, list[EpisodeResult]]:
    results = [_result("pick/red", "success", 20, 1, frames=5), _result("pick/red", "failure", 99, 2),
               _result("pick/red", "success", 24, 3), _result("push/red/yellow", "failure", 99, 4, frames=7)]
    return build_report(results, {"model_id": "m", "mode": "ros", "split": "heldout", "seed_base": 1}), results


def test_report_rows_and_markdown_table():
    report, _ = _report()
    red, push = report["tasks"]
    assert (red["task"], red["episodes"], red["successes"]) == ("pick/red", 3, 2)
    assert red["success_rate"] == pytest.approx(2 / 3) and red["ci95"] == pytest.approx(wilson_interval(2, 3), abs=1e-4)
    assert red["mean_steps"] == pytest.approx((20 + 99 + 24) / 3, abs=0.01)
    assert red["decode_ms"]["n"] == 9 and red["decode_ms"]["p50"] == 2.0 and red["decode_ms"]["max"] == 3.0
    assert (push["successes"], report["overall"]["episodes"], report["overall"]["successes"]) == (0, 4, 2)
    assert len(report["episodes"]) == 4 and report["episodes"][0]["seed"] == 1
    table = markdown_table(report).splitlines()
    assert len(table) == 2 + 3 and table[0].startswith("| task | episodes | success | 95 % CI")
    assert table[2].startswith("| `pick/red` | 3 | 2/3 = 67 % | 21-94 % | 47.7 | 29.5 | 2.00 / 3.00 | 31.00 / 32.00 |")
    assert table[-1].startswith("| **all** | 4 | 2/4 = 50 %")


def test_bar_chart_draws_bars_and_whiskers_where_the_numbers_say():
    rows = [{"task": "a", "episodes": 10, "successes": 5, "success_rate": 0.5, "ci95": [0.25, 0.75]},
            {"task": "all", "episodes": 10, "successes": 10, "success_rate": 1.0, "ci95": [0.7, 1.0]}]
    image = bar_chart(rows, width=660)
    label_w, plot_w = 150, 660 - 150 - 60
    y = 8 + 16 // 2  # middle of the first bar (no title)
    blue = np.array([70, 110, 200])
    assert (image[y, label_w + 10] == blue).all() and (image[y + 5, label_w + round(0.5 * plot_w) - 2] == blue).all()
    assert (image[y + 5, label_w + round(0.5 * plot_w) + 3] == 255).all()  # white beyond 50 %
    for frac in (0.25, 0.75):  # whisker caps are black
        assert image[y, label_w + round(frac * plot_w)].max() < 60
    y2 = 8 + 24 + 4
    assert (image[y2, label_w + plot_w - 3] == [40, 150, 80]).all()  # the "all" bar reaches 100 %


def test_outputs_and_card_merge(tmp_path):
    report, results = _report()
    paths = write_outputs(report, results, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["overall"]["successes"] == 2
    assert "| **all** | 4 |" in paths["markdown"].read_text()
    png = np.asarray(Image.open(paths["png"]))
    assert png.shape[1] >= 640 and png.shape[0] > 200  # chart above a sheet of two episodes
    model = tmp_path / "model"
    model.mkdir()
    (model / "policy.json").write_text(json.dumps({"format": "qt-policy", "model_id": "m", "evaluation": {
        "train": {"overall": {"episodes": 1}}}}))
    merge_into_card(model, report)
    card = json.loads((model / "policy.json").read_text())
    assert card["model_id"] == "m" and card["evaluation"]["train"] == {"overall": {"episodes": 1}}
    assert card["evaluation"]["heldout"]["overall"]["episodes"] == 4 and "episodes" not in card["evaluation"]["heldout"]
    assert [r["task"] for r in card["evaluation"]["heldout"]["tasks"]] == ["pick/red", "push/red/yellow"]


@pytest.mark.parametrize("layout", ["ee_pose", "ee_yaw_gripper"])
def test_inprocess_proprio_is_what_the_policy_node_reads_from_the_driver(layout):
    """The in-process evaluation's vector (from the scene state) == the node's (from the PoseStamped
    and JointState the driver builds from that state), bit for bit."""
    from geometry_msgs.msg import PoseStamped
    from qt_policy_node.proprio import ProprioAssembler
    from qt_sim.env import TabletopEnv
    from qt_sim.messages import make_pose
    from sensor_msgs.msg import JointState

    env = TabletopEnv(width=16, height=16, render_images=False)
    try:
        env.reset(seed=5, options={"task_id": "pick/red"})
        for step in range(6):
            state = env.scene_state()
            msg = PoseStamped()
            msg.pose = make_pose(state.ee_pos, state.ee_quat)
            from_ros = np.zeros(7 if layout == "ee_pose" else 6, np.float32)
            node_side = ProprioAssembler(layout, from_ros)
            assert node_side.pose(msg)
            assert node_side.joints(JointState(name=list(state.joint_names), position=state.joint_positions.tolist()))
            direct = np.zeros_like(from_ros)
            ProprioAssembler(layout, direct).set_state(state.ee_pos, state.ee_quat, state.joint_positions[-2:])
            assert np.array_equal(direct, from_ros)
            if layout == "ee_pose":
                assert direct[6] == np.float32(state.ee_quat[0])  # w last, as geometry_msgs orders it
            env.step(np.array([0.5, -0.3, -0.2, 0.4 * (-1) ** step, -1.0]))
    finally:
        env.close()


def test_demo_compares_a_short_run_with_the_card_by_its_own_interval():
    from qt_eval.demo import compare_with_card

    card = {"evaluation": {"train": {"mode": "inprocess", "overall": {
        "episodes": 90, "success_rate": 87 / 90, "ci95": list(wilson_interval(87, 90))}}}}

    def run(k: int, n: int) -> dict:
        overall = {"episodes": n, "success_rate": k / n, "ci95": list(wilson_interval(k, n))}
        return {"split": "train", "overall": overall}

    assert "consistent with the card" in compare_with_card(card, run(9, 10))  # 9/10 vs 97 %: no evidence
    assert "NOT consistent" in compare_with_card(card, run(3, 10))
    assert "no 'heldout' evaluation" in compare_with_card({}, {**run(9, 10), "split": "heldout"})


def test_demo_compare_prints_both_rates_with_intervals_and_whether_they_overlap():
    from qt_eval.demo import side_by_side

    def report(k: int, n: int) -> dict:
        return {"overall": {"episodes": n, "successes": k, "success_rate": k / n,
                            "ci95": list(wilson_interval(k, n)), "decode_ms": {"p50": 1.25}}}

    text = side_by_side([("default", report(9, 10)), ("bc", report(7, 10))])
    lines = text.splitlines()
    assert lines[1].startswith("default") and "9/10" in lines[1] and "90%" in lines[1] and "1.25 ms" in lines[1]
    assert lines[2].startswith("bc") and "7/10" in lines[2] and "70%" in lines[2]
    assert "overlap: this run does not show a difference" in text
    assert "do not overlap" in side_by_side([("a", report(30, 30)), ("b", report(0, 30))])
