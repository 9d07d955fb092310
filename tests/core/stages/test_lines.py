"""The code panel's lines come from the stages' forwards (core/stages/lines.py): each tagged line
is a tensor its forward records, written where the forward makes it, with the plain ``Ops``'s
torch for each ``ops`` call; and the lines are what a learner reading chapter 3 expects."""
import importlib.util
import textwrap

import pytest
import torch

from core import AttentionConfig, build_trace
from core.stages import CHAPTER, multihead
from core.stages.lines import definition, lines
from core.stages.trainable import qkv_values
from core.weights import Projection

SYNTHETIC = """
import torch
from core.stages.lines import shown_as_first
from core.stages.ops import Ops


def scale(x, by):
    return x / by


@shown_as_first
def guard(x, fallback):
    return torch.where(torch.isfinite(x), x, fallback)


def weights_of(q, k, mask, ops):
    s = ops.record("s", ops.scores(q, k))
    return ops.record("w", ops.softmax(ops.masked(s, mask), k.shape[-1], s, mask))


def forward(x, qkv, mask, ops=None):
    ops = ops or Ops()
    record = ops.record
    ops.named.update(W=qkv["query"].W)
    record("mask", mask)
    n, _ = x.shape
    q = record("q", ops.project(x, qkv["query"], "query"))
    k = record("k", ops.project(x, qkv["key"], "key"))
    w = weights_of(q, k, mask, ops)

    def rest():
        record("z", guard(scale(ops.mix(ops.dropout(w), q), n), fallback=q))
    ops.later(rest)
    return ops.named
"""
GIVEN = {"mask": [(None, "torch.manual_seed(1)"), ("mask", "mask = torch.ones(4, 4).tril()")]}


def _values(bias: bool) -> dict:
    return {f'qkv["{r}"].{k}': (f"{k}_{r}" if k == "W" or bias else None) for r in ("query", "key") for k in "Wb"}


def _module(tmp_path, source: str, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_forwards_lines_are_its_records_with_the_plain_ops_written_in(tmp_path):
    fwd = _module(tmp_path, SYNTHETIC, "synthetic_forward").forward
    assert lines(fwd, GIVEN, _values(bias=False)) == [
        (None, "torch.manual_seed(1)"), ("mask", "mask = torch.ones(4, 4).tril()"),   # given, where recorded
        (None, "n, _ = x.shape"),                                                       # an untagged assignment
        ("q", "q = x @ W_query"), ("k", "k = x @ W_key"),                               # project, no bias
        ("s", "s = q @ k.transpose(-2, -1)"),                                           # a recording helper's
        ("w", "w = torch.softmax(s.masked_fill(mask == 0, -torch.inf) / k.shape[-1] ** 0.5, dim=-1)"),
        ("z", "z = w @ q / n")]           # ops.later(rest): rest's lines; the guard shows its first argument
    with_bias = dict(lines(fwd, GIVEN, _values(bias=True)))
    assert with_bias["q"] == "q = x @ W_query + b_query" and with_bias["k"] == "k = x @ W_key + b_key"


@pytest.mark.parametrize("bias", [False, True])
def test_the_lines_run_to_the_forwards_numbers(tmp_path, bias):
    """The panel shows what the plain Ops runs: the lines, executed, give the recorded tensors."""
    fwd = _module(tmp_path, SYNTHETIC, f"synthetic_run_{bias}").forward
    g = torch.Generator().manual_seed(3)
    x, mask = torch.randn(4, 3, generator=g), torch.ones(4, 4).tril()
    env = {"torch": torch, "x": x, "W_query": torch.randn(3, 2, generator=g), "W_key": torch.randn(3, 2, generator=g),
           "b_query": torch.randn(2, generator=g) if bias else None, "b_key": torch.randn(2, generator=g) if bias else None}
    qkv = {r: Projection(env[f"W_{r}"], env[f"b_{r}"]) for r in ("query", "key")}
    named = fwd(x, qkv, mask)
    exec("\n".join(line for _, line in lines(fwd, GIVEN, _values(bias))), env)
    for name in ("mask", "q", "k", "s", "w", "z"):
        assert torch.equal(env[name], named[name]), name            # the same operations in the same order


def test_editing_a_forwards_line_edits_the_panel_line(tmp_path):
    edited = (SYNTHETIC.replace('ops.project(x, qkv["key"], "key")', 'ops.project(x, qkv["key"], "key") * 2')
              .replace("return x / by", "return x * by"))
    fwd = _module(tmp_path, edited, "synthetic_edited").forward
    got = dict(lines(fwd, GIVEN, _values(bias=False)))
    assert got["k"] == "k = x @ W_key * 2" and got["z"] == "z = w @ q * n"
    assert got["q"] == "q = x @ W_query"                            # the lines not edited stay


def test_a_record_the_reader_cannot_place_is_refused_not_dropped(tmp_path):
    source = SYNTHETIC.replace('    record("mask", mask)\n', '    if mask is not None:\n        record("mask", mask)\n')
    fwd = _module(tmp_path, source, "synthetic_if").forward
    with pytest.raises(ValueError, match="record outside an assignment"):
        lines(fwd, GIVEN, _values(bias=False))


BRANCHES = """
import torch
from core.stages.ops import Ops


def halves(x, form, device=None):
    n = x.shape[-1] // 2
    if form == "split":
        return x[..., :n], x[..., n:]
    return x[..., 0::2], x[..., 1::2]


def label(form):
    return "other" if form == "split" else "split"


def forward(x, form, window=None):
    ops = Ops()
    record = ops.record
    record("steps", torch.arange(x.shape[0], device=x.device))   # (T,)
    record("doubled", 2 * x)
    if window is None:
        record("kept", x * 1)
    else:
        record("kept", x[-window:])    # (W, d)
    alt, half = label(form), halves(x, form)[0]
    return ops.named
"""


def test_known_values_decide_ifs_and_comparisons_and_leave_absent_keywords_out(tmp_path):
    """``values`` folds ``form == 'split'`` and an ``if`` whose test it knows (the branch taken is read
    in place); a keyword whose value is absent (device=None) is left out; a tuple needs no brackets;
    a comment ending the line above is that line's, not the next's."""
    mod = _module(tmp_path, BRANCHES, "synthetic_branches")
    known = {"form": "'split'", "window": None, "x.device": None}
    assert lines(mod.forward, values=known) == [
        ("steps", "steps = torch.arange(x.shape[0])  # (T,)"), ("doubled", "doubled = 2 * x"),
        ("kept", "kept = x * 1"), (None, "alt, half = 'other', halves(x, 'split')[0]")]
    got = dict(lines(mod.forward, values={**known, "form": "'interleaved'", "window": "3"}))
    assert got["kept"] == "kept = x[-3:]  # (W, d)" and got[None] == "alt, half = 'split', halves(x, 'interleaved')[0]"


def test_a_definition_writes_its_defaults_and_the_if_it_cannot_decide(tmp_path):
    mod = _module(tmp_path, BRANCHES, "synthetic_defs")
    assert definition(mod.halves) == [
        (None, "def halves(x, form, device=None):"), (None, "    n = x.shape[-1] // 2"),
        (None, "    if form == 'split':"), (None, "        return x[..., :n], x[..., n:]"),
        (None, "    return x[..., 0::2], x[..., 1::2]")]
    # a known form: the branch it takes, and nothing after its return
    assert definition(mod.halves, {"form": "'split'"})[2:] == [(None, "    return x[..., :n], x[..., n:]")]
    assert definition(mod.halves, {"form": "'interleaved'"})[2:] == [(None, "    return x[..., 0::2], x[..., 1::2]")]
    env = {}
    exec("\n".join(line for _, line in definition(mod.halves)), env)
    x = torch.arange(8.0).reshape(2, 4)
    for form in ("split", "interleaved"):
        assert all(torch.equal(a, b) for a, b in zip(env["halves"](x, form), mod.halves(x, form)))


CONFIGS = {"default": AttentionConfig(),
           "bias-noncausal-dropout": AttentionConfig(qkv_bias=True, causal=False, dropout=0.3)}


@pytest.mark.parametrize("cfg", list(CONFIGS.values()), ids=list(CONFIGS))
def test_each_tagged_line_is_a_tensor_its_forward_records(cfg):
    trace = build_trace(cfg, use_engine=False)
    for name, stage in CHAPTER.items():
        tagged = [n for n, _ in stage.code(cfg) if n is not None]
        earlier = {"mask"} if name == "multihead" else set()             # the causal stage's mask, reused
        assert set(tagged) <= set(trace.stages[name]) | earlier, name
        assert len(tagged) == len(set(tagged)), name                      # one line per tensor


# Still written beside the forward, from the configuration: the weights' draw (W_…, b_…, the
# wrapper's stacks wrapper_W_…, wrapper_b_…) and what a forward is given (inputs, mask, dropout_mask).
GIVEN_NAMES = {"inputs", "mask", "dropout_mask"}


@pytest.mark.parametrize("cfg", list(CONFIGS.values()), ids=list(CONFIGS))
def test_every_made_tensors_line_is_read_from_the_forward(cfg):
    values = {**qkv_values(cfg), "out_proj.W": "W_out", "out_proj.b": "b_out"}
    for name, stage in CHAPTER.items():
        forwards = [multihead.wrapper, multihead.fused] if name == "multihead" else [stage.forward]
        from_forward = [line for f in forwards for line in lines(f, {n: [] for n in GIVEN_NAMES}, values)]
        made = [(n, line) for n, line in stage.code(cfg) if n is not None and n not in GIVEN_NAMES
                and not n.startswith(("W_", "b_", "wrapper_W_", "wrapper_b_"))]
        assert made == [(n, line) for n, line in from_forward if n is not None], name


@pytest.mark.parametrize("cfg_name", list(CONFIGS))
def test_the_chapter_stages_lines_are_the_books(cfg_name):
    for name, stage in CHAPTER.items():
        assert stage.code(CONFIGS[cfg_name]) == EXPECTED[cfg_name][name], name


@pytest.mark.parametrize("fa2", [False, True], ids=["fa1", "fa2"])
def test_the_tiled_kernels_step_lines_are_the_steps_own_and_run_to_its_numbers(fa2):
    """Beyond the chapter: the tiled stage's loop body is fa1_step's / fa2_step's lines."""
    from core.stages import tiled
    from core.tiled_config import TiledConfig
    step_fn = tiled.fa2_step if fa2 else tiled.fa1_step
    body = lines(step_fn, {n: [] for n in ("m_before", "l_before", "O_before")}, {"v_block": "V_j"})
    panel = [(n, line.strip()) for n, line in tiled.code(TiledConfig(fa2=fa2))]
    start = panel.index(body[0])
    assert panel[start:start + len(body)] == body
    g = torch.Generator().manual_seed(0)
    S, V_j = torch.randn(2, 3, generator=g), torch.randn(3, 4, generator=g)
    S[1, 1:] = -torch.inf                                                  # a row the tile partly hides
    m_old, l_old, O_old = torch.tensor([-torch.inf, 0.5]), torch.tensor([0.0, 1.3]), torch.randn(2, 4, generator=g)
    step = step_fn(S, V_j, m_old, l_old, O_old)
    env = {"torch": torch, "S": S, "V_j": V_j, "m_old": m_old, "l_old": l_old, "O_old": O_old}
    exec("\n".join(line for _, line in body), env)
    for name, line in body:
        if name is not None:
            assert torch.equal(env[line.split(" = ")[0]], step[name]), name
    assert [n for n, _ in body if n] == (["m_tile", "m_after", "probs", "rescale", "l_tile", "l_after", "O_after"] if fa2
                                         else ["m_tile", "probs", "l_tile", "m_after", "rescale", "tile_scale",
                                               "l_after", "O_after"])


EXPECTED = {
    "default": {
        "simplified": [
            ('attn_scores', 'attn_scores = inputs @ inputs.T  # (T, T)'),
            ('attn_weights_sumnorm', 'attn_weights_sumnorm = attn_scores / attn_scores.sum(dim=-1, keepdim=True)  # (T, T)'),
            ('attn_weights', 'attn_weights = torch.softmax(attn_scores, dim=-1)  # (T, T)'),
            ('context_vecs', 'context_vecs = attn_weights @ inputs  # (T, d_in)'),
        ],
        "trainable": [
            (None, 'torch.manual_seed(123)'),
            (None, '_layer = nn.Linear(d_in, 2, bias=False)'),
            ('W_query', 'W_query = _layer.weight.T.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=False)'),
            ('W_key', 'W_key = _layer.weight.T.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=False)'),
            ('W_value', 'W_value = _layer.weight.T.detach()'),
            ('queries', 'queries = inputs @ W_query  # (T, d_in) -> (T, d_out)'),
            ('keys', 'keys = inputs @ W_key  # (T, d_in) -> (T, d_out)'),
            ('values', 'values = inputs @ W_value  # (T, d_in) -> (T, d_out)'),
            ('attn_scores', 'attn_scores = queries @ keys.T  # (T, T)'),
            ('scaled_scores', 'scaled_scores = attn_scores / keys.shape[-1] ** 0.5  # (T, T)'),
            ('attn_weights', 'attn_weights = torch.softmax(scaled_scores, dim=-1)  # (T, T)'),
            ('context_vecs', 'context_vecs = attn_weights @ values  # (T, d_out)'),
        ],
        "causal": [
            (None, 'torch.manual_seed(123)'),
            (None, '_layer = nn.Linear(d_in, 2, bias=False)'),
            ('W_query', 'W_query = _layer.weight.T.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=False)'),
            ('W_key', 'W_key = _layer.weight.T.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=False)'),
            ('W_value', 'W_value = _layer.weight.T.detach()'),
            (None, 'batch = torch.stack([inputs] * 1)  # (b, T, d_in)'),
            ('queries', 'queries = batch @ W_query  # (b, T, d_in) -> (b, T, d_out)'),
            ('keys', 'keys = batch @ W_key  # (b, T, d_in) -> (b, T, d_out)'),
            ('values', 'values = batch @ W_value  # (b, T, d_in) -> (b, T, d_out)'),
            (None, 'T = batch.shape[1]'),
            ('mask', 'mask = torch.tril(torch.ones(T, T))'),
            ('attn_scores', 'attn_scores = queries @ keys.transpose(-2, -1)  # (…, T, T)'),
            ('masked_scores', 'masked_scores = attn_scores.masked_fill(mask == 0, -torch.inf)  # (…, T, T)'),
            ('attn_weights', 'attn_weights = torch.softmax(masked_scores / keys.shape[-1] ** 0.5, dim=-1)  # (…, T, T)'),
            ('masked_simple', 'masked_simple = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1) * mask  # (b, T, T)'),
            ('renormalized_weights', 'renormalized_weights = masked_simple / masked_simple.sum(dim=-1, keepdim=True)  # (b, T, T)'),
            (None, 'torch.manual_seed(123)'),
            ('dropout_mask', 'dropout_mask = torch.ones(attn_weights.shape)  # p = 0: nothing dropped'),
            ('dropped_weights', 'dropped_weights = attn_weights * dropout_mask / (1 - p)  # (b, T, T)'),
            ('context_vecs', 'context_vecs = dropped_weights @ values  # (b, T, d_out)'),
        ],
        "multihead": [
            (None, 'batch = torch.stack([inputs] * 1)  # (b, T, d_in)'),
            (None, 'T = batch.shape[1]'),
            (None, 'num_heads = 2'),
            ('mask', 'mask = torch.tril(torch.ones(T, T))'),
            (None, '# --- MultiHeadAttentionWrapper: independent causal heads ---'),
            (None, 'from collections import namedtuple'),
            (None, 'Projection = namedtuple("Projection", "W b")  # x @ W + b (b: None, no bias)'),
            (None, 'torch.manual_seed(123)'),
            (None, 'heads = []'),
            (None, 'for _ in range(num_heads):'),
            (None, '    _layer = nn.Linear(d_in, 1, bias=False)'),
            (None, '    W_query = _layer.weight.T.detach()'),
            (None, '    _layer = nn.Linear(d_in, 1, bias=False)'),
            (None, '    W_key = _layer.weight.T.detach()'),
            (None, '    _layer = nn.Linear(d_in, 1, bias=False)'),
            (None, '    W_value = _layer.weight.T.detach()'),
            (None, "    heads.append({'query': Projection(W_query, None), 'key': Projection(W_key, None),"),
            (None, "                  'value': Projection(W_value, None)})"),
            ('wrapper_W_query', "wrapper_W_query = torch.stack([qkv['query'].W for qkv in heads])  # (h, d_in, hd)"),
            ('wrapper_W_key', "wrapper_W_key = torch.stack([qkv['key'].W for qkv in heads])  # (h, d_in, hd)"),
            ('wrapper_W_value', "wrapper_W_value = torch.stack([qkv['value'].W for qkv in heads])  # (h, d_in, hd)"),
            (None, 'def causal_head(batch, qkv, mask):'),
            (None, "    queries = batch @ qkv['query'].W  # (b, T, d_in) -> (b, T, hd)"),
            (None, "    keys = batch @ qkv['key'].W  # (b, T, d_in) -> (b, T, hd)"),
            (None, "    values = batch @ qkv['value'].W  # (b, T, d_in) -> (b, T, hd)"),
            (None, '    attn_scores = queries @ keys.transpose(-2, -1)  # (…, T, T)'),
            (None, '    masked_scores = attn_scores.masked_fill(mask == 0, -torch.inf)  # (…, T, T)'),
            (None, '    attn_weights = torch.softmax(masked_scores / keys.shape[-1] ** 0.5, dim=-1)  # (…, T, T)'),
            (None, '    return attn_weights, attn_weights @ values'),
            (None, 'per_head = [causal_head(batch, qkv, mask) for qkv in heads]'),
            ('wrapper_attn_weights', 'wrapper_attn_weights = torch.stack([w for w, _ in per_head], dim=1)'),
            ('wrapper_context_vecs', 'wrapper_context_vecs = torch.cat([z for _, z in per_head], dim=-1)'),
            (None, '# --- MultiHeadAttention: fused projections, split into heads ---'),
            (None, 'torch.manual_seed(123)'),
            (None, '_layer = nn.Linear(d_in, 2, bias=False)'),
            ('W_query', 'W_query = _layer.weight.T.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=False)'),
            ('W_key', 'W_key = _layer.weight.T.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=False)'),
            ('W_value', 'W_value = _layer.weight.T.detach()'),
            (None, 'out_proj = nn.Linear(d_out, d_out)'),
            ('W_out', 'W_out = out_proj.weight.T.detach()'),
            ('b_out', 'b_out = out_proj.bias.detach()'),
            (None, 'b, num_tokens, _ = batch.shape'),
            ('queries', 'queries = (batch @ W_query).view(b, num_tokens, num_heads, -1).transpose(1, 2)  # (b, h, T, hd)'),
            ('keys', 'keys = (batch @ W_key).view(b, num_tokens, num_heads, -1).transpose(1, 2)  # (b, h, T, hd)'),
            ('attn_scores', 'attn_scores = queries @ keys.transpose(-2, -1)  # (…, T, T)'),
            ('masked_scores', 'masked_scores = attn_scores.masked_fill(mask == 0, -torch.inf)  # (…, T, T)'),
            ('attn_weights', 'attn_weights = torch.softmax(masked_scores / keys.shape[-1] ** 0.5, dim=-1)  # (…, T, T)'),
            ('values', 'values = (batch @ W_value).view(b, num_tokens, num_heads, -1).transpose(1, 2)  # (b, h, T, hd)'),
            ('context_heads', 'context_heads = attn_weights @ values  # (b, h, T, hd)'),
            ('context_concat', 'context_concat = context_heads.transpose(1, 2).contiguous().view(b, num_tokens, -1)  # (b, h, T, hd) -> (b, T, h, hd) -> (b, T, d_out)'),
            ('context_vecs', 'context_vecs = context_concat @ W_out + b_out  # (b, T, d_out)'),
        ],
    },
    "bias-noncausal-dropout": {
        "simplified": [
            ('attn_scores', 'attn_scores = inputs @ inputs.T  # (T, T)'),
            ('attn_weights_sumnorm', 'attn_weights_sumnorm = attn_scores / attn_scores.sum(dim=-1, keepdim=True)  # (T, T)'),
            ('attn_weights', 'attn_weights = torch.softmax(attn_scores, dim=-1)  # (T, T)'),
            ('context_vecs', 'context_vecs = attn_weights @ inputs  # (T, d_in)'),
        ],
        "trainable": [
            (None, 'torch.manual_seed(123)'),
            (None, '_layer = nn.Linear(d_in, 2, bias=True)'),
            ('W_query', 'W_query = _layer.weight.T.detach()'),
            ('b_query', 'b_query = _layer.bias.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=True)'),
            ('W_key', 'W_key = _layer.weight.T.detach()'),
            ('b_key', 'b_key = _layer.bias.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=True)'),
            ('W_value', 'W_value = _layer.weight.T.detach()'),
            ('b_value', 'b_value = _layer.bias.detach()'),
            ('queries', 'queries = inputs @ W_query + b_query  # (T, d_in) -> (T, d_out)'),
            ('keys', 'keys = inputs @ W_key + b_key  # (T, d_in) -> (T, d_out)'),
            ('values', 'values = inputs @ W_value + b_value  # (T, d_in) -> (T, d_out)'),
            ('attn_scores', 'attn_scores = queries @ keys.T  # (T, T)'),
            ('scaled_scores', 'scaled_scores = attn_scores / keys.shape[-1] ** 0.5  # (T, T)'),
            ('attn_weights', 'attn_weights = torch.softmax(scaled_scores, dim=-1)  # (T, T)'),
            ('context_vecs', 'context_vecs = attn_weights @ values  # (T, d_out)'),
        ],
        "causal": [
            (None, 'torch.manual_seed(123)'),
            (None, '_layer = nn.Linear(d_in, 2, bias=True)'),
            ('W_query', 'W_query = _layer.weight.T.detach()'),
            ('b_query', 'b_query = _layer.bias.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=True)'),
            ('W_key', 'W_key = _layer.weight.T.detach()'),
            ('b_key', 'b_key = _layer.bias.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=True)'),
            ('W_value', 'W_value = _layer.weight.T.detach()'),
            ('b_value', 'b_value = _layer.bias.detach()'),
            (None, 'batch = torch.stack([inputs] * 1)  # (b, T, d_in)'),
            ('queries', 'queries = batch @ W_query + b_query  # (b, T, d_in) -> (b, T, d_out)'),
            ('keys', 'keys = batch @ W_key + b_key  # (b, T, d_in) -> (b, T, d_out)'),
            ('values', 'values = batch @ W_value + b_value  # (b, T, d_in) -> (b, T, d_out)'),
            (None, 'T = batch.shape[1]'),
            ('mask', 'mask = torch.ones(T, T)  # causal off: attend everywhere'),
            ('attn_scores', 'attn_scores = queries @ keys.transpose(-2, -1)  # (…, T, T)'),
            ('masked_scores', 'masked_scores = attn_scores.masked_fill(mask == 0, -torch.inf)  # (…, T, T)'),
            ('attn_weights', 'attn_weights = torch.softmax(masked_scores / keys.shape[-1] ** 0.5, dim=-1)  # (…, T, T)'),
            ('masked_simple', 'masked_simple = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1) * mask  # (b, T, T)'),
            ('renormalized_weights', 'renormalized_weights = masked_simple / masked_simple.sum(dim=-1, keepdim=True)  # (b, T, T)'),
            (None, 'torch.manual_seed(123)'),
            ('dropout_mask', 'dropout_mask = torch.empty(attn_weights.shape).bernoulli_(1 - p)  # what nn.Dropout(p) draws'),
            ('dropped_weights', 'dropped_weights = attn_weights * dropout_mask / (1 - p)  # (b, T, T)'),
            ('context_vecs', 'context_vecs = dropped_weights @ values  # (b, T, d_out)'),
        ],
        "multihead": [
            (None, 'batch = torch.stack([inputs] * 1)  # (b, T, d_in)'),
            (None, 'T = batch.shape[1]'),
            (None, 'num_heads = 2'),
            ('mask', 'mask = torch.ones(T, T)  # causal off: attend everywhere'),
            (None, '# --- MultiHeadAttentionWrapper: independent causal heads ---'),
            (None, 'from collections import namedtuple'),
            (None, 'Projection = namedtuple("Projection", "W b")  # x @ W + b (b: None, no bias)'),
            (None, 'torch.manual_seed(123)'),
            (None, 'heads = []'),
            (None, 'for _ in range(num_heads):'),
            (None, '    _layer = nn.Linear(d_in, 1, bias=True)'),
            (None, '    W_query = _layer.weight.T.detach()'),
            (None, '    b_query = _layer.bias.detach()'),
            (None, '    _layer = nn.Linear(d_in, 1, bias=True)'),
            (None, '    W_key = _layer.weight.T.detach()'),
            (None, '    b_key = _layer.bias.detach()'),
            (None, '    _layer = nn.Linear(d_in, 1, bias=True)'),
            (None, '    W_value = _layer.weight.T.detach()'),
            (None, '    b_value = _layer.bias.detach()'),
            (None, "    heads.append({'query': Projection(W_query, b_query), 'key': Projection(W_key, b_key),"),
            (None, "                  'value': Projection(W_value, b_value)})"),
            ('wrapper_W_query', "wrapper_W_query = torch.stack([qkv['query'].W for qkv in heads])  # (h, d_in, hd)"),
            ('wrapper_W_key', "wrapper_W_key = torch.stack([qkv['key'].W for qkv in heads])  # (h, d_in, hd)"),
            ('wrapper_W_value', "wrapper_W_value = torch.stack([qkv['value'].W for qkv in heads])  # (h, d_in, hd)"),
            ('wrapper_b_query', "wrapper_b_query = torch.stack([qkv['query'].b for qkv in heads])  # (h, hd)"),
            ('wrapper_b_key', "wrapper_b_key = torch.stack([qkv['key'].b for qkv in heads])  # (h, hd)"),
            ('wrapper_b_value', "wrapper_b_value = torch.stack([qkv['value'].b for qkv in heads])  # (h, hd)"),
            (None, 'def causal_head(batch, qkv, mask):'),
            (None, "    queries = batch @ qkv['query'].W + qkv['query'].b  # (b, T, d_in) -> (b, T, hd)"),
            (None, "    keys = batch @ qkv['key'].W + qkv['key'].b  # (b, T, d_in) -> (b, T, hd)"),
            (None, "    values = batch @ qkv['value'].W + qkv['value'].b  # (b, T, d_in) -> (b, T, hd)"),
            (None, '    attn_scores = queries @ keys.transpose(-2, -1)  # (…, T, T)'),
            (None, '    masked_scores = attn_scores.masked_fill(mask == 0, -torch.inf)  # (…, T, T)'),
            (None, '    attn_weights = torch.softmax(masked_scores / keys.shape[-1] ** 0.5, dim=-1)  # (…, T, T)'),
            (None, '    return attn_weights, attn_weights @ values'),
            (None, 'per_head = [causal_head(batch, qkv, mask) for qkv in heads]'),
            ('wrapper_attn_weights', 'wrapper_attn_weights = torch.stack([w for w, _ in per_head], dim=1)'),
            ('wrapper_context_vecs', 'wrapper_context_vecs = torch.cat([z for _, z in per_head], dim=-1)'),
            (None, '# --- MultiHeadAttention: fused projections, split into heads ---'),
            (None, 'torch.manual_seed(123)'),
            (None, '_layer = nn.Linear(d_in, 2, bias=True)'),
            ('W_query', 'W_query = _layer.weight.T.detach()'),
            ('b_query', 'b_query = _layer.bias.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=True)'),
            ('W_key', 'W_key = _layer.weight.T.detach()'),
            ('b_key', 'b_key = _layer.bias.detach()'),
            (None, '_layer = nn.Linear(d_in, 2, bias=True)'),
            ('W_value', 'W_value = _layer.weight.T.detach()'),
            ('b_value', 'b_value = _layer.bias.detach()'),
            (None, 'out_proj = nn.Linear(d_out, d_out)'),
            ('W_out', 'W_out = out_proj.weight.T.detach()'),
            ('b_out', 'b_out = out_proj.bias.detach()'),
            (None, 'b, num_tokens, _ = batch.shape'),
            ('queries', 'queries = (batch @ W_query + b_query).view(b, num_tokens, num_heads, -1).transpose(1, 2)  # (b, h, T, hd)'),
            ('keys', 'keys = (batch @ W_key + b_key).view(b, num_tokens, num_heads, -1).transpose(1, 2)  # (b, h, T, hd)'),
            ('attn_scores', 'attn_scores = queries @ keys.transpose(-2, -1)  # (…, T, T)'),
            ('masked_scores', 'masked_scores = attn_scores.masked_fill(mask == 0, -torch.inf)  # (…, T, T)'),
            ('attn_weights', 'attn_weights = torch.softmax(masked_scores / keys.shape[-1] ** 0.5, dim=-1)  # (…, T, T)'),
            ('values', 'values = (batch @ W_value + b_value).view(b, num_tokens, num_heads, -1).transpose(1, 2)  # (b, h, T, hd)'),
            ('context_heads', 'context_heads = attn_weights @ values  # (b, h, T, hd)'),
            ('context_concat', 'context_concat = context_heads.transpose(1, 2).contiguous().view(b, num_tokens, -1)  # (b, h, T, hd) -> (b, T, h, hd) -> (b, T, d_out)'),
            ('context_vecs', 'context_vecs = context_concat @ W_out + b_out  # (b, T, d_out)'),
        ],
    },
}
