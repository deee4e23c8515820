"""Which ONNX Runtime execution provider may run the policy, and whether the one running is OK.

Why: ONNX Runtime falls back to the CPU without a word when a GPU provider cannot start
(FIELD-NOTES "ONNX Runtime"). The rule here is that the ``execution_providers`` parameter is
both the order of preference and the complete list of what may run: a provider that is not
listed never runs (the node refuses to configure), and running anything but the first choice
is reported loudly (log, PolicyStatus.execution_provider, /diagnostics at WARN level).
"""

from __future__ import annotations

from collections.abc import Sequence

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

ALIASES = {"cpu": CPU, "cuda": CUDA, "gpu": CUDA, "tensorrt": TENSORRT, "trt": TENSORRT}


class ProviderChoiceError(ValueError):
    """No acceptable provider can run the model."""


def normalize(names: Sequence[str]) -> list[str]:
    """Accept ORT names and short aliases; keep order, drop duplicates."""
    out: list[str] = []
    for name in names:
        full = ALIASES.get(str(name).strip().lower(), str(name).strip())
        if full and full not in out:
            out.append(full)
    if not out:
        raise ProviderChoiceError("execution_providers: expected at least one provider, e.g. ['cuda', 'cpu']")
    return out


def usable(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """The requested providers this onnxruntime build offers, in preference order."""
    chosen = [p for p in requested if p in available]
    if not chosen:
        raise ProviderChoiceError(
            f"execution_providers: none of {list(requested)} is available in this onnxruntime build "
            f"(available: {list(available)}); install onnxruntime-gpu for GPU providers (never together "
            "with onnxruntime) or add CPUExecutionProvider to the list"
        )
    return chosen


def options(names: Sequence[str], *, fp16: bool = False, cache_dir: str = "") -> dict[str, dict[str, str]]:
    """ONNX Runtime provider options for the GPU providers among ``names`` (the CPU takes none).

    TensorRT: ``fp16`` lets it pick fp16 kernels where faster (the exported graph stays fp32;
    the bins can then differ from the CPU's where two bins are nearly tied), and ``cache_dir``
    keeps built engines so a restart does not rebuild them (seconds to minutes). CUDA: TF32
    matrix arithmetic only with ``fp16`` (otherwise plain fp32, the precision the export was
    verified in); the graph runs in its own fp32 precision either way.
    """
    out: dict[str, dict[str, str]] = {}
    for name in names:
        if name == TENSORRT:
            out[name] = {"trt_fp16_enable": "True" if fp16 else "False"}
            if cache_dir:
                out[name].update(trt_engine_cache_enable="True", trt_engine_cache_path=str(cache_dir))
        elif name == CUDA:
            out[name] = {"use_tf32": "1" if fp16 else "0"}
    return out


def judge(requested: Sequence[str], running: str) -> str:
    """'' when the first choice runs; a warning when a listed fallback runs; raises otherwise."""
    if running not in requested:
        raise ProviderChoiceError(
            f"execution_providers: ONNX Runtime runs {running}, which is not in {list(requested)} "
            "(a requested GPU provider failed to start; check the CUDA/TensorRT libraries)"
        )
    if running == requested[0]:
        return ""
    return (
        f"execution provider FALLBACK: requested {requested[0]} first, running {running} "
        f"(allowed because it is listed in execution_providers {list(requested)})"
    )
