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
    assert code["attn_scores"] == "attn_scores = queries @ keys.T"
    assert code["queries"] == "queries = inputs @ W_query"
