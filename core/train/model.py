"""The toy model: token + position embeddings -> L × (causal MultiHeadAttention + residual) -> linear head.

``MultiHeadAttention`` is chapter 3's class (nn.Linear W_query/W_key/W_value, a registered triu
mask, dropout, out_proj) whose forward is the stage's (core.stages.multihead.attention) run
with its layers; for a learner, the masked scores are a new tensor (not the book's
``masked_fill_``) and ``forward`` can also return the attention weights (the snapshots').

Weights are drawn from an explicit ``torch.Generator`` with nn.Linear's and nn.Embedding's
default distributions, never from the global RNG, so a run started in a worker thread is
reproducible whatever else draws random numbers meanwhile.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from core.stages import multihead
from core.stages.ops import Ops


class MultiHeadAttention(nn.Module):
    """Chapter 3's causal multi-head attention (section 3.6.2)."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        num_tokens = x.shape[1]
        may_attend = self.mask[:num_tokens, :num_tokens] == 0                     # (T, T): the chapter's mask, 1 = may attend
        qkv = {"query": self.W_query, "key": self.W_key, "value": self.W_value}
        named = multihead.attention(x, qkv, self.out_proj, self.num_heads, may_attend, _LayerOps(self.dropout))
        context_vec = named["context_vecs"]                                        # (b, T, d_out)
        return (context_vec, named["attn_weights"]) if return_weights else context_vec


class _LayerOps(Ops):
    """The chapter's ops with this module's layers: nn.Linear projections (``layer(x)``), nn.Dropout."""

    def __init__(self, dropout: nn.Dropout):
        super().__init__()
        self._dropout = dropout

    def project(self, x: torch.Tensor, layer: nn.Linear, role: str | None = None) -> torch.Tensor:
        return layer(x)

    def dropout(self, weights: torch.Tensor) -> torch.Tensor:
        return self._dropout(weights)


class AttentionOnlyModel(nn.Module):
    """Embeddings, then layers of attention each added to the residual stream, then a linear head.

    No MLPs and no layer norm: what the model can do, it does with attention alone (as in
    Olsson et al.'s attention-only transformers), so the heads are the whole story.
    """

    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_heads: int, num_layers: int):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(context_length, d_model)
        self.layers = nn.ModuleList(
            MultiHeadAttention(d_model, d_model, context_length, 0.0, num_heads) for _ in range(num_layers))
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, token_ids: torch.Tensor, record: bool = False):
        """(b, T) token ids -> (b, T, vocab) logits; with ``record``, also per layer
        (layer input (b, T, d), attn_weights (b, h, T, T))."""
        b, num_tokens = token_ids.shape
        positions = torch.arange(num_tokens, device=token_ids.device)
        x = self.tok_emb(token_ids) + self.pos_emb(positions)                      # (b, T, d)
        recorded = []
        for layer in self.layers:
            if record:
                out, weights = layer(x, return_weights=True)
                recorded.append((x, weights))
            else:
                out = layer(x)
            x = x + out                                                            # residual
        logits = self.head(x)                                                      # (b, T, vocab)
        return (logits, recorded) if record else logits


@torch.no_grad()
def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """nn.Linear's and nn.Embedding's default init, drawn from ``generator`` in module order.

    nn.Linear: weight and bias ~ U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with a = √5 has that bound);
    nn.Embedding: N(0, 1).
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.in_features)
            module.weight.uniform_(-bound, bound, generator=generator)
            if module.bias is not None:
                module.bias.uniform_(-bound, bound, generator=generator)
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, 1.0, generator=generator)


def build_model(vocab_size: int, context_length: int, d_model: int, num_heads: int, num_layers: int,
                seed: int) -> AttentionOnlyModel:
    """A model on the CPU with weights drawn from a generator seeded with ``seed``."""
    # Built on the meta device: nn.Linear's constructor would otherwise draw from the global RNG,
    # which the stepper's own weight draws (fork_rng + manual_seed on the UI side) rely on.
    with torch.device("meta"):
        model = AttentionOnlyModel(vocab_size, context_length, d_model, num_heads, num_layers)
    model = model.to_empty(device="cpu")
    init_weights(model, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for layer in model.layers:  # to_empty left the registered mask uninitialised
            layer.mask.copy_(torch.triu(torch.ones(context_length, context_length), diagonal=1))
    return model


def layer_weights(layer: MultiHeadAttention) -> dict[str, torch.Tensor]:
    """One layer's weights in the stepper's x @ W convention (W = weight.T), as CPU float32 copies."""
    def t(p: torch.Tensor) -> torch.Tensor:
        return p.detach().to("cpu", torch.float32).clone()
    return {
        "W_query": t(layer.W_query.weight.T),      # (d_in, d_out)
        "W_key": t(layer.W_key.weight.T),
        "W_value": t(layer.W_value.weight.T),
        "W_out": t(layer.out_proj.weight.T),       # (d_out, d_out)
        "b_out": t(layer.out_proj.bias),           # (d_out,)
    }
