"""A mixin for views that are costly to fill: refresh now when on screen, else when next shown."""
from __future__ import annotations


class RefreshWhenShown:
    """Mark the view stale on every trace or step change; fill it only while it is visible.

    Put it before the Qt widget class (``class View(RefreshWhenShown, QtWidgets.QWidget)``) and
    define ``refresh()``, which must reset ``self._stale = False`` when it fills the view.
    """

    _stale = True
    needs: tuple[str, ...] = ()      # the trace stages refresh() reads beyond the step's own
    _watched = None

    def watch_trace(self, model) -> None:
        """Observe a :class:`gui.view_model.ViewModel`'s trace and step."""
        self._watched = model
        model.trace_changed.connect(self._on_trace)
        model.step_changed.connect(lambda _i: self._on_trace())

    def _ready(self) -> bool:
        """False while the trace on screen is a partial one (the visible stage first) that lacks
        a stage this view reads: it stays stale until the full trace arrives (never an error)."""
        trace = self._watched.trace if self._watched is not None else None
        return trace is None or all(s in trace.stages for s in self.needs)

    def _on_trace(self) -> None:
        self._stale = True
        if self.isVisible() and self._ready():
            self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale and self._ready():
            self.refresh()
