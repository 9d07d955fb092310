"""The copied snippet, run with python, prints the step's matrix equal to the trace's."""
import re
import subprocess
import sys

import numpy as np
import pytest

from core import AttentionConfig, build_trace
from core.snippets import snippet, stage_code

CONFIGS = {
    "book": AttentionConfig(),
    "rand-bias-batch-dropout": AttentionConfig(init="rand", seed=5, qkv_bias=True, batch=2, dropout=0.3,
                                               d_out=4, num_heads=2),
    "text-f64-noncausal": AttentionConfig(embeddings="random", text="a cat , a hat !", d_in=4, d_out=6,
                                          num_heads=3, causal=False, dtype="float64", qkv_bias=True),
}


def parse_printed(text: str) -> np.ndarray:
    body = text[text.index("tensor(") + len("tensor("):]
    body = body[:body.rindex("]") + 1]
    nums = re.findall(r"-?inf|-?\d+\.\d*(?:e[-+]?\d+)?|-?\d+", body)
    return np.array([float(n) for n in nums])


def run_all_snippets(trace):
    """One python process per stage: every intermediate's snippet, separated by markers."""
    outputs = {}
    for stage, items in trace.stages.items():
        script = []
        for name in items:
            code = snippet(trace, stage, name)
            script.append(f"print('@@@ {name}')\nexec({code!r}, {{}})")
        res = subprocess.run([sys.executable, "-c", "\n".join(script)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        for chunk in res.stdout.split("@@@ ")[1:]:
            name, _, printed = chunk.partition("\n")
            outputs[stage, name] = printed
    return outputs


@pytest.mark.parametrize("cfg_name", list(CONFIGS))
def test_every_snippet_prints_the_trace_numbers(cfg_name):
    trace = build_trace(CONFIGS[cfg_name])
    outputs = run_all_snippets(trace)
    for item in trace:
        got = parse_printed(outputs[item.key])
        expected = item.numpy().astype(np.float64).ravel()
        assert got.shape == expected.shape, item.key
        fin = np.isfinite(expected)
        assert np.array_equal(np.isfinite(got), fin), item.key
        assert np.max(np.abs(got[fin] - expected[fin]), initial=0) <= 1e-6, item.key


def test_stage_code_names_every_intermediate():
    cfg = AttentionConfig(qkv_bias=True, batch=2)
    trace = build_trace(cfg)
    for stage, items in trace.stages.items():
        named = {n for n, _ in stage_code(cfg, stage)}
        missing = set(items) - named - {"inputs"}
        assert not missing, (stage, missing)


def test_book_style_lines():
    code = dict((n, l) for n, l in stage_code(AttentionConfig(), "trainable") if n)
    assert code["attn_scores"] == "attn_scores = queries @ keys.T  # (T, T)"
    assert code["queries"] == "queries = inputs @ W_query  # (T, d_in) -> (T, d_out)"


@pytest.mark.parametrize("init", ["rand", "linear"])
def test_the_draw_line_is_tagged_with_its_weight_and_given_weights_keep_the_random_sequence(init):
    """No "# W_query: drawn above" marker lines: the line that draws a weight is the weight's
    line. A weight written into a snippet (edited in the app, or given) replaces the drawn values
    on that line, but the draw stays (``_ = torch.rand(...)`` / the nn.Linear line), so the weights
    drawn after it are the trace's: W_key and W_value are not shifted in the random sequence."""
    from core.snippets import with_given
    cfg = AttentionConfig(init=init, seed=5, qkv_bias=True, d_out=4, num_heads=2)
    trace = build_trace(cfg)
    for stage in ("trainable", "causal", "multihead"):
        lines = stage_code(cfg, stage)
        assert not any("drawn above" in line for _, line in lines), stage
        tagged = dict((n, l) for n, l in lines if n in ("W_query", "b_key"))
        assert tagged["W_query"].startswith("W_query = ") and tagged["b_key"].startswith("b_key = "), stage
    w_q = np.arange(cfg.d_in * cfg.d_out, dtype=np.float32).reshape(cfg.d_in, cfg.d_out) / 10
    code = snippet(trace, "trainable", "keys").split("\n")
    lit = "torch.tensor([" + ", ".join("[" + ", ".join(repr(float(v)) for v in row) + "]" for row in w_q) + "])"
    edited = "\n".join(with_given(code, {"W_query": lit}, "edited")).replace("print(keys)", "print(keys, W_query)")
    assert "W_query = torch.tensor(" in edited
    res = subprocess.run([sys.executable, "-c", edited], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    keys_part, _, wq_part = res.stdout.partition(") tensor(")
    keys = parse_printed(keys_part + ")")
    np.testing.assert_allclose(keys, trace["trainable", "keys"].numpy().ravel(), atol=1e-6)   # same draws after
    np.testing.assert_allclose(parse_printed("tensor(" + wq_part), w_q.ravel(), atol=1e-6)    # the given values
