"""A picture that keeps its aspect ratio: one pyqtgraph ImageItem in a fixed view box.

Every decoded view (current code, samples, interpolation, denoising, anomalies) shows its
images through this, drawn with fixed levels so brightness means the same in every view.
The picture fills the pane edge to edge (pyqtgraph's layout margins would take a tenth of
a small pane) and is framed afresh on every resize; a pane told how many rows of images
it shows asks its layout, from the start, for room to draw each image at least
LEGIBLE_TILE_PX high (asking only once a picture arrives would make the docks jump).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QVBoxLayout, QWidget

LEGIBLE_TILE_PX = 24  # a 28-pixel digit is still readable drawn this high on screen
MAX_MIN_HEIGHT_PX = 220  # a pane never asks for more than this: the window must fit 1280x800
GRID_PADDING = 2 / 28  # image_grid's 2-pixel gaps, as a share of a 28-pixel image


def legible_height(picture_rows: int, image_rows: int, tile_px: int = LEGIBLE_TILE_PX) -> int:
    """The height in screen pixels at which a picture ``picture_rows`` high, made of images
    ``image_rows`` high, draws each image ``tile_px`` high."""
    return int(np.ceil(tile_px * picture_rows / max(1, image_rows)))


def chw_to_display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] to what ImageItem draws row-major: (H, W) or (H, W, C)."""
    return np.ascontiguousarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))


class ImagePane(QWidget):
    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setObjectName(name)
        self.view.setBackground(self.palette().color(QPalette.ColorRole.Window))
        self.view.ci.setContentsMargins(0, 0, 0, 0)
        self.view.ci.setSpacing(0)
        self.box = self.view.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.box.setMenuEnabled(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.image)
        self.array: np.ndarray | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

    def set_rows(self, rows: int) -> None:
        """The pane shows ``rows`` rows of images: ask for the height that draws each one
        legibly (up to MAX_MIN_HEIGHT_PX, so the window still fits its default size)."""
        self.setMinimumHeight(min(int(np.ceil(rows * LEGIBLE_TILE_PX * (1 + GRID_PADDING))), MAX_MIN_HEIGHT_PX))

    def set_array(self, array: np.ndarray) -> None:
        """Show an (H, W) or (H, W, C) array in [0, 1]. It is kept, not copied: pass a fresh one."""
        resized = self.array is None or self.array.shape != array.shape
        self.array = array
        self.image.setImage(array, autoLevels=False, levels=(0, 1))
        if resized:
            self.box.autoRange(padding=0)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        # Frame the whole picture at the new size: a range set while the pane was hidden
        # (tabbed docks start at a few pixels) would otherwise leave it small or cropped.
        super().resizeEvent(event)
        if self.array is not None:
            self.box.autoRange(padding=0)

    def tile_height_px(self, image_rows: int) -> float:
        """How high one image ``image_rows`` tall is drawn on screen now."""
        if self.array is None:
            return 0.0
        return self.image.sceneBoundingRect().height() * image_rows / self.array.shape[0]

    def clear(self) -> None:
        self.array = None
        self.image.clear()
