"""Training a small folder from the window: the default run is long enough to learn
something, and the user is told why it trains more epochs than the form says.

Ten epochs of a folder of a hundred-odd images are a few dozen optimisation steps, which
leave grey blobs; the window's form asks the engine for at least MIN_STEPS steps instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtWidgets import QMessageBox, QProgressBar

from explorer.gui.app.main_window import MainWindow
from explorer.gui.views.training_panel import MIN_STEPS

RUN_TIMEOUT_MS = 180_000


def small_folder(root: Path, count: int = 120, size: int = 12) -> Path:
    """``count`` tiny greyscale PNGs: a bright square on noise, in random places."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 60, (size, size), dtype=np.uint8)
        x, y = rng.integers(0, size - 4, 2)
        pixels[y:y + 4, x:x + 4] = 255
        Image.fromarray(pixels, "L").save(root / f"img_{i:03d}.png")
    return root


def test_a_small_folder_trains_at_least_the_minimum_steps_and_says_why(qtbot, settings, tmp_path) -> None:
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    try:
        panel = window.panel
        assert panel.min_steps.value() == MIN_STEPS == 1000  # the form's default
        panel.set_dataset(str(small_folder(tmp_path / "pictures")))
        panel.epochs.setValue(2)
        panel.batch_size.setValue(16)
        autosave = getattr(window, "autosave", None)  # hundreds of tiny epochs: no checkpoint each
        (autosave.set_every if hasattr(autosave, "set_every") else window.set_autosave_every)(0)
        warnings: list[str] = []
        window.session.warning.connect(warnings.append)
        started = []
        window.session.run_started.connect(started.append)
        with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
            window.start_training()
        result = finished.args[0]
        assert result.status == "completed", result.message

        run = started[0]
        assert run.epochs * run.steps_per_epoch >= MIN_STEPS > 2 * run.steps_per_epoch
        assert result.global_step >= MIN_STEPS and result.epochs_completed == run.epochs
        assert window.session.history.last_epoch == run.epochs
        # the progress bar counts the raised total, so it ends full, not at 2 epochs' worth
        bars = [b for b in window.findChildren(QProgressBar) if b.maximum() > 0]
        assert any(b.maximum() == run.epochs * run.steps_per_epoch for b in bars)

        notice = [w for w in warnings if w.startswith("The dataset is small")]
        assert len(notice) == 1, warnings
        assert (f"({run.train_size} training images, {run.steps_per_epoch} steps per epoch): training "
                f"{run.epochs} epochs instead of 2, so the model takes at least 1,000 steps.") in notice[0]
        qtbot.waitUntil(lambda: any("The dataset is small" in box.text()
                                    for box in window.findChildren(QMessageBox) if box.isVisible()), timeout=5000)
    finally:
        window.session.shutdown()
        getattr(window, "close_without_asking", window.close)()  # the trained model is unsaved


def test_the_floor_can_be_turned_off_and_is_remembered(qtbot, settings) -> None:
    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.panel.min_steps.setValue(0)
    assert first.panel.configs()[2].min_steps == 0
    first.close()
    second = MainWindow(settings=settings)
    qtbot.addWidget(second)
    assert second.panel.min_steps.value() == 0 and second.panel.min_steps.text() == "Off"
    second.session.shutdown()


def test_settings_from_before_the_floor_get_the_default(qtbot, settings) -> None:
    from explorer.config import TrainConfig

    old = TrainConfig(epochs=7).to_dict()
    del old["min_steps"]
    import json

    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.close()  # writes the panel's settings; then they are replaced with an older version's
    settings.setValue("panel/train", json.dumps(old))
    second = MainWindow(settings=settings)
    qtbot.addWidget(second)
    assert second.panel.epochs.value() == 7 and second.panel.min_steps.value() == MIN_STEPS
    second.session.shutdown()
