"""Run the policy on the robot, optionally with the simulated arm and the episode recorder.

    ros2 launch qt_policy_node run.launch.py
    ros2 launch qt_policy_node run.launch.py model:=/path/to/models/mine sim:=true record:=true

Kept thin on purpose: every decision lives in the nodes and in config/run.yaml, which
`qt run` (the same nodes in one process, for machines without the ros2 CLI) loads as well.
The policy node configures and activates itself when ``autostart`` is true, and exits with
an error naming the problem when the model is missing or does not fit the configuration;
that exit (or the sim's, or the recorder's) ends the launch with exit code 1.

With ``sim:=true`` the sim's camera takes the model card's image size and it draws only the
tasks whose wordings the card caches (qt_sim.card_fit); with ``use_sim_time:=true`` it
also publishes /clock, which every other node here then runs on.
"""

from pathlib import Path
from typing import Any

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from qt_common.launch_required import shutdown_when_exits


def _sim(context: LaunchContext) -> list[Any]:
    """The sim driver, fitted to the model's card (read when the launch runs, after arguments are known).
    qt_sim is imported only here, so a robot install without the simulator launches the rest."""
    from qt_sim.card_fit import sim_parameters

    sim = Node(
        package="qt_sim",
        executable="sim_driver",
        name="sim_driver",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                **sim_parameters(Path(LaunchConfiguration("model").perform(context))),
                "publish_clock": LaunchConfiguration("use_sim_time").perform(context) == "true",
            },
        ],
    )
    return [sim, shutdown_when_exits(sim, "the policy has no arm to drive")]


def generate_launch_description() -> LaunchDescription:
    model = LaunchConfiguration("model")
    params_file = LaunchConfiguration("params_file")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    root = EnvironmentVariable("QT_ROBOT_ROOT", default_value=".")
    arguments = [
        DeclareLaunchArgument(
            "model",
            default_value=PathJoinSubstitution([root, "models", "default"]),
            description="policy directory (policy.onnx + policy.json); default: the shipped model",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("qt_policy_node"), "config", "run.yaml"]),
            description="parameter YAML for every node started here",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
        DeclareLaunchArgument("sim", default_value="false", choices=["true", "false"],
                              description="also start the MuJoCo arm (qt_sim sim_driver), fitted to the model card"),
        DeclareLaunchArgument("record", default_value="false", choices=["true", "false"],
                              description="also start the episode recorder (qt_data_logger recorder)"),
        DeclareLaunchArgument("bags_dir", default_value=PathJoinSubstitution([root, "bags"]),
                              description="record:=true: folder the episode bags are written into"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="run every node on /clock (with sim:=true the sim publishes it)"),
        DeclareLaunchArgument("autostart", default_value="true", choices=["true", "false"],
                              description="configure and activate the policy node on start"),
    ]
    policy = LifecycleNode(
        package="qt_policy_node",
        executable="policy_node",
        name="policy_node",
        namespace=namespace,
        output="screen",
        parameters=[
            params_file,
            {
                "model_path": ParameterValue(model, value_type=str),
                "use_sim_time": use_sim_time,
                "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
            },
        ],
    )
    recorder = Node(
        package="qt_data_logger",
        executable="recorder",
        name="recorder",
        namespace=namespace,
        output="screen",
        parameters=[params_file, {"use_sim_time": use_sim_time,
                                  "output_dir": ParameterValue(LaunchConfiguration("bags_dir"), value_type=str)}],
        condition=IfCondition(LaunchConfiguration("record")),
    )
    return LaunchDescription([
        *arguments,
        policy,
        shutdown_when_exits(policy, "nothing drives the arm without the policy"),
        OpaqueFunction(function=_sim, condition=IfCondition(LaunchConfiguration("sim"))),
        recorder,
        shutdown_when_exits(recorder, "record:=true asked for episodes that are no longer written"),
    ])
