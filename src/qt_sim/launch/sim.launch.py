"""The simulated arm, optionally with the scripted-expert operator.

    ros2 launch qt_sim sim.launch.py
    ros2 launch qt_sim sim.launch.py expert:=true          # expert collects episodes back to back

Thin on purpose: behaviour lives in the nodes and in config/*.yaml. Without the ros2 CLI (a
pip-only machine) start the same nodes with  python -m qt_sim.driver_node  and
python -m qt_sim.expert_teleop  (docs/SIM.md). The driver's exit ends the launch (exit code 1
when it failed).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from qt_common.launch_required import shutdown_when_exits


def generate_launch_description() -> LaunchDescription:
    config = FindPackageShare("qt_sim")
    namespace = LaunchConfiguration("namespace")
    driver = Node(package="qt_sim", executable="sim_driver", name="sim_driver", namespace=namespace,
                  output="screen", parameters=[LaunchConfiguration("driver_params")])
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
        DeclareLaunchArgument("expert", default_value="false", choices=["true", "false"],
                              description="also start the scripted-expert teleop node"),
        DeclareLaunchArgument("driver_params", description="parameter YAML of the sim driver",
                              default_value=PathJoinSubstitution([config, "config", "sim_driver.yaml"])),
        DeclareLaunchArgument("expert_params", description="parameter YAML of the expert teleop",
                              default_value=PathJoinSubstitution([config, "config", "expert_teleop.yaml"])),
        driver,
        shutdown_when_exits(driver, "there is no arm without the sim driver"),
        Node(package="qt_sim", executable="expert_teleop", name="expert_teleop", namespace=namespace,
             output="screen", parameters=[LaunchConfiguration("expert_params")],
             condition=IfCondition(LaunchConfiguration("expert"))),
    ])
