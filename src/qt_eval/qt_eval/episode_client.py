"""The client side of the sim's episode interface, for verbs that run episodes (qt collect, qt eval).

An rclpy node on a private Context in the calling process: it starts episodes through
``sim/start_episode``, follows ``episode/events`` (START / END), counts the driver's ticks from
``ee_pose`` stamps, and ends an episode as DISCARD when it must be abandoned. ``spin`` also
checks the verb's child processes (qt_eval.children), so a node that dies is reported at once
instead of as a timeout. Topic names are relative (the defaults resolve to the contract names).
"""

from __future__ import annotations

from typing import Any

from qt_eval.children import ChildDied, ChildGroup

OUTCOME_NAMES = {1: "success", 2: "failure", 3: "discard"}


class EpisodeClient:
    """See the module docstring. rclpy is imported here, so importing this module stays light."""

    def __init__(self, group: ChildGroup, name: str = "qt_episode_client"):
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from qt_common.ros_common import reliable, stamp_ns
        from rclpy.executors import SingleThreadedExecutor

        from qt_msgs.msg import ArmAction, EpisodeEvent
        from qt_msgs.srv import EndEpisode, StartEpisode

        self._rclpy, self.stamp_ns = rclpy, stamp_ns
        self.EpisodeEvent, self.StartEpisode, self.EndEpisode = EpisodeEvent, StartEpisode, EndEpisode
        self.group = group
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.events: list[Any] = []
        self.tick_stamps: list[int] = []  # stamps of /ee_pose (one per driver tick), newest last
        self.node.create_subscription(EpisodeEvent, "episode/events", self.events.append, reliable(50, latched=True))
        self.node.create_subscription(PoseStamped, "ee_pose", self._on_pose, reliable(50))
        self.newest_action_ns = -1  # stamp of the newest qt/action command (any source)
        self.node.create_subscription(ArmAction, "qt/action", self._on_action, reliable(50))
        self.start_client = self.node.create_client(StartEpisode, "sim/start_episode")
        self.end_client = self.node.create_client(EndEpisode, "sim/end_episode")

    def _on_pose(self, msg: Any) -> None:
        self.tick_stamps.append(self.stamp_ns(msg.header.stamp))
        if len(self.tick_stamps) > 5000:
            del self.tick_stamps[:2500]

    def _on_action(self, msg: Any) -> None:
        self.newest_action_ns = max(self.newest_action_ns, self.stamp_ns(msg.header.stamp))

    def spin(self, seconds: float = 0.05) -> None:
        self.group.check()
        self.executor.spin_once(timeout_sec=seconds)

    def spin_until(self, predicate: Any, timeout: float, what: str) -> None:
        from qt_common.ros_common import spin_until

        spin_until(self.spin, predicate, timeout, what)

    def wait_for_graph(self, publishers: dict[str, int], subscribers: dict[str, int], timeout: float) -> None:
        """Until DDS discovery shows at least these counts (topic names relative to this node)."""
        def ready() -> bool:
            return all(self.node.count_publishers(t) >= n for t, n in publishers.items()) and all(
                self.node.count_subscribers(t) >= n for t, n in subscribers.items())
        self.spin_until(ready, timeout, f"ROS graph (publishers {publishers}, subscribers {subscribers})")
        self.spin_until(self.start_client.service_is_ready, timeout, "service sim/start_episode")

    def call(self, client: Any, request: Any, timeout: float = 15.0) -> Any:
        future = client.call_async(request)
        self.spin_until(future.done, timeout, f"answer from {client.srv_name}")
        return future.result()

    def start(self, task_id: str, seed: int, instruction: str = "") -> tuple[str, str]:
        """Start an episode in the sim; (episode id, instruction)."""
        reply = self.call(self.start_client, self.StartEpisode.Request(task_id=task_id, seed=seed,
                                                                       instruction=instruction))
        if not reply.accepted:
            raise RuntimeError(f"sim refused episode {task_id} seed {seed}: {reply.message}")
        return reply.episode_id, reply.instruction

    def wait_end(self, episode_id: str, timeout: float) -> tuple[Any, Any]:
        """(START event, END event) of the episode; on timeout the episode is discarded."""
        def event(kind: int) -> Any:
            return next((e for e in self.events if e.episode_id == episode_id and e.event == kind), None)
        try:
            self.spin_until(lambda: event(self.EpisodeEvent.EVENT_END) is not None, timeout,
                            f"END event of episode {episode_id}")
        except TimeoutError:
            self.discard()
            raise
        return event(self.EpisodeEvent.EVENT_START), event(self.EpisodeEvent.EVENT_END)

    def first_frame(self, episode_id: str, timeout: float = 10.0) -> tuple[int, int]:
        """(START stamp, stamp of the episode's first frame), waiting for both."""
        def start() -> Any:
            return next((e for e in self.events if e.episode_id == episode_id and e.event == e.EVENT_START), None)
        self.spin_until(lambda: start() is not None, timeout, f"START event of {episode_id}")
        start_ns = self.stamp_ns(start().header.stamp)
        self.spin_until(lambda: bool(self.tick_stamps) and self.tick_stamps[-1] > start_ns, timeout,
                        f"first frame of {episode_id}")
        return start_ns, next(s for s in self.tick_stamps if s > start_ns)

    def warm_up(self, task_id: str, seed: int, timeout: float, *, instruction: str = "", engage: Any = None,
                disengage: Any = None) -> None:
        """One discarded episode that proves the command loop before anything is recorded or
        measured: the commander must answer the episode's first frame. DDS discovery reports a
        subscriber before every reader has matched every writer, so without this the first
        frames of the first episode can go unanswered. ``engage``/``disengage`` bracket the wait
        (e.g. activate / deactivate a policy node)."""
        episode_id, _ = self.start(task_id, seed, instruction)
        _, frame_ns = self.first_frame(episode_id)
        try:
            if engage is not None:
                engage()
            self.spin_until(lambda: self.newest_action_ns >= frame_ns - 1_000, timeout,
                            "a command answering the warm-up episode's first frame")
        finally:
            if disengage is not None:
                disengage()
            self.call(self.end_client, self.EndEpisode.Request(outcome=self.EndEpisode.Request.OUTCOME_DISCARD))
        self.spin_until(lambda: any(e.episode_id == episode_id and e.event == e.EVENT_END for e in self.events),
                        10.0, f"END of the warm-up episode {episode_id}")

    def discard(self) -> None:
        """End the running episode as DISCARD (the recorder deletes its bag); errors ignored."""
        try:
            if self.end_client.service_is_ready():
                self.call(self.end_client, self.EndEpisode.Request(outcome=self.EndEpisode.Request.OUTCOME_DISCARD),
                          timeout=5.0)
        except (TimeoutError, ChildDied):
            pass

    def ticks_between(self, start_ns: int, end_ns: int) -> int:
        return sum(start_ns < s <= end_ns for s in self.tick_stamps)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
