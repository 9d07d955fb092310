"""A snapshot opened in the stepper: stage 4's fused MultiHeadAttention computes that trained layer."""
import numpy as np
import pytest
import torch

from core.config import ConfigError
from core.train.model import MultiHeadAttention
from core.train.runner import train
from core.train.stepper import stepper_source
from core.trace import build_trace
from tests.core.train.conftest import small


@pytest.fixture(scope="module")
def run():
    return train(small(steps=20, snapshot_every=10))


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("layer", [0, 1])
def test_the_multihead_stage_equals_the_snapshots_layer(run, index, layer):
    src = stepper_source(run, index, layer)
    trace = build_trace(src.config, inputs=src.inputs, multihead_override=src.multihead)
    snap = run.snapshots[index]
    # float32 on both sides but different kernels (the stage's masked softmax vs the model's
    # masked_fill + softmax): a few ulps apart, far below 1e-5
    np.testing.assert_allclose(trace["multihead", "attn_weights"].numpy(), snap.attn_weights[layer],
                               atol=1e-5, rtol=0)
    # the layer's output on the probe is the next layer's input minus the residual
    if layer + 1 < run.settings.num_layers:
        np.testing.assert_allclose(trace["multihead", "context_vecs"].numpy() + snap.layer_inputs[layer],
                                   snap.layer_inputs[layer + 1], atol=1e-5, rtol=0)


def test_the_multihead_stage_equals_the_chapters_class_loaded_with_the_weights(run):
    src = stepper_source(run, 2, 1)
    d, h, T = run.settings.d_model, run.settings.num_heads, len(run.probe_tokens)
    mha = MultiHeadAttention(d, d, T, 0.0, h)
    with torch.no_grad():
        for role in ("query", "key", "value"):
            getattr(mha, f"W_{role}").weight.copy_(torch.tensor(src.multihead[f"W_{role}"]).T)
        mha.out_proj.weight.copy_(torch.tensor(src.multihead["W_out"]).T)
        mha.out_proj.bias.copy_(torch.tensor(src.multihead["b_out"]))
        ref, ref_w = mha(torch.tensor(src.inputs.array, dtype=torch.float32)[None], return_weights=True)
    trace = build_trace(src.config, inputs=src.inputs, multihead_override=src.multihead)
    torch.testing.assert_close(trace["multihead", "context_vecs"].tensor, ref[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(trace["multihead", "attn_weights"].tensor, ref_w[0], atol=1e-5, rtol=0)
    # the trainable stage keeps its own (drawn) weights: only stage 4 is the trained layer
    assert not np.allclose(trace["trainable", "W_query"].numpy(), src.multihead["W_query"])


def test_a_bad_multihead_override_names_the_weight(run):
    src = stepper_source(run, 0, 0)
    partial = dict(src.multihead)
    del partial["b_out"]
    with pytest.raises(ConfigError, match="multihead.b_out: is missing"):
        build_trace(src.config, inputs=src.inputs, multihead_override=partial)
    with pytest.raises(ConfigError, match="multihead.W_out: must have shape 16 × 16"):
        build_trace(src.config, inputs=src.inputs, multihead_override={**src.multihead, "W_out": np.zeros((2, 2))})
    with pytest.raises(ConfigError, match="multihead.W_key: every weight must be a finite"):
        build_trace(src.config, inputs=src.inputs,
                    multihead_override={**src.multihead, "W_key": np.full((16, 16), np.nan)})
    with pytest.raises(IndexError, match="snapshot must be in 0..2"):
        stepper_source(run, 3, 0)


def test_a_snippet_of_the_trained_stage_writes_its_weights_in_and_prints_the_same_numbers(run):
    import os
    import subprocess
    import sys
    import tempfile

    from core.snippets import snippet
    src = stepper_source(run, 2, 1)
    trace = build_trace(src.config, inputs=src.inputs, multihead_override=src.multihead)
    code = snippet(trace, "multihead", "attn_weights")
    assert code.count("given (a trained layer's)") == 5      # W_query, W_key, W_value, W_out, b_out
    script = code.replace("print(attn_weights.squeeze(0))",
                          "import numpy as np, sys; np.save(sys.argv[1], attn_weights.squeeze(0).numpy())")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.npy")
        proc = subprocess.run([sys.executable, "-c", script, path], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        # the snippet's book-style softmax vs the stage's, float32: a few ulps
        np.testing.assert_allclose(np.load(path), trace["multihead", "attn_weights"].numpy(), atol=1e-6, rtol=0)
    # the wrapper's snippet keeps its drawn heads: only the fused MultiHeadAttention was given weights
    assert "given" not in snippet(trace, "multihead", "wrapper_context_vecs")
