"""Your input: draw on the canvas, drop or paste an image, and see the model read it: the
star on the plane at the encoder's mean, the posterior ellipse, the score and its rank."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from explorer.analysis.anomaly import anomaly_scores
from explorer.analysis.latents import encode_images
from explorer.analysis.maps import MapAxes, fit_map
from explorer.gui.app.main_window import MainWindow
from explorer.gui.state.latent_state import ellipse_outline, plane_covariance

TIMEOUT_MS = 60_000


def open_model(qtbot, window: MainWindow, path) -> None:
    assert window.files.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.latent.ready and window.plane.plot.isVisible(), timeout=TIMEOUT_MS)
    dock = window.docks["draw_view"]
    dock.show()
    dock.raise_()
    qtbot.waitUntil(window.draw_view.canvas.isVisible, timeout=5000)


def draw(qtbot, canvas, points: list[tuple[float, float]]) -> None:
    """A stroke through ``points`` (the picture's pixel coordinates) with QTest's mouse."""
    left = Qt.MouseButton.LeftButton
    pixels = [canvas.from_image(x, y).toPoint() for x, y in points]
    QTest.mousePress(canvas, left, Qt.KeyboardModifier.NoModifier, pixels[0])
    for p in pixels[1:]:
        QTest.mouseMove(canvas, p)
        qtbot.wait(5)
    QTest.mouseRelease(canvas, left, Qt.KeyboardModifier.NoModifier, pixels[-1])


def expected_point(window: MainWindow, pixels: np.ndarray, label: int | None = None) -> np.ndarray:
    model = window.latent.model
    labels = torch.tensor([label]) if label is not None else None
    mean, _ = encode_images(model, torch.from_numpy(pixels)[None], labels)
    return window.latent.axes.project(mean[0].numpy())


def star_xy(window: MainWindow) -> np.ndarray:
    pos = window.plane.input_marker.pos()
    return np.array([pos.x(), pos.y()])


def drop(target, mime: QMimeData) -> None:
    """Drag ``mime`` onto ``target`` and drop it there, as the window system delivers a drop:
    Qt hands the drop to the widget that accepted the drag's entry."""
    point, copy = QPoint(10, 10), Qt.DropAction.CopyAction
    no_button, no_key = Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(point, copy, mime, no_button, no_key)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted(), "the drag was not taken"
    QApplication.sendEvent(target, QDropEvent(QPointF(point), copy, mime, no_button, no_key))


def file_mime(path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime


def test_drawing_moves_the_input_star_to_the_encoders_mean_and_undo_and_clear_work(
        qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=4))
    view, canvas, state = window.draw_view, window.draw_view.canvas, window.latent
    assert canvas.shape == (1, 28, 28) and canvas.is_blank()
    assert not window.plane.input_marker.isVisible(), "no input yet: no star"
    assert canvas.picture_rect().width() >= 3 * 28, "the canvas is shown enlarged"

    draw(qtbot, canvas, [(8, 6), (14, 12), (14, 22)])
    qtbot.waitUntil(lambda: state.input is not None, timeout=5000)
    first = canvas.array()
    assert first.any() and first.max() == 255, "white strokes on black"
    np.testing.assert_allclose(star_xy(window), expected_point(window, first), atol=1e-4)
    assert window.plane.input_marker.isVisible() and window.plane.input_ellipse.isVisible()
    assert view.recon.array is not None and view.recon.array.shape == (28, 28)
    assert "negative ELBO" in view.readout.text()

    view.pen.setValue(4)
    draw(qtbot, canvas, [(20, 5), (20, 24)])
    second = canvas.array()
    assert (second > first).sum() > 20, "the second, wider stroke adds pixels"
    qtbot.waitUntil(lambda: np.allclose(star_xy(window), expected_point(window, second), atol=1e-4), timeout=5000)

    qtbot.mouseClick(view.undo_button, Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(canvas.array(), first)
    np.testing.assert_allclose(star_xy(window), expected_point(window, first), atol=1e-4)

    qtbot.mouseClick(view.clear_button, Qt.MouseButton.LeftButton)
    assert canvas.is_blank()
    assert state.input is None and not window.plane.input_marker.isVisible(), "a blank canvas is no input"
    qtbot.mouseClick(view.undo_button, Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(canvas.array(), first)
    assert state.input is not None

    # The score is ranked among the test set's, scored once in the background.
    qtbot.waitUntil(lambda: "test images score lower" in view.readout.text(), timeout=TIMEOUT_MS)
    expected = anomaly_scores(state.model, torch.from_numpy(first)[None])[0]
    assert f"{expected:.1f} nats" in view.readout.text()

    # Set as current code: the marker, sliders and decoded image go to the input's mean.
    qtbot.mouseClick(view.set_code_button, Qt.MouseButton.LeftButton)
    np.testing.assert_allclose(state.code, state.input.mean, atol=1e-5)
    marker = window.plane.marker.pos()
    np.testing.assert_allclose([marker.x(), marker.y()], star_xy(window), atol=1e-4)


def test_the_exact_pca_ellipse_matches_a_monte_carlo_estimate(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=4))
    canvas, state = window.draw_view.canvas, window.latent
    assert state.axes_mode == "pca" and state.axes.names == ("PC1", "PC2")
    draw(qtbot, canvas, [(6, 20), (14, 6), (22, 20)])
    qtbot.waitUntil(lambda: state.input is not None, timeout=5000)
    centre, covariance, exact = state.input_posterior()
    assert exact
    rng = np.random.default_rng(7)
    std = np.exp(0.5 * state.input.logvar)
    samples = state.input.mean + std * rng.standard_normal((20_000, state.dim))
    estimate = np.cov(state.axes.project(samples), rowvar=False)
    assert np.linalg.norm(covariance - estimate) < 0.05 * np.linalg.norm(estimate)
    np.testing.assert_allclose(centre, star_xy(window), atol=1e-6)
    # The drawn outline is the 2-sigma contour: every point at Mahalanobis distance 2.
    x, y = window.plane.input_ellipse.getData()
    offsets = np.stack([x, y], axis=1) - centre
    distances = np.sqrt(np.einsum("ni,ij,nj->n", offsets, np.linalg.inv(covariance), offsets))
    np.testing.assert_allclose(distances, 2.0, rtol=1e-6)
    assert "approximate" not in window.plane.input_ellipse.toolTip()

    # Raw axes: the plane's two dimensions' own variances.
    state.use_raw_axes(0, 2)
    _, covariance, exact = state.input_posterior()
    assert exact
    np.testing.assert_allclose(covariance, np.diag(np.exp(state.input.logvar[[0, 2]])), rtol=1e-9)


def test_on_the_neighbour_map_the_ellipse_is_estimated_and_says_so(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=4))
    state, plane = window.latent, window.plane
    draw(qtbot, window.draw_view.canvas, [(6, 20), (14, 6), (22, 20)])
    qtbot.waitUntil(lambda: state.input is not None, timeout=5000)
    plane.axes_mode.setCurrentIndex(plane.axes_mode.findData("map"))
    qtbot.waitUntil(lambda: isinstance(state.axes, MapAxes), timeout=TIMEOUT_MS)
    np.testing.assert_allclose(star_xy(window), state.axes.project(state.input.mean), atol=1e-4)
    assert plane.input_ellipse.isVisible()
    assert "approximate" in plane.input_ellipse.toolTip()
    centre, covariance, exact = state.input_posterior()
    assert not exact and np.all(np.isfinite(covariance))


def test_the_neighbour_map_ellipse_is_an_approximate_estimate():
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((300, 5)).astype(np.float32)
    axes = MapAxes.of(fit_map(codes, "umap"))
    mean, logvar = codes[0].astype(np.float64), np.full(5, -2.0)
    centre, covariance, exact = plane_covariance(axes, mean, logvar)
    assert not exact and covariance.shape == (2, 2) and np.all(np.isfinite(covariance))
    again = plane_covariance(axes, mean, logvar)
    np.testing.assert_array_equal(again[1], covariance)  # seeded: the outline does not jitter
    outline = ellipse_outline(centre, covariance)
    assert outline.shape[1] == 2 and np.allclose(outline[0], outline[-1])


def test_dropping_a_png_encodes_it_and_says_what_was_done(qtbot, window, trained_checkpoint, tmp_path):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=4))
    view, state = window.draw_view, window.latent
    picture = np.zeros((48, 64, 3), dtype=np.uint8)
    picture[10:38, 20:44] = (250, 180, 40)  # an orange block, off-centre
    path = tmp_path / "photo.png"
    Image.fromarray(picture).save(path)

    drop(view, file_mime(path))
    qtbot.waitUntil(lambda: "→" in view.note.text(), timeout=TIMEOUT_MS)
    assert view.note.text() == "photo.png: 64x48 colour, centre cropped to 48x48 → 28x28 grey"
    assert "\n" not in view.note.text()
    # The middle 48x48, resized, then grey (the same as Pillow does it alone).
    expected = np.asarray(Image.fromarray(picture[:, 8:56]).resize((28, 28), Image.Resampling.LANCZOS).convert("L"))
    pixels = view.canvas.array()
    assert pixels.shape == (1, 28, 28)
    assert np.abs(pixels[0].astype(int) - expected.astype(int)).max() <= 1
    qtbot.waitUntil(lambda: state.input is not None, timeout=5000)
    np.testing.assert_allclose(star_xy(window), expected_point(window, pixels), atol=1e-4)

    # Dropped anywhere on the window: the window passes it on to this view.
    Image.fromarray(np.full((28, 28), 200, dtype=np.uint8)).save(tmp_path / "grey.png")
    drop(window, file_mime(tmp_path / "grey.png"))
    qtbot.waitUntil(lambda: view.note.text().startswith("grey.png"), timeout=TIMEOUT_MS)
    assert view.note.text() == "grey.png: 28x28 grey, used as it is"
    assert (view.canvas.array() == 200).all()


def test_a_file_that_is_not_an_image_is_refused_in_one_line(qtbot, window, trained_checkpoint, tmp_path):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=4))
    view = window.draw_view
    draw(qtbot, view.canvas, [(5, 5), (20, 20)])
    before = view.canvas.array()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\nat all\n")
    drop(view, file_mime(notes))
    qtbot.waitUntil(lambda: "notes.txt" in view.note.text() and "Reading" not in view.note.text(),
                    timeout=TIMEOUT_MS)
    assert view.note.text() == "notes.txt is not an image Pillow can read: nothing was changed"
    np.testing.assert_array_equal(view.canvas.array(), before)
    drop(view, file_mime(tmp_path))  # a folder
    qtbot.waitUntil(lambda: "refused" in view.note.text(), timeout=TIMEOUT_MS)
    assert "\n" not in view.note.text()
    np.testing.assert_array_equal(view.canvas.array(), before)


def test_pasting_an_image_and_using_the_picked_test_image(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=4))
    view, state = window.draw_view, window.latent
    image = QImage(56, 28, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.white)
    QGuiApplication.clipboard().setImage(image)
    view.canvas.setFocus()
    QTest.keyClick(view.canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: "→" in view.note.text(), timeout=TIMEOUT_MS)
    assert view.note.text() == "pasted image: 56x28 grey, centre cropped to 28x28 → 28x28 grey"
    assert (view.canvas.array() == 255).all()
    qtbot.mouseClick(view.invert_button, Qt.MouseButton.LeftButton)
    assert view.canvas.is_blank()

    assert not view.test_button.isEnabled(), "no test image picked yet"
    state.pick(3)
    assert view.test_button.isEnabled()
    qtbot.mouseClick(view.test_button, Qt.MouseButton.LeftButton)
    data = window.session.data
    np.testing.assert_array_equal(view.canvas.array(), data.test_images[3].numpy())
    assert view.note.text().startswith("Test image 3 (class ")
    qtbot.waitUntil(lambda: state.input is not None, timeout=5000)
    np.testing.assert_allclose(state.input.mean, state.code, atol=1e-5)  # the picked image's own code


def test_a_conditional_model_names_the_class_it_finds_most_likely(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("cvae"))
    view, state = window.draw_view, window.latent
    data = window.session.data
    index = int(np.flatnonzero(data.test_labels.numpy() == 1)[0])
    pixels = data.test_images[index].numpy()
    view.canvas.set_array(pixels)
    qtbot.waitUntil(lambda: state.input is not None, timeout=5000)
    scores = anomaly_scores(state.model, torch.from_numpy(pixels)[None].repeat(10, 1, 1, 1), torch.arange(10))
    best = int(np.argmin(scores))
    assert state.input.label == best
    assert f"Most likely class: {state.class_names[best]}" in view.readout.text()
    np.testing.assert_allclose(star_xy(window), expected_point(window, pixels, best), atol=1e-4)
    state.set_label((best + 1) % 10)
    qtbot.mouseClick(view.set_code_button, Qt.MouseButton.LeftButton)
    assert state.label == best, "the input's code is read with its own class"


def test_dropping_text_is_not_taken(qtbot, window, trained_checkpoint):
    open_model(qtbot, window, trained_checkpoint("vae", latent_dim=4))
    mime = QMimeData()
    mime.setText("hello")
    assert not window.draw_view.accepts(mime)
    assert window.draw_view.take_mime(mime) is False
    assert window.draw_view.note.text().startswith("Nothing to use")
