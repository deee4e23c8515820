"""Shape of the two images: same stages and steps, non-root, entrypoint + default command.

docker/Dockerfile.cuda repeats docker/Dockerfile on another base (Docker has no includes); this
pins the differences to the documented ones, so a fix made in one file cannot miss the other.
"""

from __future__ import annotations

import json

from helpers.dockerfiles import Instruction, expand, global_args, stages

DEFAULT_CMD = ["ros2", "launch", "qt_policy_node", "run.launch.py"]


def _steps(instructions: list[Instruction], flavour: str) -> list[tuple[str, str, str]]:
    """(stage, keyword, args) of the build and runtime stages, the flavour name neutralised."""
    out = []
    for ins in instructions:
        if ins.stage in ("build", "runtime"):
            args = ins.args.replace(f"--flavour {flavour}", "--flavour <f>")
            args = args.replace(f"QT_IMAGE_FLAVOUR={flavour}", "QT_IMAGE_FLAVOUR=<f>")
            out.append((ins.stage, ins.keyword, args))
    return out


def test_same_stages_in_both_images(dockerfiles) -> None:
    for flavour, instructions in dockerfiles.items():
        assert list(stages(instructions)) == ["base", "build", "runtime"], flavour
        assert stages(instructions)["build"] == stages(instructions)["runtime"] == "base", flavour


def test_build_and_runtime_stages_differ_only_where_documented(dockerfiles) -> None:
    cpu = _steps(dockerfiles["cpu"], "cpu")
    cuda = _steps(dockerfiles["cuda"], "cuda")
    cuda_only = [s for s in cuda if "params" in s[2] and s[1] != "CMD"]
    assert [s[2].split()[0] for s in cuda_only] == [  # derive run-cuda.yaml, copy it to the runtime stage
        "docker/cuda_params.py", "/opt/qt/venv/bin/python3", "--from=build"]
    assert [s for s in cuda if s not in cuda_only and s[1] != "CMD"] == [s for s in cpu if s[1] != "CMD"]


def test_default_command_is_the_policy_launch(dockerfiles) -> None:
    cmds = {f: json.loads(next(i.args for i in ins if i.keyword == "CMD")) for f, ins in dockerfiles.items()}
    assert cmds["cpu"] == DEFAULT_CMD
    assert cmds["cuda"] == [*DEFAULT_CMD, "params_file:=/opt/qt/params/run-cuda.yaml"]


def test_ros_environment_comes_from_the_entrypoint(dockerfiles) -> None:
    for flavour, instructions in dockerfiles.items():
        entrypoints = [json.loads(i.args) for i in instructions if i.keyword == "ENTRYPOINT"]
        assert entrypoints == [["/opt/qt/docker/entrypoint.sh"]], flavour


def test_nodes_run_as_a_numeric_non_root_user(dockerfiles) -> None:
    for flavour, instructions in dockerfiles.items():
        runtime = [i for i in instructions if i.stage == "runtime"]
        args = dict(i.args.partition("=")[::2] for i in runtime if i.keyword == "ARG")
        users = [expand(i.args, args) for i in runtime if i.keyword == "USER"]
        assert users == ["1000:1000"], (flavour, users)
        last = [i.keyword for i in runtime if i.keyword in ("USER", "RUN", "ENTRYPOINT", "CMD")]
        assert last.index("USER") < last.index("ENTRYPOINT"), flavour
        assert "useradd --uid" in "\n".join(i.args for i in runtime if i.keyword == "RUN")


def test_images_check_themselves_as_the_last_build_step(dockerfiles) -> None:
    for flavour, instructions in dockerfiles.items():
        last_run = [i.args for i in instructions if i.keyword == "RUN"][-1]
        assert last_run.startswith("/opt/qt/docker/entrypoint.sh python3 /opt/qt/docker/check_image.py"), flavour
        assert "run.launch.py --show-args" in last_run, flavour


def test_base_images_are_official_and_tagged(dockerfiles) -> None:
    cpu = expand(stages(dockerfiles["cpu"])["base"], global_args(dockerfiles["cpu"]))
    cuda = expand(stages(dockerfiles["cuda"])["base"], global_args(dockerfiles["cuda"]))
    assert cpu == "ros:kilted-ros-base-noble"  # Docker Official Image "ros"
    assert cuda.startswith("nvidia/cuda:13.") and cuda.endswith("-cudnn-runtime-ubuntu24.04")
