"""The HBM counting model (core/flash_io.py): standard attention's 4N² + 4Nd, the tiled kernel's
counts against a tile-by-tile simulation written here, the paper's Θ(N²d²/M) scaling, the CLI."""
import math
from functools import partial

import pytest

from core.flash_io import IO, flash_io, main, paper_blocks, rows, sram_elements, standard_io

from tests.core.cli_runner import assert_refused, run_module


def simulate(N, d, Br, Bc, causal, fa2):
    """Walk the kernel's loops tile by tile; count every element loaded from or stored to HBM.
    A tile is skipped when every (query, key) in it has key > query (checked cell by cell)."""
    qb = [(s, min(s + Br, N)) for s in range(0, N, Br)]
    kb = [(s, min(s + Bc, N)) for s in range(0, N, Bc)]

    def hidden(q, k):
        return causal and all(kk > qq for qq in range(*q) for kk in range(*k))

    reads = writes = 0
    if fa2:
        for q in qb:
            n = q[1] - q[0]
            reads += n * d                                   # Q_i
            for k in kb:
                if hidden(q, k):
                    continue
                reads += 2 * (k[1] - k[0]) * d               # K_j, V_j
            writes += n * d + n                              # O_i, L_i
        return IO(reads, writes)
    writes += N * d + 2 * N                                  # O, l, m initialised
    for k in kb:
        reads += 2 * (k[1] - k[0]) * d
        for q in qb:
            if hidden(q, k):
                continue
            n = q[1] - q[0]
            reads += 2 * n * d + 2 * n                       # Q_i, O_i, l_i, m_i
            writes += n * d + 2 * n                          # O_i, l_i, m_i
    return IO(reads, writes)


def test_standard_attention_moves_4n2_plus_4nd_elements():
    for N, d in [(1, 1), (6, 2), (1024, 64), (4096, 128)]:
        io = standard_io(N, d)
        assert io.reads == 3 * N * d + 2 * N * N and io.writes == 2 * N * N + N * d
        assert io.total == 4 * N * N + 4 * N * d


@pytest.mark.parametrize("fa2", [False, True], ids=["fa1", "fa2"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("N, d, Br, Bc", [(1, 4, 1, 1), (7, 2, 2, 3), (16, 8, 4, 4), (33, 4, 5, 7), (40, 16, 64, 3),
                                          (50, 8, 9, 50), (64, 4, 1, 2)])
def test_the_tiled_counts_equal_a_tile_by_tile_simulation(N, d, Br, Bc, causal, fa2):
    assert flash_io(N, d, Br, Bc, causal, fa2) == simulate(N, d, Br, Bc, causal, fa2)


def test_the_non_causal_closed_forms_of_the_docstring():
    for N, d, Br, Bc in [(100, 8, 7, 9), (1024, 64, 64, 384), (4096, 128, 32, 96)]:
        Tc, Tr = math.ceil(N / Bc), math.ceil(N / Br)
        fa1 = flash_io(N, d, Br, Bc)
        assert fa1.reads == 2 * N * d + Tc * (2 * N * d + 2 * N)
        assert fa1.writes == N * d + 2 * N + Tc * (N * d + 2 * N)
        fa2 = flash_io(N, d, Br, Bc, fa2=True)
        assert fa2.reads == N * d + Tr * 2 * N * d and fa2.writes == N * d + N


def test_the_papers_block_sizes_and_scaling():
    assert paper_blocks(64, 98_304) == (64, 384)
    assert paper_blocks(128, 100) == (1, 1)
    assert paper_blocks(64, 98_304, fa2=True) == (384, 64)
    d, M = 64, 98_304
    Br, Bc = paper_blocks(d, M)
    # Θ(N²d²/M): doubling N (large) multiplies the traffic by 4; halving M doubles it
    big = flash_io(65_536, d, Br, Bc).total
    assert flash_io(131_072, d, Br, Bc).total / big == pytest.approx(4, rel=0.02)
    Br2, Bc2 = paper_blocks(d, M // 2)
    assert flash_io(65_536, d, Br2, Bc2).total / big == pytest.approx(2, rel=0.02)
    # N²d²/M with this loop's constant: per key block 3Nd + 4N elements (Q, O read, O written;
    # l, m read and written), N/Bc blocks, Bc = M/4d: 12·(1 + 4/3d)·N²d²/M
    assert big / (65_536 ** 2 * d * d / M) == pytest.approx(12 * (1 + 4 / (3 * d)), rel=0.02)
    # causal skips about half the tiles
    assert flash_io(65_536, d, Br, Bc, causal=True).total / big == pytest.approx(0.5, rel=0.02)
    # the four blocks fit in M; the tile S adds Br·Bc
    assert 2 * Br * d + 2 * Bc * d <= M + 4 * d and sram_elements(d, Br, Bc) == 2 * Br * d + 2 * Bc * d + Br * Bc + 2 * Br


def test_standard_exceeds_tiled_by_a_constant_ratio_in_t():
    r = rows([1024, 4096, 16384], 64, 98_304, 2)
    assert all(x["standard_total"] > x["tiled_total"] for x in r)
    assert r[-1]["ratio"] == pytest.approx(4 * 384 / (3 * 64), rel=0.05)     # ≈ 4N² / (3N²d/Bc)
    assert r[0]["standard_bytes"] == r[0]["standard_total"] * 2
    fa2 = rows([16384], 64, 98_304, 2, fa2=True)[0]
    assert (fa2["Br"], fa2["Bc"]) == (384, 64) and fa2["tiled_total"] < r[-1]["tiled_total"]   # 2N²d/Br < 3N²d/Bc


run_cli = partial(run_module, "core.flash_io")


def test_the_cli_prints_the_table_and_csv(capsys):
    assert main(["--d", "64", "--tokens", "256,1024"]) == 0
    out = capsys.readouterr().out
    assert "Br = 64, Bc = 384" in out and "1,048,576 elements" not in out
    std = standard_io(1024, 64).total
    assert f"{std:,}" in out
    assert main(["--format", "csv", "--tokens", "100", "--block-rows", "7", "--block-cols", "9", "--causal", "--fa2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("T,Br,Bc,standard_reads")
    values = dict(zip(lines[0].split(","), lines[1].split(",")))
    assert int(values["tiled_total"]) == flash_io(100, 64, 7, 9, True, True).total
    assert int(values["standard_total"]) == standard_io(100, 64).total


@pytest.mark.parametrize("args, says", [
    (["--d", "0"], "--d: must be between 1"), (["--tokens", "0"], "--tokens: must be between 1"),
    (["--tokens", "1,x"], "is not a comma-separated list"), (["--block-rows", "0"], "--block-rows: must be between 1"),
    (["--format", "xml"], "invalid choice"), (["--bytes", "x"], "'x' is not a whole number"),
])
def test_bad_options_exit_2_with_one_line(args, says):
    assert_refused(run_cli(*args), says)
