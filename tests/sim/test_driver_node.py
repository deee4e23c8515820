"""The sim driver node across two real processes: commands in, state and image out, episode
services and events, command timeout, and rejection of bad commands."""

from __future__ import annotations

import itertools
import math
import time

from geometry_msgs.msg import PoseArray, PoseStamped, TwistStamped
from helpers.processes import python_child
from helpers.ros_peer import RosPeer
from qt_common.action_spec import ActionSpec
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String

from qt_msgs.msg import ArmAction, EpisodeEvent
from qt_msgs.srv import EndEpisode, StartEpisode

NAMES = ActionSpec.default().names
STARTUP_S = 60


def driver(*params: str, params_file: str | None = None):
    args = ["qt_sim.driver_node", "--ros-args"]
    if params_file:
        args += ["--params-file", params_file]
    for p in params:
        args += ["-p", p]
    return python_child(*args)


def arm_action(values: list[float], names: list[str] | None = None) -> ArmAction:
    msg = ArmAction(dimension_names=names or NAMES, values=values, num_bins=256, source=ArmAction.SOURCE_POLICY)
    msg.header.frame_id = "base_link"
    return msg


def stream(peer: RosPeer, publisher, make, seconds: float, rate_hz: float = 10.0) -> None:
    """Publish ``make()`` at ``rate_hz`` for ``seconds`` while spinning the peer."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        publisher.publish(make())
        peer.spin_for(1.0 / rate_hz)


def test_round_trip_timeout_and_rejection(children, peer):
    node = driver("image_width:=64", "image_height:=48", "command_timeout_s:=0.3")
    children.append(node)
    images = peer.subscribe(Image, "/camera/image_raw")
    poses = peer.subscribe(PoseStamped, "/ee_pose")
    joints = peer.subscribe(JointState, "/joint_states")
    objects = peer.subscribe(PoseArray, "/sim/object_poses")
    events = peer.subscribe(EpisodeEvent, "/episode/events", latched=True)
    instructions = peer.subscribe(String, "/instruction", latched=True)
    actions = peer.publisher(ArmAction, "/qt/action")
    twists = peer.publisher(TwistStamped, "/servo_node/delta_twist_cmds")
    gripper = peer.publisher(Float64, "/gripper/command")
    node.wait_for_line("sim_driver ready", timeout=STARTUP_S)

    # State and image flow at the control rate, with acquisition stamps and frames.
    peer.spin_until(lambda: len(images) >= 3 and len(poses) >= 3 and objects and joints, 30, "state stream")
    image = images[-1]
    assert (image.encoding, image.width, image.height, image.step) == ("rgb8", 64, 48, 64 * 3)
    assert image.header.frame_id == "camera_optical_frame" and len(image.data) == 64 * 48 * 3
    assert abs(image.header.stamp.sec + image.header.stamp.nanosec * 1e-9 - time.time()) < 5.0
    assert poses[-1].header.frame_id == "base_link" and len(objects[-1].poses) == 5
    assert list(joints[-1].name) == ["shoulder_yaw", "shoulder_pitch", "elbow", "wrist_pitch", "wrist_roll",
                                     "finger_left", "finger_right"]
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in images[-3:]}
    assert len(stamps) == 3

    reply = peer.call(StartEpisode, "/sim/start_episode",
                      StartEpisode.Request(task_id="pick/red", seed=3, instruction=""))
    assert reply.accepted and reply.episode_id and "red" in reply.instruction
    peer.spin_until(lambda: any(e.episode_id == reply.episode_id for e in events) and instructions, 10, "START")
    start = next(e for e in events if e.episode_id == reply.episode_id)
    assert (start.episode_id, start.task_id, start.seed, start.instruction) == (
        reply.episode_id, "pick/red", 3, reply.instruction)
    assert instructions[-1].data == reply.instruction
    refused = peer.call(StartEpisode, "/sim/start_episode", StartEpisode.Request(task_id="pick/red", seed=1))
    assert not refused.accepted

    def x() -> float:
        return poses[-1].pose.position.x

    # Command in -> the arm moves.
    x0 = x()
    stream(peer, actions, lambda: arm_action([0.02, 0.0, 0.0, 0.0, 0.0]), 1.0)
    assert x() - x0 > 0.05, f"arm moved only {x() - x0:.3f} m"

    # Commands stop -> after the timeout the arm holds still.
    peer.spin_for(1.0)
    held = poses[-1].pose.position
    peer.spin_for(1.0)
    now = poses[-1].pose.position
    assert math.dist((held.x, held.y, held.z), (now.x, now.y, now.z)) < 1e-3

    # Bad commands are rejected (logged), never executed, and the node keeps running.
    bad = [
        lambda: arm_action([0.02, 0.0, 0.0, 0.0, 0.0], names=["dx", "dy", "dz", "droll", "gripper"]),
        lambda: arm_action([float("nan"), 0.0, 0.0, 0.0, 0.0]),
        lambda: arm_action([0.02, 0.0, 0.0, 0.0]),
    ]
    for make in bad:
        stream(peer, actions, make, 0.5)
    peer.spin_for(0.3)
    after = poses[-1].pose.position
    assert math.dist((held.x, held.y, held.z), (after.x, after.y, after.z)) < 1e-3
    node.wait_for_line("rejected command", timeout=5)
    assert node.popen.poll() is None

    # MoveIt Servo convention: twist (m/s) and gripper command.
    y0 = poses[-1].pose.position.y
    fingers0 = joints[-1].position[5]

    def twist() -> TwistStamped:
        msg = TwistStamped()
        msg.header.frame_id = "base_link"
        msg.twist.linear.y = 0.1
        return msg

    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        twists.publish(twist())
        gripper.publish(Float64(data=-1.0))
        peer.spin_for(0.1)
    peer.spin_for(0.3)
    assert poses[-1].pose.position.y - y0 > 0.05
    assert joints[-1].position[5] < fingers0 - 0.01, "gripper did not close"

    ended = peer.call(EndEpisode, "/sim/end_episode", EndEpisode.Request(outcome=EndEpisode.Request.OUTCOME_FAILURE))
    assert ended.accepted and ended.episode_id == reply.episode_id
    peer.spin_until(lambda: sum(e.episode_id == reply.episode_id for e in events) >= 2, 10, "END")
    end_event = [e for e in events if e.episode_id == reply.episode_id][-1]
    assert end_event.outcome == EpisodeEvent.OUTCOME_FAILURE and end_event.episode_id == reply.episode_id
    assert not peer.call(EndEpisode, "/sim/end_episode", EndEpisode.Request(outcome=1)).accepted
    node.stop()
    assert "Traceback" not in node.output()


def test_horizon_ends_the_episode_with_failure(children, peer):
    from ament_index_python.packages import get_package_share_directory

    yaml_file = f"{get_package_share_directory('qt_sim')}/config/sim_driver.yaml"
    node = driver("image_width:=32", "image_height:=32", "horizon:=5", "control_rate_hz:=20.0", params_file=yaml_file)
    children.append(node)
    events = peer.subscribe(EpisodeEvent, "/episode/events", latched=True)
    node.wait_for_line("sim_driver ready", timeout=STARTUP_S)
    reply = peer.call(StartEpisode, "/sim/start_episode", StartEpisode.Request(task_id="", seed=-1))
    assert reply.accepted
    ours = lambda: [e for e in events if e.episode_id == reply.episode_id]  # noqa: E731
    peer.spin_until(lambda: any(e.event == EpisodeEvent.EVENT_END for e in ours()), 10, "END at the horizon")
    start, end = ours()[0], ours()[-1]
    assert start.event == EpisodeEvent.EVENT_START and start.seed >= 0 and start.task_id
    assert end.outcome == EpisodeEvent.OUTCOME_FAILURE and end.episode_id == reply.episode_id
    assert end.task_id == start.task_id and end.instruction == start.instruction


def test_publish_clock_stamps_with_simulated_time(children, peer):
    """Issue 14 item 4: with publish_clock the sim publishes /clock, one control period per tick (here 0.1 s
    simulated per tick at 20 Hz wall), and stamps every frame with it, so use_sim_time nodes run on it."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    node = driver("image_width:=32", "image_height:=32", "control_rate_hz:=20.0", "sim_period_s:=0.1",
                  "publish_clock:=true")
    children.append(node)
    clock: list[Clock] = []  # best effort, as rclpy's own /clock subscription (the publisher's QoS)
    peer.node.create_subscription(Clock, "/clock", clock.append, QoSProfile(depth=50,
                                  reliability=ReliabilityPolicy.BEST_EFFORT))
    images = peer.subscribe(Image, "/camera/image_raw")
    node.wait_for_line("publishing /clock", timeout=STARTUP_S)
    peer.spin_until(lambda: len(clock) >= 5 and len(images) >= 5, 30, "/clock and frames")

    def ns(stamp) -> int:
        return stamp.sec * 1_000_000_000 + stamp.nanosec

    ticks = [ns(c.clock) for c in clock]
    assert {b - a for a, b in itertools.pairwise(ticks)} == {100_000_000}
    assert ticks[0] < 1_000_000 * 1_000_000_000  # simulated seconds since start, not the wall clock
    # Frames stamped before the first tick this subscriber received (it may match /clock later than
    # the camera) cannot be checked; every frame within the received ticks carries one of them.
    within = {ns(i.header.stamp) for i in images if ticks[0] <= ns(i.header.stamp) <= ticks[-1]}
    assert within and within <= set(ticks)
