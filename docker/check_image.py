#!/usr/bin/env python3
"""Self-check of a qt-robot image (or of any environment built from the same pins).

The Dockerfiles run it as the last build step, as the non-root user, so an image that would
fail at start-up (a pin not installed, both ONNX Runtime flavours present, the apt NumPy 1.x
shadowing the pinned NumPy 2, a message package that cannot convert under that NumPy, a node
script pointing at the wrong interpreter, missing Mesa libraries) is never produced.
tests/docker runs it in the development venv too. With --provider it is also the GPU check of
docs/DOCKER.md:

    docker run --rm --gpus all qt-robot:cuda python3 /opt/qt/docker/check_image.py \
        --only provider --provider CUDAExecutionProvider

Prints one line per check and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pins  # the same pin logic the Dockerfiles install from

WORKSPACE_PACKAGES = ("qt_msgs", "qt_policy_node", "qt_sim", "qt_data_logger", "qt_eval", "qt_teleop")
# Console scripts the compose file, the docs and the launch file start.
EXECUTABLES = {
    "qt_policy_node": ("policy_node",),
    "qt_sim": ("sim_driver", "expert_teleop"),
    "qt_data_logger": ("recorder",),
    "qt_teleop": ("keyboard_teleop", "joy_teleop"),
    "qt_eval": ("robot_eval",),
}
LAUNCH_FILE = ("qt_policy_node", "launch/run.launch.py")
RUNTIME_MODULES = ("numpy", "onnxruntime", "cv2", "mujoco", "rosbags", "mcap_ros2", "tokenizers", "yaml",
                   "gymnasium", "transforms3d", "PIL", "qt_common.action_spec")


class CheckFailed(Exception):
    """One check's finding, printed as its failure reason."""


def check_pins(flavour: str) -> str:
    wrong = []
    wanted = pins.pip_requirements(flavour)
    for line in wanted:
        name, version = line.split("==")
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "missing"
        if have != version:
            wrong.append(f"{name}: want {version}, have {have}")
    if wrong:
        raise CheckFailed("; ".join(wrong))
    return f"{len(wanted)} pins of the {flavour} image installed at their exact versions"


def check_one_ort(flavour: str) -> str:
    installed = []
    for name in pins.ORT_DISTRIBUTIONS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            installed.append(f"{name}=={metadata.version(name)}")
    expected = pins.ORT_GPU if flavour == "cuda" else pins.ORT_CPU
    if len(installed) != 1 or not installed[0].startswith(expected + "=="):
        raise CheckFailed(f"expected only {expected}, found {installed or 'none'}")
    import onnxruntime as ort

    available = ort.get_available_providers()
    if flavour == "cuda" and "CUDAExecutionProvider" not in available:
        raise CheckFailed(f"{installed[0]} does not offer CUDAExecutionProvider (available: {available})")
    return f"{installed[0]} only; providers compiled in: {', '.join(available)}"


def check_numpy() -> str:
    import numpy

    want = dict(line.split("==") for line in pins.pip_requirements("cpu"))["numpy"]
    if numpy.__version__ != want:
        raise CheckFailed(f"`import numpy` loads {numpy.__version__} from {numpy.__file__}, the pin is {want} "
                          "(is the distribution's python3-numpy shadowing the venv?)")
    return f"numpy {numpy.__version__} from {Path(numpy.__file__).parent}"


def check_messages() -> str:
    """Round trip through the C conversion code of distribution-built and workspace-built messages."""
    import numpy as np
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo, Image

    from qt_msgs.msg import ArmAction, PolicyStatus

    info = CameraInfo()
    info.k = np.arange(9, dtype=np.float64) * 0.5  # fixed-size array: the path that touches NumPy's structs
    info.d = [0.1, -0.2, 0.0, 0.0, 0.01]
    image = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(range(18)))
    action = ArmAction(dimension_names=["dx", "gripper"], values=[0.01, -1.0], bins=[200, 0], num_bins=256)
    status = PolicyStatus(model_id="m", execution_provider="CPUExecutionProvider", bins=[1, 2], q_values=[0.5, 1.0])
    for message in (info, image, action, status):
        back = deserialize_message(serialize_message(message), type(message))
        if back != message:
            raise CheckFailed(f"{type(message).__name__} changed in a serialize/deserialize round trip")
    return f"CameraInfo, Image, ArmAction, PolicyStatus round-trip under numpy {np.__version__}"


def _shebang_interpreter(script: Path) -> Path:
    first = script.read_bytes().split(b"\n", 1)[0].decode(errors="replace")
    if not first.startswith("#!"):
        raise CheckFailed(f"{script}: no #! line")
    return Path(first[2:].strip().split()[0])


def check_workspace() -> str:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory

    venv_bin = Path(sys.prefix) / "bin"
    found = []
    for package in WORKSPACE_PACKAGES:
        try:
            prefix = Path(get_package_prefix(package))
        except PackageNotFoundError as exc:
            raise CheckFailed(f"ament index does not know {package} (workspace not sourced?)") from exc
        for executable in EXECUTABLES.get(package, ()):
            script = prefix / "lib" / package / executable
            if not (script.is_file() and os.access(script, os.X_OK)):
                raise CheckFailed(f"{script}: console script missing or not executable")
            interpreter = _shebang_interpreter(script)
            if interpreter.parent != venv_bin:
                raise CheckFailed(f"{script} runs {interpreter}, not this environment's Python in {venv_bin}; "
                                  "it would not see the pinned packages")
            found.append(executable)
    launch = Path(get_package_share_directory(LAUNCH_FILE[0])) / LAUNCH_FILE[1]
    if not launch.is_file():
        raise CheckFailed(f"{launch} missing")
    return f"{len(WORKSPACE_PACKAGES)} packages, scripts {', '.join(found)} on {venv_bin.parent}, {LAUNCH_FILE[1]}"


def check_imports() -> str:
    import importlib

    for module in RUNTIME_MODULES:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any import-time failure is the finding
            raise CheckFailed(f"import {module}: {type(exc).__name__}: {exc}") from exc
    return f"{len(RUNTIME_MODULES)} runtime modules import"


def check_render() -> str:
    """One frame through the simulator's headless GL selection (Mesa EGL, else OSMesa)."""
    from qt_sim.gl import select_gl_backend

    backend = select_gl_backend()
    import mujoco

    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><light pos='0 0 2'/>"
        "<geom type='box' size='.2 .2 .2' rgba='1 0 0 1'/></worldbody></mujoco>"
    )
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    renderer = mujoco.Renderer(model, 16, 16)
    try:
        renderer.update_scene(data)
        frame = renderer.render()
    finally:
        renderer.close()
    if frame.shape != (16, 16, 3) or not frame.any():
        raise CheckFailed(f"rendered frame {frame.shape} is empty")
    return f"MuJoCo rendered a 16x16 frame with MUJOCO_GL={backend}"


def _major(version: str) -> str:
    return re.split(r"[.:~+-]", version.split(":")[-1])[0]


def check_ros_apt(ros_distro: str) -> str:
    """The distribution's ROS packages belong to the same release series as the pip wheels' pins."""
    if not ros_distro or shutil.which("dpkg-query") is None:
        raise CheckFailed("needs ROS_DISTRO (or --ros-distro) and dpkg-query: it compares an image's "
                          "distribution packages with requirements/ros.txt")
    mismatched, compared = [], 0
    for name, version in pins.read_pins(pins.REQUIREMENTS / "ros.txt"):
        if not name.startswith("ros-"):
            continue
        package = f"ros-{ros_distro}-{name[4:]}"
        result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
        if result.returncode != 0 or not result.stdout:
            raise CheckFailed(f"{package} is not installed")
        compared += 1
        if _major(result.stdout) != _major(version):
            mismatched.append(f"{package} {result.stdout} vs wheel pin {version}")
    if mismatched:
        raise CheckFailed("major versions differ from requirements/ros.txt (another ROS distribution?): "
                          + "; ".join(mismatched))
    return f"{compared} ROS packages of {ros_distro} match the major versions of requirements/ros.txt"


def check_model(models: Path) -> str:
    default = models / "default"
    missing = [name for name in ("policy.onnx", "policy.json") if not (default / name).is_file()]
    if missing:
        raise CheckFailed(f"{default}: missing {missing}; the image ships models/default (see docs/DOCKER.md)")
    return f"{default} has policy.onnx + policy.json"


def check_provider(models: Path, provider: str) -> str:
    """Open the shipped model with `provider` first and report which provider ONNX Runtime runs."""
    import onnxruntime as ort

    onnx_path = models / "default" / "policy.onnx"
    if not onnx_path.is_file():
        raise CheckFailed(f"{onnx_path} missing")
    session = ort.InferenceSession(str(onnx_path), providers=[provider, "CPUExecutionProvider"])
    running = session.get_providers()
    if running[0] != provider:
        raise CheckFailed(f"asked for {provider}, ONNX Runtime runs {running[0]} (session providers {running}); "
                          "for CUDA start the container with --gpus all on a host with the NVIDIA Container Toolkit")
    return f"ONNX Runtime runs {running[0]} for {onnx_path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flavour", choices=("cpu", "cuda"), default=os.environ.get("QT_IMAGE_FLAVOUR", "cpu"))
    parser.add_argument("--models", type=Path,
                        default=Path(os.environ.get("QT_ROBOT_ROOT", pins.ROOT)) / "models")
    parser.add_argument("--ros-distro", default=os.environ.get("ROS_DISTRO", ""),
                        help="compare the distribution's ROS packages (dpkg) with requirements/ros.txt")
    parser.add_argument("--provider", help="open the shipped model with this execution provider first")
    parser.add_argument("--skip", action="append", default=[], help="leave out a check (repeatable)")
    parser.add_argument("--only", action="append", default=[], help="run only these checks (repeatable)")
    args = parser.parse_args(argv)

    checks: dict[str, Callable[[], str]] = {
        "pins": lambda: check_pins(args.flavour),
        "ort": lambda: check_one_ort(args.flavour),
        "numpy": check_numpy,
        "imports": check_imports,
        "messages": check_messages,
        "workspace": check_workspace,
        "render": check_render,
        "ros-apt": lambda: check_ros_apt(args.ros_distro),
        "model": lambda: check_model(args.models),
    }
    if args.provider:
        checks["provider"] = lambda: check_provider(args.models, args.provider)
    unknown = sorted(set(args.skip + args.only) - set(checks))
    if unknown:
        parser.error(f"--skip/--only: unknown check(s) {unknown}; known: {sorted(checks)}")
    selected = [name for name in checks if name not in args.skip and (not args.only or name in args.only)]
    failed = 0
    for name in selected:
        try:
            print(f"ok    {name:<9} {checks[name]()}", flush=True)
        except CheckFailed as exc:
            failed += 1
            print(f"FAIL  {name:<9} {exc}", flush=True)
    print(f"{len(selected) - failed}/{len(selected)} checks passed ({args.flavour} image)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
