"""A tiny, untrained but real exported policy for tests that need a models/<name>/ directory.

The weights are random (seeded) yet the artefact is produced by the real exporter
(qt_trainer.export), so policy.onnx / policy.json follow the contract exactly. Imports torch:
use it from test code, never from the node under test (which must not import torch).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_INSTRUCTIONS = ("pick up the red block", "push the blue block to the left")


def export_tiny_policy(
    out_dir: str | Path,
    *,
    image_size: tuple[int, int] = (48, 64),
    proprio_dim: int = 0,
    algorithm: str = "q_transformer",
    seed: int = 0,
    instructions: tuple[str, ...] = DEFAULT_INSTRUCTIONS,
    control_rate_hz: float = 10.0,
    action_spec=None,
) -> Path:
    """Write policy.onnx + policy.json into ``out_dir`` and return it.

    ``image_size`` is (height, width); non-square on purpose so H/W swaps fail loudly.
    The card caches the real all-MiniLM-L6-v2 embedding of each of ``instructions``.
    """
    import torch
    from qt_common.action_spec import ActionSpec
    from qt_trainer.config import MODEL_SIZES, ModelConfig
    from qt_trainer.export import export_policy
    from qt_trainer.model import QTransformer
    from qt_trainer.text import TEXT_ENCODER_ID, SentenceEmbedder

    spec = action_spec or ActionSpec.default()
    cfg = ModelConfig(
        algorithm=algorithm,
        image_height=image_size[0],
        image_width=image_size[1],
        num_dims=spec.num_dims,
        num_bins=spec.num_bins,
        proprio_dim=proprio_dim,
        **MODEL_SIZES["tiny"],
    )
    torch.manual_seed(seed)
    model = QTransformer(cfg).eval()
    vectors = SentenceEmbedder().embed(list(instructions))
    embeddings = {text: vector.tolist() for text, vector in zip(instructions, vectors, strict=True)}
    training = {"data_digest": "untrained", "command": "tests/helpers/tiny_policy.py", "steps": 0, "seed": seed,
                "wall_time_s": 0.0}
    return export_policy(model, spec, Path(out_dir), name="tiny", embeddings=embeddings,
                         text_encoder_id=TEXT_ENCODER_ID, control_rate_hz=control_rate_hz, training=training)
