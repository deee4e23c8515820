"""Run the policy on the robot, optionally with the simulated arm and the episode recorder.

    ros2 launch qt_policy_node run.launch.py
    ros2 launch qt_policy_node run.launch.py model:=/path/to/models/mine sim:=true record:=true

Kept thin on purpose: every decision lives in the nodes and in config/run.yaml, which
`qt run` (the same nodes in one process, for machines without the ros2 CLI) loads as well.
The policy node configures and activates itself when ``autostart`` is true, and exits with
an error naming the problem when the model is missing or does not fit the configuration.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    model = LaunchConfiguration("model")
    params_file = LaunchConfiguration("params_file")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    arguments = [
        DeclareLaunchArgument(
            "model",
            default_value=PathJoinSubstitution([EnvironmentVariable("QT_ROBOT_ROOT", default_value="."),
                                                "models", "default"]),
            description="policy directory (policy.onnx + policy.json); default: the shipped model",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("qt_policy_node"), "config", "run.yaml"]),
            description="parameter YAML for every node started here",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
        DeclareLaunchArgument("sim", default_value="false", choices=["true", "false"],
                              description="also start the MuJoCo arm (qt_sim sim_driver)"),
        DeclareLaunchArgument("record", default_value="false", choices=["true", "false"],
                              description="also start the episode recorder (qt_data_logger recorder)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="run every node on /clock"),
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
    sim = Node(
        package="qt_sim",
        executable="sim_driver",
        name="sim_driver",
        namespace=namespace,
        output="screen",
        parameters=[params_file, {"use_sim_time": use_sim_time}],
        condition=IfCondition(LaunchConfiguration("sim")),
    )
    recorder = Node(
        package="qt_data_logger",
        executable="recorder",
        name="recorder",
        namespace=namespace,
        output="screen",
        parameters=[params_file, {"use_sim_time": use_sim_time}],
        condition=IfCondition(LaunchConfiguration("record")),
    )
    return LaunchDescription([*arguments, policy, sim, recorder])
