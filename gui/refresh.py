"""A mixin for views that are costly to fill: refresh now when on screen, else when next shown."""
from __future__ import annotations


class RefreshWhenShown:
    """Mark the view stale on every trace or step change; fill it only while it is visible.

    Put it before the Qt widget class (``class View(RefreshWhenShown, QtWidgets.QWidget)``) and
    define ``refresh()``, which must reset ``self._stale = False`` when it fills the view.
    """

    _stale = True

    def watch_trace(self, model) -> None:
        """Observe a :class:`gui.view_model.ViewModel`'s trace and step."""
        model.trace_changed.connect(self._on_trace)
        model.step_changed.connect(lambda _i: self._on_trace())

    def _on_trace(self) -> None:
        self._stale = True
        if self.isVisible():
            self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.refresh()
