"""The latent plane's lasso: the Lasso button and the selection's count in the plot's
top-right corner, the outline drawn over the plot, and rings around the selected test dots.

The button floats over the plot's corner (as a scatter plot's mode bar does) rather than
sitting on the plane's bar: the bar is as wide as the window's narrowest screen allows.

With Lasso on (or with Shift held, Lasso off) a left drag draws a freehand outline; on
release the test dots inside it (explorer.analysis.polygon, on the positions the plane drew)
become ``LatentState.selection``, replacing the last one. Esc on the plane, or a click while
Lasso is on, clears it. Turning Lasso off keeps the selection (it is what the Directions view
makes "selection vs the rest" from) and gives the left button back to the marker and the dots.

The outline is tested on the GUI thread: the plane holds at most ``MAX_CODES`` (10,000) dots
and the test takes a few milliseconds for them (benchmarks/lasso.py), less than a repaint of
the plot.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from explorer.analysis.polygon import points_in_polygon
from explorer.display import plural
from explorer.gui.state.latent_state import LatentState
from explorer.gui.widgets.lasso import LassoOverlay

RING_COLOUR = (255, 255, 255, 190)  # no class colour is white: a ring never reads as a dot of another class
RING_SIZE = 9  # screen pixels: around a 5-pixel dot, thin enough that a dense group stays legible
RING_Z = 17  # above the dots, under the posterior outlines (18) and the marker (20)
CORNER_GAP = 6  # pixels between the plot's top-right corner and the controls
COUNT_STYLE = "QLabel { background: rgba(0, 0, 0, 170); color: white; padding: 1px 5px; border-radius: 3px; }"
LASSO_TIP = ("Draw around test dots to select them (or Shift+drag with Lasso off). Esc or a click with "
             "Lasso on clears the selection; the Directions view makes a direction from it")

Dots = tuple[np.ndarray, np.ndarray]  # the plane's drawn (N, 2) positions and their test-image numbers


class Rings(pg.ScatterPlotItem):
    """Outlines drawn over dots that leave every click to the dots under them."""

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph's name
        ev.ignore()


class PlaneSelection(QWidget):
    """The lasso's controls (a checkable button and the count, over the top-right corner of
    ``plot``'s ``box``) and what it draws on ``box``. ``dots`` returns what the plane drew
    last (None before a model); Esc clears the selection anywhere in ``host``."""

    def __init__(self, state: LatentState, plot: pg.PlotWidget, box: pg.ViewBox,
                 dots: Callable[[], Dots | None], host: QWidget) -> None:
        super().__init__(plot.viewport())  # over the plot: its clicks never reach the scene
        self.state = state
        self._plot, self._box = plot, box
        self._dots = dots
        self.button = QToolButton(objectName="lassoTool", text="&Lasso", checkable=True)
        self.button.setToolTip(LASSO_TIP)
        self.count = QLabel(objectName="selectionCount")
        self.count.setToolTip("Esc clears the selection")
        self.count.setStyleSheet(COUNT_STYLE)  # readable over the dots
        self.count.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.count)  # grows to the left of the button, which stays in the corner
        layout.addWidget(self.button)
        box.sigResized.connect(lambda *_: self._place())

        self.overlay = LassoOverlay(box)
        self.rings = Rings(size=RING_SIZE, pen=pg.mkPen(RING_COLOUR, width=1), brush=None, hoverable=False,
                           antialias=True)
        self.rings.setZValue(RING_Z)
        box.addItem(self.rings, ignoreBounds=True)
        # Esc anywhere in the plane (the plot or its bar), not only when the plot has the focus.
        self.escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), host,
                                context=Qt.ShortcutContext.WidgetWithChildrenShortcut)

        self.button.toggled.connect(self.overlay.set_armed)
        self.overlay.drawn.connect(self.select_inside)
        self.overlay.clicked.connect(state.clear_selection)
        self.escape.activated.connect(self._on_escape)
        state.selection_changed.connect(self.redraw)
        # Made after the plane's own wiring: these run after it has drawn the new dots.
        state.stats_changed.connect(self.redraw)
        state.axes_changed.connect(self.redraw)
        self.redraw()

    def select_inside(self, outline: np.ndarray) -> None:
        """Select the test dots the closed ``outline`` (view coordinates) encloses."""
        dots = self._dots()
        if dots is None:
            return
        points, indices = dots
        self.state.set_selection(indices[points_in_polygon(points, outline)])

    def redraw(self) -> None:
        """Ring the selected dots where the plane drew them, and say how many there are
        (called when the selection changes and after the plane redraws its dots)."""
        selected = self.state.selection
        dots = self._dots()
        if dots is None or selected.size == 0:
            self.rings.setData(x=[], y=[])
        else:
            points, indices = dots
            shown = points[np.isin(indices, selected)]
            self.rings.setData(x=shown[:, 0], y=shown[:, 1])
        self.count.setText(f"{plural(int(selected.size), 'test image')} selected" if selected.size else "")
        self.count.setVisible(bool(selected.size))
        self._place()

    def _place(self) -> None:
        """Sit in the top-right corner of the data area, whatever the axes' widths."""
        self.adjustSize()
        corner = self._plot.mapFromScene(self._box.sceneBoundingRect().topRight())
        self.move(corner + QPoint(-CORNER_GAP - self.width(), CORNER_GAP))
        self.raise_()

    def set_rings_visible(self, on: bool) -> None:
        self.rings.setVisible(on)

    def _on_escape(self) -> None:
        if self.overlay.drawing:
            self.overlay.cancel()
        else:
            self.state.clear_selection()
