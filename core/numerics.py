"""Values that are not numbers: found, counted and explained, never passed on silently.

The chapter's arithmetic can be undefined: ω/Σω divides by a row sum that is 0 when a token's
embedding row is all zeros (a padding token) — 0/0, ``nan`` — or when a row's scores cancel out;
huge inputs overflow float32 to ``inf`` and the softmax after it gives ``nan``. The values are
kept as they are (exported as ``nan``/``inf``, shown as such); ``undefined_value_notes`` says
where they are and why, for the manifest, the command line and the window. The −∞ that masking
puts above the diagonal of ``masked_scores`` is the design, not a note.
"""
from __future__ import annotations

import math

import numpy as np
import torch

# −inf by design: masked_scores hold −∞ where a query may not attend (the chapter's approach B)
EXPECTED_NEG_INF = frozenset({"masked_scores"})

_WHY = {
    "attn_weights_sumnorm": "ω/Σω divides by a row sum of 0 (an all-zero embedding row, e.g. a padding token, "
                            "or scores that cancel out): 0/0 is undefined",
}
_WHY_NAN = "undefined arithmetic (0/0, ∞−∞ or 0·∞), e.g. after a value overflowed"
_WHY_INF = "overflow or a division by 0: the value is too large for the dtype"


def undefined_value_notes(trace) -> list[dict]:
    """One note per slice and kind of non-finite value, in trace order.

    Each note: ``{"stage", "name", "index", "value", "count", "why"}`` where ``index`` is the
    slice's leading (batch/head) indices as in the manifest's ``tensors`` and ``value`` is
    ``"nan"``, ``"inf"`` or ``"-inf"``. Empty when every value is a number (the usual case).
    """
    return [note for item in trace for note in item_notes(item)]


def item_notes(item) -> list[dict]:
    """The notes of one intermediate (see ``undefined_value_notes``): one min/max pass when
    every value is a number (the usual case), a count per slice otherwise. Found afresh on
    each call (a trace keeps nothing; the window keeps what it asks for every redraw)."""
    return [] if _all_numbers(item) else _find_notes(item)


def _all_numbers(item) -> bool:
    """Whether every value is a number (−∞ allowed where EXPECTED_NEG_INF), from one min/max
    pass (a nan makes both nan): 1.6 ms for a 12-head 1024-token intermediate (50 MB), where
    ``torch.isfinite(t).all()`` writes a 12 M-element mask first (40 ms)."""
    t = getattr(item, "tensor", None)
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        return False
    if t.numel() == 0:
        return True
    lo, hi = (float(v) for v in torch.aminmax(t))
    return hi < math.inf and (item.name in EXPECTED_NEG_INF or lo > -math.inf)


def _find_notes(item) -> list[dict]:
    notes = []
    arr = item.numpy()
    if arr.dtype.kind != "f" or arr.size == 0 or np.isfinite(arr).all():
        return notes
    lead = item.lead_axes()
    kinds = [("nan", np.isnan(arr)), ("inf", np.isposinf(arr))]
    if item.name not in EXPECTED_NEG_INF:
        kinds.append(("-inf", np.isneginf(arr)))
    for index in np.ndindex(*arr.shape[:lead]):
        for value, where in kinds:
            count = int(where[index].sum())
            if count:
                why = _WHY.get(item.name) if value == "nan" else None
                notes.append({"stage": item.stage, "name": item.name, "index": list(index),
                              "value": value, "count": count,
                              "why": why or (_WHY_NAN if value == "nan" else _WHY_INF)})
    return notes


def summarize_notes(notes: list[dict], limit: int = 5) -> list[str]:
    """One line per intermediate with notes (at most ``limit``, then a line for the rest)."""
    per_item: dict[tuple[str, str], list[dict]] = {}
    for note in notes:
        per_item.setdefault((note["stage"], note["name"]), []).append(note)
    lines = []
    for (stage, name), group in per_item.items():
        counts: dict[str, int] = {}
        for note in group:
            counts[note["value"]] = counts.get(note["value"], 0) + note["count"]
        what = ", ".join(f"{n} {v}" for v, n in counts.items())
        why = "; ".join(dict.fromkeys(note["why"] for note in group))
        lines.append(f"{stage}.{name} holds {what} (exported as such): {why}")
    if len(lines) > limit:
        rest = len(lines) - limit
        lines = lines[:limit] + [f"… and {rest} more intermediate{'s' if rest > 1 else ''} with undefined values"]
    return lines
