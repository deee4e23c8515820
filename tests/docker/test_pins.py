"""The images install exactly the project's pins: one source of truth, read by setup.sh and docker/.

docker/pins.py turns requirements/*.txt into the images' package lists; these tests pin what it
prints to the files, that the Dockerfiles install only through it, and that each image gets
exactly one ONNX Runtime flavour.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.dockerfiles import global_args

REPO = Path(__file__).resolve().parents[2]
REQ = REPO / "requirements"


def _pins_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def _names(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines() if line.split("#", 1)[0].strip()]


def _run_pins(*args: str) -> list[str]:
    result = subprocess.run([sys.executable, str(REPO / "docker" / "pins.py"), *args],
                            capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.split()


def test_cpu_image_pip_set_is_runtime_txt_plus_the_setuptools_pin(pins) -> None:
    image = _pins_file_from_lines(_run_pins("pip", "--flavour", "cpu"))
    expected = _pins_file(REQ / "runtime.txt") | {"setuptools": _pins_file(REQ / "ros.txt")["setuptools"]}
    assert image == expected


def test_cuda_image_swaps_onnxruntime_for_onnxruntime_gpu_at_the_same_version(pins) -> None:
    cpu = _pins_file_from_lines(_run_pins("pip", "--flavour", "cpu"))
    cuda = _pins_file_from_lines(_run_pins("pip", "--flavour", "cuda"))
    assert cuda["onnxruntime-gpu"] == cpu["onnxruntime"] == _pins_file(REQ / "runtime.txt")["onnxruntime"]
    assert {k: v for k, v in cuda.items() if k != "onnxruntime-gpu"} == {
        k: v for k, v in cpu.items() if k != "onnxruntime"}


@pytest.mark.parametrize("flavour", ["cpu", "cuda"])
def test_exactly_one_onnxruntime_flavour_per_image(pins, flavour: str) -> None:
    names = set(_pins_file_from_lines(_run_pins("pip", "--flavour", flavour)))
    flavours = names & {pins.canonical(n) for n in pins.ORT_DISTRIBUTIONS}
    assert flavours == {"onnxruntime" if flavour == "cpu" else "onnxruntime-gpu"}


def test_nothing_in_the_lock_pulls_in_a_second_onnxruntime(pins) -> None:
    locked = _pins_file(REPO / "docker" / "constraints.txt")
    assert not set(locked) & {pins.canonical(n) for n in pins.ORT_DISTRIBUTIONS}


def test_ort_gpu_pin_file_holds_only_onnxruntime_gpu() -> None:
    assert list(_pins_file(REPO / "docker" / "ort-gpu.txt")) == ["onnxruntime-gpu"]


def test_apt_sets_are_apt_txt_and_the_distribution_twins_of_ros_txt(pins) -> None:
    apt = _names(REQ / "apt.txt")
    excluded = _names(REPO / "docker" / "apt-runtime-exclude.txt")
    ros = [name for name in _pins_file(REQ / "ros.txt") if name.startswith("ros-")]
    ros_apt = [f"ros-kilted-{name[4:]}" for name in ros]
    build = _run_pins("apt", "--stage", "build", "--ros-distro", "kilted")
    runtime = _run_pins("apt", "--stage", "runtime", "--ros-distro", "kilted")
    assert set(excluded) <= set(apt), "docker/apt-runtime-exclude.txt names a package apt.txt does not"
    assert set(build) == set(apt) | set(ros_apt) | {"python3-colcon-common-extensions"}
    assert set(runtime) == (set(apt) - set(excluded)) | set(ros_apt)
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9+.-]*", name) for name in build)


def test_pin_errors_name_the_file_line_and_problem(pins, tmp_path: Path) -> None:
    loose = tmp_path / "loose.txt"
    loose.write_text("# ok\nnumpy==2.4.6\nonnxruntime>=1.20\n")
    expected = r"loose.txt:3: expected an exact pin 'name==version', got 'onnxruntime>=1.20'"
    with pytest.raises(pins.PinError, match=expected):
        pins.read_pins(loose)
    twice = tmp_path / "twice.txt"
    twice.write_text("PyYAML==6.0.4\npyyaml==6.0.4\n")
    with pytest.raises(pins.PinError, match="pinned twice"):
        pins.read_pins(twice)
    with pytest.raises(pins.PinError, match="--ros-distro"):
        pins.ros_apt_packages("Kilted Kaiju", "build")


def test_lock_is_current_and_only_adds_versions(pins) -> None:
    """docker/constraints.txt was resolved from today's pin files (else: python docker/pins.py lock)."""
    lock = REPO / "docker" / "constraints.txt"
    assert pins.read_lock_digest(lock) == pins.lock_inputs_digest(), (
        "requirements/runtime.txt, ros.txt or docker/ort-gpu.txt changed since docker/constraints.txt was "
        "generated; run  python docker/pins.py lock"
    )
    locked = _pins_file(lock)
    top = set(_pins_file_from_lines(_run_pins("pip", "--flavour", "cpu"))) | {"onnxruntime-gpu"}
    assert locked and not set(locked) & top, "the lock must not repeat a pin of the pin files"


def test_dockerfiles_name_no_versions_and_install_only_through_pins_py(dockerfiles) -> None:
    for flavour, instructions in dockerfiles.items():
        runs = [ins.args for ins in instructions if ins.keyword == "RUN"]
        text = "\n".join(runs)
        assert not re.search(r"[A-Za-z0-9]==\d", text), f"{flavour}: a version pin written in the Dockerfile"
        assert not re.search(r"apt-get install[^|&]*=\d", text), f"{flavour}: an apt version written in the Dockerfile"
        pip_installs = [r for r in runs if re.search(r"pip install", r)]
        assert pip_installs, flavour
        for run in pip_installs:
            for command in re.findall(r"pip install[^&]*", run):
                pinned = all(part in command for part in (
                    "-r /opt/qt/requirements/image.txt", "-c /opt/qt/docker/constraints.txt", "--only-binary=:all:"))
                local = "--no-deps" in command and "src/qt_common" in command
                assert pinned or local, f"{flavour}: pip install outside the pins: {command}"
        assert f"pins.py pip --flavour {flavour} > /opt/qt/requirements/image.txt" in text
        assert "pins.py apt --stage build" in text and "pins.py apt --stage runtime" in text


def test_images_use_the_distribution_of_the_pip_wheels(dockerfiles) -> None:
    """Kilted: requirements/ros.txt pins the Kilted wheels (rclpy 9.x; Jazzy is 7.x, Rolling 10.x)."""
    assert _pins_file(REQ / "ros.txt")["ros-rclpy"].split(".")[0] == "9"
    for flavour, instructions in dockerfiles.items():
        assert global_args(instructions)["ROS_DISTRO"] == "kilted", flavour
    assert global_args(dockerfiles["cpu"])["ROS_IMAGE"] == "ros:${ROS_DISTRO}-ros-base-noble"
    assert "ubuntu24.04" in global_args(dockerfiles["cuda"])["CUDA_IMAGE"]  # Kilted's platform: Ubuntu noble


def _pins_file_from_lines(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        name, version = line.split("==")
        out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out
