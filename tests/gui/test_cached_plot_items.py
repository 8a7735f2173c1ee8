"""The plane's cached items stay cached: moving one small item repaints only that item.

Qt keeps a cached item as a pixmap in one process-wide cache (10 MiB by default); the
plane's ten class scatters at a desktop size need several times that, and in the default
cache every repaint drew all the dots again."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem

from explorer.gui.app.application import make_room_for_cached_plots


class CountedScatter(pg.ScatterPlotItem):
    paints = 0

    def paint(self, *args):  # noqa: ANN002 - Qt's
        CountedScatter.paints += 1
        return super().paint(*args)


def test_moving_an_ellipse_over_ten_cached_scatters_redraws_none_of_them(qtbot):
    make_room_for_cached_plots()
    plot = pg.PlotWidget()
    qtbot.addWidget(plot)
    plot.resize(1500, 850)  # the plane's size in a 1920x1080 window
    plot.show()
    qtbot.waitExposed(plot)
    rng = np.random.default_rng(0)
    for k in range(10):  # ten classes of 1,000 test codes, cached as the plane caches them
        scatter = CountedScatter(pos=rng.normal(size=(1000, 2)), size=5, pen=None, brush=pg.intColor(k),
                                 hoverable=False)
        scatter.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        plot.addItem(scatter)
    ellipse = pg.PlotCurveItem(pen=pg.mkPen("w", width=2))
    plot.getPlotItem().vb.addItem(ellipse, ignoreBounds=True)
    qtbot.waitUntil(lambda: abs(plot.getPlotItem().vb.viewRange()[0][0]) > 2)  # auto-ranged onto the dots
    plot.getPlotItem().vb.disableAutoRange()
    plot.viewport().repaint()
    CountedScatter.paints = 0
    turn = np.linspace(0, 2 * np.pi, 50)
    for step in range(10):  # a hovered dot's posterior following the pointer
        ellipse.setData(0.3 * np.cos(turn) + 0.05 * step, 0.2 * np.sin(turn))
        plot.viewport().repaint()
    assert CountedScatter.paints == 0, f"the dots were drawn again {CountedScatter.paints} times"
