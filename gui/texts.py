"""Fill a step's explanation with the current numbers (numpy only).

Templates use ``{{var}}`` (T, d_in, d_out, h, hd, d_k, sqrt_dk, p, keep_scale, seed, …,
``tokN`` = the N-th token) and ``{{stage.name[i,j]}}`` (a value or a row of the trace, 4
decimals; tensors with a batch axis are read at batch 0).
"""
from __future__ import annotations

import html
import math
import re

import numpy as np

_FIELD = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_REF = re.compile(r"^(\w+)\.(\w+)(?:\[([\d,\s]*)\])?$")


def variables(trace) -> dict[str, str]:
    cfg = trace.config
    hd = cfg.d_out // cfg.num_heads
    out = {
        "T": str(len(trace.tokens)), "d_in": str(cfg.d_in), "d_out": str(cfg.d_out),
        "h": str(cfg.num_heads), "hd": str(hd), "hd_last": str(hd - 1), "d_k": str(cfg.d_out),
        "sqrt_dk": f"{math.sqrt(cfg.d_out):.4f}", "sqrt_hd": f"{math.sqrt(hd):.4f}",
        "p": f"{cfg.dropout:g}", "keep_scale": f"{1.0 / (1.0 - cfg.dropout):.4g}",
        "dropout_seed": str(cfg.dropout_seed), "seed": str(cfg.seed), "init": cfg.init,
        "qkv_bias": str(cfg.qkv_bias), "b": str(cfg.batch), "device": trace.device,
    }
    for i, label in enumerate(trace.labels):
        out[f"tok{i}"] = label
    return out


def _fmt(v) -> str:
    v = float(v)
    if math.isinf(v):
        return "−∞" if v < 0 else "∞"
    return f"{v:.4f}"


def _lookup(ref: str, trace) -> str | None:
    m = _REF.match(ref)
    if not m or (m.group(1), m.group(2)) not in trace:
        return None
    item = trace[m.group(1), m.group(2)]
    arr = item.numpy()
    if item.axes and item.axes[0] == "batch":
        arr = arr[0]
    idx = tuple(int(i) for i in m.group(3).split(",") if i.strip()) if m.group(3) else ()
    try:
        sub = arr[idx] if idx else arr
    except IndexError:
        return "…"
    sub = np.asarray(sub)
    if sub.ndim == 0:
        return _fmt(sub)
    if sub.ndim == 1 and sub.size <= 12:
        return ", ".join(_fmt(v) for v in sub)
    return f"({' × '.join(str(n) for n in sub.shape)} values)"


def render(template: str, trace, escape: bool = False) -> str:
    """Replace every ``{{…}}`` with its value for ``trace`` (unknown fields stay visible)."""
    vars_ = variables(trace)

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key in vars_:
            value = vars_[key]
        else:
            value = _lookup(key, trace)
            if value is None:
                return m.group(0)
        return html.escape(value) if escape else value

    return _FIELD.sub(sub, template)
