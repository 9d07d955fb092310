"""``python main.py export --stage decode --variant mha|gqa|mqa|mla|swa --new-tokens N --out DIR``.

Writes every intermediate of the prefill and of each generated position with core.export (one
CSV per 2-D slice with row/column labels, manifest.json; or npy/npz), one folder per position:
decode_weights/, decode_prefill/, decode_pos06/ …, decode_summary/. Bad options and bad
combinations (heads not divisible by --kv-groups, --window < 1, --latent > --d-out, --new-tokens
< 1 or over the limit) exit 2 with one line on stderr; nothing is written.
"""
from __future__ import annotations

import argparse
import sys

from core.cli import PROG, _int_arg, _OneLineParser
from core.config import BOOK_TEXT, DEVICES, DTYPES, ConfigError
from core.decode_config import MAX_NEW_TOKENS, VARIANTS

_OPTION_OF_FIELD = {"num_kv_groups": "--kv-groups", "latent_dim": "--latent", "sliding_window_size": "--window",
                    "new_tokens": "--new-tokens", "next_text": "--next", "num_heads": "--heads", "d_in": "--d-in",
                    "d_out": "--d-out", "qkv_bias": "--qkv-bias"}


def option_name(field: str) -> str:
    return _OPTION_OF_FIELD.get(field, "--" + field.replace("_", "-"))


def wants_decode(argv: list[str]) -> bool:
    """Whether an export command line asks for the decode stage (--stage decode)."""
    for i, arg in enumerate(argv):
        if arg == "--stage" and argv[i + 1:i + 2] == ["decode"]:
            return True
        if arg == "--stage=decode":
            return True
    return False


def parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog=f"{PROG} export --stage decode",
        description="Prefill a prompt, then append tokens one at a time with a KV cache (multi-head, "
                    "grouped-query, multi-query, latent or sliding-window attention) and write every "
                    "intermediate of every generated position: one CSV per 2-D slice plus manifest.json.",
    )
    p.add_argument("--stage", required=True, choices=("decode",), help="decode: generation with a KV cache")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if missing)")
    p.add_argument("--format", default="csv", choices=("csv", "npy", "npz"),
                   help="csv (default): one file per 2-D slice; npy: one file per tensor; npz: one archive")
    p.add_argument("--variant", default="mha", metavar="|".join(VARIANTS),
                   help="mha (default, the chapter's), gqa, mqa, mla or swa")
    p.add_argument("--kv-groups", type=_int_arg, default=None, metavar="N",
                   help="gqa/swa: K/V heads, must divide --heads (default: gqa heads/2, swa heads)")
    p.add_argument("--latent", type=_int_arg, default=None, metavar="N",
                   help="mla: latent_dim, what is cached per token, 1..d_out (default: d_out/2)")
    p.add_argument("--window", type=_int_arg, default=None, metavar="W",
                   help="swa: sliding_window_size, at least 1 (default: 4)")
    p.add_argument("--new-tokens", type=_int_arg, default=None, metavar="N",
                   help=f"tokens appended one at a time, 1..{MAX_NEW_TOKENS} (default: 3, or the words of --next)")
    p.add_argument("--next", default="", metavar="TEXT",
                   help="the words to append (default: gen1, gen2, … with seeded random embeddings)")
    g = p.add_argument_group("the prompt and the layer (defaults: the book's sentence)")
    g.add_argument("--embeddings", default=None, metavar="book|random|PATH.csv",
                   help="the prompt's embeddings (default: book, or random when --text is given)")
    g.add_argument("--text", default=None, help=f"the prompt (default: {BOOK_TEXT!r})")
    g.add_argument("--d-in", type=_int_arg, default=None, metavar="N", help="embedding width (default: 3, or the CSV's)")
    g.add_argument("--d-out", type=_int_arg, default=8, metavar="N", help="all heads together (default: 8)")
    g.add_argument("--heads", type=_int_arg, default=4, metavar="N", help="query heads; must divide --d-out (default: 4)")
    g.add_argument("--seed", type=_int_arg, default=123, metavar="N",
                   help="torch.manual_seed before the weights; seeds the new embeddings (default: 123)")
    g.add_argument("--qkv-bias", action="store_true", help="biases in the query/key/value projections")
    g.add_argument("--device", default="auto", metavar="|".join(DEVICES), help="auto = cuda when available (default), cpu or cuda")
    g.add_argument("--dtype", default="float32", metavar="|".join(DTYPES), help="float32 (default) or float64")
    return p


def config_from_args(args):
    """The DecodeConfig of the options (raises ConfigError naming the field)."""
    from core.decode_config import DecodeConfig
    from core.tokens import tokenize

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
    new_tokens = args.new_tokens
    if new_tokens is None:
        new_tokens = len(tokenize(args.next)) if args.next.strip() else 3
    return DecodeConfig(variant=args.variant, embeddings=embeddings,
                        text=args.text if args.text is not None else BOOK_TEXT, d_in=d_in, d_out=args.d_out,
                        num_heads=args.heads, num_kv_groups=args.kv_groups, latent_dim=args.latent,
                        sliding_window_size=args.window, new_tokens=new_tokens, next_text=args.next,
                        seed=args.seed, qkv_bias=args.qkv_bias, device=args.device, dtype=args.dtype)


def run(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not args.out.strip():
        p.exit(2, f"{p.prog}: error: --out: is empty; name the folder to export into\n")
    try:
        cfg = config_from_args(args)             # checked before torch is imported
    except ConfigError as exc:
        p.exit(2, f"{p.prog}: error: {option_name(exc.field)}: {exc.message}\n")
    import torch

    from core.decode import build_decode
    from core.export import ExportError, export_trace
    from core.memory import MemoryBudgetError

    out_of_memory = (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))
    try:
        trace = build_decode(cfg)
    except ConfigError as exc:
        p.exit(2, f"{p.prog}: error: {option_name(exc.field)}: {exc.message}\n")
    except MemoryBudgetError as exc:
        p.exit(2, f"{p.prog}: error: too big for memory: {exc}\n")
    except out_of_memory:
        p.exit(2, f"{p.prog}: error: out of memory while computing the trace; reduce --new-tokens or --d-out\n")
    swept: list[str] = []
    try:
        out = export_trace(trace, args.out, fmt=args.format, note=swept.append)
    except ExportError as exc:
        p.exit(2, f"{p.prog}: error: --out: {exc}\n")
    for note in swept + list(trace.notes):
        print(f"note: {note}", file=sys.stderr)
    worst = float(trace["decode_summary", "max_abs_diff"].tensor.max())
    shown = str(out).encode("utf-8", "backslashreplace").decode("utf-8")
    print(f"wrote {sum(1 for _ in trace)} intermediates of {cfg.variant}: prefill of {trace.prompt_tokens} tokens, "
          f"{len(trace.positions)} new ({len(trace.stages)} folders) to {shown}; cached vs recomputed: max |diff| "
          f"{worst:.3g} ({trace.device}, {trace.compute_ms:.1f} ms)")
    return 0
