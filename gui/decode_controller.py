"""Stage 6's controller: the decode options, checked at once, and the trace computed off the UI thread.

The first time a step of the decode stage is shown, ``ensure_started`` asks its worker (a
gui.tasks.TaskRunner, as stage 5's: the latest request wins) for core.decode.build_decode; the result goes
into the view model (``model.set_decode``). The options are a core.decode_config.DecodeConfig:
a bad combination (heads not divisible by the K/V heads, a latent wider than d_out…) becomes
one ``error`` line and the last good trace stays on screen. The prompt is the book's sentence
or the main text field's (the chapter's config: text, embeddings, d_in, seed). The position
pointer is the view model's (``model.set_decode_position``): every position is in the trace.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from PySide6.QtCore import QObject, Signal

from gui.tasks import TaskRunner

FIELD_NAMES = {"num_kv_groups": "kv groups", "latent_dim": "latent", "sliding_window_size": "window",
               "new_tokens": "new tokens", "num_heads": "heads", "d_out": "d_out"}


@dataclass(frozen=True)
class Options:
    """What the decode bar sets. kv_groups/latent/window apply to their variants only."""

    variant: str = "gqa"
    num_heads: int = 8
    d_out: int = 16
    kv_groups: int = 2            # gqa, swa (K/V heads)
    latent: int = 8               # mla
    window: int = 3               # swa
    new_tokens: int = 4
    prompt: str = "book"          # "book": the book's sentence; "main": the main text field's


def config_for(options: Options, chapter=None):
    """The DecodeConfig for ``options`` (``chapter``: the main window's AttentionConfig, read when
    the prompt is the main text field's). Raises core.config.ConfigError."""
    from core.decode_config import DecodeConfig
    v = options.variant
    prompt = {}
    if options.prompt == "main" and chapter is not None:
        prompt = dict(text=chapter.text, embeddings=chapter.embeddings, d_in=chapter.d_in, seed=chapter.seed)
    return DecodeConfig(variant=v, d_out=options.d_out, num_heads=options.num_heads,
                        num_kv_groups=options.kv_groups if v in ("gqa", "swa") else None,
                        latent_dim=options.latent if v == "mla" else None,
                        sliding_window_size=options.window if v == "swa" else None,
                        new_tokens=options.new_tokens, device="cpu", **prompt)


def error_line(exc) -> str:
    return f"{FIELD_NAMES.get(exc.field, exc.field)}: {exc.message}"


@dataclass
class Outcome:
    ticket: int
    trace: object = None          # core.decode.DecodeTrace
    error: str = ""
    status: str = ""


def compute(cfg) -> Outcome:
    """On the worker thread: build the trace; every failure becomes a one-line ``error``."""
    out = Outcome(0)
    try:
        from core.config import ConfigError
        from core.decode import build_decode
        from core.memory import MemoryBudgetError
    except Exception as exc:  # a broken torch install: say so, do not crash
        out.error = f"cannot load the attention core: {exc}"
        return out
    try:
        out.trace = build_decode(cfg)
        worst = float(out.trace["decode_summary", "max_abs_diff"].numpy().max())
        out.status = (f"decode {cfg.variant} · {out.trace.prompt_tokens} prompt + {len(out.trace.positions)} new "
                      f"tokens · cached = uncached to {worst:.1e} · {out.trace.compute_ms:.0f} ms")
    except ConfigError as exc:
        out.error = error_line(exc)
    except MemoryBudgetError as exc:
        out.error = f"too big for memory: {exc}"
    except Exception as exc:  # anything unexpected: one line, never a traceback
        out.error = f"could not compute the decode trace ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return out


def compute_task(request: tuple, _task) -> Outcome:
    """The worker's work (gui.tasks.TaskRunner): (ticket, DecodeConfig) -> Outcome."""
    ticket, cfg = request
    out = compute(cfg)
    out.ticket = ticket
    return out


class DecodeController(QObject):
    """Owns stage 6's options and worker; fills ``model`` (gui.view_model.ViewModel)."""

    status = Signal(str)
    error = Signal(str)                  # one line
    options_changed = Signal(object)     # Options

    def __init__(self, model, parent: QObject | None = None):
        super().__init__(parent)
        self.model = model
        self.options = Options()
        self.config = None            # built on the first visit: the window starts without core (and torch)
        self.started = False
        self.busy = False
        self._ticket = 0
        self._worker = TaskRunner(compute_task, "DecodeWorker", low_priority=True, drop_stale=True, parent=self)
        self._worker.done.connect(self._on_done)
        model.step_changed.connect(lambda _i: self.ensure_started())
        model.config_changed.connect(self._on_chapter_config)

    def ensure_started(self) -> None:
        """Compute on the first visit of a decode step (never at the window's start)."""
        if not self.started and self.model.step.stage == "decode":
            self.started = True
            self._submit()

    def set_options(self, **changes) -> bool:
        """Change the options; checked at once: a bad combination is one ``error`` line, the
        options and the trace on screen stay. Returns whether they were taken."""
        new = replace(self.options, **changes)
        from core.config import ConfigError
        try:
            cfg = config_for(new, self.model.config)
        except ConfigError as exc:
            self.error.emit(error_line(exc))
            self.options_changed.emit(self.options)       # the bar shows the options in force again
            return False
        same = cfg == self.config
        self.options, self.config = new, cfg
        self.options_changed.emit(new)
        if self.started and not same:     # (the chapter's config changes with each Book section: often no change here)
            self._submit()
        return True

    def _on_chapter_config(self, _config) -> None:
        """The main text field (the chapter's config) changed: follow it when the prompt is its."""
        if self.options.prompt == "main":
            self.set_options()

    def _submit(self) -> None:
        if self.config is None:
            self.config = config_for(self.options, self.model.config)
        self._ticket += 1
        self.busy = True
        self.model.set_decode(status="Computing the decode trace…")
        self._worker.submit((self._ticket, self.config))

    def _on_done(self, out: Outcome) -> None:
        if out.ticket != self._ticket:
            return                        # a newer request is on its way
        self.busy = False
        if out.error:
            self.model.set_decode(status=out.error)
            self.error.emit(out.error)
            return
        self.model.set_decode(out.trace, status=out.status)
        self.status.emit(out.status)

    def shutdown(self) -> None:
        self._worker.stop()
