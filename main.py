"""Attention Stepper: step through chapter 3's self-attention with live heatmaps.

    python main.py                 open the window on the book's example
    python main.py LESSON.json     open the window on a saved lesson
    python main.py export --out DIR [options]   write every intermediate as CSV (headless)
    python main.py export --stage decode --variant mha|gqa|mqa|mla|swa --new-tokens N --out DIR
                                   generate token by token with a KV cache, write every position
    python main.py export --stage tiled|rope [--block-rows Br --block-cols Bc --fa2 | --base B --form F] --out DIR
                                   FlashAttention's tiles / RoPE's rotations on one head
    python main.py bench [--quick] [--json FILE]   measure speed
    python main.py train --task induction --steps N --out DIR   train a toy model, write its snapshots

Heavy imports (torch, PySide6) happen inside the commands, so --help is instant.
"""
from __future__ import annotations

import difflib
import os
import stat
import sys

USAGE = __doc__.split("\n\n", 1)[1]
PROG = "python main.py"

# command -> (module, function taking the remaining argv and returning the exit status);
# imported only when that command runs
COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("core.cli", "run_export"),
    "train": ("core.train.cli", "run_train"),
    "bench": ("tools.bench", "run_bench"),
}


def _shown(word: str) -> str:
    """A word as an error line shows it: quoted, bytes that are not UTF-8 as \\udcXX, long ones shortened."""
    text = word.encode("utf-8", "backslashreplace").decode("utf-8")
    return "'" + (text if len(text) <= 80 else text[:79] + "…") + "'"


def _is_regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _problem(argv: list[str]) -> str | None:
    """Why argv (not a command) is not at most one lesson path, else None."""
    word = argv[0]
    if not word.startswith("-") and not (word.lower().endswith(".json") or _is_regular_file(word)):
        close = difflib.get_close_matches(word.lower(), COMMANDS, n=1, cutoff=0.6)
        if close:
            return f"unknown command {_shown(word)} (did you mean '{close[0]}'?)"
        return (f"unknown command {_shown(word)}: the commands are {', '.join(COMMANDS)}, "
                f"and a lesson is a .json file (run '{PROG} --help')")
    options = [a for a in argv if a.startswith("-")]
    if options:
        return f"unknown option {_shown(options[0])} (run '{PROG} --help')"
    if len(argv) > 1:
        return f"one lesson at a time; got {len(argv)} arguments (run '{PROG} --help')"
    return None                         # a lesson: the window says if it cannot be read


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from core.engine.malloc import tune_malloc
    tune_malloc()                      # before torch allocates its first tensor
    if argv[:1] in (["-h"], ["--help"]):
        print("usage:\n" + USAGE.rstrip() + f"\n\nRun '{PROG} export --help' for the export options.")
        return 0
    if argv and argv[0] in COMMANDS:
        import importlib
        module, function = COMMANDS[argv[0]]
        return getattr(importlib.import_module(module), function)(argv[1:])
    if argv:
        problem = _problem(argv)
        if problem:
            print(f"{PROG}: error: {problem}", file=sys.stderr)
            return 2
    from gui.app import run_app
    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
