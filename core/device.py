"""Resolve the requested device ("auto", "cpu", "cuda") to one torch can use."""
from __future__ import annotations

import torch


def cuda_available() -> bool:
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver install must not take the app down
        return False


def resolve_device(requested: str) -> tuple[str, str | None]:
    """(device, note): CUDA asked for where there is none falls back to the CPU with a note."""
    if requested == "cpu":
        return "cpu", None
    if cuda_available():
        return "cuda", None
    if requested == "cuda":
        return "cpu", "CUDA was requested but no CUDA GPU is available; computed on the CPU"
    return "cpu", None
