"""Faults during training: divergence, out of memory, a full disk, a crash. Each says what
happened, keeps the work, and offers the way on."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton
from window_helpers import answer_unsaved  # tests/ is on sys.path (its conftest)

from explorer.gui.app.autosave import autosave_folder, autosave_store
from explorer.gui.app.main_window import MainWindow
from explorer.runtime.recovery import SessionLock
from explorer.training.checkpoint import load_checkpoint

RUN_TIMEOUT_MS = 90_000


def button(qtbot, window, name: str) -> QPushButton:
    qtbot.waitUntil(lambda: window.message_box is not None, timeout=5000)
    found = window.message_box.findChild(QPushButton, name)
    assert found is not None, f"no {name} button in {window.message_box.text()!r}"
    return found


def test_a_diverging_run_pauses_says_why_and_continues_with_a_lower_rate(click, qtbot, window) -> None:
    window.panel.lr.setValue(1.0)
    window.panel.batch_size.setValue(32)
    window.panel.epochs.setValue(3)
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        click(window, window.start_action)
    assert finished.args[0].status == "diverged"
    retry = button(qtbot, window, "retryLowerLr")
    box = window.message_box
    assert box.windowTitle() == "Training paused"
    assert "NaN" in box.text() or "infinite" in box.text()
    assert "0.1" in retry.text()
    # the views hold the last good weights, finite
    assert all(torch.isfinite(v).all() for v in window.session.view_model.state_dict().values())
    epochs_before = window.session.history.last_epoch

    with qtbot.waitSignal(window.session.run_started, timeout=RUN_TIMEOUT_MS) as started:
        qtbot.mouseClick(retry, Qt.MouseButton.LeftButton)
    assert window.panel.lr.value() == pytest.approx(0.1)
    assert started.args[0].start_epoch == epochs_before, "it continued, not started afresh"
    assert window.session.train_config.lr == pytest.approx(0.1)
    window.session.stop()
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=RUN_TIMEOUT_MS)


def test_out_of_memory_says_so_and_suggests_a_smaller_batch(click, qtbot, window, monkeypatch) -> None:
    import explorer.training.engine as engine

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        yield  # a generator, like the real one

    monkeypatch.setattr(engine, "train", out_of_memory)
    with qtbot.waitSignal(window.session.error, timeout=RUN_TIMEOUT_MS) as error:
        click(window, window.start_action)
    assert "memory" in error.args[0].lower() and "smaller batch" in error.args[0]
    qtbot.waitUntil(lambda: window.message_box is not None, timeout=2000)
    assert window.message_box.icon() == QMessageBox.Icon.Critical
    window.message_box.accept()
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=5000)
    monkeypatch.undo()
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        click(window, window.start_action)
    assert finished.args[0].status == "completed"


def test_a_full_disk_on_save_keeps_the_earlier_checkpoint(click, qtbot, window, tmp_path, monkeypatch) -> None:
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS):
        click(window, window.start_action)
    path = tmp_path / "model.safetensors"
    assert window.files.save_to(str(path))
    saved = load_checkpoint(path).state_dict
    with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS):
        window.continue_action.trigger()  # Training > Continue training (Ctrl+F5)
    assert window.session.dirty

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    assert not window.files.save_to(str(path))
    monkeypatch.undo()
    box = window.message_box
    assert box is not None and box.windowTitle() == "Cannot save"
    assert "No space left" in box.text() and "\n" not in box.text()
    box.accept()
    assert window.session.dirty, "the unsaved model is still marked unsaved"
    kept = load_checkpoint(path).state_dict
    assert all(torch.equal(kept[k], v) for k, v in saved.items()), "the earlier checkpoint changed"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".model")) == []


def test_autosave_every_n_epochs_from_the_menu(qtbot, window, click) -> None:
    import explorer.runtime.worker as worker
    import explorer.training.checkpoint as checkpoint

    saved_at: list[int] = []
    real = checkpoint.save_checkpoint

    def spy(path, model, data_config, train_config, history=None, class_names=(), **kwargs):
        saved_at.append(history.last_epoch)
        return real(path, model, data_config, train_config, history, class_names, **kwargs)

    window.autosave.actions[2].trigger()
    assert window.settings.value("training/autosave_every") in (2, "2")
    window.panel.epochs.setValue(5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "save_checkpoint", spy)
        with qtbot.waitSignal(window.session.run_finished, timeout=RUN_TIMEOUT_MS):
            click(window, window.start_action)
    assert saved_at == [2, 4, 5], "every second epoch, and the last"
    assert load_checkpoint(autosave_store().latest()).history.last_epoch == 5
    window.autosave.actions[0].trigger()
    assert window.session.autosave_path is None
    assert worker.RunRequest.__dataclass_fields__["autosave_every"].default == 1


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_after_a_crash_the_autosaved_run_is_offered_and_restored(qtbot, settings, trained_checkpoint) -> None:
    autosave = autosave_folder() / "run-20260101-000000-1.safetensors"
    autosave.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(trained_checkpoint("vae"), autosave)
    (autosave.parent / "running.json").write_text(json.dumps({"pid": dead_pid()}))

    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    try:
        restore = button(qtbot, window, "restoreAutosave")
        assert "did not close normally" in window.message_box.text()
        with qtbot.waitSignal(window.session.data_changed, timeout=RUN_TIMEOUT_MS):
            qtbot.mouseClick(restore, Qt.MouseButton.LeftButton)
        assert window.session.has_model and window.session.history.last_epoch == 1
        assert window.session.checkpoint_path is None, "saving must ask for a name, not overwrite the autosave"
        assert window.session.dirty
        assert "Restored" in window.windowTitle() and window.isWindowModified()
        window.close()  # a restored run is unsaved: quitting asks first
        answer_unsaved(qtbot, window, QMessageBox.StandardButton.Discard)
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=3000)
    finally:
        window.session.shutdown()
        window.close_without_asking()
    assert not (autosave.parent / "running.json").exists(), "a normal close releases the lock"


def test_a_normal_close_means_no_offer_next_time(qtbot, settings, trained_checkpoint) -> None:
    autosave = autosave_folder() / "run-20260101-000000-1.safetensors"
    autosave.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(trained_checkpoint("vae"), autosave)
    for _ in range(2):
        window = MainWindow(settings=settings)
        qtbot.addWidget(window)
        window.show()
        qtbot.wait(50)
        assert window.message_box is None and not window.session.has_model
        window.close()


def test_the_lock_tells_a_crash_from_a_live_window_and_survives_junk(tmp_path: Path) -> None:
    path = tmp_path / "running.json"
    assert SessionLock(path).acquire().crashed is False  # first start ever
    path.write_text(json.dumps({"pid": dead_pid()}))
    assert SessionLock(path).acquire().crashed is True
    path.write_text("{not json")
    assert SessionLock(path).acquire().crashed is True
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        path.write_text(json.dumps({"pid": live.pid}))
        state = SessionLock(path).acquire()
        assert state.other_instance and not state.crashed
        assert json.loads(path.read_text())["pid"] == live.pid, "another window's lock is left alone"
    finally:
        live.kill()
        live.wait()
    lock = SessionLock(path)
    lock.acquire()
    lock.release()
    assert not path.exists()


def test_a_broken_autosave_is_set_aside_and_never_offered_again(qtbot, settings) -> None:
    folder = autosave_folder()
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.safetensors"):
        old.unlink()
    broken = folder / "run-20260101-000000-1.safetensors"
    broken.write_bytes(b"\x00" * 64)
    for attempt in range(2):
        (folder / "running.json").write_text(json.dumps({"pid": dead_pid()}))
        window = MainWindow(settings=settings)
        qtbot.addWidget(window)
        window.show()
        try:
            if attempt == 0:
                restore = button(qtbot, window, "restoreAutosave")
                qtbot.mouseClick(restore, Qt.MouseButton.LeftButton)
                qtbot.waitUntil(lambda w=window: w.message_box is not None
                                and w.message_box.windowTitle() == "Cannot open checkpoint", timeout=5000)
                window.message_box.accept()
                assert not broken.exists() and (folder / (broken.name + ".broken")).exists()
                assert window.files.recent() == [], "an autosave is not a file the user opened"
            else:
                qtbot.wait(100)
                assert window.message_box is None, "a broken autosave was offered again"
        finally:
            window.session.shutdown()
            window.close_without_asking()


def test_cpu_out_of_memory_mid_run_returns_the_window_to_idle_and_says_so(click, qtbot, window, monkeypatch):
    import explorer.training.engine as engine

    real = engine.train

    def runs_out_after_a_step(*args, **kwargs):
        events = real(*args, **kwargs)
        yield next(events)  # RunStarted: the window shows "Training..."
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 3145728000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(engine, "train", runs_out_after_a_step)
    with qtbot.waitSignal(window.session.error, timeout=RUN_TIMEOUT_MS) as error:
        click(window, window.start_action)
    assert "memory" in error.args[0].lower() and "Traceback" not in error.args[0]
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=10_000)
    assert window.progress.bar.format() == "Failed"
    assert "Training..." not in window.statusBar().currentMessage()
    assert "memory" in window.statusBar().currentMessage().lower()
    assert window.start_action.isEnabled() and not window.stop_action.isEnabled()
    window.message_box.accept()


def test_a_run_that_would_not_fit_in_memory_is_refused_before_it_starts(click, qtbot, window, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_FREE_MEMORY", "20M")
    window.panel.batch_size.setValue(4096)
    with qtbot.waitSignal(window.session.error, timeout=RUN_TIMEOUT_MS) as error:
        click(window, window.start_action)
    message = error.args[0]
    assert "free" in message and "batch size" in message and "\n" not in message
    assert "--" not in message, "the window's advice names its own fields, not CLI flags"
    qtbot.waitUntil(lambda: window.session.state == "idle", timeout=10_000)
    assert window.session.view_model is None and window.progress.bar.format() == "Failed"
    window.message_box.accept()
