"""Estimate a training run's peak memory before anything is allocated, and refuse what would not fit.

Torch-free arithmetic on the settings (the Train view checks before it starts a run); only the
available memory of a CUDA device needs torch. The peak, in float32 elements:

- parameters, their gradients and Adam's two moments (4 × P), plus the foreach update's
  temporaries (about 2 × P);
- what autograd keeps per layer for the backward pass: the softmax's attention weights
  (b, h, T, T) and the (b, T, d) copies of queries, keys, values, the merged context and the
  residual stream;
- the widest moment on top of that: a layer's scores, masked scores and scaled scores (or in
  the backward pass the gradients of the same (b, h, T, T) maps), and the head's logits, their
  log-softmax and their gradients (b, T, vocab);
- the snapshots the run keeps until it ends (each: every head's (T, T) weights on the probe, the
  layers' inputs and weights).

Measured on the CPU over eight sizes (each dominated by another term), the estimate is 1.35-1.9 ×
the peak torch's allocator held (tests/core/train/test_budget.py checks 1-2 × on three), and
0.8-1.4 × the process's peak resident set, which adds malloc's slack and the snapshots' numpy
copies. The share of the available memory a run may take is the trace's
(core.memory.BUDGET_SHARE: half), and so is how the available memory is read.
"""
from __future__ import annotations

from core.train.settings import TrainSettings, TrainSettingsError

ITEM_BYTES = 4                 # the model trains in float32
ADAM_COPIES = 6                # parameters, gradients, exp_avg, exp_avg_sq, ~2 update temporaries
KEPT_TT_PER_LAYER = 2          # attn_weights (softmax output) kept for its backward; + 1: malloc's slack per layer
KEPT_TD_PER_LAYER = 6          # queries, keys, values (bmm's copies), context, out_proj output, residual
WIDEST_TT = 4                  # scores, masked scores, scaled scores, softmax output being made
WIDEST_TV = 4                  # logits, log-softmax, its gradient, the logits' gradient
WIDEST_TD = 3                  # embeddings and the gradients flowing through the residual stream


class TrainMemoryError(TrainSettingsError):
    """The run would not fit in memory; ``field`` is empty, the message says what to reduce."""

    def __init__(self, message: str):
        super().__init__("", message)
        self.args = (message,)                         # str(exc) is the message alone

    def __str__(self) -> str:
        return self.message


def parameter_count(s: TrainSettings) -> int:
    """Weights of the model core.train.model builds for ``s``."""
    V, T, d, L = s.vocab_size, s.context_length, s.d_model, s.num_layers
    embeddings = V * d + T * d                         # tok_emb, pos_emb
    per_layer = 4 * d * d + d                          # W_query, W_key, W_value (no bias), out_proj
    head = d * V + V
    return embeddings + L * per_layer + head


def snapshot_count(s: TrainSettings) -> int:
    """Snapshots a run keeps (core.train.runner.snapshot_steps)."""
    return len(range(0, s.steps, s.snapshot_every)) + 1


def snapshot_elements(s: TrainSettings) -> int:
    """Elements one snapshot keeps: every head's weights on the probe, the layers' inputs, the weights."""
    h, T, d, L = s.num_heads, s.context_length, s.d_model, s.num_layers
    return L * (h * T * T + T * d + 4 * d * d + d)


def estimate_train_bytes(s: TrainSettings) -> int:
    """Bytes at the peak of a run: one training step (forward, backward, Adam) at ``s``'s sizes
    plus the snapshots the run keeps until it ends."""
    b, h, T, d, V, L = s.batch_size, s.num_heads, s.context_length, s.d_model, s.vocab_size, s.num_layers
    tt = b * h * T * T                                 # one (b, h, T, T) map
    td = b * T * d                                     # one (b, T, d) activation
    tv = b * T * V                                     # one (b, T, vocab) activation
    elems = (ADAM_COPIES * parameter_count(s)
             + L * (KEPT_TT_PER_LAYER * tt + KEPT_TD_PER_LAYER * td)
             + WIDEST_TT * tt + WIDEST_TV * tv + WIDEST_TD * td
             + snapshot_count(s) * snapshot_elements(s))
    return elems * ITEM_BYTES


def check_train_memory(s: TrainSettings, available: int | None = None, device: str | None = None) -> int:
    """Return the estimate, or raise TrainMemoryError (one line naming what to reduce).

    ``device``: the resolved device ("cpu", "cuda"); None resolves ``s.device``. ``available``:
    the free bytes; None reads them as the trace's memory guard does.
    """
    from core.memory import BUDGET_SHARE, _fmt, available_bytes
    need = estimate_train_bytes(s)
    if available is None:
        if device is None:
            device = "cpu"
            if s.device != "cpu":
                from core.device import resolve_device
                device, _ = resolve_device(s.device)
        available = available_bytes(device)
    budget = int(available * BUDGET_SHARE)
    if need > budget:
        raise TrainMemoryError(
            f"this training needs about {_fmt(need)} but the budget is {_fmt(budget)} "
            f"({int(BUDGET_SHARE * 100)}% of {_fmt(available)} free); reduce the batch ({s.batch_size}), "
            f"seq_len ({s.seq_len}), heads ({s.num_heads}), layers ({s.num_layers}) or d_model ({s.d_model})")
    return need
