"""Compression against PCA: what a k-number code buys over the linear baseline.

On request (fitting PCA on the training images takes a second or two, off the GUI
thread, through ``BackgroundPicture``) it draws PCA's test error for a range of k, with the model's own error at its
latent size on the same chart, and says how many times smaller the code is than the image.
The summary has a row of its own and wraps, the legend sits under the chart, and the
log k axis labels only the ticks that fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from explorer.analysis.pca_baseline import compression_ratio, fit_pca, model_error, pca_errors
from explorer.config import ModelConfig
from explorer.data import ImageData
from explorer.gui.state.session import TrainingSession
from explorer.gui.views.background_picture import BackgroundPicture
from explorer.gui.widgets.plot_legibility import add_outside_legend, legible_axes

KS = (1, 2, 3, 5, 10, 20, 32, 50, 100, 200)


@dataclass(frozen=True)
class Comparison:
    config: ModelConfig
    ks: tuple[int, ...]
    pca: dict[int, float]
    model: float


def compare_with_pca(model, data: ImageData) -> Comparison:
    """In the task: fit PCA on the training images and measure both on the test images."""
    config = model.config
    dim = int(np.prod(data.image_shape))
    ks = tuple(sorted({k for k in KS if k <= dim} | {min(config.latent_dim, dim)}))
    pca = fit_pca(data.train_images, max(ks))
    labels = data.test_labels if config.conditional else None
    return Comparison(config, ks, pca_errors(pca, data.test_images, list(ks)),
                      model_error(model, data.test_images, labels))


class CompressionView(QWidget):
    def __init__(self, session: TrainingSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.result: Comparison | None = None
        self._model: object = None  # the model the result belongs to
        self.compare_button = QPushButton("Compare with PCA", objectName="comparePca")
        self.compare_button.setToolTip("Fit PCA on the training images and compare test errors across code sizes")
        self.summary = QLabel("", objectName="compressionSummary")
        self.summary.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(self.compare_button)
        bar.addStretch(1)
        self.plot = pg.PlotWidget(objectName="compressionPlot", axisItems=legible_axes())
        self.plot.setLogMode(x=True, y=False)
        self.plot.setLabel("bottom", "numbers per image (k)")
        self.plot.setLabel("left", "test squared error per image")
        self.legend = add_outside_legend(self.plot.getPlotItem(), "below", columns=2)
        self.pca_curve = self.plot.plot(name="PCA with k components", pen=pg.mkPen("#4e79a7", width=2),
                                        symbol="o", symbolSize=6, symbolBrush="#4e79a7")
        self.model_point = self.plot.plot(name="this model", pen=None, symbol="star", symbolSize=16,
                                          symbolBrush="#e15759")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.summary)
        layout.addWidget(self.plot, 1)
        self.compare_button.clicked.connect(self.compare)
        self.pictures: BackgroundPicture[Comparison] = BackgroundPicture(
            session.tasks, "pca-baseline", "Fitting the PCA baseline", self._on_result,
            lambda: self.session.view_model, session.model_changed, on_failed=self._on_failed, copy_at_request=True)
        session.model_changed.connect(self._on_model_changed)
        self._on_model_changed()

    def _on_model_changed(self) -> None:
        model, data = self.session.view_model, self.session.data
        if model is not self._model:
            # Another model: the last comparison (and any still running) was of the old one.
            self._model = model
            self.result = None
            self.pca_curve.setData([], [])
            self.model_point.setData([], [])
            self.compare_button.setEnabled(True)
        if model is None:
            self.summary.setText("Train or open a model, then compare it with PCA.")
            return
        shape = data.image_shape if data is not None else model.config.image_shape
        ratio = compression_ratio(shape, model.config.latent_dim)
        self.summary.setText(f"Code of {model.config.latent_dim} numbers for {int(np.prod(shape))}-number images: "
                             f"{ratio:.1f}:1 compression." + (" Press Compare with PCA." if self.result is None
                                                               else ""))

    def compare(self) -> None:
        model, data = self.session.view_model, self.session.data
        if model is None or data is None:
            return
        self.compare_button.setEnabled(False)
        self.summary.setText("Fitting PCA on the training images...")
        self.pictures.request(model, lambda copy: compare_with_pca(copy, data))

    def _on_failed(self, message: str) -> None:
        self.compare_button.setEnabled(True)
        self.summary.setText(f"Could not compare: {message}")

    def _on_result(self, result: Comparison) -> None:
        self.compare_button.setEnabled(True)
        self.result = result
        ks = np.array(result.ks, dtype=float)
        self.pca_curve.setData(ks, [result.pca[k] for k in result.ks])
        k = result.config.latent_dim
        self.model_point.setData([float(k)], [result.model])
        pca_k = result.pca[min(result.ks, key=lambda v: abs(v - k))]
        shape = self.session.data.image_shape if self.session.data is not None else result.config.image_shape
        self.summary.setText(f"k = {k}: {compression_ratio(shape, k):.1f}:1 compression. Test squared error per "
                             f"image: model {result.model:.2f}, PCA {pca_k:.2f} "
                             f"({'model' if result.model < pca_k else 'PCA'} "
                             f"{max(result.model, pca_k) / max(min(result.model, pca_k), 1e-12):.2f}x lower).")
