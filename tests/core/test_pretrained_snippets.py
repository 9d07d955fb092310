"""The pretrained stage's code: every intermediate's snippet, run, gives the trace's numbers."""
import contextlib
import io

import pytest
import torch

from core.pretrained import PER_HEAD, build_pretrained
from core.pretrained_config import PretrainedConfig
from core.pretrained_snippets import snippet, stage_code

CONFIGS = {
    "layer3-all-options": PretrainedConfig(layer=3, hide_special=True, full_layer=True, device="cpu"),
    "layer0-head2": PretrainedConfig(layer=0, head=2, device="cpu"),
    "layer5-f64-pieces": PretrainedConfig(text="Tokenization is unbelievably fun", layer=5, head=11,
                                          full_layer=True, dtype="float64", device="cpu"),
}


def run(code: str, label: str) -> tuple[dict, str]:
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(code, f"<snippet {label}>", "exec"), namespace)
    return namespace, printed.getvalue()


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    # the same operations in the same order; 1e-6 leaves room for another BLAS kernel choice
    return a.shape == b.shape and float((a.double() - b.double()).abs().max()) <= 1e-6


# the attention's lines (core.stages.multihead.attention's) run on a batch of one: (1, …) tensors
BATCHED = {"queries", "keys", "attn_scores", "scaled_scores", "attn_weights", "values", "context_heads",
           "context_concat", "context_vecs"}


@pytest.mark.parametrize("key", CONFIGS)
def test_the_last_snippet_recomputes_every_intermediate(key):
    """The last line's snippet runs every line of the stage (one model load per config)."""
    trace = build_pretrained(CONFIGS[key])
    last = [n for n, _line in stage_code(CONFIGS[key]) if n][-1]
    namespace, printed = run(snippet(trace, last), last)
    assert "tensor(" in printed
    head = CONFIGS[key].head
    for item in trace:
        got = namespace[item.name]
        if item.name != last:                                         # the snippet slices only what it prints
            if item.name in BATCHED:
                assert got.shape[0] == 1, item.name
                got = got[0]
            if head is not None and item.name in PER_HEAD:
                got = got[head]
        assert close(got, item.tensor), item.name


@pytest.mark.parametrize("name", ["queries", "scaled_scores", "context_vecs", "token_ids"])
def test_a_snippet_prints_the_traces_shape(name):
    """A batched line's snippet drops the batch axis (and takes the head) before it prints."""
    trace = build_pretrained(CONFIGS["layer0-head2"])
    namespace, _printed = run(snippet(trace, name), name)
    assert close(namespace[name], trace[name].tensor)


def test_a_snippet_stops_at_its_intermediate_and_prints_the_chosen_head():
    trace = build_pretrained(CONFIGS["layer0-head2"])
    namespace, printed = run(snippet(trace, "attn_weights"), "attn_weights")
    assert "context_heads" not in namespace                           # nothing after the printed line
    assert close(namespace["attn_weights"], trace["attn_weights"].tensor)   # head 2's (T, T)
    assert printed.count("\n") >= len(trace.labels)


def test_the_code_lists_every_intermediate_once_in_the_forwards_order():
    """The given lines (tokens, inputs, the checkpoint's weights, the mask), then the attention in
    the order MultiHeadAttention.forward makes it (V after the weights), then the options."""
    cfg = CONFIGS["layer3-all-options"]
    names = [n for n, _line in stage_code(cfg) if n]
    assert sorted(names) == sorted(item.name for item in build_pretrained(cfg))
    assert names == ["token_ids", "inputs", "W_query", "W_key", "W_value", "b_query", "b_key", "b_value",
                     "W_out", "b_out", "mask", "queries", "keys", "attn_scores", "scaled_scores", "attn_weights",
                     "values", "context_heads", "context_concat", "context_vecs", "attn_weights_no_special",
                     "attn_residual", "attn_normed", "ff_hidden", "ff_out", "layer_output"]


def test_unknown_name_is_refused():
    trace = build_pretrained(CONFIGS["layer0-head2"])
    with pytest.raises(KeyError):
        snippet(trace, "layer_output")                                # full_layer is off
    with pytest.raises(KeyError):
        snippet(trace, "attn_weight")
