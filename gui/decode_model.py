"""Stage 6 (decode with a KV cache), Qt-free: the trace as the window reads it at one position.

core.decode.build_decode gives one stage per generated token (``decode_pos06``, ``decode_pos07``…).
The steps (resources/steps.json) name ``decode.<term>``: gui.external_model.DecodeView (the
stage's view, one entry of gui.external_model.STAGES) maps ``decode`` to the stage of the
position under the bar's pointer. Here: the GQA groups' colours and titles (:func:`label_heads`),
the settings line and the explanation's sentences. Nothing here imports torch.
"""
from __future__ import annotations

import math

WEIGHTS, PREFILL, SUMMARY = "decode_weights", "decode_prefill", "decode_summary"   # = core.decode's


# the K/V groups' colours (titles of the query heads and of their K/V head, the bar's legend): dark
# enough to read as text on white, none the blue of a chosen head's title (#2f6fd0)
GROUP_COLOURS = ("#c0392b", "#1e8449", "#8e44ad", "#b9770e", "#117a65", "#7b241c", "#5d6d7e", "#a93226",
                 "#196f3d", "#6c3483", "#9a7d0a", "#0e6655", "#78281f", "#283747", "#af601a", "#4a235a")


def group_of(head: int, cfg) -> int | None:
    """The K/V head query head ``head`` reads (repeat_interleave: heads h·size … h·size + size − 1
    read K/V head h); None where every query head has its own (MHA, MLA, g = h)."""
    g = getattr(cfg, "kv_groups", None)
    h = cfg.num_heads
    if cfg.variant == "mla" or not g or g == h:
        return None
    return head // (h // g)


def group_colour(group: int) -> str:
    return GROUP_COLOURS[group % len(GROUP_COLOURS)]


def group_legend(cfg) -> list[tuple[str, str]]:
    """(colour, text) per K/V head: "query heads 0–3 share K/V head 0"; empty where no head is shared."""
    if group_of(0, cfg) is None:
        return []
    size = cfg.num_heads // cfg.kv_groups
    out = []
    for k in range(cfg.kv_groups):
        heads = f"query heads {k * size}–{(k + 1) * size - 1}" if size > 1 else f"query head {k}"
        out.append((group_colour(k), f"{heads} share{'s' if size == 1 else ''} K/V head {k}"))
    return out


def label_heads(datas, cfg) -> None:
    """Stage 6's maps as the decode steps draw them (the numbers are untouched):

    - GQA/MQA/SWA: each query head's map is titled "h5 ← kv1" (the K/V head it shares,
      repeat_interleave) and each K/V head's map "kv1", both in that K/V head's colour
      (:data:`GROUP_COLOURS`; the decode bar's legend line says "query heads 4–7 share K/V head 1");
      MHA's K/V heads in a grid of many are "kv1" too (no colour: none is shared);
    - grids of many heads (thumbnails, ``grid_cols``): where a step shows several, each is one row
      of heads, the grids one above the other (but K/V heads compared with query heads stay
      square grids, beside each other); a lone grid of GQA's query heads has one row of heads per
      K/V head (up to 4 a row); a lone grid of one-row maps (the new token's
      query, scores…) is rows of up to 4 heads (8 heads: two rows), leaving room beside it for
      the step's other maps."""
    from gui.heatmap import THUMBNAIL_MAPS
    for d in datas:
        for m in d.maps:
            k = group_of(m.head, cfg) if m.title.startswith("head ") and m.head is not None else None
            if k is not None:
                m.title, m.title_colour = f"h{m.head} ← kv{k}", group_colour(k)
            elif m.title.startswith("K/V head ") and m.index and group_of(0, cfg) is not None:
                k = m.index[0]
                m.title, m.title_colour = f"kv{k}", group_colour(k)
            elif m.title.startswith("K/V head ") and m.index and len(d.maps) >= THUMBNAIL_MAPS:
                m.title = f"kv{m.index[0]}"         # MHA's many K/V heads: a short title, more of them a row
    grids = [d for d in datas if len(d.maps) >= THUMBNAIL_MAPS]
    if len({d.maps[0].head is None for d in grids}) > 1:
        return              # K/V heads beside the query heads (MHA's GQA step, compared): square grids, one row
    g = getattr(cfg, "kv_groups", None)
    size = cfg.num_heads // g if g and group_of(0, cfg) is not None else 0
    for d in grids:
        if len(grids) > 1:
            d.extra["grid_cols"] = len(d.maps)                 # the grids one above the other
        elif 2 <= size <= 4 and d.maps[0].head is not None and len(d.maps) == cfg.num_heads:
            d.extra["grid_cols"] = size                        # a row of heads per K/V head (GQA 8 × 2: 4 a row)
        elif d.shape[0] <= 2:
            d.extra["grid_cols"] = min(4, math.ceil(len(d.maps) / 2))   # rows of ≤ 4 heads: room beside them


def options_line(cfg) -> str:
    """The settings in one line (the explanation's footer, the status bar)."""
    extra = {"gqa": f" · {cfg.kv_groups} K/V heads (groups of {cfg.num_heads // cfg.kv_groups})",
             "mqa": " · 1 K/V head", "mla": f" · latent {cfg.latent}",
             "swa": f" · window W = {cfg.window} · {cfg.kv_groups} K/V heads"}.get(cfg.variant, "")
    return (f"decode {cfg.variant}{extra} · {cfg.num_heads} heads × hd {cfg.head_dim} · d_in {cfg.d_in} · "
            f"seed {cfg.seed}")


# ---- sentences for the explanation ({{@decode_…}} in resources/steps.json, gui/texts.py) ----------

def first_value(trace, stage: str, name: str) -> float:
    """The intermediate's first (for a check: its only) number, as a float."""
    return float(trace[stage, name].numpy().reshape(-1)[0])


def sentence(which: str, trace, esc) -> str:
    """A sentence with the current numbers for one decode step; '' for a trace that is not one."""
    from gui.external_model import DecodeView
    if not isinstance(trace, DecodeView):
        return ""
    cfg, p = trace.config, trace.position
    T0, T = trace.prompt_tokens, len(trace.tokens)
    tok = esc(trace.labels[p])
    h, g, hd = cfg.num_heads, cfg.kv_groups, cfg.head_dim
    if which == "pos":
        return (f"The pointer is at position {p} (counted from 0): the new token {tok}, after the prompt's "
                f"{T0} tokens and {p - T0} generated ones ({T - T0} new tokens in all; the slider picks which).")
    if which == "prefill":
        if cfg.variant == "mla":
            kept = f"one latent row of {cfg.latent} numbers per prompt token ({T0} rows)"
        elif cfg.variant == "swa":
            kept = (f"the last min({T0}, W = {cfg.window}) tokens' keys and values in a ring buffer of {cfg.window} "
                    f"slots per K/V head ({g} K/V head{'s' if g != 1 else ''})")
        else:
            kept = f"{g} K/V head{'s' if g != 1 else ''} × {T0} rows × hd {hd}, for keys and for values"
        return f"After the prefill the cache holds {kept}."
    if which == "cache":
        if cfg.variant == "mla":
            return (f"MLA caches one latent row of {cfg.latent} numbers per token (c_kv = x W_DKV), not K and V: "
                    f"the cache now holds {p + 1} rows.")
        if cfg.variant == "swa":
            W = cfg.window
            return (f"SWA keeps only the last W = {W} keys and values, in a ring buffer of {W} slots: position "
                    f"{p} is written to slot {p} % {W} = {p % W}, over the token that was there.")
        return (f"The cache holds {g} K/V head{'s' if g != 1 else ''} × {p + 1} rows × hd {hd}: the old rows are "
                f"kept from before, only the new token's row is computed.")
    if which == "variant":
        if cfg.variant == "mla":
            return (f"MLA: the cached latent ({p + 1} × {cfg.latent}) is up-projected when read: keys = C W_UK, "
                    f"values = C W_UV, then split into {h} heads.")
        if cfg.variant == "swa":
            return (f"SWA: the band mask keeps the keys with 0 ≤ {p} − j < {cfg.window}, so the query reads "
                    f"{len(trace['decode', 'key_positions'].numpy())} keys, not {p + 1}.")
        if g == h:
            return f"{cfg.variant.upper()}: every query head has its own K/V head ({h} of each); nothing is shared."
        size = h // g
        return (f"{cfg.variant.upper()}: {h} query heads share {g} K/V head{'s' if g != 1 else ''}. "
                f"repeat_interleave({size}, dim=0) repeats each K/V head {size} times in a row, so query heads "
                f"{size}k … {size}k + {size - 1} all read K/V head k. Only the {g} K/V head{'s are' if g != 1 else ' is'} "
                f"cached: {h // g}× less memory than MHA.")
    if which == "check":
        diff = first_value(trace, "decode", "check")
        return (f"At position {p} the cached output and one uncached pass over the {p + 1} tokens so far differ "
                f"by at most {diff:.2e} (float rounding): the cache changes the cost, not the result.")
    return ""


def blocks() -> dict:
    """The explanation's blocks (gui.texts.BLOCKS): decode_prefill, decode_pos, decode_cache, decode_variant,
    decode_check."""
    return {f"decode_{w}": (lambda trace, esc, w=w: sentence(w, trace, esc))
            for w in ("prefill", "pos", "cache", "variant", "check")}
