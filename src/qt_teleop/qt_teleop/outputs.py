"""What a teleop node sends each control tick: the ArmAction and the arm's own command topics.

Why all three: the recorder and the sim driver read ``qt_msgs/ArmAction`` (source TELEOP), but a
real arm moves by the same standard commands the policy node sends: a ``TwistStamped`` for
MoveIt Servo (``servo_node/delta_twist_cmds``: the per-step deltas divided by the control
period) and a ``std_msgs/Float64`` for the gripper (-1 close .. 1 open). Empty topic names turn
either off. The mapping of dimensions to twist axes is the policy node's (docs/CONTRACTS.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from geometry_msgs.msg import TwistStamped
from qt_common.action_spec import ActionSpec
from qt_common.ros_common import arm_action, reliable
from std_msgs.msg import Float64

from qt_msgs.msg import ArmAction

TWIST_AXES = {
    "dx": ("linear", "x"), "dy": ("linear", "y"), "dz": ("linear", "z"),
    "droll": ("angular", "x"), "dpitch": ("angular", "y"), "dyaw": ("angular", "z"),
}
GRIPPER_DIM = "gripper"
OUTPUT_PARAMETERS: dict[str, Any] = {
    "frame_id": "base_link",
    "action_topic": "qt/action",
    "twist_topic": "servo_node/delta_twist_cmds",  # "" = no twist (the sim reads the ArmAction alone)
    "gripper_topic": "gripper/command",  # "" = no gripper command
}


class CommandOutputs:
    """Publishes one normalised action as ArmAction (+ twist + gripper) per call."""

    def __init__(self, node: Any, spec: ActionSpec, params: dict[str, Any], period_s: float):
        self.node, self.spec, self.frame_id, self.period_s = node, spec, str(params["frame_id"]), period_s
        self.action_pub = node.create_publisher(ArmAction, params["action_topic"], reliable(10))
        self.twist_pub = node.create_publisher(TwistStamped, params["twist_topic"], reliable(10)) \
            if params["twist_topic"] else None
        self.gripper_pub = node.create_publisher(Float64, params["gripper_topic"], reliable(10)) \
            if params["gripper_topic"] and GRIPPER_DIM in spec.names else None

    def publish(self, normalized: np.ndarray) -> ArmAction:
        stamp = self.node.get_clock().now().to_msg()
        action = arm_action(self.spec, normalized, stamp, self.frame_id, ArmAction.SOURCE_TELEOP)
        self.action_pub.publish(action)
        values = list(action.values)
        if self.twist_pub is not None:
            twist = TwistStamped()
            twist.header.stamp, twist.header.frame_id = stamp, self.frame_id
            for name, value in zip(self.spec.names, values, strict=True):
                if name in TWIST_AXES:
                    part, axis = TWIST_AXES[name]
                    setattr(getattr(twist.twist, part), axis, float(value) / self.period_s)
            self.twist_pub.publish(twist)
        if self.gripper_pub is not None:
            self.gripper_pub.publish(Float64(data=float(values[self.spec.names.index(GRIPPER_DIM)])))
        return action
