"""Remaps from the contract's topic names to a real arm's (included by robot.launch.py and
collect_teleop.launch.py; not meant to be run alone).

Every node started after this include, in the including launch file, sees the remaps (SetRemap
acts on the launch context, and an included Python launch file shares its includer's scope).
Defaults are the contract names (docs/CONTRACTS.md), so nothing changes unless an argument is set:

    camera_topic:=/usb_cam/image_raw  joint_states_topic:=/arm/joint_states
    twist_topic:=/servo_node/delta_twist_cmds  gripper_topic:=/gripper_controller/command
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import SetRemap

# argument -> (the contract's topic, what a real arm provides there)
TOPICS = {
    "camera_topic": ("/camera/image_raw", "the arm's camera, sensor_msgs/Image (rgb8/bgr8)"),
    "joint_states_topic": ("/joint_states", "the arm driver's sensor_msgs/JointState"),
    "ee_pose_topic": ("/ee_pose", "end-effector geometry_msgs/PoseStamped (models with proprio)"),
    "twist_topic": ("/servo_node/delta_twist_cmds", "MoveIt Servo's geometry_msgs/TwistStamped input"),
    "gripper_topic": ("/gripper/command", "the gripper driver's std_msgs/Float64 command"),
}


def generate_launch_description() -> LaunchDescription:
    entities = []
    for argument, (contract, description) in TOPICS.items():
        entities.append(DeclareLaunchArgument(argument, default_value=contract, description=description))
        entities.append(SetRemap(src=contract, dst=LaunchConfiguration(argument)))
    return LaunchDescription(entities)
