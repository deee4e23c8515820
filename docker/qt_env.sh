# qt-robot container environment: the network and rendering part of the development env.sh
# (scripts/setup.sh writes that one), for the images. Sourced by entrypoint.sh after ROS 2 and
# the workspace; tests/docker/test_entrypoint.py checks that it makes the same choices as env.sh.
#
# Default: discovery stays inside the container's network namespace (LOCALHOST) with the 16 MB
# shared-memory Fast DDS profile. On a real robot network (docs/DOCKER.md, docs/SETUP.md):
#   QT_ROBOT_NETWORK=1 ROS_DOMAIN_ID=<robot's>   -> SUBNET discovery, config/fastdds_robot.xml
# QT_DISCOVERY_RANGE and QT_FASTDDS_PROFILE override the two choices individually.
# shellcheck shell=bash
QT_ROBOT_ROOT="${QT_ROBOT_ROOT:-/opt/qt}"
export QT_ROBOT_ROOT
# The venv's Python runs everything (its bin/ros2 runs the ROS 2 CLI on it too), so it goes
# in front of /opt/ros/<distro>/bin, which sourcing ROS 2 put first.
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
  export PATH="$VIRTUAL_ENV/bin:$PATH"
fi
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
if [[ "${QT_ROBOT_NETWORK:-0}" == "1" ]]; then
  export ROS_AUTOMATIC_DISCOVERY_RANGE="${QT_DISCOVERY_RANGE:-SUBNET}"
  export FASTDDS_DEFAULT_PROFILES_FILE="${QT_FASTDDS_PROFILE:-$QT_ROBOT_ROOT/config/fastdds_robot.xml}"
else
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  export FASTDDS_DEFAULT_PROFILES_FILE="$QT_ROBOT_ROOT/config/fastdds_localhost.xml"
fi
# Our own domain by default, so a container never joins someone else's default domain 0.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
# Headless MuJoCo rendering through Mesa's software EGL (qt_sim falls back to OSMesa).
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-$MUJOCO_GL}"
