"""Test images over their reconstructions (the seeds' two-row figure), live.

The grid is decoded in one batch by the session's CPU copy of the model whenever a new
snapshot arrives, and painted as one picture (an ImagePane). Hovering an image pair shows
that image's reconstruction error.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from explorer.analysis.grids import pairs_grid, save_png
from explorer.data import to_float
from explorer.gui.state.session import TrainingSession
from explorer.gui.widgets.image_pane import ImagePane
from explorer.models.losses import reconstruction_loss

COLUMNS = 8
ROWS_OF_PAIRS = 2
PADDING = 2


class ReconstructionView(QWidget):
    def __init__(self, session: TrainingSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.count = COLUMNS * ROWS_OF_PAIRS
        self.indices: torch.Tensor | None = None
        self.errors: np.ndarray | None = None
        self.grid: np.ndarray | None = None
        self._rng = np.random.default_rng(0)

        self.pane = ImagePane("reconView")
        self.view, self.box, self.image = self.pane.view, self.pane.box, self.pane.image
        self.box.setMenuEnabled(True)  # unlike the other panes, this one keeps its right-click menu (Export...)
        self.placeholder = QLabel("Reconstructions appear here once a model is training or opened.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setEnabled(False)  # drawn greyed, in the theme's own colours
        self.pane.hide()

        self.new_batch_button = QPushButton("New batch")
        self.new_batch_button.setObjectName("newBatch")
        self.new_batch_button.setToolTip("Show other test images (N)")
        self.new_batch_button.setShortcut("N")
        self.new_batch_button.clicked.connect(self.new_batch)
        self.readout = QLabel("Top: test images. Bottom: their reconstructions.")
        self.readout.setObjectName("reconReadout")

        bar = QHBoxLayout()
        bar.addWidget(self.readout, 1)
        bar.addWidget(self.new_batch_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.placeholder, 1)
        layout.addWidget(self.pane, 1)
        layout.addLayout(bar)

        self._hover = pg.SignalProxy(self.view.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_moved)
        session.data_changed.connect(self._on_data_changed)
        self._model: object = None  # the model object the grid belongs to
        session.model_changed.connect(self._on_model_changed)

    def _on_model_changed(self) -> None:
        """New weights redraw the grid; another model first drops the old one's grid, so
        it is never shown as this one's (e.g. when its images do not fit the data)."""
        if self.session.view_model is not self._model:
            self._model = self.session.view_model
            self.grid = self.errors = None
            self.pane.clear()
        self.refresh()

    def _on_data_changed(self) -> None:
        self.indices = None
        self.new_batch()

    def new_batch(self) -> None:
        data = self.session.data
        if data is None:
            return
        n = data.test_images.shape[0]
        pick = self._rng.choice(n, size=min(self.count, n), replace=False)
        self.indices = torch.from_numpy(np.sort(pick))
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        data, model = self.session.data, self.session.view_model
        if data is None or model is None:
            return
        if self.indices is None:
            self.new_batch()
            return
        if data.image_shape != model.config.image_shape:
            return
        x = to_float(data.test_images[self.indices])
        y = data.test_labels[self.indices] if model.is_conditional and data.test_labels is not None else None
        logits = model.decode_logits(model.encode(x, y).mean, y)
        recon = torch.sigmoid(logits)
        self.errors = reconstruction_loss(logits, x, model.config.recon_loss).numpy()
        grid = pairs_grid(x, recon, per_row=COLUMNS)
        array = grid.permute(1, 2, 0).numpy()
        self.grid = np.ascontiguousarray(array[:, :, 0] if data.image_shape[0] == 1 else array)
        # A fresh array every time: pyqtgraph keeps a reference to what it is given.
        self.pane.set_array(self.grid)
        if self.placeholder.isVisible() or not self.pane.isVisible():
            self.placeholder.hide()
            self.pane.show()

    def cell_at(self, col: float, row: float) -> int | None:
        """Index (into the shown batch) of the image pair under grid pixel (col, row)."""
        if self.grid is None or self.indices is None:
            return None
        h, w = self.session.data.image_shape[1:] if self.session.data is not None else (0, 0)
        cell_w, cell_h = w + PADDING, h + PADDING
        c, r = int(col // cell_w), int(row // cell_h)
        i = (r // 2) * COLUMNS + c
        if c >= COLUMNS or r < 0 or c < 0 or i >= len(self.indices):
            return None
        return i

    def _on_mouse_moved(self, event: tuple) -> None:
        pos = event[0]
        if self.errors is None:
            return
        point = self.image.mapFromScene(pos)
        i = self.cell_at(point.x(), point.y())
        if i is None:
            return
        data = self.session.data
        label = ""
        if data is not None and data.test_labels is not None and data.class_names:
            label = f" ({data.class_names[int(data.test_labels[self.indices[i]])]})"
        unit = "BCE" if self.session.view_model and self.session.view_model.config.recon_loss == "bce" else "SSE"
        self.readout.setText(f"Test image #{int(self.indices[i])}{label}: reconstruction error "
                             f"{self.errors[i]:.1f} ({unit} per image)")

    def export_png(self, path: str) -> None:
        data, model = self.session.data, self.session.view_model
        if data is None or model is None or self.indices is None:
            raise ValueError("there are no reconstructions to export yet")
        with torch.no_grad():
            x = to_float(data.test_images[self.indices])
            y = data.test_labels[self.indices] if model.is_conditional and data.test_labels is not None else None
            save_png(pairs_grid(x, model.reconstruct(x, y), per_row=COLUMNS), path)

    def has_image(self) -> bool:
        return self.grid is not None
