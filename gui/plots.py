"""Line plots side by side, fixed (no mouse zoom or menu): the Cost and Scaling views' charts."""
from __future__ import annotations

import pyqtgraph as pg


def side_by_side(titles: list[str], x_label: str, log_y: bool) -> tuple[pg.GraphicsLayoutWidget, list]:
    """A white layout of one row of plots with these titles: x on a log axis named ``x_label``
    (y too when ``log_y``), a light grid, no mouse interaction. Returns the widget and the plots."""
    widget = pg.GraphicsLayoutWidget(show=False)
    widget.setBackground("w")
    plots = [widget.addPlot(row=0, col=col, title=title) for col, title in enumerate(titles)]
    for plot in plots:
        plot.setLogMode(x=True, y=log_y)
        plot.setLabel("bottom", x_label)
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setMouseEnabled(x=False, y=False)
        plot.setMenuEnabled(False)
    return widget, plots
