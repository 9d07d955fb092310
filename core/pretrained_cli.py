"""``python main.py export --stage pretrained --layer L --head H|all --text … --out DIR``.

Writes the pretrained stage's intermediates with core.export (same CSV/NPY/NPZ layout and
manifest as the other stages). Bad options, a text over the model's 512 pieces or a missing
model package exit 2 with one line on stderr.
"""
from __future__ import annotations

import argparse
import sys

from core.cli import PROG, _int_arg, _OneLineParser
from core.cli_common import add_out_options, export_or_exit, wanted_stage
from core.config import DEVICES, DTYPES, ConfigError
from core.pretrained_config import EXAMPLE_TEXT, NUM_HEADS, NUM_LAYERS

_OPTION_OF_FIELD = {"hide_special": "--hide-special", "full_layer": "--full-layer"}


def wants_pretrained(argv: list[str]) -> bool:
    """Whether an export command line asks for the pretrained stage (--stage pretrained)."""
    return wanted_stage(argv, ("pretrained",)) is not None


def _head_arg(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a head number nor 'all'") from None


def parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog=f"{PROG} export --stage pretrained",
        description="Compute the chapter's attention steps inside the real all-MiniLM-L6-v2 for one "
                    "layer and head (or all heads) and write one CSV per 2-D slice plus manifest.json.",
    )
    p.add_argument("--stage", required=True, choices=("pretrained",), help="pretrained: the real model")
    add_out_options(p)
    p.add_argument("--text", default=EXAMPLE_TEXT, help=f"the sentence (default: {EXAMPLE_TEXT!r}); at most 512 WordPiece pieces")
    p.add_argument("--layer", type=_int_arg, default=0, metavar="L", help=f"encoder layer, 0..{NUM_LAYERS - 1} (default: 0)")
    p.add_argument("--head", type=_head_arg, default=None, metavar="H|all",
                   help=f"one head, 0..{NUM_HEADS - 1}, or all (default: all)")
    p.add_argument("--hide-special", action="store_true",
                   help="also write attn_weights_no_special: [CLS]/[SEP] hidden, rows renormalised")
    p.add_argument("--full-layer", action="store_true",
                   help="also write the rest of the layer: residual + LayerNorm, feed-forward, LayerNorm")
    p.add_argument("--device", default="auto", metavar="|".join(DEVICES), help="auto = cuda when available (default), cpu or cuda")
    p.add_argument("--dtype", default="float32", metavar="|".join(DTYPES), help="float32 (default) or float64")
    return p


def run(argv: list[str]) -> int:
    """The pretrained export; called by core.cli.run_export, which answers Ctrl-C (exit 130,
    "interrupted") and SIGTERM (exit 143, "terminated") as for every export: a KeyboardInterrupt
    (or its subclass for SIGTERM) is left to it."""
    p = parser()
    args = p.parse_args(argv)
    if not args.out.strip():
        p.exit(2, f"{p.prog}: error: --out: is empty; name the folder to export into\n")
    from core.pretrained_config import PretrainedConfig

    try:
        # checked before torch is imported: a bad layer or head is refused at once
        cfg = PretrainedConfig(text=args.text, layer=args.layer, head=args.head, hide_special=args.hide_special,
                               full_layer=args.full_layer, device=args.device, dtype=args.dtype)
    except ConfigError as exc:
        p.exit(2, f"{p.prog}: error: {_OPTION_OF_FIELD.get(exc.field, '--' + exc.field)}: {exc.message}\n")
    from core.minilm import ModelMissing
    from core.pretrained import build_pretrained

    try:
        trace = build_pretrained(cfg)
    except ConfigError as exc:
        p.exit(2, f"{p.prog}: error: {_OPTION_OF_FIELD.get(exc.field, '--' + exc.field)}: {exc.message}\n")
    except ModelMissing as exc:
        p.exit(2, f"{p.prog}: error: {exc}\n")
    except MemoryError:
        p.exit(2, f"{p.prog}: error: out of memory while running the model; use a shorter --text\n")
    swept: list[str] = []
    out = export_or_exit(p, trace, args, note=swept.append)
    for note in swept:  # after the export, so that a failed one shows its error line alone
        print(f"note: {note}", file=sys.stderr)
    for note in trace.notes:
        print(f"note: {note}", file=sys.stderr)
    heads = "all heads" if cfg.head is None else f"head {cfg.head}"
    shown = str(out).encode("utf-8", "backslashreplace").decode("utf-8")   # a folder name that is not UTF-8
    print(f"wrote {sum(1 for _ in trace)} intermediates of layer {cfg.layer}, {heads} ({len(trace.pieces)} pieces) "
          f"to {shown} ({trace.device}, {trace.compute_ms:.1f} ms)")
    return 0
