"""The policy on a real arm, with the episode recorder (no sim).

    ros2 launch launch/robot.launch.py model:=models/mine camera_topic:=/usb_cam/image_raw
    ros2 launch launch/robot.launch.py record:=false

A thin composition: the topic remaps of robot_topics.launch.py (a real arm's camera and driver
topics onto the contract's names), then qt_policy_node's run.launch.py with ``sim:=false`` and
``record:=true`` by default. A camera of another size than the model card's needs
``resize_images: true`` in the params_file. A node that dies ends the launch with exit code 1.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    run = PathJoinSubstitution([FindPackageShare("qt_policy_node"), "launch", "run.launch.py"])
    topics = str(Path(__file__).with_name("robot_topics.launch.py"))  # a plain path: --show-args lists its arguments
    return LaunchDescription([
        DeclareLaunchArgument("record", default_value="true", choices=["true", "false"],
                              description="record every episode (qt_data_logger recorder)"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(topics)),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(run),
                                 launch_arguments={"sim": "false", "record": LaunchConfiguration("record")}.items()),
    ])
