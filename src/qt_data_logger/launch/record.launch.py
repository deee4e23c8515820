"""Start the episode recorder with the package's parameter file.

    ros2 launch qt_data_logger record.launch.py
    ros2 launch qt_data_logger record.launch.py output_dir:=/data/bags operator:=alice

Bags go to ``output_dir`` (default ``$QT_ROBOT_ROOT/bags``, never wherever launch was started
from). An episode is recorded only once every topic of ``required_topics`` (config/recorder.yaml)
has delivered a message; the recorder's exit ends the launch (exit code 1 when it failed).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from qt_common.launch_required import shutdown_when_exits


def generate_launch_description() -> LaunchDescription:
    recorder = Node(
        package="qt_data_logger",
        executable="recorder",
        name="recorder",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "output_dir": ParameterValue(LaunchConfiguration("output_dir"), value_type=str),
                "operator": ParameterValue(LaunchConfiguration("operator"), value_type=str),
            },
        ],
    )
    return LaunchDescription([
        DeclareLaunchArgument(
            "output_dir",
            default_value=PathJoinSubstitution([EnvironmentVariable("QT_ROBOT_ROOT", default_value="."), "bags"]),
            description="folder the episode bags are written into",
        ),
        DeclareLaunchArgument("operator", default_value="", description="operator name written into each bag"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("qt_data_logger"), "config", "recorder.yaml"]),
            description="the recorder's parameter YAML",
        ),
        recorder,
        shutdown_when_exits(recorder, "no episodes are recorded"),
    ])
