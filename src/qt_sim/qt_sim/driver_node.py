"""ROS 2 shell around qt_sim.driver.SimDriver: topics, services, a fixed-rate simulation thread.

    ros2 run qt_sim sim_driver --ros-args --params-file $(ros2 pkg prefix qt_sim)/share/qt_sim/config/sim_driver.yaml
    python -m qt_sim.driver_node --ros-args -p image_width:=640 -p image_height:=480

The simulation (physics, rendering, episode resets) runs on one thread of its own at the control
rate: EGL contexts are bound to their creating thread, so rendering must never hop between
executor threads. ROS callbacks only hand commands to the driver (thread-safe) and post episode
requests to the simulation thread, waiting for its answer. Topic names, QoS and message
semantics: docs/CONTRACTS.md and docs/SIM.md.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from geometry_msgs.msg import PoseArray, PoseStamped, TwistStamped
from qt_common.ros_common import reliable, stamp_ns
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String

from qt_msgs.msg import ArmAction
from qt_msgs.msg import EpisodeEvent as EpisodeEventMsg
from qt_msgs.srv import EndEpisode, StartEpisode
from qt_sim.commands import CommandRejected
from qt_sim.driver import DriverConfig, EpisodeEvent, EpisodeReply, LockstepGate, SimDriver, TickOutput
from qt_sim.messages import event_messages, tick_messages
from qt_sim.tasks import TASK_IDS

OUTCOME_NAMES = {
    EndEpisode.Request.OUTCOME_SUCCESS: "success",
    EndEpisode.Request.OUTCOME_FAILURE: "failure",
    EndEpisode.Request.OUTCOME_DISCARD: "discard",
}
REJECT_LOG_PERIOD_S = 2.0
JOB_TIMEOUT_S = 10.0
_WAKE = None  # queued by a command callback: a lockstep tick waiting for it re-checks at once

PARAMETERS: dict[str, Any] = {
    "control_rate_hz": 10.0,
    "sim_period_s": 0.0,  # simulated seconds per tick; 0 = 1 / control_rate_hz (real time)
    "lockstep": False,  # a tick waits for the command stamped with the previous frame (LockstepGate)
    "lockstep_timeout_s": 1.0,
    "image_width": 96,
    "image_height": 96,
    "horizon": 100,
    "success_check": True,  # false: only end_episode or the horizon end an episode (a robot stand-in)
    "command_timeout_s": 0.3,
    "tasks": "",  # comma-separated task ids; empty = all
    "instruction_split": "train",
    "auto_start": False,  # start a random episode at launch and after every end (demo mode)
    "publish_clock": False,  # publish simulated time on /clock and stamp with it (use_sim_time for the others)
    "camera_frame_id": "camera_optical_frame",
    "base_frame_id": "base_link",
    "image_topic": "camera/image_raw",
    "joint_states_topic": "joint_states",
    "ee_pose_topic": "ee_pose",
    "object_poses_topic": "sim/object_poses",
    "instruction_topic": "instruction",
    "events_topic": "episode/events",
    "action_topic": "qt/action",
    "twist_topic": "servo_node/delta_twist_cmds",
    "gripper_topic": "gripper/command",
    "start_service": "sim/start_episode",
    "end_service": "sim/end_episode",
}



class SimDriverNode(Node):
    def __init__(self, **kwargs: Any):
        super().__init__("sim_driver", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.p = p
        tasks = tuple(t.strip() for t in str(p["tasks"]).split(",") if t.strip()) or TASK_IDS
        self.config = DriverConfig(
            width=int(p["image_width"]), height=int(p["image_height"]), horizon=int(p["horizon"]),
            control_rate_hz=float(p["control_rate_hz"]), command_timeout_s=float(p["command_timeout_s"]),
            tasks=tasks, instruction_split=str(p["instruction_split"]), sim_period_s=float(p["sim_period_s"]),
            success_check=bool(p["success_check"]),
        )
        self.gate = LockstepGate(bool(p["lockstep"]), float(p["lockstep_timeout_s"]))
        self._episode_misses_at_start = 0
        self.rejected = 0
        self._jobs: queue.Queue[tuple[Callable[[], Any], list[Any], threading.Event]] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._driver: SimDriver | None = None

        self._image_pub = self.create_publisher(Image, p["image_topic"], reliable(5))
        self._joint_pub = self.create_publisher(JointState, p["joint_states_topic"], reliable(10))
        self._pose_pub = self.create_publisher(PoseStamped, p["ee_pose_topic"], reliable(10))
        self._objects_pub = self.create_publisher(PoseArray, p["object_poses_topic"], reliable(10))
        self._instruction_pub = self.create_publisher(String, p["instruction_topic"], reliable(1, latched=True))
        self._events_pub = self.create_publisher(EpisodeEventMsg, p["events_topic"], reliable(10, latched=True))
        # Simulated time, advanced one control period per tick; it starts at 1 s because a zero
        # stamp means "unstamped". /clock is absolute (never namespaced), best effort, depth 1, as
        # rosbag2 and Gazebo publish it.
        self._sim_ns = 1_000_000_000
        self._clock_pub = (self.create_publisher(Clock, "/clock", QoSProfile(depth=1,
                           reliability=ReliabilityPolicy.BEST_EFFORT)) if p["publish_clock"] else None)

        self._thread = threading.Thread(target=self._simulate, name="qt_sim", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=60.0)
        if self._startup_error is not None or self._driver is None:
            raise RuntimeError(f"simulation failed to start: {self._startup_error}")

        self.create_subscription(ArmAction, p["action_topic"], self._on_action, reliable(10))
        self.create_subscription(TwistStamped, p["twist_topic"], self._on_twist, reliable(10))
        self.create_subscription(Float64, p["gripper_topic"], self._on_gripper, reliable(10))
        self.create_service(StartEpisode, p["start_service"], self._on_start)
        self.create_service(EndEpisode, p["end_service"], self._on_end)
        self.get_logger().info(
            f"sim_driver ready: {self.config.width}x{self.config.height} camera, "
            f"{self.config.control_rate_hz:g} Hz, {self._driver.env.scene.control_period_s:g} s simulated per tick, "
            f"horizon {self.config.horizon}, {len(tasks)} tasks" + (", lockstep" if self.gate.enabled else "")
            + (", publishing /clock" if self._clock_pub else "")
        )

    # ---- command callbacks (executor thread) ----------------------------------------------

    def _reject(self, exc: CommandRejected) -> None:
        self.rejected += 1
        self.get_logger().warning(f"rejected command ({self.rejected} so far): {exc}",
                                  throttle_duration_sec=REJECT_LOG_PERIOD_S)

    def _on_action(self, msg: ArmAction) -> None:
        stamp = stamp_ns(msg.header.stamp)
        if not self.gate.accept(stamp):
            self.get_logger().info(f"lockstep: refused a command stamped before the episode start "
                                   f"({self.gate.refused} so far)", throttle_duration_sec=REJECT_LOG_PERIOD_S)
            return
        try:
            self._driver.arm_action(list(msg.dimension_names), list(msg.values), time.monotonic(),
                                    msg.header.frame_id)
        except CommandRejected as exc:
            self._reject(exc)
            return
        if self.gate.enabled:
            self.gate.received(stamp)
            self._jobs.put(_WAKE)

    def _on_twist(self, msg: TwistStamped) -> None:
        lin = msg.twist.linear
        try:
            self._driver.twist([lin.x, lin.y, lin.z], msg.twist.angular.z, time.monotonic(), msg.header.frame_id)
        except CommandRejected as exc:
            self._reject(exc)

    def _on_gripper(self, msg: Float64) -> None:
        try:
            self._driver.gripper(msg.data, time.monotonic())
        except CommandRejected as exc:
            self._reject(exc)

    def _on_start(self, request: StartEpisode.Request, response: StartEpisode.Response) -> StartEpisode.Response:
        reply = self._in_sim_thread(
            lambda: self._start(request.task_id.strip(), int(request.seed), request.instruction)
        )
        response.accepted, response.episode_id = reply.accepted, reply.episode_id
        response.instruction, response.message = reply.instruction, reply.message
        return response

    def _on_end(self, request: EndEpisode.Request, response: EndEpisode.Response) -> EndEpisode.Response:
        outcome = OUTCOME_NAMES.get(request.outcome, f"code {request.outcome}")
        reply = self._in_sim_thread(lambda: self._end(outcome))
        response.accepted, response.episode_id, response.message = reply.accepted, reply.episode_id, reply.message
        return response

    def _in_sim_thread(self, job: Callable[[], EpisodeReply]) -> EpisodeReply:
        """Run ``job`` on the simulation thread; any failure becomes a refusal, never a crash."""
        result: list[Any] = []
        done = threading.Event()
        self._jobs.put((job, result, done))
        if not self._thread.is_alive() or not done.wait(JOB_TIMEOUT_S) or not result:
            message = "the simulation thread is not running" if not self._thread.is_alive() else "no answer in time"
            self.get_logger().error(f"episode request failed: {message}")
            return EpisodeReply(False, message=message)
        if isinstance(result[0], BaseException):
            self.get_logger().error(f"episode request failed: {result[0]!r}")
            return EpisodeReply(False, message=f"simulation error: {result[0]}")
        return result[0]

    # ---- simulation thread ----------------------------------------------------------------

    def _start(self, task_id: str, seed: int, instruction: str) -> EpisodeReply:
        if self._driver.episode is None:  # commands stamped from now on belong to the new episode
            self.gate.episode_started(self._now().nanoseconds)
        reply = self._driver.start_episode(task_id, seed, instruction)
        if reply.accepted:
            self._episode_misses_at_start = self.gate.misses
            self._publish_event(reply.event)
            self.get_logger().info(f"episode {reply.episode_id} started: {reply.instruction!r}")
        else:
            self.get_logger().warning(f"start refused: {reply.message}")
        return reply

    def _end(self, outcome: str) -> EpisodeReply:
        reply = self._driver.end_episode(outcome)
        if reply.accepted:
            self.gate.episode_ended()
            self._publish_event(reply.event)
            self.get_logger().info(f"episode {reply.episode_id} ended by request: {outcome}")
        else:
            self.get_logger().warning(f"end refused: {reply.message}")
        return reply

    def _simulate(self) -> None:
        try:
            self._driver = SimDriver(self.config)
        except BaseException as exc:  # reported by __init__
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop()
        except Exception as exc:
            if self.context.ok():  # a real fault, not a publish racing with shutdown
                self.get_logger().error(f"simulation thread stopped: {exc!r}")
                raise
        finally:
            self._driver.close()

    def _loop(self) -> None:
        period = self.config.period_s
        next_tick = time.monotonic()
        if self.p["auto_start"]:
            self._start("", -1, "")
        while not self._stop.is_set() and self.context.ok():
            now = time.monotonic()
            wait = max(next_tick - now, self.gate.wait_s(now))
            try:
                item = self._jobs.get(timeout=wait) if wait > 0 else self._jobs.get_nowait()
            except queue.Empty:
                if self._stop.is_set():
                    break
            else:
                if item is not _WAKE:
                    job, result, done = item
                    try:
                        result.append(job())
                    except Exception as exc:
                        result.append(exc)
                    done.set()
                continue
            if self.gate.tick_starts():
                self.get_logger().warning(
                    f"lockstep: no command for the last frame within {self.gate.timeout_s:g} s; ticking without "
                    f"it ({self.gate.misses} so far)", throttle_duration_sec=REJECT_LOG_PERIOD_S)
            output = self._driver.tick(time.monotonic())
            stamp = self._advance_clock()
            self._publish_tick(output, stamp.to_msg())
            self.gate.frame_published(stamp.nanoseconds, time.monotonic(), self._driver.episode is not None)
            for event in output.events:
                self._publish_event(event)
                misses = self.gate.misses - self._episode_misses_at_start
                self.get_logger().info(f"episode {event.episode_id} ended: {event.outcome}"
                                       + (f" (lockstep misses: {misses})" if self.gate.enabled else ""))
            if output.events and self.p["auto_start"]:
                self._start("", -1, "")
            next_tick += period
            if next_tick < time.monotonic() - period:  # fell behind: skip, never burst
                next_tick = time.monotonic()

    def _now(self) -> Time:
        """Stamp time: the simulated clock when publishing /clock, else the node's clock."""
        return Time(nanoseconds=self._sim_ns) if self._clock_pub else self.get_clock().now()

    def _advance_clock(self) -> Time:
        """One tick of simulated time, published on /clock before the tick's messages carry it."""
        if self._clock_pub is not None:
            self._sim_ns += round(self._driver.env.scene.control_period_s * 1e9)
            self._clock_pub.publish(Clock(clock=Time(nanoseconds=self._sim_ns).to_msg()))
        return self._now()

    def _publish_event(self, event: EpisodeEvent) -> None:
        instruction, msg = event_messages(event, self._now().to_msg())
        if instruction is not None:
            self._instruction_pub.publish(instruction)
        self._events_pub.publish(msg)

    def _publish_tick(self, out: TickOutput, stamp: Any) -> None:
        msgs = tick_messages(out, stamp, self.p["camera_frame_id"], self.p["base_frame_id"])
        self._image_pub.publish(msgs.image)
        self._joint_pub.publish(msgs.joint_states)
        self._pose_pub.publish(msgs.ee_pose)
        self._objects_pub.publish(msgs.object_poses)  # last: a consumer may treat it as "this tick is complete"

    def shutdown(self) -> None:
        self._stop.set()
        self._jobs.put(_WAKE)  # a tick waiting in lockstep must not hold shutdown up
        self._thread.join(timeout=10.0)



def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = SimDriverNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, RuntimeError) as exc:  # bad parameters or no simulation: say so, no traceback
        print(f"sim_driver: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
