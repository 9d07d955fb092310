"""Stage 5's code panel: the attention's lines are core.stages.multihead.attention's, read by
core.stages.lines (not written a second time), and run to the stage's trace of the real model."""
import importlib.util
import inspect

import pytest
import torch

from core import minilm
from core.pretrained import build_pretrained
from core.pretrained_config import PretrainedConfig
from core.stages import multihead
from core.stages import pretrained as stage
from core.stages.lines import lines
from core.weights import ROLES

GIVEN = ["W_query", "W_key", "W_value", "b_query", "b_key", "b_value", "W_out", "b_out", "mask"]

FULL_LAYER = ("attn_residual", "attn_normed", "ff_hidden", "ff_out", "layer_output")   # the rest of the layer, in order


EPS_LINE = "eps = 1e-12  # LayerNorm's ε (config.json's layer_norm_eps)"


def _run_lines(trace, code) -> dict:
    """The panel's lines from the batch of one on (the attention), then from ``eps`` on (the rest
    of the layer, when shown), run on the trace's inputs, weights and mask and the layer's weights."""
    start = code.index((None, stage.BATCH))
    env = {"torch": torch, "F": torch.nn.functional, "num_heads": 12, "inputs": trace["inputs"].tensor,
           **{n: trace[n].tensor for n in GIVEN}}
    exec("\n".join(line for _n, line in code[start:start + 1 + len(stage.attention_lines())]), env)
    if (None, EPS_LINE) in code:
        weights = minilm.load().on("cpu", torch.float32)[1][trace.config.layer]
        env.update({n: getattr(weights, n) for r in stage.REST_WEIGHTS for n in r[:2]})
        exec("\n".join(line for _n, line in code[code.index((None, EPS_LINE)):]), env)
    return env


@pytest.mark.parametrize("options", [{}, {"hide_special": True, "full_layer": True}], ids=["plain", "all-options"])
def test_the_panels_attention_is_the_chapters_forward_and_runs_to_the_trace(options):
    cfg = PretrainedConfig(text="The dog bit him", layer=2, device="cpu", **options)
    code = stage.code(cfg)
    values = {**{f'qkv["{r}"].{k}': f"{k}_{r}" for r in ROLES for k in "Wb"}, "out_proj.W": "W_out", "out_proj.b": "b_out"}
    chapter = [line for n, line in lines(multihead.attention, values=values)]
    start = code.index((None, stage.BATCH)) + 1
    shown = [line for _n, line in code[start:start + len(chapter) + 1] if not line.startswith("scaled_scores =")]
    assert shown == chapter                                     # section 3.6's lines, in its order, none rewritten
    trace = build_pretrained(cfg)
    env = _run_lines(trace, code)
    made = [n for n, _line in stage.attention_lines() if n]
    assert made == ["queries", "keys", "attn_scores", "scaled_scores", "attn_weights", "values", "context_heads",
                    "context_concat", "context_vecs"]
    for name in made:
        assert env[name].shape[0] == 1, name                    # the batch of one
        # the trace ran the same operations on the same tensors, in the same order
        assert torch.equal(env[name][0], trace[name].tensor), name
    rest = [n for n, _line in code[code.index((None, EPS_LINE)):] if n] if cfg.full_layer else []
    assert rest == (list(FULL_LAYER) if cfg.full_layer else [])
    for name in rest:                                           # rest_of_layer's lines, on the one sentence
        assert torch.equal(env[name], trace[name].tensor), name


def _edited(module, edit: str, tmp_path):
    """A copy of ``module`` with ``edit`` (old, new) made in its source."""
    source = inspect.getsource(module)
    assert source.count(edit[0]) == 1
    path = tmp_path / f"edited_{module.__name__.rsplit('.', 1)[-1]}.py"
    path.write_text(source.replace(*edit))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    edited = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(edited)
    return edited


EDITS = {   # the forward, the edit, the panel line it makes, and the tensors it changes
    "multihead.attention": (multihead, "attention", ("ops.mix(ops.dropout(attn_weights), values)",
                                                     "ops.mix(ops.dropout(attn_weights), values) * 2"),
                            ("context_heads", "context_heads = attn_weights @ values * 2  # (b, h, T, hd)"),
                            ("context_heads", "context_vecs", "layer_output")),
    "pretrained.rest_of_layer": (stage, "rest_of_layer", ("F.gelu(", "F.relu("),
                                 ("ff_hidden", "ff_hidden = F.relu(attn_normed @ W_ff_in + b_ff_in)  # (T, d_model) -> (T, d_ff)"),
                                 ("ff_hidden", "ff_out", "layer_output")),
}


@pytest.mark.parametrize("key", EDITS)
def test_editing_a_forward_edits_stage5s_panel_and_trace(key, monkeypatch, tmp_path):
    """An edit to the forward shows in stage 5's panel, and the panel's lines still give stage 5's
    (now different) numbers: one forward, read for both."""
    module, fn, edit, line, changed = EDITS[key]
    cfg = PretrainedConfig(text="The dog bit him", layer=0, full_layer=True, device="cpu")
    before = build_pretrained(cfg)
    monkeypatch.setattr(module, fn, getattr(_edited(module, edit, tmp_path), fn))
    code = stage.code(cfg)
    assert line in code
    after = build_pretrained(cfg)
    env = _run_lines(after, code)
    batched = {n for n, _line in stage.attention_lines() if n}
    for name in changed:
        assert not torch.allclose(after[name].tensor, before[name].tensor), name
        got = env[name][0] if name in batched else env[name]
        assert torch.equal(got, after[name].tensor), name
