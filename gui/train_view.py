"""The Train view: train the chapter's MultiHeadAttention on a toy task and scrub through its snapshots.

Left: the task (one paragraph each), its settings, Start / Pause / Cancel, progress, Save / Open run.
Right: the loss curve with a marker at the current snapshot, the timeline (slider + Play) and
every head's attn_weights on the probe sequence, one map per layer × head; hovering a cell
names its query and key tokens and its value. Below: a layer to "Open in stepper" (the
``open_in_stepper`` signal; gui.train_window shows that layer of the snapshot as stage 4) and
"Export snapshot as CSV…" (every head of the shown snapshot, core.train.folder).

Training runs off the UI thread (``core.train.runner.train`` through gui.tasks, at a lower
priority); snapshots and progress (batched, ≤ ~30 signals a second) come back as queued signals. While it trains, a 50 ms frame draws at most one
thing, the newest snapshot or the grown curves (at most every 100 ms), so the UI thread is never
busy for long (``python main.py bench --parts 6`` measures it); the loss plot keeps fixed ranges
and cached axes, so a frame does not redraw them.
The view takes its settings (and, for tests, the training function) in its constructor and
reads no other view.
"""
from __future__ import annotations

import gc
import math
import time
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Signal

from core.train.budget import check_train_memory
from core.train.metrics import expected_cells, previous_token_score, repeat_start
from core.train.settings import (DEFAULT_TEXT, DEVICES, MAX_BATCH, MAX_D_MODEL, MAX_HEADS, MAX_LAYERS, MAX_SEQ_LEN,
                                 MAX_STEPS, MAX_VOCAB, TASK_EXPLANATIONS, TASK_TITLES, TASKS, TrainSettings,
                                 TrainSettingsError, defaults_for)
from gui.tasks import TaskRunner
from gui.train_model import TrainModel, train_work

PLAY_INTERVAL_MS = 120     # one snapshot per tick while playing
FRAME_MS = 50              # while training: at most one redraw (the newest snapshot or the curves) per frame
REDRAW_INTERVAL_MS = 100   # loss curves redrawn at most this often while training
START_LOSS_HEADROOM = 1.15  # the loss axis starts this far above ln(vocabulary): random weights start near it
HOVER_HINT = "rows: queries, columns: keys · hover a cell for its tokens and weight"
REPEAT_HINT = "rows: queries, columns: keys · dashed: the repeat starts · hover a cell"
GUIDE_PEN = (255, 70, 70, 150)        # the expected stripe: faint red cell outlines
REPEAT_PEN = (255, 255, 255, 170)     # where the probe's repeat starts: dashed white lines
# what each task's score plot and titles call the score of its pattern (expected_cells)
SCORE_NAMES = {"induction": ("induction score", "ind"), "previous_token": ("previous-token score", "prev"),
               "next_word": ("verb → subject score", "subj")}
LAYER_HUES = (25, 215, 130, 285, 0, 170, 55, 320)     # the score curves: one hue per layer, one shade per head


def head_color(layer: int, head: int, heads: int):
    """A head's colour in the score plot: its layer's hue, darker for later heads."""
    from PySide6.QtGui import QColor
    value = 235 - int(120 * head / max(heads - 1, 1))
    return QColor.fromHsv(LAYER_HUES[layer % len(LAYER_HUES)], 200, value)


def head_scores(task: str, attn_weights: np.ndarray, cells) -> tuple[np.ndarray, np.ndarray]:
    """((L, h) previous-token scores, (L, h) scores of the task's pattern: the mean weight on
    ``cells`` (queries, keys), NaN where there are none)."""
    previous = previous_token_score(attn_weights)
    queries, keys = cells
    if not len(queries):
        return previous, np.full(attn_weights.shape[:-2], np.nan, dtype=np.float32)
    return previous, attn_weights[..., queries, keys].mean(axis=-1)

# (field, label, minimum, maximum) of the whole-number settings, in the form's order
_INT_FIELDS = (("vocab_size", "vocabulary", 2, MAX_VOCAB), ("seq_len", "tokens n", 2, MAX_SEQ_LEN),
               ("d_model", "d_model", 1, MAX_D_MODEL), ("num_heads", "heads", 1, MAX_HEADS),
               ("num_layers", "layers", 1, MAX_LAYERS), ("steps", "steps", 1, MAX_STEPS),
               ("batch_size", "batch", 1, MAX_BATCH), ("snapshot_every", "snapshot every", 1, MAX_STEPS))


def loss_axis_top(loss: float) -> float:
    """The loss axis' top for a largest loss: the next multiple of 0.5 at least 5 % above it."""
    return 0.5 * math.ceil(max(loss, 0.0) * 1.05 / 0.5 + 1e-9) or 0.5


class _HeadImage(pg.ImageItem):
    """One head's map; reports the hovered cell (row, column) or None."""

    def __init__(self, on_hover: Callable[[tuple[int, int] | None], None]):
        super().__init__(axisOrder="row-major")
        self._on_hover = on_hover
        self.setAcceptHoverEvents(True)

    def hoverEvent(self, ev):
        if ev.isExit() or self.image is None:
            self._on_hover(None)
            return
        pos = ev.pos()
        row, col = int(math.floor(pos.y())), int(math.floor(pos.x()))
        rows, cols = self.image.shape
        self._on_hover((row, col) if 0 <= row < rows and 0 <= col < cols else None)


def read_run(path: str, _task) -> tuple:
    """Open run…'s work (gui.tasks.TaskRunner): (path, TrainRun or None, one-line error)."""
    from core.train.runfile import RunFileError, load_run
    try:
        return path, load_run(path), ""
    except RunFileError as exc:
        return path, None, str(exc)


class TrainView(QtWidgets.QWidget):
    """Train, watch and scrub. ``settings``: what the form starts with; ``train_fn``: core's train."""

    run_changed = Signal(object)   # the finished or opened TrainRun (None while training)
    open_in_stepper = Signal(object, int, int)   # (TrainRun, snapshot index, layer): show it as stage 4

    def __init__(self, settings: TrainSettings | None = None, train_fn: Callable | None = None, parent=None):
        super().__init__(parent)
        if train_fn is None:
            from core.train.runner import train as train_fn
        self._train_fn = train_fn
        self.model = TrainModel()                      # the run, snapshots, curves and training (Qt-free)
        self._tasks = TaskRunner(train_work, "train", low_priority=True, thread_per_task=True, parent=self)
        self._tasks.partial.connect(self.model.add_snapshot)
        self._tasks.progress.connect(self.model.report)
        self._tasks.done.connect(self.model.end)
        # Open run… reads the file off the UI thread (checked and bounded: core.train.runfile)
        self._run_reader = TaskRunner(read_run, "run-reader", thread_per_task=True, drop_stale=True, parent=self)
        self._run_reader.done.connect(self._on_run_read)
        self.model.probe_changed.connect(self._on_started)
        self.model.losses_added.connect(self._on_progress)
        self.model.snapshot_added.connect(self._on_snapshot)
        self.model.run_changed.connect(self._on_run_changed)
        self.model.ended.connect(self._on_outcome)
        self._grid_shape = (0, 0)
        self.images: dict[tuple[int, int], _HeadImage] = {}
        self._plots: dict[tuple[int, int], pg.PlotItem] = {}
        self._curves_dirty = False
        self._curves_drawn_at = 0.0
        self._pending_snapshot: int | None = None    # arrived while training, not drawn yet
        self._last_frame = ""                        # what the last frame drew: "maps" or "curves"
        self._build(settings or defaults_for("induction"))
        self._frame_timer = QtCore.QTimer(self, interval=FRAME_MS)
        self._frame_timer.timeout.connect(self._frame)
        self._play_timer = QtCore.QTimer(self, interval=PLAY_INTERVAL_MS)
        self._play_timer.timeout.connect(self._play_tick)

    # ---- layout -------------------------------------------------------------------------------
    def _build(self, settings: TrainSettings) -> None:
        left = QtWidgets.QWidget()
        form_box = QtWidgets.QVBoxLayout(left)
        self.task_box = QtWidgets.QComboBox()
        for task in TASKS:
            self.task_box.addItem(TASK_TITLES[task], task)
        self.explanation = QtWidgets.QLabel(wordWrap=True)
        self.explanation.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        form = QtWidgets.QFormLayout()
        self.fields: dict[str, QtWidgets.QWidget] = {}
        for name, label, lo, hi in _INT_FIELDS:
            box = QtWidgets.QSpinBox(minimum=lo, maximum=hi)
            self.fields[name] = box
            form.addRow(label, box)
        self.fields["lr"] = QtWidgets.QDoubleSpinBox(decimals=5, minimum=0.00001, maximum=1.0, singleStep=0.0005)
        form.addRow("learning rate", self.fields["lr"])
        self.fields["seed"] = QtWidgets.QLineEdit()
        form.addRow("seed", self.fields["seed"])
        self.fields["device"] = QtWidgets.QComboBox()
        self.fields["device"].addItems(list(DEVICES))
        form.addRow("device", self.fields["device"])
        text_row = QtWidgets.QVBoxLayout()           # the path on its own line, its buttons below
        text_buttons = QtWidgets.QHBoxLayout()
        self.fields["text_path"] = QtWidgets.QLineEdit(placeholderText="a UTF-8 .txt file")
        self.browse_button = QtWidgets.QPushButton("Choose…")
        self.browse_button.clicked.connect(self._choose_text)
        self.ready_text_button = QtWidgets.QPushButton("Ready text")
        self.ready_text_button.setToolTip("agreement.txt: the toy grammar the app ships, where a verb agrees "
                                          "with its subject across a clause (core/train/corpus.py writes it)")
        self.ready_text_button.clicked.connect(lambda: self._set_text(DEFAULT_TEXT))
        text_row.addWidget(self.fields["text_path"])
        text_buttons.addWidget(self.browse_button)
        text_buttons.addWidget(self.ready_text_button)
        text_row.addLayout(text_buttons)
        self.text_label = QtWidgets.QLabel("text")
        form.addRow(self.text_label, text_row)
        self.start_button = QtWidgets.QPushButton("Start")
        self.pause_button = QtWidgets.QPushButton("Pause", enabled=False)
        self.cancel_button = QtWidgets.QPushButton("Cancel", enabled=False)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.cancel_button):
            buttons.addWidget(b)
        self.progress_bar = QtWidgets.QProgressBar(minimum=0, maximum=1, value=0)
        self.status = QtWidgets.QLabel(wordWrap=True)
        files = QtWidgets.QHBoxLayout()
        self.save_button = QtWidgets.QPushButton("Save run…", enabled=False)
        self.open_button = QtWidgets.QPushButton("Open run…")
        self.save_button.clicked.connect(self._save_dialog)
        self.open_button.clicked.connect(self._open_dialog)
        files.addWidget(self.save_button)
        files.addWidget(self.open_button)
        form_box.addWidget(QtWidgets.QLabel("Task"))
        form_box.addWidget(self.task_box)
        form_box.addWidget(self.explanation)
        form_box.addLayout(form)
        form_box.addLayout(buttons)
        form_box.addWidget(self.progress_bar)
        form_box.addWidget(self.status)
        form_box.addLayout(files)
        form_box.addStretch(1)
        left.setFixedWidth(330)

        self.loss_plot = pg.PlotWidget(background="w")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setLabel("left", "loss")
        # lower left: the curves start high on the left and end low on the right, so it stays clear
        self.loss_plot.addLegend(offset=(10, -10), brush=pg.mkBrush(255, 255, 255, 220))
        self.loss_plot.showGrid(x=True, y=True, alpha=0.2)
        self.curve_loss = self.loss_plot.plot([], [], pen=pg.mkPen((40, 40, 40), width=1.5), name="loss (all)")
        self.curve_first = self.loss_plot.plot([], [], pen=pg.mkPen((200, 120, 40), width=1.5), name="random part")
        self.curve_second = self.loss_plot.plot([], [], pen=pg.mkPen((40, 110, 190), width=1.5), name="repeat")
        self.marker = pg.InfiniteLine(angle=90, pen=pg.mkPen((200, 40, 40), width=1.5))
        self.marker.setVisible(False)
        self.loss_plot.addItem(self.marker)
        # the snapshot's own losses (on the fixed evaluation batch) on the marker
        self.marker_points = pg.ScatterPlotItem(size=8, pen=pg.mkPen((200, 40, 40)), brush=pg.mkBrush(255, 255, 255))
        self.loss_plot.addItem(self.marker_points)
        self.loss_plot.setMinimumHeight(170)
        # Fixed ranges (see _fit_loss_range) and cached axes: the axes and their grid are drawn
        # once into a pixmap and only redrawn when the range changes, instead of on every paint
        # of the plot (the marker moves and the curves grow several times a second while training).
        self.loss_plot.disableAutoRange()
        for side in ("bottom", "left"):
            self.loss_plot.getAxis(side).setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._loss_range = (0, 0.0)            # (steps, top of the loss axis) shown; see _fit_loss_range
        self._start_loss_range(settings)

        # beside the loss: each head's score over the snapshots (the induction score jumps when the
        # induction head forms: the phase change), in the loss plot's style
        self.score_plot = pg.PlotWidget(background="w")
        self.score_plot.setLabel("bottom", "step")
        self.score_plot.setLabel("left", SCORE_NAMES[settings.task][0])
        self.score_plot.showGrid(x=True, y=True, alpha=0.2)
        self.score_plot.addLegend(offset=(10, 10), brush=pg.mkBrush(255, 255, 255, 220))   # upper left: starts low
        self.score_plot.disableAutoRange()
        self.score_plot.setRange(xRange=(0, settings.steps), yRange=(0, 1), padding=0.02)
        for side in ("bottom", "left"):
            self.score_plot.getAxis(side).setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.score_marker = pg.InfiniteLine(angle=90, pen=pg.mkPen((200, 40, 40), width=1.5))
        self.score_marker.setVisible(False)
        self.score_plot.addItem(self.score_marker)
        self.score_plot.setMinimumHeight(170)
        self.score_curves: dict[tuple[int, int], pg.PlotDataItem] = {}
        self._scores: list[tuple[int, np.ndarray, np.ndarray]] = []   # per snapshot: (step, previous, pattern)
        self._task = settings.task          # the task of the snapshots shown
        self._cells = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # expected_cells on the probe
        self._repeat_start: int | None = None

        self.play_button = QtWidgets.QPushButton("Play", enabled=False)
        self.play_button.clicked.connect(self.toggle_play)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, enabled=False)
        self.slider.valueChanged.connect(self.show_snapshot)
        self.step_label = QtWidgets.QLabel("no run yet")
        timeline = QtWidgets.QHBoxLayout()
        timeline.addWidget(self.play_button)
        timeline.addWidget(self.slider, 1)
        timeline.addWidget(self.step_label)
        # what to do with the shown snapshot: open one layer in the stepper, export every head
        self.layer_box = QtWidgets.QComboBox(enabled=False)
        self.layer_box.setToolTip("The layer to open in the stepper")
        self.stepper_button = QtWidgets.QPushButton("Open in stepper", enabled=False)
        self.stepper_button.setToolTip("Step through this layer of the shown snapshot as stage 4 (multi-head "
                                       "attention): its trained W_query, W_key, W_value, W_out on the probe")
        self.stepper_button.clicked.connect(self._open_in_stepper)
        self.export_button = QtWidgets.QPushButton("Export snapshot as CSV…", enabled=False)
        self.export_button.setToolTip("Write every head's attn_weights of the shown snapshot as CSV, with manifest.json")
        self.export_button.clicked.connect(self._export_dialog)
        self.hover_label = QtWidgets.QLabel(HOVER_HINT)
        self.hover_label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.hover_label.setMinimumWidth(100)        # a long hover text never widens the window
        self.guide_box = QtWidgets.QCheckBox("expected stripe (red)", checked=True)
        self.guide_box.setToolTip("Outline, faint red, the cells a head with the task's pattern attends to "
                                  "(induction: the token after the current token's earlier copy)")
        self.guide_box.toggled.connect(self._show_guides)
        snapshot_row = QtWidgets.QHBoxLayout()
        snapshot_row.addWidget(self.hover_label, 1)       # the hovered cell, or how to read the maps
        snapshot_row.addWidget(self.guide_box)
        snapshot_row.addWidget(self.layer_box)
        snapshot_row.addWidget(self.stepper_button)
        snapshot_row.addWidget(self.export_button)

        self.maps = pg.GraphicsLayoutWidget()
        self.maps.setBackground("w")

        curves = QtWidgets.QHBoxLayout()
        curves.addWidget(self.loss_plot, 1)
        curves.addWidget(self.score_plot, 1)
        right = QtWidgets.QVBoxLayout()
        right.addLayout(curves, 2)
        right.addLayout(timeline)
        right.addWidget(self.maps, 5)
        right.addLayout(snapshot_row)
        root = QtWidgets.QHBoxLayout(self)
        root.addWidget(left)
        root.addLayout(right, 1)

        self.task_box.currentIndexChanged.connect(self._task_changed)
        self.set_settings(settings)
        self._build_grid(settings.num_layers, settings.num_heads)
        self._fit_maps(settings.context_length)

    # ---- settings form ------------------------------------------------------------------------
    def set_settings(self, s: TrainSettings) -> None:
        with QtCore.QSignalBlocker(self.task_box):
            self.task_box.setCurrentIndex(TASKS.index(s.task))
        for name, *_ in _INT_FIELDS:
            self.fields[name].setValue(getattr(s, name))
        self.fields["lr"].setValue(s.lr)
        self.fields["seed"].setText(str(s.seed))
        self.fields["device"].setCurrentText(s.device)
        self.fields["text_path"].setText(s.text_path)
        self._show_task(s.task)

    def _show_task(self, task: str) -> None:
        self.explanation.setText(TASK_EXPLANATIONS[task])
        for w in (self.fields["text_path"], self.browse_button, self.ready_text_button, self.text_label):
            w.setVisible(task == "next_word")

    def _set_text(self, path: str) -> None:
        self.fields["text_path"].setText(path)
        self.fields["text_path"].setCursorPosition(len(path))     # the file's name shows, not the folders

    def _task_changed(self) -> None:
        task = self.task_box.currentData()
        keep = {"seed": self.fields["seed"].text(), "device": self.fields["device"].currentText(),
                "text": self.fields["text_path"].text()}
        self.set_settings(defaults_for(task))
        self.fields["seed"].setText(keep["seed"])
        self.fields["device"].setCurrentText(keep["device"])
        self._set_text(keep["text"] or (DEFAULT_TEXT if task == "next_word" else ""))

    def settings(self) -> TrainSettings:
        """The form as settings; TrainSettingsError names the field that is wrong."""
        values = {name: self.fields[name].value() for name, *_ in _INT_FIELDS}
        seed_text = self.fields["seed"].text().strip()
        try:
            seed = int(seed_text)
        except ValueError:
            raise TrainSettingsError("seed", f"{seed_text!r} is not a whole number") from None
        return TrainSettings(task=self.task_box.currentData(), lr=float(self.fields["lr"].value()), seed=seed,
                             device=self.fields["device"].currentText(),
                             text_path=self.fields["text_path"].text().strip(), **values)

    def _choose_text(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Text to train on", "", "Text (*.txt);;All files (*)")
        if path:
            self._set_text(path)

    # ---- training -----------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self.model.training

    @property
    def run(self):
        """The finished or opened TrainRun (the model's)."""
        return self.model.run

    @property
    def snapshots(self) -> list:
        return self.model.snapshots

    @property
    def probe_tokens(self) -> tuple[str, ...]:
        return self.model.probe_tokens

    def start(self) -> None:
        if self.training:
            return
        try:
            settings = self.settings()
            check_train_memory(settings)      # too big for memory: refused before anything here changes
        except TrainSettingsError as exc:     # (the guard's error names no field)
            self._say(f"{exc.field}: {exc.message}" if exc.field else exc.message, error=True)
            return
        self._stop_playing()
        from core.train.runner import TrainControl
        self.model.begin(settings, TrainControl())
        self._set_probe(settings.task, ())
        self._start_score_plot(settings)
        self.progress_bar.setRange(0, settings.steps)
        self.progress_bar.setValue(0)
        self._show_empty_grid(settings.num_layers, settings.num_heads)
        self._fit_maps(settings.context_length)
        self.marker.setVisible(False)
        self.marker_points.setData([], [])
        self._start_loss_range(settings)
        self._redraw_curves(force=True)
        self.slider.setEnabled(False)
        self.play_button.setEnabled(False)
        self._set_running(True)
        self._say(f"training {TASK_TITLES[settings.task].lower()}…")
        self.run_changed.emit(None)
        self._pending_snapshot = None
        self._frame_timer.start()
        self._tasks.submit((settings, self._train_fn, self.model.control))

    def toggle_pause(self) -> None:
        if not self.training:
            return
        control = self.model.control
        if control.paused:
            control.resume()
            self.pause_button.setText("Pause")
            self._say("training…")
        else:
            control.pause()
            self.pause_button.setText("Resume")
            self._say(f"paused at step {self.progress_bar.value()}")

    def cancel(self) -> None:
        if self.training:
            self.model.control.cancel()
            self._say("cancelling…")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.pause_button.setText("Pause")
        self.cancel_button.setEnabled(running)
        self.open_button.setEnabled(not running)
        self.save_button.setEnabled(not running and self.run is not None)
        for w in (self.layer_box, self.stepper_button, self.export_button):
            w.setEnabled(not running and self.run is not None)
        self.task_box.setEnabled(not running)
        for w in self.fields.values():
            w.setEnabled(not running)

    def _on_progress(self, batch: list) -> None:
        """A batch of steps' losses (in the model's history); the curves are redrawn by the next frame."""
        if batch:
            self.progress_bar.setValue(batch[-1][0])
            self._curves_dirty = True

    def _on_started(self, tokens: tuple) -> None:
        self._set_probe(self._task, tokens)
        # The first run of a session builds its model through torch._refs, which imports
        # torch._dynamo and sympy (~200,000 objects) on the training thread; the GUI thread's
        # collector (gui/gc_guard.py) would then scan them all with every full collection
        # (25–80 ms pauses). As after the first trace (gui.app.freeze_gc_after_first_trace):
        # into the permanent generation with them (cheap: the generations' lists are spliced).
        gc.freeze()

    def _on_snapshot(self, index: int) -> None:
        following = self.slider.value() >= index - 1
        self._add_scores(self.snapshots[index])
        with QtCore.QSignalBlocker(self.slider):
            self.slider.setRange(0, len(self.snapshots) - 1)
        self.slider.setEnabled(True)
        if following:
            with QtCore.QSignalBlocker(self.slider):
                self.slider.setValue(len(self.snapshots) - 1)
            self._pending_snapshot = len(self.snapshots) - 1     # drawn by the next frame
        else:
            self._update_step_label(self.slider.value())

    def _frame(self) -> None:
        """One frame while training: draw the newest snapshot that arrived (a burst of them is
        drawn once) or the grown curves, not both, so the maps and the loss plot are not
        repainted in one pass; they take turns when both are due."""
        now = time.perf_counter()
        curves_due = self._curves_dirty and now - self._curves_drawn_at >= REDRAW_INTERVAL_MS / 1000
        maps_due = self._pending_snapshot is not None
        if maps_due and not (curves_due and self._last_frame == "maps"):
            self._draw_pending_snapshot()
            self._last_frame = "maps"
        elif curves_due:
            self._redraw_curves()
            self._curves_drawn_at = now
            self._last_frame = "curves"

    def _draw_pending_snapshot(self) -> None:
        index, self._pending_snapshot = self._pending_snapshot, None
        if index is not None and index == self.slider.value():     # the learner may have scrubbed since
            self.show_snapshot(index)

    def _on_outcome(self, outcome: tuple) -> None:
        """The training ended: ("finished", run), ("cancelled",) or ("failed", field, message)."""
        kind, *rest = outcome              # a finished run is the model's (and shown) already
        {"finished": self._on_finished, "cancelled": self._on_cancelled, "failed": self._on_failed}[kind](*rest)
        self._end_run()

    def _on_finished(self, run) -> None:
        from core.train.metrics import best_heads_text
        heads = ""
        if run.settings.task != "next_word" and run.snapshots:
            heads = "\n" + best_heads_text(run.snapshots[-1].attn_weights, run.probe_tokens, run.settings.task)
        self._say(f"done: {run.settings.steps} steps in {run.elapsed_s:.1f} s on {run.device}" + heads
                  + "".join(f"\nnote: {n}" for n in run.notes))

    def _on_failed(self, field: str, message: str) -> None:
        self._say(f"{field}: {message}" if field else message, error=True)

    def _on_cancelled(self) -> None:
        self._say(f"cancelled at step {self.progress_bar.value()}; the snapshots so far can be scrubbed "
                  "but not saved")

    def _end_run(self) -> None:
        self._frame_timer.stop()
        self._draw_pending_snapshot()
        self._redraw_curves()
        self._set_running(False)
        self.play_button.setEnabled(len(self.snapshots) > 1)

    def _adopt(self, run) -> None:
        """Show a finished or opened run: its curves (both halves for induction) and snapshots."""
        self.model.adopt(run)

    def _on_run_changed(self, run) -> None:
        self._set_probe(run.settings.task, run.probe_tokens)
        self._start_score_plot(run.settings)
        for snap in self.snapshots:
            self._add_scores(snap)
        s = run.settings
        self._start_loss_range(s)
        self._pending_snapshot = None
        if self._grid_shape != (s.num_layers, s.num_heads):
            self._build_grid(s.num_layers, s.num_heads)
        with QtCore.QSignalBlocker(self.slider):
            self.slider.setRange(0, len(self.snapshots) - 1)
            self.slider.setValue(len(self.snapshots) - 1)
        self.slider.setEnabled(True)
        self.play_button.setEnabled(len(self.snapshots) > 1)
        self.save_button.setEnabled(not self.training)
        with QtCore.QSignalBlocker(self.layer_box):
            self.layer_box.clear()
            for layer in range(s.num_layers):
                self.layer_box.addItem(f"layer {layer}", layer)
            self.layer_box.setCurrentIndex(s.num_layers - 1)     # the last layer: where induction heads live
        for w in (self.layer_box, self.stepper_button, self.export_button):
            w.setEnabled(not self.training)
        self._redraw_curves(force=True)
        self.show_snapshot(len(self.snapshots) - 1)
        self.run_changed.emit(run)

    # ---- curves, timeline and maps ------------------------------------------------------------
    def _redraw_curves(self, force: bool = False) -> None:
        if not (self._curves_dirty or force):
            return
        self._curves_dirty = False
        h = self.model.history
        steps = np.asarray(h["step"], dtype=np.float64)
        self.curve_loss.setData(steps, np.asarray(h["loss"], dtype=np.float64))
        halves = len(h["first"]) == len(steps) and len(steps) and not np.all(np.isnan(h["first"]))
        self.curve_first.setData(steps if halves else [], np.asarray(h["first"]) if halves else [])
        self.curve_second.setData(steps if halves else [], np.asarray(h["second"]) if halves else [])
        self._legend_halves(self._task == "induction")
        if len(steps):
            self._fit_loss_range(*(np.nanmax(np.asarray(h[k], dtype=np.float64), initial=0.0)
                                   for k in ("loss", "first", "second")))
        self._redraw_scores()

    def _legend_halves(self, shown: bool) -> None:
        """The loss legend names the random part and the repeat only for the induction task."""
        legend = self.loss_plot.getPlotItem().legend
        named = {label.text for _, label in legend.items}
        for curve, name in ((self.curve_first, "random part"), (self.curve_second, "repeat")):
            if shown and name not in named:
                legend.addItem(curve, name)
            elif not shown and name in named:
                legend.removeItem(curve)

    def _start_loss_range(self, settings: TrainSettings) -> None:
        """The loss plot's range for a run of these settings, set before it starts: its steps
        across and a top above ln(vocabulary), the loss of a model that has learned nothing yet;
        when the form's settings are unchanged, the axes drawn for them are kept."""
        self._total_steps = settings.steps
        self._fit_loss_range(START_LOSS_HEADROOM * math.log(settings.vocab_size), fresh=True)

    def _fit_loss_range(self, *losses, fresh: bool = False) -> None:
        """Steps 0..the run's steps across, 0..a round value above every loss shown so far up
        (``fresh``: above ``losses`` only): the range changes a few times per run, not on every
        redraw (each change redraws both axes)."""
        finite = [float(v) for v in losses if math.isfinite(v)]
        top = max([0.0 if fresh else self._loss_range[1]] + [loss_axis_top(v) for v in finite])
        wanted = (self._total_steps, top)
        if wanted != self._loss_range:
            self._loss_range = wanted
            self.loss_plot.setRange(xRange=(0, wanted[0]), yRange=(0, wanted[1] or 1.0), padding=0.02)

    def _build_grid(self, layers: int, heads: int) -> None:
        self.maps.clear()
        self.images.clear()
        self._plots.clear()
        self.guides: dict[tuple[int, int], pg.ScatterPlotItem] = {}
        self.repeat_lines: dict[tuple[int, int], pg.PlotCurveItem] = {}
        self._map_tokens = 0          # the new plots' range: set by _fit_maps
        cmap = pg.colormap.get("viridis")
        for layer in range(layers):
            for head in range(heads):
                plot = self.maps.addPlot(row=layer, col=head)
                plot.setTitle(f"layer {layer} · head {head}", size="8pt")
                plot.invertY(True)
                plot.setAspectLocked(True)
                plot.hideAxis("bottom")
                plot.hideAxis("left")
                plot.setMouseEnabled(False, False)
                plot.hideButtons()
                image = _HeadImage(lambda cell, l=layer, h=head: self._hover(l, h, cell))
                image.setColorMap(cmap)
                plot.addItem(image)
                # the expected stripe: an outline on each cell the pattern attends to (one cell wide)
                guide = pg.ScatterPlotItem(symbol="s", size=1.0, pxMode=False, brush=None,
                                           pen=pg.mkPen(GUIDE_PEN, width=1.2))
                guide.setZValue(10)
                plot.addItem(guide)
                # where the repeat starts: a dashed line below the last query and right of the last
                # key before it
                line = pg.PlotCurveItem(connect="pairs", pen=pg.mkPen(REPEAT_PEN, width=1.2,
                                                                      style=QtCore.Qt.PenStyle.DashLine))
                line.setZValue(11)
                plot.addItem(line)
                self.images[(layer, head)] = image
                self._plots[(layer, head)] = plot
                self.guides[(layer, head)] = guide
                self.repeat_lines[(layer, head)] = line
        bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=cmap, interactive=False, width=12)
        bar.setImageItem(list(self.images.values()))
        for side in ("left", "right", "top", "bottom"):   # its frame and ticks never change: drawn once
            bar.getAxis(side).setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.maps.addItem(bar, row=0, col=heads, rowspan=layers)
        self._grid_shape = (layers, heads)
        self._draw_guides()

    # ---- the probe's guides and the heads' scores -----------------------------------------------
    def _set_probe(self, task: str, tokens) -> None:
        """The task and probe of the snapshots shown: the cells of the expected stripe and the
        repeat's start (induction), drawn on every head's map."""
        self._task = task
        tokens = tuple(tokens)
        self._cells = expected_cells(task, tokens) if tokens else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self._repeat_start = repeat_start(tokens) if task == "induction" and tokens else None
        self._draw_guides()
        self.hover_label.setText(self._hint())

    def _hint(self) -> str:
        return HOVER_HINT if self._repeat_start is None else REPEAT_HINT

    def _draw_guides(self) -> None:
        queries, keys = self._cells
        T = len(self.probe_tokens)
        for key, guide in self.guides.items():
            guide.setData(keys + 0.5, queries + 0.5)             # cell centres: x = key column, y = query row
            start = self._repeat_start
            if start is None:
                self.repeat_lines[key].setData([], [])
            else:                                                 # a row boundary and a column boundary
                self.repeat_lines[key].setData([0, T, start, start], [start, start, 0, T])
        self._show_guides()

    def _show_guides(self, *_) -> None:
        for guide in self.guides.values():
            guide.setVisible(self.guide_box.isChecked())

    def _start_score_plot(self, settings: TrainSettings) -> None:
        """An empty score plot for a run of these settings: one curve per head, coloured by layer."""
        self._scores = []
        layers, heads = settings.num_layers, settings.num_heads
        if set(self.score_curves) != {(l, h) for l in range(layers) for h in range(heads)}:
            for curve in self.score_curves.values():
                self.score_plot.removeItem(curve)
            self.score_plot.getPlotItem().legend.clear()
            self.score_curves = {}
            for layer in range(layers):
                for head in range(heads):
                    self.score_curves[(layer, head)] = self.score_plot.plot(
                        [], [], pen=pg.mkPen(head_color(layer, head, heads), width=1.5),
                        name=f"layer {layer}" if head == 0 else None)
        for curve in self.score_curves.values():
            curve.setData([], [])
        self.score_plot.setLabel("left", SCORE_NAMES[settings.task][0])
        self.score_plot.setRange(xRange=(0, settings.steps), yRange=(0, 1), padding=0.02)
        self.score_marker.setVisible(False)

    def _add_scores(self, snap) -> None:
        previous, pattern = head_scores(self._task, snap.attn_weights, self._cells)
        self._scores.append((snap.step, previous, pattern))
        self._curves_dirty = True

    def _redraw_scores(self) -> None:
        """Each head's score over the snapshots: the task's pattern (previous-token where the probe
        has none)."""
        if not self._scores:
            return
        steps = np.array([step for step, *_ in self._scores], dtype=np.float64)
        pattern = np.stack([p for *_, p in self._scores])            # (S, L, h)
        if np.all(np.isnan(pattern)):
            pattern = np.stack([p for _, p, _ in self._scores])
            self.score_plot.setLabel("left", SCORE_NAMES["previous_token"][0])
        else:
            self.score_plot.setLabel("left", SCORE_NAMES[self._task][0])
        for (layer, head), curve in self.score_curves.items():
            if layer < pattern.shape[1] and head < pattern.shape[2]:
                curve.setData(steps, pattern[:, layer, head].astype(np.float64))

    def head_title(self, index: int, layer: int, head: int) -> str:
        """A head's title at snapshot ``index``: its previous-token score, and its pattern's score."""
        title = f"layer {layer} · head {head}"
        if not 0 <= index < len(self._scores):
            return title
        _, previous, pattern = self._scores[index]
        title += f" · prev {float(previous[layer, head]):.2f}"
        if self._task != "previous_token" and not math.isnan(float(pattern[layer, head])):
            title += f" · {SCORE_NAMES[self._task][1]} {float(pattern[layer, head]):.2f}"
        return title

    def _fit_maps(self, tokens: int) -> None:
        """Each head's plot shows a tokens × tokens map; set when the probe's length changes (known
        from the settings before the run starts): with automatic ranging every new image would
        measure its bounds and range its plot again."""
        if tokens == self._map_tokens:
            return
        for plot in self._plots.values():
            plot.disableAutoRange()
            plot.setRange(xRange=(0, tokens), yRange=(0, tokens))     # the padding automatic ranging adds
        self._map_tokens = tokens

    def _set_title(self, layer: int, head: int, title: str) -> None:
        """A head's title, set only when its text changes: each setTitle lays the grid out again."""
        plot = self._plots[(layer, head)]
        if plot.titleLabel.text != title or not plot.titleLabel.isVisible():
            plot.setTitle(title, size="8pt")

    def _show_empty_grid(self, layers: int, heads: int) -> None:
        """The maps for a new run: the same plots when the shape is unchanged (building them is
        the slowest thing the view does), emptied until the first snapshot arrives."""
        if self._grid_shape != (layers, heads):
            self._build_grid(layers, heads)
        for (layer, head), image in self.images.items():
            image.clear()
            self._set_title(layer, head, f"layer {layer} · head {head}")

    def show_snapshot(self, index: int) -> None:
        """Draw snapshot ``index``: every head's weights, its step on the loss curve, the label."""
        if not 0 <= index < len(self.snapshots):
            return
        snap = self.snapshots[index]
        layers, heads = snap.attn_weights.shape[:2]
        if self._grid_shape != (layers, heads):
            self._build_grid(layers, heads)
        self._fit_maps(snap.attn_weights.shape[-1])
        for (layer, head), image in self.images.items():
            image.setImage(snap.attn_weights[layer, head], autoLevels=False, levels=(0.0, 1.0))
            self._set_title(layer, head, self.head_title(index, layer, head))
        self.marker.setPos(snap.step)
        self.marker.setVisible(True)
        self.score_marker.setPos(snap.step)
        self.score_marker.setVisible(True)
        losses = [v for v in (snap.loss, snap.loss_first, snap.loss_second) if not math.isnan(v)]
        self.marker_points.setData([snap.step] * len(losses), losses)
        self._fit_loss_range(*losses)
        self._update_step_label(index)

    def _update_step_label(self, index: int) -> None:
        snap = self.snapshots[index]
        text = f"step {snap.step} · snapshot {index + 1}/{len(self.snapshots)} · loss {snap.loss:.3f}"
        if not math.isnan(snap.loss_second):
            text += f" (random part {snap.loss_first:.2f}, repeat {snap.loss_second:.2f})"
        self.step_label.setText(text)

    def current_index(self) -> int:
        return self.slider.value()

    def _hover(self, layer: int, head: int, cell: tuple[int, int] | None) -> None:
        if cell is None or not self.snapshots:
            self.hover_label.setText(self._hint())
            return
        row, col = cell
        value = float(self.snapshots[self.slider.value()].attn_weights[layer, head, row, col])
        tokens = self.probe_tokens or tuple(str(i) for i in range(max(row, col) + 1))
        def where(i: int) -> str:
            start = self._repeat_start
            if start is None:
                return f"position {i}"
            copy = 2 * start - len(tokens)          # the first copy: the n tokens before the repeat
            return f"position {i}" + (", in the repeat" if i >= start else ", in the first copy" if i >= copy else "")
        self.hover_label.setText(f"layer {layer} · head {head}: query {tokens[row]!r} ({where(row)}) → "
                                 f"key {tokens[col]!r} ({where(col)}): attn_weights = {value:.4f}")

    def toggle_play(self) -> None:
        if self._play_timer.isActive():
            self._stop_playing()
            return
        if self.slider.value() >= self.slider.maximum():
            self.slider.setValue(0)
        self.play_button.setText("Stop")
        self._play_timer.start()

    def _play_tick(self) -> None:
        if self.slider.value() >= self.slider.maximum():
            self._stop_playing()
            return
        self.slider.setValue(self.slider.value() + 1)

    def _stop_playing(self) -> None:
        self._play_timer.stop()
        self.play_button.setText("Play")

    # ---- the shown snapshot: to the stepper, to CSV ------------------------------------------
    def _open_in_stepper(self) -> None:
        if self.run is not None and not self.training:
            self.open_in_stepper.emit(self.run, self.current_index(), int(self.layer_box.currentData() or 0))

    def export_snapshot_to(self, folder: str) -> bool:
        """Write every head's attn_weights of the shown snapshot into ``folder`` (atomic)."""
        from core.export import ExportError
        from core.train.folder import write_snapshot_folder
        if self.run is None:
            return False
        try:
            out, n = write_snapshot_folder(self.run, self.current_index(), folder)
        except ExportError as exc:
            self._say(f"export: {exc}", error=True)
            return False
        self._say(f"wrote {n} files of step {self.run.snapshots[self.current_index()].step} to {out}")
        return True

    def _export_dialog(self) -> None:
        if self.run is None:
            return
        step = self.run.snapshots[self.current_index()].step
        folder = QtWidgets.QFileDialog.getSaveFileName(self, "Export snapshot as CSV (a folder)",
                                                       f"{self.run.settings.task}_step_{step:06d}")[0]
        if folder:
            self.export_snapshot_to(folder)

    # ---- files --------------------------------------------------------------------------------
    def save_run_to(self, path: str) -> bool:
        from core.train.runfile import RunFileError, save_run
        if self.run is None:
            return False
        try:
            save_run(self.run, path)
        except RunFileError as exc:
            self._say(str(exc), error=True)
            return False
        self._say(f"saved the run to {path}")
        return True

    def open_run_from(self, path: str) -> bool:
        from core.train.runfile import RunFileError, load_run
        if self.training:
            return False
        try:
            run = load_run(path)
        except RunFileError as exc:
            self._say(str(exc), error=True)       # the run on screen stays as it was
            return False
        self.show_run(run)
        self._say(f"opened {path}")
        return True

    def open_run_in_background(self, path: str) -> None:
        """Open run…: the file is read and checked on a background thread; the run shows when it
        is in (or its one-line reason why not), the window never waits for the disk."""
        if self.training:
            return
        self._say(f"reading {path}…")
        self._run_reader.submit(path)

    def _on_run_read(self, outcome: tuple) -> None:
        path, run, error = outcome
        if error:
            self._say(error, error=True)          # the run on screen stays as it was
        elif not self.training and self.show_run(run):
            self._say(f"opened {path}")

    def show_run(self, run, index: int | None = None) -> bool:
        """Show a finished run (opened from a file or a lesson) at snapshot ``index`` (default: the
        last); refused (False) while a training runs."""
        if self.training:
            return False
        self._stop_playing()
        self.set_settings(run.settings)
        self._adopt(run)
        self.progress_bar.setRange(0, run.settings.steps)
        self.progress_bar.setValue(run.settings.steps)
        if index is not None and 0 <= index < len(run.snapshots):
            self.slider.setValue(index)
        self._say(f"{run.settings.task} run of {run.settings.steps} steps, {len(run.snapshots)} snapshots "
                  "(opened, not retrained)")
        return True

    def _save_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save run", "run.npz", "Training run (*.npz)")
        if path:
            self.save_run_to(path)

    def _open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open run", "", "Training run (*.npz)")
        if path:
            self.open_run_in_background(path)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #b00020;" if error else "")
        self.status.setText(text)

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Cancel a running training and wait for its thread (call before closing)."""
        self._stop_playing()
        if self.training:
            self._tasks.stop(timeout_ms)       # its outcome is not reported any more
            self.model.end(("cancelled",))

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)
