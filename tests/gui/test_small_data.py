"""How long a run from the window trains: one rule with the CLI, said before Start.

Epochs are what was asked, in the window as in `latent-explorer train` (the "At least
(steps)" floor is Off by default, as --min-steps is 0). The form's Planned line says what
Start will train (epochs, steps per epoch, steps in all; with a floor set, how many epochs
it takes to reach it) before anything runs, and the run then trains exactly that, as the
CLI does with the same settings. Nothing pops up during a run: the plan and the engine's
notices go to the status line.

This file once checked the opposite: the window's floor of 1,000 steps turned 2 epochs
into dozens and explained it in a dialog over the running window."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtWidgets import QApplication, QMessageBox

from explorer.gui.app.main_window import MainWindow
from explorer.gui.views.training_panel import MIN_STEPS, SETTINGS_RUN_LENGTH
from explorer.training.checkpoint import load_checkpoint
from explorer.training.run_length import describe_plan, plan_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from cli_runner import run as cli  # noqa: E402 - the CLI in-process, as the unit tests run it

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


def _use_cpu(panel) -> None:
    panel.device.setCurrentIndex(panel.device.findData("cpu"))


def test_a_new_window_trains_the_epochs_asked_and_says_how_many_steps(qtbot, settings) -> None:
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    panel = window.panel
    _use_cpu(panel)
    assert panel.min_steps.value() == MIN_STEPS == 0 and panel.min_steps.text() == "Off"  # the CLI's default
    panel.epochs.setValue(10)
    panel.batch_size.setValue(128)
    assert panel.plan.text() == "60,000 training images: 10 epochs of 469 steps = 4,690 steps"  # MNIST
    panel.limit.setValue(1000)
    assert panel.plan.text() == f"1,000 training images: {describe_plan(plan_run(1000, 128, 10))}"
    assert panel.plan.text().endswith("10 epochs of 8 steps = 80 steps (few steps: the model may learn little)")
    panel.limit.setValue(0)
    panel.classes.setText("1")
    assert panel.plan.text() == "6,742 training images: 10 epochs of 53 steps = 530 steps"
    panel.min_steps.setValue(1000)
    assert panel.plan.text() == ("6,742 training images: 10 epochs = 530 steps; will train 19 epochs (1,007 steps) "
                                 "to reach 1,000 steps")
    window.session.shutdown()
    window.close_without_asking()


def test_the_plan_before_start_is_what_the_window_and_the_cli_train(qtbot, window, tmp_path) -> None:
    panel = window.panel
    _use_cpu(panel)
    folder = small_folder(tmp_path / "pictures")
    panel.set_dataset(str(folder))
    qtbot.waitUntil(panel.probe_done, timeout=10_000)
    panel.epochs.setValue(2)
    panel.batch_size.setValue(16)
    panel.min_steps.setValue(100)
    # 120 images, 12 held out: 108 to train on, 7 steps an epoch; 2 epochs are 14 steps
    plan = plan_run(108, 16, epochs=2, min_steps=100)
    assert (plan.epochs, plan.steps_per_epoch, plan.total_steps) == (15, 7, 105)
    said = describe_plan(plan)
    assert said == "2 epochs = 14 steps; will train 15 epochs (105 steps) to reach 100 steps " \
                   "(few steps: the model may learn little)"
    assert panel.plan.text() == f"108 training images: {said}"  # on screen before Start
    model, data, train = panel.configs()
    assert (data.image_size, train.min_steps, train.epochs) == (12, 100, 2)

    # The CLI, the same settings: the same plan said first, the same epochs trained.
    out = tmp_path / "cli.safetensors"
    rc, stdout, err = cli("train", "--model", model.preset, "--latent-dim", model.latent_dim, "--dataset", folder,
                          "--image-size", data.image_size, "--epochs", 2, "--batch-size", 16, "--min-steps", 100,
                          "--limit", data.limit, "--device", "cpu", "--no-timeline", "--out", out)
    assert rc == 0, err
    assert any(line.startswith("training ") and line.endswith(f": {said}") for line in err.splitlines()), err
    assert load_checkpoint(out).history.last_epoch == plan.epochs

    # The window: the same run, and no dialog at any point of it.
    autosave = getattr(window, "autosave", None)
    (autosave.set_every if hasattr(autosave, "set_every") else window.set_autosave_every)(0)
    dialogs: list[str] = []

    def no_dialog(*_: object) -> None:
        modal = QApplication.activeModalWidget()
        boxes = [b.text() for b in window.findChildren(QMessageBox) if b.isVisible()]
        if modal is not None or boxes or window.message_box is not None:
            dialogs.append(f"{modal!r} {boxes}")

    status: list[str] = []
    window.statusBar().messageChanged.connect(status.append)
    started = []
    window.session.run_started.connect(started.append)
    window.session.step.connect(no_dialog)
    window.session.epoch.connect(no_dialog)
    window.session.notice.connect(no_dialog)
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        window.start_training()
    result = finished.args[0]
    assert result.status == "completed", result.message
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=10_000)
    no_dialog()
    assert not dialogs, dialogs
    assert (started[0].epochs, started[0].steps_per_epoch) == (plan.epochs, plan.steps_per_epoch)
    assert result.global_step == plan.total_steps and window.session.history.last_epoch == plan.epochs
    assert f"Training {said}" in status  # said once it starts, in the status line
    assert any(m.startswith("The dataset is small") for m in status), status  # the engine's notice, there too
    bar = window.progress.bar
    assert bar.maximum() == plan.total_steps == bar.value()


def test_the_floor_can_be_set_and_is_remembered(qtbot, settings) -> None:
    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.panel.min_steps.setValue(2000)
    assert first.panel.configs()[2].min_steps == 2000
    first.close()
    second = MainWindow(settings=settings)
    qtbot.addWidget(second)
    assert second.panel.min_steps.value() == 2000
    second.panel.min_steps.setValue(0)
    second.close()
    third = MainWindow(settings=settings)
    qtbot.addWidget(third)
    assert third.panel.min_steps.value() == 0 and third.panel.min_steps.text() == "Off"
    third.session.shutdown()


def test_older_settings_lose_the_old_default_floor_but_keep_a_chosen_one(qtbot, settings) -> None:
    from explorer.config import TrainConfig

    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.close()  # writes the panel's settings; then they are replaced with an older version's
    for saved, expected in ((1000, 0), (2500, 2500)):
        settings.remove(SETTINGS_RUN_LENGTH)
        settings.setValue("panel/train", json.dumps(TrainConfig(epochs=7, min_steps=saved).to_dict()))
        window = MainWindow(settings=settings)
        qtbot.addWidget(window)
        assert window.panel.epochs.value() == 7 and window.panel.min_steps.value() == expected
        window.close()
    old = TrainConfig(epochs=7).to_dict()
    del old["min_steps"]  # from before the field
    settings.setValue("panel/train", json.dumps(old))
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    assert window.panel.epochs.value() == 7 and window.panel.min_steps.value() == 0
    window.session.shutdown()
