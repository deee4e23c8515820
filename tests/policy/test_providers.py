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


def test_gpu_provider_options_fp16_and_engine_cache():
    from qt_policy_node.providers import options

    assert options([CPU]) == {}
    assert options([TENSORRT, CUDA, CPU]) == {TENSORRT: {"trt_fp16_enable": "False"}, CUDA: {"use_tf32": "0"}}
    trt = options([TENSORRT], fp16=True, cache_dir="/tmp/engines")[TENSORRT]
    assert trt == {"trt_fp16_enable": "True", "trt_engine_cache_enable": "True",
                   "trt_engine_cache_path": "/tmp/engines"}
    assert options([CUDA], fp16=True)[CUDA] == {"use_tf32": "1"}


def test_decoder_with_gpu_options_falls_back_cleanly_without_cuda(tmp_path):
    """On a machine without the GPU build, asking for CUDA/TensorRT (with their options) and
    allowing the CPU runs on the CPU, says so, and decodes; without the CPU listed it refuses."""
    import numpy as np
    import onnxruntime as ort
    from helpers.tiny_policy import export_tiny_policy
    from qt_policy_node.decoder import PolicyDecoder, ProviderError
    from qt_policy_node.providers import options

    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA: the fallback path is not reachable here")
    model_dir = export_tiny_policy(tmp_path / "m")
    requested = [TENSORRT, CUDA, CPU]
    runnable = usable(requested, ort.get_available_providers())
    decoder = PolicyDecoder(model_dir, runnable, allow_cpu_fallback=True,
                            provider_options=options(requested, fp16=True, cache_dir=str(tmp_path)))
    assert decoder.provider == CPU
    assert "FALLBACK" in judge(requested, decoder.provider)
    h, w = decoder.image_size
    result = decoder.decode(np.zeros((h, w, 3), np.uint8), np.ones(decoder.embed_dim, np.float32) / 20,
                            np.zeros(decoder.proprio_dim, np.float32) if decoder.proprio_dim else None)
    assert result.bins.shape == (decoder.num_dims,)
    with pytest.raises(ProviderError, match="not available"):
        PolicyDecoder(model_dir, [CUDA], provider_options=options([CUDA]))
