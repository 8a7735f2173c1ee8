"""File > Follow run: the window follows a checkpoint another process keeps rewriting.

The writer is simulated: successive epochs' checkpoints of one run, published over the
followed file atomically (a copy beside it, then a rename), as explorer/atomic.py does; one
test trains in a background thread and saves at each epoch end while the window follows.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
import torch

from explorer.config import DataConfig, replace
from explorer.training.checkpoint import load_checkpoint, save_checkpoint
from explorer.training.events import EpochEnd
from explorer.training.history import History
from explorer.training.runs import model_config_for, prepare_run, train_config_for

FAST_MS = 100  # the follower's poll in these tests (1 s in the app)
WAIT_MS = 15000


def _run(epochs: int):
    return prepare_run(model_config_for("vae"), DataConfig(limit=300),
                       replace(train_config_for("vae", epochs=epochs, batch_size=64, seed=1), min_steps=0,
                               timeline=False))


def _train_saving(epochs: int, save) -> None:
    """Train a small VAE, calling ``save(epoch, run, history)`` at each epoch end."""
    from explorer.training.engine import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = _run(epochs)
        history = History(run.model.part_names)
        for event in train(run.model, run.data, run.train_config):
            history.record(event)
            if isinstance(event, EpochEnd):
                save(event.epoch, run, history)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict[int, Path]:
    """Epochs 1..3 of one run, one checkpoint file each."""
    folder = tmp_path_factory.mktemp("versions")
    made: dict[int, Path] = {}

    def save(epoch, run, history) -> None:
        made[epoch] = save_checkpoint(folder / f"epoch{epoch}.safetensors", run.model, run.data_config,
                                      run.train_config, history, run.data.class_names)

    _train_saving(3, save)
    return made


def publish(source: Path, target: Path) -> None:
    """Replace ``target`` with ``source`` the way the app's writers do: whole, in one rename."""
    temp = target.parent / f".{target.name}.part"
    shutil.copyfile(source, temp)
    os.replace(temp, target)


def follow(window, qtbot, path: Path, epoch: int) -> None:
    window.follower._timer.setInterval(FAST_MS)
    assert window.files.follow(str(path))
    qtbot.waitUntil(lambda: window.session.has_model and window.session.history.last_epoch == epoch,
                    timeout=WAIT_MS)


def status(window) -> str:
    return window.statusBar().currentMessage()


def weights_equal(model, path: Path) -> bool:
    expected = load_checkpoint(path).state_dict
    return all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())


def test_a_followed_file_updates_the_window_at_each_new_version(window, qtbot, versions, tmp_path):
    run = tmp_path / "run.safetensors"
    publish(versions[1], run)
    follow(window, qtbot, run, 1)
    s = window.session
    assert "(following)" in window.windowTitle() and "run.safetensors" in window.windowTitle()
    assert not window.isWindowModified() and not s.dirty
    assert not window.start_action.isEnabled() and not window.continue_action.isEnabled()
    assert window.stop_following_action.isEnabled()
    qtbot.waitUntil(lambda: s.data is not None and window.latent.stats is not None, timeout=WAIT_MS)
    model, data, points = s.view_model, s.data, window.loss_plot.point_count()
    assert weights_equal(model, versions[1])

    with qtbot.waitSignal(window.follower.version_loaded, timeout=WAIT_MS) as loaded:
        publish(versions[3], run)
    assert loaded.args == [3]
    assert s.history.last_epoch == 3
    assert s.view_model is model and weights_equal(model, versions[3])  # the same model, a new version
    assert s.data is data  # the data was not loaded again
    assert window.loss_plot.point_count() > points  # the curves show the longer history
    assert not window.isWindowModified() and not s.dirty
    # Epoch 3 of the run's 3: the status bar says the run is over.
    assert status(window) == "Following run.safetensors: the run has ended (epoch 3)"
    assert window.follower.ended
    # The plane follows: the latent state re-encodes the new weights.
    stats = window.latent.stats
    qtbot.waitUntil(lambda: window.latent.stats is not stats, timeout=WAIT_MS)
    assert window.message_box is None


def test_a_followed_run_that_goes_quiet_is_said_to_have_ended_once(window, qtbot, versions, tmp_path):
    """Epoch 1 of 3, and the file stops changing (the writer was killed, or saves rarely)."""
    run = tmp_path / "run.safetensors"
    publish(versions[1], run)
    ended: list[int] = []
    window.follower.run_ended.connect(ended.append)
    follow(window, qtbot, run, 1)
    assert status(window) == "Following run.safetensors: epoch 1" and not window.follower.ended
    window.follower.quiet_s = 0.3
    qtbot.waitUntil(lambda: "the run seems to have ended" in status(window), timeout=WAIT_MS)
    assert status(window).startswith("Following run.safetensors: the run seems to have ended (epoch 1; "), \
        status(window)
    qtbot.wait(5 * FAST_MS)
    assert ended == [1], "said once"
    window.follower.quiet_s = 3600
    publish(versions[2], run)  # it was not over after all: following goes on
    qtbot.waitUntil(lambda: window.session.history.last_epoch == 2, timeout=WAIT_MS)
    assert not window.follower.ended and status(window) == "Following run.safetensors: epoch 2"


def test_a_half_written_file_is_not_shown_and_the_next_good_one_is(window, qtbot, versions, tmp_path):
    run = tmp_path / "run.safetensors"
    publish(versions[1], run)
    follow(window, qtbot, run, 1)
    model = window.session.view_model
    with qtbot.waitSignal(window.follower.follow_failed, timeout=WAIT_MS):
        whole = versions[2].read_bytes()
        with open(run, "wb") as f:  # in place, not atomic: a reader can see half a file
            f.write(whole[: len(whole) // 2])
    qtbot.waitUntil(lambda: "will retry" in status(window), timeout=WAIT_MS)
    assert window.session.history.last_epoch == 1 and weights_equal(model, versions[1])
    assert window.message_box is None  # a status line, never a dialog
    publish(versions[3], run)
    qtbot.waitUntil(lambda: window.session.history.last_epoch == 3, timeout=WAIT_MS)
    assert weights_equal(window.session.view_model, versions[3])


def test_a_deleted_file_leaves_the_last_version_shown(window, qtbot, versions, tmp_path):
    run = tmp_path / "run.safetensors"
    publish(versions[1], run)
    follow(window, qtbot, run, 1)
    run.unlink()
    qtbot.waitUntil(lambda: "waiting for the file" in status(window), timeout=WAIT_MS)
    assert window.session.has_model and window.session.history.last_epoch == 1
    assert window.follower.following
    publish(versions[2], run)  # it comes back
    qtbot.waitUntil(lambda: window.session.history.last_epoch == 2, timeout=WAIT_MS)


def test_training_is_refused_while_following_and_stop_following_ends_updates(window, qtbot, versions, tmp_path):
    run = tmp_path / "run.safetensors"
    publish(versions[1], run)
    follow(window, qtbot, run, 1)
    window.start_action.trigger()
    window.session.start(*window.panel.configs())  # even called directly
    assert window.session.state == "idle"

    window.stop_following_action.trigger()
    assert not window.follower.following
    assert window.start_action.isEnabled() and window.continue_action.isEnabled()
    assert "(following)" not in window.windowTitle()
    publish(versions[2], run)
    qtbot.wait(6 * FAST_MS)
    assert window.session.history.last_epoch == 1


def test_opening_another_model_stops_following(window, qtbot, versions, tmp_path):
    run = tmp_path / "run.safetensors"
    publish(versions[1], run)
    follow(window, qtbot, run, 1)
    with qtbot.waitSignal(window.session.opened, timeout=WAIT_MS):
        window.files.open_checkpoint(str(versions[2]))
    assert not window.follower.following
    assert window.session.history.last_epoch == 2
    publish(versions[3], run)
    qtbot.wait(6 * FAST_MS)
    assert window.session.history.last_epoch == 2 and window.session.document.path == versions[2]


def test_a_followed_run_updates_the_window_while_it_trains(window, qtbot, tmp_path):
    """A writer trains in another thread and saves the run atomically at each epoch end."""
    run = tmp_path / "run.safetensors"
    seen: list[int] = []
    window.follower.version_loaded.connect(seen.append)
    window.follower._timer.setInterval(FAST_MS)
    window.files.follow(str(run))  # before the file exists: it waits for it
    assert window.follower.following and not window.session.has_model

    def save(epoch, r, history) -> None:
        save_checkpoint(run, r.model, r.data_config, r.train_config, history, r.data.class_names)

    writer = threading.Thread(target=_train_saving, args=(4, save))
    writer.start()
    try:
        qtbot.waitUntil(lambda: window.session.history.last_epoch == 4, timeout=60000)
    finally:
        writer.join()
    assert seen[-1] == 4 and seen == sorted(seen)
    assert not window.session.dirty and window.message_box is None


def _cli_saves_every_epoch() -> bool:
    from explorer.cli import build_parser

    try:
        build_parser().parse_args(["train", "--checkpoint-every", "1", "--out", "x.safetensors"])
    except SystemExit:
        return False
    return True


@pytest.mark.skipif(not _cli_saves_every_epoch(), reason="train --checkpoint-every is not there yet")
def test_the_window_follows_a_headless_train_while_it_runs(window, qtbot, tmp_path):
    """A real ``python -m explorer train --checkpoint-every 1`` in another process."""
    import subprocess
    import sys

    run = tmp_path / "run.safetensors"
    seen: list[tuple[int, bool]] = []  # epoch, whether the writer was still running
    window.follower._timer.setInterval(FAST_MS)
    window.files.follow(str(run))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    writer = subprocess.Popen([sys.executable, "-m", "explorer", "train", "--epochs", "8", "--limit", "500",
                               "--checkpoint-every", "1", "--out", str(run)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    window.follower.version_loaded.connect(lambda epoch: seen.append((epoch, writer.poll() is None)))
    try:
        qtbot.waitUntil(lambda: window.session.history.last_epoch == 8, timeout=60000)
    finally:
        _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err.decode(errors="replace")
    assert any(running for _, running in seen), f"no version was shown while the run trained: {seen}"
    assert [e for e, _ in seen] == sorted(e for e, _ in seen)
    assert window.session.timeline is not None and window.session.timeline.frames  # the plane's replay too
    assert not window.session.dirty and window.message_box is None
    # Let the last version's background work (its load, the plane's encode) finish before the
    # fixture closes the window: the close joins those threads, which is not what is measured here.
    window.follower.stop()
    qtbot.waitUntil(lambda: window.session.tasks.idle and window.latent.stats is not None, timeout=60000)


def test_following_never_writes_to_the_followed_file(window, qtbot, versions, tmp_path, monkeypatch):
    """Save while following once replaced the training process's newer file with the older
    version shown. While following: Save asks for another name, Save As to the followed
    file is refused, and Evaluate this model / Add checkpoints leave the file alone."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog

    run = tmp_path / "run.safetensors"
    publish(versions[1], run)
    follow(window, qtbot, run, 1)
    qtbot.waitUntil(lambda: window.session.data is not None, timeout=WAIT_MS)
    publish(versions[2], run)  # the trainer's newer file, not yet shown (or shown: either way)
    newer = run.read_bytes()

    asked: list[str] = []
    answers = iter([str(run), str(tmp_path / "mine.safetensors")])

    def ask(parent, caption, suggested, filters):
        asked.append(caption)
        return next(answers), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(ask))
    window.save_action.trigger()  # Save means Save As; the first answer is the followed file
    assert asked == ["Save checkpoint"]
    qtbot.waitUntil(lambda: window.message_box is not None, timeout=WAIT_MS)
    assert "followed" in window.message_box.text(), window.message_box.text()
    window.message_box.close()
    assert run.read_bytes() == newer

    window.save_action.trigger()  # this time another name: saved there, the run untouched
    assert (tmp_path / "mine.safetensors").exists() and run.read_bytes() == newer

    # Evaluating while following shows the numbers and writes nothing to the run's file.
    window.follower.stop()
    follow(window, qtbot, run, 2)
    qtbot.waitUntil(lambda: window.session.data is not None, timeout=WAIT_MS)
    view = window.evaluation_view
    window.evaluation_dock.show()
    view.likelihood.setChecked(False)
    view.samples.setChecked(False)
    view.latent.setChecked(False)
    view.recon.setChecked(False)
    qtbot.mouseClick(view.evaluate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.current_evaluation() is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not view.progress.isVisible(), timeout=60_000)
    view.add_checkpoints([str(run)])
    qtbot.waitUntil(lambda: all(row.record is not None for row in view.rows if row.path is not None),
                    timeout=60_000)
    qtbot.waitUntil(lambda: not view.progress.isVisible(), timeout=60_000)
    assert run.read_bytes() == newer
