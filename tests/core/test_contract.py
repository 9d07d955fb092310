"""Architecture contract: nothing under core/ imports Qt (PySide6) or pyqtgraph; core keeps
nothing on an intermediate and reads no GUI cache; the GUI's drawing code names no intermediate
(their display traits are Term fields)."""
import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
GUI = CORE.parent / "gui"
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "gui")


def test_core_sources_import_no_qt():
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


def test_importing_and_running_core_loads_no_qt():
    code = ("import sys, core, core.cli, core.export, core.equivalence, core.book, core.memory;"
            "core.build_trace(core.AttentionConfig(device='cpu'));"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('PySide6','shiboken6','pyqtgraph','gui')];"
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CORE.parent)
    assert res.returncode == 0, res.stdout + res.stderr


def test_config_and_book_import_without_torch():
    """The GUI validates settings and knows the Book sections before torch has loaded.

    (core.vocabulary is read from the stage table, core/stages/, whose files hold torch code:
    it loads torch, and ``import core`` reaches it only lazily.)"""
    code = ("import sys, core, core.config, core.book, core.tokens, core.engine.malloc;"
            "core.config.AttentionConfig(text='hi there', embeddings='random');"
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CORE.parent)
    assert res.returncode == 0, res.stdout + res.stderr


def test_nothing_in_core_tunes_malloc_at_import():
    """tune_malloc() is called by the app's entry points (main.py, core.bench's main), never by importing."""
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:                   # module level only: function bodies run when called
            for sub in ast.walk(node):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    break
                if isinstance(sub, ast.Call) and getattr(sub.func, "id", getattr(sub.func, "attr", "")) == "mallopt" \
                        or isinstance(sub, ast.Call) and getattr(sub.func, "id", getattr(sub.func, "attr", "")) == "tune_malloc":
                    offenders.append(f"{path.name}:{sub.lineno}")
    assert offenders == []
    main = (CORE.parent / "main.py").read_text()
    assert "tune_malloc()" in main


def test_core_reads_no_cache_kept_on_an_intermediate():
    """Traces are immutable: no ``_cache`` attribute is read or written anywhere in core/
    (what the window keeps is gui/display_cache.py's)."""
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "_cache":
                offenders.append(f"{path.name}:{node.lineno}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) > 1
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value == "_cache"):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, offenders


def _intermediate_names() -> set[str]:
    from core.stages import STAGES
    return {name for stage in STAGES.values() for name in stage.terms}


# Collections of intermediate names the GUI may hold: the weights a user edits (a setting, not
# a display trait; gui/tables.py, gui/inspector.py)
EDITABLE = {"W_query", "W_key", "W_value"}
# what draws a step's maps: each map by its panel's key and its term's traits, no names
DRAWING = ("matrices.py", "heatmap.py", "heatmap_sizing.py", "heatmap_colour.py", "heatmap_items.py", "display_cache.py", "explain.py", "step_view.py", "view_model.py")


def _name_lists(path: Path, names: set[str]) -> list[str]:
    """The set/list/tuple literals of ``path`` made of two or more intermediate names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.Set, ast.List, ast.Tuple)) and len(node.elts) > 1:
            values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if len(values) == len(node.elts) and all(v in names for v in values) and not set(values) <= EDITABLE:
                found.append(f"{path.name}:{node.lineno} {values}")
    return found


def test_the_gui_holds_no_lists_of_intermediate_names():
    """Which maps are masked, drawn as probabilities or 0/1, or have the heads as columns is
    each term's (core/stages/*.py TERMS: Term.masked, colours, head_columns): no set, list or
    tuple of intermediate names anywhere in gui/, and not one name in the drawing modules."""
    names = _intermediate_names()
    assert not [hit for path in sorted(GUI.rglob("*.py")) for hit in _name_lists(path, names)]
    literals = [f"{f}:{node.lineno} {node.value!r}" for f in DRAWING
                for node in ast.walk(ast.parse((GUI / f).read_text()))
                if isinstance(node, ast.Constant) and node.value in names]
    assert not literals, literals


def test_the_name_list_check_catches_a_set_of_names(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('MASKED = {"masked_scores", "attn_weights"}\nOK = ("W_query", "W_key")\n')
    assert _name_lists(bad, _intermediate_names()) == ["bad.py:1 ['masked_scores', 'attn_weights']"]


# The engine's ops may compute the softmax their own way (chunked, into pooled buffers).
ENGINE_OPS = {"core/engine/kernels.py"}


def _softmax_calls(path: Path) -> list[str]:
    """Where ``path``'s code (not its strings or comments) calls ``softmax(``: torch.softmax,
    F.softmax, x.softmax, … (a ``def softmax(`` defines one and is not a call)."""
    import io
    import tokenize
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
              if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)]
    return [f"{path.name}:{t.start[0]}" for k, t in enumerate(tokens[:-1])
            if t.type == tokenize.NAME and t.string == "softmax" and tokens[k + 1].string == "("
            and not (k and tokens[k - 1].string == "def")]


def test_only_the_stage_files_compute_a_softmax():
    """One forward per stage: the attention weights are computed in core/stages/ (each stage's
    forward, run with the chapter's ops or the engine's), nowhere else in core/ or gui/: no
    second forward computes softmax( of scores (the engine's kernels aside)."""
    root = CORE.parent
    paths = [p for p in sorted(CORE.rglob("*.py")) + sorted(GUI.rglob("*.py")) + [root / "main.py"]
             if "stages" not in p.relative_to(root).parts[:2] and str(p.relative_to(root)) not in ENGINE_OPS]
    offenders = [hit for p in paths for hit in _softmax_calls(p)]
    assert offenders == []
    assert _softmax_calls(root / "core/engine/kernels.py")                  # the check sees the engine's own


def test_the_softmax_check_catches_a_second_forward(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('import torch\n"""torch.softmax(x) in a docstring"""\n# softmax(x) in a comment\n'
                   'def softmax(x):\n    return x\n'
                   'w = torch.softmax(s / 2, dim=-1)\nv = s.softmax (dim=-1)\n')
    assert _softmax_calls(bad) == ["bad.py:6", "bad.py:7"]
