"""``python main.py export --stage tiled|rope [options] --out DIR``.

tiled: one head's attention walked tile by tile (FlashAttention; --fa2 for FlashAttention-2),
one folder per visited tile (tiled_step000 …) plus tiled_inputs/ and tiled_result/;
rope: one head's q and k rotated by position, one folder rope/ (the pairs one CSV per position).
Written with core.export (one CSV per 2-D slice with labels, manifest.json; or npy/npz), hence
core.safe_folder's atomic replace. Bad options exit 2 with one line on stderr; nothing is written.
"""
from __future__ import annotations

import argparse
import sys

from core.cli import PROG, _float_arg, _int_arg, _OneLineParser
from core.config import BOOK_TEXT, DEVICES, DTYPES, ConfigError
from core.tiled_config import FORMS, MAX_BLOCK

STAGES = ("tiled", "rope")
_OPTION_OF_FIELD = {"num_heads": "--heads", "d_in": "--d-in", "d_out": "--d-out", "qkv_bias": "--qkv-bias",
                    "block_rows": "--block-rows", "block_cols": "--block-cols"}


def option_name(field: str) -> str:
    return _OPTION_OF_FIELD.get(field, "--" + field.replace("_", "-"))


def wanted_stage(argv: list[str]) -> str | None:
    """``tiled`` or ``rope`` when an export command line asks for one of them (--stage X)."""
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--stage" and i + 1 < len(argv) else (arg[8:] if arg.startswith("--stage=") else None)
        if value in STAGES:
            return value
    return None


def parser(stage: str) -> argparse.ArgumentParser:
    what = ("Walk one head's attention tile by tile as FlashAttention does (online softmax: running max m, "
            "running sum l, rescale exp(m_old − m_new)) and write every tile's intermediates"
            if stage == "tiled" else
            "Rotate one head's queries and keys by position (RoPE) and write the pairs before and after, the "
            "scores with and without RoPE, the shifted-positions check and the split vs interleaved check")
    p = _OneLineParser(prog=f"{PROG} export --stage {stage}", description=what + ": one CSV per 2-D slice plus manifest.json.")
    p.add_argument("--stage", required=True, choices=(stage,))
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if missing)")
    p.add_argument("--format", default="csv", choices=("csv", "npy", "npz"),
                   help="csv (default): one file per 2-D slice; npy: one file per tensor; npz: one archive")
    if stage == "tiled":
        p.add_argument("--block-rows", type=_int_arg, default=2, metavar="Br",
                       help=f"queries per tile, 1..{MAX_BLOCK}, need not divide T (default: 2)")
        p.add_argument("--block-cols", type=_int_arg, default=2, metavar="Bc",
                       help=f"keys per tile, 1..{MAX_BLOCK}, need not divide T (default: 2)")
        p.add_argument("--causal", action=argparse.BooleanOptionalAction, default=True,
                       help="skip the tiles wholly above the diagonal, mask the ones it crosses (default: on)")
        p.add_argument("--fa2", action="store_true",
                       help="FlashAttention-2: query blocks outermost, unscaled accumulator divided by l at the end")
    else:
        p.add_argument("--base", type=_float_arg, default=10_000.0, metavar="B",
                       help="θ_i = base^(−2i/d) (default: 10000; Llama 3 uses 500000, Qwen3 1000000)")
        p.add_argument("--form", default="split", metavar="|".join(FORMS),
                       help="split: pairs (i, i + d/2), the book's rotate_half (default); interleaved: pairs (2i, 2i + 1)")
        p.add_argument("--shift", type=_int_arg, default=3, metavar="S",
                       help="the relative-position check moves every position by S (default: 3)")
    g = p.add_argument_group("the prompt and the head (defaults: the book's sentence)")
    g.add_argument("--embeddings", default=None, metavar="book|random|PATH.csv",
                   help="the prompt's embeddings (default: book, or random when --text is given)")
    g.add_argument("--text", default=None, help=f"the prompt (default: {BOOK_TEXT!r})")
    g.add_argument("--d-in", type=_int_arg, default=None, metavar="N", help="embedding width (default: 3, or the CSV's)")
    g.add_argument("--d-out", type=_int_arg, default=16, metavar="N", help="all heads together (default: 16)")
    g.add_argument("--heads", type=_int_arg, default=2, metavar="N", help="heads; must divide --d-out (default: 2)")
    g.add_argument("--head", type=_int_arg, default=0, metavar="H", help="the head to use, from 0 (default: 0)")
    g.add_argument("--seed", type=_int_arg, default=123, metavar="N", help="torch.manual_seed before the weights (default: 123)")
    g.add_argument("--qkv-bias", action="store_true", help="biases in the query/key/value projections")
    g.add_argument("--device", default="auto", metavar="|".join(DEVICES), help="auto = cuda when available (default), cpu or cuda")
    g.add_argument("--dtype", default="float32", metavar="|".join(DTYPES), help="float32 (default) or float64")
    return p


def config_from_args(stage: str, args):
    """The TiledConfig or RopeConfig of the options (raises ConfigError naming the field)."""
    from core.tiled_config import RopeConfig, TiledConfig

    embeddings = args.embeddings if args.embeddings is not None else ("random" if args.text is not None else "book")
    d_in = args.d_in
    if d_in is None:
        d_in = 3
        if embeddings.strip() and embeddings not in ("book", "random"):
            from core.inputs import load_embeddings_csv
            try:
                d_in = load_embeddings_csv(embeddings).width
            except ValueError as exc:
                raise ConfigError("embeddings", str(exc)) from None
    common = dict(embeddings=embeddings, text=args.text if args.text is not None else BOOK_TEXT, d_in=d_in,
                  d_out=args.d_out, num_heads=args.heads, head=args.head, seed=args.seed, qkv_bias=args.qkv_bias,
                  device=args.device, dtype=args.dtype)
    if stage == "tiled":
        return TiledConfig(block_rows=args.block_rows, block_cols=args.block_cols, causal=args.causal, fa2=args.fa2,
                           **common)
    return RopeConfig(base=args.base, form=args.form, shift=args.shift, **common)


def run(argv: list[str]) -> int:
    stage = wanted_stage(argv)
    p = parser(stage)
    args = p.parse_args(argv)
    if not args.out.strip():
        p.exit(2, f"{p.prog}: error: --out: is empty; name the folder to export into\n")
    try:
        cfg = config_from_args(stage, args)          # checked before torch is imported
    except ConfigError as exc:
        p.exit(2, f"{p.prog}: error: {option_name(exc.field)}: {exc.message}\n")
    import torch

    from core.export import ExportError, export_trace

    out_of_memory = (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))
    try:
        if stage == "tiled":
            from core.tiled import build_tiled
            trace = build_tiled(cfg)
        else:
            from core.rope import build_rope
            trace = build_rope(cfg)
    except ConfigError as exc:
        p.exit(2, f"{p.prog}: error: {option_name(exc.field)}: {exc.message}\n")
    except out_of_memory:
        p.exit(2, f"{p.prog}: error: out of memory while computing the trace; reduce the tokens or --d-out\n")
    swept: list[str] = []
    try:
        out = export_trace(trace, args.out, fmt=args.format, note=swept.append)
    except ExportError as exc:
        p.exit(2, f"{p.prog}: error: --out: {exc}\n")
    for note in swept + list(trace.notes):
        print(f"note: {note}", file=sys.stderr)
    shown = str(out).encode("utf-8", "backslashreplace").decode("utf-8")
    n = sum(1 for _ in trace)
    if stage == "tiled":
        tiles = trace["tiled_result", "tiles"].tensor
        visited = int(tiles[:, 6].sum())
        print(f"wrote {n} intermediates to {shown}: {visited} tiles visited, {len(tiles) - visited} skipped "
              f"({'FlashAttention-2' if cfg.fa2 else 'FlashAttention'}, Br = {cfg.block_rows}, Bc = {cfg.block_cols}); "
              f"tiled vs ordinary attention: max |diff| {float(trace['tiled_result', 'check'].tensor):.3g} "
              f"({trace.device}, {trace.compute_ms:.1f} ms)")
    else:
        print(f"wrote {n} intermediates to {shown}: {cfg.form} form, base {cfg.base:g}; shifted by {cfg.shift}: "
              f"max |diff| {float(trace['rope', 'shift_check'].tensor):.3g}; split vs interleaved up to the "
              f"permutation: max |diff| {float(trace['rope', 'form_check'].tensor):.3g} ({trace.device}, "
              f"{trace.compute_ms:.1f} ms)")
    return 0
