"""Teleoperated demonstration collection on any arm: the recorder plus the keyboard teleop.

    ros2 launch launch/collect_teleop.launch.py instruction:="pick up the red cube"
    ros2 launch launch/collect_teleop.launch.py camera_topic:=/usb_cam/image_raw teleop:=none

Driver-agnostic: the arm's driver (or ``ros2 launch qt_sim sim.launch.py``) runs on its own; the
remaps of robot_topics.launch.py put its camera and state topics under the contract's names.
The operator's keys (qt_sim keyboard_teleop, in ``events`` mode): ``n`` starts an episode with
``instruction``, ``y`` ends it as success, ``u`` as failure, ``x`` discards it. The keyboard needs
a terminal: by default it opens in ``xterm`` (``teleop_prefix``); ``teleop:=none`` starts only
the recorder, for a teleop run by hand (``ros2 run qt_sim keyboard_teleop``). The recorder's exit,
or the teleop's, ends the launch (exit code 1 when it failed).
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EqualsSubstitution, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from qt_common.launch_required import shutdown_when_exits


def generate_launch_description() -> LaunchDescription:
    record = PathJoinSubstitution([FindPackageShare("qt_data_logger"), "launch", "record.launch.py"])
    topics = str(Path(__file__).with_name("robot_topics.launch.py"))  # a plain path: --show-args lists its arguments
    teleop = Node(
        package="qt_sim", executable="keyboard_teleop", name="keyboard_teleop", output="screen",
        prefix=LaunchConfiguration("teleop_prefix"),
        parameters=[{"episode_mode": "events", "instruction": LaunchConfiguration("instruction")}],
        condition=IfCondition(EqualsSubstitution(LaunchConfiguration("teleop"), "keyboard")),
    )
    return LaunchDescription([
        DeclareLaunchArgument("instruction", default_value="", description="instruction of the episodes started"),
        DeclareLaunchArgument("teleop", default_value="keyboard", choices=["keyboard", "none"],
                              description="keyboard: start the keyboard teleop; none: only the recorder"),
        DeclareLaunchArgument("teleop_prefix", default_value="xterm -e",
                              description="command that gives the keyboard teleop a terminal"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(topics)),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(record)),
        teleop,
        shutdown_when_exits(teleop, "nobody drives or labels the episodes"),
    ])
