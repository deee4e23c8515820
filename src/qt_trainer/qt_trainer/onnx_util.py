"""One place that calls torch.onnx.export, so every artefact is exported the same way."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17


def onnx_export(model: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                dynamic_axes: dict) -> None:
    """TorchScript-based export (``dynamo=False``): needs no onnxscript, traces Python loops
    into a flat (unrolled) graph, which is what the single-``session.run`` decoder wants."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True)
