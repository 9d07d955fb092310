"""Attention's quadratic cost, measured: the full trace against the fused forward as tokens grow.

For each token count T, on one device, at GPT-2 sizes by default (d_in = d_out = 768,
12 heads, causal, float32), ``CostRunner.run`` measures:

- the time of ``build_trace`` (what the app computes: every stage, every intermediate kept)
  and of the fused forward a model runs (three projections, ``F.scaled_dot_product_attention``,
  out_proj, keeping nothing), alternated, median of the repeats;
- the peak memory of each, in one extra run apiece (see ``MEMORY_METHOD``);
- the bytes of one T × T map, of the 12 per-head maps, and of all T × T intermediates the
  trace keeps; and the memory guard's estimate (core.memory) for the same config.

Sizes the memory guard refuses are reported as skipped, not run. ``cancelled()`` is polled
between runs; ``progress(done, total, text)`` and ``on_row(row)`` report as sizes finish.
"""
from __future__ import annotations

import csv
import ctypes
import ctypes.util
import io
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable

import torch
import torch.nn.functional as F

from core import memory
from core.engine import buffers
from core.config import MAX_TOKENS, AttentionConfig
from core.device import resolve_device
from core.inputs import resolve_inputs
from core.trace import build_trace

CPU_TOKENS = (64, 128, 256, 512, 1024, 2048, 4096)
GPU_TOKENS = CPU_TOKENS    # up to the trace's limit (core.config.MAX_TOKENS) on any device
TT_AXES = ("query", "key")
MAX_REPEATS = 1000         # timed runs per size; a typo's 10**6 would measure for days


class CostCancelled(Exception):
    """The measurement was cancelled between two runs."""


@dataclass(frozen=True)
class CostSettings:
    tokens: tuple[int, ...] = CPU_TOKENS   # token counts T, measured in this order
    d_model: int = 768                     # d_in = d_out
    num_heads: int = 12
    device: str = "cpu"                    # cpu, cuda or auto
    repeats: int = 3                       # timed runs per size and subject (median)
    measure_memory: bool = True            # one extra run per subject for its peak memory

    def __post_init__(self):
        if not self.tokens or any(not isinstance(t, int) or not 1 <= t <= MAX_TOKENS for t in self.tokens):
            raise ValueError(f"tokens must be whole numbers from 1 to {MAX_TOKENS}, got {self.tokens!r}")
        if self.d_model < 1 or self.num_heads < 1 or self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a positive multiple of num_heads ({self.num_heads})")
        if not 1 <= self.repeats <= MAX_REPEATS:
            raise ValueError(f"repeats must be between 1 and {MAX_REPEATS}, got {self.repeats}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device must be cpu, cuda or auto, got {self.device!r}")

    def config(self, tokens: int) -> AttentionConfig:
        """The trace config for ``tokens`` tokens (random embeddings, seeded, causal)."""
        text = " ".join(f"t{i}" for i in range(tokens))
        return AttentionConfig(embeddings="random", text=text, d_in=self.d_model, d_out=self.d_model,
                               num_heads=self.num_heads, init="linear", causal=True, dropout=0.0,
                               device=self.device, dtype="float32")


@dataclass(frozen=True)
class CostRow:
    tokens: int
    device: str
    trace_ms: float | None             # median time of build_trace (all stages)
    fused_ms: float | None             # median time of the fused forward (SDPA)
    trace_peak_bytes: int | None       # peak memory above the start, full trace
    fused_peak_bytes: int | None       # peak memory above the start, fused forward
    tt_map_bytes: int                  # one T × T float32 map
    tt_heads_bytes: int                # the per-head T × T maps of one intermediate (h × T × T)
    tt_kept_bytes: int | None          # the storages of the T × T intermediates the trace keeps
    estimate_bytes: int                # the memory guard's estimate for this trace
    memory_method: str                 # how the peaks were measured
    note: str = ""                     # e.g. why a size was skipped

    @property
    def ratio(self) -> float | None:
        if self.trace_ms is None or not self.fused_ms:
            return None
        return self.trace_ms / self.fused_ms


def memory_method(device: str) -> str:
    """How peaks are measured on ``device`` (written into every row and the CSV)."""
    if device.startswith("cuda"):
        return "torch.cuda.max_memory_allocated"
    if _proc_peak_available():
        return "process peak RSS (VmHWM reset via clear_refs)"
    return "not measured"


def fused_forward(weights: dict[str, torch.Tensor], x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """What a model runs: projections, F.scaled_dot_product_attention (causal), out_proj; keeps nothing."""
    b, T, d_out = x.shape[0], x.shape[1], weights["W_query"].shape[1]
    hd = d_out // num_heads

    def heads(w):
        return (x @ w).view(b, T, num_heads, hd).transpose(1, 2)  # (b, T, d_out) -> (b, h, T, hd)

    with torch.no_grad():
        ctx = F.scaled_dot_product_attention(heads(weights["W_query"]), heads(weights["W_key"]),
                                             heads(weights["W_value"]), is_causal=True)
        # (b, h, T, hd) -> (b, T, h, hd) -> (b, T, d_out)
        return ctx.transpose(1, 2).reshape(b, T, d_out) @ weights["W_out"] + weights["b_out"]


class CostRunner:
    """Measures the rows of a cost table; the GUI runs ``run`` on a worker thread."""

    def __init__(self, settings: CostSettings | None = None):
        self.settings = settings or CostSettings()

    def run(self, progress: Callable[[int, int, str], None] | None = None,
            cancelled: Callable[[], bool] | None = None,
            on_row: Callable[[CostRow], None] | None = None) -> list[CostRow]:
        s = self.settings
        device, _ = resolve_device(s.device)
        method = memory_method(device) if s.measure_memory else "not measured"
        rows: list[CostRow] = []
        total = len(s.tokens)
        for done, tokens in enumerate(s.tokens):
            if cancelled and cancelled():
                raise CostCancelled()
            if progress:
                progress(done, total, f"{tokens} tokens on {device}…")
            row = self._measure(tokens, device, method, cancelled)
            rows.append(row)
            if on_row:
                on_row(row)
        if progress:
            progress(total, total, "done")
        return rows

    def _measure(self, tokens: int, device: str, method: str, cancelled) -> CostRow:
        s = self.settings
        cfg = s.config(tokens)
        item = 4
        base = dict(tokens=tokens, device=device, tt_map_bytes=tokens * tokens * item,
                    tt_heads_bytes=s.num_heads * tokens * tokens * item,
                    estimate_bytes=memory.estimate_bytes(cfg, tokens), memory_method=method)
        try:
            memory.check_memory(cfg, tokens)
        except memory.MemoryBudgetError as exc:
            return CostRow(trace_ms=None, fused_ms=None, trace_peak_bytes=None, fused_peak_bytes=None,
                           tt_kept_bytes=None, note=f"skipped: {exc}", **base)
        inputs = resolve_inputs(cfg)
        trace = build_trace(cfg, inputs)  # warm-up, and the weights for the fused forward
        kept = kept_tt_bytes(trace)
        mh = trace.stages["multihead"]
        weights = {k: mh[k].tensor for k in ("W_query", "W_key", "W_value", "W_out", "b_out")}
        x = trace["simplified", "inputs"].tensor.unsqueeze(0)  # (T, d_in) -> (1, T, d_in)
        del trace, mh

        def run_trace():
            build_trace(cfg, inputs)

        def run_fused():
            fused_forward(weights, x, s.num_heads)

        run_fused()
        _sync(device)
        times = {"trace": [], "fused": []}
        for _ in range(s.repeats):
            for name, fn in (("fused", run_fused), ("trace", run_trace)):  # alternated
                if cancelled and cancelled():
                    raise CostCancelled()
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                times[name].append((time.perf_counter() - start) * 1000.0)
        peaks = {"trace": None, "fused": None}
        if method != "not measured":
            for name, fn in (("fused", run_fused), ("trace", run_trace)):
                if cancelled and cancelled():
                    raise CostCancelled()
                buffers.clear()  # a fresh trace's memory, not buffers pooled by the runs before
                peaks[name] = peak_bytes(fn, device)
        return CostRow(trace_ms=statistics.median(times["trace"]), fused_ms=statistics.median(times["fused"]),
                       trace_peak_bytes=peaks["trace"], fused_peak_bytes=peaks["fused"], tt_kept_bytes=kept,
                       **base)


def kept_tt_bytes(trace) -> int:
    """Bytes of the storages behind the trace's computed T × T intermediates, each storage once."""
    storages = {}
    for it in trace:
        if tuple(it.axes[-2:]) == TT_AXES and it.is_ready:
            storage = it.tensor.untyped_storage()
            storages[(storage.device, storage.data_ptr())] = storage.nbytes()
    return sum(storages.values())


def peak_bytes(fn: Callable[[], object], device: str) -> int | None:
    """Peak memory ``fn`` takes above what was in use before it (its result dropped at the end).

    CUDA: torch's allocator peak. CPU (Linux): the process's peak resident set (VmHWM) after
    resetting it, minus the resident set before; freed heap memory is returned to the OS first
    (malloc_trim) so that reused pages do not hide the growth. It counts all the process touches
    in that time (allocator slack, kernels' work buffers, other threads too): an upper bound.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - before)
    if not _proc_peak_available():
        return None
    _trim()
    _reset_peak()
    before = _status_bytes("VmRSS")
    fn()
    return max(0, _status_bytes("VmHWM") - before)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as fh:
        match = re.search(rf"^{field}:\s+(\d+) kB", fh.read(), re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # 5: reset the peak resident set size (Linux ≥ 4.0)


def _proc_peak_available() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        _reset_peak()
        return _status_bytes("VmHWM") > 0
    except OSError:
        return False


def _trim() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the peak may then be lower than the true growth


def rows_csv(rows: list[CostRow]) -> str:
    """The rows as CSV text (one header row; empty cells where nothing was measured)."""
    names = [f.name for f in fields(CostRow)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names + ["trace_over_fused"])
    for row in rows:
        values = asdict(row)
        ratio = row.ratio
        writer.writerow([_csv_value(values[n]) for n in names] + [_csv_value(ratio)])
    return buf.getvalue()


def _csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def tokens_problem(tokens: list[int]) -> str | None:
    """Why ``--tokens`` cannot be measured (core.cost and core.bench), else None."""
    bad = [t for t in tokens if not 1 <= t <= MAX_TOKENS]
    if bad:
        return f"must be between 1 and {MAX_TOKENS} (the trace's limit), got {bad[0]}"
    return None


def repeats_problem(repeats: int) -> str | None:
    if not 1 <= repeats <= MAX_REPEATS:
        return f"must be between 1 and {MAX_REPEATS}, got {repeats}"
    return None


def main(argv=None) -> int:
    """``python -m core.cost [--device cpu] [--tokens 64 128 …]``: print the cost table as CSV.

    Bad options exit 2 with one line on stderr before anything is measured (as main.py's commands)."""
    from core.cli import _int_arg, _OneLineParser
    p = _OneLineParser(prog="python -m core.cost", description=main.__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--tokens", type=_int_arg, nargs="+", metavar="N",
                   help=f"token counts, each 1 … {MAX_TOKENS} (default: {' '.join(map(str, CPU_TOKENS))})")
    p.add_argument("--repeats", type=_int_arg, default=3, metavar="N",
                   help=f"timed runs per size and subject, 1 … {MAX_REPEATS} (default: 3)")
    args = p.parse_args(argv)
    for option, problem in (("--tokens", args.tokens and tokens_problem(args.tokens)),
                            ("--repeats", repeats_problem(args.repeats))):
        if problem:
            p.error(f"{option}: {problem}")
    tokens = tuple(args.tokens) if args.tokens else (GPU_TOKENS if args.device == "cuda" else CPU_TOKENS)
    runner = CostRunner(CostSettings(tokens=tokens, device=args.device, repeats=args.repeats))
    rows = runner.run(progress=lambda d, t, text: print(f"[{d}/{t}] {text}", file=sys.stderr, flush=True))
    sys.stdout.write(rows_csv(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
