"""Execution provider choice: only listed providers run, and a fallback is never silent."""

from __future__ import annotations

import pytest
from qt_policy_node.providers import CPU, CUDA, TENSORRT, ProviderChoiceError, judge, normalize, usable


def test_aliases_and_order_are_kept():
    assert normalize(["TensorRT", "cuda", "CPU", "cuda"]) == [TENSORRT, CUDA, CPU]
    assert normalize([CUDA]) == [CUDA]


def test_empty_list_is_refused():
    with pytest.raises(ProviderChoiceError, match="execution_providers"):
        normalize(["  "])


def test_unavailable_gpu_without_cpu_in_the_list_is_refused():
    with pytest.raises(ProviderChoiceError, match=r"none of .*CUDAExecutionProvider.* available"):
        usable([TENSORRT, CUDA], [CPU])


def test_cpu_listed_after_gpu_is_a_loud_fallback():
    requested = [TENSORRT, CUDA, CPU]
    assert usable(requested, [CPU]) == [CPU]
    warning = judge(requested, CPU)
    assert "FALLBACK" in warning and TENSORRT in warning and CPU in warning


def test_first_choice_running_is_quiet():
    assert judge([CUDA, CPU], CUDA) == ""
    assert judge([CPU], CPU) == ""


def test_runtime_fallback_to_an_unlisted_provider_is_refused():
    # ORT drops to the CPU when CUDA libraries fail to load, even with CUDA "available".
    with pytest.raises(ProviderChoiceError, match="runs CPUExecutionProvider, which is not in"):
        judge([CUDA], CPU)
