"""core.cost: the fused forward it times computes the trace's output; rows hold what was measured."""
from __future__ import annotations

import csv
import io
import sys

import pytest
import torch

from core import cost, memory
from core.trace import build_trace
from tests.core.cli_runner import COST_LIMIT_CASES, exits_2_with_one_line, run_module

SMALL = cost.CostSettings(tokens=(8, 16), d_model=48, num_heads=4, repeats=1)


def test_fused_forward_computes_the_traces_multihead_output():
    cfg = SMALL.config(16)
    trace = build_trace(cfg)
    mh = trace.stages["multihead"]
    weights = {k: mh[k].tensor for k in ("W_query", "W_key", "W_value", "W_out", "b_out")}
    x = trace["simplified", "inputs"].tensor.unsqueeze(0)  # (T, d_in) -> (1, T, d_in)
    fused = cost.fused_forward(weights, x, cfg.num_heads).squeeze(0)
    # SDPA's kernel sums in another order than the trace's matmul + softmax: float32 rounding only
    torch.testing.assert_close(fused, trace["multihead", "context_vecs"].tensor, rtol=1e-5, atol=1e-6)


def test_rows_hold_the_sizes_and_the_guards_estimate():
    progress, rows_seen = [], []
    rows = cost.CostRunner(SMALL).run(progress=lambda d, t, text: progress.append((d, t)), on_row=rows_seen.append)
    assert rows == rows_seen and [r.tokens for r in rows] == [8, 16]
    assert progress[0] == (0, 2) and progress[-1] == (2, 2)
    for row in rows:
        T = row.tokens
        cfg = SMALL.config(T)
        assert row.tt_map_bytes == T * T * 4
        assert row.tt_heads_bytes == 4 * T * T * 4
        assert row.estimate_bytes == memory.estimate_bytes(cfg, T)
        trace = build_trace(cfg)
        tt = [it.tensor for it in trace if it.axes[-2:] == ("query", "key") and it.is_ready]
        # each kept map's memory once (a map that is a view of another's storage is not counted twice)
        unique = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tt}
        assert row.tt_kept_bytes == sum(unique.values())
        assert sum(unique.values()) >= (len(tt) - 3) * T * T * 4  # not a count of pointers alone
        assert row.trace_ms > 0 and row.fused_ms > 0
        assert row.ratio == pytest.approx(row.trace_ms / row.fused_ms)
        assert row.memory_method == cost.memory_method("cpu")


def test_cancel_between_sizes_stops_after_the_current_one():
    rows = []
    with pytest.raises(cost.CostCancelled):
        cost.CostRunner(SMALL).run(cancelled=lambda: len(rows) >= 1, on_row=rows.append)
    assert [r.tokens for r in rows] == [8]


def test_a_size_the_memory_guard_refuses_is_skipped(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1000)
    rows = cost.CostRunner(SMALL).run()
    assert all(r.trace_ms is None and r.fused_ms is None and r.note.startswith("skipped: ") for r in rows)
    assert rows[0].estimate_bytes == memory.estimate_bytes(SMALL.config(8), 8)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU peak is read from /proc")
def test_cpu_peak_counts_a_known_allocation():
    size = 64 * 2**20

    def allocate():
        t = torch.ones(size // 4)  # touched: every page resident
        return float(t[-1])

    peak = cost.peak_bytes(allocate, "cpu")
    # the allocation, less pages the heap already held (a few KB), plus at most some slack
    assert size - 2**20 <= peak <= size + 32 * 2**20


def test_rows_csv_round_trip():
    rows = cost.CostRunner(SMALL).run()
    parsed = list(csv.DictReader(io.StringIO(cost.rows_csv(rows))))
    assert [int(p["tokens"]) for p in parsed] == [8, 16]
    for p, row in zip(parsed, rows):
        assert int(p["tt_map_bytes"]) == row.tt_map_bytes
        assert int(p["estimate_bytes"]) == row.estimate_bytes
        assert float(p["trace_ms"]) == pytest.approx(row.trace_ms, rel=1e-3)  # written with 4 digits
        assert float(p["trace_over_fused"]) == pytest.approx(row.ratio, rel=1e-3)


@pytest.mark.parametrize("kwargs, field", [({"tokens": ()}, "tokens"), ({"tokens": (0,)}, "tokens"),
                                           ({"d_model": 50, "num_heads": 4}, "d_model"),
                                           ({"repeats": 0}, "repeats"), ({"device": "tpu"}, "device")])
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        cost.CostSettings(**kwargs)


# ---- python -m core.cost: bad options exit 2 with one line before anything is measured ----------

@pytest.mark.parametrize("argv, expected", COST_LIMIT_CASES + [
    (["--repeats", "3.5"], "argument --repeats: '3.5' is not a whole number"),
    (["--tokens"], "argument --tokens: expected at least one argument"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_cost_options_exit_2_with_one_line_before_measuring(argv, expected, capsys, monkeypatch):
    def measured(self, *args, **kwargs):
        raise AssertionError("measured before the options were checked")

    monkeypatch.setattr(cost.CostRunner, "run", measured)
    err = exits_2_with_one_line(cost.main, argv, capsys)
    assert err.startswith(f"python -m core.cost: error: {expected}"), err


def test_cost_in_a_real_process_gives_one_line_not_a_traceback():
    proc = run_module("core.cost", "--tokens", "5000", timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("python -m core.cost: error: --tokens: must be between 1 and 4096 "
                           "(the trace's limit), got 5000\n")


def test_every_default_size_is_one_the_trace_accepts():
    """The cuda default went to 16384 tokens, past the trace's limit: a traceback after minutes."""
    from core.config import MAX_TOKENS
    assert max(cost.GPU_TOKENS) <= MAX_TOKENS and max(cost.CPU_TOKENS) <= MAX_TOKENS
    with pytest.raises(ValueError, match="tokens"):
        cost.CostSettings(tokens=(64, MAX_TOKENS + 1))


def test_cost_main_prints_the_table_for_good_options(capsys):
    assert cost.main(["--tokens", "8", "--repeats", "1"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(p["tokens"]) for p in parsed] == [8] and float(parsed[0]["trace_ms"]) > 0
