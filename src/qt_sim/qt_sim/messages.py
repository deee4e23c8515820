"""The sim's ROS messages, built and read in one place (rclpy message types, no DDS).

Why shared: ``qt collect`` records episodes either through the node processes (sim driver,
expert teleop, recorder over DDS) or in one process (qt_eval.inprocess_collect). Both paths must
write the same bytes for the same seed, so the driver node, the expert teleop node and the
in-process collector all build their messages, and read the expert's inputs back, with these
functions. Importing message types and serialising them does no DDS traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from geometry_msgs.msg import Pose, PoseArray, PoseStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from qt_msgs.msg import EpisodeEvent as EpisodeEventMsg
from qt_sim.world import CUBE_COLOURS, TARGET_COLOURS

if TYPE_CHECKING:  # the driver pulls in MuJoCo; a teleop node that only builds actions must not
    from qt_sim.driver import EpisodeEvent, TickOutput

OUTCOME_CODES = {
    "none": EpisodeEventMsg.OUTCOME_NONE,
    "success": EpisodeEventMsg.OUTCOME_SUCCESS,
    "failure": EpisodeEventMsg.OUTCOME_FAILURE,
    "discard": EpisodeEventMsg.OUTCOME_DISCARD,
}

Pose7 = tuple[tuple[float, float, float], tuple[float, float, float, float]]  # (xyz, wxyz)


@dataclass
class TickMessages:
    """One control tick as the driver publishes it, all stamped alike."""

    image: Image
    joint_states: JointState
    ee_pose: PoseStamped
    object_poses: PoseArray  # published last: a consumer may treat it as "this tick is complete"


def make_pose(position: Any, quat_wxyz: Any) -> Pose:
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
    w, x, y, z = (float(v) for v in quat_wxyz)
    pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = w, x, y, z
    return pose


def tick_messages(out: TickOutput, stamp: Any, camera_frame_id: str, base_frame_id: str) -> TickMessages:
    """Camera frame, joint states, end-effector pose and object poses of one driver tick."""
    image = Image()
    image.header.stamp, image.header.frame_id = stamp, camera_frame_id
    image.height, image.width = out.image.shape[:2]
    image.encoding, image.step = "rgb8", out.image.shape[1] * 3
    image.data = out.image.tobytes()

    joints = JointState()
    joints.header.stamp = stamp
    joints.name = list(out.state.joint_names)
    joints.position = out.state.joint_positions.tolist()
    joints.velocity = out.state.joint_velocities.tolist()

    pose = PoseStamped()
    pose.header.stamp, pose.header.frame_id = stamp, base_frame_id
    pose.pose = make_pose(out.state.ee_pos, out.state.ee_quat)

    objects = PoseArray()
    objects.header.stamp, objects.header.frame_id = stamp, base_frame_id
    objects.poses = [make_pose(out.state.cube_pos[c], out.state.cube_quat[c]) for c in CUBE_COLOURS]
    objects.poses += [make_pose(out.state.target_pos[t], (1.0, 0.0, 0.0, 0.0)) for t in TARGET_COLOURS]
    return TickMessages(image, joints, pose, objects)


def event_message(event: EpisodeEvent, stamp: Any) -> EpisodeEventMsg:
    msg = EpisodeEventMsg()
    msg.header.stamp = stamp
    msg.event = EpisodeEventMsg.EVENT_START if event.event == "start" else EpisodeEventMsg.EVENT_END
    msg.outcome = OUTCOME_CODES[event.outcome]
    msg.episode_id = event.episode_id
    msg.instruction = event.instruction
    msg.task_id = event.task_id
    msg.seed = event.seed
    return msg


def event_messages(event: EpisodeEvent, stamp: Any) -> tuple[String | None, EpisodeEventMsg]:
    """(instruction, event) the driver publishes for an episode event; the instruction only on START."""
    instruction = String(data=event.instruction) if event.event == "start" else None
    return instruction, event_message(event, stamp)


# ---- reading the expert's inputs back ----------------------------------------------------------


def pose_of(pose: Pose) -> Pose7:
    p, q = pose.position, pose.orientation
    return (p.x, p.y, p.z), (q.w, q.x, q.y, q.z)


def finger_positions(msg: JointState) -> list[float]:
    """Positions of the finger joints (names starting with ``finger``), in message order."""
    return [pos for name, pos in zip(msg.name, msg.position, strict=False) if name.startswith("finger")]


def object_poses(msg: PoseArray) -> list[Pose7]:
    return [pose_of(p) for p in msg.poses]
