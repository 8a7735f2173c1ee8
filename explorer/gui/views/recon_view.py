"""Test images over their reconstructions (the seeds' two-row figure), live.

The grid is encoded and decoded in one batch off the GUI thread (``BackgroundPicture``)
whenever a new snapshot arrives while the view is shown, and painted as one picture (an
ImagePane); the grid on screen stays until the new one lands. Hovering an image pair shows
that image's reconstruction error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from explorer.analysis.grids import pairs_grid, save_png
from explorer.data import to_float
from explorer.gui.state.session import TrainingSession
from explorer.gui.views.background_picture import BackgroundPicture
from explorer.gui.widgets.image_pane import ImagePane
from explorer.gui.widgets.redraw import Coalescer
from explorer.models.losses import reconstruction_loss

COLUMNS = 8
ROWS_OF_PAIRS = 2
PADDING = 2


@dataclass(frozen=True)
class Reconstructed:
    """A batch of test images with their reconstructions, as shown."""

    indices: torch.Tensor  # the test images' numbers
    errors: np.ndarray  # each image's reconstruction error
    pairs: torch.Tensor  # (C, H, W): the grid of image rows over reconstruction rows
    grid: np.ndarray  # the same, ready for the pane


def reconstruct_pairs(model, indices: torch.Tensor, images: torch.Tensor, labels: torch.Tensor | None
                      ) -> Reconstructed:
    """In the task: encode and decode the batch and lay it out in pairs of rows."""
    x = to_float(images)
    logits = model.decode_logits(model.encode(x, labels).mean, labels)
    errors = reconstruction_loss(logits, x, model.config.recon_loss).numpy()
    pairs = pairs_grid(x, torch.sigmoid(logits), per_row=COLUMNS)
    array = pairs.permute(1, 2, 0).numpy()
    # A fresh array every time: pyqtgraph keeps a reference to what it is given.
    return Reconstructed(indices, errors, pairs, np.ascontiguousarray(array[:, :, 0] if x.shape[1] == 1 else array))


class ReconstructionView(QWidget):
    def __init__(self, session: TrainingSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.count = COLUMNS * ROWS_OF_PAIRS
        self.indices: torch.Tensor | None = None  # the batch asked for
        self.shown: Reconstructed | None = None  # the batch on screen
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
        self.redraws = Coalescer(self.refresh, self.isVisible, parent=self)
        self.pictures: BackgroundPicture[Reconstructed] = BackgroundPicture(
            session.tasks, "reconstructions", "Reconstructing test images", self._show,
            lambda: self.session.view_model, session.model_changed)
        session.model_changed.connect(self._on_model_changed)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.redraws.flush()

    def _on_model_changed(self) -> None:
        """New weights redraw the grid; another model first drops the old one's grid, so
        it is never shown as this one's (e.g. when its images do not fit the data)."""
        if self.session.view_model is not self._model:
            self._model = self.session.view_model
            self.grid = self.errors = self.shown = None
            self.pane.clear()
        self.redraws.request()

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
        self.redraws.request()

    def refresh(self) -> None:
        data, model = self.session.data, self.session.view_model
        if data is None or model is None:
            return
        if self.indices is None:
            self.new_batch()
            return
        if data.image_shape != model.config.image_shape:
            return
        indices = self.indices
        labels = data.test_labels[indices] if model.is_conditional and data.test_labels is not None else None
        images = data.test_images[indices]
        self.pictures.request(model, lambda copy: reconstruct_pairs(copy, indices, images, labels))

    def _show(self, shown: Reconstructed) -> None:
        self.shown, self.errors, self.grid = shown, shown.errors, shown.grid
        self.pane.set_array(self.grid)
        if self.placeholder.isVisible() or not self.pane.isVisible():
            self.placeholder.hide()
            self.pane.show()

    def cell_at(self, col: float, row: float) -> int | None:
        """Index (into the shown batch) of the image pair under grid pixel (col, row)."""
        if self.shown is None:
            return None
        h, w = self.session.data.image_shape[1:] if self.session.data is not None else (0, 0)
        cell_w, cell_h = w + PADDING, h + PADDING
        c, r = int(col // cell_w), int(row // cell_h)
        i = (r // 2) * COLUMNS + c
        if c >= COLUMNS or r < 0 or c < 0 or i >= len(self.shown.indices):
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
            label = f" ({data.class_names[int(data.test_labels[self.shown.indices[i]])]})"
        unit = "BCE" if self.session.view_model and self.session.view_model.config.recon_loss == "bce" else "SSE"
        self.readout.setText(f"Test image #{int(self.shown.indices[i])}{label}: reconstruction error "
                             f"{self.errors[i]:.1f} ({unit} per image)")

    def export_png(self, path: str) -> None:
        """The grid on screen: no decode on the GUI thread."""
        if self.shown is None:
            raise ValueError("there are no reconstructions to export yet")
        save_png(self.shown.pairs, path)

    def has_image(self) -> bool:
        return self.grid is not None
