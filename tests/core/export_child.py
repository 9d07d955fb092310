"""A process that tests/core/test_export_atomic.py stops on purpose in the middle of an export.

``python -m tests.core.export_child MODE ROOT N...``: for each N, replace the export in
ROOT/nN/target by the "new" set (see ``write_set``), sending itself MODE (kill9, term, int or
none) right before the N-th filesystem step of that export (mkdir, write, rename, unlink, rmdir:
what can leave a trace). SIGTERM is handled as the command line handles it; kill9 runs each export in a forked process. Prints one JSON line
per N: the steps taken (mode none: the export's length) and how it ended. Imports no torch: the
folder machinery is the same for a real trace (core.export.export_trace only adds the CSVs).
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

SIGNALS = {"kill9": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT}


def write_set(tag: str, names: list[str]):
    """A writer for core.safe_folder.replace_export: one small CSV per name, then its manifest."""
    def write(folder: Path) -> list[str]:
        for rel in names:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(f"{tag},{rel}\n", encoding="utf-8")
        manifest = {"tag": tag, "tensors": [{"file": rel} for rel in names]}
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        return [*names, "manifest.json"]
    return write


# batch 2 then batch 1: the new set writes fewer files, one of them in a folder the old lacks
OLD = [f"causal/attn_weights_b{b}.csv" for b in range(2)] + [f"multihead/attn_weights_b{b}_h{h}.csv"
                                                            for b in range(2) for h in range(2)]
NEW = ["causal/attn_weights_b0.csv", "multihead/attn_weights_b0_h0.csv", "trainable/queries.csv"]


def main(mode: str, root: str, points: list[int]) -> int:
    """For each n: the export into ROOT/n<n>/target, stopped by MODE before its n-th step."""
    from core.cli import _on_sigterm
    from core.safe_folder import replace_export

    signal.signal(signal.SIGTERM, _on_sigterm)
    steps = {"n": 0, "at": 0}

    def counted(real):
        def step(*args, **kwargs):
            steps["n"] += 1
            if steps["n"] == steps["at"] and mode in SIGNALS:
                os.kill(os.getpid(), SIGNALS[mode])
            return real(*args, **kwargs)
        return step

    for name in ("mkdir", "replace", "unlink", "rmdir"):
        setattr(os, name, counted(getattr(os, name)))
    Path.write_text = counted(Path.write_text)
    for n in points:
        steps.update(n=0, at=n)
        if mode == "kill9":  # one forked export per point: start-up paid once, not per kill
            pid = os.fork()
            if pid == 0:
                replace_export(Path(root, f"n{n}", "target"), write_set("new", NEW))
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            result = "killed" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL else "ran on"
            print(json.dumps({"n": n, "result": result}), flush=True)
            continue
        notes: list[str] = []
        try:
            replace_export(Path(root, f"n{n}", "target"), write_set("new", NEW), note=notes.append)
            result = "complete"
        except KeyboardInterrupt as exc:
            result = "interrupted after completing" if getattr(exc, "completed", None) else "interrupted"
        print(json.dumps({"n": n, "steps": steps["n"], "result": result, "notes": notes}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], [int(a) for a in sys.argv[3:]]))
