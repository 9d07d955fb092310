"""The headless training command: ``python main.py train --task induction --steps N --out DIR``.

Trains, then writes the loss log, the snapshots and the run (core.train.folder). Bad options, a
--text that is not a small UTF-8 file and a run too big for memory exit 2 with one line on
stderr, before training; Ctrl-C exits 130 and SIGTERM 143, and both write nothing.
"""
from __future__ import annotations

import argparse
import math
import sys

from core.cli import PROG, _float_arg, _int_arg, _OneLineParser, exit_on_out_of_memory, run_interruptible
from core.train.settings import DEVICES, TASKS, TrainSettingsError, defaults_for

# option -> settings field (None: not a setting)
_FIELDS = {"--vocab-size": "vocab_size", "--seq-len": "seq_len", "--d-model": "d_model", "--heads": "num_heads",
           "--layers": "num_layers", "--lr": "lr", "--steps": "steps", "--batch": "batch_size", "--seed": "seed",
           "--device": "device", "--snapshot-every": "snapshot_every", "--text": "text_path"}
_OPTION_OF_FIELD = {field: option for option, field in _FIELDS.items()}


def train_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog=f"{PROG} train",
                       description="Train a small attention-only model built from chapter 3's MultiHeadAttention "
                                   "on a toy task and write its loss log and every head's attention weights "
                                   "on a probe sequence at each snapshot.")
    p.add_argument("--task", default="induction", choices=TASKS, help="the toy task (default: induction)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if missing)")
    p.add_argument("--format", default="csv", choices=("csv", "npy"), help="per-head files: csv (default) or npy")
    ints = ("--vocab-size", "--seq-len", "--d-model", "--heads", "--layers", "--steps", "--batch", "--seed",
            "--snapshot-every")
    for option in ints:
        p.add_argument(option, type=_int_arg, default=None, metavar="N",
                       help=f"the {_FIELDS[option]} setting (default: the task's)")
    p.add_argument("--lr", type=_float_arg, default=None, metavar="LR", help="Adam learning rate (default: the task's)")
    p.add_argument("--device", default=None, metavar="|".join(DEVICES), help="auto (default), cpu or cuda")
    p.add_argument("--text", default=None, metavar="FILE.txt", help="next_word: the UTF-8 text to train on")
    return p


def run_train(argv: list[str]) -> int:
    """Ctrl-C exits 130 ("interrupted"), SIGTERM 143 ("terminated"), as the export does (core.cli's
    handler turns SIGTERM into a KeyboardInterrupt): training keeps nothing on disk, and the
    folder is switched over atomically (core.safe_folder removes its work folder), so the target
    is left as it was."""
    return run_interruptible(_run_train, argv, "train", "after the run was written to {}")


_OUT_OF_MEMORY = "out of memory while training; reduce --batch, --seq-len, --heads, --layers or --d-model"


def _run_train(argv: list[str]) -> int:
    parser = train_parser()
    args = parser.parse_args(argv)
    if not args.out.strip():
        parser.exit(2, f"{parser.prog}: error: --out: is empty; name the folder to write into\n")
    changes = {field: getattr(args, option[2:].replace("-", "_")) for option, field in _FIELDS.items()}
    changes = {k: v for k, v in changes.items() if v is not None}
    from core.export import ExportError
    from core.train.budget import TrainMemoryError
    from core.train.folder import write_run_folder
    from core.train.runner import train
    with exit_on_out_of_memory(parser, _OUT_OF_MEMORY):   # the estimate is an estimate: other programs take memory too
        try:
            settings = defaults_for(args.task, **changes)
            run = train(settings)            # refuses a run too big for memory before allocating it
        except TrainMemoryError as exc:
            parser.exit(2, f"{parser.prog}: error: too big for memory: {exc} "
                           "(options --batch, --seq-len, --heads, --layers, --d-model)\n")
        except TrainSettingsError as exc:
            parser.exit(2, f"{parser.prog}: error: {_OPTION_OF_FIELD.get(exc.field, '--' + exc.field)}: {exc.message}\n")
    swept: list[str] = []
    try:
        out, n = write_run_folder(run, args.out, fmt=args.format, note=swept.append)
    except ExportError as exc:
        parser.exit(2, f"{parser.prog}: error: --out: {exc}\n")
    for note in swept + list(run.notes):   # a dead run's leftovers swept, as the export says too
        print(f"note: {note}", file=sys.stderr)
    print(summary(run) + f"; wrote {n} files to {out}")
    return 0


def summary(run) -> str:
    """One line: task, steps, time, loss from first to last snapshot, and the heads that learned the pattern."""
    first, last = run.snapshots[0], run.snapshots[-1]
    text = (f"trained {run.settings.task} for {run.settings.steps} steps on {run.device} in {run.elapsed_s:.1f} s: "
            f"loss {first.loss:.3f} -> {last.loss:.3f}")
    if not math.isnan(last.loss_second):
        text += f" (repeat {first.loss_second:.3f} -> {last.loss_second:.3f})"
    if run.settings.task != "next_word":
        from core.train.metrics import best_heads_text
        text += "; " + best_heads_text(last.attn_weights, run.probe_tokens, run.settings.task)
    return text
