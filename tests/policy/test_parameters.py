"""Parameters of the policy node as an operator sets them: config/run.yaml with a real model card,
mistyped values, and ``ros2 param set`` on a running node (issue 14, items 1, 5 and 7).

The node runs in this process (its own rclpy context, no other process), so configure and
parameter updates are checked directly.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers.processes import REPO_ROOT
from rclpy.parameter import Parameter

SHIPPED_MODEL = REPO_ROOT / "models" / "default"


def _configured(node) -> bool:
    from rclpy.lifecycle import TransitionCallbackReturn

    return node.trigger_configure() == TransitionCallbackReturn.SUCCESS


def test_run_yaml_takes_the_image_size_from_the_card(make_node, tiny_model):
    node = make_node(tiny_model)
    assert _configured(node)
    assert (node.converter.height, node.converter.width) == node.decoder.image_size == (48, 64)


def test_run_yaml_configures_with_the_shipped_model(make_node):
    if not (SHIPPED_MODEL / "policy.json").is_file():
        pytest.skip("no shipped model in models/default")
    node = make_node(SHIPPED_MODEL)
    assert _configured(node), "run.yaml + the shipped model must configure (qt run --sim, run.launch.py sim:=true)"


def test_a_camera_of_another_size_needs_resize_images(make_node, tiny_model, caplog):
    from qt_policy_node.node import ConfigurationError, check_camera_size

    with pytest.raises(ConfigurationError) as error:
        check_camera_size((96, 96), (48, 64), resize=False)
    for fragment in ("model has (48, 64)", "configured for (96, 96)", "resize_images: true"):
        assert fragment in str(error.value)
    check_camera_size((0, 0), (48, 64), resize=False)
    check_camera_size((96, 96), (48, 64), resize=True)
    node = make_node(tiny_model, "image_height:=96", "image_width:=96", "resize_images:=true")
    assert _configured(node)
    assert (node.converter.height, node.converter.width) == (48, 64) and node.converter.resize


def test_an_integer_for_a_double_is_accepted(make_node, tiny_model):
    node = make_node(tiny_model, "control_rate_hz:=20", "image_timeout_s:=1")
    assert node.param("control_rate_hz") == 20.0 and isinstance(node.param("control_rate_hz"), float)
    assert node.get_parameter("image_timeout_s").type_ == Parameter.Type.DOUBLE


def test_a_mistyped_parameter_is_one_clear_error(make_node, tiny_model):
    from qt_policy_node.param_types import ParameterTypeError

    with pytest.raises(ParameterTypeError) as error:
        make_node(tiny_model, "control_rate_hz:=fast", "intra_op_threads:=1.5")
    assert "parameter 'control_rate_hz': expected double, got 'fast'" in str(error.value)
    assert "parameter 'intra_op_threads': expected integer, got 1.5" in str(error.value)


def test_a_mistyped_parameter_ends_the_process_without_a_traceback(tiny_model):
    result = subprocess.run(
        [sys.executable, "-m", "qt_policy_node.node", "--ros-args", "-p", f"model_path:={tiny_model}",
         "-p", "autostart:=true", "-p", "control_rate_hz:=fast", "-r", "__ns:=/params_check_proc"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "InvalidParameterTypeException" not in result.stderr
    assert "policy_node: parameter 'control_rate_hz': expected double, got 'fast'" in result.stderr


def test_param_set_changes_the_control_rate_of_a_running_node(make_node, tiny_model):
    node = make_node(tiny_model, "control_rate_hz:=10.0")
    assert _configured(node)
    node.trigger_activate()
    result = node.set_parameters([Parameter("control_rate_hz", Parameter.Type.DOUBLE, 20.0)])[0]
    assert result.successful, result.reason
    assert node._period_s == pytest.approx(0.05)
    assert node._control_timer.timer_period_ns == 50_000_000
    widened = node.set_parameters([Parameter("control_rate_hz", Parameter.Type.INTEGER, 5)])[0]
    assert widened.successful and node._period_s == pytest.approx(0.2)
    refused = node.set_parameters([Parameter("control_rate_hz", Parameter.Type.DOUBLE, 5000.0)])[0]
    assert not refused.successful and "control_rate_hz" in refused.reason and node._period_s == pytest.approx(0.2)


def test_param_set_of_a_configure_time_parameter_is_refused_with_the_reason(make_node, tiny_model):
    node = make_node(tiny_model)
    unconfigured = node.set_parameters([Parameter("image_timeout_s", Parameter.Type.DOUBLE, 0.8)])[0]
    assert unconfigured.successful  # read at the next configure
    assert _configured(node)
    result = node.set_parameters([Parameter("image_timeout_s", Parameter.Type.DOUBLE, 0.9)])[0]
    assert not result.successful
    assert "image_timeout_s is read at configure" in result.reason and "cleanup" in result.reason
    assert node.param("image_timeout_s") == 0.8
