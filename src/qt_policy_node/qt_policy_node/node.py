"""The policy node: a ROS 2 lifecycle node around PolicyController (``ros2 run qt_policy_node policy_node``).

Lifecycle (``ros2 lifecycle set /policy_node configure|activate|deactivate|cleanup``):

* **configure** loads ``policy.onnx`` + ``policy.json``, refuses a card whose action spec differs
  from the parameters, or whose image size differs from a camera size set explicitly without
  ``resize_images`` (0: the card's size; the error names the field and both values), picks
  the execution provider (see providers.py) and logs which one runs; subscriptions, the reset
  service and /diagnostics start here, so instruction and images are already known on activate.
* **activate** starts the control timer. Commands, status and the control timer exist only
  while active (lifecycle publishers), so an inactive node cannot move the arm.
* **deactivate** publishes the stop command once, then stops the timer.

``ros2 param set`` changes ``control_rate_hz`` at once; any other parameter is read at configure,
so a configured node refuses the change with that reason instead of accepting it silently.

The node itself only converts messages: decisions are made by PolicyController / SafetyLayer
(plain Python, tested without DDS). All callbacks run in one mutually exclusive group, so the
newest-image buffer is never read while being replaced.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TwistStamped
from qt_common.action_spec import ActionSpec
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, Float64, Header, String
from std_srvs.srv import Trigger

from qt_msgs.msg import ArmAction, PolicyStatus
from qt_policy_node import goal_run, param_types, proprio, providers
from qt_policy_node import params as P
from qt_policy_node.controller import CONTROL_MODES, FrameTrigger, PolicyController, TickResult
from qt_policy_node.decoder import PolicyDecoder
from qt_policy_node.images import BadImage, ImageConverter
from qt_policy_node.instructions import InstructionEmbedder
from qt_policy_node.run_policy_server import RunPolicyServer
from qt_policy_node.safety import MODEL_FAULT, SafetyConfig, SafetyLayer, as_sent
from qt_policy_node.text_encoder import load_text_encoder

# Action-spec dimension name -> (TwistStamped field, axis). Other names are not sent to Servo.
TWIST_AXES = {
    "dx": ("linear", "x"), "dy": ("linear", "y"), "dz": ("linear", "z"),
    "droll": ("angular", "x"), "dpitch": ("angular", "y"), "dyaw": ("angular", "z"),
}
GRIPPER_DIM = "gripper"
# Parameters a configured node applies at once; every other one is read at configure only.
LIVE_PARAMETERS = ("control_rate_hz",)
EXACT_STAMPS_KEPT = 32
DIAGNOSTIC_NAME = "qt_policy_node: policy"


class ConfigurationError(ValueError):
    """Configure cannot proceed; the message says which parameter or artefact field is wrong."""


def _reliable(depth: int, transient_local: bool = False) -> QoSProfile:
    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE,
    )


def _stamp_s(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def check_camera_size(camera: tuple[int, int], model: tuple[int, int], resize: bool) -> None:
    """The camera size the parameters declare (0: the card's) must be the model's unless frames are resized."""
    height, width = camera[0] or model[0], camera[1] or model[1]
    if (height, width) != model and not resize:
        raise ConfigurationError(
            f"policy.json field 'image' (height, width): model has {model}, node is configured for "
            f"{(height, width)} (image_height, image_width); set resize_images: true to resize camera frames to "
            "the model's size, or image_height/image_width: 0 to expect the model's size"
        )


def control_rate(requested: float, card_rate: float) -> float:
    """Decisions per second: the parameter, or the card's rate when it is 0."""
    rate = requested or card_rate
    if not 0 < rate <= 1000:
        raise ConfigurationError(f"control_rate_hz: expected (0, 1000] (or 0: the card's), got {requested:g}")
    return rate


def load_action_spec(path: str) -> ActionSpec:
    """The spec the robot executes: the default, or ActionSpec.to_dict JSON from a file."""
    if not path:
        return ActionSpec.default()
    try:
        return ActionSpec.from_dict(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        raise ConfigurationError(f"action_spec_file {path!r}: {exc}") from exc


class PolicyNode(LifecycleNode):
    """See the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(P.NODE_NAME, **kwargs)
        param_types.declare(self, P.PARAMETERS)
        self._reset_runtime()
        self.add_pre_set_parameters_callback(param_types.widen_integers(P.PARAMETERS))
        self.add_on_set_parameters_callback(self._check_update)
        self.add_post_set_parameters_callback(self._apply_update)

    # ---- state -----------------------------------------------------------------------------

    def _reset_runtime(self) -> None:
        self.controller: PolicyController | None = None
        self.proprio: proprio.ProprioAssembler | None = None
        self.decoder: Any = None
        self.spec: ActionSpec | None = None
        self.state_label = "unconfigured"
        self.provider = ""
        self.provider_warning = ""
        self.encoder_note = ""
        self._entities: list[tuple[str, Any]] = []
        self._group: MutuallyExclusiveCallbackGroup | None = None
        self._action_pub = self._twist_pub = self._gripper_pub = self._status_pub = self._diag_pub = None
        self._control_timer: Any = None
        self._heartbeat_rx_s: float | None = None
        self._period_s = 0.1
        self._rejected_images = 0
        self._callback_errors = 0
        self._ticks = 0
        self._deadline_misses = 0
        self._last_tick_start = 0.0
        self._frame_trigger: FrameTrigger | None = None  # control_mode frame
        self._latency_ms = np.zeros(256)
        self._latency_n = 0
        self._exact_stamps: dict[float, tuple[int, int]] = {}  # float stamp -> header stamp of recent frames
        self._goals = goal_run.GoalTracker()  # RunPolicy goals (run_policy_server.py)
        self._run_policy: RunPolicyServer | None = None
        self._topic_instruction = ""  # last instruction from the topic (restored when a goal ends)

    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    # ---- parameter updates (ros2 param set) ---------------------------------------------------

    def _check_update(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuse, with the reason, a change a configured node would not apply (never a silent no-op)."""
        if self.controller is None:
            return SetParametersResult(successful=True)  # unconfigured: read at the next configure
        for parameter in parameters:
            if parameter.name == "control_rate_hz":
                try:
                    control_rate(float(parameter.value), float(self.decoder.card["control_rate_hz"]))
                except ConfigurationError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
            elif parameter.name in P.PARAMETERS:
                return SetParametersResult(successful=False, reason=(
                    f"{parameter.name} is read at configure and the node is {self.state_label}: deactivate and "
                    f"cleanup, set it, then configure again (only {list(LIVE_PARAMETERS)} apply at once)"))
        return SetParametersResult(successful=True)

    def _apply_update(self, parameters: list[Parameter]) -> None:
        if self.controller is None:
            return
        for parameter in parameters:
            if parameter.name == "control_rate_hz":
                self._set_rate(float(parameter.value))
                if self._control_timer is not None:
                    self._control_timer.timer_period_ns = int(self._period_s * 1e9)
                self.get_logger().info(f"control_rate_hz: now {1.0 / self._period_s:g} Hz")

    def _set_rate(self, requested: float) -> None:
        card_rate = float(self.decoder.card["control_rate_hz"])
        rate = control_rate(requested, card_rate)
        if abs(rate - card_rate) > 1e-6:
            self.get_logger().warning(
                f"control_rate_hz {rate:g} differs from the model card's {card_rate:g}: actions are per-step "
                "deltas, so the arm moves at a different speed than in training"
            )
        self._period_s = 1.0 / rate

    def _guarded(self, callback: Callable[..., None]) -> Callable[..., None]:
        """Subscription/timer callback that logs an unexpected exception instead of ending the
        process: a bug in one callback must not take the e-stop and the status down with it.
        A tick that fails publishes nothing, so the robot's own command timeout stops the arm."""

        def run(*args: Any) -> None:
            try:
                callback(*args)
            except Exception as exc:
                self._callback_errors += 1
                self.get_logger().error(f"{callback.__name__} failed ({self._callback_errors} so far): {exc!r}",
                                        throttle_duration_sec=2.0)

        return run

    # ---- lifecycle ---------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as exc:  # every failure is reported, none leaves a half-built node
            self.get_logger().error(f"configure failed: {exc}")
            self._destroy_entities()
            self._reset_runtime()
            return TransitionCallbackReturn.FAILURE
        self.state_label = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.controller is not None
        self.controller.safety.restart()
        self._goals.restart()
        self._ticks = self._deadline_misses = 0
        self._last_tick_start = 0.0
        mode = str(self.param("control_mode"))
        self._frame_trigger = FrameTrigger() if mode == "frame" else None
        self._control_timer = self.create_timer(self._period_s, self._guarded(self._on_timer),
                                                callback_group=self._group)
        self.state_label = "active"
        self.get_logger().info(
            f"active: {1.0 / self._period_s:g} Hz ({mode}-triggered) on {self.provider} "
            f"(model {self.decoder.card['model_id']})"
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_motion("deactivate")
        if self._run_policy is not None:
            self._run_policy.end_active(goal_run.OUTCOME_ABORTED, "policy node deactivated")
        self.state_label = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        self._reset_runtime()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.state_label == "active":
            self._stop_motion("shutdown")
        self._destroy_entities()
        self._reset_runtime()
        self.state_label = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def _stop_motion(self, why: str) -> None:
        """Publish the stop command once and end the control timer (while publishers are active)."""
        if self._control_timer is not None:
            self.destroy_timer(self._control_timer)
            self._control_timer = None
        if self.controller is None:
            return
        values = self.controller.safety.stop_command()
        self._publish_command(values, self.get_clock().now().nanoseconds * 1e-9)
        for publisher in (self._action_pub, self._twist_pub, self._gripper_pub):
            if publisher is not None:
                publisher.wait_for_all_acked(Duration(seconds=0.5))
        self.controller.forget_observation()
        self.get_logger().info(f"{why}: published the stop command; control timer stopped")

    # ---- configure -----------------------------------------------------------------------------

    def _configure(self) -> None:
        self._apply_topic_map()
        model_dir = P.resolve_model_path(str(self.param("model_path")))
        if not (model_dir / "policy.json").is_file() or not (model_dir / "policy.onnx").is_file():
            raise ConfigurationError(
                f"model_path: {model_dir} has no policy.onnx + policy.json (set model_path, or export a model "
                "there with `qt export ... --name default`)"
            )
        spec = load_action_spec(str(self.param("action_spec_file")))
        requested = providers.normalize(list(self.param("execution_providers")))
        usable = providers.usable(requested, onnxruntime.get_available_providers())
        decoder = PolicyDecoder(
            model_dir,
            usable,
            expected_action_spec_digest=spec.digest(),
            threads=int(self.param("intra_op_threads")),
            allow_cpu_fallback=True,  # judged below against the full preference list
            provider_options=providers.options(usable, fp16=bool(self.param("gpu_fp16")),
                                               cache_dir=str(self.param("trt_engine_cache_dir"))),
        )
        warning = providers.judge(requested, decoder.provider)
        resize = bool(self.param("resize_images"))
        check_camera_size((int(self.param("image_height")), int(self.param("image_width"))), decoder.image_size,
                          resize)
        try:
            layout = proprio.card_layout(decoder.card)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        control_rate(float(self.param("control_rate_hz")), float(decoder.card["control_rate_hz"]))  # fail early
        if (mode := self.param("control_mode")) not in CONTROL_MODES:
            raise ConfigurationError(f"control_mode: expected one of {CONTROL_MODES}, got {mode!r}")
        safety = SafetyLayer(
            spec,
            SafetyConfig(
                image_timeout_s=float(self.param("image_timeout_s")),
                heartbeat_timeout_s=float(self.param("heartbeat_timeout_s")),
                require_heartbeat=bool(self.param("require_heartbeat")),
                proprio_timeout_s=float(self.param("proprio_timeout_s")),
                future_stamp_tolerance_s=float(self.param("future_stamp_tolerance_s")),
                require_proprio=decoder.proprio_dim > 0,
                slew_limit=tuple(float(v) for v in self.param("slew_limit")),
            ),
        )
        encoder, self.encoder_note = (None, "text encoder disabled (use_text_encoder: false)")
        if bool(self.param("use_text_encoder")):
            encoder, self.encoder_note = load_text_encoder(decoder.card, str(self.param("text_encoder_path")))
        text = decoder.card["text_encoder"]
        embedder = InstructionEmbedder(text.get("embeddings", {}), int(text["dim"]), encoder,
                                       int(self.param("max_instruction_chars")))
        self.converter = ImageConverter(*decoder.image_size, resize)
        self.decoder, self.spec, self.provider, self.provider_warning = decoder, spec, decoder.provider, warning
        self.controller = PolicyController(decoder, safety, embedder, decoder.proprio_dim)
        self.proprio = None if self.controller.proprio is None else proprio.ProprioAssembler(
            layout, self.controller.proprio, list(self.param("finger_joints")), float(self.param("finger_travel_m")))
        self._set_rate(float(self.param("control_rate_hz")))
        self._throttle_s = float(self.param("log_throttle_s"))
        self._prepare_messages(spec)
        self._create_entities()
        log = self.get_logger()
        log.info(f"model {decoder.card['model_id']} from {model_dir} ({decoder.card['algorithm']}, "
                 f"{decoder.precision}); proprio: {layout}")
        log.info(f"execution provider: {decoder.provider} (requested {requested})")
        if warning:
            log.warning(warning)
        log.info(f"{self.encoder_note}; {len(embedder.known)} cached instruction embeddings")

    def _prepare_messages(self, spec: ActionSpec) -> None:
        """Messages reused on every tick; only their values change."""
        names = spec.names
        self._twist_index = [(i, *TWIST_AXES[n]) for i, n in enumerate(names) if n in TWIST_AXES]
        self._gripper_index = names.index(GRIPPER_DIM) if GRIPPER_DIM in names else None
        frame_id = str(self.param("frame_id"))
        self._action_msg = ArmAction(dimension_names=names, num_bins=spec.num_bins, source=ArmAction.SOURCE_POLICY)
        self._action_msg.header.frame_id = frame_id
        self._twist_msg = TwistStamped()
        self._twist_msg.header.frame_id = frame_id
        self._gripper_msg = Float64()
        self._status_msg = PolicyStatus(model_id=str(self.decoder.card["model_id"]), execution_provider=self.provider)

    def _create_entities(self) -> None:
        self._group = MutuallyExclusiveCallbackGroup()
        command_qos = _reliable(10)
        self._action_pub = self.create_lifecycle_publisher(ArmAction, self.param("action_topic"), command_qos)
        self._twist_pub = self.create_lifecycle_publisher(TwistStamped, self.param("twist_topic"), command_qos)
        self._gripper_pub = (
            self.create_lifecycle_publisher(Float64, self.param("gripper_topic"), command_qos)
            if self._gripper_index is not None
            else None
        )
        self._status_pub = self.create_lifecycle_publisher(PolicyStatus, self.param("status_topic"), command_qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, self.param("diagnostics_topic"), command_qos)
        group = {"callback_group": self._group}
        guard = self._guarded
        if not self.param("camera_topic") and not self.param("compressed_camera_topic"):
            raise ConfigurationError("camera_topic, compressed_camera_topic: both empty; the policy needs a camera")
        subs = [
            self.create_subscription(String, self.param("instruction_topic"), guard(self._on_instruction),
                                     _reliable(1, transient_local=True), **group),
            self.create_subscription(Bool, self.param("estop_topic"), guard(self._on_estop), _reliable(10), **group),
            self.create_subscription(Header, self.param("heartbeat_topic"), guard(self._on_heartbeat), _reliable(10),
                                     **group),
        ]
        if self.proprio is not None:
            subs.append(self.create_subscription(PoseStamped, self.param("proprio_topic"), guard(self._on_pose),
                                                 _reliable(10), **group))
            if self.proprio.needs_joint_states:
                subs.append(self.create_subscription(JointState, self.param("joint_states_topic"),
                                                     guard(self._on_joints), _reliable(10), **group))
        if self.param("camera_topic"):  # empty: only the compressed stream (a topic map can say so)
            subs.append(self.create_subscription(Image, self.param("camera_topic"), guard(self._on_image),
                                                 qos_profile_sensor_data, **group))
        if self.param("compressed_camera_topic"):
            subs.append(self.create_subscription(CompressedImage, self.param("compressed_camera_topic"),
                                                 guard(self._on_compressed), qos_profile_sensor_data, **group))
        service = self.create_service(Trigger, self.param("reset_estop_service"), self._on_reset_estop, **group)
        diag_timer = self.create_timer(float(self.param("diagnostics_period_s")), guard(self._publish_diagnostics),
                                       **group)
        self._entities = [("subscription", s) for s in subs] + [("service", service), ("timer", diag_timer)]
        self._create_run_policy_server()
        self._entities += [("publisher", self._diag_pub)]
        self._entities += [("lifecycle_publisher", p) for p in
                           (self._action_pub, self._twist_pub, self._gripper_pub, self._status_pub) if p is not None]

    def _destroy_entities(self) -> None:
        if self._control_timer is not None:
            self.destroy_timer(self._control_timer)
        destroy = {
            "subscription": self.destroy_subscription, "service": self.destroy_service,
            "timer": self.destroy_timer, "publisher": self.destroy_publisher,
            "lifecycle_publisher": self.destroy_lifecycle_publisher,
        }
        if self._run_policy is not None:
            self._run_policy.destroy()
            self._run_policy = None
        for kind, entity in self._entities:
            destroy[kind](entity)
        self._entities = []
        self._action_pub = self._twist_pub = self._gripper_pub = self._status_pub = None

    # ---- topic map and RunPolicy goals (issue 17) ------------------------------------------------

    def _apply_topic_map(self) -> None:
        """topic_map_file: the topics the map names replace the topic parameters (before they are read)."""
        path = str(self.param("topic_map_file"))
        if not path:
            return
        from qt_common.topic_map import POLICY_NODE_PARAMETERS, TopicMap, TopicMapError

        try:
            overrides = TopicMap.load(path).parameters(POLICY_NODE_PARAMETERS)
        except TopicMapError as exc:
            raise ConfigurationError(f"topic_map_file: {exc}") from None
        self.set_parameters([Parameter(name, value=value) for name, value in overrides.items()])
        self.get_logger().info(f"topic map {path}: {overrides}")

    def _create_run_policy_server(self) -> None:
        """The RunPolicy action server and its success topic (run_policy_server.py), if configured."""
        self._goals = goal_run.GoalTracker(bool(self.param("goal_required")))
        name = str(self.param("run_policy_action"))
        if not name:
            return
        self._run_policy = RunPolicyServer(
            self, self._goals, name, self._group,
            node_problem=lambda: "" if self.state_label == "active" else
            f"policy node is {self.state_label}; activate it first",
            start_goal=self._start_goal, goal_ended=self._goal_ended,
            max_instruction_chars=int(self.param("max_instruction_chars")),
            success_topic=str(self.param("success_topic")), success_msg_type=str(self.param("success_msg_type")))

    def _start_goal(self, run: goal_run.GoalRun) -> str:
        """A goal was accepted: its instruction replaces the topic's ("" or why it cannot run)."""
        assert self.controller is not None
        embedder = self.controller.embedder
        embedder.set(run.instruction)
        if embedder.problem:
            return f"goal field instruction {embedder.shown!r}: {embedder.problem}"
        limit = f"{run.time_limit_s:g} s" if run.time_limit_s else "none"
        self.get_logger().info(f"RunPolicy goal {run.goal_id[:8]}: {embedder.shown!r} (embedding from "
                               f"{embedder.source}), time limit {limit}")
        return ""

    def _goal_ended(self, run: goal_run.GoalRun) -> None:
        """A goal ended (not preempted): the topic's instruction is back, and the arm stops now."""
        if self.controller is not None and self._topic_instruction:
            self.controller.embedder.set(self._topic_instruction)
        if self._control_timer is not None:
            self._on_tick()  # the no_goal hold publishes the stop command once

    # ---- inputs ----------------------------------------------------------------------------------

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _take_image(self, msg: Image | CompressedImage, compressed: bool) -> None:
        assert self.controller is not None
        try:
            image = self.converter.from_compressed(msg) if compressed else self.converter.from_image(msg)
        except BadImage as exc:
            self._rejected_images += 1
            self.get_logger().warning(f"rejected camera frame ({self._rejected_images} so far): {exc}",
                                      throttle_duration_sec=self._throttle_s)
            return
        received = self._now_s()
        stamp = _stamp_s(msg.header.stamp) or received
        if stamp not in self._exact_stamps:
            # The controller keeps float seconds (about 0.2 us resolution at today's epoch); the
            # command must echo the frame's stamp exactly, so the recorder and the sim's lockstep
            # can pair it with that frame (docs/DATA.md alignment rule).
            self._exact_stamps[stamp] = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
            if len(self._exact_stamps) > EXACT_STAMPS_KEPT:
                del self._exact_stamps[next(iter(self._exact_stamps))]
        self.controller.set_image(image, stamp, owner=msg, received_s=received)
        trigger = self._frame_trigger
        if trigger is not None and self._control_timer is not None and trigger.on_frame(time.perf_counter(),
                                                                                         self._period_s):
            self._on_tick()

    def _on_image(self, msg: Image) -> None:
        self._take_image(msg, compressed=False)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._take_image(msg, compressed=True)

    def _on_instruction(self, msg: String) -> None:
        assert self.controller is not None
        self._topic_instruction = msg.data
        if self._goals.active is not None:
            self.get_logger().info("instruction topic ignored while a RunPolicy goal runs",
                                   throttle_duration_sec=self._throttle_s)
            return
        embedder = self.controller.embedder
        if not embedder.set(msg.data):
            return
        if embedder.problem:
            self.get_logger().warning(f"instruction {embedder.shown!r}: {embedder.problem}; holding still")
        else:
            self.get_logger().info(f"instruction {embedder.shown!r} (embedding from {embedder.source})")

    def _on_estop(self, msg: Bool) -> None:
        assert self.controller is not None
        safety = self.controller.safety
        was_latched = safety.estop_latched
        safety.on_estop(msg.data)
        if safety.estop_latched and not was_latched:
            self.get_logger().warning("e-stop asserted: stopping; latched until qt/reset_estop is called")
            if self._control_timer is not None:
                self._on_tick()  # stop now, not at the next tick

    def _on_pose(self, msg: PoseStamped) -> None:
        assert self.controller is not None and self.proprio is not None
        if not self.proprio.pose(msg):
            self.get_logger().warning("rejected ee pose: position/orientation not finite",
                                      throttle_duration_sec=self._throttle_s)
        elif self.proprio.ready:
            self._proprio_updated(msg.header.stamp)

    def _on_joints(self, msg: JointState) -> None:
        assert self.controller is not None and self.proprio is not None
        if not self.proprio.joints(msg):
            self.get_logger().warning(f"joint_states without finite finger joints {self.proprio.finger_joints}",
                                      throttle_duration_sec=self._throttle_s)
        elif self.proprio.ready:
            self._proprio_updated(msg.header.stamp)

    def _proprio_updated(self, stamp: Any) -> None:
        """The assembler holds a whole vector measured at ``stamp`` (0: unstamped, use arrival)."""
        assert self.controller is not None
        received = self._now_s()
        self.controller.proprio_updated(_stamp_s(stamp) or received, received_s=received)

    def _on_heartbeat(self, msg: Header) -> None:
        self._heartbeat_rx_s = self._now_s()

    def _on_reset_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.controller is None:
            response.success, response.message = False, "node is not configured"
            return response
        response.success, response.message = self.controller.safety.reset_estop()
        self.get_logger().info(f"reset_estop: {response.message}")
        return response

    # ---- control tick ------------------------------------------------------------------------------

    def _on_timer(self) -> None:
        """Timer mode: every tick. Frame mode: only while frames have stopped (holds, zero command)."""
        trigger = self._frame_trigger
        if trigger is None or trigger.on_timer(time.perf_counter(), self._period_s):
            self._on_tick()

    def _on_tick(self) -> None:
        assert self.controller is not None
        started = time.perf_counter()
        if self._frame_trigger is not None:
            self._frame_trigger.ticked(started, self._period_s)
        if self._last_tick_start and started - self._last_tick_start > 1.5 * self._period_s:
            self._deadline_misses += 1
        self._last_tick_start = started
        now = self._now_s()
        heartbeat_age = None if self._heartbeat_rx_s is None else now - self._heartbeat_rx_s
        self.controller.safety.goal_hold = self._goals.holding
        result = self.controller.tick(now, heartbeat_age)
        command = result.command
        if MODEL_FAULT in command.interventions:
            reason = self.controller.last_error or "model output is not finite (NaN/inf)"
            self.get_logger().error(f"model fault, holding still: {reason}", throttle_duration_sec=self._throttle_s)
        if command.publish:
            self._publish_command(command.values, result.observation_stamp_s or now)
        self._publish_status(result, now)
        if result.decoded:
            self._latency_ms[self._latency_n % self._latency_ms.size] = result.inference_latency_ms
            self._latency_n += 1
        self._ticks += 1
        if time.perf_counter() - started > self._period_s:
            self._deadline_misses += 1
        if self._run_policy is not None:  # last: a goal ending here ticks once more to stop the arm
            self._run_policy.after_tick(now, command.values if command.publish else None,
                                        command.interventions if command.holding else [])

    def _publish_command(self, values: np.ndarray, stamp_s: float) -> None:
        assert self.spec is not None
        exact = self._exact_stamps.get(stamp_s)
        now = self.get_clock().now().to_msg()
        action = self._action_msg
        if exact is not None:
            action.header.stamp.sec, action.header.stamp.nanosec = exact
        else:
            action.header.stamp = Time(seconds=stamp_s).to_msg()
        # Bins of the float32 values the message carries, so they never disagree with them.
        action.values, action.bins = as_sent(self.spec, values)
        self._action_pub.publish(action)
        twist = self._twist_msg
        twist.header.stamp = now
        for index, part, axis in self._twist_index:
            setattr(getattr(twist.twist, part), axis, float(values[index]) / self._period_s)
        self._twist_pub.publish(twist)
        if self._gripper_index is not None:
            self._gripper_msg.data = float(values[self._gripper_index])
            self._gripper_pub.publish(self._gripper_msg)

    def _publish_status(self, result: TickResult, now_s: float) -> None:
        assert self.controller is not None
        safety = self.controller.safety
        status = self._status_msg
        status.header.stamp = Time(seconds=now_s).to_msg()
        status.bins = result.bins if result.bins is not None and not result.command.holding else []
        status.q_values = result.q_values if result.q_values is not None and not result.command.holding else []
        status.action = result.command.values
        status.inference_latency_ms = float(result.inference_latency_ms)
        status.observation_age_ms = float(result.observation_age_ms)
        status.safety_intervened = bool(result.command.interventions)
        status.interventions = result.command.interventions
        status.intervention_count = safety.total_interventions
        status.estop_latched = safety.estop_latched
        self._status_pub.publish(status)

    # ---- diagnostics ------------------------------------------------------------------------------

    def diagnostic_status(self) -> DiagnosticStatus:
        """One DiagnosticStatus describing the node now (also used by tests and qt run)."""
        status = DiagnosticStatus(name=DIAGNOSTIC_NAME, hardware_id=self.provider)
        controller = self.controller
        values: dict[str, Any] = {"state": self.state_label, "execution_provider": self.provider}
        level, message = DiagnosticStatus.OK, self.state_label
        if controller is not None:
            safety, embedder = controller.safety, controller.embedder
            count = min(self._latency_n, self._latency_ms.size)
            recent = self._latency_ms[:count]
            values.update({
                "model_id": self.decoder.card["model_id"],
                "precision": self.decoder.precision,
                "control_rate_hz": f"{1.0 / self._period_s:g}",
                "instruction": embedder.shown,
                "instruction_state": embedder.state,
                "text_encoder": self.encoder_note,
                "ticks": self._ticks,
                "decodes": controller.decodes,
                "decode_errors": controller.decode_errors,
                "deadline_misses": self._deadline_misses,
                "rejected_images": self._rejected_images,
                "callback_errors": self._callback_errors,
                "estop_latched": safety.estop_latched,
                "intervention_count": safety.total_interventions,
                "run_policy_goal": self._goals.active.instruction[:120] if self._goals.active else "",
                "inference_ms_p50": f"{np.percentile(recent, 50):.3f}" if count else "",
                "inference_ms_max": f"{recent.max():.3f}" if count else "",
            })
            values.update({f"interventions.{rule}": n for rule, n in safety.counts.items()})
            if safety.estop_latched:
                level, message = DiagnosticStatus.ERROR, "e-stop latched"
            elif controller.decode_errors and controller.last_error:
                level, message = DiagnosticStatus.ERROR, controller.last_error
            elif embedder.problem and self.state_label == "active":
                level, message = DiagnosticStatus.WARN, embedder.problem
            if self.provider_warning and level == DiagnosticStatus.OK:
                level, message = DiagnosticStatus.WARN, self.provider_warning
        status.level = level
        status.message = message
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        return status

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray(status=[self.diagnostic_status()])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


# ---- process entry points ------------------------------------------------------------------------


def bring_up(node: PolicyNode) -> bool:
    """configure + activate; False (with the reason already logged) when either fails."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        return False
    return node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def bring_down(node: PolicyNode) -> None:
    """deactivate (publishes the stop command) and clean up, whatever state the node is in."""
    if node.state_label == "active":
        node.trigger_deactivate()
    if node.state_label == "inactive":
        node.trigger_cleanup()


class StopFlag:
    """SIGINT/SIGTERM set a flag instead of tearing rclpy down, so shutdown can still publish."""

    def __init__(self) -> None:
        self.stopped = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.stopped = True


def spin_until_stopped(executor: Any, flag: StopFlag) -> None:
    while not flag.stopped and rclpy.ok():
        executor.spin_once(timeout_sec=0.1)


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=sys.argv if argv is None else argv, signal_handler_options=SignalHandlerOptions.NO)
    flag = StopFlag()
    try:
        node = PolicyNode()
    except param_types.ParameterTypeError as exc:  # one line naming the parameter, not a traceback
        print(f"policy_node: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    try:
        if node.param("autostart") and not bring_up(node):
            node.get_logger().fatal("autostart failed (see the error above); exiting")
            code = 1
        else:
            print("policy_node: ready", flush=True)
            spin_until_stopped(executor, flag)
    finally:
        bring_down(node)
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
