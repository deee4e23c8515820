"""The RunPolicy action server of the policy node (``qt_msgs/action/RunPolicy``, default name
``qt/run_policy``) and its optional success topic.

Why it is a separate module: the node stays a thin shell, and the goal bookkeeping
(goal_run.GoalTracker) stays free of rclpy. This class only translates: a goal request becomes a
GoalRun, the end of a GoalRun becomes the goal handle's terminal state and Result, and each
control tick becomes one Feedback.

How a goal runs (rclpy): the execute callback is a coroutine that awaits a Future. rclpy runs it
as an executor task outside every callback group, so waiting never blocks the node's control
timer or subscriptions; the Future is completed by whoever ends the goal (the control tick at the
time limit, the success topic, a cancel request, a newer goal, deactivate). Goal, cancel and
success-topic callbacks run in the node's mutually exclusive group, so they never interleave with
a control tick.

Terminal states: SUCCEEDED for OUTCOME_SUCCESS, and for OUTCOME_TIME_LIMIT when no success topic
is configured (the goal was "run for N seconds" and it did); CANCELED for a cancel; ABORTED for
everything else (failure, time limit with a success topic, preemption, refusal). The Result's
``outcome`` says which, ``reason`` why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from std_msgs.msg import Bool

from qt_msgs.action import RunPolicy
from qt_msgs.msg import EpisodeEvent
from qt_policy_node import goal_run as G

SUCCESS_MSG_TYPES = ("episode_event", "bool")


class RunPolicyServer:
    """See the module docstring. ``start_goal(run)`` returns "" or why the goal cannot run (for
    example an instruction the model does not know); ``goal_ended(run)`` is called once for every
    goal that ran, after it ended, so the node can stop the arm at once."""

    def __init__(
        self,
        node: Any,
        tracker: G.GoalTracker,
        action_name: str,
        callback_group: Any,
        node_problem: Callable[[], str],
        start_goal: Callable[[G.GoalRun], str],
        goal_ended: Callable[[G.GoalRun], None],
        max_instruction_chars: int,
        success_topic: str = "",
        success_msg_type: str = "episode_event",
    ) -> None:
        if success_msg_type not in SUCCESS_MSG_TYPES:
            raise ValueError(f"success_msg_type: expected one of {list(SUCCESS_MSG_TYPES)}, got {success_msg_type!r}")
        self.node = node
        self.tracker = tracker
        self.has_success_topic = bool(success_topic)
        self._node_problem = node_problem
        self._start_goal = start_goal
        self._goal_ended = goal_ended
        self._max_chars = max_instruction_chars
        self._handles: dict[str, Any] = {}
        self._done: dict[str, Future] = {}
        self._server = ActionServer(
            node, RunPolicy, action_name, execute_callback=self._execute, goal_callback=self._on_goal,
            cancel_callback=self._on_cancel, callback_group=callback_group)
        self._success_sub = None
        if success_topic:
            # Volatile on purpose: a transient-local publisher's history (an END of an episode
            # before this goal) must not end a goal that starts later.
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            if success_msg_type == "bool":
                self._success_sub = node.create_subscription(Bool, success_topic, self._on_success_bool, qos,
                                                             callback_group=callback_group)
            else:
                self._success_sub = node.create_subscription(EpisodeEvent, success_topic, self._on_episode_event,
                                                             qos, callback_group=callback_group)

    def destroy(self) -> None:
        """End a running goal (aborted: the node is going away) and destroy the server."""
        self.end_active(G.OUTCOME_ABORTED, "policy node cleaned up")
        if self._success_sub is not None:
            self.node.destroy_subscription(self._success_sub)
        self._server.destroy()

    # ---- ending goals -------------------------------------------------------------------------

    def end_active(self, outcome: int, reason: str) -> G.GoalRun | None:
        """End the running goal (if any) with ``outcome``; the arm is stopped by goal_ended."""
        run = self.tracker.end(outcome, reason)
        if run is not None:
            self._finished(run)
        return run

    def _finished(self, run: G.GoalRun) -> None:
        """A goal has ended: wake its execute coroutine and let the node stop the arm."""
        future = self._done.get(run.goal_id)
        if future is not None and not future.done():
            future.set_result(True)
        if run.end is not None and run.end.outcome != G.OUTCOME_PREEMPTED:
            self._goal_ended(run)

    def after_tick(self, now_s: float, command: Any, holds: list[str]) -> None:
        """One control tick ran: feedback to the running goal, and its time limit."""
        run = self.tracker.active
        if run is None:
            return
        ended = self.tracker.after_tick(now_s, command, holds)
        if ended is not None:
            self._finished(ended)
            return
        handle = self._handles.get(run.goal_id)
        if handle is not None and handle.is_active:
            handle.publish_feedback(RunPolicy.Feedback(
                step=run.steps, last_command=run.last_command.tolist(), active_holds=run.holds,
                elapsed_s=run.elapsed_s(now_s)))

    # ---- success topic ---------------------------------------------------------------------------

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        run = self.tracker.active
        if run is None or msg.event != EpisodeEvent.EVENT_END:
            return
        stamp_s = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if stamp_s and stamp_s < run.started_s:
            return  # an episode that ended before this goal started
        outcome = {EpisodeEvent.OUTCOME_SUCCESS: "success", EpisodeEvent.OUTCOME_FAILURE: "failure",
                   EpisodeEvent.OUTCOME_DISCARD: "discard"}.get(msg.outcome, f"outcome {msg.outcome}")
        ended = self.tracker.episode_ended(msg.outcome == EpisodeEvent.OUTCOME_SUCCESS,
                                           f"episode END event: {outcome} (episode {msg.episode_id or '?'})")
        if ended is not None:
            self._finished(ended)

    def _on_success_bool(self, msg: Bool) -> None:
        if not msg.data:
            return  # false means "not yet"; only true ends the goal
        ended = self.tracker.episode_ended(True, "success topic reported true")
        if ended is not None:
            self._finished(ended)

    # ---- action callbacks ------------------------------------------------------------------------

    def _on_goal(self, request: RunPolicy.Goal) -> GoalResponse:
        # Always accepted: a goal that cannot run ends at once as ABORTED with the reason in its
        # Result, which a client can read (a rejection carries no reason).
        return GoalResponse.ACCEPT

    def _on_cancel(self, handle: Any) -> CancelResponse:
        run = self.tracker.active
        if run is None or run.goal_id != _goal_id(handle):
            return CancelResponse.REJECT  # already ended (or never ran)
        self.end_active(G.OUTCOME_CANCELED, "canceled by the client")
        return CancelResponse.ACCEPT

    async def _execute(self, handle: Any) -> RunPolicy.Result:
        request = handle.request
        goal_id = _goal_id(handle)
        now_s = self.node.get_clock().now().nanoseconds * 1e-9
        problem = self._node_problem() or G.check_goal(request.instruction, request.time_limit_s, self._max_chars)
        if problem:
            handle.abort()
            return RunPolicy.Result(outcome=G.OUTCOME_ABORTED, steps=0, reason=problem, elapsed_s=0.0)
        run, previous = self.tracker.start(goal_id, request.instruction, request.time_limit_s, now_s)
        if previous is not None:
            self._finished(previous)
        self._handles[goal_id] = handle
        future = self._done[goal_id] = Future()
        problem = self._start_goal(run)
        if problem:
            self.end_active(G.OUTCOME_ABORTED, problem)
        try:
            await future
        finally:
            self._handles.pop(goal_id, None)
            self._done.pop(goal_id, None)
        end = run.end or G.GoalEnd(G.OUTCOME_ABORTED, "ended without an outcome")
        ended_s = self.node.get_clock().now().nanoseconds * 1e-9
        result = RunPolicy.Result(outcome=end.outcome, steps=run.steps, reason=end.reason,
                                  elapsed_s=run.elapsed_s(ended_s))
        if end.outcome == G.OUTCOME_CANCELED and handle.is_cancel_requested:
            handle.canceled()
        elif end.outcome == G.OUTCOME_SUCCESS or (end.outcome == G.OUTCOME_TIME_LIMIT and not self.has_success_topic):
            handle.succeed()
        else:
            handle.abort()
        self.node.get_logger().info(f"RunPolicy goal {goal_id[:8]} ended: {end.name} ({end.reason}); "
                                    f"{run.steps} step(s)")
        return result


def _goal_id(handle: Any) -> str:
    return bytes(handle.goal_id.uuid).hex()
