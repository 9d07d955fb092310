"""Attention Stepper: step through chapter 3's self-attention with live heatmaps.

    python main.py                 open the window on the book's example
    python main.py LESSON.json     open the window on a saved lesson
    python main.py export --out DIR [options]   write every intermediate as CSV (headless)
    python main.py bench [--quick] [--json FILE]   measure speed

Heavy imports (torch, PySide6) happen inside the commands, so --help is instant.
"""
from __future__ import annotations

import sys

USAGE = __doc__.split("\n\n", 1)[1]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from core.engine.malloc import tune_malloc
    tune_malloc()                      # before torch allocates its first tensor
    if argv[:1] == ["export"]:
        from core.cli import run_export
        return run_export(argv[1:])
    if argv[:1] == ["bench"]:
        from gui.bench import run_bench
        return run_bench(argv[1:])
    if argv[:1] in (["-h"], ["--help"]):
        print("usage:\n" + USAGE.rstrip() + "\n\nRun 'python main.py export --help' for the export options.")
        return 0
    from gui.app import run_app
    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
