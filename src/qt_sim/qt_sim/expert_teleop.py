"""Expert teleop node: the scripted expert acting like a human operator at a teleop station.

    ros2 run qt_sim expert_teleop --ros-args -p num_episodes:=30 -p noise_std:=0.3
    python -m qt_sim.expert_teleop --ros-args -p tasks:=pick/red,place/blue/yellow -p seed:=100

It publishes exactly what a teleop device publishes: one ``qt_msgs/ArmAction`` (source EXPERT,
values + bins of the shared action spec, stamped with the observation it was computed from) on
``/qt/action`` per driver tick, the action executed. Alongside it, on ``/qt/action_label``, the
action to learn from, with the identical header: with the DART knobs (``dart_noise_std``,
``dart_gripper_flip_prob``; qt_sim.expert) the executed action is perturbed and the label is the
expert's clean decision; without them both are equal. ``qt convert`` trains on the labels when
a bag has them. It reads the driver's ground truth (``/ee_pose``, the finger
joints of ``/joint_states`` and ``/sim/object_poses``) where a human would look at the scene.

Episodes (``control_episodes: true``, the default): like an operator it asks the sim for an
episode (``/sim/start_episode`` with task and seed from its plan), acts until the sim's
``EVENT_END`` arrives on ``/episode/events`` (SUCCESS when the task is achieved, FAILURE at the
horizon), waits ``start_delay_s`` and starts the next one. If no END arrives within
``episode_timeout_s`` it ends the episode itself with FAILURE via ``/sim/end_episode``. With
``control_episodes: false`` it only follows START/END events started by someone else (e.g.
``qt collect``), using the task id and seed they carry. After ``num_episodes`` (0 = forever)
it prints ``EXPERT_DONE episodes=N successes=K`` and exits.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import rclpy
from geometry_msgs.msg import PoseArray, PoseStamped
from qt_common.action_spec import ActionSpec
from qt_common.ros_common import arm_action, reliable, stamp_ns
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import JointState

from qt_msgs.msg import ArmAction, EpisodeEvent
from qt_msgs.srv import EndEpisode, StartEpisode
from qt_sim.expert import ExpertKnobs, ScriptedExpert, WorldView
from qt_sim.messages import finger_positions, object_poses, pose_of
from qt_sim.teleop_common import EpisodePlan, TickAssembler, parse_task_list

PARAMETERS: dict[str, Any] = {
    "num_episodes": 0,
    "tasks": "",  # comma-separated task ids; empty = all
    "shuffle": False,
    "seed": 0,
    "noise_std": 0.0,
    "random_action_prob": 0.0,
    "wrong_object_prob": 0.0,
    "dart_noise_std": 0.0,
    "dart_gripper_flip_prob": 0.0,
    "control_episodes": True,
    "start_delay_s": 0.5,
    "episode_timeout_s": 30.0,
    "frame_id": "base_link",
    "joint_states_topic": "joint_states",
    "ee_pose_topic": "ee_pose",
    "object_poses_topic": "sim/object_poses",
    "events_topic": "episode/events",
    "action_topic": "qt/action",
    "label_topic": "qt/action_label",
    "start_service": "sim/start_episode",
    "end_service": "sim/end_episode",
}


class ExpertTeleopNode(Node):
    def __init__(self, **kwargs: Any):
        super().__init__("expert_teleop", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.p = p
        self.spec = ActionSpec.default()
        self.plan = EpisodePlan(parse_task_list(str(p["tasks"])), int(p["seed"]), int(p["num_episodes"]),
                                bool(p["shuffle"]))
        knobs = ExpertKnobs(float(p["noise_std"]), float(p["random_action_prob"]), float(p["wrong_object_prob"]),
                            float(p["dart_noise_std"]), float(p["dart_gripper_flip_prob"]))
        self.expert = ScriptedExpert(knobs, self.spec)
        self.assembler = TickAssembler()
        self.done_episodes = 0
        self.successes = 0
        self.finished = False
        # Episode bookkeeping: the id we asked for, and the START stamp after which ticks count.
        self.state = "idle"  # idle | starting | running
        self.episode_id = ""
        self.episode_task = ""
        self.start_stamp_ns: int | None = None
        self.started_at = 0.0
        self.next_start = time.monotonic() + float(p["start_delay_s"])
        self._start_future: Any = None
        self._pending: tuple[str, int] | None = None
        self._start_stamps: dict[str, int] = {}  # START events seen, by episode id
        # The newest complete tick seen while no episode was running (or its START stamp was not
        # known yet): DDS may deliver an episode's first frame before its START event, and a
        # driver in lockstep waits for the action on exactly that frame.
        self._held_tick: tuple[Any, dict[str, Any]] | None = None

        self.action_pub = self.create_publisher(ArmAction, p["action_topic"], reliable(10))
        self.label_pub = self.create_publisher(ArmAction, p["label_topic"], reliable(10))
        self.create_subscription(PoseStamped, p["ee_pose_topic"], self._on_pose, reliable(10))
        self.create_subscription(JointState, p["joint_states_topic"], self._on_joints, reliable(10))
        self.create_subscription(PoseArray, p["object_poses_topic"], self._on_objects, reliable(10))
        self.create_subscription(EpisodeEvent, p["events_topic"], self._on_event, reliable(10, latched=True))
        self.start_client = self.create_client(StartEpisode, p["start_service"])
        self.end_client = self.create_client(EndEpisode, p["end_service"])
        self.create_timer(0.05, self._manage_episodes)
        self.get_logger().info(
            f"expert_teleop: {len(self.plan.tasks)} tasks, episodes {self.plan.count or 'unlimited'}, "
            f"knobs {knobs.describe()}"
        )

    # ---- episode control ------------------------------------------------------------------

    def _manage_episodes(self) -> None:
        now = time.monotonic()
        if self.finished or not self.p["control_episodes"]:
            return
        if self.state == "idle" and now >= self.next_start and self.start_client.service_is_ready():
            self._pending = self.plan.episode(self.done_episodes)
            request = StartEpisode.Request(task_id=self._pending[0], seed=self._pending[1], instruction="")
            self._start_future = self.start_client.call_async(request)
            self.state = "starting"
        elif self.state == "starting" and self._start_future is not None and self._start_future.done():
            response = self._start_future.result()
            self._start_future = None
            if response is not None and response.accepted:
                self.episode_id = response.episode_id
                self._begin(*self._pending)
            else:
                message = response.message if response is not None else "no response"
                self.get_logger().warning(f"start refused ({message}); retrying in 1 s")
                self.state, self.next_start = "idle", now + 1.0
        elif self.state == "running" and now - self.started_at > float(self.p["episode_timeout_s"]):
            self.get_logger().warning(f"episode {self.episode_id}: no END from the sim; ending it as FAILURE")
            self.end_client.call_async(EndEpisode.Request(outcome=EndEpisode.Request.OUTCOME_FAILURE))
            self.started_at = now  # retry only after another timeout

    def _begin(self, task_id: str, seed: int) -> None:
        self.expert.reset(task_id, seed=seed)
        self.episode_task = task_id
        self.start_stamp_ns = self._start_stamps.get(self.episode_id)  # the START may have come first
        self.state = "running"
        self.started_at = time.monotonic()
        self.get_logger().info(f"episode {self.episode_id}: {task_id} seed {seed}"
                               + (" (going for the wrong cube)" if self.expert.wrong_object else ""))
        self._release_held_tick()

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.EVENT_START:
            self._start_stamps[msg.episode_id] = stamp_ns(msg.header.stamp)
            if len(self._start_stamps) > 16:
                self._start_stamps.pop(next(iter(self._start_stamps)))
            if msg.episode_id == self.episode_id:
                self.start_stamp_ns = self._start_stamps[msg.episode_id]
                self._release_held_tick()
            elif not self.p["control_episodes"] and not self.finished and self.state != "running":
                self.episode_id = msg.episode_id
                self._begin(msg.task_id, max(int(msg.seed), 0))
            return
        if msg.event != EpisodeEvent.EVENT_END or msg.episode_id != self.episode_id or self.state != "running":
            return
        success = msg.outcome == EpisodeEvent.OUTCOME_SUCCESS
        self.done_episodes += 1
        self.successes += int(success)
        self.get_logger().info(
            f"episode {msg.episode_id} ended: {'SUCCESS' if success else 'outcome ' + str(msg.outcome)} "
            f"({self.successes}/{self.done_episodes})"
        )
        self.state, self.start_stamp_ns = "idle", None
        self.next_start = time.monotonic() + float(self.p["start_delay_s"])
        if self.plan.finished(self.done_episodes):
            self.finished = True
            print(f"EXPERT_DONE episodes={self.done_episodes} successes={self.successes}", flush=True)

    # ---- acting, once per driver tick -----------------------------------------------------

    def _on_pose(self, msg: PoseStamped) -> None:
        self._tick_part("ee_pose", msg.header.stamp, pose_of(msg.pose))

    def _on_joints(self, msg: JointState) -> None:
        self._tick_part("joint_states", msg.header.stamp, finger_positions(msg))

    def _on_objects(self, msg: PoseArray) -> None:
        self._tick_part("object_poses", msg.header.stamp, object_poses(msg))

    def _tick_part(self, part: str, stamp: Any, payload: Any) -> None:
        parts = self.assembler.add(part, stamp_ns(stamp), payload)
        if parts is None:
            return
        if self.state != "running" or self.start_stamp_ns is None:
            self._held_tick = (stamp, parts)
            return
        self._act(stamp, parts)

    def _release_held_tick(self) -> None:
        """Act on a tick of this episode that completed before the episode was known to be running."""
        if self._held_tick is not None and self.state == "running" and self.start_stamp_ns is not None:
            stamp, parts = self._held_tick
            self._held_tick = None
            self._act(stamp, parts)

    def _act(self, stamp: Any, parts: dict[str, Any]) -> None:
        if stamp_ns(stamp) <= self.start_stamp_ns:
            return  # a tick from before this episode's reset
        try:
            view = WorldView.from_poses(*parts["ee_pose"], parts["joint_states"], parts["object_poses"])
        except ValueError as exc:
            self.get_logger().warning(f"cannot read the world: {exc}", throttle_duration_sec=2.0)
            return
        executed, label = self.expert.step(view)
        self.action_pub.publish(arm_action(self.spec, executed, stamp, self.p["frame_id"]))
        self.label_pub.publish(arm_action(self.spec, label, stamp, self.p["frame_id"]))


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = ExpertTeleopNode()
        while rclpy.ok() and not node.finished:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as exc:  # bad parameters: say which, no traceback
        print(f"expert_teleop: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
