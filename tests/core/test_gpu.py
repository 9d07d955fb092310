"""CUDA: the trace on the GPU equals the CPU trace, and the book's numbers hold there.

Marked ``gpu``: skipped cleanly where no CUDA GPU is available (CI).
"""
import pytest
import torch

from core import AttentionConfig, build_trace
from core.book import BOOK_SECTIONS

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("section", list(BOOK_SECTIONS))
def test_cuda_trace_equals_cpu_trace_for_book_sections(section):
    cfg = BOOK_SECTIONS[section][1]
    cpu = build_trace(cfg.replace(device="cpu"))
    gpu = build_trace(cfg.replace(device="cuda"))
    assert gpu.device == "cuda"
    for item in cpu:
        other = gpu[item.key].tensor
        assert other.device.type == "cuda"
        assert torch.allclose(item.tensor, other.cpu(), atol=1e-5, equal_nan=True), item.key


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-10)])
def test_cuda_fused_matches_sdpa_at_size(dtype, tol):
    cfg = AttentionConfig(embeddings="random", text=" ".join(f"t{i}" for i in range(64)), d_in=32, d_out=32,
                          num_heads=4, batch=2, qkv_bias=True, dtype=dtype, device="cuda")
    t = build_trace(cfg)
    mh = t.stages["multihead"]
    q, k, v = mh["queries"].tensor, mh["keys"].tensor, mh["values"].tensor
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert float((mh["context_heads"].tensor - ref).abs().max()) <= tol
