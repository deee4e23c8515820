#!/usr/bin/env bash
# One setup path for a fresh Debian/Ubuntu machine with Python 3.11 (docs/SETUP.md).
#
#   scripts/setup.sh          runtime + training dependencies, colcon build, env.sh
#   scripts/setup.sh --dev    the same plus test and lint tools
#
# Idempotent: every step checks whether it has work to do (a stamp holds the digest of the
# pin files it installed), so a rerun with nothing changed takes seconds. Any failure stops
# the script with what is missing and how to fix it, before later steps half-build on top.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMPS="$VENV/.qt-stamps"
WITH_DEV=0
[[ "${1:-}" == "--dev" ]] && WITH_DEV=1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }
trap 'die "step failed at line $LINENO (see the output above); nothing after it ran."' ERR

find_python() {
  local candidate
  for candidate in "${QT_PYTHON:-}" python3.11 python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

install_apt_packages() {
  # Lines of requirements/apt.txt that are not comments; only missing ones are installed.
  local wanted missing=() pkg
  wanted=$(grep -vE '^\s*(#|$)' "$ROOT/requirements/apt.txt")
  for pkg in $wanted; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && { say "apt packages: all present"; return; }
  command -v apt-get >/dev/null || die "missing system packages: ${missing[*]}; this is not a Debian/Ubuntu machine, install their equivalents by hand."
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "missing system packages: ${missing[*]}; run as root or install sudo."
    sudo="sudo"
  fi
  say "apt packages: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

pin_digest() { cat "$@" | sha256sum | cut -c1-16; }

pip_install() {
  # pip_install NAME REQUIREMENTS [MORE_FILES...]: install a pinned requirements file unless the
  # stamp says this exact content (plus MORE_FILES, e.g. local pyproject.toml) is installed.
  local name="$1" requirements="$2"
  local digest; digest=$(pin_digest "${@:2}")
  if [[ -f "$STAMPS/$name" && "$(cat "$STAMPS/$name")" == "$digest" ]]; then
    say "pip $name: up to date"; return
  fi
  say "pip $name: installing ${requirements#"$ROOT"/}"
  "$VENV/bin/pip" install --disable-pip-version-check -q -r "$requirements"
  echo "$digest" > "$STAMPS/$name"
}

fix_wheel_cmake_paths() {
  # The ROS wheels' exported CMake files name the include dirs of the machine they were built
  # on; point them at this interpreter's (FIELD-NOTES: "Building a rosidl interface package").
  local py_inc np_inc files
  py_inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_inc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  files=$(grep -rl '/opt/python/cp311-cp311' "$VENV"/share/*/cmake/*.cmake 2>/dev/null || true)
  [[ -z "$files" ]] && { say "cmake paths: already fixed"; return; }
  [[ -f "$py_inc/Python.h" ]] || die "Python headers missing at $py_inc; install python3.11-dev (apt) and rerun."
  say "cmake paths: rewriting $(echo "$files" | wc -l) exported CMake files"
  # shellcheck disable=SC2086
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" $files
}

ros_library_path() {
  # The same directories ros_wheels_bootstrapper would add; exporting them (with its guard
  # variable) spares every Python process a re-exec and lets child processes import rclpy.
  local libs
  libs=$(find "$VENV/lib/python3.11/site-packages" -maxdepth 1 -type d -name 'ros_*.libs' | sort | tr '\n' ':')
  echo "$VENV/lib:${libs%:}"
}

colcon_build() {
  say "colcon build"
  (
    set +u
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    export LD_LIBRARY_PATH; LD_LIBRARY_PATH="$(ros_library_path)"
    export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
    cd "$ROOT"
    # A file moved between packages leaves a dangling link in build/ or install/ (symlink
    # install), on which setup.py's copy step fails; such links are always stale.
    find "$ROOT/build" "$ROOT/install" -xtype l -delete 2>/dev/null || true
    # --symlink-install: Python sources of ament_python packages are linked, so edits need no
    # rebuild (only new entry points, launch or config files do).
    # shellcheck disable=SC2086
    colcon --log-base "$ROOT/log" build --base-paths src --build-base build --install-base install \
      --symlink-install --event-handlers console_direct- summary+ ${QT_COLCON_ARGS:-}
  ) || die "colcon build failed; the package's output is above and in log/latest_build/."
}

write_env_file() {
  local ld; ld=$(ros_library_path)
  cat > "$ROOT/env.sh.tmp" <<EOF
# qt-robot environment, written by scripts/setup.sh; source it in every shell:  . ./env.sh
# Network defaults are for one machine (localhost-only discovery, loopback + shared memory).
# On a real robot network run  export QT_ROBOT_NETWORK=1  before sourcing (docs/SETUP.md).
export QT_ROBOT_ROOT="$ROOT"
_qt_nounset=0; [[ \$- == *u* ]] && _qt_nounset=1; set +u
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export AMENT_PREFIX_PATH="$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}"
export LD_LIBRARY_PATH="$ld\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
# shellcheck disable=SC1091
source "$ROOT/install/setup.bash"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
if [[ "\${QT_ROBOT_NETWORK:-0}" == "1" ]]; then
  export ROS_AUTOMATIC_DISCOVERY_RANGE="\${QT_DISCOVERY_RANGE:-SUBNET}"
  export FASTDDS_DEFAULT_PROFILES_FILE="\${QT_FASTDDS_PROFILE:-$ROOT/config/fastdds_robot.xml}"
else
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  export FASTDDS_DEFAULT_PROFILES_FILE="$ROOT/config/fastdds_localhost.xml"
fi
# Our own domain by default, so we never join someone else's default domain 0.
export ROS_DOMAIN_ID="\${ROS_DOMAIN_ID:-42}"
# Headless MuJoCo rendering through Mesa's software EGL (no GPU or display needed).
export MUJOCO_GL="\${MUJOCO_GL:-egl}"
export PYOPENGL_PLATFORM="\${PYOPENGL_PLATFORM:-\$MUJOCO_GL}"
[[ \$_qt_nounset == 1 ]] && set -u; unset _qt_nounset
EOF
  mv "$ROOT/env.sh.tmp" "$ROOT/env.sh"
  say "wrote env.sh"
}

check_environment() {
  # The judged promise: a fresh shell that sources env.sh imports rclpy and qt_msgs and finds
  # every ament package of the workspace.
  env -i HOME="$HOME" PATH=/usr/bin:/bin bash -c "source '$ROOT/env.sh' && python - <<'PY'
import rclpy  # noqa: F401
from ament_index_python.packages import get_package_share_directory
from qt_msgs.msg import ArmAction  # noqa: F401
for pkg in ('qt_msgs', 'qt_policy_node', 'qt_data_logger', 'qt_sim', 'qt_eval', 'qt_teleop'):
    get_package_share_directory(pkg)
PY" || die "the built environment does not import (rclpy / qt_msgs / ament index); see the traceback above."
  say "environment check: rclpy, qt_msgs and every ament package found"
}

main() {
  local start=$SECONDS python
  cd "$ROOT"
  install_apt_packages
  python=$(find_python) || die "Python 3.11 not found (the ROS 2 Kilted wheels are cp311). Install python3.11 and python3.11-venv, or set QT_PYTHON=/path/to/python3.11."
  if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating .venv with $python"
    "$python" -m venv "$VENV" || die "could not create .venv; on Debian/Ubuntu install python3.11-venv."
  fi
  mkdir -p "$STAMPS"
  pip_install ros "$ROOT/requirements/ros.txt"
  pip_install python "$ROOT/requirements/python.txt" "$ROOT/requirements/runtime.txt" "$ROOT/requirements/train.txt"
  pip_install local "$ROOT/requirements/local.txt" "$ROOT"/src/qt_common/pyproject.toml "$ROOT"/src/qt_trainer/pyproject.toml
  [[ $WITH_DEV == 1 ]] && pip_install dev "$ROOT/requirements/dev.txt"
  fix_wheel_cmake_paths
  colcon_build
  write_env_file
  check_environment
  say "done in $((SECONDS - start)) s. Now:  . ./env.sh"
}

main "$@"
