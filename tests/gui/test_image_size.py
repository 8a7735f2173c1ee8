"""The training form's image size and channels: the CLI's --image-size and --channels.

A window that read every folder at 32 x 32 trained a 64 x 64 colour folder as [3, 32, 32],
even straight after opening a 64 x 64 checkpoint, and had no control to say otherwise. The
form now reads a folder's first image headers off the GUI thread when it is chosen:
"Automatic" is the folder's own size (written into the run as that number), the boxes are
greyed out for the built-in sets, and opening a checkpoint shows its size and channels, so
Start trains at them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from explorer.gui.views.training_panel import AUTO_SIZE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from cli_runner import run as cli  # noqa: E402 - the CLI in-process, as the unit tests run it

RUN_TIMEOUT_MS = 180_000


def colour_folder(root: Path, side: int, count: int = 40) -> Path:
    """Two classes of ``side`` x ``side`` RGB images: a red or a blue square on noise."""
    rng = np.random.default_rng(0)
    for k, colour in enumerate(((255, 0, 0), (0, 0, 255))):
        (root / f"class{k}").mkdir(parents=True, exist_ok=True)
        for i in range(count // 2):
            pixels = rng.integers(0, 60, (side, side, 3), dtype=np.uint8)
            x, y = rng.integers(0, side // 2, 2)
            pixels[y:y + side // 3, x:x + side // 3] = colour
            Image.fromarray(pixels, "RGB").save(root / f"class{k}" / f"{i:03d}.png")
    return root


def _train(qtbot, window) -> None:
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        window.start_training()
    assert finished.args[0].status == "completed", finished.args[0].message
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=10_000)


def test_built_in_sets_grey_the_boxes_out_and_say_why(window) -> None:
    panel = window.panel
    for box in (panel.image_size, panel.image_channels):
        assert not box.isEnabled()
        assert "Built-in datasets keep their own size and channels (28 x 28, grey)" in box.toolTip()
    assert panel.image_size.text() == "Automatic (28 px, the set's own)"
    _, data, _ = panel.configs()
    assert (data.image_size, data.channels) == (None, None)


def test_a_64px_colour_folder_defaults_to_64_and_colour_and_trains_at_it(qtbot, window, tmp_path) -> None:
    panel = window.panel
    panel.set_dataset(str(colour_folder(tmp_path / "pictures", 64)))
    qtbot.waitUntil(panel.probe_done, timeout=10_000)
    assert panel.image_size.isEnabled() and panel.image_channels.isEnabled()
    assert panel.image_size.value() == AUTO_SIZE
    assert panel.image_size.text() == "Automatic (64 px, the folder's own)"
    assert panel.image_channels.currentText() == "Automatic (colour)"
    assert "--image-size" in panel.image_size.toolTip()
    _, data, _ = panel.configs()
    assert data.image_size == 64 and data.channels is None  # the number, as the CLI's --image-size 64
    _train(qtbot, window)
    assert window.session.data.image_shape == (3, 64, 64)
    assert window.session.model_config.image_shape == (3, 64, 64)
    assert window.session.data_config.image_size == 64  # the checkpoint says what it was trained at

    # A size and channels chosen by hand win.
    panel.image_size.setValue(16)
    panel.image_channels.setCurrentIndex(panel.image_channels.findData(1))
    _, data, _ = panel.configs()
    assert (data.image_size, data.channels) == (16, 1)


def test_start_at_once_after_choosing_a_folder_still_uses_its_own_size(qtbot, window, tmp_path) -> None:
    panel = window.panel
    folder = colour_folder(tmp_path / "pictures", 40, count=20)
    panel.set_dataset(str(folder))
    _, data, _ = panel.configs()  # before the thread has answered, or after: the same number
    assert data.image_size == 40
    qtbot.waitUntil(panel.probe_done, timeout=10_000)


def test_opening_a_checkpoint_then_start_trains_at_its_size(qtbot, window, tmp_path) -> None:
    # A folder of 96 px images trained at 64 by the CLI: Automatic would say 96, the old window 32.
    folder = colour_folder(tmp_path / "big", 96)
    path = tmp_path / "sixty-four.safetensors"
    rc, _, err = cli("train", "--model", "vae", "--latent-dim", 2, "--dataset", folder, "--image-size", 64,
                     "--epochs", 1, "--device", "cpu", "--no-timeline", "--out", path)
    assert rc == 0, err
    panel = window.panel
    assert panel.dataset.currentData() == "mnist"
    with qtbot.waitSignal(window.session.opened, timeout=RUN_TIMEOUT_MS):
        assert window.files.open_checkpoint(str(path))
    assert panel.image_size.value() == 64 and panel.image_size.text() == "64 px"
    assert panel.image_channels.currentData() == 3
    _, data, _ = panel.configs()
    assert (data.dataset, data.image_size, data.channels) == (str(folder), 64, 3)
    qtbot.waitUntil(panel.probe_done, timeout=10_000)
    assert panel.image_size.value() == 64  # the folder read since does not undo it
    _train(qtbot, window)
    assert window.session.data.image_shape == (3, 64, 64)
    assert window.session.model_config.image_shape == (3, 64, 64)


def test_a_numpy_file_keeps_its_size_unless_told(qtbot, window, tmp_path) -> None:
    path = tmp_path / "shapes.npz"
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 255, (60, 10, 14), dtype=np.uint8))
    panel = window.panel
    panel.set_dataset(str(path))
    qtbot.waitUntil(panel.probe_done, timeout=10_000)
    assert panel.image_size.isEnabled()
    assert panel.image_size.text() == "Automatic (10 x 14, as stored)"
    assert panel.image_channels.currentText() == "Automatic (grey)"
    assert panel.plan.text().startswith("54 training images: ")
    _, data, _ = panel.configs()
    assert (data.image_size, data.channels) == (None, None)  # as the CLI without --image-size
    panel.image_size.setValue(8)
    panel.image_channels.setCurrentIndex(panel.image_channels.findData(3))
    _train(qtbot, window)
    assert window.session.data.image_shape == (3, 8, 8)


def test_the_form_keeps_automatic_as_automatic(qtbot, settings, tmp_path) -> None:
    from explorer.gui.app.main_window import MainWindow

    folder = colour_folder(tmp_path / "pictures", 24, count=10)
    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.panel.set_dataset(str(folder))
    qtbot.waitUntil(first.panel.probe_done, timeout=10_000)
    first.close()
    second = MainWindow(settings=settings)
    qtbot.addWidget(second)
    assert second.panel.dataset.currentData() == str(folder)
    assert second.panel.image_size.value() == AUTO_SIZE  # still the folder's own, whatever it holds next time
    qtbot.waitUntil(second.panel.probe_done, timeout=10_000)
    assert second.panel.image_size.text() == "Automatic (24 px, the folder's own)"
    second.session.shutdown()
