"""Property tests (issue 6): over random configs and inputs, ``core`` either returns a trace
whose invariants hold or raises ConfigError naming a field, never anything else.

Invariants: every attention-weight row sums to 1; masked entries are exactly 0; masked
scores are −inf exactly where the mask is 0; shapes as DESIGN.md's vocabulary says (with a
leading batch axis for the causal and multi-head stages when batch > 1); every value finite
except the masked scores' −inf; dropped weights = weights × mask / (1 − p); axis labels fit.

Kept short for CI (about 80 examples per property); more with PROPERTY_EXAMPLES=2000.
"""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import torch
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from core.config import (BOOK_TEXT, DEVICES, DTYPES, INITS, MAX_ABS_EMBEDDING, MAX_BATCH, MAX_DIM, MAX_HEADS,
                         MAX_SEED, AttentionConfig, ConfigError)
from core.inputs import BOOK_TOKENS, Inputs, tokenize
from core.trace import build_trace
from core.vocabulary import VOCABULARY

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "80"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FIELDS = {f.name for f in dataclasses.fields(AttentionConfig)}
WEIGHT_ROWS = [("simplified", "attn_weights"), ("trainable", "attn_weights"), ("causal", "attn_weights"),
               ("causal", "renormalized_weights"), ("multihead", "attn_weights")]
MASKED_WEIGHTS = [("causal", "attn_weights"), ("causal", "masked_simple"), ("causal", "renormalized_weights"),
                  ("causal", "dropped_weights"), ("multihead", "attn_weights")]

# ----------------------------------------------------------------------------- strategies

WORD_CHARS = "abcXYZ019éßøñçÅΩжя中文字ひらがなكتب"
PUNCT = list(".,;:!?¿¡—–-()[]{}\"'«»…·•@#$%&*/\\|~^`+=<>€£¥") + ["🙂", "😀", "👍🏽", "\u0301", "\u200b"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003"]

piece = st.one_of(st.text(alphabet=WORD_CHARS, min_size=1, max_size=6), st.sampled_from(PUNCT))


def mostly(valid, invalid):
    """Valid values 15 times in 16, so that about half the configs validate."""
    return st.integers(0, 15).flatmap(lambda k: invalid if k == 5 else valid)  # shrinks towards valid


def small_or_bad(lo: int, hi: int):
    return mostly(st.integers(lo, hi), st.sampled_from([0, -1, -7, MAX_DIM + 1, 10**30]))


@st.composite
def texts(draw) -> str:
    """Mostly 1..24 words/punctuation with odd whitespace; sometimes blank or any unicode."""
    kind = draw(st.integers(0, 15))
    if kind == 14:
        return draw(st.text(max_size=40))                                  # any unicode, maybe no tokens
    if kind == 15:
        return draw(st.sampled_from(["", " ", "\t\n", "\u00a0\u3000", "   \r\n  ", "\u200b"]))  # blank
    parts = draw(st.lists(piece, min_size=1, max_size=24))
    seps = draw(st.lists(st.sampled_from(SPACES + [""]), min_size=len(parts) + 1, max_size=len(parts) + 1))
    text = seps[0] + "".join(p + s for p, s in zip(parts, seps[1:]))
    assume(len(tokenize(text)) <= 48)
    return text


@st.composite
def config_kwargs(draw) -> dict:
    embeddings = draw(mostly(st.sampled_from(["random"] * 5 + ["book"]), st.sampled_from(["", "  ", "Book"])))
    if embeddings == "book" and draw(mostly(st.just(True), st.just(False))):
        text, d_in = BOOK_TEXT, draw(mostly(st.just(3), st.sampled_from([2, 4])))
    else:
        text, d_in = draw(texts()), draw(small_or_bad(1, 8))
    heads = draw(small_or_bad(1, 4))
    if draw(st.integers(0, 7)) and heads > 0:
        d_out = heads * draw(st.integers(1, 3))                             # mostly divisible
    else:
        d_out = draw(small_or_bad(1, 8))                                    # often not
    dropout = draw(mostly(
        st.one_of(st.sampled_from([0.0, 0.0, 0.1, 0.5, 0.9999999]), st.floats(0.0, 0.999)),
        st.sampled_from([1.0, -0.1, 1.5, -0.0000001, math.nan, math.inf, -math.inf]),
    ))
    seeds = st.one_of(st.integers(0, 2**16), st.sampled_from([0, MAX_SEED]))
    return dict(
        embeddings=embeddings, text=text, d_in=d_in, d_out=d_out, num_heads=heads,
        init=draw(mostly(st.sampled_from(INITS), st.sampled_from(["xavier", "Linear", ""]))),
        seed=draw(mostly(seeds, st.sampled_from([-1, MAX_SEED + 1]))),
        causal=draw(st.booleans()), dropout=dropout,
        dropout_seed=draw(mostly(seeds, st.sampled_from([-5, MAX_SEED + 1]))),
        qkv_bias=draw(st.booleans()), batch=draw(small_or_bad(1, 3)),
        device=draw(mostly(st.sampled_from(("cpu", "auto")), st.sampled_from(("tpu", "CPU", "cuda:9")))),
        dtype=draw(mostly(st.sampled_from(DTYPES), st.sampled_from(("float16", "double", "")))),
    )


def expected_valid(kw: dict) -> bool:
    """An independent statement of what the config must accept (within these strategies)."""
    tokens = tokenize(kw["text"])
    ok = (
        kw["embeddings"] in ("random", "book")
        and bool(kw["text"].strip()) and 1 <= len(tokens)
        and 1 <= kw["d_in"] <= MAX_DIM and 1 <= kw["d_out"] <= MAX_DIM and 1 <= kw["num_heads"] <= MAX_HEADS
        and kw["d_out"] % kw["num_heads"] == 0
        and kw["init"] in INITS
        and 0 <= kw["seed"] <= MAX_SEED and 0 <= kw["dropout_seed"] <= MAX_SEED
        and math.isfinite(kw["dropout"]) and 0.0 <= kw["dropout"] < 1.0
        and 1 <= kw["batch"] <= MAX_BATCH
        and kw["device"] in DEVICES and kw["dtype"] in DTYPES
    )
    if ok and kw["embeddings"] == "book":
        ok = tuple(tokens) == BOOK_TOKENS and kw["d_in"] == 3
    return ok


# ----------------------------------------------------------------------------- invariants

def expected_shapes(cfg: AttentionConfig, T: int) -> dict[tuple[str, str], tuple[int, ...]]:
    d_in, d_out, h, hd = cfg.d_in, cfg.d_out, cfg.num_heads, cfg.d_out // cfg.num_heads
    lead = (cfg.batch,) if cfg.batch > 1 else ()
    tt = (T, T)
    shapes = {
        ("simplified", "inputs"): (T, d_in), ("simplified", "attn_scores"): tt,
        ("simplified", "attn_weights_sumnorm"): tt, ("simplified", "attn_weights"): tt,
        ("simplified", "context_vecs"): (T, d_in),
        ("trainable", "queries"): (T, d_out), ("trainable", "keys"): (T, d_out), ("trainable", "values"): (T, d_out),
        ("trainable", "attn_scores"): tt, ("trainable", "scaled_scores"): tt, ("trainable", "attn_weights"): tt,
        ("trainable", "context_vecs"): (T, d_out),
        ("causal", "mask"): tt,
        **{("causal", n): lead + tt for n in ("attn_scores", "masked_scores", "attn_weights",
                                             "renormalized_weights", "dropout_mask", "dropped_weights")},
        ("causal", "context_vecs"): lead + (T, d_out),
        **{("multihead", n): lead + (h, T, hd) for n in ("queries", "keys", "values", "context_heads")},
        **{("multihead", n): lead + (h, T, T) for n in ("attn_scores", "attn_weights")},
        ("multihead", "context_concat"): lead + (T, d_out), ("multihead", "context_vecs"): lead + (T, d_out),
        ("multihead", "wrapper_context_vecs"): lead + (T, d_out),
        ("multihead", "W_out"): (d_out, d_out), ("multihead", "b_out"): (d_out,),
    }
    for stage in ("trainable", "multihead"):
        for role in ("query", "key", "value"):
            shapes[(stage, f"W_{role}")] = (d_in, d_out)
            if cfg.qkv_bias:
                shapes[(stage, f"b_{role}")] = (d_out,)
    for role in ("query", "key", "value"):
        shapes[("multihead", f"wrapper_W_{role}")] = (h, d_in, hd)
        if cfg.qkv_bias:
            shapes[("multihead", f"wrapper_b_{role}")] = (h, hd)
    return shapes


def check_trace(trace, cfg: AttentionConfig, T: int, check_finite: bool = True) -> None:
    tol = 1e-5 if cfg.dtype == "float32" else 1e-12
    dtype = torch.float32 if cfg.dtype == "float32" else torch.float64
    assert list(trace.stages) == ["simplified", "trainable", "causal", "multihead"]
    assert len(trace.tokens) == T and len(trace.labels) == T and len(set(trace.labels)) == T
    # shapes as the vocabulary says, every DESIGN.md name present, nothing unknown, biases iff qkv_bias
    shapes = expected_shapes(cfg, T)
    for key, shape in shapes.items():
        assert key in trace, f"{key} missing"
        assert trace[key].shape == shape, f"{key}: {trace[key].shape} != {shape}"
    for item in trace:
        assert item.name in VOCABULARY[item.stage], item.key
        if item.name.startswith(("b_", "wrapper_b_")) and item.name != "b_out":
            assert cfg.qkv_bias, f"{item.key} without qkv_bias"
        assert item.tensor.dtype == dtype, item.key
        assert len(item.axes) == item.tensor.dim() and len(item.labels) == item.tensor.dim(), item.key
        for labels, n in zip(item.labels, item.shape):
            assert len(labels) == n, item.key
        if check_finite and item.name != "masked_scores":
            assert torch.isfinite(item.tensor).all(), f"{item.key} has non-finite values"
    # the mask
    mask = trace["causal", "mask"].tensor
    expect_mask = torch.tril(torch.ones(T, T, dtype=dtype)) if cfg.causal else torch.ones(T, T, dtype=dtype)
    assert torch.equal(mask, expect_mask)
    future = mask == 0
    # rows sum to 1, weights in [0, 1]
    for key in WEIGHT_ROWS:
        w = trace[key].tensor
        assert torch.allclose(w.sum(-1), torch.ones((), dtype=dtype), atol=tol, rtol=0), key
        assert (w >= 0).all() and (w <= 1 + tol).all(), key
    # masked entries exactly 0, masked scores −inf exactly where the mask is 0
    for key in MASKED_WEIGHTS:
        w = trace[key].tensor
        assert (w[..., future] == 0).all(), f"{key}: masked entries are not exactly 0"
    for stage in ("causal", "multihead"):
        ms = trace[stage, "masked_scores"].tensor
        assert torch.equal(torch.isneginf(ms), future.expand_as(ms)), f"{stage}.masked_scores: -inf not exactly where mask == 0"
        assert torch.isfinite(ms[..., ~future]).all()
        assert torch.equal(ms[..., ~future], trace[stage, "attn_scores"].tensor[..., ~future])
    # dropout: a 0/1 mask; dropped = weights × mask / (1 − p)
    p = cfg.dropout
    keep = trace["causal", "dropout_mask"].tensor
    assert ((keep == 0) | (keep == 1)).all()
    if p == 0.0:
        assert (keep == 1).all()
    aw = trace["causal", "attn_weights"].tensor
    # exact by construction: the same two elementwise IEEE operations as steps.apply_dropout
    # (correctly rounded on every CPU, vectorised or not)
    assert torch.equal(trace["causal", "dropped_weights"].tensor, aw * keep / (1.0 - p))
    # approach A equals approach B
    assert torch.allclose(trace["causal", "renormalized_weights"].tensor, aw, atol=tol * 10, rtol=0)
    # the stacked copies are copies (dropout draws a different mask per copy). Not bit for bit:
    # x @ W folds the batch into one (b·T) × d_in GEMM, and BLAS kernels treat rows at different
    # positions of M differently (tail tiles, AVX-512 vs AVX2): on AMD EPYC the copies of
    # multihead.context_vecs differ by 1 ulp. A few ulps of the largest value per step allowed.
    if cfg.batch > 1:
        for key in [("causal", "attn_weights"), ("multihead", "context_vecs"), ("multihead", "wrapper_context_vecs")] \
                + ([("causal", "context_vecs")] if p == 0.0 else []):
            t = trace[key].tensor
            atol = 64 * torch.finfo(t.dtype).eps * max(1.0, t.abs().max().item())
            for i in range(1, cfg.batch):
                torch.testing.assert_close(t[i], t[0], rtol=0, atol=atol, msg=lambda m: f"{key}: {m}")


def run_property(kw: dict, inputs: Inputs | None = None):
    """Build the config and trace: ConfigError (naming a field) or a trace; nothing else."""
    try:
        cfg = AttentionConfig(**kw)
    except ConfigError as exc:
        assert exc.field in FIELDS, exc.field
        assert exc.message and "\n" not in str(exc)
        return None, exc
    try:
        trace = build_trace(cfg, inputs=inputs)
    except ConfigError as exc:
        assert exc.field in FIELDS, exc.field
        return cfg, exc
    return cfg, trace


# ----------------------------------------------------------------------------- properties

@SETTINGS
@given(config_kwargs())
@example(dict(embeddings="book", text=BOOK_TEXT, d_in=3, d_out=2, num_heads=2, init="linear", seed=123,
              causal=True, dropout=0.5, dropout_seed=123, qkv_bias=False, batch=2, device="cpu", dtype="float32"))
@example(dict(embeddings="random", text="x", d_in=1, d_out=1, num_heads=1, init="rand", seed=0,
              causal=False, dropout=0.0, dropout_seed=0, qkv_bias=True, batch=1, device="cpu", dtype="float64"))
@example(dict(embeddings="random", text="?", d_in=1, d_out=3, num_heads=2, init="rand", seed=0,
              causal=True, dropout=math.nan, dropout_seed=0, qkv_bias=False, batch=1, device="cpu", dtype="float32"))
# issue 10: its batch copies of multihead.context_vecs differ by 1 ulp on some CPUs (AMD EPYC)
@example(dict(embeddings="random", text=" 0 ", d_in=1, d_out=5, num_heads=1, init="rand", seed=0,
              causal=False, dropout=0.0, dropout_seed=0, qkv_bias=False, batch=2, device="cpu", dtype="float32"))
def test_config_and_trace_either_hold_their_invariants_or_raise_config_error(kw):
    cfg, result = run_property(kw)
    event("refused: " + result.field if isinstance(result, ConfigError) else "trace")
    if isinstance(result, ConfigError):
        if cfg is not None:  # validated, then refused while reading the inputs: only a CSV path may be
            assert cfg.embeddings not in ("book", "random") and result.field == "embeddings", result
            return
        assert not expected_valid(kw), f"valid config refused: {result}"
        return
    assert expected_valid(kw), f"invalid config accepted: {kw!r}"
    T = 6 if cfg.embeddings == "book" else len(tokenize(cfg.text))
    check_trace(result, cfg, T)


@st.composite
def configs_with_own_inputs(draw):
    """A valid config plus an edited embedding table (as the GUI passes it), values up to the limit."""
    T = draw(st.integers(1, 24))
    d_in = draw(st.integers(1, 8))
    heads = draw(st.integers(1, 4))
    d_out = heads * draw(st.integers(1, 3))
    tokens = draw(st.lists(st.text(alphabet=WORD_CHARS, min_size=1, max_size=4), min_size=T, max_size=T))
    scale = draw(st.sampled_from([1.0, 3.0, 10.0, 100.0, 1e4, MAX_ABS_EMBEDDING]))   # far-apart scores too
    values = draw(st.lists(st.lists(st.floats(-1, 1), min_size=d_in, max_size=d_in), min_size=T, max_size=T))
    values = np.clip(np.array(values) * scale, -MAX_ABS_EMBEDDING, MAX_ABS_EMBEDDING)
    cfg = AttentionConfig(embeddings="random", text=" ".join(tokens), d_in=d_in, d_out=d_out, num_heads=heads,
                          init=draw(st.sampled_from(INITS)), seed=draw(st.integers(0, 2**16)),
                          causal=draw(st.booleans()), dropout=draw(st.sampled_from([0.0, 0.2, 0.5, 0.9])),
                          dropout_seed=draw(st.integers(0, 100)), qkv_bias=draw(st.booleans()),
                          batch=draw(st.integers(1, 3)), device="cpu", dtype=draw(st.sampled_from(DTYPES)))
    return cfg, Inputs(tuple(tokens), values)


@SETTINGS
@given(configs_with_own_inputs())
def test_own_embedding_tables_hold_the_invariants(case):
    cfg, inputs = case
    _, trace = run_property(dataclasses.asdict(cfg), inputs=inputs)
    assert not isinstance(trace, ConfigError), trace
    # The naive ω/Σω is undefined where a row of scores sums to 0 (signed inputs); it is the
    # only intermediate allowed to be non-finite here.
    check_trace(trace, cfg, len(inputs.tokens), check_finite=False)
    for item in trace:
        if item.key not in (("simplified", "attn_weights_sumnorm"),) and item.name != "masked_scores":
            assert torch.isfinite(item.tensor).all(), f"{item.key} has non-finite values"


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 3))
def test_inputs_of_the_wrong_width_raise_config_error(T, width, d_in):
    assume(width != d_in)
    cfg = AttentionConfig(embeddings="random", text=" ".join("w" * (i + 1) for i in range(T)), d_in=d_in)
    inputs = Inputs(tuple(f"t{i}" for i in range(T)), np.ones((T, width)))
    _, result = run_property(dataclasses.asdict(cfg), inputs=inputs)
    assert isinstance(result, ConfigError) and result.field == "d_in"


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 3),
       st.sampled_from([math.nan, math.inf, -math.inf, MAX_ABS_EMBEDDING * 1.0001, -1e30, 1e300]), st.data())
def test_embedding_values_beyond_the_limit_raise_config_error(T, d_in, bad, data):
    values = np.full((T, d_in), 0.5)
    values[data.draw(st.integers(0, T - 1)), data.draw(st.integers(0, d_in - 1))] = bad
    cfg = AttentionConfig(embeddings="random", text=" ".join("w" * (i + 1) for i in range(T)), d_in=d_in)
    _, result = run_property(dataclasses.asdict(cfg), inputs=Inputs(tuple(f"t{i}" for i in range(T)), values))
    assert isinstance(result, ConfigError) and result.field == "embeddings"


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=5)


@SETTINGS
@given(st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(sorted(FIELDS)), st.text(max_size=8)), JSON_VALUES, max_size=6),
    JSON_VALUES,
))
def test_from_dict_of_any_json_is_a_config_or_a_config_error(data):
    """What a malformed lesson file can hold: a config comes out, or ConfigError, nothing else."""
    try:
        cfg = AttentionConfig.from_dict(data)
    except ConfigError as exc:
        assert isinstance(exc.field, str) and exc.message
        return
    assert isinstance(data, dict) and AttentionConfig.from_dict(cfg.to_dict()) == cfg


@settings(max_examples=max(EXAMPLES // 4, 10), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(configs_with_own_inputs(), st.data())
def test_the_cell_inspector_explains_any_cell_without_raising(case, data):
    """explain_cell (the GUI's inspector) on random cells of random traces: an explanation of
    the cell's own value, never an exception (zero rows, underflowed rows, far-apart scores)."""
    from core.provenance import explain_cell

    cfg, inputs = case
    if data.draw(st.booleans()):  # a token whose embedding is all zeros: its row of scores sums to 0
        values = inputs.array.copy()
        values[data.draw(st.integers(0, len(inputs.tokens) - 1))] = 0.0
        inputs = Inputs(inputs.tokens, values)
    trace = build_trace(cfg, inputs=inputs)
    items = list(trace)
    cells = [(item, tuple(data.draw(st.integers(0, n - 1)) for n in item.shape))
             for item in (data.draw(st.sampled_from(items)) for _ in range(12))]
    for key in (("simplified", "attn_weights_sumnorm"), ("causal", "renormalized_weights")):  # the ratios
        item = trace[key]
        cells += [(item, lead + (i, 0)) for lead in np.ndindex(*item.shape[:-2]) for i in range(item.shape[-2])]
    for item, index in cells:
        arr = item.numpy()
        ex = explain_cell(trace, item.stage, item.name, index)
        assert ex.value == float(arr[index]) or (math.isnan(ex.value) and math.isnan(arr[index]))


@SETTINGS
@given(configs_with_own_inputs(), st.data())
def test_edited_weights_give_a_finite_trace_or_a_config_error(case, data):
    """Weights edited in the GUI (weights_override): in range, every value stays finite; out of
    range (or nan/inf), ConfigError naming the weight."""
    cfg, inputs = case
    roles = data.draw(st.lists(st.sampled_from(["W_query", "W_key", "W_value"]), min_size=1, max_size=3, unique=True))
    scale = data.draw(st.sampled_from([1.0, 100.0, MAX_ABS_EMBEDDING]))
    override = {r: np.clip(np.array(data.draw(st.lists(st.floats(-1, 1), min_size=cfg.d_in * cfg.d_out,
                                                       max_size=cfg.d_in * cfg.d_out))).reshape(cfg.d_in, cfg.d_out)
                           * scale, -MAX_ABS_EMBEDDING, MAX_ABS_EMBEDDING) for r in roles}
    bad = data.draw(mostly(st.none(), st.sampled_from([math.nan, math.inf, -math.inf, 1e30, -MAX_ABS_EMBEDDING * 2])))
    if bad is not None:
        override[roles[0]][data.draw(st.integers(0, cfg.d_in - 1)), data.draw(st.integers(0, cfg.d_out - 1))] = bad
    try:
        trace = build_trace(cfg, inputs=inputs, weights_override=override)
    except ConfigError as exc:
        assert bad is not None and exc.field == roles[0], exc
        return
    assert bad is None
    check_trace(trace, cfg, len(inputs.tokens), check_finite=False)
    for item in trace:
        if item.key != ("simplified", "attn_weights_sumnorm") and item.name != "masked_scores":
            assert torch.isfinite(item.tensor).all(), f"{item.key} has non-finite values"


@SETTINGS
@given(st.fixed_dictionaries(
    {"format": mostly(st.just("attention-stepper-lesson"), JSON_VALUES),
     "version": mostly(st.just(1), st.one_of(st.integers(-2, 5), JSON_VALUES))},
    optional={"config": st.one_of(st.fixed_dictionaries({}, optional={"d_in": st.integers(0, 4), "d_out": st.integers(0, 4),
                                                                      "embeddings": st.sampled_from(["book", "random", 3])}),
                                  JSON_VALUES),
              "inputs": st.one_of(st.fixed_dictionaries({"tokens": st.one_of(st.lists(st.text(max_size=3), max_size=6), JSON_VALUES),
                                                         "values": st.one_of(st.lists(st.lists(st.floats(), max_size=3), max_size=6),
                                                                             JSON_VALUES)}), JSON_VALUES),
              "weights": st.one_of(st.dictionaries(st.sampled_from(["W_query", "W_key", "W_out", "x"]),
                                                   st.one_of(st.lists(st.lists(st.floats(-2, 2), min_size=2, max_size=2),
                                                                      min_size=3, max_size=3), JSON_VALUES), max_size=3),
                                   JSON_VALUES),
              "step": JSON_VALUES, "title": JSON_VALUES, "extra": JSON_VALUES}))
def test_any_lesson_file_opens_or_says_why(doc):
    """A malformed or future-version lesson file: a Lesson (whose trace builds or raises
    ConfigError) or LessonError, nothing else."""
    import json

    from core.lesson import LessonError, parse_lesson

    try:
        lesson = parse_lesson(json.dumps(doc, allow_nan=True))
    except LessonError as exc:
        assert str(exc)
        event("LessonError")
        return
    event("Lesson")
    try:
        build_trace(lesson.config, lesson.inputs, weights_override=lesson.weights)
    except ConfigError:
        pass


def test_a_deeply_nested_lesson_file_is_a_lesson_error():
    import pytest

    from core.lesson import LessonError, parse_lesson

    with pytest.raises(LessonError):
        parse_lesson("[" * 100_000 + "]" * 100_000)
