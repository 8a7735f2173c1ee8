"""The views for what autoencoders are for: denoising, anomaly detection, compression
against PCA, and generating a dataset, driven through their widgets."""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QMessageBox

from explorer.analysis.metrics import detection_at, psnr
from explorer.data import to_float
from explorer.data.folder import load_folder
from explorer.gui.app.main_window import MainWindow
from explorer.models.noise import corrupt


def open_model(qtbot, window: MainWindow, path) -> None:
    assert window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.session.data is not None and window.latent.ready, timeout=30_000)


def raise_dock(qtbot, dock) -> None:
    dock.show()
    dock.raise_()
    qtbot.waitUntil(dock.widget().isVisible, timeout=5000)


def test_denoising_view_reports_psnr_as_the_noise_slider_moves(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("denoising-ae", epochs=2, limit=4000))
    raise_dock(qtbot, window.denoise_dock)
    view = window.denoise_view
    qtbot.waitUntil(lambda: view.psnr_noisy is not None, timeout=5000)
    view.noise.setCurrentIndex(view.noise.findData("gaussian"))
    view.level.setFocus()
    before = view.mean_noisy
    for _ in range(2):
        qtbot.keyClick(view.level, Qt.Key.Key_PageUp)  # +10 steps each
    qtbot.waitUntil(lambda: view.shown_setting == ("gaussian", 0.5), timeout=5000)
    assert view.mean_noisy < before - 1.0
    assert view.noise_level == 0.5 and view.level_label.text() == "0.50"
    # The readout is the mean of per-image PSNRs computed from the images themselves.
    data = window.session.data
    clean = to_float(data.test_images[:500])
    noisy = corrupt(clean, "gaussian", 0.5, torch.Generator().manual_seed(0))
    with torch.no_grad():
        denoised = window.session.view_model.reconstruct(noisy)
    np.testing.assert_allclose(view.psnr_denoised, psnr(clean.numpy(), denoised.numpy()), rtol=1e-5)
    assert f"{view.mean_denoised:.1f} dB" in view.readout.text()
    assert view.mean_denoised > view.mean_noisy + 2, "a denoising autoencoder should clean gaussian noise"
    assert view.rows.shape[0] == 24


def test_anomaly_view_threshold_drag_reports_precision_and_recall(qtbot, window, trained_checkpoint, drag):
    open_model(qtbot, window, trained_checkpoint("ae", epochs=3, limit=3000, classes=(1,)))
    assert window.panel.classes.text() == "1"
    raise_dock(qtbot, window.anomaly_dock)
    view = window.anomaly_view
    qtbot.waitUntil(lambda: view.detection is not None, timeout=30_000)
    assert view.normal == (1,) and view.normal_edit.text() == "1"
    assert len(view.scored.scores) == 3000, "every class of the test split is scored, not only the normal one"
    assert view.auc > 0.95 and f"{view.auc:.4f}" in view.roc.getPlotItem().titleLabel.text
    assert view.worst_rows.shape[0] == 24 and view.worst_rows.shape[1] == 3

    # Drag the threshold line to the right as a person would, and read the readout.
    line = view.threshold
    box = view.histogram.getPlotItem().getViewBox()
    qtbot.waitUntil(lambda: box.viewRange()[0][0] < line.value() < box.viewRange()[0][1], timeout=5000)
    (x0, x1), (y0, y1) = box.viewRange()
    y = (y0 + y1) / 2

    def pixel(x: float) -> QPointF:
        return QPointF(view.histogram.mapFromScene(box.mapViewToScene(QPointF(x, y))))

    start = line.value()
    target = start + 0.3 * (x1 - start)
    drag(view.histogram, pixel(start), pixel(target))
    assert abs(line.value() - target) < 0.05 * (x1 - x0), "the threshold did not follow the mouse"
    expected = detection_at(view.scored.scores, view.is_anomaly, line.value())
    assert view.detection == expected
    assert f"precision {expected.precision:.3f}, recall {expected.recall:.3f}" in view.readout.text()
    # Higher threshold: fewer flagged.
    assert expected.flagged < detection_at(view.scored.scores, view.is_anomaly, start).flagged

    # Other normal classes can be typed in.
    view.normal_edit.setText("1,7")
    view.normal_edit.editingFinished.emit()
    assert view.normal == (1, 7)


def test_anomaly_view_asks_for_normal_classes_for_a_model_trained_on_all(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("ae"))
    raise_dock(qtbot, window.anomaly_dock)
    view = window.anomaly_view
    qtbot.waitUntil(lambda: view.scored is not None, timeout=30_000)
    assert "Say which classes are normal" in view.status.text()
    qtbot.keyClicks(view.normal_edit, "0")
    qtbot.keyClick(view.normal_edit, Qt.Key.Key_Return)
    assert view.normal == (0,) and view.detection is not None


def test_compression_view_compares_with_pca(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("ae"))
    raise_dock(qtbot, window.compression_dock)
    view = window.compression_view
    k = window.session.view_model.config.latent_dim
    assert f"{784 / k:.1f}:1" in view.summary.text()  # 784 numbers to a k-number code
    qtbot.mouseClick(view.compare_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.result is not None, timeout=30_000)
    result = view.result
    assert k in result.ks and result.pca[1] > result.pca[k] > result.pca[200]
    xs, ys = view.model_point.getOriginalDataset()
    assert list(xs) == [float(k)] and ys[0] == result.model
    assert "model" in view.summary.text() and "PCA" in view.summary.text()


def test_generated_folder_loads_back_as_a_dataset(qtbot, window, trained_checkpoint, tmp_path):
    open_model(qtbot, window, trained_checkpoint("cvae", epochs=1, limit=2000))
    window.samples_view.side.setValue(2)  # 4 per class
    folder = tmp_path / "generated"
    window.exports.generate_folder(str(folder))
    qtbot.waitUntil(lambda: "Wrote 40 images" in window.statusBar().currentMessage(), timeout=30_000)
    data = load_folder(folder, test_fraction=0.25)
    assert data.num_classes == 10 and data.train_images.shape[0] + data.test_images.shape[0] == 40
    # Writing into the same (now non-empty) folder is refused and keeps the files.
    window.exports.generate_folder(str(folder))
    qtbot.waitUntil(lambda: window.message_box is not None, timeout=30_000)
    assert "not empty" in window.message_box.text()
    assert len(list(folder.rglob("*.png"))) == 40


def test_class_filter_in_the_training_settings(qtbot, window):
    qtbot.keyClicks(window.panel.classes, "1, 7")
    _, data, _ = window.panel.configs()
    assert data.classes == (1, 7)
    window.panel.classes.clear()
    qtbot.keyClicks(window.panel.classes, "one")
    window.start_training()
    assert window.message_box is not None and window.message_box.icon() == QMessageBox.Icon.Warning
    assert "Classes" in window.message_box.text()
    assert window.session.state == "idle"
