"""A grid of samples: from the prior for the VAE family, from a Gaussian fitted to the
test codes for plain autoencoders (they have no prior). A conditional model draws the
class chosen in the plane's class picker. The seed is kept, so the same grid redraws as
training goes on and shows the samples sharpen.
"""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtWidgets import QPushButton, QSpinBox, QWidget

from explorer.analysis.grids import image_grid, save_png
from explorer.analysis.latents import sample_codes
from explorer.gui.state.latent_state import LatentState
from explorer.gui.widgets.image_pane import chw_to_display
from explorer.gui.widgets.picture_view import PictureView


class SamplesView(PictureView):
    def __init__(self, state: LatentState, parent: QWidget | None = None) -> None:
        super().__init__("samplesGrid", "samplesSource", parent)
        self.state = state
        self.codes: np.ndarray | None = None
        self.images: np.ndarray | None = None
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
        n = self.side.value() ** 2
        seed = self.seed.value()
        self.codes = sample_codes(model.config, state.stats, n, seed)
        if model.is_generative:
            source = "Samples from the prior N(0, I)"
        else:
            source = "This autoencoder has no prior: samples from a Gaussian fitted to the test codes"
        if model.is_conditional and state.label is not None:
            names = state.class_names
            source += f", drawn as class {names[state.label] if state.label < len(names) else state.label}"
        self.images = state.decode(self.codes)
        self.source.setText(source + ".")
        grid = image_grid(torch.from_numpy(self.images), nrow=self.side.value()).numpy()
        self.pane.set_array(chw_to_display(grid))

    def export_png(self, path: str) -> None:
        if self.images is None:
            raise ValueError("there are no samples to export yet")
        save_png(image_grid(torch.from_numpy(self.images), nrow=self.side.value()), path)
