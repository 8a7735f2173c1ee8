"""A grid of samples: from the prior for the VAE family, from a Gaussian fitted to the
test codes for plain autoencoders (they have no prior). A conditional model draws the
class chosen in the plane's class picker. The seed is kept, so the same grid redraws as
training goes on and shows the samples sharpen. The grid is decoded off the GUI thread
(``BackgroundPicture``); the one on screen stays until the new one lands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtWidgets import QPushButton, QSpinBox, QWidget

from explorer.analysis.grids import image_grid, save_png
from explorer.analysis.latents import sample_codes
from explorer.analysis.manifold import decode_codes
from explorer.gui.state.latent_state import LatentState
from explorer.gui.views.background_picture import BackgroundPicture
from explorer.gui.widgets.image_pane import chw_to_display
from explorer.gui.widgets.picture_view import PictureView


@dataclass(frozen=True)
class Samples:
    """A decoded grid and what it was drawn from."""

    codes: np.ndarray
    images: np.ndarray  # (N, C, H, W)
    grid: np.ndarray  # the images tiled, ready for the pane
    side: int
    source: str


def decode_samples(model, codes: np.ndarray, label: int | None, side: int, source: str) -> Samples:
    """In the task: decode the codes in one batch and tile them."""
    images = decode_codes(model, codes, label)
    grid = chw_to_display(image_grid(torch.from_numpy(images), nrow=side).numpy())
    return Samples(codes, images, grid, side, source)


class SamplesView(PictureView):
    def __init__(self, state: LatentState, parent: QWidget | None = None) -> None:
        super().__init__("samplesGrid", "samplesSource", parent)
        self.state = state
        self.codes: np.ndarray | None = None
        self.images: np.ndarray | None = None  # the grid on screen, decoded
        self._side = 0  # its images per side
        self.source = self.caption  # says what the samples are drawn from
        self.side = QSpinBox(objectName="samplesSide", minimum=2, maximum=16, value=8, suffix=" per side")
        self.seed = QSpinBox(objectName="samplesSeed", minimum=0, maximum=2**31 - 1, value=0, prefix="seed ")
        self.resample = QPushButton("New samples", objectName="resample")
        self.resample.setToolTip("Draw with the next seed")
        self.add_bar(self.side, self.seed, self.resample)
        self.pane.set_rows(self.side.value())
        self.side.valueChanged.connect(self.pane.set_rows)
        self.resample.clicked.connect(lambda: self.seed.setValue(self.seed.value() + 1))
        state.decoder_changed.connect(self._on_decoder)
        self.pictures: BackgroundPicture[Samples] = BackgroundPicture(
            state.session.tasks, "samples", "Decoding samples", self._show, lambda: self.state.model,
            state.decoder_changed)
        for signal in (self.seed.valueChanged, self.side.valueChanged, state.label_changed,
                       state.decoder_changed, state.stats_changed):
            signal.connect(lambda *_: self.redraws.request())

    def _on_decoder(self) -> None:
        self._track_model(self.state.model)

    def clear_results(self) -> None:
        """Another model: its samples are not this one's, even before this one can draw."""
        super().clear_results()
        self.codes = self.images = None

    def redraw(self) -> None:
        state, model = self.state, self.state.model
        if model is None or state.stats is None:
            return
        side = self.side.value()
        codes = sample_codes(model.config, state.stats, side ** 2, self.seed.value())
        if model.is_generative:
            source = "Samples from the prior N(0, I)"
        else:
            source = "This autoencoder has no prior: samples from a Gaussian fitted to the test codes"
        if model.is_conditional and state.label is not None:
            names = state.class_names
            source += f", drawn as class {names[state.label] if state.label < len(names) else state.label}"
        label = state.label
        self.pictures.request(model, lambda copy: decode_samples(copy, codes, label, side, source + "."))

    def _show(self, samples: Samples) -> None:
        self.codes, self.images, self._side = samples.codes, samples.images, samples.side
        self.source.setText(samples.source)
        self.pane.set_array(samples.grid)

    def export_png(self, path: str) -> None:
        if self.images is None:
            raise ValueError("there are no samples to export yet")
        save_png(image_grid(torch.from_numpy(self.images), nrow=self._side), path)
