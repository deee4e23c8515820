#!/usr/bin/env python3
"""Derive the CUDA image's node parameters from the policy node's own config/run.yaml.

The only difference is the ONNX Runtime provider list of the policy node: CUDA alone, so that
a container started without a GPU (no `--gpus all`, no NVIDIA Container Toolkit, missing CUDA
libraries) stops with the node's provider error instead of silently deciding on the CPU at a
lower rate. Deriving it at build time keeps run.yaml the single source of every other value.

    cuda_params.py SRC_RUN_YAML DST_YAML
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

PARAMETER = "execution_providers"
CUDA_PROVIDERS = ["CUDAExecutionProvider"]


def derive(source: dict) -> dict:
    """`source` with the policy node's provider list replaced; raises if the parameter moved."""
    sections = [key for key in source if str(key).rstrip("/").endswith("policy_node")]
    if not sections:
        raise ValueError("no policy_node section (expected a key like '/**/policy_node')")
    for key in sections:
        params = source[key].get("ros__parameters", {})
        if PARAMETER not in params:
            raise ValueError(f"{key}: ros__parameters has no {PARAMETER!r}; the node's parameter was renamed?")
        params[PARAMETER] = list(CUDA_PROVIDERS)
    return source


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    src, dst = Path(argv[0]), Path(argv[1])
    try:
        derived = derive(yaml.safe_load(src.read_text()))
    except (OSError, ValueError, AttributeError) as exc:
        print(f"cuda_params.py: {src}: {exc}", file=sys.stderr)
        return 1
    header = (f"# Generated at image build time from {src} by docker/cuda_params.py:\n"
              f"# identical except the policy node's {PARAMETER}: {CUDA_PROVIDERS}.\n")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(header + yaml.safe_dump(derived, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
