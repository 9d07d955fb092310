"""The headless command line: ``python main.py export --out DIR [options]``.

Bad options exit with status 2 and one line on stderr (never a traceback).
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

from core import cli_common
from core.cli_common import add_out_options, export_or_exit, printable, prompt_fields
from core.config import BOOK_TEXT, DEVICES, DTYPES, INITS, AttentionConfig, ConfigError

PROG = "python main.py"


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors as a single stderr line and exits 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def add_config_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("attention configuration (defaults: the book's example)")
    g.add_argument("--embeddings", default=None, metavar="book|random|PATH.csv",
                   help="token embeddings: the book's 3-d vectors (default), seeded random vectors "
                        "for --text, or a CSV with 'token, v1, …, v_d' rows (default: book, or random when --text is given)")
    g.add_argument("--text", default=None, help=f"the sentence to attend over (default: {BOOK_TEXT!r})")
    g.add_argument("--d-in", type=_int_arg, default=None, metavar="N",
                   help="embedding width (default: 3, or the CSV's width)")
    g.add_argument("--d-out", type=_int_arg, default=2, metavar="N", help="projection width, all heads together (default: 2)")
    g.add_argument("--heads", type=_int_arg, default=2, metavar="N", help="heads of the multi-head stage; must divide --d-out (default: 2)")
    g.add_argument("--init", default="linear", metavar="|".join(INITS),
                   help="weight init: rand = torch.rand (SelfAttention_v1), linear = nn.Linear (default)")
    g.add_argument("--seed", type=_int_arg, default=123, metavar="N", help="torch.manual_seed before each stage's weights (default: 123)")
    g.add_argument("--causal", action=argparse.BooleanOptionalAction, default=True,
                   help="mask future tokens in the causal and multi-head stages (default: on)")
    g.add_argument("--dropout", type=_float_arg, default=0.0, metavar="P", help="dropout on the causal attention weights, in [0, 1) (default: 0)")
    g.add_argument("--dropout-seed", type=_int_arg, default=123, metavar="N", help="torch.manual_seed before dropout (default: 123)")
    g.add_argument("--qkv-bias", action="store_true", help="add a bias to the query/key/value projections")
    g.add_argument("--batch", type=_int_arg, default=1, metavar="N", help="stack N copies of the inputs, as the book does (default: 1)")
    g.add_argument("--device", default="auto", metavar="|".join(DEVICES), help="auto = cuda when available (default), cpu or cuda")
    g.add_argument("--dtype", default="float32", metavar="|".join(DTYPES), help="float32 (default) or float64")


def config_from_args(args: argparse.Namespace) -> AttentionConfig:
    """Build the config; raises ConfigError naming the field."""
    return AttentionConfig(
        **prompt_fields(args), d_out=args.d_out, num_heads=args.heads, init=args.init, seed=args.seed,
        causal=args.causal, dropout=args.dropout, dropout_seed=args.dropout_seed,
        qkv_bias=args.qkv_bias, batch=args.batch, device=args.device, dtype=args.dtype,
    )


_OPTION_OF_FIELD = {"num_heads": "--heads", "d_in": "--d-in", "d_out": "--d-out",
                    "dropout_seed": "--dropout-seed", "qkv_bias": "--qkv-bias"}


def option_name(field: str) -> str:
    return cli_common.option_name(field, _OPTION_OF_FIELD)


def export_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog=f"{PROG} export",
        description="Compute every stage of chapter 3's attention for one configuration and write "
                    "one CSV per 2-D slice of every intermediate plus manifest.json.",
    )
    add_out_options(p)
    add_config_options(p)
    return p


def out_of_memory_errors() -> tuple[type[BaseException], ...]:
    """MemoryError and torch.OutOfMemoryError (a CUDA allocation that failed)."""
    import torch
    return (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))


@contextmanager
def exit_on_out_of_memory(parser: argparse.ArgumentParser, line: str):
    """Inside: running out of memory (MemoryError, torch.OutOfMemoryError, or the RuntimeError of
    torch's CPU allocator) ends the program with exit 2 and ``line``; other errors pass."""
    try:
        yield
    except out_of_memory_errors():
        parser.exit(2, f"{parser.prog}: error: {line}\n")
    except RuntimeError as exc:
        if "can't allocate memory" not in str(exc):   # torch's CPU allocator: RuntimeError, not MemoryError
            raise
        parser.exit(2, f"{parser.prog}: error: {line}\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the export cleans up and leaves the earlier files intact."""


def _on_sigterm(signum, frame):
    raise Terminated()


def run_interruptible(body, argv: list[str], command: str, completed: str) -> int:
    """``body(argv)`` with SIGTERM handled like Ctrl-C: both write nothing (the folder is switched
    over atomically) and exit 130 ("interrupted") or 143 ("terminated") with one line;
    ``completed`` ({} the folder) says what was done when the signal came after the last file."""
    import signal
    import threading
    previous = previous_int = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        # Ctrl-C even where the shell started us with SIGINT ignored (a script's `export … &`):
        # the README promises exit 130 and the folder as it was
        previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return body(argv)
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        if getattr(exc, "completed", None) is not None:  # it came after the last file was in place
            print(f"{PROG} {command}: {what} " + completed.format(exc.completed), file=sys.stderr)
        else:
            print(f"{PROG} {command}: {what}; nothing was written", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)


def run_export(argv: list[str]) -> int:
    """Ctrl-C or SIGTERM: the export is atomic, nothing half-written is left."""
    return run_interruptible(_dispatch_export, argv, "export", "after the export to {} was complete")


def _dispatch_export(argv: list[str]) -> int:
    from core.pretrained_cli import wants_pretrained
    if wants_pretrained(argv):  # stage 5 (the real model) has its own options
        from core.pretrained_cli import run
        return run(argv)
    from core.decode_cli import wants_decode
    if wants_decode(argv):  # the decode stage (KV cache, GQA/MQA/MLA/SWA) has its own options
        from core.decode_cli import run as run_decode
        return run_decode(argv)
    from core.tiled_cli import wanted_stage
    if wanted_stage(argv):  # tiled attention (FlashAttention) and RoPE have their own options
        from core.tiled_cli import run as run_tiled
        return run_tiled(argv)
    return _run_export(argv)


def _run_export(argv: list[str]) -> int:
    parser = export_parser()
    args = parser.parse_args(argv)
    from core.memory import MemoryBudgetError, check_memory
    from core.trace import build_trace

    if not args.out.strip():
        parser.exit(2, f"{parser.prog}: error: --out: is empty; name the folder to export into\n")
    with exit_on_out_of_memory(parser, "out of memory while computing the trace; reduce the tokens, --d-out or --batch"):
        try:
            cfg = config_from_args(args)
            check_memory(cfg)
            trace = build_trace(cfg)
        except ConfigError as exc:
            parser.exit(2, f"{parser.prog}: error: {option_name(exc.field)}: {exc.message}\n")
        except MemoryBudgetError as exc:
            parser.exit(2, f"{parser.prog}: error: too big for memory: {exc} "
                           "(options --text, --batch, --heads, --d-in, --d-out)\n")
    swept: list[str] = []
    out = export_or_exit(parser, trace, args, swept.append, out_of_memory_errors(),
                         "out of memory while writing the export; reduce the tokens, --d-out or --batch")
    from core.numerics import summarize_notes, undefined_value_notes
    for note in swept:  # after the export, so that a failed one shows its error line alone
        print(f"note: {note}", file=sys.stderr)
    for note in trace.notes:
        print(f"note: {note}", file=sys.stderr)
    for line in summarize_notes(undefined_value_notes(trace)):
        print(f"note: {line}; listed under \"notes\" in manifest.json", file=sys.stderr)
    n = sum(1 for _ in trace)
    shown = printable(out)   # a folder name that is not UTF-8
    print(f"wrote {n} intermediates of {len(trace.stages)} stages to {shown} "
          f"({trace.device}, trace {trace.compute_ms:.1f} ms)")
    return 0
