"""core.equivalence: the equalities the chapter teaches, asserted over several configs."""
from core.equivalence import (fused_from_wrapper, masking_approaches, max_abs_diff,
                              softmax_naive_vs_torch, trace_vs_sdpa)


def test_renormalise_after_softmax_equals_minus_inf_before(varied_trace):
    trace = varied_trace
    a, b = masking_approaches(trace)
    assert max_abs_diff(a, b) <= 1e-6


def test_fused_with_wrapper_weights_equals_wrapper(varied_trace):
    trace = varied_trace
    fused, wrapped = fused_from_wrapper(trace)
    assert fused.shape == wrapped.shape
    assert max_abs_diff(fused, wrapped) <= 1e-6


def test_naive_softmax_equals_torch_softmax(varied_trace):
    trace = varied_trace
    assert max_abs_diff(*softmax_naive_vs_torch(trace)) <= 1e-6


def test_causal_weights_equal_sdpa(varied_trace):
    trace = varied_trace
    ours, ref = trace_vs_sdpa(trace)
    assert max_abs_diff(ours, ref) <= 1e-5
