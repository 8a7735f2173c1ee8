"""Latent traversals: one row per dimension, sweeping it across its range while the others
hold the current code (the disentanglement figure of the beta-VAE paper). Rows follow the
sliders' order, most informative first; inactive dimensions are left out unless asked for.
A model with many dimensions gets more rows than a dock is high: rather than shrink them
to a smear, the picture keeps each image legible and the view scrolls. The grid is decoded
off the GUI thread (``BackgroundPicture``); the one on screen stays until the new one lands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QCheckBox, QHBoxLayout, QScrollArea, QSpinBox, QVBoxLayout, QWidget

from explorer.analysis.grids import save_png, tile
from explorer.analysis.manifold import decode_codes, traversal_codes
from explorer.gui.state.latent_state import LatentState
from explorer.gui.views.background_picture import BackgroundPicture
from explorer.gui.widgets.image_pane import LEGIBLE_TILE_PX, legible_height
from explorer.gui.widgets.redraw import Coalescer

MAX_ROWS = 32


@dataclass(frozen=True)
class Traversal:
    """A decoded traversal: one row per dimension in ``dims``."""

    dims: list[int]
    steps: int
    images: np.ndarray  # (len(dims) * steps, C, H, W)
    picture: np.ndarray  # the rows tiled


def decode_traversal(model, codes: np.ndarray, label: int | None, dims: list[int], steps: int) -> Traversal:
    """In the task: decode the rows in one batch and tile them."""
    images = decode_codes(model, codes, label)
    return Traversal(dims, steps, images, np.ascontiguousarray(tile(images, len(dims), steps)))


class TraversalView(QWidget):
    def __init__(self, state: LatentState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.dims: list[int] = []
        self.images: np.ndarray | None = None  # the traversal on screen, decoded
        self._steps = 0  # its images per row
        self.steps = QSpinBox(objectName="traversalSteps", minimum=3, maximum=21, value=9, suffix=" steps")
        self.include_inactive = QCheckBox("Inactive dimensions too", objectName="traversalInactive")
        bar = QHBoxLayout()
        bar.addWidget(self.steps)
        bar.addWidget(self.include_inactive)
        bar.addStretch(1)
        self.plot = pg.PlotWidget()
        self.plot.getPlotItem().layout.setContentsMargins(0, 0, 0, 0)
        self.plot.setObjectName("traversalPlot")
        self.plot.setBackground(self.palette().color(QPalette.ColorRole.Window))
        item = self.plot.getPlotItem()
        item.hideAxis("bottom")
        item.setMenuEnabled(False)
        item.hideButtons()
        self.box = item.getViewBox()
        self.box.setMouseEnabled(False, False)
        self.box.setAspectLocked(True)
        self.box.invertY(True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.image)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        self.scroll = QScrollArea(objectName="traversalScroll")
        self.scroll.setWidget(self.plot)
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        layout.addWidget(self.scroll, 1)
        self.plot.viewport().installEventFilter(self)  # the wheel scrolls the rows (nothing to zoom)
        self.redraws = Coalescer(self.redraw, self.isVisible, parent=self)
        self.pictures: BackgroundPicture[Traversal] = BackgroundPicture(
            state.session.tasks, "traversal", "Decoding the traversal", self._show, lambda: self.state.model,
            state.decoder_changed)
        for signal in (self.steps.valueChanged, self.include_inactive.toggled, state.code_changed,
                       state.label_changed, state.decoder_changed, state.stats_changed):
            signal.connect(lambda *_: self.redraws.request())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Wheel and watched is self.plot.viewport():
            QApplication.sendEvent(self.scroll.verticalScrollBar(), event)
            return True
        return super().eventFilter(watched, event)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.redraws.flush()

    def redraw(self) -> None:
        state, stats = self.state, self.state.stats
        if not state.ready or stats is None or state.code is None:
            return
        dims = [int(d) for d in stats.order if self.include_inactive.isChecked() or stats.active[d]]
        dims = (dims or [int(stats.order[0])])[:MAX_ROWS]
        steps = self.steps.value()
        codes = traversal_codes(state.code, dims, [stats.slider_range(d) for d in dims], steps)
        label = state.label
        self.pictures.request(state.model, lambda model: decode_traversal(model, codes, label, dims, steps))

    def _show(self, traversal: Traversal) -> None:
        self.dims, self.images, self._steps = traversal.dims, traversal.images, traversal.steps
        picture = traversal.picture
        self.image.setImage(picture, autoLevels=False, levels=(0, 1))
        h = self.images.shape[2]
        self.plot.getPlotItem().getAxis("left").setTicks([[((i + 0.5) * h, f"z{d}")
                                                           for i, d in enumerate(self.dims)]])
        # Tall enough for every row to be legible; the scroll area shows what fits.
        self.plot.setMinimumHeight(legible_height(picture.shape[0], h, LEGIBLE_TILE_PX))
        self.box.autoRange(padding=0)

    def tile_height_px(self) -> float:
        """How high one image of the traversal is drawn on screen now."""
        if self.images is None:
            return 0.0
        return self.image.sceneBoundingRect().height() / len(self.dims)

    def export_png(self, path: str) -> None:
        if self.images is None:
            raise ValueError("there is no traversal to export yet")
        from explorer.analysis.grids import image_grid

        save_png(image_grid(torch.from_numpy(self.images), nrow=self._steps), path)
