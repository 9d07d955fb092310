"""A mixin for views that are costly to fill: refresh now when on screen, else when next shown."""
from __future__ import annotations


class RefreshWhenShown:
    """Mark the view stale on every arrival of traces or step change; fill it only while it is
    visible and the stages it reads are ready (gui.scheduler, through the view model).

    Put it before the Qt widget class (``class View(RefreshWhenShown, QtWidgets.QWidget)``) and
    define ``refresh()``, which must reset ``self._stale = False`` when it fills the view.
    """

    _stale = True
    needs: tuple[str, ...] = ()      # the trace stages refresh() reads beyond the step's own
    _watched = None

    def watch_trace(self, model) -> None:
        """Observe a :class:`gui.view_model.ViewModel`'s chapter traces (``stages_ready``) and step."""
        self._watched = model
        model.stages_ready.connect(lambda _stages: self._on_trace())
        model.step_changed.connect(lambda _i: self._on_trace())

    def _ready(self) -> bool:
        """False while a stage this view reads is still computing (a change's first part is on
        screen): it stays stale until that stage arrives (never an error)."""
        return self._watched is None or self._watched.ready(self.needs)

    def _on_trace(self) -> None:
        self._stale = True
        if self.isVisible() and self._ready():
            self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale and self._ready():
            self.refresh()
