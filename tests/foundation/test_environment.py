"""The built workspace: a fresh shell that sources env.sh imports everything it promises."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers.processes import REPO_ROOT

AMENT_PACKAGES = ["qt_msgs", "qt_policy_node", "qt_data_logger", "qt_sim"]


def run_in_fresh_shell(script: str) -> subprocess.CompletedProcess[str]:
    """Run bash with an empty environment (like a new login shell) after sourcing env.sh."""
    return subprocess.run(
        ["bash", "-c", f"source '{REPO_ROOT / 'env.sh'}' && {script}"],
        env={"HOME": str(Path.home()), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )


def test_fresh_shell_imports_rclpy_and_qt_msgs_and_finds_ament_packages():
    result = run_in_fresh_shell(
        "python -c \"import rclpy; from qt_msgs.msg import ArmAction, EpisodeEvent, PolicyStatus; "
        "from qt_msgs.srv import StartEpisode, EndEpisode; "
        "from ament_index_python.packages import get_package_share_directory as share; "
        f"print([share(p) for p in {AMENT_PACKAGES!r}])\""
    )
    assert result.returncode == 0, result.stderr
    for package in AMENT_PACKAGES:
        assert f"install/{package}/share/{package}" in result.stdout


def test_env_file_defaults_to_localhost_and_robot_network_overrides():
    default = run_in_fresh_shell("echo $ROS_AUTOMATIC_DISCOVERY_RANGE $FASTDDS_DEFAULT_PROFILES_FILE $ROS_DOMAIN_ID")
    assert default.stdout.split() == ["LOCALHOST", str(REPO_ROOT / "config/fastdds_localhost.xml"), "42"]
    robot = run_in_fresh_shell(
        "export QT_ROBOT_NETWORK=1 ROS_DOMAIN_ID=17 && source env.sh && "
        "echo $ROS_AUTOMATIC_DISCOVERY_RANGE $FASTDDS_DEFAULT_PROFILES_FILE $ROS_DOMAIN_ID"
    )
    assert robot.stdout.split() == ["SUBNET", str(REPO_ROOT / "config/fastdds_robot.xml"), "17"]


@pytest.mark.parametrize("module", ["qt_policy_node", "qt_data_logger", "qt_sim", "qt_trainer", "qt_common"])
def test_every_python_package_imports(module):
    result = run_in_fresh_shell(f"python -c 'import {module}'")
    assert result.returncode == 0, result.stderr


def test_qt_command_lists_verbs_and_rejects_unknown():
    ok = run_in_fresh_shell("qt --help")
    assert ok.returncode == 0 and "usage: qt VERB" in ok.stdout
    bad = run_in_fresh_shell("qt no-such-verb")
    assert bad.returncode == 2 and "unknown verb 'no-such-verb'" in bad.stderr
