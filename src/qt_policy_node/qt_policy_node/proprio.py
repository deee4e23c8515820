"""Proprioception input for models trained with it: the end-effector pose as the dataset has it.

Why this layout: datasets made from bags carry proprio only through ``qt convert --proprio
ee_pose`` (qt_data_logger.convert), which stores the newest ``/ee_pose`` (geometry_msgs/
PoseStamped) at each step as 7 float32 values: position x y z, orientation quaternion x y z w.
The card records only ``proprio_dim``, so a 7-value model is fed exactly that; any other size is
refused at configure rather than fed a guess.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EE_POSE_DIM = 7
LAYOUTS = {EE_POSE_DIM: "ee_pose (position x y z, orientation x y z w) from geometry_msgs/PoseStamped"}


def check_dim(proprio_dim: int) -> None:
    if proprio_dim and proprio_dim not in LAYOUTS:
        raise ValueError(
            f"policy.json field 'proprio_dim' is {proprio_dim}: the node knows proprio layouts {LAYOUTS} "
            "(qt convert --proprio ee_pose) or none"
        )


def pose_into(msg: Any, out: np.ndarray) -> bool:
    """Write a PoseStamped into ``out`` (float32 [7]); False (out untouched) when not finite."""
    p, q = msg.pose.position, msg.pose.orientation
    values = (p.x, p.y, p.z, q.x, q.y, q.z, q.w)
    if not all(np.isfinite(values)):
        return False
    out[:] = values
    return True


def ee_pose_vector(position: Any, quat_wxyz: Any) -> np.ndarray:
    """The same 7 float32 values :func:`pose_into` takes from a PoseStamped, from a position and a
    w-first quaternion (MuJoCo / transforms3d order, e.g. qt_sim's ``SceneState.ee_quat``).

    For in-process evaluation: the sim driver publishes exactly these numbers on ``ee_pose``, so a
    model sees bit-identical proprioception with and without ROS in between.
    """
    w, x, y, z = (float(v) for v in quat_wxyz)
    px, py, pz = (float(v) for v in position)
    return np.array([px, py, pz, x, y, z, w], dtype=np.float32)
