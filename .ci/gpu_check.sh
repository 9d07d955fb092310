# The CUDA checks of core/, for a GPU machine with torch but no PySide6 (see README, Performance).
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
nvidia-smi -L; python3 -V; python3 -c "import torch;print(torch.__version__, torch.cuda.get_device_name())"
echo "== core tests (the gpu-marked ones on CUDA) =="
timeout 240 python3 -m pytest tests/core -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest_core.log" | tail -8
echo "== bench cuda =="
timeout 200 python3 -m core.bench --device cuda --tokens 64 1024 2048 4096 --repeats 9 --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.log"
echo "== export and memory guard on cuda =="
timeout 100 python3 - <<'PY' 2>&1 | tee "$OUT/export_cuda.log"
import sys, time
from core.cli import run_export
def text(n): return " ".join(f"t{i}" for i in range(n))
gpt2 = ["--d-in", "768", "--d-out", "768", "--heads", "12", "--device", "cuda"]
for fmt in ("npy", "csv"):
    t0 = time.perf_counter()
    code = run_export(["--out", f"/tmp/ex_{fmt}", "--format", fmt, "--text", text(1024), *gpt2])
    print(f"export {fmt} 1024 tokens: exit {code} in {time.perf_counter() - t0:.1f} s")
code = run_export(["--out", "/tmp/ex_huge", "--text", text(60000), *gpt2])
print("60000 tokens on cuda: exit", code)
PY
ls /tmp/ex_huge 2>&1 | head -2
echo "== cost of attention on cuda (trace and fused SDPA, time and peak memory as tokens grow) =="
timeout 240 python3 -m core.cost --device cuda --tokens 64 256 1024 4096 --repeats 3 2>&1 | tee "$OUT/cost_cuda.log"
echo "== the visible stage first on cuda (what the window computes before its first paint) =="
timeout 200 python3 - <<'PY' 2>&1 | tee "$OUT/visible_first_cuda.log"
import time, torch
from core.config import AttentionConfig
from core.trace import build_trace, build_trace_in_steps
for n in (1024, 4096):
    cfg = AttentionConfig(embeddings="random", text=" ".join(f"t{i}" for i in range(n)), d_in=768, d_out=768,
                          num_heads=12, init="linear", seed=123, device="cuda")
    build_trace(cfg)                                          # warm-up (weights cached on the device)
    t0 = time.perf_counter()
    steps = build_trace_in_steps(cfg, first="multihead")
    first = next(steps)
    t1 = time.perf_counter()
    full = next(steps)
    t2 = time.perf_counter()
    on_device = all(i.tensor.device.type == "cuda" for i in full)   # nothing copied to the host by the trace
    ref = build_trace(cfg)
    same = all(torch.equal(i.tensor, ref[i.key].tensor) for i in full)
    print(f"{n} tokens: visible stage {1000 * (t1 - t0):.1f} ms, every stage {1000 * (t2 - t0):.1f} ms, "
          f"stages first {list(first.stages)}, all on cuda {on_device}, equal to build_trace {same}")
PY
