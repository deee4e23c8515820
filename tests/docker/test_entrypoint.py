"""The container's environment makes the same network and rendering choices as env.sh.

docker/qt_env.sh is sourced by the entrypoint after ROS 2 and the workspace; env.sh is what
scripts/setup.sh writes for the development machine. Both are sourced here in clean shells with
the same inputs and must agree, so a robot run in Docker and one from a checkout behave alike.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
OUTPUTS = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "RMW_IMPLEMENTATION", "MUJOCO_GL",
           "PYOPENGL_PLATFORM", "FASTDDS_DEFAULT_PROFILES_FILE")
CASES = {
    "default": {},
    "domain": {"ROS_DOMAIN_ID": "17"},
    "robot": {"QT_ROBOT_NETWORK": "1", "ROS_DOMAIN_ID": "17"},
    "robot-range": {"QT_ROBOT_NETWORK": "1", "QT_DISCOVERY_RANGE": "SYSTEM_DEFAULT"},
    "robot-profile": {"QT_ROBOT_NETWORK": "1", "QT_FASTDDS_PROFILE": "/etc/my_dds.xml"},
    "profile-ignored-off-robot": {"QT_FASTDDS_PROFILE": "/etc/my_dds.xml"},
    "osmesa": {"MUJOCO_GL": "osmesa"},
}


def _environment(script: str, inputs: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), **inputs, **(extra or {})}
    printer = "; ".join(f'printf "%s=%s\\n" {name} "${name}"' for name in OUTPUTS)
    result = subprocess.run(["bash", "-c", f"source {script} >/dev/null; {printer}"], env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def _portable(values: dict[str, str], root: str) -> dict[str, str]:
    """Profile paths relative to the tree they come from (the checkout or the image's /opt/qt)."""
    path = values["FASTDDS_DEFAULT_PROFILES_FILE"]
    return values | {"FASTDDS_DEFAULT_PROFILES_FILE": path.replace(root, "<root>", 1)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_container_environment_matches_env_sh(case: str) -> None:
    if not (REPO / "env.sh").is_file():
        pytest.fail("env.sh missing: run scripts/setup.sh")
    dev = _portable(_environment(str(REPO / "env.sh"), CASES[case]), str(REPO))
    image = _portable(_environment(str(DOCKER / "qt_env.sh"), CASES[case], {"QT_ROBOT_ROOT": "/opt/qt"}), "/opt/qt")
    assert image == dev


def test_default_keeps_discovery_on_localhost_and_off_domain_zero() -> None:
    values = _environment(str(DOCKER / "qt_env.sh"), {}, {"QT_ROBOT_ROOT": "/opt/qt"})
    assert values["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert values["ROS_DOMAIN_ID"] == "42"
    assert values["FASTDDS_DEFAULT_PROFILES_FILE"] == "/opt/qt/config/fastdds_localhost.xml"


def test_profiles_the_environment_names_are_copied_into_the_images() -> None:
    for name in ("fastdds_localhost.xml", "fastdds_robot.xml"):
        assert (REPO / "config" / name).is_file()
        for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
            text = (DOCKER / dockerfile).read_text()
            assert f"config/{name}" in text and "/opt/qt/config/" in text, (dockerfile, name)


def test_venv_comes_first_on_path_after_ros_is_sourced() -> None:
    env = {"PATH": "/opt/ros/kilted/bin:/usr/bin:/bin", "VIRTUAL_ENV": "/opt/qt/venv", "QT_ROBOT_ROOT": "/opt/qt"}
    result = subprocess.run(["bash", "-c", f"source {DOCKER / 'qt_env.sh'}; echo $PATH"], env=env,
                            capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.strip().split(":")[:2] == ["/opt/qt/venv/bin", "/opt/ros/kilted/bin"]


@pytest.mark.parametrize("script", ["entrypoint.sh", "qt_env.sh", "ros2"])
def test_shell_scripts_parse(script: str) -> None:
    shell = "sh" if script == "ros2" else "bash"
    result = subprocess.run([shell, "-n", str(DOCKER / script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_ros2_shim_runs_the_distribution_cli_on_the_venv_python(tmp_path: Path) -> None:
    """docker/ros2 execs $VIRTUAL_ENV/bin/python3 on /opt/ros/$ROS_DISTRO/bin/ros2 with the arguments."""
    venv_python = tmp_path / "venv" / "bin" / "python3"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text('#!/bin/sh\necho "interpreter=$0"; for a in "$@"; do echo "arg=$a"; done\n')
    venv_python.chmod(0o755)
    # /opt/ros/<distro>/bin/ros2 resolved through a relative distro name into tmp_path
    distro = os.path.relpath(tmp_path / "distro", "/opt/ros")
    result = subprocess.run([str(DOCKER / "ros2"), "launch", "qt_policy_node", "run.launch.py", "sim:=true"],
                            env={"PATH": "/usr/bin:/bin", "VIRTUAL_ENV": str(tmp_path / "venv"), "ROS_DISTRO": distro},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"interpreter={venv_python}"
    assert Path(lines[1].removeprefix("arg=")).resolve() == (tmp_path / "distro" / "bin" / "ros2").resolve()
    assert lines[2:] == ["arg=launch", "arg=qt_policy_node", "arg=run.launch.py", "arg=sim:=true"]


def test_entrypoint_sources_ros_then_workspace_then_project_environment() -> None:
    lines = [line.strip() for line in (DOCKER / "entrypoint.sh").read_text().splitlines()
             if line.strip().startswith(("source", "exec"))]
    assert lines == [
        'source "/opt/ros/${ROS_DISTRO:?ROS_DISTRO is not set in this image}/setup.bash"',
        "source /opt/qt/ws/local_setup.bash",
        "source /opt/qt/docker/qt_env.sh",
        'exec "$@"',
    ]
