"""Every parameter of the policy node: name, default and meaning, in one table.

Why a table: the node declares exactly these, config/run.yaml sets a subset of them,
the launch file and ``qt run`` pass a few more, and a test checks that all of them agree (a
misspelt name in YAML would otherwise be ignored without a word).

Topic defaults are relative names, so the ``namespace`` launch argument moves them; with no
namespace they resolve to the absolute names of docs/CONTRACTS.md. ``/diagnostics`` stays
absolute because monitoring tools listen there for every node.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

NODE_NAME = "policy_node"

# name -> (default, description). The default's Python type fixes the ROS parameter type.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "model_path": ("", "directory with policy.onnx + policy.json; empty: $QT_ROBOT_ROOT/models/default"),
    "autostart": (False, "configure and activate on start (the launch file and qt run set it)"),
    "execution_providers": (
        ["CPUExecutionProvider"],
        "ONNX Runtime providers in order of preference (TensorrtExecutionProvider, CUDAExecutionProvider, "
        "CPUExecutionProvider; or tensorrt, cuda, cpu). Only listed providers may run: leave out the CPU "
        "to refuse a GPU-less start; with it listed, a CPU fallback is allowed but logged and published",
    ),
    "intra_op_threads": (1, "ONNX Runtime intra-op threads for the decode"),
    "gpu_fp16": (False, "TensorrtExecutionProvider: allow fp16 kernels; CUDAExecutionProvider: allow TF32 "
                 "(bins may then differ from the CPU's where two are nearly tied; docs/POLICY_NODE.md)"),
    "trt_engine_cache_dir": ("", "TensorrtExecutionProvider: keep built engines here (empty: rebuilt each start)"),
    "control_rate_hz": (0.0, "decisions per second; 0: the model card's control_rate_hz (applies at once, also "
                        "to a configured node)"),
    "control_mode": (
        "timer",
        "timer: decide on each control tick, on the newest frame; frame: decide as soon as a new frame arrives, "
        "at most control_rate_hz, the timer ticking only when frames stop (docs/POLICY_NODE.md, control modes)",
    ),
    "image_height": (0, "camera image height; 0: the model card's. Another size than the card's needs resize_images"),
    "image_width": (0, "camera image width; 0: the model card's. Another size than the card's needs resize_images"),
    "resize_images": (False, "resize camera frames to the model card's image size instead of rejecting other sizes"),
    "action_spec_file": ("", "JSON action spec the robot executes (ActionSpec.to_dict); empty: the default spec"),
    "frame_id": ("base_link", "frame of the TwistStamped and ArmAction commands"),
    "camera_topic": ("camera/image_raw", "sensor_msgs/Image input (sensor-data QoS); empty: off (compressed only)"),
    "compressed_camera_topic": ("camera/image_raw/compressed", "sensor_msgs/CompressedImage input; empty: off"),
    "instruction_topic": ("instruction", "std_msgs/String, transient local"),
    "estop_topic": ("estop", "std_msgs/Bool; true latches until the reset service is called"),
    "heartbeat_topic": ("heartbeat", "std_msgs/Header from the operator station"),
    "proprio_topic": ("ee_pose", "geometry_msgs/PoseStamped, subscribed only for models with proprio"),
    "joint_states_topic": ("joint_states", "sensor_msgs/JointState, for proprio layouts with the finger opening"),
    "finger_joints": (["finger_left", "finger_right"], "finger joint names in joint_states (ee_yaw_gripper layout)"),
    "finger_travel_m": (0.04, "finger travel, metres: opening = mean finger position / travel"),
    "action_topic": ("qt/action", "qt_msgs/ArmAction output (source POLICY)"),
    "twist_topic": ("servo_node/delta_twist_cmds", "geometry_msgs/TwistStamped output for MoveIt Servo"),
    "gripper_topic": ("gripper/command", "std_msgs/Float64 gripper output"),
    "status_topic": ("qt/policy_status", "qt_msgs/PolicyStatus, one per control tick"),
    "diagnostics_topic": ("/diagnostics", "diagnostic_msgs/DiagnosticArray"),
    "reset_estop_service": ("qt/reset_estop", "std_srvs/Trigger that clears the e-stop latch"),
    "topic_map_file": ("", "topic map YAML (qt_common.topic_map; config/topics.yaml): the topics it names replace "
                       "camera_topic, compressed_camera_topic, joint_states_topic, proprio_topic, action_topic, "
                       "instruction_topic, twist_topic, gripper_topic at configure; empty: none"),
    "run_policy_action": ("qt/run_policy", "qt_msgs/action/RunPolicy server (docs/POLICY_NODE.md); empty: none"),
    "goal_required": (False, "move only while a RunPolicy goal runs (hold no_goal otherwise); false: run on the "
                      "instruction topic until the first goal, then only during goals (until the next activate)"),
    "success_topic": ("", "where a RunPolicy goal's outcome comes from: END events (qt_msgs/EpisodeEvent; the sim's "
                      "episode/events) or std_msgs/Bool true, see success_msg_type; empty: only time limit/cancel"),
    "success_msg_type": ("episode_event", "type of success_topic: episode_event | bool"),
    "image_timeout_s": (0.5, "hold still when the newest image is older than this (by its header stamp)"),
    "require_heartbeat": (False, "hold still unless a heartbeat arrived within heartbeat_timeout_s"),
    "heartbeat_timeout_s": (1.0, "maximum age of the last heartbeat (by arrival time)"),
    "proprio_timeout_s": (0.5, "models with proprio: hold still when the newest pose is older (by its stamp)"),
    "future_stamp_tolerance_s": (
        0.05,
        "an image or pose stamped further ahead of the node's clock than this is invalid: hold still "
        "(future_image_stamp / future_proprio_stamp); ages never count from before an input arrived",
    ),
    "max_instruction_chars": (1000, "longer instructions are refused (hold: instruction_too_long), never embedded"),
    "slew_limit": (
        [0.01, 0.01, 0.01, 0.075, 0.0],
        "maximum change per control step of each action dimension, physical units; 0: unlimited",
    ),
    "use_text_encoder": (True, "embed instructions missing from the card's cache with the ONNX text encoder"),
    "text_encoder_path": ("", "directory of the exported text encoder; empty: its default location"),
    "diagnostics_period_s": (1.0, "period of /diagnostics messages"),
    "log_throttle_s": (2.0, "minimum interval between repeated warnings about bad input"),
}


def default_model_path() -> Path:
    """The shipped model: models/default under the repository (QT_ROBOT_ROOT, set by env.sh)."""
    root = os.environ.get("QT_ROBOT_ROOT") or str(Path.cwd())
    return Path(root) / "models" / "default"


def resolve_model_path(value: str) -> Path:
    return Path(value).expanduser() if value else default_model_path()
