"""Denoising: clean test images, the same with noise, and what the model makes of them,
with the PSNR of each and on average.

The averages are over a fixed sample of test images (seeded noise), so moving the level
slider compares like with like. Any model can try; a denoising autoencoder should win.
The work runs off the GUI thread (500 images through a conv model take ~65 ms) through
``BackgroundPicture``, one pass at a time; a slider moved meanwhile gets one more pass with
its latest value, and the picture on screen stays until it lands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QSlider, QWidget

from explorer.analysis.grids import image_grid, save_png
from explorer.analysis.metrics import mean_psnr, psnr
from explorer.config import CORRUPTIONS, NOISE_LABELS
from explorer.data import to_float
from explorer.gui.state.session import TrainingSession
from explorer.gui.views.background_picture import BackgroundPicture
from explorer.gui.widgets.image_pane import chw_to_display
from explorer.gui.widgets.picture_view import PictureView
from explorer.models.noise import corrupt

SHOWN = 8
AVERAGED = 500
LEVEL_STEPS = 100
ROWS = 3  # clean, noisy, denoised


@dataclass(frozen=True)
class Denoised:
    setting: tuple[str, float]  # (noise type, level) these figures are for
    psnr_noisy: np.ndarray
    psnr_denoised: np.ndarray
    rows: np.ndarray  # clean, noisy and denoised images of the first SHOWN
    grid: np.ndarray  # the rows tiled, ready for the pane


def denoise_batch(model, images: torch.Tensor, labels: torch.Tensor | None, kind: str, level: float) -> Denoised:
    """In the task: corrupt the images with seeded noise, reconstruct them, score both."""
    clean = to_float(images)
    # The same noise for every level and model: a fair comparison.
    noisy = corrupt(clean, kind, level, torch.Generator().manual_seed(0))
    denoised = model.reconstruct(noisy, labels)
    shown = min(SHOWN, clean.shape[0])
    rows = torch.cat([clean[:shown], noisy[:shown], denoised[:shown]])
    return Denoised((kind, level), psnr(clean.numpy(), noisy.numpy()), psnr(clean.numpy(), denoised.numpy()),
                    rows.numpy(), chw_to_display(image_grid(rows, nrow=shown).numpy()))


class DenoiseView(PictureView):
    def __init__(self, session: TrainingSession, parent: QWidget | None = None) -> None:
        super().__init__("denoiseGrid", "denoiseReadout", parent)
        self.session = session
        self.noise = QComboBox(objectName="denoiseNoise")
        for key in CORRUPTIONS:
            self.noise.addItem(NOISE_LABELS[key], key)
        self.level = QSlider(Qt.Orientation.Horizontal, objectName="denoiseLevel")
        self.level.setRange(0, LEVEL_STEPS)
        self.level.setValue(30)
        self.level.setToolTip("Gaussian: noise strength; salt and pepper, masking: fraction of pixels hit")
        self.level_label = QLabel("", objectName="denoiseLevelLabel")
        self.pane.set_rows(ROWS)
        self.readout = self.caption  # the mean PSNRs
        self.per_image = QLabel("", objectName="denoisePerImage")
        self.per_image.setWordWrap(True)
        bar = self.add_bar(self.noise, self.level, self.level_label, stretch=False)
        bar.setStretchFactor(self.level, 1)  # the slider takes the room
        self.column.addWidget(self.per_image)
        self.psnr_noisy: np.ndarray | None = None
        self.psnr_denoised: np.ndarray | None = None
        self.mean_noisy = self.mean_denoised = float("nan")
        self.rows: np.ndarray | None = None  # (3 * SHOWN, C, H, W): clean, noisy, denoised
        self.shown_setting: tuple[str, float] | None = None
        session.model_changed.connect(self._on_model_changed)
        self.pictures: BackgroundPicture[Denoised] = BackgroundPicture(
            session.tasks, "denoise", "Denoising test images", self._show, lambda: self.session.view_model,
            session.model_changed, on_failed=self._on_failed)
        for signal in (self.noise.currentIndexChanged, self.level.valueChanged, session.model_changed,
                       session.data_changed):
            signal.connect(lambda *_: self.redraws.request())
        self.level.valueChanged.connect(self._show_level)
        self._show_level()

    @property
    def noise_level(self) -> float:
        return self.level.value() / LEVEL_STEPS

    def _show_level(self) -> None:
        self.level_label.setText(f"{self.noise_level:.2f}")

    def redraw(self) -> None:
        data, model = self.session.data, self.session.view_model
        if data is None or model is None or data.image_shape != model.config.image_shape:
            return
        if model.is_conditional and data.test_labels is None:
            return
        n = min(AVERAGED, data.test_images.shape[0])
        images = data.test_images[:n]
        labels = data.test_labels[:n] if model.is_conditional else None
        kind, level = self.noise.currentData(), self.noise_level
        self.pictures.request(model, lambda copy: denoise_batch(copy, images, labels, kind, level))

    def _on_model_changed(self) -> None:
        self._track_model(self.session.view_model)

    def clear_results(self) -> None:
        """Another model (not new weights of this one): its figures are not this one's."""
        super().clear_results()
        self.psnr_noisy = self.psnr_denoised = self.rows = self.shown_setting = None
        self.mean_noisy = self.mean_denoised = float("nan")
        self.per_image.setText("")

    def _on_failed(self, message: str) -> None:
        self.readout.setText(f"Could not denoise: {message}")

    def _show(self, result: Denoised) -> None:
        self.shown_setting = result.setting
        self.psnr_noisy, self.psnr_denoised = result.psnr_noisy, result.psnr_denoised
        self.mean_noisy, self.mean_denoised = mean_psnr(self.psnr_noisy), mean_psnr(self.psnr_denoised)
        n = len(result.psnr_noisy)
        shown = min(SHOWN, n)
        self.rows = result.rows
        self.pane.set_array(result.grid)
        gain = self.mean_denoised - self.mean_noisy
        self.readout.setText(f"Rows: clean, noisy, denoised. Mean PSNR over {n} test images: noisy "
                             f"{self.mean_noisy:.1f} dB, denoised {self.mean_denoised:.1f} dB "
                             f"({gain:+.1f} dB).")
        self.per_image.setText("Denoised PSNR of the images shown (dB): "
                               + "  ".join(f"{v:.1f}" for v in self.psnr_denoised[:shown]))

    def export_png(self, path: str) -> None:
        if self.rows is None:
            raise ValueError("there is nothing to export yet")
        save_png(image_grid(torch.from_numpy(self.rows), nrow=self.rows.shape[0] // 3), path)
