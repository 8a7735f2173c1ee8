"""A strip from one test image to another through the code space: linear or spherical.

The strip starts and ends with the two originals, so it is plain how faithful the ends
are. A conditional model decodes every step with the chosen class. The ends are encoded and
the path decoded off the GUI thread (``BackgroundPicture``); the strip on screen stays until
the new one lands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtWidgets import QComboBox, QPushButton, QSpinBox, QWidget

from explorer.analysis.export import save_codes
from explorer.analysis.grids import image_grid, save_png
from explorer.analysis.interpolation import interpolate
from explorer.analysis.latents import encode_images
from explorer.analysis.manifold import decode_codes
from explorer.data import to_float
from explorer.gui.state.latent_state import LatentState
from explorer.gui.views.background_picture import BackgroundPicture
from explorer.gui.widgets.image_pane import chw_to_display
from explorer.gui.widgets.picture_view import PictureView


@dataclass(frozen=True)
class PathAsked:
    """What one strip is made from, taken on the GUI thread."""

    ends: torch.Tensor  # the two test-image numbers
    images: torch.Tensor  # their uint8 images
    labels: torch.Tensor | None  # their classes
    steps: int
    mode: str
    centre: np.ndarray | None  # a plain autoencoder's code mean: slerp turns about it
    label: int | None  # the class every step is drawn as
    caption: str


@dataclass(frozen=True)
class Strip:
    asked: PathAsked
    codes: np.ndarray  # the path's codes
    strip: np.ndarray  # (steps + 2, C, H, W): original, path, original
    grid: np.ndarray  # the strip tiled, ready for the pane


def interpolate_strip(model, asked: PathAsked) -> Strip:
    """In the task: encode the two ends, walk between their codes and decode the path."""
    codes, _ = encode_images(model, asked.images, asked.labels)
    a, b = codes.numpy()
    path_codes = interpolate(a, b, asked.steps, asked.mode, asked.centre)
    originals = to_float(asked.images).numpy()
    strip = np.concatenate([originals[:1], decode_codes(model, path_codes, asked.label), originals[1:]])
    grid = chw_to_display(image_grid(torch.from_numpy(strip), nrow=len(strip)).numpy())
    return Strip(asked, path_codes, strip, grid)


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
        self.pictures: BackgroundPicture[Strip] = BackgroundPicture(
            state.session.tasks, "interpolation", "Decoding the interpolation", self._show, lambda: self.state.model,
            state.decoder_changed)
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

    def redraw(self) -> None:
        data, model, state = self.state.session.data, self.state.model, self.state
        if data is None or model is None or data.image_shape != model.config.image_shape:
            return
        ends = torch.tensor([self.start.value(), self.end.value()])
        labels = data.test_labels[ends] if data.test_labels is not None else None
        if model.is_conditional and labels is None:
            return
        mode = self.mode.currentData()
        centre = None if model.is_generative or state.stats is None else state.stats.mean
        drawn = ""
        if model.is_conditional and state.label is not None:
            names = state.class_names
            drawn = f"; every step drawn as class {names[state.label] if state.label < len(names) else state.label}"
        caption = (f"Test image #{int(ends[0])}, {self.steps.value()} {mode} steps between their codes, "
                   f"test image #{int(ends[1])}{drawn}.")
        asked = PathAsked(ends, data.test_images[ends], labels, self.steps.value(), mode, centre, state.label,
                          caption)
        self.pictures.request(model, lambda copy: interpolate_strip(copy, asked))

    def _show(self, strip: Strip) -> None:
        self.codes, self.strip = strip.codes, strip.strip
        self.pane.set_array(strip.grid)
        self.caption.setText(strip.asked.caption)

    def export_png(self, path: str) -> None:
        if self.strip is None:
            raise ValueError("there is no interpolation to export yet")
        save_png(image_grid(torch.from_numpy(self.strip), nrow=len(self.strip)), path)

    def export_codes(self, path: str) -> None:
        if self.codes is None:
            raise ValueError("there is no interpolation to export yet")
        save_codes(path, self.codes)
