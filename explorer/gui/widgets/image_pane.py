"""A picture that keeps its aspect ratio: one pyqtgraph ImageItem in a fixed view box.

Every decoded view (current code, samples, interpolation, traversal) shows its images
through this, drawn with fixed levels so brightness means the same in every view.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QVBoxLayout, QWidget


def chw_to_display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] to what ImageItem draws row-major: (H, W) or (H, W, C)."""
    return np.ascontiguousarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))


class ImagePane(QWidget):
    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setObjectName(name)
        self.view.setBackground(self.palette().color(QPalette.ColorRole.Window))
        self.box = self.view.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.box.setMenuEnabled(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.image)
        self.array: np.ndarray | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

    def set_array(self, array: np.ndarray) -> None:
        """Show an (H, W) or (H, W, C) array in [0, 1]. It is kept, not copied: pass a fresh one."""
        resized = self.array is None or self.array.shape != array.shape
        self.array = array
        self.image.setImage(array, autoLevels=False, levels=(0, 1))
        if resized:
            self.box.autoRange(padding=0)

    def clear(self) -> None:
        self.array = None
        self.image.clear()
