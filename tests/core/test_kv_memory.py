"""The KV-cache memory meter against the book's published figures (ch04/04_gqa and 05_mla READMEs,
memory_estimator_swa.py's layer split), its formula against a count of the decode stage's own
cache, and the command line (text, CSV, sweep, one-line errors)."""
from functools import partial

import pytest

from core import kv_memory as meter
from core.kv_memory import MeterError, ModelSize, format_gb, table, total_bytes

from tests.core.cli_runner import assert_refused, run_module

run = partial(run_module, "core.kv_memory")


def test_the_books_reference_configuration_mha_17_18_gb_gqa_4_29_gb():
    """emb 4096, 32 heads, 32 layers, 32k context, bf16, batch 1; GQA with 8 K/V heads (the README's
    ``--n_kv_groups 4`` in its estimator's group-size sense: 32 // 4 = 8 K/V heads)."""
    size = ModelSize()
    assert (size.emb_dim, size.num_heads, size.num_layers, size.context_length, size.dtype, size.batch) == \
        (4096, 32, 32, 32768, "bf16", 1)
    mha, gqa = total_bytes(size, "mha"), total_bytes(size, "gqa")
    assert mha == 1 * 32768 * 32 * 2 * 32 * 128 * 2 == 17_179_869_184
    assert gqa == mha // 4
    assert format_gb(mha) == "17.18 GB" and format_gb(gqa) == "4.29 GB"


def test_the_mla_readme_example():
    """ch04/05_mla/README.md: emb 2048, 24 heads (head_dim ceil(2048/24) = 86), 48 layers, 8192
    context, bf16, 6 K/V heads, latent 1024: 3.25 / 0.81 / 0.81 GB, MHA/MLA 4.03x."""
    size = ModelSize(emb_dim=2048, num_heads=24, num_layers=48, context_length=8192, num_kv_groups=6, latent_dim=1024)
    assert size.dim == 86
    rows = {r.variant: r for r in table(size)}
    assert [format_gb(rows[v].total_bytes) for v in ("mha", "gqa", "mla")] == ["3.25 GB", "0.81 GB", "0.81 GB"]
    assert f"{rows['mha'].total_bytes / rows['mla'].total_bytes:.2f}" == "4.03"


def test_swa_keeps_the_window_in_its_layers_and_the_books_layer_split():
    size = ModelSize(sliding_window_size=4096, swa_ratio=(5, 1))            # Gemma 3's 5:1
    assert size.layers_split() == (27, 5)                                    # 32 = 5 blocks of 6, then 2 windowed
    per = 2 * 32 * 128 * 2
    assert total_bytes(size, "swa") == per * (27 * 4096 + 5 * 32768)
    assert total_bytes(size, "swa+gqa") == total_bytes(size, "swa") // 4
    short = ModelSize(context_length=512, sliding_window_size=1024)          # a window wider than the context
    assert total_bytes(short, "swa") == total_bytes(short, "mha")


def test_mqa_and_per_token_bytes():
    rows = {r.variant: r for r in table(ModelSize())}
    assert rows["mha"].bytes_per_token == 2 * 32 * 128 * 2 * 32 == 524_288   # half a MiB per token
    assert rows["mqa"].total_bytes * 32 == rows["mha"].total_bytes
    assert rows["mla"].elems_per_token == 512                                # max(16, 4096 // 8): one latent, no factor 2


def test_the_formula_counts_what_the_decode_stage_caches():
    """The meter's elements per token and layer equal the decode stage's cache after one more token."""
    from core.decode import build_decode
    from core.decode_config import DecodeConfig

    for variant, options, name in [("mha", {}, "cache_k"), ("gqa", {"num_kv_groups": 2}, "cache_k"),
                                   ("mqa", {}, "cache_k"), ("mla", {"latent_dim": 3}, "cache_c_kv")]:
        cfg = DecodeConfig(variant=variant, device="cpu", **options)
        trace = build_decode(cfg)
        before, after = trace.step(6)[name], trace.step(7)[name]
        grown = after.tensor.numel() - before.tensor.numel()
        if name == "cache_k":
            grown *= 2                                                       # cache_v grows as much
        size = ModelSize(emb_dim=cfg.d_out, num_heads=cfg.num_heads, num_kv_groups=cfg.kv_groups,
                         latent_dim=cfg.latent)
        assert meter.elems_per_token(size, variant) == grown, variant


def test_text_table_prints_every_variant():
    res = run()
    assert res.returncode == 0 and res.stderr == ""
    lines = res.stdout.splitlines()
    assert [line.split()[0] for line in lines[3:]] == list(meter.VARIANTS)
    assert "17.18 GB" in lines[3] and "4.29 GB" in lines[4] and "4.00x" in lines[4]


def test_csv_and_sweep():
    res = run("--format", "csv", "--context-length", "8192", "--emb-dim", "2048", "--heads", "24", "--layers", "48",
              "--kv-groups", "6", "--latent", "1024")
    assert res.returncode == 0
    rows = {line.split(",")[0]: line for line in res.stdout.splitlines()[1:]}
    assert rows["mha"].endswith(",3246391296,3.25") and rows["mla"].endswith(",805306368,0.81")
    sweep = run("--sweep", "--context-length", "4096").stdout.splitlines()
    assert sweep[0].startswith("context_length,mha_bytes") and [s.split(",")[0] for s in sweep[1:]] == \
        ["512", "1024", "2048", "4096"]
    assert int(sweep[-1].split(",")[1]) == total_bytes(ModelSize(context_length=4096), "mha")


@pytest.mark.parametrize("args, says", [
    (["--kv-groups", "5"], "--kv-groups: --heads (32) must be divisible by --kv-groups (5)"),
    (["--kv-groups", "64"], "--kv-groups:"),
    (["--window", "0"], "--window: must be between 1"),
    (["--latent", "5000"], "--latent: must be at most --emb-dim (4096)"),
    (["--dtype", "bf8"], "--dtype: must be one of"),
    (["--swa-ratio", "0:0"], "--swa-ratio:"),
    (["--swa-ratio", "five"], "'five' is not a:b"),
    (["--context-length", "-1"], "--context-length: must be between 1"),
    (["--layers", "10000000000000"], "--layers: must be between 1"),
])
def test_bad_sizes_exit_2_with_one_line(args, says):
    assert_refused(run(*args), says)


def test_model_size_refuses_in_code_too():
    with pytest.raises(MeterError) as err:
        ModelSize(num_heads=32, num_kv_groups=3)
    assert err.value.option == "--kv-groups"
