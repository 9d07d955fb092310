"""Architecture contract: nothing under core/ imports Qt (PySide6) or pyqtgraph."""
import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
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
