"""Write a run as a folder: the loss log, the snapshots' attention weights per head, a manifest.

Layout (all under the target folder):
- ``loss.csv``: the training batch loss at every step (induction: also each half's);
- ``snapshots.csv``: per snapshot, the evaluation loss (halves), accuracy and each head's pattern score;
- ``attn_weights/step_NNNNNN/attn_weights_lL_hH.csv`` (or ``.npy``): one head's weights on the probe,
  probe tokens as row and column labels;
- ``run.npz``: the whole run, for opening again without retraining;
- ``manifest.json``: settings, probe tokens and a list of tensors like the export's.
CSV values are formatted by core.export's helpers (9 significant digits for float32, 17 for
float64). Files are staged and switched into place by core.safe_folder (the export's procedure), so a
failed, cancelled or killed write leaves no partial files.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from core.export import ExportCancelled, ExportError, slice_csv
from core.safe_folder import FolderError, replace_export
from core.train.runfile import save_run
from core.train.runner import TrainRun

MANIFEST_VERSION = 1


def _head_label(layer: int, head: int) -> str:
    return f"l{layer}_h{head}"


def loss_log_csv(run: TrainRun) -> str:
    """One row per step: loss (and, for induction, the two halves' losses)."""
    halves = run.settings.task == "induction"
    cols = ["loss", "loss_first_half", "loss_second_half"] if halves else ["loss"]
    arr = np.array([run.history_loss, run.history_first, run.history_second] if halves else [run.history_loss],
                   dtype=np.float32).T.reshape(len(run.history_loss), len(cols))          # (steps, cols)
    steps = [str(i) for i in range(1, len(run.history_loss) + 1)]
    return slice_csv(arr, steps, cols, corner="step")


def snapshots_csv(run: TrainRun) -> str:
    """One row per snapshot: evaluation loss, halves, accuracy, then each head's pattern score."""
    s = run.settings
    heads = [f"score_{_head_label(l, h)}" for l in range(s.num_layers) for h in range(s.num_heads)]
    cols = ["loss", "loss_first_half", "loss_second_half", "accuracy"] + heads
    rows = [[sn.loss, sn.loss_first, sn.loss_second, sn.accuracy] + sn.scores.ravel().tolist()
            for sn in run.snapshots]
    return slice_csv(np.array(rows, dtype=np.float32), [str(sn.step) for sn in run.snapshots], cols, corner="step")


def write_run_folder(run: TrainRun, out_dir: str | Path, fmt: str = "csv",
                     cancelled: Callable[[], bool] | None = None,
                     note: Callable[[str], None] | None = None) -> tuple[Path, int]:
    """Write the run into ``out_dir`` (created if missing) as the export does; returns (folder, files written)."""
    if fmt not in ("csv", "npy"):
        raise ExportError(f"format must be csv or npy, got {fmt!r}")
    return _write_folder(out_dir, lambda staging: _write_all(run, staging, fmt, cancelled), cancelled, note)


def write_snapshot_folder(run: TrainRun, index: int, out_dir: str | Path) -> tuple[Path, int]:
    """Write one snapshot (the Train view's "Export snapshot as CSV…") into ``out_dir``: every head's
    attn_weights as CSV (probe tokens as labels) and a manifest; returns (folder, files written)."""
    if not 0 <= index < len(run.snapshots):
        raise ExportError(f"snapshot must be in 0..{len(run.snapshots) - 1}, got {index}")
    return _write_folder(out_dir, lambda staging: _write_snapshot(run, index, staging))


def _write_folder(out_dir: str | Path, write: Callable[[Path], list[str]], cancelled=None,
                  note: Callable[[str], None] | None = None) -> tuple[Path, int]:
    """The switch-over is core.safe_folder's: staged inside the folder, journaled; a run written
    there before is replaced whole and the user's other files are never touched."""
    written: list[str] = []

    def staged(staging: Path) -> list[str]:
        written[:] = write(staging)
        return written

    try:
        out = replace_export(out_dir, staged, cancelled, note)
    except FolderError as exc:
        raise ExportError(str(exc)) from None
    except OSError as exc:
        raise ExportError(f"cannot write {out_dir}: {exc.strerror or exc}") from None
    return out, len(written)


def _put(staging: Path, written: list[str], rel: str, text: str) -> None:
    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
    (staging / rel).write_text(text, encoding="utf-8")
    written.append(rel)


def _write_snapshot(run: TrainRun, index: int, staging: Path) -> list[str]:
    snap = run.snapshots[index]
    tokens = list(run.probe_tokens)
    written: list[str] = []
    tensors = []
    for layer in range(snap.attn_weights.shape[0]):
        for head in range(snap.attn_weights.shape[1]):
            rel = f"attn_weights_{_head_label(layer, head)}.csv"
            _put(staging, written, rel, slice_csv(snap.attn_weights[layer, head], tokens, tokens,   # (T, T)
                                                  corner="query\\key"))
            tensors.append({"stage": "train", "name": "attn_weights", "step": snap.step, "index": [layer, head],
                            "axes": ["layer", "head"], "shape": list(snap.attn_weights.shape[2:]), "file": rel,
                            "score": None if np.isnan(snap.scores[layer, head]) else float(snap.scores[layer, head])})
    manifest = {"version": MANIFEST_VERSION, "kind": "train_snapshot", "settings": run.settings.to_dict(),
                "device": run.device, "tokens": tokens, "format": "csv", "step": snap.step,
                "snapshot": index, "loss": snap.loss, "accuracy": snap.accuracy, "tensors": tensors}
    _put(staging, written, "manifest.json", json.dumps(manifest, indent=1))
    return written


def _write_all(run: TrainRun, staging: Path, fmt: str, cancelled) -> list[str]:
    written = []

    def put(rel: str, text: str) -> None:
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_text(text, encoding="utf-8")
        written.append(rel)

    put("loss.csv", loss_log_csv(run))
    put("snapshots.csv", snapshots_csv(run))
    tokens = list(run.probe_tokens)
    tensors = []
    for snap in run.snapshots:
        folder = f"attn_weights/step_{snap.step:06d}"
        (staging / folder).mkdir(parents=True, exist_ok=True)
        for layer in range(snap.attn_weights.shape[0]):
            for head in range(snap.attn_weights.shape[1]):
                if cancelled and cancelled():
                    raise ExportCancelled()
                arr = snap.attn_weights[layer, head]                                 # (T, T)
                rel = f"{folder}/attn_weights_{_head_label(layer, head)}.{fmt}"
                if fmt == "csv":
                    put(rel, slice_csv(arr, tokens, tokens, corner="query\\key"))
                else:
                    np.save(staging / rel, arr)
                    written.append(rel)
                tensors.append({"stage": "train", "name": "attn_weights", "step": snap.step,
                                "index": [layer, head], "axes": ["layer", "head"], "shape": list(arr.shape),
                                "file": rel})
    save_run(run, staging / "run.npz")
    written.append("run.npz")
    manifest = {"version": MANIFEST_VERSION, "kind": "train", "settings": run.settings.to_dict(),
                "device": run.device, "tokens": tokens, "format": fmt, "loss_log": "loss.csv",
                "snapshots": "snapshots.csv", "run": "run.npz", "tensors": tensors,
                "files": ["loss.csv", "snapshots.csv", "run.npz"]}
    put("manifest.json", json.dumps(manifest, indent=1))
    return written
