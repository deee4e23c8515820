"""docker/compose.yaml and the docker lines of docs/DOCKER.md start things that exist.

No Docker engine here, so the file is read as YAML (merge keys and `${VAR:-default}` resolved
the way Compose does) and every `ros2 run` / `ros2 launch` it or the docs contain is checked
against the packages: the console script is declared in setup.py, the launch file exists and
declares each `name:=` argument, each `-p name:=` parameter is declared by the package.
"""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "compose.yaml"
DOCS = REPO / "docs" / "DOCKER.md"
_DEFAULT = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _resolve(text: str) -> str:
    """Compose interpolation with every variable unset: ${X:-d} -> d, ${X} -> ''."""
    return _DEFAULT.sub(lambda m: m.group(2) or "", text)


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _console_scripts(package: str) -> set[str]:
    text = (REPO / "src" / package / "setup.py").read_text()
    return set(re.findall(r'"(\w+)\s*=\s*[\w.]+:\w+"', text))


def _package_source(package: str) -> str:
    root = REPO / "src" / package
    return "\n".join(p.read_text() for p in root.rglob("*") if p.suffix in (".py", ".yaml") and p.is_file())


def check_ros2_command(words: list[str]) -> str:
    """Raise AssertionError if a `ros2 run|launch ...` command refers to something missing."""
    assert words[0] == "ros2" and words[1] in ("run", "launch"), words
    package, target, rest = words[2], words[3], words[4:]
    assert (REPO / "src" / package / "package.xml").is_file(), f"{package}: not a package of src/"
    if words[1] == "run":
        assert target in _console_scripts(package), f"{package} declares no console script {target!r}"
        if "--ros-args" in rest:
            args = rest[rest.index("--ros-args") + 1:]
            for flag, value in itertools.pairwise(args):
                if flag == "-p":
                    name = value.split(":=")[0]
                    assert f'"{name}"' in _package_source(package), f"{package} {target}: no parameter {name!r}"
    else:
        launch = REPO / "src" / package / "launch" / target
        assert launch.is_file(), f"{launch} missing"
        text = launch.read_text()
        for arg in rest:
            if ":=" in arg:
                name = arg.split(":=")[0]
                assert re.search(rf'DeclareLaunchArgument\(\s*"{name}"', text), f"{target} declares no {name!r}"
    return f"{words[1]} {package} {target}"


def test_the_three_jobs_are_there(services) -> None:
    assert {"demo", "sim", "expert", "recorder", "keyboard", "robot", "robot-gpu"} == set(services)


def test_every_command_starts_something_that_exists(services) -> None:
    checked = [check_ros2_command([_resolve(w) for w in service["command"]]) for service in services.values()]
    assert len(checked) == len(services)


@pytest.mark.parametrize("name", ["demo", "sim", "expert", "recorder", "keyboard", "robot", "robot-gpu"])
def test_images_are_built_from_the_project_dockerfiles(services, name: str) -> None:
    service = services[name]
    flavour = service["image"].split(":")[1]
    assert service["image"] == f"qt-robot:{flavour}" and flavour in ("cpu", "cuda")
    dockerfile = service["build"]["dockerfile"]
    assert dockerfile == ("docker/Dockerfile" if flavour == "cpu" else "docker/Dockerfile.cuda")
    assert (COMPOSE.parent / service["build"]["context"] / dockerfile).resolve().is_file()
    assert service.get("init") is True and service.get("stop_signal") == "SIGINT"
    assert not service.get("privileged") and service.get("restart", "no") == "no"
    assert not service.get("ports"), "DDS needs no published ports; host networking is for the robot"


def test_sim_demo_runs_sim_and_policy_in_one_container(services) -> None:
    demo = services["demo"]
    assert demo["command"][:4] == ["ros2", "launch", "qt_policy_node", "run.launch.py"]
    assert "sim:=true" in demo["command"]
    assert "network_mode" not in demo and "profiles" not in demo  # `docker compose up demo`, bridge network
    assert demo["shm_size"]  # Fast DDS 16 MB shared-memory segments; Docker's default /dev/shm is 64 MB


def test_collection_shares_the_sim_container_namespaces_and_writes_bags_to_the_host(services) -> None:
    assert services["sim"]["ipc"] == "shareable" and services["sim"]["shm_size"]
    for name in ("expert", "recorder", "keyboard"):
        assert services[name]["network_mode"] == "service:sim" and services[name]["ipc"] == "service:sim", name
        assert services[name]["depends_on"] == ["sim"]
    recorder = services["recorder"]
    output = next(w.split(":=")[1] for w in recorder["command"] if w.startswith("output_dir:="))
    mounts = [_resolve(v).split(":") for v in recorder["volumes"]]
    assert any(output == target or output.startswith(target + "/") for _, target in mounts), (output, mounts)
    host = next(source for source, target in mounts if output.startswith(target))
    assert (COMPOSE.parent / host).resolve() == REPO / "bags"  # .dockerignore keeps it out of the context
    assert services["keyboard"]["stdin_open"] and services["keyboard"]["tty"]
    assert recorder["stop_signal"] == "SIGINT" and recorder["stop_grace_period"]  # the open bag gets closed


@pytest.mark.parametrize("name", ["robot", "robot-gpu"])
def test_robot_services_use_the_robot_network_settings(services, name: str) -> None:
    service = services[name]
    assert service["network_mode"] == "host" and service["ipc"] == "host"
    env = {k: _resolve(str(v)) for k, v in service["environment"].items()}
    assert env["QT_ROBOT_NETWORK"] == "1" and env["ROS_DOMAIN_ID"]
    assert "${ROS_DOMAIN_ID" in str(service["environment"]["ROS_DOMAIN_ID"]), "the robot's domain must be settable"
    targets = {_resolve(v).split(":")[1] for v in service["volumes"]}
    assert "/opt/qt/config" in targets  # config/fastdds_robot.xml editable without a rebuild


def test_gpu_service_asks_for_the_gpu_and_the_cuda_parameters(services) -> None:
    service = services["robot-gpu"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert "params_file:=/opt/qt/params/run-cuda.yaml" in [_resolve(w) for w in service["command"]]
    assert "params_file:=/opt/qt/ws/share/qt_policy_node/config/run.yaml" in [
        _resolve(w) for w in services["robot"]["command"]]


def test_default_model_is_the_one_the_images_ship(services) -> None:
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert "QT_ROBOT_ROOT=/opt/qt" in dockerfile and "COPY models/ /opt/qt/models/" in dockerfile
    for name in ("demo", "robot", "robot-gpu"):
        model = next(_resolve(w) for w in services[name]["command"] if w.startswith("model:="))
        assert model == "model:=/opt/qt/models/default", name


def test_no_secrets_in_compose_or_dockerfiles() -> None:
    for path in (COMPOSE, REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.cuda"):
        assert not re.search(r"(?i)(password|passwd|token|secret|api_key|private_key)\s*[:=]", path.read_text()), path


def test_docker_lines_of_the_docs_start_things_that_exist() -> None:
    text = DOCS.read_text()
    commands = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split(" #")[0]) if "ros2 " in line else []
            if "ros2" in words and words[words.index("ros2") + 1:words.index("ros2") + 2] in (["run"], ["launch"]):
                commands.append(check_ros2_command([_resolve(w) for w in words[words.index("ros2"):]]))
    assert len(commands) >= 4, commands


def test_command_check_catches_a_wrong_name() -> None:
    with pytest.raises(AssertionError, match="no console script 'simdriver'"):
        check_ros2_command(["ros2", "run", "qt_sim", "simdriver"])
    with pytest.raises(AssertionError, match="declares no 'modle'"):
        check_ros2_command(["ros2", "launch", "qt_policy_node", "run.launch.py", "modle:=/x"])
    with pytest.raises(AssertionError, match="no parameter 'outputdir'"):
        check_ros2_command(["ros2", "run", "qt_data_logger", "recorder", "--ros-args", "-p", "outputdir:=/x"])
