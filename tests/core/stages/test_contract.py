"""The stage files' contract: they import only torch, math and core.weights (and each other),
and each stage's table, forward, code lines and inspector rules agree with one another."""
import ast
from pathlib import Path

import pytest

from core import AttentionConfig, build_trace
from core.pretrained_config import PretrainedConfig
from core.stages import CHAPTER, STAGES

STAGES_DIR = Path(__file__).resolve().parents[3] / "core" / "stages"
# what a stage file may import: the chapter's own tools, the weights, the stage package itself,
# and the language's own helpers (annotations, dataclasses, typing)
ALLOWED = {"torch", "math", "core.weights", "core.stages", "__future__", "dataclasses", "typing"}
# lines.py computes nothing: it reads the forwards' source for the code panel (core/stages/lines.py)
READS_SOURCE = {"lines.py": {"ast", "copy", "functools", "inspect", "io", "textwrap", "tokenize"}}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def _allowed(name: str) -> bool:
    return name.startswith(".") or any(name == a or name.startswith(a + ".") for a in ALLOWED)


def test_stage_files_import_only_torch_math_and_the_weights():
    offenders = [f"{p.name}: {n}" for p in sorted(STAGES_DIR.glob("*.py")) for n in _imports(p)
                 if not _allowed(n) and n not in READS_SOURCE.get(p.name, ())]
    assert offenders == []


def test_the_contract_check_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy as np\nfrom core.engine import kernels\nimport torch\n")
    assert [n for n in _imports(bad) if not _allowed(n)] == ["numpy", "core.engine"]


def test_the_table_lists_the_chapters_stages_in_order_then_the_pretrained_stage():
    assert list(STAGES) == ["simplified", "trainable", "causal", "multihead", "pretrained"]
    assert [s.section for s in STAGES.values()] == ["3.3", "3.4", "3.5", "3.6", "5"]
    # build_trace computes the chapter's stages; the pretrained one runs on the checkpoint
    assert list(CHAPTER) == ["simplified", "trainable", "causal", "multihead"]
    assert [s.external for s in STAGES.values()] == [False] * 4 + [True]


CONFIGS = [AttentionConfig(), AttentionConfig(qkv_bias=True, d_out=4, num_heads=2, batch=2, dropout=0.5)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "bias-batch-dropout"])
@pytest.mark.parametrize("use_engine", [True, False], ids=["engine", "plain"])
def test_every_term_is_computed_and_every_computed_tensor_is_a_term(cfg, use_engine):
    trace = build_trace(cfg, use_engine=use_engine)
    for name, stage in CHAPTER.items():
        want = [n for n, t in stage.terms.items() if cfg.qkv_bias or not t.optional]
        assert list(trace.stages[name]) == want, name


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "bias-batch-dropout"])
def test_every_term_has_its_code_line_and_every_tagged_line_a_term(cfg):
    earlier: set[str] = set()
    for name, stage in CHAPTER.items():
        tagged = {n for n, _line in stage.code(cfg) if n is not None}
        terms = {n for n, t in stage.terms.items() if (cfg.qkv_bias or not t.optional) and n != "inputs"}
        assert terms - tagged == set(), name                  # each term has its line
        assert tagged - terms <= earlier, name                # other lines: an earlier stage's term (the mask)
        earlier |= set(stage.terms)


@pytest.mark.parametrize("options", [{}, {"hide_special": True, "full_layer": True}], ids=["plain", "all-options"])
def test_the_pretrained_stage_has_a_code_line_for_every_term_it_computes(options):
    from core.pretrained import build_pretrained    # reads the installed checkpoint

    cfg = PretrainedConfig(text="The dog bit him", layer=1, **options)
    stage = STAGES["pretrained"]
    computed = list(build_pretrained(cfg).stages["pretrained"])
    assert computed == [n for n in stage.terms if n in computed]                  # the table's order
    assert set(computed) >= {n for n, t in stage.terms.items() if not t.optional}
    tagged = {n for n, _line in stage.code(cfg) if n is not None}
    assert set(computed) - tagged == set() and tagged <= set(stage.terms)


# The display traits the window drew by name before they were the terms' (gui/matrices.py's
# four sets): every other term of these stages is unmasked, signed, without head columns.
TRAITS = {
    ("simplified", "attn_weights"): {"colours": "prob"}, ("simplified", "attn_weights_sumnorm"): {"colours": "prob"},
    ("trainable", "attn_weights"): {"colours": "prob"},
    ("causal", "mask"): {"colours": "binary"}, ("causal", "dropout_mask"): {"colours": "binary"},
    ("causal", "masked_scores"): {"masked": True},
    **{("causal", n): {"masked": True, "colours": "prob"} for n in ("attn_weights", "masked_simple",
                                                                   "renormalized_weights")},
    ("causal", "dropped_weights"): {"masked": True, "colours": "nonneg"},
    ("multihead", "masked_scores"): {"masked": True}, ("multihead", "attn_weights"): {"masked": True, "colours": "prob"},
    **{("multihead", n): {"head_columns": True} for n in ("wrapper_context_vecs", "context_concat", "W_query", "W_key",
                                                         "W_value", "b_query", "b_key", "b_value")},
    ("pretrained", "mask"): {"colours": "binary"}, ("pretrained", "attn_weights"): {"colours": "prob"},
    ("pretrained", "attn_weights_no_special"): {"colours": "prob"},
    **{("pretrained", n): {"head_columns": True} for n in ("context_concat", "W_query", "W_key", "W_value",
                                                          "b_query", "b_key", "b_value")},
}


@pytest.mark.parametrize("stage", ["simplified", "trainable", "causal", "multihead", "pretrained"])
def test_the_terms_carry_the_display_traits(stage):
    for name, t in STAGES[stage].terms.items():
        want = {"masked": False, "colours": "signed", "head_columns": False, **TRAITS.get((stage, name), {})}
        assert {"masked": t.masked, "colours": t.colours, "head_columns": t.head_columns} == want, name


def test_the_display_traits_fit_the_axes():
    """Masked cells lie above a (query, key) diagonal; head columns are d_out's; an unknown
    colour scale is refused when the term is made."""
    from core.stages.schema import term
    for stage in STAGES.values():
        for name, t in stage.terms.items():
            assert not t.masked or t.axes[-2:] == ("query", "key"), (stage.name, name)
            assert not t.head_columns or t.axes[-1] == "out", (stage.name, name)
    with pytest.raises(ValueError, match="colours"):
        term("A", "A", "weights", "query", "key", colours="probability")
