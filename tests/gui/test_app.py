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
