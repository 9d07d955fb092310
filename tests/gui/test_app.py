"""gui/app.py and the process: start-up imports, a missing lesson, the PySide6 signal-emit regression (each in a subprocess)."""
from __future__ import annotations

from tests.gui.fixtures import run_python as run


def test_many_signal_emits_do_not_abort_the_process():
    """PySide6 6.12 on Python 3.11 aborts after a few hundred Signal.emit(); 6.11 does not."""
    proc = run("""
        from PySide6.QtCore import QCoreApplication, QObject, Signal
        app = QCoreApplication([])
        class Source(QObject):
            fired = Signal(int)
            ticked = Signal()
            payload = Signal(object)
        src = Source()
        seen = []
        src.fired.connect(lambda v: seen.append(v))
        src.ticked.connect(lambda: seen.append(None))
        src.payload.connect(lambda o: seen.append(o))
        for i in range(12000):
            src.fired.emit(i)
            src.ticked.emit()
            src.payload.emit({"i": i})
        app.processEvents()
        print("emitted", len(seen))
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "emitted 36000" in proc.stdout


def test_startup_modules_do_not_import_torch_or_pyqtgraph():
    proc = run("""
        import sys
        from PySide6 import QtWidgets
        app = QtWidgets.QApplication([])
        from gui.app import make_window
        controller, window = make_window()
        window.show()
        app.processEvents()
        print("torch" in sys.modules, "pyqtgraph" in sys.modules, "core" in sys.modules)
        controller.shutdown()
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "False", "False"]


def test_run_app_with_a_missing_lesson_shows_a_message_and_exits_0(tmp_path):
    proc = run(f"""
        import sys
        from PySide6 import QtCore, QtWidgets
        app = QtWidgets.QApplication([])
        QtCore.QSettings.setDefaultFormat(QtCore.QSettings.Format.IniFormat)
        QtCore.QSettings.setPath(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope, {str(tmp_path)!r})
        def check(tries=[0]):           # the lesson is read off the UI thread: poll for its message
            win = next(w for w in app.topLevelWidgets() if w.windowTitle() == "Attention Stepper")
            tries[0] += 1
            if not win.statusBar().currentMessage() and tries[0] < 200:
                QtCore.QTimer.singleShot(100, check)
                return
            print("MSG", win.statusBar().currentMessage())
            win.close()
        QtCore.QTimer.singleShot(500, check)
        from gui.app import run_app
        sys.exit(run_app(["lesson.json"]))
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "lesson.json" in proc.stdout and "does not exist" in proc.stdout


def test_the_inputs_step_is_drawn_before_torch_loads_then_the_trace_arrives(tmp_path):
    """Start-up on the book's first step: its numbers (X, no computing) are painted while the
    worker's ``import torch`` is still held back (a finder that delays it 3 s); the status bar says
    "Loading torch…"; then the normal trace arrives and the step view replaces the preview."""
    proc = run(f"""
        import json, sys, threading, time
        held = []
        class SlowTorch:                              # delays the first import of torch (any thread)
            def find_spec(self, name, path=None, target=None):
                if name == "torch" and not held:
                    held.append(threading.current_thread() is threading.main_thread())
                    time.sleep(3.0)
                return None
        sys.meta_path.insert(0, SlowTorch())
        from PySide6 import QtCore, QtWidgets
        app = QtWidgets.QApplication([])
        settings = QtCore.QSettings({str(tmp_path / "s.ini")!r}, QtCore.QSettings.Format.IniFormat)
        from gui.app import make_window, start
        controller, window = make_window(settings)
        window.show()
        start(window, controller)
        p = window.inputs_preview
        out = {{"painted": p.painted_at is not None, "torch_at_paint": p.torch_loaded_at_paint,
                "torch_now": "torch" in sys.modules, "current": window.stack.currentWidget() is p,
                "status": window.statusBar().currentMessage(),
                "cells": [[p.cell_text(r, c) for c in range(3)] for r in range(len(p.values))],
                "tokens": list(p.tokens)}}
        loop = QtCore.QEventLoop()
        controller.trace_changed.connect(loop.quit)
        QtCore.QTimer.singleShot(90000, loop.quit)
        loop.exec()
        t = controller.trace
        out.update(held=held, traced=t is not None, preview_gone=window.inputs_preview is None,
                   step_view=window.stack.currentWidget() is window.step_view,
                   status_after=window.statusBar().currentMessage(),
                   x=[[f"{{v:.4f}}" for v in row] for row in t["simplified", "inputs"].numpy().tolist()] if t else None)
        controller.shutdown()
        print("RESULT", json.dumps(out))
    """, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    out = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[7:])
    assert out["painted"] and out["current"] and out["torch_at_paint"] is False   # painted before torch was in
    assert out["status"] == "Loading torch…"
    assert out["tokens"][:2] == ["Your", "journey"] and out["cells"][1] == ["0.5500", "0.8700", "0.6600"]  # the book's x⁽²⁾
    assert out["held"] == [False]                 # torch was imported on the worker thread, not the UI's
    assert out["traced"] and out["preview_gone"] and out["step_view"] and out["status_after"] != "Loading torch…"
    assert out["x"] == out["cells"]               # the preview showed the trace's own numbers
