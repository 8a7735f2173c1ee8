"""A freehand lasso over a pyqtgraph ViewBox: a left drag draws an outline, collected in
the view's data coordinates, and on release the outline is handed on.

The overlay is an invisible item over the whole ViewBox, above everything in it. While it is
armed it claims the left button as the pointer hovers (pyqtgraph gives a drag to the first
item that claims it, topmost first), so a lasso that starts on a draggable marker or on a dot
still draws; a click while armed is reported too (to clear a selection). Disarmed it claims
nothing, and only a drag that starts with Shift held draws: every other press, drag and
click passes through to the items below as before. Right drags, the wheel and the context
menu are never taken.

The stroke is kept only where the pointer moved at least ``MIN_STEP_PX`` screen pixels since
the last vertex, so an outline has a vertex every few pixels whatever the mouse's rate.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal

MIN_STEP_PX = 3.0  # screen pixels between kept vertices of a stroke
MAX_VERTICES = 5000  # a stroke stops growing here (a minute of scribbling)
OVERLAY_Z = 1_000  # above every item in the ViewBox (the marker sits at 20)
PATH_COLOUR = (255, 255, 255, 220)


class LassoOverlay(pg.GraphicsObject):
    """Draws a lasso on ``box`` with the left button (while ``armed``, or with Shift held)
    and emits the closed outline, (M, 2) in the view's coordinates, when the button is let go."""

    drawn = Signal(object)  # np.ndarray (M, 2): the outline, in view coordinates
    clicked = Signal()  # a left click while armed (no drag)

    def __init__(self, box: pg.ViewBox) -> None:
        super().__init__(box)  # a child of the ViewBox itself, not of its panned content
        self.box = box
        self.armed = False
        self.setZValue(OVERLAY_Z)
        self.setFlag(self.GraphicsItemFlag.ItemHasNoContents)
        self.path = pg.PlotCurveItem(pen=pg.mkPen(PATH_COLOUR, width=1.5, style=Qt.PenStyle.DashLine))
        self.path.setZValue(OVERLAY_Z)
        self.path.setVisible(False)
        box.addItem(self.path, ignoreBounds=True)  # drawn in data coordinates: it pans with the view
        self._stroke: list[tuple[float, float]] = []
        self._last_scene: QPointF | None = None
        self._drawing = False  # a stroke is under way (cancel() ends it before the button is let go)
        box.sigResized.connect(lambda *_: self.prepareGeometryChange())

    @property
    def drawing(self) -> bool:
        return self._drawing

    def set_armed(self, armed: bool) -> None:
        self.armed = bool(armed)
        if not armed:
            self.cancel()

    def cancel(self) -> None:
        """Drop a stroke under way: the rest of that drag draws nothing."""
        self._drawing = False
        self._stroke = []
        self._last_scene = None
        self.path.setVisible(False)

    # -- QGraphicsItem ------------------------------------------------------------------------

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return self.box.boundingRect()

    def paint(self, painter, option, widget=None) -> None:
        pass  # invisible: the stroke is the path item in the view

    # -- pyqtgraph's mouse events -------------------------------------------------------------

    def hoverEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph's name
        if self.armed and not ev.isExit():
            ev.acceptDrags(Qt.MouseButton.LeftButton)
            ev.acceptClicks(Qt.MouseButton.LeftButton)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph's name
        if self.armed and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.clicked.emit()
        else:
            ev.ignore()

    def mouseDragEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph's name
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        if ev.isStart():
            if not (self.armed or ev.modifiers() & Qt.KeyboardModifier.ShiftModifier):
                ev.ignore()
                return
            self._drawing = True
            self._stroke = []
            self._last_scene = None
            self._add(ev.buttonDownScenePos())
        ev.accept()
        if not self._drawing:
            return  # cancelled mid-drag: the rest of this drag is the lasso's, and draws nothing
        self._add(ev.scenePos())
        if ev.isFinish():
            outline = np.asarray(self._stroke, dtype=np.float64).reshape(-1, 2)
            self.cancel()
            self.drawn.emit(outline)
        else:
            self._show()

    def _add(self, scene_pos) -> None:
        last = self._last_scene
        if last is not None and (len(self._stroke) >= MAX_VERTICES
                                 or np.hypot(scene_pos.x() - last.x(), scene_pos.y() - last.y()) < MIN_STEP_PX):
            return
        point = self.box.mapSceneToView(scene_pos)
        self._stroke.append((point.x(), point.y()))
        self._last_scene = QPointF(scene_pos)

    def _show(self) -> None:
        stroke = np.asarray(self._stroke + self._stroke[:1], dtype=np.float64)  # drawn closed, as it selects
        self.path.setData(stroke[:, 0], stroke[:, 1])
        self.path.setVisible(True)
