"""gui/gc_guard.py: garbage is collected on the GUI thread only."""
from __future__ import annotations

from PySide6 import QtCore


def test_garbage_is_collected_on_the_gui_thread_only(qtbot):
    """The soak froze for good: a GC on the worker thread collected a cycle holding a Qt
    connection (Qt's connection mutex, then the GIL) while the GUI thread held the GIL and
    waited for that mutex in QTextEdit.setHtml. Automatic GC is now off while a controller
    lives, and a timer collects on the GUI thread."""
    import gc
    import threading
    import weakref

    from gui.controller import Controller
    from tests.gui.fixtures import TRACE_TIMEOUT_MS

    assert gc.isenabled()
    threads = []

    def record(phase, _info):
        if phase == "start":
            threads.append(threading.current_thread() is threading.main_thread())

    c = Controller()
    gc.callbacks.append(record)
    try:
        assert not gc.isenabled()
        # cycles that hold Qt connections, made on the GUI thread, as views do
        refs = []
        for _ in range(300):
            obj = QtCore.QObject()
            obj.cycle = obj
            obj.objectNameChanged.connect(obj.deleteLater)
            refs.append(weakref.ref(obj))
            del obj
        # the worker allocates a lot (several traces) while that garbage waits
        for d_out in (8, 16, 32, 64):
            c.set_params(embeddings="random", text="a b c d e f g h " * 8, d_in=16, d_out=d_out,
                         num_heads=4, batch=4)
            qtbot.waitUntil(lambda: not c.is_busy(), timeout=TRACE_TIMEOUT_MS)
        qtbot.waitUntil(lambda: all(r() is None for r in refs), timeout=10_000)
        assert threads and all(threads), "a collection ran on another thread"
        assert c._gc.collections > 0
    finally:
        gc.callbacks.remove(record)
        c.shutdown()
    assert gc.isenabled()
