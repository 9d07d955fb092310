"""Soak test (issue 6): thousands of random user actions, with a seeded RNG, on one window.

Steps (keys, actions, jumps), every parameter through its widget (valid and invalid text) and
through the controller (what lessons and saved settings hand over), cell edits, Book preset,
exports into a temporary folder (file dialogs patched), lessons, resizes, docks, About and other
dialogs (closed by a timer). Afterwards, and at checkpoints along the way: no exception escaped
(sys.excepthook and threading.excepthook collect them), no computation failed unexpectedly, no
traceback on stderr, and the window is consistent: the step counter, navigator and title agree
with the controller; the matrices drawn equal a fresh ``core.build_trace`` of the settings
behind them, and those are the controller's current settings unless an error is on screen.

Short by default (CI): 1500 actions, stopping early after SOAK_BUDGET (50) seconds on a slow machine::

    .venv/bin/python -m pytest tests/gui/test_soak.py                     # SOAK_ACTIONS=1500

Long run (10 minutes; prints the number of actions, the duration and the crashes)::

    SOAK_SECONDS=600 .venv/bin/python -m pytest tests/gui/test_soak.py -m slow -s

``SOAK_SEED`` picks the random sequence (a failure prints it; rerun with the same seed and
``SOAK_ACTIONS`` to reproduce), ``SOAK_REPORT=FILE`` writes the summary as JSON. A hang (no
action finishing for 3 minutes) ends the process with every thread's stack in ``SOAK_HANG_LOG``
(default: attention-stepper-soak-hang.txt in the temp folder) and the actions that ran before it
in ``SOAK_HANG_LOG.trail``.
"""
from __future__ import annotations

import dataclasses
import faulthandler
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from core import build_trace
from core.book import book_config
from core.config import AttentionConfig
from core.safe_folder import WORK_PREFIX
from gui.steps import step_numbers
from tests.core.snapshots import make_input_files
from tests.gui.fixtures import TRACE_TIMEOUT_MS, open_window
from tests.gui.fixtures import expected_maps, shown_maps

Key = QtCore.Qt.Key
SOAK_ACTIONS = int(os.environ.get("SOAK_ACTIONS", "1500"))
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "0"))      # > 0: run for this long instead
SOAK_SEED = int(os.environ.get("SOAK_SEED", "6"))
SOAK_BUDGET = float(os.environ.get("SOAK_BUDGET", "50"))       # the short run stops early past this
CHECK_EVERY = 150
HANG_SECONDS = 180
HANG_LOG = os.environ.get("SOAK_HANG_LOG", os.path.join(tempfile.gettempdir(), "attention-stepper-soak-hang.txt"))
WORDS = ("the cat sat on a mat . your journey starts with one step , attention is all you need ! "
         "über naïve café 東京 🙂 don't x-ray").split()
SPINS = ("d_in", "d_out", "num_heads", "seed", "dropout_seed", "batch")
NEVER = {"quit"}                                 # actions the soak never triggers (it would end the run)


class Soak:
    def __init__(self, win, qtbot, tmp: Path, rng: random.Random):
        self.win, self.qtbot, self.tmp, self.rng = win, qtbot, tmp, rng
        self.c = win.controller
        self.counts: Counter[str] = Counter()
        self.times: Counter[str] = Counter()         # seconds spent per kind of action
        self.trail = None                            # file: one line per action (what ran before a hang)
        self.exceptions: list[str] = []
        self.failures: list[str] = []                # "could not compute the trace (…)" messages
        self.requests: dict[int, object] = {}        # request id -> Request (what the worker computed)
        self.shown_request = None                    # the request behind the traces on screen ("book")
        self.in_error = False                        # the last word from the controller was an error
        self.checks = 0
        self.files = make_input_files(tmp)
        self.files["good2"] = self.files["width2"]
        good3 = tmp / "inputs" / "good3.csv"
        good3.write_text("token,a,b,c\nhello,0.1,0.2,0.3\nworld,-0.4,0.5,0.6\nagain,1,2,3\n")
        self.files["good3"] = str(good3)
        self.lessons = self._lesson_files()
        self.book_refs: dict[str, object] = {}
        c = self.c
        submit = c._worker.submit

        def record(req):
            self.requests[req.id] = req
            submit(req)

        c._worker.submit = record
        c.trace_changed.connect(self._on_trace)
        c.error.connect(self._on_error)
        c.error_cleared.connect(lambda: setattr(self, "in_error", False))
        self._on_trace()

    # ---- bookkeeping -------------------------------------------------------------------------
    def _on_trace(self) -> None:
        c = self.c
        self.shown_request = "book" if c.traces_mode == "book" else self.requests.get(c._last_id)

    def _on_error(self, field: str, message: str) -> None:
        self.in_error = True
        if message.startswith("could not compute the trace"):
            self.failures.append(f"{field}: {message}")

    def _lesson_files(self) -> list[str]:
        d = self.tmp / "lessons"
        d.mkdir()
        bad = {"broken.json": "{ nope", "future.json": json.dumps({"format": "attention-stepper-lesson",
                                                                   "version": 99, "config": {}}),
               "other.json": "[1, 2, 3]"}
        for name, text in bad.items():
            (d / name).write_text(text)
        return [str(d / n) for n in bad] + [str(d / "missing.json"), str(d)]

    # ---- helpers -----------------------------------------------------------------------------
    def settle(self) -> None:
        """Wait until nothing is computing or exporting (and no play timer is stepping)."""
        presenter = getattr(self.win, "presenter", None)
        if presenter is not None and getattr(presenter, "playing", False):
            presenter.pause()
        try:
            opener = getattr(self.win, "lesson_opener", None)        # lessons are read off the UI thread
            self.qtbot.waitUntil(lambda: not self.c.is_busy() and self.win.export_job is None
                                 and not (opener is not None and opener.busy), timeout=TRACE_TIMEOUT_MS)
        except Exception:
            # what was still running: the newest requests and every thread's stack
            sys.stderr.write(f"\nsettle timed out: export job {self.win.export_job!r}; newest requests:\n")
            for req in list(self.requests.values())[-3:]:
                sys.stderr.write(f"  {req.id} {req.mode} {req.params} inputs={req.inputs!r} "
                                 f"weights={None if req.weights is None else list(req.weights)}\n")
            for exc in getattr(self, "exceptions", [])[:3]:
                sys.stderr.write(f"exception collected meanwhile:\n{exc}\n")
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            raise
        self.qtbot.wait(1)

    def type_into(self, line_edit: QtWidgets.QLineEdit, text: str) -> None:
        line_edit.setFocus()
        line_edit.selectAll()
        self.qtbot.keyClick(line_edit, Key.Key_Backspace)
        if len(text) > 60 or not text.isascii():
            line_edit.insert(text)                    # a paste (QTest types ASCII only: it aborts on others)
        else:
            self.qtbot.keyClicks(line_edit, text)
        self.qtbot.keyClick(line_edit, Key.Key_Return)

    def sentence(self) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.05:
            return r.choice(["", "   ", "\t"])
        if roll < 0.07:
            return "w " * 4097                         # over the token limit
        return " ".join(r.choice(WORDS) for _ in range(r.randint(1, 9)))

    def bad_or_good(self, good, bad, p_bad: float = 0.2):
        return self.rng.choice(bad) if self.rng.random() < p_bad else self.rng.choice(good)

    def target(self, kind: str) -> str:
        """A path a patched file dialog returns: new, existing, a file, nested, or cancelled."""
        r = self.rng
        out = self.tmp / "out"
        out.mkdir(exist_ok=True)
        (out / "a-file.csv").write_text("keep")
        choice = r.random()
        if choice < 0.1:
            return ""                                  # cancelled
        if choice < 0.2:
            return str(out / "a-file.csv")             # a file (folder wanted) / overwrite (file wanted)
        if choice < 0.3:
            return str(out / f"deep{r.randrange(5)}" / "sub" / ("x.csv" if kind == "file" else "dir"))
        if choice < 0.35 and kind == "file":
            return str(out)                            # a folder where a file is wanted
        return str(out / (f"f{r.randrange(20)}.csv" if kind == "file" else f"d{r.randrange(5)}"))

    # ---- actions -----------------------------------------------------------------------------
    def act_step(self) -> None:
        r, win = self.rng, self.win
        how = r.choice(["action", "key", "jump", "navigator", "bar"])
        if how == "action":
            win.actions[r.choice(["next", "back", "first", "last"])].trigger()
        elif how == "key":
            win.navigator.setFocus()
            self.qtbot.keyClick(win.navigator, r.choice([Key.Key_Right, Key.Key_Left, Key.Key_Home, Key.Key_End,
                                                         Key.Key_PageUp, Key.Key_PageDown, Key.Key_Down,
                                                         Key.Key_Up]))
        elif how == "jump":
            self.c.go(r.randrange(-3, len(self.c.steps) + 3))
        elif how == "navigator":
            items = []
            it = QtWidgets.QTreeWidgetItemIterator(win.navigator)
            while it.value():
                items.append(it.value())
                it += 1
            win.navigator.setCurrentItem(r.choice(items))
        else:
            buttons = [b for b in win.step_bar.findChildren(QtWidgets.QAbstractButton) if b.isEnabled()]
            if buttons:
                r.choice(buttons).click()

    def act_spin(self) -> None:
        r = self.rng
        name = r.choice(SPINS)
        spin = self.win.params.widgets[name]
        if not spin.isEnabled():
            return
        if r.random() < 0.3:
            spin.setFocus()
            self.qtbot.keyClick(spin, r.choice([Key.Key_Up, Key.Key_Down]))
            return
        good = {"d_in": ["1", "2", "3", "4", "6"], "d_out": ["1", "2", "3", "4", "6", "8", "12"],
                "num_heads": ["1", "2", "3", "4"], "seed": ["0", "1", "123", "789", str(r.randrange(10**6))],
                "dropout_seed": ["0", "123", str(r.randrange(10**6))], "batch": ["1", "2", "3"]}[name]
        self.type_into(spin.lineEdit(), self.bad_or_good(good, ["0", "", "abc", "-3", "99999", "1e3", " 5 "]))

    def act_dropout(self) -> None:
        text = self.bad_or_good(["0", "0.1", "0.25", "0.5", "0.9"], ["1", "1.5", "-0.2", "nan", ""])
        self.type_into(self.win.params.dropout.lineEdit(), text)

    def act_text(self) -> None:
        self.type_into(self.win.params.text, self.sentence())

    def act_combo(self) -> None:
        p = self.win.params
        combo = self.rng.choice([p.example, p.init, p.device])
        if combo.isEnabled() and combo.count():
            combo.setCurrentIndex(self.rng.randrange(combo.count()))
            combo.activated.emit(combo.currentIndex())

    def act_toggle(self) -> None:
        p = self.win.params
        box = self.rng.choice([p.causal, p.qkv_bias])
        if box.isEnabled():
            box.click()

    def act_book(self) -> None:
        if self.rng.random() < 0.5:
            self.win.params.book.click()
        else:
            self.win.actions["book"].trigger()

    def act_api(self) -> None:
        """What a lesson, saved settings or a script can hand the controller, bad values included."""
        r = self.rng
        field = r.choice(["d_in", "d_out", "num_heads", "init", "seed", "causal", "dropout", "dropout_seed",
                          "qkv_bias", "batch", "device", "dtype", "text", "embeddings"])
        values = {
            "d_in": ([2, 3, 5], [0, -3, 100000, 2.5]), "d_out": ([2, 4, 6, 8], [0, -2, 10**12, "4"]),
            "num_heads": ([1, 2], [0, -1, 512]), "init": (["rand", "linear"], ["xavier", None]),
            "seed": ([0, 7, 2**31 - 1], [-1, 2**70]), "causal": ([True, False], ["yes"]),
            "dropout": ([0.0, 0.2, 0.5], [1.0, 1.5, -0.1, math.nan, math.inf, "half"]),
            "dropout_seed": ([1, 123], [-5]), "qkv_bias": ([True, False], [1]), "batch": ([1, 2, 4], [0, 65]),
            "device": (["cpu", "auto", "cuda"], ["tpu"]), "dtype": (["float32", "float64"], ["float16"]),
            "text": ([self.sentence()], ["", "a" * 100_001]),
            "embeddings": (["random", "book", self.files["good2"], self.files["good3"]],
                           [self.files[k] for k in ("missing", "empty", "ragged", "nan", "inf", "non_number",
                                                    "header_only", "latin1", "folder")]),
        }[field]
        changes = {field: self.bad_or_good(*values, p_bad=0.3)}
        if field == "embeddings" and changes[field] in (self.files["good2"], self.files["good3"]):
            changes["d_in"] = 2 if changes[field] == self.files["good2"] else 3
        elif field == "embeddings" and changes[field] == "book":
            changes.update(text="Your journey starts with one step", d_in=3)
        self.c.set_params(**changes)

    def act_edit_cell(self) -> None:
        editor = getattr(self.win, "inputs_editor", None)
        if editor is None or self.c.trace is None:
            return
        r = self.rng
        tables = [editor.embeddings, *editor.weights.values()]
        t = r.choice(tables)
        if t.rowCount() == 0 or t.columnCount() == 0:
            return
        item = t.item(r.randrange(t.rowCount()), r.randrange(t.columnCount()))
        if item is None:
            return
        if t is editor.embeddings and item.column() == 0:
            text = self.bad_or_good(["tok", "x", "naïve", "b"], ["", "   "])
        else:
            text = self.bad_or_good([f"{r.uniform(-2, 2):.3f}", "0", "1e-3", "−0.5"],
                                    ["abc", "", "nan", "inf", "1e400", "2e6"])
        item.setText(text)

    def act_edit_buttons(self) -> None:
        editor = getattr(self.win, "inputs_editor", None)
        if editor is None:
            return
        name = self.rng.choice(sorted(editor.buttons))
        if name in ("add", "remove") and self.c.trace is not None and len(self.c.trace.tokens) > 12 and name == "add":
            name = "remove"
        editor.buttons[name].click()

    def act_export(self) -> None:
        r, win = self.rng, self.win
        what = r.choice(["export_matrix", "export_all", "save_image", "save_lesson", "open_lesson", "cancel"])
        if what == "cancel":
            if win.export_job is not None:
                win.export_job.cancel()
            return
        if what == "open_lesson":
            path = r.choice(self.lessons + self.saved_json(3))
            self.patch_dialogs(open_path=str(path))
        else:
            self.patch_dialogs()
        win.actions[what].trigger()
        if what == "export_all" and r.random() < 0.5:
            self.settle()

    def saved_json(self, limit: int) -> list[str]:
        """Up to ``limit`` .json files the app wrote under the temp folder (manifests, lessons).

        A background export renames and removes its staging folder while this walks: os.walk
        skips a folder that vanishes (Path.rglob raised FileNotFoundError here, a fault of the
        soak, not of the app), and staging/backup folders are not entered at all.
        """
        found: list[str] = []
        for root, dirs, files in os.walk(self.tmp):
            dirs[:] = sorted(d for d in dirs if d != "lessons" and ".partial-" not in d and ".backup-" not in d
                             and not d.startswith(WORK_PREFIX))
            found += [os.path.join(root, f) for f in sorted(files) if f.endswith(".json")]
            if len(found) >= limit:
                break
        return found[:limit]

    def patch_dialogs(self, open_path: str | None = None) -> None:
        D = QtWidgets.QFileDialog
        D.getExistingDirectory = staticmethod(lambda *a, **k: self.target("folder"))
        D.getSaveFileName = staticmethod(lambda *a, **k: (self.target("file"), ""))
        pick = open_path if open_path is not None else self.rng.choice(list(self.files.values()))
        D.getOpenFileName = staticmethod(lambda *a, **k: (pick, ""))

    def act_window(self) -> None:
        r, win = self.rng, self.win
        what = r.choice(["resize", "resize", "dock", "font", "about", "any_action"])
        if what == "resize":
            win.resize(r.randint(300, 1900), r.randint(200, 1200))
        elif what == "dock":
            acts = [a for n, a in win.actions.items() if a.isCheckable() and n not in NEVER]
            if acts:
                r.choice(acts).trigger()
        elif what == "font":
            name = r.choice(["font_larger", "font_smaller", "reset_layout", "reset_layout"])
            if name in win.actions:
                win.actions[name].trigger()
        elif what == "about":
            win.actions["about"].trigger()           # modal: the dialog closer ends it
        else:
            names = sorted(n for n in win.actions if n not in NEVER)
            name = r.choice(names)
            self.patch_dialogs()
            win.actions[name].trigger()

    def act_view(self) -> None:
        """Head and batch selectors, clicks and hovers on the heatmaps."""
        r, sv = self.rng, self.win.step_view
        what = r.choice(["head", "batch", "click", "hover"])
        if what == "head" and sv.head_box.isVisible() and sv.head_box.count():
            sv.head_box.setCurrentIndex(r.randrange(sv.head_box.count()))
        elif what == "batch" and sv.batch_box.isVisible():
            sv.batch_box.setValue(r.randint(sv.batch_box.minimum(), sv.batch_box.maximum()))
        elif what in ("click", "hover") and sv.panels:
            panel = r.choice(sv.panels)
            if not panel.maps or not panel.isVisible():
                return
            m = r.choice(panel.maps)
            img = m.image.image
            if img is None:
                return
            h, w = img.shape[:2]
            pos = m.plot.vb.mapViewToScene(QtCore.QPointF(r.uniform(-1, w + 1), r.uniform(-1, h + 1)))
            if what == "click":
                self.qtbot.mouseClick(panel.viewport(), QtCore.Qt.MouseButton.LeftButton,
                                      pos=panel.mapFromScene(pos))
            else:
                panel.scene().sigMouseMoved.emit(pos)

    def act_wait(self) -> None:
        if self.rng.random() < 0.5:
            self.settle()
        else:
            self.qtbot.wait(self.rng.randint(0, 30))

    ACTIONS = {"step": 20, "spin": 10, "dropout": 3, "text": 5, "combo": 4, "toggle": 4, "book": 2, "api": 10,
               "edit_cell": 6, "edit_buttons": 2, "export": 4, "window": 5, "view": 8, "wait": 6}

    def one(self) -> str:
        names = list(self.ACTIONS)
        name = self.rng.choices(names, weights=[self.ACTIONS[n] for n in names])[0]
        t0 = time.perf_counter()
        if self.trail is not None:
            c, t = self.c, self.c.trace
            self.trail.write(f"{sum(self.counts.values()) + 1} {name} step {c.index} mode {c.mode} "
                             f"busy {c.is_busy()} size {self.win.width()}x{self.win.height()} "
                             f"font {QtWidgets.QApplication.font().pointSizeF():.1f} "
                             f"trace {None if t is None else (len(t.tokens), t.config.d_in, t.config.d_out, t.config.num_heads, t.config.batch)}\n")
            self.trail.flush()
        getattr(self, f"act_{name}")()
        QtWidgets.QApplication.processEvents()
        self.counts[name] += 1
        self.times[name] += time.perf_counter() - t0
        return name

    # ---- consistency ---------------------------------------------------------------------------
    def check(self, every_step: bool = False) -> None:
        """The window agrees with the controller, and the matrices with a fresh core trace."""
        self.settle()
        self.checks += 1
        win, c, sv = self.win, self.c, self.win.step_view
        chapter = [i for i, s in enumerate(c.steps) if s.stage not in ("pretrained", "decode", "tiled", "rope")]
        if c.step.stage in ("pretrained", "decode", "tiled", "rope"):   # stages 5…8: their own tests; check the chapter
            c.go(chapter[-1])
        n = len(c.steps)
        assert win.step_bar.counter.text() == f"{c.index + 1} / {n}"
        assert sv.title.text().startswith(step_numbers()[c.index] + " ")
        assert win.navigator.currentItem().text(0).startswith(step_numbers()[c.index] + " ")
        assert c.trace is not None
        error_shown = any(label.isVisibleTo(win) for label in win.params.errors.values()) \
            or win.params.general_error.isVisibleTo(win)
        req = self.shown_request
        if self.in_error:
            assert error_shown, "the controller reported an error that is not on screen"
        if req == "book":
            assert c.traces_mode == "book"
            assert c.mode == "book" or self.in_error
        else:
            assert req is not None and c.traces_mode == "custom"
            assert c.trace.config == AttentionConfig(**req.params)
            if not self.in_error:     # what is drawn is what the controller holds now
                assert c.mode == "custom" and req.params == c.params
                assert req.inputs == c.inputs
                assert sorted(req.weights or {}) == sorted(c.weights)
                for k, v in (req.weights or {}).items():
                    np.testing.assert_array_equal(v, c.weights[k])
                self.check_widgets()
        steps = chapter if every_step else [c.index]
        start = c.index
        for i in steps:
            c.go(i)
            self.check_maps()
        c.go(start)

    def reference(self):
        c = self.c
        if self.shown_request == "book":
            section = c.step.section
            if section not in self.book_refs:
                self.book_refs[section] = build_trace(book_config(section))
            return self.book_refs[section]
        req = self.shown_request
        return build_trace(AttentionConfig(**req.params), inputs=req.inputs, weights_override=req.weights or None)

    def check_maps(self) -> None:
        sv = self.win.step_view
        if sv.head_box.isVisible():
            sv.head_box.setCurrentIndex(0)
        batch = sv.batch_box.value() if sv.batch_box.isVisible() else 0
        ref = self.reference()
        step = self.c.step
        panels = [p for p in step.panels if p.key in ref or not p.optional]
        shown = shown_maps(sv)
        strides = [[m.stride for m in p.maps] for p in sv.panels]      # big matrices are drawn downsampled
        assert len(shown) == len(panels), step.id
        for panel, images, steps in zip(panels, shown, strides):
            if panel.rows:             # a text shorter than the step's query row: its last row is shown
                t = ref[panel.key].shape[-2]
                r1 = min(panel.rows[1], t)
                panel = dataclasses.replace(panel, rows=(min(panel.rows[0], r1 - 1), r1))
            expected = expected_maps(panel, ref, batch_index=batch)
            assert len(images) == len(expected), (step.id, panel.key)
            for img, exp, k in zip(images, expected, steps):
                np.testing.assert_array_equal(img, exp[::k, ::k], err_msg=f"{step.id} {panel.key}")

    def check_widgets(self) -> None:
        p, cfg = self.win.params, self.c.params
        for name in SPINS:
            assert p.widgets[name].value() == min(cfg[name], p.widgets[name].maximum()), name
        assert p.init.currentText() == cfg["init"]
        assert p.causal.isChecked() == cfg["causal"] and p.qkv_bias.isChecked() == cfg["qkv_bias"]
        assert abs(p.dropout.value() - cfg["dropout"]) < 0.006
        if not p.text.hasFocus():
            assert p.text.text() == cfg["text"][:p.text.maxLength()]


def _close_dialogs(keep) -> None:
    """Close message boxes and other dialogs (modal ones end their exec)."""
    app = QtWidgets.QApplication.instance()
    modal = app.activeModalWidget()
    for w in [modal] + app.topLevelWidgets():
        if w is None or w is keep or not w.isVisible():
            continue
        if isinstance(w, QtWidgets.QProgressDialog):
            continue                                # the export's own dialog; the soak cancels jobs itself
        if isinstance(w, (QtWidgets.QMessageBox, QtWidgets.QDialog)):
            w.close()


def run_soak(qtbot, settings_file, tmp_path, monkeypatch, actions: int, seconds: float, seed: int) -> dict:
    exceptions: list[str] = []

    def collect(exc_type, exc, tb):
        import traceback
        exceptions.append("".join(traceback.format_exception(exc_type, exc, tb)))

    monkeypatch.setattr(sys, "excepthook", collect)
    monkeypatch.setattr(threading, "excepthook", lambda a: collect(a.exc_type, a.exc_value, a.exc_traceback))
    for name in ("getExistingDirectory", "getSaveFileName", "getOpenFileName"):
        monkeypatch.setattr(QtWidgets.QFileDialog, name, getattr(QtWidgets.QFileDialog, name))  # restored after
    for name in ("getText", "getInt", "getDouble", "getItem"):
        monkeypatch.setattr(QtWidgets.QInputDialog, name, staticmethod(lambda *a, **k: (None, False)))
    c, win = open_window(qtbot, settings_file)
    closer = QtCore.QTimer()
    closer.timeout.connect(lambda: _close_dialogs(win))
    closer.start(25)
    soak = Soak(win, qtbot, tmp_path, random.Random(seed))
    soak.exceptions = exceptions
    start = time.monotonic()
    done = 0
    # a deadlock would hang the run: past HANG_SECONDS without progress, every thread's stack
    # goes to the hang log and the process ends
    hang_log = open(HANG_LOG, "w")
    soak.trail = open(HANG_LOG + ".trail", "w")
    app_font = QtWidgets.QApplication.font()
    try:
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=hang_log)
        while (time.monotonic() - start < seconds) if seconds > 0 else (
                done < actions and time.monotonic() - start < SOAK_BUDGET):
            soak.one()
            done += 1
            faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=hang_log)
            assert not exceptions, f"after action {done} (seed {seed}):\n{exceptions[0]}"
            if done % CHECK_EVERY == 0:
                soak.check()
        soak.check(every_step=True)
    except BaseException:
        sys.stderr.write(f"\nsoak failed after {done} actions (SOAK_SEED={seed}); counts {dict(soak.counts)}\n")
        raise
    finally:
        faulthandler.cancel_dump_traceback_later()
        hang_log.close()
        soak.trail.close()
        closer.stop()
        QtWidgets.QApplication.setFont(app_font)      # Larger text changed the application font
    elapsed = time.monotonic() - start
    assert not exceptions, exceptions[0]
    assert not soak.failures, soak.failures[:3]
    partials = [str(p) for p in tmp_path.rglob("*") if ".partial-" in p.name or ".backup-" in p.name
                or p.name.endswith(".tmp")]
    assert not partials, partials[:5]
    win.close()
    assert not c._worker.is_running()
    return {"actions": done, "seconds": round(elapsed, 1), "seed": seed, "exceptions": len(exceptions),
            "unexpected_failures": len(soak.failures), "checks": soak.checks, "counts": dict(soak.counts),
            "requests": len(soak.requests), "seconds_by_action": {k: round(v, 1) for k, v in soak.times.items()}}


def _report(summary: dict) -> None:
    line = (f"soak: {summary['actions']} actions in {summary['seconds']} s (seed {summary['seed']}), "
            f"{summary['checks']} consistency checks, {summary['requests']} recomputes, "
            f"exceptions {summary['exceptions']}, crashes 0")
    print("\n" + line + "\n" + json.dumps(summary["counts"], sort_keys=True)
          + "\n" + json.dumps(summary["seconds_by_action"], sort_keys=True))
    if os.environ.get("SOAK_REPORT"):
        Path(os.environ["SOAK_REPORT"]).write_text(json.dumps(summary, indent=1) + "\n")


@pytest.mark.skipif(SOAK_SECONDS > 0, reason="SOAK_SECONDS is set: the long run (-m slow) replaces the short one")
def test_soak_short(qtbot, settings_file, tmp_path, monkeypatch, capfd):
    summary = run_soak(qtbot, settings_file, tmp_path, monkeypatch, SOAK_ACTIONS, 0, SOAK_SEED)
    _out, err = capfd.readouterr()
    assert "Traceback" not in err, err[-3000:]
    with capfd.disabled():
        _report(summary)


@pytest.mark.slow
@pytest.mark.skipif(SOAK_SECONDS <= 0, reason="set SOAK_SECONDS (e.g. 600) for the long soak")
def test_soak_long(qtbot, settings_file, tmp_path, monkeypatch, capfd):
    summary = run_soak(qtbot, settings_file, tmp_path, monkeypatch, 0, SOAK_SECONDS, SOAK_SEED)
    _out, err = capfd.readouterr()
    assert "Traceback" not in err, err[-3000:]
    with capfd.disabled():
        _report(summary)


def test_the_soaks_walk_of_its_folder_survives_a_vanishing_folder(tmp_path, monkeypatch):
    """A background export's staging folder vanishes while the soak looks for .json files to
    open: the walk skips it (the soak must fail on the app's faults only)."""
    from types import SimpleNamespace
    kept = tmp_path / "out" / "d1" / "manifest.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{}")
    (tmp_path / "out" / "vanishing").mkdir()
    (tmp_path / "lessons").mkdir()
    (tmp_path / "lessons" / "broken.json").write_text("{")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("vanishing"):       # listed by its parent, gone when entered
            raise FileNotFoundError(2, "No such file or directory", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert Soak.saved_json(SimpleNamespace(tmp=tmp_path), 3) == [str(kept)]
