"""Training the chapter's MultiHeadAttention on toy tasks, with snapshots of every head (no Qt).

``train(TrainSettings(...))`` returns a :class:`TrainRun`; ``save_run``/``load_run`` keep it as NPZ.
"""
from core.train.settings import (TASK_EXPLANATIONS, TASK_TITLES, TASKS, TrainSettings, TrainSettingsError,
                                 defaults_for)

__all__ = ["TASKS", "TASK_TITLES", "TASK_EXPLANATIONS", "TrainSettings", "TrainSettingsError", "defaults_for"]
