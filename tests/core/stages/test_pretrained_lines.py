"""Stage 5's code panel: the attention's lines are core.stages.multihead.attention's, read by
core.stages.lines (not written a second time), and run to the stage's trace of the real model."""
import importlib.util
import inspect

import pytest
import torch

from core.pretrained import build_pretrained
from core.pretrained_config import PretrainedConfig
from core.stages import multihead
from core.stages import pretrained as stage
from core.stages.lines import lines
from core.weights import ROLES

GIVEN = ["W_query", "W_key", "W_value", "b_query", "b_key", "b_value", "W_out", "b_out", "mask"]


def _run_attention_lines(trace, code) -> dict:
    """The panel's lines from the batch of one on, run on the trace's inputs, weights and mask."""
    start = code.index((None, stage.BATCH))
    env = {"torch": torch, "num_heads": 12, "inputs": trace["inputs"].tensor,
           **{n: trace[n].tensor for n in GIVEN}}
    attention = [line for _n, line in code[start:start + 1 + len(stage.attention_lines())]]
    exec("\n".join(attention), env)
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
    env = _run_attention_lines(trace, code)
    made = [n for n, _line in stage.attention_lines() if n]
    assert made == ["queries", "keys", "attn_scores", "scaled_scores", "attn_weights", "values", "context_heads",
                    "context_concat", "context_vecs"]
    for name in made:
        assert env[name].shape[0] == 1, name                    # the batch of one
        # the trace ran the same operations on the same tensors, in the same order
        assert torch.equal(env[name][0], trace[name].tensor), name


def test_editing_the_chapters_forward_edits_stage5s_panel_and_trace(monkeypatch, tmp_path):
    """An edit to MultiHeadAttention.forward shows in stage 5's panel, and its lines still give
    stage 5's (now different) numbers: one forward, read for both."""
    cfg = PretrainedConfig(text="The dog bit him", layer=0, device="cpu")
    before = build_pretrained(cfg)
    source = inspect.getsource(multihead)
    edit = "ops.mix(ops.dropout(attn_weights), values)"
    assert source.count(edit) == 1
    path = tmp_path / "edited_multihead.py"
    path.write_text(source.replace(edit, edit + " * 2"))
    spec = importlib.util.spec_from_file_location("edited_multihead", path)
    edited = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(edited)
    monkeypatch.setattr(multihead, "attention", edited.attention)
    code = stage.code(cfg)
    assert ("context_heads", "context_heads = attn_weights @ values * 2  # (b, h, T, hd)") in code
    after = build_pretrained(cfg)
    assert torch.equal(after["context_heads"].tensor, 2 * before["context_heads"].tensor)
    env = _run_attention_lines(after, code)
    for name in ("context_heads", "context_vecs"):
        assert torch.equal(env[name][0], after[name].tensor), name
