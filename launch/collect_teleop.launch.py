"""Teleoperated demonstration collection on any arm: the recorder plus a teleop device.

    ros2 launch launch/collect_teleop.launch.py instruction:="pick up the red cube"
    ros2 launch launch/collect_teleop.launch.py teleop:=joy mapping:=gamepad instruction:="pick up the red cube"
    ros2 launch launch/collect_teleop.launch.py teleop:=joy mapping:=spacemouse joy_topic:=/spacenav/joy \
        joy_driver:=false
    ros2 launch launch/collect_teleop.launch.py camera_topic:=/usb_cam/image_raw teleop:=none

Driver-agnostic: the arm's driver (or ``ros2 launch qt_sim sim.launch.py``) runs on its own; the
remaps of robot_topics.launch.py put its camera and state topics under the contract's names.
The teleop nodes (qt_teleop, in ``events`` mode) label the episodes: keyboard ``n`` starts an
episode with ``instruction``, ``y`` ends it as success, ``u`` as failure, ``x`` discards it; a
gamepad (``teleop:=joy``, mapping ``config/joy_gamepad.yaml``) does the same with Start / Y / X /
B while LB (the deadman) is held to move. The keyboard needs a terminal: by default it opens in
``xterm`` (``teleop_prefix``). ``teleop:=joy`` also starts the ROS ``joy`` driver (``joy_driver``;
apt ``ros-$ROS_DISTRO-joy``); a 3D mouse's ``spacenav`` driver is started by hand. ``teleop:=none``
starts only the recorder, for a teleop run by hand (``ros2 run qt_teleop keyboard_teleop``). The
recorder's exit, or the teleop's, ends the launch (exit code 1 when it failed).
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EqualsSubstitution, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from qt_common.launch_required import shutdown_when_exits


def generate_launch_description() -> LaunchDescription:
    record = PathJoinSubstitution([FindPackageShare("qt_data_logger"), "launch", "record.launch.py"])
    topics = str(Path(__file__).with_name("robot_topics.launch.py"))  # a plain path: --show-args lists its arguments
    episodes = {"episode_mode": "events", "instruction": LaunchConfiguration("instruction")}
    keyboard = Node(
        package="qt_teleop", executable="keyboard_teleop", name="keyboard_teleop", output="screen",
        prefix=LaunchConfiguration("teleop_prefix"), parameters=[episodes],
        condition=IfCondition(EqualsSubstitution(LaunchConfiguration("teleop"), "keyboard")),
    )
    gamepad = Node(
        package="qt_teleop", executable="joy_teleop", name="joy_teleop", output="screen",
        parameters=[{**episodes, "mapping": LaunchConfiguration("mapping"),
                     "joy_topic": LaunchConfiguration("joy_topic")}],
    )
    joy_driver = Node(package="joy", executable="joy_node", name="joy_node", output="screen",
                      condition=IfCondition(LaunchConfiguration("joy_driver")))
    joy = GroupAction(
        [gamepad, shutdown_when_exits(gamepad, "nobody drives or labels the episodes"), joy_driver],
        condition=IfCondition(EqualsSubstitution(LaunchConfiguration("teleop"), "joy")),
    )
    return LaunchDescription([
        DeclareLaunchArgument("instruction", default_value="", description="instruction of the episodes started"),
        DeclareLaunchArgument("teleop", default_value="keyboard", choices=["keyboard", "joy", "none"],
                              description="keyboard: the keyboard teleop; joy: gamepad / 3D mouse (sensor_msgs/Joy); "
                              "none: only the recorder"),
        DeclareLaunchArgument("teleop_prefix", default_value="xterm -e",
                              description="command that gives the keyboard teleop a terminal"),
        DeclareLaunchArgument("mapping", default_value="gamepad",
                              description="teleop:=joy: gamepad | spacemouse (qt_teleop config/joy_*.yaml) or a path"),
        DeclareLaunchArgument("joy_topic", default_value="joy", description="teleop:=joy: the sensor_msgs/Joy topic"),
        DeclareLaunchArgument("joy_driver", default_value="true", choices=["true", "false"],
                              description="teleop:=joy: also start the ROS joy driver (joy joy_node)"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(topics)),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(record)),
        keyboard,
        shutdown_when_exits(keyboard, "nobody drives or labels the episodes"),
        joy,
    ])
