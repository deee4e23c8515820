"""The simulated arm driven by the policy, optionally recorded: the first thing to run.

    ros2 launch launch/sim_demo.launch.py
    ros2 launch launch/sim_demo.launch.py model:=models/mine record:=true bags_dir:=/data/bags

A thin composition: qt_policy_node's run.launch.py with ``sim:=true`` (the sim's camera and
tasks fitted to the model card). Every argument of run.launch.py passes through
(``--show-args`` lists them); a node that dies ends the launch with exit code 1.
"""

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    run = PathJoinSubstitution([FindPackageShare("qt_policy_node"), "launch", "run.launch.py"])
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(run), launch_arguments={"sim": "true"}.items()),
    ])
