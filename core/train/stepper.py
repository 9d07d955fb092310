"""Open a training snapshot in the stepper: one layer's MultiHeadAttention on the probe sequence.

``stepper_source(run, index, layer)`` gives what the stepper's custom mode needs so that stage 4
(the fused MultiHeadAttention, "multihead") computes exactly that layer of snapshot ``index``:
a config (d_in = d_out = d_model, the run's heads, no qkv bias, causal, no dropout), the layer's
input on the probe as edited inputs (T × d, probe tokens as labels) and the layer's five weights
for ``build_trace(..., multihead_override=...)``. Its attn_weights then equal the snapshot's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.config import AttentionConfig
from core.inputs import Inputs


@dataclass(frozen=True, eq=False)
class StepperSource:
    config: AttentionConfig
    inputs: Inputs                      # (T, d_model): the residual stream entering the layer
    multihead: dict[str, np.ndarray]    # W_query, W_key, W_value, W_out (d × d), b_out (d,)
    run: object                         # the TrainRun it comes from (a lesson saves it)
    index: int                          # the snapshot's index in run.snapshots
    layer: int

    @property
    def step(self) -> int:
        """The snapshot's training step."""
        return self.run.snapshots[self.index].step

    def __str__(self) -> str:
        return f"{self.run.settings.task} run, step {self.step}, layer {self.layer}"


def stepper_source(run, index: int, layer: int) -> StepperSource:
    """The stepper's config, inputs and MultiHeadAttention weights for layer ``layer`` of snapshot ``index``."""
    if not 0 <= index < len(run.snapshots):
        raise IndexError(f"snapshot must be in 0..{len(run.snapshots) - 1}, got {index}")
    w = run.stage4_weights(index, layer)
    s = run.settings
    tokens = tuple(run.probe_tokens)
    config = AttentionConfig(embeddings="random", text=" ".join(tokens), d_in=s.d_model, d_out=s.d_model,
                             num_heads=s.num_heads, init="linear", seed=s.seed % (2**63), causal=True,
                             dropout=0.0, qkv_bias=False, batch=1, device="cpu", dtype="float32")
    # float32 values widened to float64 exactly: the trace's float32 tensor gets the trained numbers back
    inputs = Inputs(tokens, w.pop("inputs").astype(np.float64))
    return StepperSource(config, inputs, w, run, index, layer)
