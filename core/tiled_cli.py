"""``python main.py export --stage tiled|rope [options] --out DIR``.

tiled: one head's attention walked tile by tile (FlashAttention; --fa2 for FlashAttention-2),
one folder per visited tile (tiled_step000 …) plus tiled_inputs/ and tiled_result/;
rope: one head's q and k rotated by position, one folder rope/ (the pairs one CSV per position).
Written with core.export (one CSV per 2-D slice with labels, manifest.json; or npy/npz), hence
core.safe_folder's atomic replace. Bad options exit 2 with one line on stderr; nothing is written.
"""
from __future__ import annotations

import argparse

from core import cli_common
from core.cli import PROG, _float_arg, _int_arg, _OneLineParser
from core.cli_common import add_out_options, add_prompt_options, add_run_options, prompt_fields, run_stage_export
from core.tiled_config import FORMS, MAX_BLOCK, RopeConfig, TiledConfig

STAGES = ("tiled", "rope")
_OPTION_OF_FIELD = {"num_heads": "--heads", "d_in": "--d-in", "d_out": "--d-out", "qkv_bias": "--qkv-bias",
                    "block_rows": "--block-rows", "block_cols": "--block-cols"}


def wanted_stage(argv: list[str]) -> str | None:
    """``tiled`` or ``rope`` when an export command line asks for one of them (--stage X)."""
    return cli_common.wanted_stage(argv, STAGES)


def parser(stage: str) -> argparse.ArgumentParser:
    what = ("Walk one head's attention tile by tile as FlashAttention does (online softmax: running max m, "
            "running sum l, rescale exp(m_old − m_new)) and write every tile's intermediates"
            if stage == "tiled" else
            "Rotate one head's queries and keys by position (RoPE) and write the pairs before and after, the "
            "scores with and without RoPE, the shifted-positions check and the split vs interleaved check")
    p = _OneLineParser(prog=f"{PROG} export --stage {stage}", description=what + ": one CSV per 2-D slice plus manifest.json.")
    p.add_argument("--stage", required=True, choices=(stage,))
    add_out_options(p)
    if stage == "tiled":
        p.add_argument("--block-rows", type=_int_arg, default=2, metavar="Br",
                       help=f"queries per tile, 1..{MAX_BLOCK}, need not divide T (default: 2)")
        p.add_argument("--block-cols", type=_int_arg, default=2, metavar="Bc",
                       help=f"keys per tile, 1..{MAX_BLOCK}, need not divide T (default: 2)")
        p.add_argument("--causal", action=argparse.BooleanOptionalAction, default=True,
                       help="skip the tiles wholly above the diagonal, mask the ones it crosses (default: on)")
        p.add_argument("--fa2", action="store_true",
                       help="FlashAttention-2: query blocks outermost, unscaled accumulator divided by l at the end")
    else:
        p.add_argument("--base", type=_float_arg, default=10_000.0, metavar="B",
                       help="θ_i = base^(−2i/d) (default: 10000; Llama 3 uses 500000, Qwen3 1000000)")
        p.add_argument("--form", default="split", metavar="|".join(FORMS),
                       help="split: pairs (i, i + d/2), the book's rotate_half (default); interleaved: pairs (2i, 2i + 1)")
        p.add_argument("--shift", type=_int_arg, default=3, metavar="S",
                       help="the relative-position check moves every position by S (default: 3)")
    g = p.add_argument_group("the prompt and the head (defaults: the book's sentence)")
    add_prompt_options(g, d_out=16, heads=2, heads_help="heads; must divide --d-out")
    g.add_argument("--head", type=_int_arg, default=0, metavar="H", help="the head to use, from 0 (default: 0)")
    add_run_options(g, seed_help="torch.manual_seed before the weights (default: 123)")
    return p


def config_from_args(stage: str, args):
    """The TiledConfig or RopeConfig of the options (raises ConfigError naming the field)."""
    common = dict(**prompt_fields(args), d_out=args.d_out, num_heads=args.heads, head=args.head, seed=args.seed,
                  qkv_bias=args.qkv_bias, device=args.device, dtype=args.dtype)
    if stage == "tiled":
        return TiledConfig(block_rows=args.block_rows, block_cols=args.block_cols, causal=args.causal, fa2=args.fa2,
                           **common)
    return RopeConfig(base=args.base, form=args.form, shift=args.shift, **common)


def _build(cfg):
    if isinstance(cfg, TiledConfig):          # torch: after the options are checked
        from core.tiled import build_tiled
        return build_tiled(cfg)
    from core.rope import build_rope
    return build_rope(cfg)


def run(argv: list[str]) -> int:
    stage = wanted_stage(argv)
    _, cfg, trace, shown = run_stage_export(parser(stage), argv, lambda args: config_from_args(stage, args), _build,
                                            _OPTION_OF_FIELD, "the tokens or --d-out")
    n = sum(1 for _ in trace)
    if stage == "tiled":
        tiles = trace["tiled_result", "tiles"].tensor
        visited = int(tiles[:, 6].sum())
        print(f"wrote {n} intermediates to {shown}: {visited} tiles visited, {len(tiles) - visited} skipped "
              f"({'FlashAttention-2' if cfg.fa2 else 'FlashAttention'}, Br = {cfg.block_rows}, Bc = {cfg.block_cols}); "
              f"tiled vs ordinary attention: max |diff| {float(trace['tiled_result', 'check'].tensor):.3g} "
              f"({trace.device}, {trace.compute_ms:.1f} ms)")
    else:
        print(f"wrote {n} intermediates to {shown}: {cfg.form} form, base {cfg.base:g}; shifted by {cfg.shift}: "
              f"max |diff| {float(trace['rope', 'shift_check'].tensor):.3g}; split vs interleaved up to the "
              f"permutation: max |diff| {float(trace['rope', 'form_check'].tensor):.3g} ({trace.device}, "
              f"{trace.compute_ms:.1f} ms)")
    return 0
