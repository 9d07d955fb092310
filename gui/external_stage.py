"""Stages 6 (decode), 7 (tiled attention) and 8 (RoPE): their options, checked at once, and their
traces computed off the UI thread.

One :class:`ExternalController` per stage, given a :class:`Spec` (the options' dataclass, how they
become a core config, how the trace is built and summed up in one status line). The first time a
step of the stage is shown the trace is asked of a gui.tasks.TaskRunner (the latest request
wins); the result goes into the view model (``model.set_external``). A bad option (heads not
divisible by the K/V heads, a block size out of 1…64, a base ≤ 1…) is a core.config.ConfigError:
ONE ``error`` line, the options and the last good trace stay.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from PySide6.QtCore import QObject, Signal

from gui.tasks import TaskRunner


@dataclass(frozen=True)
class DecodeOptions:
    """kv_groups/latent/window apply to their variants only."""

    variant: str = "gqa"
    num_heads: int = 8
    d_out: int = 16
    kv_groups: int = 2            # gqa, swa (K/V heads)
    latent: int = 8               # mla
    window: int = 3               # swa
    new_tokens: int = 4
    prompt: str = "book"          # "book": the book's sentence; "main": the main text field's


@dataclass(frozen=True)
class TiledOptions:
    block_rows: int = 2
    block_cols: int = 2
    causal: bool = True
    fa2: bool = False
    head: int = 0
    prompt: str = "book"


@dataclass(frozen=True)
class RopeOptions:
    base: float = 10_000.0
    form: str = "split"
    shift: int = 3
    head: int = 0
    prompt: str = "book"


def _prompt(options, chapter) -> dict:
    """The main text field's prompt (the chapter's config: text, embeddings, d_in, seed) when the
    options' prompt is "main"; the book's sentence (the configs' defaults) otherwise."""
    if options.prompt != "main" or chapter is None:
        return {}
    return dict(text=chapter.text, embeddings=chapter.embeddings, d_in=chapter.d_in, seed=chapter.seed)


def decode_config(options: DecodeOptions, chapter=None):
    from core.decode_config import DecodeConfig
    v = options.variant
    return DecodeConfig(variant=v, d_out=options.d_out, num_heads=options.num_heads,
                        num_kv_groups=options.kv_groups if v in ("gqa", "swa") else None,
                        latent_dim=options.latent if v == "mla" else None,
                        sliding_window_size=options.window if v == "swa" else None,
                        new_tokens=options.new_tokens, device="cpu", **_prompt(options, chapter))


def tiled_config(options: TiledOptions, chapter=None):
    from core.tiled_config import TiledConfig
    return TiledConfig(block_rows=options.block_rows, block_cols=options.block_cols, causal=options.causal,
                       fa2=options.fa2, head=options.head, device="cpu", **_prompt(options, chapter))


def rope_config(options: RopeOptions, chapter=None):
    from core.tiled_config import RopeConfig
    return RopeConfig(base=options.base, form=options.form, shift=options.shift, head=options.head, device="cpu",
                      **_prompt(options, chapter))


def _decode(cfg):
    from core.decode import build_decode
    trace = build_decode(cfg)
    worst = float(trace["decode_summary", "max_abs_diff"].numpy().max())
    return trace, (f"decode {cfg.variant} · {trace.prompt_tokens} prompt + {len(trace.positions)} new tokens · "
                   f"cached = uncached to {worst:.1e} · {trace.compute_ms:.0f} ms")


def _tiled(cfg):
    from core.tiled import build_tiled
    trace = build_tiled(cfg)
    check = float(trace["tiled_result", "check"].numpy().reshape(-1)[0])
    tiles = trace["tiled_result", "tiles"].numpy()
    return trace, (f"tiled {'FA2' if cfg.fa2 else 'FA1'} · blocks {cfg.block_rows} × {cfg.block_cols} · "
                   f"{len(trace.steps)} tiles visited, {int((tiles[:, 6] == 0).sum())} skipped · "
                   f"max |O − softmax(QKᵀ/√d)V| {check:.1e} · {trace.compute_ms:.0f} ms")


def _rope(cfg):
    from core.rope import build_rope
    trace = build_rope(cfg)
    shift = float(trace["rope", "shift_check"].numpy().reshape(-1)[0])
    return trace, (f"RoPE {cfg.form} · base {cfg.base:g} · shift {cfg.shift}: same scores to {shift:.1e} · "
                   f"{trace.compute_ms:.0f} ms")


@dataclass(frozen=True)
class Spec:
    stage: str
    title: str
    options: object
    config_for: Callable
    build: Callable                 # cfg -> (trace, status line)
    fields: dict


SPECS = {
    "decode": Spec("decode", "decode", DecodeOptions(), decode_config, _decode,
                   {"num_kv_groups": "kv groups", "latent_dim": "latent", "sliding_window_size": "window",
                    "new_tokens": "new tokens", "num_heads": "heads", "d_out": "d_out"}),
    "tiled": Spec("tiled", "tiled-attention", TiledOptions(), tiled_config, _tiled,
                  {"block_rows": "block rows", "block_cols": "block cols", "head": "head", "text": "text"}),
    "rope": Spec("rope", "RoPE", RopeOptions(), rope_config, _rope,
                 {"base": "base", "form": "form", "shift": "shift", "head": "head", "d_out": "d_out"}),
}


def error_line(spec: Spec, exc) -> str:
    return f"{spec.fields.get(exc.field, exc.field)}: {exc.message}"


@dataclass
class Outcome:
    ticket: int
    trace: object = None
    error: str = ""
    status: str = ""


def compute(spec: Spec, cfg) -> Outcome:
    """On the worker thread: build the trace; every failure becomes a one-line ``error``."""
    out = Outcome(0)
    try:
        from core.config import ConfigError
        from core.memory import MemoryBudgetError
    except Exception as exc:  # a broken torch install: say so, do not crash
        out.error = f"cannot load the attention core: {exc}"
        return out
    try:
        out.trace, out.status = spec.build(cfg)
    except ConfigError as exc:
        out.error = error_line(spec, exc)
    except MemoryBudgetError as exc:
        out.error = f"too big for memory: {exc}"
    except Exception as exc:  # anything unexpected: one line, never a traceback
        first = str(exc).splitlines()[0] if str(exc) else ""
        out.error = f"could not compute the {spec.title} trace ({type(exc).__name__}: {first})"
    return out


class ExternalController(QObject):
    """Owns one external stage's options and worker; fills ``model`` (gui.view_model.ViewModel)."""

    status = Signal(str)
    error = Signal(str)                  # one line
    options_changed = Signal(object)

    def __init__(self, model, stage: str, parent: QObject | None = None):
        super().__init__(parent)
        self.model = model
        self.spec = SPECS[stage]
        self.stage = stage
        self.options = self.spec.options
        self.config = None
        self.started = False
        self.busy = False
        self._ticket = 0
        spec = self.spec

        def task(request, _task):
            ticket, cfg = request
            out = compute(spec, cfg)
            out.ticket = ticket
            return out
        self._worker = TaskRunner(task, f"{stage.title()}Worker", low_priority=True, drop_stale=True, parent=self)
        self._worker.done.connect(self._on_done)
        model.step_changed.connect(lambda _i: self.ensure_started())
        model.config_changed.connect(self._on_chapter_config)

    def _on_chapter_config(self, _config) -> None:
        """The main text field changed: the prompt follows it (checked once the stage was visited)."""
        if self.options.prompt != "main":
            return
        if self.started:
            self.set_options()
        else:
            self.config = None

    def ensure_started(self) -> None:
        if not self.started and self.model.step.stage == self.stage:
            self.started = True
            self._submit()

    def set_options(self, **changes) -> bool:
        """Checked at once: a bad option is one ``error`` line, the options and the trace stay."""
        new = replace(self.options, **changes)
        from core.config import ConfigError
        try:
            cfg = self.spec.config_for(new, self.model.config)
        except ConfigError as exc:
            self.error.emit(error_line(self.spec, exc))
            self.options_changed.emit(self.options)       # the bar shows the options in force again
            return False
        same = cfg == self.config
        self.options, self.config = new, cfg
        self.options_changed.emit(new)
        if self.started and not same:
            self._submit()
        return True

    def _submit(self) -> None:
        if self.config is None:
            from core.config import ConfigError
            try:
                self.config = self.spec.config_for(self.options, self.model.config)
            except ConfigError as exc:        # the main text does not fit this stage: one line
                line = error_line(self.spec, exc)
                self.model.set_external(self.stage, status=line)
                self.error.emit(line)
                return
        self._ticket += 1
        self.busy = True
        self.model.set_external(self.stage, status=f"Computing the {self.spec.title} trace…")
        self._worker.submit((self._ticket, self.config))

    def _on_done(self, out: Outcome) -> None:
        if out.ticket != self._ticket:
            return
        self.busy = False
        if out.error:
            self.model.set_external(self.stage, status=out.error)
            self.error.emit(out.error)
            return
        self.model.set_external(self.stage, out.trace, status=out.status)
        self.status.emit(out.status)

    def shutdown(self) -> None:
        self._worker.stop()
