"""The current code: its decoded image, the test image it came from, and a slider per dimension.

The decoded image is redrawn synchronously on every code change (one decode is about a
millisecond), which is what makes dragging on the plane feel attached to the image.
Sliders are ordered by how much each dimension carries (KL for the VAE family, variance
of the codes otherwise); dimensions the model does not use are marked inactive.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from explorer.analysis.latents import LatentStats
from explorer.display import one_line
from explorer.gui.state.latent_state import LatentState
from explorer.gui.widgets.image_pane import ImagePane, chw_to_display

SLIDER_STEPS = 1000
# The decoded image's floor: large enough to read a digit, small enough that the dock's
# minimum (with the buttons and sliders) lets the window fit a 1366x768 screen.
DECODED_MIN_PX = 150


class DimensionSlider:
    """One row: name (and KL), slider, value. Maps the integer slider onto the dimension's range."""

    def __init__(self, d: int) -> None:
        self.d = d
        self.name = QLabel(f"z{d}")
        self.slider = QSlider(Qt.Orientation.Horizontal, objectName=f"slider_z{d}")
        self.slider.setRange(0, SLIDER_STEPS)
        self.value = QLabel("0.00")
        self.value.setMinimumWidth(48)
        self.value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.lo, self.hi = -3.0, 3.0

    def set_range(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi

    def to_value(self, position: int) -> float:
        return self.lo + (self.hi - self.lo) * position / SLIDER_STEPS

    def to_position(self, value: float) -> int:
        span = self.hi - self.lo
        return int(round(np.clip((value - self.lo) / span, 0, 1) * SLIDER_STEPS)) if span > 0 else 0

    def show_value(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self.to_position(value))
        self.slider.blockSignals(False)
        self.value.setText(f"{value:+.2f}")

    def describe(self, stats: LatentStats) -> None:
        kl = f" · KL {stats.kl[self.d]:.2f}" if stats.kl is not None else f" · sd {stats.std[self.d]:.2f}"
        active = bool(stats.active[self.d])
        self.name.setText(f"z{self.d}{kl}" + ("" if active else " (inactive)"))
        self.name.setEnabled(active)  # greyed in the theme's colours
        tip = ("This dimension barely varies across the test set: the model does not use it."
               if not active else f"Range: {self.lo:+.2f} to {self.hi:+.2f} (about ±3 sd of the test codes)")
        for widget in (self.name, self.slider):
            widget.setToolTip(tip)


class CodeView(QWidget):
    def __init__(self, state: LatentState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.rows: list[DimensionSlider] = []
        self._order: list[int] = []

        self.decoded = ImagePane("decodedImage")
        self.decoded.setMinimumHeight(DECODED_MIN_PX)
        self.caption = QLabel("Drag the marker on the latent plane or move a slider.", objectName="codeCaption")
        self.caption.setWordWrap(True)
        self.picked = ImagePane("pickedPair")
        self.picked.setFixedHeight(84)
        self.picked.hide()

        self.reset_button = QPushButton("Reset to mean", objectName="resetCode")
        self.reset_button.setShortcut(QKeySequence("Ctrl+Home"))
        self.reset_button.setToolTip("Put every dimension at the test codes' mean (Ctrl+Home)")
        self.random_button = QPushButton("Randomise", objectName="randomCode")
        self.random_button.setShortcut(QKeySequence("Ctrl+R"))
        self.random_button.setToolTip("A random code from the spread of the test codes (Ctrl+R)")
        buttons = QHBoxLayout()
        buttons.addWidget(self.reset_button)
        buttons.addWidget(self.random_button)
        buttons.addStretch(1)

        self.slider_box = QWidget()
        self.slider_grid = QGridLayout(self.slider_box)
        self.slider_grid.setContentsMargins(0, 0, 0, 0)
        self.slider_grid.setColumnStretch(1, 1)
        scroll = QScrollArea()
        scroll.setWidget(self.slider_box)
        scroll.setWidgetResizable(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.decoded, 3)
        layout.addWidget(self.caption)
        layout.addWidget(self.picked)
        layout.addLayout(buttons)
        layout.addWidget(scroll, 2)

        self.reset_button.clicked.connect(state.reset_code)
        self.random_button.clicked.connect(lambda: state.randomise())
        state.stats_changed.connect(self._on_stats)
        state.code_changed.connect(self._on_code)
        # The caption gives the code's place on the plane: new axes (PCA or raw, or refitted
        # to new codes) move it even when the code itself stays.
        state.axes_changed.connect(self.redraw)
        state.label_changed.connect(lambda _: self.redraw())
        state.decoder_changed.connect(self._on_decoder)
        state.picked_changed.connect(self._on_picked)
        self._set_enabled(False)

    # -- state to widgets -------------------------------------------------------------------

    def _set_enabled(self, on: bool) -> None:
        self.reset_button.setEnabled(on)
        self.random_button.setEnabled(on)

    def _on_stats(self) -> None:
        stats = self.state.stats
        if stats is None:
            return
        if len(self.rows) != stats.dim:
            self._build_rows(stats.dim)
        for row in self.rows:
            row.set_range(*stats.slider_range(row.d))
            row.describe(stats)
        order = [int(d) for d in stats.order]
        if order != self._order:
            self._order = order
            for position, d in enumerate(order):
                row = self.rows[d]
                self.slider_grid.addWidget(row.name, position, 0)
                self.slider_grid.addWidget(row.slider, position, 1)
                self.slider_grid.addWidget(row.value, position, 2)
        self._show_code()
        self._set_enabled(True)
        self.redraw()  # the axes were refitted with the codes: the caption's coordinates moved

    def _build_rows(self, dim: int) -> None:
        for row in self.rows:
            for widget in (row.name, row.slider, row.value):
                self.slider_grid.removeWidget(widget)
                widget.deleteLater()
        self.rows = [DimensionSlider(d) for d in range(dim)]
        self._order = []
        for row in self.rows:
            row.slider.valueChanged.connect(lambda position, row=row: self._on_slider(row, position))

    def _on_code(self, source: str) -> None:
        self._show_code()
        self.redraw()

    def _on_decoder(self) -> None:
        self.redraw()
        self._on_picked(self.state.picked)

    def _show_code(self) -> None:
        code = self.state.code
        if code is None or len(self.rows) != len(code):
            return
        for row in self.rows:
            row.show_value(float(code[row.d]))

    def redraw(self) -> None:
        image = self.state.decode_current()
        if image is None:
            return
        self.decoded.set_array(chw_to_display(image))
        label = ""
        if self.state.is_conditional and self.state.label is not None:
            names = self.state.class_names
            label = f" drawn as class {names[self.state.label] if self.state.label < len(names) else self.state.label}"
        point = self.state.plane_point()
        where = f" at ({point[0]:+.2f}, {point[1]:+.2f}) on the plane" if point is not None else ""
        far = " Extrapolated: far from every test code on the map, so the decode is a guess." \
            if self.state.is_extrapolated() else ""
        self.caption.setText(f"Decoded code{where}{label}.{far}")

    def _on_picked(self, index) -> None:
        data, model = self.state.session.data, self.state.model
        if index is None or data is None or model is None:
            self.picked.hide()
            return
        import torch

        from explorer.data import to_float

        x = to_float(data.test_images[index:index + 1])
        y = data.test_labels[index:index + 1] if model.is_conditional and data.test_labels is not None else None
        with torch.no_grad():
            recon = model.reconstruct(x, y)
        pair = np.concatenate([chw_to_display(x[0].numpy()), np.ones_like(chw_to_display(x[0].numpy()))[:, :2],
                               chw_to_display(recon[0].numpy())], axis=1)
        self.picked.set_array(np.ascontiguousarray(pair))
        self.picked.show()
        name = ""
        if data.test_labels is not None and data.class_names:
            name = f" ({one_line(data.class_names[int(data.test_labels[index])], limit=40)})"
        self.picked.setToolTip(f"Test image #{index}{name}: original (left) and reconstruction (right)")
        self.caption.setText(f"Test image #{index}{name} loaded: original and reconstruction below.")

    # -- widgets to state -------------------------------------------------------------------

    def _on_slider(self, row: DimensionSlider, position: int) -> None:
        self.state.set_dim(row.d, row.to_value(position))
