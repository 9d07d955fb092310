"""Core half of ``python main.py bench``: the trace against a fused forward (no Qt needed).

The fused forward is what a model runs: three projections, ``F.scaled_dot_product_attention``
and out_proj, keeping nothing. The subject is the multi-head stage of the trace, which keeps
every intermediate (Q, K, V per head, scores, weights, per-head context, concatenation,
output). Both run on the same config and device, alternated, after a warm-up; figures are
medians. Run ``python -m core.bench`` on a machine without PySide6 (e.g. a GPU box).
"""
from __future__ import annotations

import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from core.config import MAX_TOKENS, AttentionConfig
from core.engine.malloc import tune_malloc
from core.inputs import resolve_inputs
from core.trace import build_trace

GPT2 = dict(d_in=768, d_out=768, num_heads=12)


def gpt2_config(tokens: int, device: str = "cpu") -> AttentionConfig:
    text = " ".join(f"t{i}" for i in range(tokens))
    return AttentionConfig(embeddings="random", text=text, device=device, **GPT2)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def fused_forward(trace, x: torch.Tensor) -> torch.Tensor:
    """What nn.MultiheadAttention/the book's MultiHeadAttention compute, with SDPA, keeping nothing."""
    mh = trace.stages["multihead"]
    cfg = trace.config
    b, T, _ = x.shape
    h, hd = cfg.num_heads, cfg.head_dim

    def proj(role):
        out = x @ mh[f"W_{role}"].tensor
        if cfg.qkv_bias:
            out = out + mh[f"b_{role}"].tensor
        return out.view(b, T, h, hd).transpose(1, 2)  # (b, h, T, hd)

    with torch.no_grad():
        ctx = F.scaled_dot_product_attention(proj("query"), proj("key"), proj("value"), is_causal=cfg.causal)
        return ctx.transpose(1, 2).reshape(b, T, cfg.d_out) @ mh["W_out"].tensor + mh["b_out"].tensor


def trace_vs_fused(tokens: int, device: str = "cpu", repeats: int = 7, warmup: int = 2) -> dict:
    cfg = gpt2_config(tokens, device)
    inputs = resolve_inputs(cfg)
    first = build_trace(cfg, inputs, only=("multihead",))
    x = first["simplified", "inputs"].tensor if ("simplified", "inputs") in first else \
        inputs.tensor(torch.float32).to(first.device)
    x = x.unsqueeze(0)
    times = {"fused": [], "trace": [], "trace_all_stages": []}

    def run_fused():
        fused_forward(first, x)

    def run_trace():
        build_trace(cfg, inputs, only=("multihead",))

    def run_all():
        build_trace(cfg, inputs)

    subjects = {"fused": run_fused, "trace": run_trace, "trace_all_stages": run_all}
    for _ in range(warmup):
        for fn in subjects.values():
            fn()
            _sync(first.device)
    for _ in range(repeats):
        for name, fn in subjects.items():  # alternate baseline and subjects in every round
            _sync(first.device)
            start = time.perf_counter()
            fn()
            _sync(first.device)
            times[name].append((time.perf_counter() - start) * 1000.0)
    med = {k: statistics.median(v) for k, v in times.items()}
    # Check the subject computes the same output as the baseline.
    out_trace = build_trace(cfg, inputs, only=("multihead",))["multihead", "context_vecs"].tensor
    max_diff = float((out_trace - fused_forward(first, x).squeeze(0)).abs().max())
    return {
        "tokens": tokens, "device": first.device, "repeats": repeats,
        "fused_ms": round(med["fused"], 2), "trace_ms": round(med["trace"], 2),
        "ratio": round(med["trace"] / med["fused"], 3),
        "trace_all_stages_ms": round(med["trace_all_stages"], 2),
        "ratio_all_stages": round(med["trace_all_stages"] / med["fused"], 3),
        "max_abs_diff": max_diff,
    }


TARGETS = {1024: 1.5, 2048: 2.0}


def run(token_counts=(64, 1024, 2048), device="cpu", repeats=7) -> dict:
    results = {}
    for n in token_counts:
        r = trace_vs_fused(n, device, repeats=repeats)
        target = TARGETS.get(n)
        r["target_ratio"] = target
        r["meets_target"] = None if target is None else r["ratio"] <= target
        results[str(n)] = r
    return results


def print_table(results: dict, file=None) -> None:
    file = file or sys.stdout          # looked up now: a redirected stdout (e.g. a test's) is honoured
    print(f"{'tokens':>6} {'device':>6} {'fused ms':>9} {'trace ms':>9} {'ratio':>6} {'target':>7}  "
          f"{'all stages ms':>13} {'ratio':>6}", file=file)
    for r in results.values():
        target = "-" if r["target_ratio"] is None else f"≤{r['target_ratio']:g}" + (" ok" if r["meets_target"] else " MISS")
        print(f"{r['tokens']:>6} {r['device']:>6} {r['fused_ms']:>9.1f} {r['trace_ms']:>9.1f} {r['ratio']:>6.2f} "
              f"{target:>7}  {r['trace_all_stages_ms']:>13.1f} {r['ratio_all_stages']:>6.2f}", file=file)


def main(argv=None) -> int:
    """Bad options (and a --json file that could not be written) exit 2 with one line on stderr
    before anything is measured; the JSON is written atomically (a temporary file, then a rename)."""
    from core.cli import _int_arg, _OneLineParser
    from core.cost import MAX_REPEATS, repeats_problem, tokens_problem
    from core.files import write_target_problem
    p = _OneLineParser(prog="python -m core.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--tokens", type=_int_arg, nargs="+", default=[64, 1024, 2048], metavar="N",
                   help=f"token counts, each 1 … {MAX_TOKENS} (default: 64 1024 2048)")
    p.add_argument("--repeats", type=_int_arg, default=7, metavar="N",
                   help=f"timed rounds per size, 1 … {MAX_REPEATS} (default: 7)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    for option, problem in (("--tokens", tokens_problem(args.tokens)), ("--repeats", repeats_problem(args.repeats)),
                            ("--json", None if args.json is None else write_target_problem(args.json))):
        if problem:
            p.error(f"{option}: {problem}")
    tune_malloc()                      # as the app does at start-up
    results = run(tuple(args.tokens), args.device, args.repeats)
    out = {"trace_vs_fused": results, "device": args.device, "torch": torch.__version__}
    if args.device == "cuda" and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    print_table(results)
    if args.json:
        from core.export import ExportError, write_text_atomic   # temporary name, then rename
        try:
            write_text_atomic(args.json, json.dumps(out, indent=1) + "\n")
        except (ExportError, OSError) as exc:
            print(f"{p.prog}: error: --json: {exc} (the figures are printed above)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
