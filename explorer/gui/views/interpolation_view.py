"""A strip from one test image to another through the code space: linear or spherical.

The strip starts and ends with the two originals, so it is plain how faithful the ends
are. A conditional model decodes every step with the chosen class.
"""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtWidgets import QComboBox, QPushButton, QSpinBox, QWidget

from explorer.analysis.export import save_codes
from explorer.analysis.grids import image_grid, save_png
from explorer.analysis.interpolation import interpolate
from explorer.analysis.latents import encode_images
from explorer.data import to_float
from explorer.gui.state.latent_state import LatentState
from explorer.gui.widgets.image_pane import chw_to_display
from explorer.gui.widgets.picture_view import PictureView


class InterpolationView(PictureView):
    def __init__(self, state: LatentState, parent: QWidget | None = None) -> None:
        super().__init__("interpolationStrip", "interpCaption", parent)
        self.state = state
        self.codes: np.ndarray | None = None
        self.strip: np.ndarray | None = None  # (steps + 2, C, H, W): original, path, original
        self.start = QSpinBox(objectName="interpFrom", minimum=0, maximum=0, prefix="from #")
        self.end = QSpinBox(objectName="interpTo", minimum=0, maximum=0, prefix="to #", value=1)
        self.use_picked_start = QPushButton("Use picked", objectName="interpPickFrom")
        self.use_picked_start.setToolTip("Start from the test image last clicked on the plane")
        self.use_picked_end = QPushButton("Use picked", objectName="interpPickTo")
        self.use_picked_end.setToolTip("End at the test image last clicked on the plane")
        self.steps = QSpinBox(objectName="interpSteps", minimum=2, maximum=32, value=10, suffix=" steps")
        self.mode = QComboBox(objectName="interpMode")
        self.mode.addItem("Linear", "linear")
        self.mode.addItem("Spherical (slerp)", "spherical")
        self.mode.setToolTip("Spherical paths keep a typical distance from the centre of the code space")
        self.pane.set_rows(1)
        self.add_bar(self.start, self.use_picked_start, self.end, self.use_picked_end)
        self.add_bar(self.steps, self.mode)

        self.use_picked_start.clicked.connect(lambda: self._use_picked(self.start))
        self.use_picked_end.clicked.connect(lambda: self._use_picked(self.end))
        for signal in (self.start.valueChanged, self.end.valueChanged, self.steps.valueChanged,
                       self.mode.currentIndexChanged, state.label_changed, state.decoder_changed,
                       state.stats_changed):
            signal.connect(lambda *_: self.redraws.request())
        state.decoder_changed.connect(self._on_decoder)
        state.session.data_changed.connect(self._on_data)
        state.picked_changed.connect(self._on_picked)
        self._on_picked(None)

    def _on_data(self) -> None:
        data = self.state.session.data
        if data is None:
            return
        last = data.test_images.shape[0] - 1
        self.start.setMaximum(last)
        self.end.setMaximum(last)
        if self.start.value() == self.end.value() and last >= 1:
            self.end.setValue(1 if self.start.value() != 1 else 0)
        self.redraws.request()

    def _on_decoder(self) -> None:
        self._track_model(self.state.model)

    def clear_results(self) -> None:
        """Another model: the strip between the ends was the old model's path."""
        super().clear_results()
        self.codes = self.strip = None

    def _on_picked(self, index) -> None:
        for button in (self.use_picked_start, self.use_picked_end):
            button.setEnabled(index is not None)

    def _use_picked(self, spin: QSpinBox) -> None:
        if self.state.picked is not None:
            spin.setValue(self.state.picked)

    @torch.no_grad()
    def redraw(self) -> None:
        data, model, state = self.state.session.data, self.state.model, self.state
        if data is None or model is None or data.image_shape != model.config.image_shape:
            return
        ends = torch.tensor([self.start.value(), self.end.value()])
        labels = data.test_labels[ends] if data.test_labels is not None else None
        if model.is_conditional and labels is None:
            return
        codes, _ = encode_images(model, data.test_images[ends], labels)
        a, b = codes.numpy()
        mode = self.mode.currentData()
        centre = None if model.is_generative or state.stats is None else state.stats.mean
        self.codes = interpolate(a, b, self.steps.value(), mode, centre)
        path = state.decode(self.codes)
        originals = to_float(data.test_images[ends]).numpy()
        self.strip = np.concatenate([originals[:1], path, originals[1:]])
        grid = image_grid(torch.from_numpy(self.strip), nrow=len(self.strip)).numpy()
        self.pane.set_array(chw_to_display(grid))
        drawn = ""
        if model.is_conditional and state.label is not None:
            names = state.class_names
            drawn = f"; every step drawn as class {names[state.label] if state.label < len(names) else state.label}"
        self.caption.setText(f"Test image #{int(ends[0])}, {self.steps.value()} {mode} steps between their codes, "
                             f"test image #{int(ends[1])}{drawn}.")

    def export_png(self, path: str) -> None:
        if self.strip is None:
            raise ValueError("there is no interpolation to export yet")
        save_png(image_grid(torch.from_numpy(self.strip), nrow=len(self.strip)), path)

    def export_codes(self, path: str) -> None:
        if self.codes is None:
            raise ValueError("there is no interpolation to export yet")
        save_codes(path, self.codes)
