"""Sizes and helpers for the tests against torch's own attention (F.scaled_dot_product_attention,
nn.MultiheadAttention): tokens 1..600, d_in, d_out, heads, causal, qkv_bias, batch, init, in
float32 (max |diff| ≤ 1e-5) and float64 (≤ 1e-10)."""
import torch

from core import AttentionConfig

TOL = {"float32": 1e-5, "float64": 1e-10}

# (tokens, d_in, d_out, heads, causal, qkv_bias, batch, init)
SIZES = [
    (1, 3, 2, 2, True, False, 1, "linear"),
    (2, 1, 1, 1, True, True, 1, "linear"),
    (6, 3, 2, 2, True, False, 2, "linear"),
    (6, 3, 4, 2, False, False, 1, "rand"),
    (7, 5, 6, 3, True, True, 3, "linear"),
    (16, 8, 8, 8, False, True, 2, "linear"),
    (33, 16, 12, 4, True, False, 1, "rand"),
    (64, 16, 16, 2, True, True, 2, "linear"),
    (64, 32, 24, 6, False, False, 1, "linear"),
]
IDS = [f"T{t}-din{di}-dout{do}-h{h}-{'causal' if c else 'full'}{'-bias' if qb else ''}-b{b}-{init}"
       for t, di, do, h, c, qb, b, init in SIZES]


def make_config(size, dtype) -> AttentionConfig:
    tokens, d_in, d_out, heads, causal, qkv_bias, batch, init = size
    text = " ".join(f"w{i}" for i in range(tokens))
    return AttentionConfig(embeddings="random", text=text, d_in=d_in, d_out=d_out, num_heads=heads,
                           causal=causal, qkv_bias=qkv_bias, batch=batch, init=init, seed=7,
                           device="cpu", dtype=dtype)


def batched(t: torch.Tensor, b: int) -> torch.Tensor:
    return t if b > 1 else t.unsqueeze(0)


def max_diff(a, b) -> float:
    return float((a - b).abs().max())


# nn.MultiheadAttention projects a query of width embed_dim, so there d_in == d_out.
MHA_SIZES = [s for s in SIZES if s[1] == s[2]] + [
    (1, 4, 4, 2, True, True, 1, "linear"),
    (6, 2, 2, 2, True, False, 2, "linear"),
    (21, 12, 12, 3, True, True, 2, "rand"),
    (64, 24, 24, 6, True, False, 1, "linear"),
    (64, 64, 64, 8, False, True, 1, "linear"),
    # large enough for the CPU fast paths of core.engine (tested against torch at every size):
    (300, 16, 16, 4, True, True, 2, "linear"),    # causal A·V in row blocks (T ≥ 256), ragged last block
    (512, 16, 16, 8, True, False, 1, "linear"),   # softmax in row chunks (scores ≥ 8 MiB), √d_k = √2
    (520, 32, 32, 8, True, True, 1, "rand"),      # chunks that do not divide T, √d_k = 2
    (600, 16, 16, 8, False, False, 1, "linear"),  # no mask, in chunks
]
MHA_IDS = [f"T{t}-d{di}-h{h}-{'causal' if c else 'full'}{'-bias' if qb else ''}-b{b}-{init}"
           for t, di, do, h, c, qb, b, init in MHA_SIZES]


# Configs the trace's invariants and the chapter's equalities are asserted over.
VARIED_CONFIGS = [
    AttentionConfig(),
    AttentionConfig(init="rand", seed=123),
    AttentionConfig(init="linear", seed=789, dropout=0.5),
    AttentionConfig(embeddings="random", text="The cat sat on the mat , and the cat slept .", d_in=5,
                    d_out=6, num_heads=3, qkv_bias=True, batch=2, dropout=0.25, dropout_seed=9),
    AttentionConfig(embeddings="random", text="a b c d e f g h", d_in=4, d_out=8, num_heads=4,
                    causal=False, dtype="float64"),
]
VARIED_IDS = ["book-default", "v1", "v2-dropout", "own-text-bias-batch", "noncausal-f64"]
