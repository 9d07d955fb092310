"""Shared pytest setup: Qt offscreen before any Qt import, the `gpu` marker's skip, and CPU for the rest.

On a machine with a CUDA GPU, ``device="auto"`` would put every test's trace on the GPU; the tests
that compare against CPU references would then test device transfers, not numbers. So tests not
marked ``gpu`` see no GPU (as in CI), and the ``gpu``-marked ones (tests/core/test_gpu.py) compare
the CUDA trace with the CPU trace, the book's sections included.
"""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import functools  # noqa: E402

import pytest  # noqa: E402


@functools.lru_cache(maxsize=None)
def _has_cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none available)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _cpu_unless_marked_gpu(request, monkeypatch):
    if "gpu" not in request.keywords and _has_cuda():
        import core.device
        monkeypatch.setattr(core.device, "cuda_available", lambda: False)
