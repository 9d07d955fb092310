"""Save and open a training run as one NPZ file (settings + probe + losses + snapshots).

Saving is atomic (a temporary file beside the target, then a rename), so a failed save leaves
no partial file and an earlier file of that name as it was. Opening checks every array's
presence and shape and raises :class:`RunFileError` with one line naming what is wrong.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from core.train.runner import WEIGHT_NAMES, Snapshot, TrainRun
from core.train.settings import TrainSettings, TrainSettingsError

RUN_FORMAT = "attention-stepper-train-run"
RUN_VERSION = 1
_PER_SNAPSHOT = ("step", "loss", "loss_first", "loss_second", "accuracy")


class RunFileError(Exception):
    """A run file that cannot be written or read; the message says why in one line."""


def run_arrays(run: TrainRun) -> dict[str, np.ndarray]:
    """The run as named arrays (what the NPZ holds)."""
    snaps = run.snapshots
    meta = {"format": RUN_FORMAT, "version": RUN_VERSION, "settings": run.settings.to_dict(),
            "probe_tokens": list(run.probe_tokens), "device": run.device, "elapsed_s": run.elapsed_s,
            "notes": list(run.notes)}
    arrays = {
        "meta": np.array(json.dumps(meta)),
        "step": np.array([s.step for s in snaps], dtype=np.int64),
        "history_loss": np.array(run.history_loss, dtype=np.float64),
        "history_first": np.array(run.history_first, dtype=np.float64),
        "history_second": np.array(run.history_second, dtype=np.float64),
        "attn_weights": np.stack([s.attn_weights for s in snaps]),       # (S, L, h, T, T)
        "scores": np.stack([s.scores for s in snaps]),                   # (S, L, h)
        "layer_inputs": np.stack([s.layer_inputs for s in snaps]),       # (S, L, T, d)
    }
    for name in _PER_SNAPSHOT[1:]:
        arrays[name] = np.array([getattr(s, name) for s in snaps], dtype=np.float64)
    for name in WEIGHT_NAMES:
        arrays[name] = np.stack([s.weights[name] for s in snaps])        # (S, L, ...)
    return arrays


def save_run(run: TrainRun, path: str | Path) -> Path:
    """Write the run to ``path`` (an .npz file) atomically."""
    p = Path(path)
    if p.is_dir():
        raise RunFileError(f"{p} is a folder; choose a file name")
    folder = p.parent if str(p.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise RunFileError(f"cannot write into {folder}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **run_arrays(run))
        os.replace(tmp, p)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RunFileError(f"cannot write {p}: {exc.strerror or exc}") from None
        raise
    return p


def load_run(path: str | Path) -> TrainRun:
    """Open a run saved by ``save_run``; RunFileError if it is not one or is damaged."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise RunFileError(f"cannot read {p.name}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return _run_from(data)
    except (KeyError, ValueError, TypeError, TrainSettingsError) as exc:
        what = f"missing {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
        raise RunFileError(f"{p.name} is not a training run of this app: {what}") from None


def _run_from(data: dict[str, np.ndarray]) -> TrainRun:
    meta = json.loads(str(data["meta"]))
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        raise ValueError("no run header")
    if meta.get("version") != RUN_VERSION:
        raise ValueError(f"version {meta.get('version')!r}, this app reads version {RUN_VERSION}")
    settings = TrainSettings.from_dict(meta["settings"])
    tokens = tuple(str(t) for t in meta["probe_tokens"])
    S = len(data["step"])
    L, h, T, d = settings.num_layers, settings.num_heads, len(tokens), settings.d_model
    expected = {"attn_weights": (S, L, h, T, T), "scores": (S, L, h), "layer_inputs": (S, L, T, d),
                "W_query": (S, L, d, d), "W_key": (S, L, d, d), "W_value": (S, L, d, d),
                "W_out": (S, L, d, d), "b_out": (S, L, d),
                **{name: (S,) for name in _PER_SNAPSHOT}}
    for name, shape in expected.items():
        if data[name].shape != shape:
            raise ValueError(f"{name} has shape {data[name].shape}, expected {shape}")
    if T != settings.context_length or S == 0:
        raise ValueError("the probe does not match the settings" if S else "no snapshots")
    snaps = [Snapshot(int(data["step"][i]), float(data["loss"][i]), float(data["loss_first"][i]),
                      float(data["loss_second"][i]), float(data["accuracy"][i]),
                      data["attn_weights"][i].astype(np.float32), data["scores"][i].astype(np.float32),
                      data["layer_inputs"][i].astype(np.float32),
                      {name: data[name][i].astype(np.float32) for name in WEIGHT_NAMES})
             for i in range(S)]
    return TrainRun(settings, tokens, snaps, data["history_loss"].tolist(), data["history_first"].tolist(),
                    data["history_second"].tolist(), device=str(meta.get("device", "cpu")),
                    elapsed_s=float(meta.get("elapsed_s", 0.0)), notes=tuple(meta.get("notes", ())))
