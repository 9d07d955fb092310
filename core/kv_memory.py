"""The KV-cache memory meter: bytes per token and in total, every attention variant side by side.

The book's formula (ch04/04_gqa/README.md, memory_estimator_gqa.py):

    bytes = batch × context_length × head_dim × n_kv_heads × 2 (K and V) × bytes_per_elem × n_layers

with head_dim = ceil(emb_dim / num_heads), as the book's estimators compute it. Per variant:
mha caches num_heads K/V heads; gqa num_kv_groups; mqa one; mla one latent of latent_dim per
token (no factor 2: K and V are both up-projected from it, memory_estimator_mla.py); swa keeps
only the last sliding_window_size tokens in its sliding-window layers (memory_estimator_swa.py,
``--swa-ratio a:b``: a window layers for every b full ones). Printed in GB = 10⁹ bytes.

num_kv_groups here is the number of K/V heads, as in GroupedQueryAttention(num_kv_groups=…) and
the decode stage. The book's estimator scripts take ``--n_kv_groups`` as the *group size* instead
(n_kv_heads = n_heads // n_kv_groups): their README's ``--n_kv_groups 4`` is 8 K/V heads here.

    python -m core.kv_memory                       the book's reference configuration, as text
    python -m core.kv_memory --format csv --context-length 8192 --kv-groups 4
    python -m core.kv_memory --sweep               total bytes against context length (CSV, for a plot)
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

from core.cli import _int_arg, _OneLineParser

DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "fp8": 1, "int8": 1}
VARIANTS = ("mha", "gqa", "mqa", "mla", "swa", "swa+gqa")
MAX_VALUE = 10**9            # no model size is larger; a typo's 10^30 is refused, not printed


class MeterError(ValueError):
    """An invalid model size; ``option`` names the option."""

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option, self.message = option, message


@dataclass(frozen=True)
class ModelSize:
    """A model's attention sizes. Defaults: the book's reference (a Llama-2-7B-like model, 32k context)."""

    emb_dim: int = 4096
    num_heads: int = 32
    num_layers: int = 32
    num_kv_groups: int = 8                # GQA's K/V heads (8 K/V heads, 4 query heads each)
    latent_dim: int | None = None         # MLA's latent per token; None: max(16, emb_dim // 8) (the book's default)
    sliding_window_size: int = 1024       # SWA's window (the book's gpt_with_kv_swa default)
    swa_ratio: tuple[int, int] = (1, 0)   # SWA : full layers (1:0 = every layer windowed; Gemma 3: 5:1)
    context_length: int = 32768
    batch: int = 1
    dtype: str = "bf16"
    head_dim: int | None = None           # None: ceil(emb_dim / num_heads)

    def __post_init__(self) -> None:
        for field, option, low in (("emb_dim", "--emb-dim", 1), ("num_heads", "--heads", 1),
                                   ("num_layers", "--layers", 1), ("num_kv_groups", "--kv-groups", 1),
                                   ("sliding_window_size", "--window", 1), ("context_length", "--context-length", 1),
                                   ("batch", "--batch", 1)):
            _check(getattr(self, field), option, low)
        if self.head_dim is not None:
            _check(self.head_dim, "--head-dim", 1)
        if self.latent_dim is not None:
            _check(self.latent_dim, "--latent", 1)
            if self.latent_dim > self.emb_dim:
                raise MeterError("--latent", f"must be at most --emb-dim ({self.emb_dim}): the latent compresses "
                                             f"K and V; got {self.latent_dim}")
        if self.num_kv_groups > self.num_heads or self.num_heads % self.num_kv_groups:
            divisors = ", ".join(str(d) for d in range(1, self.num_heads + 1) if self.num_heads % d == 0) \
                if self.num_heads <= 4096 else "divisors of --heads"
            raise MeterError("--kv-groups", f"--heads ({self.num_heads}) must be divisible by --kv-groups "
                                            f"({self.num_kv_groups}); try one of {{{divisors}}}")
        if self.dtype not in DTYPE_BYTES:
            raise MeterError("--dtype", f"must be one of {', '.join(DTYPE_BYTES)}; got {self.dtype!r}")
        a, b = self.swa_ratio
        if a < 0 or b < 0 or a + b == 0:
            raise MeterError("--swa-ratio", f"needs whole numbers a:b ≥ 0 with a + b > 0, got {a}:{b}")

    @property
    def dim(self) -> int:
        """head_dim: given, or ceil(emb_dim / num_heads) as the book's estimators compute it."""
        return self.head_dim if self.head_dim is not None else math.ceil(self.emb_dim / self.num_heads)

    @property
    def latent(self) -> int:
        return self.latent_dim if self.latent_dim is not None else max(16, self.emb_dim // 8)

    @property
    def bytes_per_elem(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def layers_split(self) -> tuple[int, int]:
        """(sliding-window layers, full layers) from swa_ratio, as memory_estimator_swa.py distributes them."""
        a, b = self.swa_ratio
        blocks, rem = divmod(self.num_layers, a + b)
        return blocks * a + min(a, rem), blocks * b + max(0, rem - a)


def _check(value, option: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MeterError(option, f"must be a whole number, got {value!r}")
    if not low <= value <= MAX_VALUE:
        raise MeterError(option, f"must be between {low} and {MAX_VALUE:,}, got {value}")


@dataclass(frozen=True)
class Row:
    variant: str
    cached: str                  # what one token adds per layer
    elems_per_token: int         # elements one token adds per layer (K and V together; MLA: the latent)
    bytes_per_token: int         # one token, every layer, the whole batch
    cached_tokens: int           # tokens held per layer at the context length (SWA layers: the window)
    total_bytes: int

    @property
    def gb(self) -> float:
        return self.total_bytes / 1e9


def elems_per_token(size: ModelSize, variant: str) -> int:
    """What one token adds to one layer's cache: 2 (K, V) × K/V heads × head_dim, or MLA's latent."""
    if variant == "mla":
        return size.latent
    kv_heads = {"mha": size.num_heads, "swa": size.num_heads, "mqa": 1}.get(variant, size.num_kv_groups)
    return 2 * kv_heads * size.dim


def total_bytes(size: ModelSize, variant: str, context_length: int | None = None) -> int:
    """The book's formula: batch × context × layers × elements per token × bytes per element
    (SWA layers hold min(context, window) tokens)."""
    context = size.context_length if context_length is None else context_length
    per_layer_token = size.batch * elems_per_token(size, variant) * size.bytes_per_elem
    if variant in ("swa", "swa+gqa"):
        swa_layers, full_layers = size.layers_split()
        return per_layer_token * (swa_layers * min(context, size.sliding_window_size) + full_layers * context)
    return per_layer_token * context * size.num_layers


def table(size: ModelSize) -> list[Row]:
    """One row per variant, at size.context_length."""
    hd = size.dim
    what = {"mha": f"K,V × {size.num_heads} heads × {hd}", "gqa": f"K,V × {size.num_kv_groups} heads × {hd}",
            "mqa": f"K,V × 1 head × {hd}", "mla": f"latent c_kv × {size.latent}",
            "swa": f"K,V × {size.num_heads} heads × {hd}, last {size.sliding_window_size}",
            "swa+gqa": f"K,V × {size.num_kv_groups} heads × {hd}, last {size.sliding_window_size}"}
    rows = []
    for v in VARIANTS:
        e = elems_per_token(size, v)
        held = min(size.context_length, size.sliding_window_size) if v.startswith("swa") and size.layers_split()[0] \
            else size.context_length
        rows.append(Row(v, what[v], e, size.batch * e * size.bytes_per_elem * size.num_layers, held,
                        total_bytes(size, v)))
    return rows


def series(size: ModelSize, contexts: list[int]) -> dict[str, list[int]]:
    """Total bytes per variant at each context length (the meter's plot)."""
    return {v: [total_bytes(size, v, c) for c in contexts] for v in VARIANTS}


def sweep_contexts(size: ModelSize) -> list[int]:
    """Powers of two from 512 up to the context length (and the context length itself)."""
    out, c = [], 512
    while c < size.context_length:
        out.append(c)
        c *= 2
    return out + [size.context_length]


def format_gb(n: int) -> str:
    """As the book prints it: GB = 10⁹ bytes, two decimals."""
    return f"{n / 1e9:,.2f} GB"


def format_text(size: ModelSize, rows: list[Row]) -> str:
    swa, full = size.layers_split()
    head = (f"KV cache at context {size.context_length:,}, batch {size.batch}, {size.dtype} "
            f"({size.bytes_per_elem} bytes/element), {size.num_layers} layers ({swa} windowed, {full} full for swa), "
            f"emb_dim {size.emb_dim}, {size.num_heads} heads × head_dim {size.dim}")
    cols = ("variant", "cached per token and layer", "elements", "bytes/token", "tokens held", "total", "vs mha")
    mha = rows[0].total_bytes
    body = [(r.variant, r.cached, f"{r.elems_per_token:,}", f"{r.bytes_per_token:,}", f"{r.cached_tokens:,}",
             format_gb(r.total_bytes), f"{mha / r.total_bytes:,.2f}x") for r in rows]
    widths = [max(len(x) for x in col) for col in zip(cols, *body)]
    lines = [head, ""] + ["  ".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(line, widths)))
                          for line in [cols] + body]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def format_csv(rows: list[Row]) -> str:
    out = ["variant,cached,elements_per_token_per_layer,bytes_per_token,tokens_held,total_bytes,total_gb"]
    out += [f'{r.variant},"{r.cached}",{r.elems_per_token},{r.bytes_per_token},{r.cached_tokens},{r.total_bytes},'
            f"{r.gb:.2f}" for r in rows]
    return "\n".join(out) + "\n"


def format_sweep(size: ModelSize) -> str:
    contexts = sweep_contexts(size)
    data = series(size, contexts)
    out = ["context_length," + ",".join(f"{v}_bytes" for v in VARIANTS)]
    out += [f"{c}," + ",".join(str(data[v][k]) for v in VARIANTS) for k, c in enumerate(contexts)]
    return "\n".join(out) + "\n"


# ---- the command line ----------------------------------------------------------------------

def _ratio(text: str) -> tuple[int, int]:
    parts = text.split(":")
    try:
        a, b = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a:b (e.g. 5:1)") from None
    return a, b


def parser() -> argparse.ArgumentParser:
    d = ModelSize()
    p = _OneLineParser(prog="python -m core.kv_memory",
                description="KV-cache bytes per token and in total for every attention variant "
                            "(defaults: the book's reference configuration).")
    p.add_argument("--emb-dim", type=_int_arg, default=d.emb_dim, metavar="N", help=f"model width (default {d.emb_dim})")
    p.add_argument("--heads", type=_int_arg, default=d.num_heads, metavar="N", help=f"query heads (default {d.num_heads})")
    p.add_argument("--layers", type=_int_arg, default=d.num_layers, metavar="N", help=f"layers (default {d.num_layers})")
    p.add_argument("--head-dim", type=_int_arg, default=None, metavar="N", help="default: ceil(emb_dim / heads)")
    p.add_argument("--kv-groups", type=_int_arg, default=d.num_kv_groups, metavar="N",
                   help=f"GQA's K/V heads, must divide --heads (default {d.num_kv_groups})")
    p.add_argument("--latent", type=_int_arg, default=None, metavar="N", help="MLA's latent_dim (default max(16, emb_dim // 8))")
    p.add_argument("--window", type=_int_arg, default=d.sliding_window_size, metavar="W",
                   help=f"SWA's sliding_window_size (default {d.sliding_window_size})")
    p.add_argument("--swa-ratio", type=_ratio, default=d.swa_ratio, metavar="A:B",
                   help="A sliding-window layers for every B full ones (default 1:0: all windowed)")
    p.add_argument("--context-length", type=_int_arg, default=d.context_length, metavar="N",
                   help=f"tokens cached (default {d.context_length})")
    p.add_argument("--batch", type=_int_arg, default=d.batch, metavar="N", help=f"sequences (default {d.batch})")
    p.add_argument("--dtype", default=d.dtype, metavar="|".join(DTYPE_BYTES), help=f"element type (default {d.dtype})")
    p.add_argument("--format", default="text", choices=("text", "csv"), help="aligned text (default) or CSV")
    p.add_argument("--sweep", action="store_true", help="total bytes against context length, as CSV (for a plot)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        size = ModelSize(emb_dim=args.emb_dim, num_heads=args.heads, num_layers=args.layers, head_dim=args.head_dim,
                         num_kv_groups=args.kv_groups, latent_dim=args.latent, sliding_window_size=args.window,
                         swa_ratio=args.swa_ratio, context_length=args.context_length, batch=args.batch,
                         dtype=args.dtype)
    except MeterError as exc:
        p.exit(2, f"{p.prog}: error: {exc}\n")
    if args.sweep:
        sys.stdout.write(format_sweep(size))
    elif args.format == "csv":
        sys.stdout.write(format_csv(table(size)))
    else:
        sys.stdout.write(format_text(size, table(size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
