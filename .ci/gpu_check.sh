# The CUDA checks of core/, for a GPU machine with torch but no PySide6 (see README, Performance).
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
nvidia-smi -L; python3 -V; python3 -c "import torch;print(torch.__version__, torch.cuda.get_device_name())"
echo "== core tests (the gpu-marked ones on CUDA) =="
timeout 240 python3 -m pytest tests/core -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest_core.log" | tail -8
echo "== bench cuda =="
timeout 200 python3 -m core.bench --device cuda --tokens 64 1024 2048 4096 8192 --repeats 9 --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.log"
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
