"""Start the episode recorder with the package's parameter file (ros2 launch qt_data_logger record.launch.py)."""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    params = Path(get_package_share_directory("qt_data_logger")) / "config" / "recorder.yaml"
    return LaunchDescription(
        [
            DeclareLaunchArgument("output_dir", default_value="bags"),
            DeclareLaunchArgument("operator", default_value=""),
            Node(
                package="qt_data_logger",
                executable="recorder",
                name="recorder",
                output="screen",
                parameters=[
                    str(params),
                    {"output_dir": LaunchConfiguration("output_dir"), "operator": LaunchConfiguration("operator")},
                ],
            ),
        ]
    )
