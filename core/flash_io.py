"""How many elements standard attention and the tiled kernel move to and from HBM (global memory).

A concrete counting model of Dao et al. (2022), section 3.2 (Theorem 2): one head, N = T tokens,
head dimension d, on-chip SRAM of M elements. Each count is the number of elements the given
loop structure reads from or writes to HBM; on-chip work (the tile's S, P, the running m, l)
costs nothing. Multiply by the element size for bytes.

Standard attention (the paper's Algorithm 0; the chapter's code, with the mask fused into the
softmax pass):
  1. read Q and K (2Nd), write S = QKᵀ (N²);
  2. read S (N²), write P = softmax(S) (N²);
  3. read P and V (N² + Nd), write O (Nd).
  reads 3Nd + 2N², writes 2N² + Nd: 4N² + 4Nd elements, Θ(Nd + N²).

FlashAttention (Algorithm 1; Bc = ⌈M / 4d⌉, Br = min(⌈M / 4d⌉, d) unless given):
  initialise O, l, m in HBM: write Nd + 2N;
  for each key block j: read K_j, V_j (2·Bc·d);
    for each query block i (causal: not wholly above the diagonal):
      read Q_i, O_i, l_i, m_i (2·Br·d + 2·Br), write O_i, l_i, m_i (Br·d + 2·Br).
  Non-causal: reads 2Nd + T_c(2Nd + 2N), writes Nd + 2N + T_c(Nd + 2N) with T_c = ⌈N / Bc⌉:
  Θ(N²d / Bc) = Θ(N²d² / M) elements.

FlashAttention-2 (its Algorithm 1: query blocks outermost, O and the statistics stay on chip;
default blocks swapped: Br = ⌈M / 4d⌉, Bc = min(⌈M / 4d⌉, d)):
  for each query block i: read Q_i (Br·d);
    for each key block j (causal: not wholly above the diagonal): read K_j, V_j (2·Bc·d);
    write O_i (Br·d) and L_i = m_i + log l_i (Br).
  Non-causal: reads Nd + T_r·2Nd, writes Nd + N with T_r = ⌈N / Br⌉.

The last block of a size that does not divide N is shorter and is counted as such. ``sram`` is
the largest number of elements one tile holds on chip (Q_i, K_j, V_j, O_i, the Br × Bc tile S/P
and the row statistics); the paper's block sizes keep the four blocks within M.

    python -m core.flash_io [--d 64] [--sram-kib 192] [--bytes 2] [--tokens 256,1024,4096]
                            [--block-rows Br --block-cols Bc] [--causal] [--fa2] [--format text|csv]
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

from core.cli import _int_arg, _OneLineParser

MAX_TOKENS = 10_000_000
MAX_D = 4096


@dataclass(frozen=True)
class IO:
    """Elements read from and written to HBM."""

    reads: int
    writes: int

    @property
    def total(self) -> int:
        return self.reads + self.writes


def paper_blocks(d: int, sram: int, fa2: bool = False) -> tuple[int, int]:
    """Algorithm 1's block sizes (Br, Bc) for head dimension d and M = ``sram`` elements.
    FlashAttention-2 (``fa2``): the roles swap, the outer (query) block is the big one, since
    its traffic is Θ(N²d / Br): Br = ⌈M/4d⌉, Bc = min(⌈M/4d⌉, d)."""
    big = max(1, math.ceil(sram / (4 * d)))
    return (big, min(big, d)) if fa2 else (min(big, d), big)


def _sizes(N: int, B: int) -> list[int]:
    return [min(B, N - s) for s in range(0, N, B)]


def standard_io(N: int, d: int) -> IO:
    """Algorithm 0: S and P written to and read back from HBM."""
    return IO(reads=2 * N * d + N * N + N * N + N * d, writes=N * N + N * N + N * d)


def flash_io(N: int, d: int, Br: int, Bc: int, causal: bool = False, fa2: bool = False) -> IO:
    """The tiled kernel's HBM traffic for blocks Br × Bc (see the module's docstring)."""
    reads = writes = 0
    if fa2:
        for q0 in range(0, N, Br):
            br = min(Br, N - q0)
            # causal: key blocks with first key ≤ the block's last query, i.e. j ≤ (q0 + br − 1) // Bc
            keys = N if not causal else min(N, ((q0 + br - 1) // Bc + 1) * Bc)
            reads += br * d + 2 * keys * d
            writes += br * d + br
        return IO(reads, writes)
    writes += N * d + 2 * N                                      # O, l, m initialised in HBM
    for k0 in range(0, N, Bc):
        bc = min(Bc, N - k0)
        reads += 2 * bc * d
        # causal: query blocks whose last query ≥ k0, i.e. from the block holding k0 on
        rows = N if not causal else N - (k0 // Br) * Br
        reads += rows * (2 * d + 2)
        writes += rows * (d + 2)
    return IO(reads, writes)


def sram_elements(d: int, Br: int, Bc: int) -> int:
    """The largest number of elements one tile keeps on chip: Q_i, O_i, K_j, V_j, S/P, m, l."""
    return 2 * Br * d + 2 * Bc * d + Br * Bc + 2 * Br


ROW_FIELDS = ("T", "Br", "Bc", "standard_reads", "standard_writes", "standard_total", "tiled_reads", "tiled_writes",
              "tiled_total", "ratio", "standard_bytes", "tiled_bytes", "sram_elements")


def rows(tokens: list[int], d: int, sram: int, item_bytes: int, Br: int | None = None, Bc: int | None = None,
         causal: bool = False, fa2: bool = False) -> list[dict]:
    """One row per T: both methods' counts and bytes."""
    pr, pc = paper_blocks(d, sram, fa2)
    br, bc = Br or pr, Bc or pc
    out = []
    for N in tokens:
        s, f = standard_io(N, d), flash_io(N, d, br, bc, causal, fa2)
        out.append({"T": N, "Br": br, "Bc": bc, "standard_reads": s.reads, "standard_writes": s.writes,
                    "standard_total": s.total, "tiled_reads": f.reads, "tiled_writes": f.writes,
                    "tiled_total": f.total, "ratio": s.total / f.total, "standard_bytes": s.total * item_bytes,
                    "tiled_bytes": f.total * item_bytes, "sram_elements": sram_elements(d, br, bc)})
    return out


def _mb(n: int) -> str:
    return f"{n / 1e6:,.2f} MB"


def table(rs: list[dict]) -> str:
    head = f"{'T':>7} {'Br':>4} {'Bc':>5} {'standard elements':>18} {'tiled elements':>16} {'standard':>13} {'tiled':>12} {'ratio':>7}"
    lines = [head]
    for r in rs:
        lines.append(f"{r['T']:>7} {r['Br']:>4} {r['Bc']:>5} {r['standard_total']:>18,} {r['tiled_total']:>16,} "
                     f"{_mb(r['standard_bytes']):>13} {_mb(r['tiled_bytes']):>12} {r['ratio']:>6.2f}x")
    return "\n".join(lines)


def _tokens(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values:
        raise argparse.ArgumentTypeError("is empty; give e.g. 256,1024,4096")
    return values


def main(argv: list[str] | None = None) -> int:
    p = _OneLineParser(prog="python -m core.flash_io",
                description="Elements and bytes moved to and from HBM by standard attention (S and P "
                            "materialised) and by the tiled FlashAttention kernel, for one head, against T.")
    p.add_argument("--d", type=_int_arg, default=64, metavar="N", help="head dimension (default: 64)")
    p.add_argument("--sram-kib", type=_int_arg, default=192, metavar="KIB",
                   help="on-chip SRAM per streaming multiprocessor in KiB (default: 192, an A100); "
                        "M = KiB·1024 / --bytes elements")
    p.add_argument("--bytes", type=_int_arg, default=2, metavar="N", help="bytes per element (default: 2, fp16/bf16)")
    p.add_argument("--tokens", type=_tokens, default=[256, 512, 1024, 2048, 4096, 8192, 16384], metavar="T,T,…",
                   help="sequence lengths (default: 256 … 16384)")
    p.add_argument("--block-rows", type=_int_arg, default=None, metavar="Br", help="query block (default: min(⌈M/4d⌉, d); --fa2: ⌈M/4d⌉)")
    p.add_argument("--block-cols", type=_int_arg, default=None, metavar="Bc", help="key block (default: ⌈M/4d⌉; --fa2: min(⌈M/4d⌉, d))")
    p.add_argument("--causal", action="store_true", help="skip the tiles wholly above the diagonal")
    p.add_argument("--fa2", action="store_true", help="FlashAttention-2's loop order (query blocks outermost)")
    p.add_argument("--format", default="text", choices=("text", "csv"), help="text (default) or csv")
    a = p.parse_args(argv)
    checks = [("--d", a.d, 1, MAX_D), ("--sram-kib", a.sram_kib, 1, 1 << 20), ("--bytes", a.bytes, 1, 16)]
    checks += [("--tokens", t, 1, MAX_TOKENS) for t in a.tokens]
    checks += [(o, v, 1, MAX_TOKENS) for o, v in (("--block-rows", a.block_rows), ("--block-cols", a.block_cols))
               if v is not None]
    for option, value, low, high in checks:
        if not low <= value <= high:
            p.exit(2, f"{p.prog}: error: {option}: must be between {low} and {high:,}, got {value}\n")
    sram = a.sram_kib * 1024 // a.bytes
    if sram < 1:
        p.exit(2, f"{p.prog}: error: --sram-kib: {a.sram_kib} KiB holds no element of {a.bytes} bytes\n")
    rs = rows(a.tokens, a.d, sram, a.bytes, a.block_rows, a.block_cols, a.causal, a.fa2)
    if a.format == "csv":
        print(",".join(ROW_FIELDS))
        for r in rs:
            print(",".join(f"{r[k]:.6g}" if k == "ratio" else str(r[k]) for k in ROW_FIELDS))
    else:
        br, bc = rs[0]["Br"], rs[0]["Bc"]
        print(f"one head, d = {a.d}, M = {sram:,} elements ({a.sram_kib} KiB of {a.bytes}-byte elements), "
              f"Br = {br}, Bc = {bc}, {'causal, ' if a.causal else ''}"
              f"{'FlashAttention-2' if a.fa2 else 'FlashAttention (Algorithm 1)'}")
        print(table(rs))
        print("standard: 4T² + 4Td elements (S and P written and read back), Θ(Td + T²); "
              "tiled: Θ(T²d²/M), no T × T matrix in HBM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
