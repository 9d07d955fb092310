"""``python main.py export --stage decode --variant mha|gqa|mqa|mla|swa --new-tokens N --out DIR``.

Writes every intermediate of the prefill and of each generated position with core.export (one
CSV per 2-D slice with row/column labels, manifest.json; or npy/npz), one folder per position:
decode_weights/, decode_prefill/, decode_pos06/ …, decode_summary/. Bad options and bad
combinations (heads not divisible by --kv-groups, --window < 1, --latent > --d-out, --new-tokens
< 1 or over the limit) exit 2 with one line on stderr; nothing is written.
"""
from __future__ import annotations

import argparse

from core import cli_common
from core.cli import PROG, _int_arg, _OneLineParser
from core.cli_common import add_out_options, add_prompt_options, add_run_options, prompt_fields, run_stage_export
from core.decode_config import MAX_NEW_TOKENS, VARIANTS

_OPTION_OF_FIELD = {"num_kv_groups": "--kv-groups", "latent_dim": "--latent", "sliding_window_size": "--window",
                    "new_tokens": "--new-tokens", "next_text": "--next", "num_heads": "--heads", "d_in": "--d-in",
                    "d_out": "--d-out", "qkv_bias": "--qkv-bias"}


def wants_decode(argv: list[str]) -> bool:
    """Whether an export command line asks for the decode stage (--stage decode)."""
    return cli_common.wanted_stage(argv, ("decode",)) is not None


def parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog=f"{PROG} export --stage decode",
        description="Prefill a prompt, then append tokens one at a time with a KV cache (multi-head, "
                    "grouped-query, multi-query, latent or sliding-window attention) and write every "
                    "intermediate of every generated position: one CSV per 2-D slice plus manifest.json.",
    )
    p.add_argument("--stage", required=True, choices=("decode",), help="decode: generation with a KV cache")
    add_out_options(p)
    p.add_argument("--variant", default="mha", metavar="|".join(VARIANTS),
                   help="mha (default, the chapter's), gqa, mqa, mla or swa")
    p.add_argument("--kv-groups", type=_int_arg, default=None, metavar="N",
                   help="gqa/swa: K/V heads, must divide --heads (default: gqa heads/2, swa heads)")
    p.add_argument("--latent", type=_int_arg, default=None, metavar="N",
                   help="mla: latent_dim, what is cached per token, 1..d_out (default: d_out/2)")
    p.add_argument("--window", type=_int_arg, default=None, metavar="W",
                   help="swa: sliding_window_size, at least 1 (default: 4)")
    p.add_argument("--new-tokens", type=_int_arg, default=None, metavar="N",
                   help=f"tokens appended one at a time, 1..{MAX_NEW_TOKENS} (default: 3, or the words of --next)")
    p.add_argument("--next", default="", metavar="TEXT",
                   help="the words to append (default: gen1, gen2, … with seeded random embeddings)")
    g = p.add_argument_group("the prompt and the layer (defaults: the book's sentence)")
    add_prompt_options(g, d_out=8, heads=4, heads_help="query heads; must divide --d-out")
    add_run_options(g, seed_help="torch.manual_seed before the weights; seeds the new embeddings (default: 123)")
    return p


def config_from_args(args):
    """The DecodeConfig of the options (raises ConfigError naming the field)."""
    from core.decode_config import DecodeConfig
    from core.tokens import tokenize

    new_tokens = args.new_tokens
    if new_tokens is None:
        new_tokens = len(tokenize(args.next)) if args.next.strip() else 3
    return DecodeConfig(variant=args.variant, **prompt_fields(args), d_out=args.d_out, num_heads=args.heads,
                        num_kv_groups=args.kv_groups, latent_dim=args.latent, sliding_window_size=args.window, new_tokens=new_tokens, next_text=args.next,
                        seed=args.seed, qkv_bias=args.qkv_bias, device=args.device, dtype=args.dtype)


def _build(cfg):
    from core.decode import build_decode        # torch: after the options are checked
    return build_decode(cfg)


def run(argv: list[str]) -> int:
    _, cfg, trace, shown = run_stage_export(parser(), argv, config_from_args, _build, _OPTION_OF_FIELD,
                                            "--new-tokens or --d-out")
    worst = float(trace["decode_summary", "max_abs_diff"].tensor.max())
    print(f"wrote {sum(1 for _ in trace)} intermediates of {cfg.variant}: prefill of {trace.prompt_tokens} tokens, "
          f"{len(trace.positions)} new ({len(trace.stages)} folders) to {shown}; cached vs recomputed: max |diff| "
          f"{worst:.3g} ({trace.device}, {trace.compute_ms:.1f} ms)")
    return 0
