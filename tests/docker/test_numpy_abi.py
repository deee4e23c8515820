"""The images' NumPy decision, reproduced: messages compiled against NumPy 1.x work under NumPy 2.

In the images the distribution's message packages were compiled by the ROS build farm against
Ubuntu 24.04's NumPy 1.26, while the venv imports the pinned NumPy 2 (opencv-python-headless 5
requires numpy>=2). This builds a probe interface package whose generated C code is compiled
against NumPy 1.26 headers (fixed-size numeric arrays: the only code path that touches NumPy's
C structs), then round-trips it under this venv's NumPy 2. docs/DOCKER.md "NumPy" explains why.

Slow (a colcon build) and needs PyPI for the numpy 1.26.4 wheel:  pytest -m slow tests/docker
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NUMPY_1 = "1.26.4"
MSG = "float64[9] k\nuint8[3] c\nint64[4] z\nfloat32[] v\nuint8[] data\nstd_msgs/Header header\n"
PACKAGE_XML = """<?xml version="1.0"?>
<package format="3">
  <name>abi_probe_msgs</name><version>0.0.0</version><description>NumPy ABI probe</description>
  <maintainer email="dev@qt-robot.invalid">qt-robot</maintainer><license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>std_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
"""
CMAKE = """cmake_minimum_required(VERSION 3.8)
project(abi_probe_msgs)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(std_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} "msg/Probe.msg" DEPENDENCIES std_msgs)
ament_package()
"""
PROBE = """
import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from abi_probe_msgs.msg import Probe
m = Probe()
m.k = np.arange(9, dtype=np.float64) * 1.5
m.c = np.array([1, 2, 250], dtype=np.uint8)
m.z = np.array([-5, 0, 7, 2**40], dtype=np.int64)
m.v = [0.5, -1.25]
m.data = bytes(range(200))
m.header.frame_id = "probe"
back = deserialize_message(serialize_message(m), Probe)
assert back == m, (back, m)
assert np.array_equal(back.k, m.k) and back.k.dtype == np.float64
print("ROUND_TRIP_OK numpy", np.__version__)
"""


def _numpy_1_headers(tmp: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "-d", str(tmp), f"numpy=={NUMPY_1}"], check=True, timeout=300)
    wheel = next(tmp.glob(f"numpy-{NUMPY_1}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith("numpy/core/include/"):
                archive.extract(name, tmp / "np1")
    return tmp / "np1" / "numpy" / "core" / "include"


def test_message_compiled_against_numpy_1_round_trips_under_numpy_2(tmp_path: Path) -> None:
    import numpy

    assert int(numpy.__version__.split(".")[0]) >= 2, "this venv should hold the pinned NumPy 2"
    include = _numpy_1_headers(tmp_path)
    package = tmp_path / "ws" / "src" / "abi_probe_msgs"
    (package / "msg").mkdir(parents=True)
    (package / "msg" / "Probe.msg").write_text(MSG)
    (package / "package.xml").write_text(PACKAGE_XML)
    (package / "CMakeLists.txt").write_text(CMAKE)
    ws = tmp_path / "ws"
    subprocess.run(["colcon", "--log-base", str(ws / "log"), "build", "--base-paths", "src",
                    "--event-handlers", "console_direct-", "--cmake-args", "-DBUILD_TESTING=OFF",
                    f"-DPython3_EXECUTABLE={sys.executable}", f"-DPython3_NumPy_INCLUDE_DIR={include}",
                    "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"], cwd=ws, check=True, timeout=600,
                   capture_output=True, text=True)
    commands = json.loads((ws / "build" / "abi_probe_msgs" / "compile_commands.json").read_text())
    support = next(c["command"] for c in commands if c["file"].endswith("_probe_s.c"))
    first_numpy = next(arg for arg in support.split() if "numpy" in arg)
    assert first_numpy == f"-I{include}", f"the probe was not compiled against NumPy {NUMPY_1}: {first_numpy}"
    result = subprocess.run(["bash", "-c", f"source {ws}/install/setup.bash && {sys.executable} -c '{PROBE}'"],
                            capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ROUND_TRIP_OK numpy {numpy.__version__}" in result.stdout
