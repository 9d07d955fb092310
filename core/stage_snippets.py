"""Runnable snippets for the stages beyond the chapter: 6 (decode with a KV cache), 7 (tiled
attention) and 8 (RoPE).

``snippet(trace, stage, name)`` returns a script (torch and math only, nothing of this project)
that rebuilds the stage's inputs and weights as the app makes them and prints ``stage.name``
with the trace's numbers:

- the prompt's embeddings: the book's table written as numbers; "random" embeddings drawn as
  core.inputs draws them (one torch.Generator seeded per word from the seed and the word's
  CRC-32, written out in the script); a CSV's numbers written in;
- the weights: ``torch.manual_seed(seed)`` and the nn.Linear layers in the order the app draws
  them (core.decode.draw_weights; core.weights.draw_fused for tiled and RoPE);
- then the stage's own lines (the stage file's ``code``, as the code panel shows them) up to
  the matrix, with the few edits a runnable script needs, each commented (the position the
  bar points at written in, the cache before it rebuilt by a compact copy of the layer, the
  tile on screen printed from inside the kernel's loop).

``trace`` is the whole trace (stage ``decode_pos07``, ``tiled_step003``) or the window's view of
it at the bar's pointer (stage ``decode``, ``tiled_step``): the pointer is read from the trace's
own tensors (``position``, ``tile``), never from the view.
"""
from __future__ import annotations

from core.stages import decode as decode_stage
from core.stages import rope as rope_stage
from core.stages import tiled as tiled_stage

HEADER = ["torch.set_printoptions(precision=8, sci_mode=False, linewidth=200)"]

# the script's own variable for a decode term where the chapter's line names it otherwise
DECODE_VARS = {"position": "ptr"}
# the tiled kernel's variables (the term -> the name its line assigns)
TILED_VARS = {"queries": "Q", "keys": "K", "values": "V", "q_block": "Q_i", "k_block": "K_j", "v_block": "V_j",
              "scores": "S", "m_tile": "m_tile", "m_before": "m_old", "l_before": "l_old", "O_before": "O_old",
              "m_after": "m_new", "rescale": "alpha", "tile_scale": "beta", "probs": "P", "l_tile": "l_tile",
              "l_after": "l_new", "O_after": "O_new", "output": "O", "m": "m", "l": "l", "lse": "L",
              "reference": "reference", "check": "check", "lse_check": "lse_check"}
ROPE_VARS = {"queries": "Q", "keys": "K", "queries_rot": "Q_rope", "keys_rot": "K_rope",
             "queries_rot_other": "Q_rope_other", "keys_rot_other": "K_rope_other"}


class NoSnippet(KeyError):
    """No runnable script for this matrix (the code panel says so in its title)."""

    def __str__(self) -> str:            # the sentence, not KeyError's quoted repr
        return str(self.args[0]) if self.args else ""


def snippet(trace, stage: str, name: str) -> str:
    """A runnable script that prints ``stage.name`` (an external stage) with the trace's numbers."""
    if stage.startswith("decode"):
        return _decode(trace, stage, name)
    if stage.startswith("tiled"):
        return _tiled(trace, stage, name)
    if stage.startswith("rope"):
        return _rope(trace, name)
    raise NoSnippet(f"{stage}.{name} is not a stage of 6–8")


# ---- the inputs and the weights --------------------------------------------------------------

def _dtype(cfg) -> str:
    return "torch.float64" if cfg.dtype == "float64" else "torch.float32"


def _row(values) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


CRC32 = [
    "def crc32(data):  # zlib.crc32, written out",
    "    c = 0xFFFFFFFF",
    "    for byte in data:",
    "        c ^= byte",
    "        for _ in range(8):",
    "            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)",
    "    return c ^ 0xFFFFFFFF",
    "",
]


def _embedding_def(cfg) -> list[str]:
    return CRC32 + [
        "def embedding(word):  # the app's vector for a word: one generator seeded by the seed and the word",
        f"    gen = torch.Generator().manual_seed(({cfg.seed} * 1_000_003 + crc32(word.lower().encode('utf-8'))) % 2**63)",
        f"    return torch.rand({cfg.d_in}, generator=gen, dtype=torch.float64)  # (d_in,) in [0, 1)",
        ""]


def _prompt_lines(cfg, tokens, array, var: str) -> list[str]:
    """Lines that make ``var`` (T, d_in) in float64: the prompt's embeddings as the app has them."""
    lines = [f"tokens = {list(tokens)!r}"]
    if cfg.embeddings == "random":
        lines += [f"{var} = torch.stack([embedding(w) for w in tokens])  # (T, d_in): seeded random vectors, one per word"]
        return lines
    what = "the book's embeddings (section 3.3)" if cfg.embeddings == "book" else f"read from {cfg.embeddings}"
    lines += [f"{var} = torch.tensor([  # (T, d_in): {what}"]
    lines += [f"    {_row(row)},  # {tok}" for row, tok in zip(array, tokens)]
    lines += ["], dtype=torch.float64)"]
    return lines


def _needs_embedding(cfg, new_words=(), prompt=()) -> bool:
    return cfg.embeddings == "random" or any(w not in prompt for w in new_words)


def _linear_lines(layers: list[tuple[str, str, str, bool]], cfg, comment: str) -> list[str]:
    """nn.Linear layers drawn in order after manual_seed, then W = weight.T (x @ W) and b = bias
    in the trace's dtype. ``layers``: (weight name, in, out, bias): ``query`` makes the layer
    ``query_layer``, W_query and b_query; ``out`` makes ``out_proj``, W_out and b_out."""
    def layer(w):
        return "out_proj" if w == "out" else f"{w}_layer"
    out = ["", f"# the weights: {comment}", f"torch.manual_seed({cfg.seed})"]
    for w, d_in, d_out, bias in layers:
        out.append(f"{layer(w)} = nn.Linear({d_in}, {d_out}, bias={bias})")
    dt = _dtype(cfg)
    for w, _i, _o, bias in layers:
        out.append(f"W_{w} = {layer(w)}.weight.detach().T.to({dt})  # (in, out): x @ W_{w} is nn.Linear's x @ weight.T")
        if bias:
            out.append(f"b_{w} = {layer(w)}.bias.detach().to({dt})")
    return out


def _float64_default(cfg) -> list[str]:
    if cfg.dtype != "float64":
        return []
    return ["torch.set_default_dtype(torch.float64)  # the app ran in float64: new tensors (zeros, full) too"]


def _finish(lines: list[str], expr: str, comment: str = "") -> str:
    return "\n".join(lines + [f"print({expr})" + (f"  # {comment}" if comment else "")]) + "\n"


def _lines_until(code: list[tuple[str | None, str]], name: str) -> list[str] | None:
    """The lines up to the (last) line tagged ``name``; None when no line is tagged so."""
    last = max((k for k, (n, _l) in enumerate(code) if n == name), default=None)
    return None if last is None else [l for _n, l in code[:last + 1]]


# ---- stage 6: decode -------------------------------------------------------------------------

def _decode(trace, stage: str, name: str) -> str:
    from core.decode import PREFILL, SUMMARY, WEIGHTS
    cfg = trace.config
    v, h, g, hd, W = cfg.variant, cfg.num_heads, cfg.kv_groups, cfg.head_dim, cfg.window
    tokens = tuple(trace.inputs.tokens)
    T0 = int(trace[PREFILL, "inputs"].tensor.shape[0]) if (PREFILL, "inputs") in trace else int(trace.prompt_tokens)
    prompt, new = tokens[:T0], tokens[T0:]
    is_step = stage not in (WEIGHTS, PREFILL, SUMMARY)
    terms = decode_stage.WEIGHT_TERMS if stage == WEIGHTS else decode_stage.SUMMARY_TERMS if stage == SUMMARY \
        else decode_stage.TERMS if is_step else {"inputs": None, **decode_stage.TERMS}
    if name not in terms or (stage, name) not in trace:
        raise NoSnippet(f"{stage}.{name} is not in this decode trace")
    where = ""
    if is_step:
        p = int(trace[stage, "position"].tensor.reshape(-1)[0])
        where = f" at position {p} ({tokens[p]!r})"
    title = decode_stage.VARIANT_TITLES[v]
    what = (terms[name].formula if terms[name] is not None else "the prompt's embeddings")
    lines = ["import torch", "from torch import nn", ""] + HEADER + [
        f"# {stage}.{name}{where}: {what}",
        f"# {v}: {title}; d_in {cfg.d_in}, d_out {cfg.d_out}, {h} query heads of {hd}, "
        + (f"latent {cfg.latent}" if v == "mla" else f"{g} K/V head{'s' if g != 1 else ''}")
        + (f", window {W}" if W is not None else "") + f"; seed {cfg.seed}", ""]
    if _needs_embedding(cfg, new, prompt):
        lines += _embedding_def(cfg)
    lines += ["# every token's embedding: the prompt, then the new tokens appended one at a time"]
    lines += _prompt_lines(cfg, prompt, trace.inputs.array[:T0], "X_prompt")
    lines += [f"new_tokens = {list(new)!r}",
              "# a new word already in the prompt gets its row again; another gets its seeded vector",
              "X_new = torch.stack([X_prompt[tokens.index(w)] if w in tokens else embedding(w) for w in new_tokens])"
              if _needs_embedding(cfg, new, prompt) else
              "X_new = torch.stack([X_prompt[tokens.index(w)] for w in new_tokens])  # each in the prompt: its row again",
              f"X = torch.cat([X_prompt, X_new]).to({_dtype(cfg)})  # (T, d_in), rows 0…{T0 - 1} the prompt",
              f"T0 = {T0}  # the prompt's length",
              f"d_in, d_out, h, g, hd = {cfg.d_in}, {cfg.d_out}, {h}, {g}, {hd}"
              + (f"\nW = {W}  # sliding_window_size" if W is not None else "")
              + (f"\nlatent_dim = {cfg.latent}" if v == "mla" else "")]
    bias = cfg.qkv_bias
    out_bias = v not in ("gqa", "mqa")
    if v == "mla":
        layers = [("query", "d_in", "d_out", bias), ("DKV", "d_in", "latent_dim", bias),
                  ("UK", "latent_dim", "d_out", bias), ("UV", "latent_dim", "d_out", bias),
                  ("out", "d_out", "d_out", True)]
        order = "W_query, W_DKV, W_UK, W_UV, out_proj (MultiHeadLatentAttention)"
    else:
        layers = [("query", "d_in", "d_out", bias), ("key", "d_in", "g * hd", bias),
                  ("value", "d_in", "g * hd", bias), ("out", "d_out", "d_out", out_bias)]
        order = ("W_query, W_key, W_value, out_proj" + ("" if out_bias else " (no bias: the book's GroupedQueryAttention)"))
    lines += _linear_lines(layers, cfg, f"torch.manual_seed, then nn.Linear {order}")
    lines += _float64_default(cfg)
    if stage == WEIGHTS:
        return _finish(lines, name)
    lines += [""] + _decode_layer(cfg)
    if stage == PREFILL:
        lines += ["", "prefill = layer(X[:T0], 0, empty)  # the prompt in one call: full causal attention, the cache filled"]
        return _finish(lines, "X[:T0]" if name == "inputs" else f"prefill[{name!r}]")
    if stage == SUMMARY:
        if name == "inputs":
            return _finish(lines, "X")
        lines += ["",
                  "state = layer(X[:T0], 0, empty)  # prefill",
                  "outputs = [state['context_vecs']]",
                  "for p in range(T0, len(X)):  # one call per new token, the cache read and grown",
                  "    state = layer(X[p:p + 1], p, state)",
                  "    outputs.append(state['context_vecs'])",
                  "context_vecs = torch.cat(outputs)  # (T, d_out): as generated with the cache",
                  "recomputed = layer(X, 0, empty)['context_vecs']  # one uncached pass over the whole sequence",
                  "max_abs_diff = (context_vecs - recomputed).abs().amax(dim=-1)  # per position"]
        return _finish(lines, name)
    # a step: the cache as it is before the token at ptr, then the chapter's lines for that token
    p = int(trace[stage, "position"].tensor.reshape(-1)[0])
    cache_vars = ("cache_c_kv",) if v == "mla" else ("ring_k", "ring_v", "ring_positions") if W is not None \
        else ("cache_k", "cache_v")
    lines += ["",
              f"# the cache before the token at position {p}: the prompt in one call (prefill), then one call per token",
              "state = layer(X[:T0], 0, empty)",
              f"for p in range(T0, {p}):",
              "    state = layer(X[p:p + 1], p, state)",
              f"{', '.join(cache_vars)} = {', '.join(f'state[{c!r}]' for c in cache_vars)}", "",
              f"# decode step at position {p}: the lines of the code panel"]
    body = []
    for n, line in decode_stage.code(cfg):
        if n == "position":
            line = f"ptr = {p}  # the new token's position (self.ptr_current_pos): {p} tokens are cached before it"
        elif n == "x_new":
            line = f"x_new = X[ptr:ptr + 1]  # (1, d_in): the embedding of {tokens[p]!r}"
        elif n == "recomputed":
            line = ("recomputed = layer(X, 0, empty)['context_vecs'][ptr:ptr + 1]  "
                    "# no cache: every token in one call; row ptr sees tokens 0…ptr")
        body.append((n, line))
    until = _lines_until(body, name)
    if until is None:
        raise NoSnippet(f"{stage}.{name} has no line in the decode code")
    lines += until
    var = DECODE_VARS.get(name, name)
    return _finish(lines, var)


def _decode_layer(cfg) -> list[str]:
    """The variant's forward with a cache, compactly (what core.stages.decode.forward runs)."""
    v, W = cfg.variant, cfg.window
    b = (lambda n: f" + b_{n}") if cfg.qkv_bias else (lambda n: "")
    b_out = " + b_out" if v not in ("gqa", "mqa") else ""
    if v == "mla":
        head = ["def layer(x, ptr, cache):",
                '    """MultiHeadLatentAttention.forward(x, use_cache=True), compactly: the rows x at positions',
                '    ptr … ptr + n − 1; only the latent c_kv is cached. Returns every tensor by name (the cache in it)."""',
                "    n = x.shape[0]",
                f"    queries = (x @ W_query{b('query')}).view(n, h, hd).transpose(0, 1)  # (h, n, hd)",
                f"    latent_new = x @ W_DKV{b('DKV')}  # (n, latent_dim)",
                "    cache_c_kv = torch.cat([cache['cache_c_kv'], latent_new], dim=0)  # (ptr + n, latent_dim)",
                "    key_positions = torch.arange(ptr + n)",
                f"    keys = (cache_c_kv @ W_UK{b('UK')}).view(-1, h, hd).transpose(0, 1)  # (h, ptr + n, hd)",
                f"    values = (cache_c_kv @ W_UV{b('UV')}).view(-1, h, hd).transpose(0, 1)"]
        empty = ["empty = {'cache_c_kv': torch.zeros(0, latent_dim)}  # before the prompt: nothing cached"]
        named = ["queries", "latent_new", "cache_c_kv", "key_positions", "keys", "values"]
    else:
        head = ["def layer(x, ptr, cache):",
                '    """GroupedQueryAttention.forward(x, use_cache=True), compactly: the rows x at positions',
                '    ptr … ptr + n − 1 (MHA: g = h; MQA: g = 1). Returns every tensor by name (the cache in it)."""',
                "    n = x.shape[0]",
                f"    queries = (x @ W_query{b('query')}).view(n, h, hd).transpose(0, 1)  # (h, n, hd)",
                f"    keys_new = (x @ W_key{b('key')}).view(n, g, hd).transpose(0, 1)  # (g, n, hd)",
                f"    values_new = (x @ W_value{b('value')}).view(n, g, hd).transpose(0, 1)"]
        if W is None:
            head += ["    cache_k = torch.cat([cache['cache_k'], keys_new], dim=1)  # (g, ptr + n, hd)",
                     "    cache_v = torch.cat([cache['cache_v'], values_new], dim=1)",
                     "    key_positions = torch.arange(ptr + n)",
                     "    keys_base, values_base = cache_k, cache_v"]
            empty = ["empty = {'cache_k': torch.zeros(g, 0, hd), 'cache_v': torch.zeros(g, 0, hd)}  # nothing cached yet"]
            named = ["queries", "keys_new", "values_new", "cache_k", "cache_v", "key_positions", "keys", "values"]
        else:
            head += ["    # the ring holds the last W positions, position q in slot q % W; read oldest first",
                     "    held = torch.arange(max(0, ptr - W), ptr)",
                     "    positions = torch.cat([held, torch.arange(ptr, ptr + n)])",
                     "    keep = W + n - 1  # the earliest query of the call needs W − 1 keys before it",
                     "    keys_base = torch.cat([cache['ring_k'][:, held % W], keys_new], dim=1)[:, -keep:]",
                     "    values_base = torch.cat([cache['ring_v'][:, held % W], values_new], dim=1)[:, -keep:]",
                     "    key_positions = positions[-keep:]",
                     "    written = torch.arange(ptr, ptr + n)[-W:]  # each new row goes to slot pos % W",
                     "    ring_k = cache['ring_k'].index_copy(1, written % W, keys_new[:, -W:])  # (g, W, hd)",
                     "    ring_v = cache['ring_v'].index_copy(1, written % W, values_new[:, -W:])",
                     "    ring_positions = cache['ring_positions'].index_copy(0, written % W, written)  # (W,), −1: empty"]
            empty = ["empty = {'ring_k': torch.zeros(g, W, hd), 'ring_v': torch.zeros(g, W, hd),",
                     "         'ring_positions': torch.full((W,), -1)}  # W empty slots"]
            named = ["queries", "keys_new", "values_new", "ring_k", "ring_v", "ring_positions", "key_positions",
                     "keys", "values"]
        head += ["    keys = keys_base.repeat_interleave(h // g, dim=0)  # (g, T_k, hd) -> (h, T_k, hd)",
                 "    values = values_base.repeat_interleave(h // g, dim=0)"]
    window = " & (diff < W)" if W is not None else ""
    head += ["    diff = torch.arange(ptr, ptr + n)[:, None] - key_positions[None, :]  # query position − key position",
             f"    mask = ((diff >= 0){window}).to(x.dtype)  # (n, T_k): 1 = may attend",
             "    attn_scores = queries @ keys.transpose(-2, -1)  # (h, n, T_k)",
             "    masked_scores = attn_scores.masked_fill(mask == 0, -torch.inf)",
             "    attn_weights = torch.softmax(masked_scores / keys.shape[-1] ** 0.5, dim=-1)",
             "    context_heads = attn_weights @ values  # (h, n, hd)",
             "    context_concat = context_heads.transpose(0, 1).reshape(n, h * hd)  # (n, d_out)",
             f"    context_vecs = context_concat @ W_out{b_out}",
             "    return dict(" + ", ".join(f"{k}={k}" for k in named + ["mask", "attn_scores", "masked_scores",
                                                                         "attn_weights", "context_heads",
                                                                         "context_concat", "context_vecs"]) + ")",
             ""]
    return head + empty


# ---- stage 7: tiled attention ---------------------------------------------------------------

def _head_setup(trace, cfg, title: str) -> list[str]:
    """The prompt, the chapter's MultiHeadAttention weights (draw_fused) and every head's Q, K, V."""
    tokens = tuple(trace.inputs.tokens)
    lines = []
    if cfg.embeddings == "random":
        lines += _embedding_def(cfg)
    lines += ["# the prompt's embeddings"]
    lines += _prompt_lines(cfg, tokens, trace.inputs.array, "inputs")
    lines += [f"inputs = inputs.to({_dtype(cfg)})  # kept in float64 by the app, computed in {cfg.dtype}",
              f"T, d_in, d_out, h, hd = {len(tokens)}, {cfg.d_in}, {cfg.d_out}, {cfg.num_heads}, {cfg.head_dim}"]
    b = cfg.qkv_bias
    lines += _linear_lines([("query", "d_in", "d_out", b), ("key", "d_in", "d_out", b),
                            ("value", "d_in", "d_out", b)], cfg,
                           "the chapter's MultiHeadAttention: torch.manual_seed, then W_query, W_key, W_value")
    lines += _float64_default(cfg)
    bias = (lambda r: f" + b_{r}") if b else (lambda r: "")
    lines += ["", "# every head's queries, keys and values, as the multi-head stage splits them"]
    for role, var in (("query", "queries"), ("key", "keys"), ("value", "values")):
        lines.append(f"{var} = (inputs @ W_{role}{bias(role)}).view(T, h, hd).transpose(0, 1)  # (T, d_out) -> (h, T, hd)")
    return lines + [""]


def _tiled(trace, stage: str, name: str) -> str:
    from core.tiled import INPUTS, RESULT
    cfg = trace.config
    if stage == INPUTS:
        terms = tiled_stage.INPUT_TERMS
    elif stage == RESULT:
        terms = tiled_stage.RESULT_TERMS
    elif stage.startswith("tiled_step"):
        terms = tiled_stage.TERMS
    else:
        raise NoSnippet(f"{stage}.{name} is drawn by the window from the trace's tables; no runnable script")
    if name in ("tiles", "io"):
        raise NoSnippet(f"{stage}.{name} is a table of the kernel's bookkeeping "
                        f"({'the tiles in its order' if name == 'tiles' else 'core.flash_io'}); no runnable script")
    if name not in terms or (stage, name) not in trace:
        raise NoSnippet(f"{stage}.{name} is not in this tiled trace")
    form = "FlashAttention-2" if cfg.fa2 else "FlashAttention"
    where = ""
    step = None
    if stage.startswith("tiled_step"):
        tile = [int(x) for x in trace[stage, "tile"].tensor.tolist()]
        step = tile[0]
        where = (f" at tile {step} in the kernel's order (query block {tile[1]}: tokens {tile[3]}…{tile[4]}, "
                 f"key block {tile[2]}: tokens {tile[5]}…{tile[6]})")
    lines = ["import torch", "import math", "from torch import nn", ""] + HEADER + [
        f"# {stage}.{name}{where}: {terms[name].formula}",
        f"# {form}, blocks Br = {cfg.block_rows} × Bc = {cfg.block_cols}, {'causal' if cfg.causal else 'no mask'}, "
        f"head {cfg.head} of {cfg.num_heads}; seed {cfg.seed}", ""]
    lines += _head_setup(trace, cfg, form)
    code = [(n, l) for n, l in tiled_stage.code(cfg) if l != "import math, torch"]
    lines += ["# the kernel: the lines of the code panel"]
    if stage == INPUTS:
        until = _lines_until(code, name)
        return _finish(lines + until, TILED_VARS[name])
    var = TILED_VARS.get(name, name)
    out = []
    for n, line in code:
        if step is not None and line.startswith("for "):
            out.append("step = 0  # tiles visited so far")
        if step is not None and line.strip().startswith("m[i:i + Br], l[i:i + Br], O[i:i + Br] ="):
            expr, why = var, ""
            if name == "tile":
                diag = "int(j + len(K_j) - 1 > i)" if cfg.causal else "0"
                expr = f"torch.tensor([step, i // Br, j // Bc, i, i + len(Q_i) - 1, j, j + len(K_j) - 1, {diag}])"
                why = "  # step, query block, key block, first/last query, first/last key, diagonal"
            out += [f"        if step == {step}:  # the tile on screen, before m, l and O are written back",
                    f"            print({expr}){why}",
                    line,
                    "        step += 1"]
            # the tile's matrix is printed from inside the loop: nothing after the loop is needed
            return "\n".join(lines + out) + "\n"
        if n == "lse_check":
            mask = ".masked_fill(torch.ones(T, T).triu(1).bool(), -torch.inf)" if cfg.causal else ""
            out.append(f"S_full = (Q @ K.T){mask}  # the whole T × T scores (what the kernel never holds)")
        out.append(line)
        if step is None and n == name:
            break
    # a result: the lines up to its own (m, l and FA1's O are comments: the values after the loop)
    return _finish(lines + out, var)


# ---- stage 8: RoPE ---------------------------------------------------------------------------

def _rope(trace, name: str) -> str:
    cfg = trace.config
    if name not in rope_stage.TERMS or ("rope", name) not in trace:
        raise NoSnippet(f"rope.{name} is not in this RoPE trace")
    lines = ["import torch", "from torch import nn", ""] + HEADER + [
        f"# rope.{name}: {rope_stage.TERMS[name].formula}",
        f"# RoPE {cfg.form} pairs, base {cfg.base:g}, shift {cfg.shift}, head {cfg.head} of {cfg.num_heads}; "
        f"seed {cfg.seed}", ""]
    lines += _head_setup(trace, cfg, "RoPE")
    lines += ["# RoPE on the head's queries and keys: the lines of the code panel"]
    until = _lines_until(rope_stage.code(cfg), name)
    if until is None:
        raise NoSnippet(f"rope.{name} has no line in the RoPE code")
    var = ROPE_VARS.get(name, name)
    if name in ("theta", "angles"):
        var = f"{var}.to(Q.dtype)"           # computed in float64, recorded in Q's dtype
    return _finish(lines + until, var)
