"""The torch code beside the math: the book-style lines behind every intermediate.

``stage_code(config, stage)`` lists (name, line) pairs in the order the chapter writes them (each
stage file's ``code``),
so a view can show the lines and highlight the one that produces the shown matrix.
``snippet(trace, stage, name)`` returns a runnable script (torch only) that rebuilds the
inputs, draws the weights as the book does and prints that intermediate; its numbers equal
the trace's (stages 6–8: core.stage_snippets; stage 5: core.pretrained_snippets).
"""
from __future__ import annotations

import functools

from core.config import AttentionConfig
from core.weights import ROLES
from core.trace import Trace
from core.stages import STAGES
from core.stages.multihead import FUSED_START, WRAPPER_START
from core.vocabulary import VOCABULARY

# Longest inputs written into a snippet literally (beyond: a note, and the first rows).
MAX_LITERAL_TOKENS = 256


def stage_code(cfg: AttentionConfig, stage: str) -> list[tuple[str | None, str]]:
    """(intermediate name or None, line) for one stage, book style: the stage file's ``code``.
    Kept per config (the code panel asks on every trace; multi-head's lines take ~1.5 ms to write)."""
    try:
        return list(_stage_code(cfg, stage))
    except TypeError:                       # a config that cannot be a key (unhashable): written anew
        return list(_stage_code.__wrapped__(cfg, stage))


@functools.lru_cache(maxsize=32)
def _stage_code(cfg, stage: str) -> tuple[tuple[str | None, str], ...]:
    from core.provenance import EXTERNAL, external_stage
    if stage.startswith(EXTERNAL):          # decode, tiled, rope (external, not in STAGES): the stage's lines
        return tuple(external_stage(stage).code(cfg))
    return tuple(STAGES[stage].code(cfg))


def _inputs_literal(trace: Trace) -> list[str]:
    arr = trace.inputs.array
    rows = arr[:MAX_LITERAL_TOKENS]
    body = [f"    [{', '.join(repr(float(v)) for v in row)}],  # {tok}"
            for row, tok in zip(rows, trace.tokens)]
    note = [] if len(arr) <= MAX_LITERAL_TOKENS else [f"# (first {MAX_LITERAL_TOKENS} of {len(arr)} tokens)"]
    return note + ["inputs = torch.tensor(["] + body + [f"], dtype={'torch.float64' if trace.config.dtype == 'float64' else 'torch.float32'})"]


def _literal(arr) -> str:
    """A float32 array as a torch.tensor literal (repr of each float32 value read back exactly)."""
    import numpy as np
    a = np.asarray(arr)
    if a.ndim == 1:
        body = ", ".join(repr(float(v)) for v in a)
    else:
        body = ", ".join("[" + ", ".join(repr(float(v)) for v in row) + "]" for row in a)
    return f"torch.tensor([{body}], dtype=torch.float32)"


def with_given(lines: list[str], given: dict[str, str], note: str) -> list[str]:
    """``lines`` with the weights in ``given`` (name -> torch expression) written in on the line
    that makes each one. A draw is kept as ``_ = torch.rand(...)`` (an ``nn.Linear`` line stays as
    it is), so the random numbers drawn after it (the next weight, dropout) stay the same."""
    out = []
    for line in lines:
        name = next((n for n in given if line.startswith(f"{n} = ")), None)
        if name is None:
            out.append(line)
            continue
        made = line[len(name) + 3:]
        if made.startswith("torch.rand("):
            out.append(f"_ = {made}  # drawn as before: the random numbers after it stay the same")
        out.append(f"{name} = {given[name]}  # {note}")
    return out


def _given_fused_weights(trace: Trace, out: list[str]) -> list[str]:
    """The fused lines with the weights the trace was given (a trained layer's) written in,
    instead of drawn from the seed."""
    given = {f"W_{r}": trace["multihead", f"W_{r}"].numpy() for r in ROLES}
    given.update(W_out=trace["multihead", "W_out"].numpy(), b_out=trace["multihead", "b_out"].numpy())
    return with_given(out, {n: _literal(a) for n, a in given.items()}, "given (a trained layer's)")


def snippet(trace: Trace, stage: str, name: str) -> str:
    """A runnable script that prints ``stage.name`` with the trace's numbers."""
    if stage == "pretrained":              # runs against the installed checkpoint
        from core.pretrained_snippets import snippet as pretrained_snippet
        return pretrained_snippet(trace, name)
    from core.provenance import EXTERNAL
    if stage.startswith(EXTERNAL):         # decode, tiled, rope: their own inputs, weights and pointer
        from core.stage_snippets import snippet as stage_snippet
        return stage_snippet(trace, stage, name)
    cfg = trace.config
    if name not in VOCABULARY[stage]:
        raise KeyError(f"{stage}.{name} is not in the vocabulary")
    lines = ["import torch", "from torch import nn", "",
             f"torch.set_printoptions(precision=8, sci_mode=False, linewidth=200)",
             f"# {stage}.{name}: {VOCABULARY[stage][name].formula}"]
    lines += _inputs_literal(trace)
    lines += [f"d_in, d_out, p = {cfg.d_in}, {cfg.d_out}, {cfg.dropout}"]
    code = [(None, "")] + stage_code(cfg, stage)
    if stage == "multihead":
        lines_only = [l for _, l in code]
        w0, f0 = lines_only.index(WRAPPER_START), lines_only.index(FUSED_START)
        # the snippet keeps only the implementation the intermediate belongs to
        code = code[:w0] + (code[w0:f0] if name.startswith("wrapper_") else code[f0:])
    out = []
    found = False
    for n, line in code:
        out.append(line)
        if n == name:
            found = True
            break
    if name == "inputs":
        out, found = [], True
    if not found:
        raise KeyError(f"{stage}.{name} has no line in the stage's code")
    if stage == "multihead" and getattr(trace, "multihead_given", False) and not name.startswith("wrapper_"):
        out = _given_fused_weights(trace, out)
    lines += out
    batched = VOCABULARY[stage][name].batched and cfg.batch == 1
    lines += [f"print({name}{'.squeeze(0)' if batched else ''})"]
    return "\n".join(lines) + "\n"
