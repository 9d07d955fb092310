"""What the export commands of the stages with their own options share (core.cli, core.decode_cli,
core.tiled_cli, core.pretrained_cli): finding the stage on the command line, the --out/--format
and prompt options, the field-to-option names of error lines, and the run from the parsed options
to the written folder with its one-line errors (exit 2). Torch-free until a trace is built.
"""
from __future__ import annotations

import argparse
import sys

from core.config import BOOK_TEXT, DEVICES, DTYPES, ConfigError


def wanted_stage(argv: list[str], stages: tuple[str, ...]) -> str | None:
    """The stage of ``stages`` an export command line asks for (--stage X or --stage=X), else None."""
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--stage" and i + 1 < len(argv) else (arg[8:] if arg.startswith("--stage=") else None)
        if value in stages:
            return value
    return None


def option_name(field: str, renames: dict[str, str]) -> str:
    """The option of a config field for an error line: ``renames``' or --field-with-dashes."""
    return renames.get(field, "--" + field.replace("_", "-"))


def add_out_options(p: argparse.ArgumentParser) -> None:
    """--out DIR and --format csv|npy|npz, as every export takes them."""
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if missing)")
    p.add_argument("--format", default="csv", choices=("csv", "npy", "npz"),
                   help="csv (default): one file per 2-D slice; npy: one file per tensor; npz: one archive")


def add_prompt_options(g, *, d_out: int, heads: int, heads_help: str) -> None:
    """--embeddings, --text, --d-in, --d-out and --heads of a stage that draws the chapter's prompt."""
    from core.cli import _int_arg

    g.add_argument("--embeddings", default=None, metavar="book|random|PATH.csv",
                   help="the prompt's embeddings (default: book, or random when --text is given)")
    g.add_argument("--text", default=None, help=f"the prompt (default: {BOOK_TEXT!r})")
    g.add_argument("--d-in", type=_int_arg, default=None, metavar="N", help="embedding width (default: 3, or the CSV's)")
    g.add_argument("--d-out", type=_int_arg, default=d_out, metavar="N", help=f"all heads together (default: {d_out})")
    g.add_argument("--heads", type=_int_arg, default=heads, metavar="N", help=f"{heads_help} (default: {heads})")


def add_run_options(g, *, seed_help: str) -> None:
    """--seed, --qkv-bias, --device and --dtype."""
    from core.cli import _int_arg

    g.add_argument("--seed", type=_int_arg, default=123, metavar="N", help=seed_help)
    g.add_argument("--qkv-bias", action="store_true", help="biases in the query/key/value projections")
    g.add_argument("--device", default="auto", metavar="|".join(DEVICES), help="auto = cuda when available (default), cpu or cuda")
    g.add_argument("--dtype", default="float32", metavar="|".join(DTYPES), help="float32 (default) or float64")


def prompt_fields(args: argparse.Namespace) -> dict:
    """embeddings, text and d_in of the options: random embeddings when --text is given, d_in the
    CSV's width unless --d-in says (raises ConfigError("embeddings") for a CSV that cannot be read)."""
    embeddings = args.embeddings
    if embeddings is None:
        embeddings = "random" if args.text is not None else "book"
    d_in = args.d_in
    if d_in is None:
        d_in = 3
        if embeddings.strip() and embeddings not in ("book", "random"):  # a blank one: the config says why
            from core.inputs import load_embeddings_csv
            try:
                d_in = load_embeddings_csv(embeddings).width
            except ValueError as exc:
                raise ConfigError("embeddings", str(exc)) from None
    return {"embeddings": embeddings, "text": args.text if args.text is not None else BOOK_TEXT, "d_in": d_in}


def run_stage_export(p: argparse.ArgumentParser, argv: list[str], make_config, build, renames: dict[str, str],
                     reduce: str):
    """Parse, check the config before torch is imported, build the trace and export it; every bad
    option, a trace too big for memory and a folder that cannot be written end the program with
    exit 2 and one line (``reduce`` names what to make smaller). Prints the notes; returns
    ``(args, cfg, trace, shown)``, ``shown`` the written folder as a printable string."""
    args = p.parse_args(argv)
    if not args.out.strip():
        p.exit(2, f"{p.prog}: error: --out: is empty; name the folder to export into\n")
    try:
        cfg = make_config(args)                  # checked before torch is imported
    except ConfigError as exc:
        p.exit(2, f"{p.prog}: error: {option_name(exc.field, renames)}: {exc.message}\n")
    from core.cli import out_of_memory_errors
    from core.memory import MemoryBudgetError

    out_of_memory = out_of_memory_errors()     # imports torch
    try:
        trace = build(cfg)
    except ConfigError as exc:
        p.exit(2, f"{p.prog}: error: {option_name(exc.field, renames)}: {exc.message}\n")
    except MemoryBudgetError as exc:
        p.exit(2, f"{p.prog}: error: too big for memory: {exc}\n")
    except out_of_memory:
        p.exit(2, f"{p.prog}: error: out of memory while computing the trace; reduce {reduce}\n")
    swept: list[str] = []
    out = export_or_exit(p, trace, args, note=swept.append)
    for note in swept + list(trace.notes):
        print(f"note: {note}", file=sys.stderr)
    return args, cfg, trace, printable(out)


def export_or_exit(p: argparse.ArgumentParser, trace, args: argparse.Namespace, note=None, out_of_memory=(),
                   out_of_memory_line: str = ""):
    """core.export.export_trace into --out as --format; a folder that cannot be written (and one of
    ``out_of_memory`` while writing) ends the program with exit 2 and one line. Returns the folder."""
    from core.export import ExportError, export_trace

    try:
        return export_trace(trace, args.out, fmt=args.format, note=note)
    except ExportError as exc:
        p.exit(2, f"{p.prog}: error: --out: {exc}\n")
    except out_of_memory:              # () catches nothing
        p.exit(2, f"{p.prog}: error: {out_of_memory_line}\n")


def printable(path) -> str:
    """A path as a line shows it (a folder name that is not UTF-8 escaped, not an error)."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")
