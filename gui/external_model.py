"""Stages 6 (decode), 7 (tiled attention) and 8 (RoPE), Qt-free: how the window reads their traces.

The three stages are "external" (core.decode / core.tiled / core.rope: not the chapter's config,
not in core.stages.STAGES): one generic state per stage (``ExternalState``, kept by the view
model) and a view of the trace at the bar's pointer:

- decode (:class:`DecodeView`): the pointer is the generated position; ``decode`` is that
  position's stage (decode_pos07…), ``decode_weights``, ``decode_prefill`` and ``decode_summary``
  as they are; its maps are titled by :data:`LABELS` (GQA's query heads by their K/V head);

- tiled (:class:`TiledView`): the pointer is the visited tile, in the kernel's order; the steps
  name ``tiled_step.<term>`` (that tile's stage, tiled_step007…), ``tiled_inputs`` and
  ``tiled_result`` as they are, plus ``tiled_view.grid`` (the tiles, each the step that visits it) and ``tiled_view.traffic``: HBM bytes of standard vs tiled
  attention against T (core.flash_io, this head_dim and these blocks);
- rope (:class:`RopeView`): the pointer is the position whose pairs the explanation talks about;
  the stage ``rope`` is the trace's own.

``full`` is the whole trace: File → Export all writes it (as ``python main.py export --stage
tiled|rope`` does). Nothing here imports torch at import time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gui import decode_model
from gui.decode_model import PREFILL, SUMMARY, WEIGHTS, first_value, label_heads

STAGES = ("decode", "tiled", "rope")            # the view model keeps one ExternalState for each
WAITING = {"decode": "Computing the decode trace…", "tiled": "Computing the tiled-attention trace…",
           "rope": "Computing the RoPE trace…"}
TRAFFIC_T = (256, 512, 1024, 2048, 4096, 8192, 16384)
SRAM_BYTES = 192 * 1024          # core.flash_io's default on-chip memory (an A100's per SM)


@dataclass
class ExternalState:
    """One external stage in the view model: the whole trace, the pointer, the view at it, the status."""

    stage: str
    trace: object = None
    pointer: int = 0
    view: object = None
    status: str = ""
    views: dict = field(default_factory=dict)    # pointer -> view (a trace never changes)

    def __post_init__(self) -> None:
        self.status = self.status or WAITING.get(self.stage, "Computing…")

    def set_trace(self, trace) -> None:
        self.trace, self.views = trace, {}
        self.at(self.pointer)

    def at(self, pointer: int) -> None:
        lo, hi = pointer_range(self.stage, self.trace)
        self.pointer = min(max(int(pointer), lo), hi)
        if self.pointer not in self.views:
            self.views[self.pointer] = VIEWS[self.stage](self.trace, self.pointer)
        self.view = self.views[self.pointer]


def pointer_range(stage: str, trace) -> tuple[int, int]:
    if trace is None:
        return 0, 0
    if stage == "decode":
        return trace.positions[0], trace.positions[-1]
    if stage == "tiled":
        return 0, len(trace.steps) - 1
    return 0, len(trace.tokens) - 1


class HeadConfig:
    """A TiledConfig / RopeConfig as the chapter's readers expect it: one head, no batch, no dropout."""

    batch = 1
    dropout = 0.0

    def __init__(self, cfg):
        self.cfg = cfg

    def __getattr__(self, name):
        return getattr(self.cfg, name)

    def __eq__(self, other) -> bool:
        return self.cfg == getattr(other, "cfg", other)

    __hash__ = None


class _View:
    """A read-only trace-like view (core.trace.TraceLookup's reading side): ``view[stage, name]``,
    ``in`` and iteration over ``stages`` (stage -> name -> Intermediate)."""

    def __init__(self, full, pointer: int, stages: dict, config=None):
        self.full, self.pointer, self.stages = full, pointer, stages
        for name in ("inputs", "device", "compute_ms", "notes"):
            setattr(self, name, getattr(full, name))
        self.config = config or HeadConfig(full.config)

    def __getitem__(self, key):
        stage, name = key
        return self.stages[stage][name]

    def __contains__(self, key) -> bool:
        stage, name = key
        return stage in self.stages and name in self.stages[stage]

    def __iter__(self):
        for stage in self.stages.values():
            yield from stage.values()

    @property
    def tokens(self):
        return self.full.tokens

    @property
    def labels(self):
        return self.full.labels



def _grid(full, pointer: int):
    """``tiled_view.grid``: the tiles as a (query block × key block) grid; each cell the step that
    visited it (0, 1, … in the kernel's order), −1 where the causal mask skipped it (as the table's step)."""
    import torch
    from core.stages.schema import term
    from core.trace import Intermediate
    tiles = full["tiled_result", "tiles"].numpy()      # TABLE_FIELDS: qb, kb, q0, q1, k0, k1, visited, diag, step
    nq, nk = int(tiles[:, 0].max()) + 1, int(tiles[:, 1].max()) + 1
    grid = torch.full((nq, nk), -1.0, dtype=torch.float64)
    rows, cols = [""] * nq, [""] * nk
    for r in tiles:
        qb, kb = int(r[0]), int(r[1])
        rows[qb], cols[kb] = f"q{qb} ({int(r[2])}…{int(r[3])})", f"k{kb} ({int(r[4])}…{int(r[5])})"
        if r[6]:
            grid[qb, kb] = float(r[8])
    cfg = full.config
    t = term("step", "the step that visits tile (i, j); −1: skipped",
             f"the tiles of {cfg.block_rows} queries × {cfg.block_cols} keys in the kernel's order "
             f"({'FA2: query blocks outermost' if cfg.fa2 else 'FA1: key blocks outermost'}); −1 (blue): "
             f"skipped (causal: every key after every query). The slider is at step {pointer}.",
             "query", "key")
    return Intermediate("tiled_view", "grid", grid, t, t.axes, (tuple(rows), tuple(cols)))


def _traffic(full):
    """``tiled_view.traffic``: bytes of HBM traffic, standard vs tiled, for T in TRAFFIC_T (rows: method)."""
    import torch
    from core.flash_io import rows
    from core.stages.schema import term
    from core.trace import Intermediate
    cfg = full.config
    item = 8 if cfg.dtype == "float64" else 4
    rs = rows(list(TRAFFIC_T), cfg.head_dim, 0, item, cfg.block_rows, cfg.block_cols, cfg.causal, cfg.fa2)
    # the paper's blocks for an A100's 192 KiB of SRAM (core.flash_io's default): tiny blocks read K, V often
    paper = rows(list(TRAFFIC_T), cfg.head_dim, SRAM_BYTES // item, item, None, None, cfg.causal, cfg.fa2)
    arr = torch.tensor([[r["standard_bytes"] / 1e6 for r in rs], [r["tiled_bytes"] / 1e6 for r in rs],
                        [r["tiled_bytes"] / 1e6 for r in paper]], dtype=torch.float64)
    t = term("HBM MB", "elements read + written × bytes (core.flash_io)",
             f"megabytes moved to and from global memory against T (head_dim {cfg.head_dim}, blocks "
             f"{cfg.block_rows} × {cfg.block_cols}, {'causal' if cfg.causal else 'full'}, "
             f"{'FA2' if cfg.fa2 else 'FA1'}; last row: the paper's blocks for 192 KiB of SRAM): standard attention "
             f"writes and reads the T × T matrices, the tiled kernel only Q, K, V, O (K and V once per outer block)",
             "method", "field", colours="nonneg")
    labels = (("standard", f"tiled {cfg.block_rows}×{cfg.block_cols}",
               f"paper {paper[0]['Br']}×{paper[0]['Bc']}"), tuple(f"T={n}" for n in TRAFFIC_T))
    return Intermediate("tiled_view", "traffic", arr, t, t.axes, labels)


SHORT_FIELDS = ("qb", "kb", "q0", "q1", "k0", "k1", "vis", "diag", "step")   # TABLE_FIELDS


def _short_tiles(result: dict) -> dict:
    """tiled_result with the tile table's columns named short enough to be drawn at 1366 px (the
    numbers and the export are core's: File → Export all writes ``full``)."""
    import dataclasses
    tiles = result["tiles"]
    out = dict(result)
    out["tiles"] = dataclasses.replace(tiles, labels=(tiles.labels[0], SHORT_FIELDS[:len(tiles.labels[1])]))
    return out


class DecodeView(_View):
    """The decode trace (core.decode.DecodeTrace) at one generated position (``pointer``)."""

    def __init__(self, full, position: int):
        stages = {WEIGHTS: full.stages[WEIGHTS], PREFILL: full.stages[PREFILL], "decode": full.step(position),
                  SUMMARY: full.stages[SUMMARY]}
        super().__init__(full, position, stages, full.config)
        self.position, self.positions, self.prompt_tokens = position, full.positions, full.prompt_tokens


class TiledView(_View):
    """The tiled trace at one visited tile (``pointer``: its step in the kernel's order)."""

    def __init__(self, full, pointer: int):
        from core.tiled import INPUTS, RESULT
        names = [n for n in full.stages if n.startswith("tiled_step")]
        # the alias first, then every visited tile (the inspector's rules read the earlier tiles too)
        stages = {INPUTS: full.stages[INPUTS], "tiled_step": full.stages[names[pointer]]}
        stages.update((n, full.stages[n]) for n in names)
        stages.update({RESULT: _short_tiles(full.stages[RESULT]),
                       "tiled_view": {"grid": _grid(full, pointer), "traffic": _traffic(full)}})
        super().__init__(full, pointer, stages)
        self.step_stage = names[pointer]


class RopeView(_View):
    """The RoPE trace (one stage) with the position the bar's pointer names."""

    def __init__(self, full, pointer: int):
        super().__init__(full, pointer, dict(full.stages))


VIEWS = {"decode": DecodeView, "tiled": TiledView, "rope": RopeView}
LABELS = {"decode": label_heads}       # (shown MatrixData list, the trace's config): how a stage titles its maps


# ---- settings lines and sentences ({{@tiled_…}}, {{@rope_…}} in resources/steps.json; decode's: gui.decode_model)

def options_line(cfg) -> str:
    """The settings in one line (the explanation's footer)."""
    if hasattr(cfg, "variant"):
        return decode_model.options_line(cfg)
    if hasattr(cfg, "block_rows"):
        return (f"tiled {'FlashAttention-2' if cfg.fa2 else 'FlashAttention'} · blocks {cfg.block_rows} × "
                f"{cfg.block_cols} · {'causal' if cfg.causal else 'no mask'} · head {cfg.head} of {cfg.num_heads} "
                f"× hd {cfg.head_dim} · seed {cfg.seed}")
    return (f"RoPE {cfg.form} · base {cfg.base:g} · shift {cfg.shift} · head {cfg.head} of {cfg.num_heads} × "
            f"hd {cfg.head_dim} · seed {cfg.seed}")


def sentence(which: str, trace, esc) -> str:
    if isinstance(trace, TiledView):
        cfg, n = trace.config, len(trace.full.steps)
        tile = [int(v) for v in trace["tiled_step", "tile"].numpy().reshape(-1)]
        if which == "tile":
            return (f"Tile {tile[0] + 1} of {n} visited ({'FA2: query blocks outermost' if cfg.fa2 else 'FA1: key blocks outermost'}): "
                    f"query block {tile[1]} (tokens {tile[3]}…{tile[4]}) × key block {tile[2]} (tokens {tile[5]}…{tile[6]})"
                    f"{', crossed by the diagonal (masked inside)' if tile[7] else ''}. The slider picks the tile.")
        if which == "rescale":
            a = trace["tiled_step", "rescale"].numpy()
            first = tile[2] == 0
            if first:
                return "This is the first key block of these rows: α = 0 (nothing accumulated yet)."
            if a.min() >= 1:
                return ("Here α = 1 in every row: this tile did not raise any row's maximum, nothing is rescaled "
                        "(move the slider to a tile where it does).")
            return (f"Here α goes down to {a.min():.4g}: 1 where the tile did not raise the row's maximum, below 1 "
                    f"where it did (what was accumulated so far is shrunk to the new maximum).")
        if which == "lse":
            L = trace["tiled_result", "lse"].numpy()
            return (f"Here L runs from {L.min():.4f} to {L.max():.4f}; max |L − logsumexp(QKᵀ/√d)| = "
                    f"{first_value(trace, 'tiled_result', 'lse_check'):.1e}.")
        if which == "check":
            return (f"max |O − softmax(QKᵀ/√d)V| = {first_value(trace, 'tiled_result', 'check'):.1e} and max |L − "
                    f"logsumexp| = {first_value(trace, 'tiled_result', 'lse_check'):.1e}: the same numbers, without the "
                    f"T × T matrix.")
        return ""
    if isinstance(trace, RopeView):
        cfg, p = trace.config, trace.pointer
        if which == "pos":
            ang = trace["rope", "angles"].numpy()[p]
            return (f"The pointer is at position {p} ({esc(trace.labels[p])}): pair 0 is turned by {ang[0]:.3g} rad, "
                    f"the last pair by {ang[-1]:.3g} rad (base {cfg.base:g}, {cfg.form} pairs).")
        if which == "shift":
            return (f"Every position moved by s = {cfg.shift}: max |Δ| = {first_value(trace, 'rope', 'shift_check'):.1e} "
                    f"(float rounding): the scores depend on m − n only.")
        if which == "form":
            return (f"max |Δ| between {cfg.form} and the other form on the permuted dimensions = "
                    f"{first_value(trace, 'rope', 'form_check'):.1e}.")
    return ""


def blocks() -> dict:
    """The explanation's blocks (gui.texts.BLOCKS)."""
    own = {f"{s}_{w}": (lambda trace, esc, w=w: sentence(w, trace, esc))
           for s, ws in (("tiled", ("tile", "rescale", "check", "lse")), ("rope", ("pos", "shift", "form"))) for w in ws}
    return {**decode_model.blocks(), **own}
