#!/bin/bash
# Entrypoint of the qt-robot images: ROS 2 of the distribution, then the workspace, then the
# project's environment (docker/qt_env.sh), then the command (default: ros2 launch ...).
# `docker run IMAGE bash` gives a shell with all of it set up.
set -eo pipefail
# ROS setup scripts read unset variables, so no `set -u` while sourcing them.
# shellcheck disable=SC1090,SC1091
source "/opt/ros/${ROS_DISTRO:?ROS_DISTRO is not set in this image}/setup.bash"
# shellcheck disable=SC1091
source /opt/qt/ws/local_setup.bash
# shellcheck disable=SC1091
source /opt/qt/docker/qt_env.sh
exec "$@"
