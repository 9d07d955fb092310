"""Stage 5's controller: loads the real model on first use and computes its traces off the UI thread.

The window starts without the model (reading 90 MB and building the tokenizer takes about a
second): the first time a step of the pretrained stage is shown, ``ensure_started`` asks the
worker thread for the trace (all 12 heads of the chosen layer) and the 6 × 12 gallery; the
model loads there, with its progress in ``status``. Results go into the view model
(``model.set_pretrained``). The options (text, layer, hide [CLS]/[SEP], full layer) are a
core.pretrained_config.PretrainedConfig; a bad one becomes a one-line ``error``. The head is
the view model's ``head`` (the trace holds every head). The latest request wins.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from gui.tasks import TaskRunner

EXAMPLE_TEXT = "The old dog chased the quick fox which bit him"   # core.pretrained_config.EXAMPLE_TEXT


@dataclass
class Options:
    """What the stage's controls set (the head is the view model's)."""

    text: str = EXAMPLE_TEXT
    layer: int = 0
    hide_special: bool = False
    full_layer: bool = False


@dataclass
class Outcome:
    trace: object = None          # core.pretrained.PretrainedTrace
    gallery: object = None        # core.pretrained.Gallery (None: the text did not change)
    error: str = ""               # one line
    status: str = ""
    gallery_text: str | None = None   # the text the gallery is for


def compute(options: Options, gallery_text: str | None, progress=lambda _s: None) -> Outcome:
    """Runs on the worker thread: load the model (first call), build the trace and, when the
    text changed, the gallery. Every failure becomes a one-line ``error``."""
    out = Outcome()
    try:
        from core import minilm
        from core.config import ConfigError
        from core.pretrained import build_pretrained, gallery
        from core.pretrained_config import PretrainedConfig
    except Exception as exc:  # a broken torch install: say so, do not crash
        out.error = f"cannot load the attention core: {exc}"
        return out
    try:
        cfg = PretrainedConfig(text=options.text, layer=options.layer, head=None,
                               hide_special=options.hide_special, full_layer=options.full_layer, device="cpu")
        if not minilm.is_loaded():
            progress(f"Loading {minilm.MODEL_NAME} from the installed {minilm.DISTRIBUTION}…")
            model = minilm.load()
            progress(f"Loaded {minilm.MODEL_NAME} in {model.load_s:.1f} s; computing layer {cfg.layer}…")
        out.trace = build_pretrained(cfg)
        if gallery_text is not None:
            out.gallery = gallery(gallery_text, device="cpu")
            out.gallery_text = gallery_text
        out.status = (f"all-MiniLM-L6-v2 · {len(out.trace.tokens)} pieces · layer {cfg.layer} · "
                      f"{out.trace.compute_ms:.0f} ms")
    except ConfigError as exc:
        out.error = f"{exc.field}: {exc.message}"
    except minilm.ModelMissing as exc:
        out.error = str(exc).splitlines()[0]
    except Exception as exc:  # anything unexpected: one line, never a traceback
        out.error = f"could not run the pretrained model ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return out


def compute_task(request: tuple, task) -> Outcome:
    """The worker's work (gui.tasks.TaskRunner): the latest (options, gallery text) wins."""
    options, text = request
    return compute(options, text, task.progress)


class PretrainedController(QObject):
    """Owns stage 5's options and worker; fills ``model`` (gui.view_model.ViewModel)."""

    status = Signal(str)           # progress and results, for the status bar
    error = Signal(str)            # one line
    options_changed = Signal(object)   # Options

    def __init__(self, model, parent: QObject | None = None):
        super().__init__(parent)
        self.model = model
        self.options = Options()
        self.started = False
        self.busy = False
        self._gallery_text: str | None = None     # the text the gallery on screen is for
        # one thread, started on first use (not with the window); a superseded request's
        # progress and outcome are dropped on the way
        self._worker = TaskRunner(compute_task, "PretrainedWorker", low_priority=True, drop_stale=True, parent=self)
        self._worker.done.connect(self._on_done)
        self._worker.progress.connect(self._on_progress)
        model.step_changed.connect(lambda _i: self.ensure_started())

    def ensure_started(self) -> None:
        """Start loading on the first visit of a stage-5 step (never at the window's start)."""
        if not self.started and self.model.step.stage == "pretrained":
            self.started = True
            self._submit()

    def set_options(self, **changes) -> None:
        """Change text/layer/hide_special/full_layer; checked at once (a bad one: ``error``)."""
        new = Options(**{**vars(self.options), **changes})
        try:
            from core.config import ConfigError
            from core.pretrained_config import PretrainedConfig
            PretrainedConfig(text=new.text, layer=new.layer, hide_special=new.hide_special, full_layer=new.full_layer)
        except ConfigError as exc:
            self.error.emit(f"{exc.field}: {exc.message}")
            return
        self.options = new
        self.options_changed.emit(new)
        if self.started:
            self._submit()

    def open_head(self, layer: int, head: int) -> None:
        """A gallery click: that layer's trace, that head, and its weights step."""
        index = next(i for i, s in enumerate(self.model.steps) if s.id == "pretrained.weights")
        self.model.go(index)
        self.model.set_head(head)
        if layer != self.options.layer:
            self.set_options(layer=layer)

    def _submit(self) -> None:
        self.busy = True
        text = self.options.text if self.options.text != self._gallery_text else None
        self.model.set_pretrained(status=("Loading the model…" if self.model.pretrained is None
                                          else "Computing the pretrained model…"))
        self._worker.submit((Options(**vars(self.options)), text))

    def _on_progress(self, text: str) -> None:
        self.model.set_pretrained(status=text)
        self.status.emit(text)

    def _on_done(self, out: Outcome) -> None:
        self.busy = False
        if out.error:
            self.model.set_pretrained(status=out.error)
            self.error.emit(out.error)
            return
        if out.gallery is not None:
            self._gallery_text = out.gallery_text
        self.model.set_pretrained(out.trace, out.gallery, out.status)
        self.status.emit(out.status)

    def shutdown(self) -> None:
        self._worker.stop()
