"""Benchmark figures of training: step rate and time until the induction pattern appears.

``bench_training()`` trains the default induction run ``repeats`` times (snapshots every 5
steps, so the pattern's time is resolved to 5 steps) and returns medians:
- ``steps_per_s``: 1 / the median time of one optimiser step (batch, forward, backward, Adam),
  snapshots excluded;
- ``time_to_induction_s``: wall time from the start of ``train`` to the first snapshot in which a
  second-layer head has an induction score ≥ 0.5 (None if none does), snapshots included;
- ``step_to_induction``: that snapshot's step.
"""
from __future__ import annotations

import statistics
import time

from core.train.runner import train
from core.train.settings import TrainSettings, defaults_for

INDUCTION_SCORE = 0.5


def bench_training(settings: TrainSettings | None = None, repeats: int = 3) -> dict:
    s = settings or defaults_for("induction", snapshot_every=5)
    if s.task != "induction" or s.num_layers < 2:
        raise ValueError("the benchmark needs an induction run with at least 2 layers")
    step_times: list[float] = []
    to_pattern: list[float] = []
    steps_to_pattern: list[int] = []
    for _ in range(repeats):
        marks = {"start": time.perf_counter(), "last": None, "found": None}

        def on_progress(step, *_):
            now = time.perf_counter()
            if marks["last"] is not None:
                step_times.append(now - marks["last"])
            marks["last"] = now

        def on_snapshot(snap):
            if marks["found"] is None and float(snap.scores[1].max()) >= INDUCTION_SCORE:
                marks["found"] = (time.perf_counter() - marks["start"], snap.step)
            marks["last"] = None   # the next step's time would include this snapshot

        marks["start"] = time.perf_counter()
        train(s, on_progress=on_progress, on_snapshot=on_snapshot)
        if marks["found"]:
            to_pattern.append(marks["found"][0])
            steps_to_pattern.append(marks["found"][1])
    median_step = statistics.median(step_times)
    return {
        "steps_per_s": 1.0 / median_step,
        "time_to_induction_s": statistics.median(to_pattern) if len(to_pattern) == repeats else None,
        "step_to_induction": statistics.median(steps_to_pattern) if len(steps_to_pattern) == repeats else None,
        "settings": s.to_dict(),
        "repeats": repeats,
    }


if __name__ == "__main__":
    import json
    print(json.dumps(bench_training(), indent=1))
