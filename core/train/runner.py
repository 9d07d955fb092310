"""Train the toy model and record snapshots: pause, resume and cancel from another thread.

``train(settings, control, on_snapshot, on_progress)`` runs in the caller's thread (the GUI
calls it from a worker thread). Everything random comes from generators seeded by
``settings.seed`` (weights: seed, probe: seed + 1, evaluation batch: seed + 2, training
batches: seed + 3), so the same settings give bit-identical snapshots on the same CPU with the
same torch (on one intra-op thread, see ``train``). Nothing is written to disk here.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from core.device import resolve_device
from core.train.budget import check_train_memory
from core.train.metrics import pattern_score
from core.train.model import build_model, layer_weights
from core.train.settings import TrainSettings
from core.train.tasks import Task, make_task

WEIGHT_NAMES = ("W_query", "W_key", "W_value", "W_out", "b_out")


class TrainCancelled(Exception):
    """The run was cancelled; its snapshots are dropped."""


class TrainControl:
    """Pause, resume and cancel a run from another thread (the runner polls it between steps)."""

    def __init__(self):
        self._cancelled = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self._cancelled.set()
        self._running.set()          # wake a paused runner so that it sees the cancel

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def checkpoint(self) -> None:
        """Block while paused; raise TrainCancelled once cancelled."""
        while not self._running.wait(0.05):
            pass
        if self._cancelled.is_set():
            raise TrainCancelled()


@dataclass(frozen=True)
class Snapshot:
    """The model after ``step`` optimiser steps, looked at on the probe sequence."""

    step: int
    loss: float                   # mean loss on the fixed evaluation batch
    loss_first: float             # induction: the random part's loss (prefix and first copy); else nan
    loss_second: float            # induction: the repeat's loss (tokens that are copies); else nan
    accuracy: float               # share of the evaluation batch's targets predicted (argmax)
    attn_weights: np.ndarray      # (L, h, T, T) every head's weights on the probe
    scores: np.ndarray            # (L, h) the task's pattern score per head (nan for next_word)
    layer_inputs: np.ndarray      # (L, T, d) the residual stream entering each layer on the probe
    weights: dict[str, np.ndarray]  # W_query/W_key/W_value (L, d, d), W_out (L, d, d), b_out (L, d); x @ W


@dataclass
class TrainRun:
    """A finished (or loaded) run: settings, probe, per-step training losses and the snapshots."""

    settings: TrainSettings
    probe_tokens: tuple[str, ...]                  # the probe sequence, as token names
    snapshots: list[Snapshot] = field(default_factory=list)
    history_loss: list[float] = field(default_factory=list)     # training batch loss at steps 1..N
    history_first: list[float] = field(default_factory=list)    # induction halves (else nan)
    history_second: list[float] = field(default_factory=list)
    device: str = "cpu"
    elapsed_s: float = 0.0
    notes: tuple[str, ...] = ()

    def stage4_weights(self, index: int, layer: int) -> dict[str, np.ndarray]:
        """W_query, W_key, W_value (d × d), W_out (d × d), b_out (d,) and inputs (T × d) of one layer
        in snapshot ``index``: the multihead stage's weights (x @ W convention) and its inputs."""
        snap = self.snapshots[index]
        if not 0 <= layer < self.settings.num_layers:
            raise IndexError(f"layer must be in 0..{self.settings.num_layers - 1}, got {layer}")
        out = {name: snap.weights[name][layer].copy() for name in WEIGHT_NAMES}
        out["inputs"] = snap.layer_inputs[layer].copy()
        return out


def _losses(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per position: (b, T, V), (b, T) -> (b, T), 0 where weights are 0."""
    per_position = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")   # (b, T)
    return per_position * weights


def _mean(losses: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of (b, T) losses over the positions where the (T,) or (b, T) mask is set."""
    mask = mask.to(losses.dtype).expand_as(losses)
    return float((losses * mask).sum() / mask.sum())


@torch.no_grad()
def _snapshot(model, task: Task, probe: torch.Tensor, eval_batch, step: int, settings: TrainSettings) -> Snapshot:
    was_training = model.training
    model.eval()
    logits = model(eval_batch.inputs)
    losses = _losses(logits, eval_batch.targets, eval_batch.weights)
    counted = eval_batch.weights > 0
    correct = (logits.argmax(dim=-1) == eval_batch.targets) & counted
    if task.halves:
        first, second = task.half_masks(eval_batch)
        loss_first, loss_second = _mean(losses, first), _mean(losses, second)
        accuracy = float((correct & second).sum()) / float(second.sum())             # the repeat only
    else:
        loss_first = loss_second = math.nan
        accuracy = float(correct.sum()) / float(counted.sum())
    _, recorded = model(probe[None, :], record=True)
    attn = np.stack([w[0].cpu().numpy() for _, w in recorded]).astype(np.float32)       # (L, h, T, T)
    inputs = np.stack([x[0].cpu().numpy() for x, _ in recorded]).astype(np.float32)     # (L, T, d)
    per_layer = [layer_weights(layer) for layer in model.layers]
    weights = {name: np.stack([lw[name].numpy() for lw in per_layer]) for name in WEIGHT_NAMES}
    model.train(was_training)
    return Snapshot(step, _mean(losses, counted), loss_first, loss_second, accuracy, attn,
                    pattern_score(task.name, attn, task.probe.tolist()).astype(np.float32),
                    inputs, weights)


def snapshot_steps(settings: TrainSettings) -> list[int]:
    """0, every snapshot_every steps, and the last step."""
    steps = list(range(0, settings.steps, settings.snapshot_every))
    return steps + [settings.steps]


def train(settings: TrainSettings, control: TrainControl | None = None,
          on_snapshot: Callable[[Snapshot], None] | None = None,
          on_progress: Callable[[int, int, float, float, float], None] | None = None,
          on_start: Callable[[TrainRun], None] | None = None) -> TrainRun:
    """Train from scratch; raise TrainCancelled (nothing kept) if ``control`` is cancelled.

    on_snapshot(snapshot) after each snapshot; on_progress(step, steps, loss, loss_first, loss_second)
    after each step (the training batch's losses; the halves are nan except for induction);
    on_start(run) once the task is built (the run has its probe tokens, no snapshots yet).
    """
    # One intra-op thread: the model is tiny, so splitting its ops costs more than it gains (on a
    # busy 2-core machine 6× more), and the numbers then do not depend on the core count. The
    # setting is per thread (OpenMP), so a trace computing on another thread keeps its threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(settings, control, on_snapshot, on_progress, on_start)
    finally:
        torch.set_num_threads(threads)


def _train(settings, control, on_snapshot, on_progress, on_start) -> TrainRun:
    start = time.perf_counter()
    device, note = resolve_device(settings.device)
    check_train_memory(settings, device=device)     # before anything of the run's size is allocated
    task = make_task(settings)
    model = build_model(settings.vocab_size, task.context_length, settings.d_model, settings.num_heads,
                        settings.num_layers, settings.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    eval_gen = torch.Generator().manual_seed(settings.seed + 2)
    batch_gen = torch.Generator().manual_seed(settings.seed + 3)
    eval_batch = _to(task.batch(settings.batch_size, eval_gen), device)
    probe = task.probe.to(device)
    run = TrainRun(settings, task.probe_tokens, device=device,
                   notes=tuple(n for n in (note,) if n) + task.notes)
    wanted = set(snapshot_steps(settings))

    def take(step: int) -> None:
        snap = _snapshot(model, task, probe, eval_batch, step, settings)
        run.snapshots.append(snap)
        if on_snapshot:
            on_snapshot(snap)

    if on_start:
        on_start(run)
    model.train()
    take(0)
    for step in range(1, settings.steps + 1):
        if control:
            control.checkpoint()
        batch = _to(task.batch(settings.batch_size, batch_gen), device)
        losses = _losses(model(batch.inputs), batch.targets, batch.weights)             # (b, T)
        loss = losses.sum() / batch.weights.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        run.history_loss.append(float(loss.detach()))
        if task.halves:
            first, second = task.half_masks(batch)
            run.history_first.append(_mean(losses.detach(), first))
            run.history_second.append(_mean(losses.detach(), second))
        else:
            run.history_first.append(math.nan)
            run.history_second.append(math.nan)
        if on_progress:
            on_progress(step, settings.steps, run.history_loss[-1], run.history_first[-1], run.history_second[-1])
        if step in wanted:
            take(step)
    if control and control.cancelled:
        raise TrainCancelled()
    run.elapsed_s = time.perf_counter() - start
    return run


def _to(batch, device: str):
    if device == "cpu":
        return batch
    return type(batch)(batch.inputs.to(device), batch.targets.to(device), batch.weights.to(device),
                       None if batch.repeat is None else batch.repeat.to(device))
