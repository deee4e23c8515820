"""The decision path without DDS: real ONNX decoder + instruction embedder + safety layer."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.policy_models import KNOWN_INSTRUCTION as INSTRUCTION
from helpers.policy_models import TINY_IMAGE_SIZE as IMAGE_SIZE
from qt_common.action_spec import ActionSpec
from qt_policy_node.controller import PolicyController
from qt_policy_node.decoder import PolicyDecoder
from qt_policy_node.instructions import InstructionEmbedder
from qt_policy_node.safety import MODEL_FAULT, STALE_IMAGE, UNKNOWN_INSTRUCTION, SafetyConfig, SafetyLayer

SPEC = ActionSpec.default()


def controller_for(model_dir, **safety) -> PolicyController:
    decoder = PolicyDecoder(model_dir, expected_action_spec_digest=SPEC.digest(), expected_image_size=IMAGE_SIZE)
    card = decoder.card["text_encoder"]
    embedder = InstructionEmbedder(card["embeddings"], int(card["dim"]))
    config = SafetyConfig(require_proprio=decoder.proprio_dim > 0, **safety)
    return PolicyController(decoder, SafetyLayer(SPEC, config), embedder, decoder.proprio_dim)


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*IMAGE_SIZE, 3), dtype=np.uint8)


def test_decodes_once_per_new_image_and_publishes_the_model_action(tiny_model):
    controller = controller_for(tiny_model, slew_limit=())
    controller.embedder.set(INSTRUCTION)
    controller.set_image(image(0), stamp_s=100.0)
    first = controller.tick(100.05, None)
    assert first.decoded and first.command.publish and first.command.interventions == []
    direct = controller.decoder.decode(image(0), controller.embedder.embedding)
    np.testing.assert_allclose(first.command.values, direct.action, atol=1e-7)
    np.testing.assert_array_equal(first.bins, direct.bins)
    assert first.observation_age_ms == pytest.approx(50.0)
    assert first.observation_stamp_s == 100.0
    again = controller.tick(100.10, None)
    assert not again.decoded and again.command.publish  # same image: same decision, no model run
    assert controller.decodes == 1
    controller.set_image(image(1), stamp_s=100.12)
    third = controller.tick(100.15, None)
    assert third.decoded and controller.decodes == 2
    # The control path reuses its buffers: decoder outputs and the safety layer's command.
    assert np.shares_memory(first.bins, third.bins)
    assert np.shares_memory(first.command.values, third.command.values)


def test_new_instruction_triggers_a_decode(tiny_model):
    from helpers.tiny_policy import DEFAULT_INSTRUCTIONS

    controller = controller_for(tiny_model)
    controller.embedder.set(DEFAULT_INSTRUCTIONS[0])
    controller.set_image(image(0), stamp_s=1.0)
    controller.tick(1.0, None)
    controller.embedder.set(DEFAULT_INSTRUCTIONS[1])
    assert controller.tick(1.05, None).decoded


def test_stale_image_and_unknown_instruction_hold_without_decoding(tiny_model):
    controller = controller_for(tiny_model, image_timeout_s=0.5)
    controller.embedder.set("juggle three cubes")  # not in the card's cache, no encoder
    controller.set_image(image(0), stamp_s=10.0)
    held = controller.tick(10.1, None)
    assert held.command.interventions == [UNKNOWN_INSTRUCTION] and not held.decoded
    controller.embedder.set(INSTRUCTION)
    assert controller.tick(10.2, None).decoded
    stale = controller.tick(10.7, None)
    assert stale.command.interventions == [STALE_IMAGE] and stale.command.publish
    np.testing.assert_array_equal(stale.command.values, SPEC.neutral_values())
    assert controller.decodes == 1


def test_nan_from_a_real_model_is_never_motion(nan_model):
    controller = controller_for(nan_model)
    controller.embedder.set(INSTRUCTION)
    controller.set_image(image(0), stamp_s=5.0)
    result = controller.tick(5.01, None)
    assert result.decoded and result.command.interventions == [MODEL_FAULT]
    assert result.command.publish
    np.testing.assert_array_equal(result.command.values, SPEC.neutral_values())
    assert not controller.tick(5.02, None).command.publish


def test_forget_observation_needs_a_fresh_image(tiny_model):
    controller = controller_for(tiny_model)
    controller.embedder.set(INSTRUCTION)
    controller.set_image(image(0), stamp_s=1.0)
    controller.tick(1.0, None)
    controller.forget_observation()
    assert controller.tick(1.01, None).command.interventions == [STALE_IMAGE]


def test_proprio_model_waits_for_a_pose_and_decodes_on_each_new_one(tmp_path):
    from helpers.tiny_policy import export_tiny_policy
    from qt_policy_node.proprio import ProprioAssembler
    from qt_policy_node.safety import STALE_PROPRIO

    model = export_tiny_policy(tmp_path / "proprio", image_size=IMAGE_SIZE, proprio_dim=7)
    controller = controller_for(model, proprio_timeout_s=0.5)
    assembler = ProprioAssembler("ee_pose", controller.proprio)
    controller.embedder.set(INSTRUCTION)
    controller.set_image(image(0), stamp_s=1.0)
    held = controller.tick(1.0, None)
    assert held.command.interventions == [STALE_PROPRIO] and not held.decoded

    from geometry_msgs.msg import PoseStamped

    pose = PoseStamped()
    pose.pose.position.x, pose.pose.position.z, pose.pose.orientation.w = 0.4, 0.2, 1.0
    assert assembler.pose(pose) and assembler.ready
    np.testing.assert_array_equal(controller.proprio, np.float32([0.4, 0, 0.2, 0, 0, 0, 1]))
    controller.proprio_updated(1.0)
    assert controller.tick(1.05, None).decoded
    assert not controller.tick(1.1, None).decoded  # nothing new
    controller.proprio_updated(1.1)
    assert controller.tick(1.15, None).decoded  # a new pose is a new observation
    controller.set_image(image(1), stamp_s=1.65)
    assert controller.tick(1.7, None).command.interventions == [STALE_PROPRIO]
    pose.pose.position.y = float("nan")
    assert not assembler.pose(pose) and np.isfinite(controller.proprio).all()


def test_gripper_layout_needs_the_finger_joints_and_matches_the_sim():
    """ee_yaw_gripper: the pose alone is not a whole vector; with the finger joints it equals the
    simulator's own observation (the vector the policy was trained on)."""
    from geometry_msgs.msg import PoseStamped
    from qt_policy_node.proprio import ProprioAssembler
    from qt_sim.env import TabletopEnv
    from qt_sim.messages import make_pose
    from sensor_msgs.msg import JointState

    env = TabletopEnv(render_images=False)
    try:
        obs, _ = env.reset(seed=3)
        for _ in range(4):
            obs, *_ = env.step(np.array([0.5, -0.3, -0.5, 0.8, -1.0]))
        state = env.scene_state()
    finally:
        env.close()
    out = np.zeros(6, np.float32)
    assembler = ProprioAssembler("ee_yaw_gripper", out)
    pose = PoseStamped()
    pose.pose = make_pose(state.ee_pos, state.ee_quat)
    assert assembler.pose(pose) and not assembler.ready
    joints = JointState(name=list(state.joint_names), position=state.joint_positions.tolist())
    assert assembler.joints(joints) and assembler.ready
    np.testing.assert_allclose(out, obs["proprio"], atol=1e-6)
    assert not assembler.joints(JointState(name=["shoulder_yaw"], position=[0.0]))  # no finger joints


def test_unknown_proprio_layout_is_refused():
    from qt_policy_node.proprio import card_layout

    assert card_layout({"proprio_dim": 0}) == "none"
    assert card_layout({"proprio_dim": 7}) == "ee_pose"
    assert card_layout({"proprio_dim": 6, "proprio_layout": "ee_yaw_gripper"}) == "ee_yaw_gripper"
    with pytest.raises(ValueError, match=r"policy.json field 'proprio_layout' is 'unnamed_5'"):
        card_layout({"proprio_dim": 5})
    with pytest.raises(ValueError, match=r"'proprio_layout' is 'ee_pose' with proprio_dim 6"):
        card_layout({"proprio_dim": 6, "proprio_layout": "ee_pose"})
