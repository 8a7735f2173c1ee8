"""Following a run: the window shows a checkpoint that another process keeps rewriting
(a headless ``train --checkpoint-every N``, a cluster run on a shared file system).

``RunFollower(session).follow(path)`` looks at the file's (size, mtime_ns, inode) once a
second (and at once when the folder's watcher says something changed there; the poll is
the fallback for network file systems that never notify). One ``stat`` is all the GUI
thread does. A new signature loads the checkpoint in the background through the session's
task runner (``load_checkpoint`` + ``build_model``; a newer change supersedes a load in
flight), and ``session.install_followed`` puts it in as a new version of the same model:
the same view model gets the new weights, so the plane re-encodes and keeps its axes.

Writers replace the file atomically (explorer/atomic.py), so a reader sees the old or the
new file; still, a load can fail (a file replaced mid-read, one written in place by some
other tool, a damaged one). A failure is one status line and the old version stays; the
file is tried again when its signature changes again. A file that is gone (the rename
window, a deleted run) keeps the last version shown. Following is read-only: incoming
versions never mark the document modified, and training is refused until it stops.

The end of the run is said once in the status bar: when a version's history has every
epoch its training settings asked for ("the run has ended"), or when the file has not
changed for a while since the last version (``quiet_s``, or three times the gap between
the last two versions if longer: "the run seems to have ended"). A later version starts
following afresh.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from explorer.display import one_line
from explorer.gui.state.session import TrainingSession
from explorer.training.run_length import epochs_to_train

POLL_MS = 1000
FOLLOW_TASK = "follow"
QUIET_S = 300.0  # a run whose file has not changed this long (at least) is taken as ended

Signature = tuple[int, int, int]  # size, mtime_ns, inode


def planned_epochs(ckpt) -> int | None:
    """The epochs the run that wrote ``ckpt`` trains in all: its training settings' epochs,
    raised as the engine raises them to reach the minimum steps (the steps per epoch read
    from its first epoch in the history). None when the checkpoint does not say."""
    config = getattr(ckpt, "train_config", None)
    epochs = getattr(config, "epochs", None)
    if not isinstance(epochs, int):
        return None
    history = getattr(ckpt, "history", None)
    first = history.epochs[0] if history is not None and history.epochs else None
    try:
        per_epoch = int(first["global_step"]) // int(first["epoch"]) if first is not None else 0
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        per_epoch = 0
    return epochs_to_train(config, per_epoch) if per_epoch > 0 else epochs


def file_signature(path: Path) -> Signature | None:
    """What changes whenever the file is rewritten; None while there is no regular file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not (st.st_mode & 0o170000 == 0o100000):  # not a regular file
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


class RunFollower(QObject):
    following_changed = Signal(object)  # Path, or None: following stopped
    version_loaded = Signal(int)  # the epoch of the version now shown
    follow_failed = Signal(str)  # one line: a version could not be read (retried on the next change)
    status = Signal(str)  # one line for the status bar (waiting, gone, retrying, ended)
    run_ended = Signal(int)  # the followed run is over (or has gone quiet): the epoch it ended at

    def __init__(self, session: TrainingSession, parent: QObject | None = None, interval_ms: int = POLL_MS) -> None:
        super().__init__(parent)
        self.session = session
        self.path: Path | None = None
        self.epoch: int | None = None  # of the version shown
        self._seen: Signature | None = None  # the signature last loaded (or tried)
        self._loading: Signature | None = None  # the signature of the load in flight
        self._gone_reported = False
        self._serial = 0  # bumps per follow(), so a load of an earlier follow is dropped
        self.quiet_s = QUIET_S
        self.ended = False  # the end of the run was said (for the version shown)
        self._changed_at: float | None = None  # when the version shown arrived (monotonic)
        self._gap_s = 0.0  # the time between the last two versions
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)
        self._watcher: QFileSystemWatcher | None = None

    @property
    def following(self) -> bool:
        return self.path is not None

    def follow(self, path: str | Path) -> None:
        """Follow ``path`` (it may not exist yet): its current version loads at once."""
        self.stop()
        self.path = Path(path).absolute()
        self._serial += 1
        self._seen = self._loading = None
        self._gone_reported = False
        self.epoch = None
        self.ended, self._changed_at, self._gap_s = False, None, 0.0
        self._watcher = QFileSystemWatcher(self)
        self._watcher.addPath(str(self.path.parent))  # a rename replaces the file: watch its folder
        self._watcher.directoryChanged.connect(self._soon)
        self._timer.start()
        self.session.following = self.path
        self.following_changed.emit(self.path)
        self.check()

    def stop(self) -> None:
        if self.path is None:
            return
        self.path = None
        self._serial += 1
        self._timer.stop()
        if self._watcher is not None:
            self._watcher.deleteLater()
            self._watcher = None
        self.session.tasks.cancel(FOLLOW_TASK)
        self.session.following = None
        self.following_changed.emit(None)

    def _soon(self, *_: object) -> None:
        # A folder change comes as a burst (temp file, rename): look once, after it.
        QTimer.singleShot(50, self.check)

    def check(self) -> None:
        """One stat; a new signature loads that version in the background."""
        path = self.path
        if path is None:
            return
        signature = file_signature(path)
        if signature is None:
            if not self._gone_reported:
                self._gone_reported = True
                kept = f"; still showing epoch {self.epoch}" if self.epoch is not None else ""
                self.status.emit(f"Following {one_line(path.name)}: waiting for the file{kept}")
            return
        self._gone_reported = False
        if signature in (self._seen, self._loading) or self.session.is_running:
            self._check_quiet(path)
            return
        self._load(path, signature)

    def _check_quiet(self, path: Path) -> None:
        """The file has not changed since the version shown: long enough, and the run is
        taken as ended (said once)."""
        if self.ended or self._changed_at is None or self.epoch is None or self._loading is not None:
            return
        quiet = time.monotonic() - self._changed_at
        if quiet >= max(self.quiet_s, 3 * self._gap_s):
            minutes = f"{quiet / 60:.0f} min" if quiet >= 90 else f"{quiet:.0f} s"
            self._say_ended(f"Following {one_line(path.name)}: the run seems to have ended (epoch {self.epoch}; "
                            f"the file has not changed for {minutes})")

    def _say_ended(self, line: str) -> None:
        assert self.epoch is not None
        self.ended = True
        self.status.emit(line)
        self.run_ended.emit(self.epoch)

    def _load(self, path: Path, signature: Signature) -> None:
        from explorer.training.checkpoint import load_checkpoint

        def load(_) -> tuple[object, object]:
            ckpt = load_checkpoint(path)
            return ckpt, ckpt.build_model()

        serial = self._serial
        self._loading = signature
        self.session.tasks.submit(FOLLOW_TASK, load, label=f"Reading {one_line(path.name)}", model_bound=False,
                                  on_done=lambda loaded: self._on_loaded(serial, signature, loaded),
                                  on_failed=lambda message: self._on_failed(serial, signature, message))

    def _on_loaded(self, serial: int, signature: Signature, loaded: tuple[object, object]) -> None:
        if serial != self._serial or self.path is None:
            return
        self._seen, self._loading = signature, None
        ckpt, model = loaded
        if not self.session.install_followed(self.path, ckpt, model):
            self._say_failed("a training run is in progress; the version was not shown")
            return
        self.epoch = self.session.history.last_epoch
        now = time.monotonic()
        if self._changed_at is not None:
            self._gap_s = now - self._changed_at
        self._changed_at, self.ended = now, False
        self.version_loaded.emit(self.epoch)
        planned = planned_epochs(ckpt)
        if self.path is not None and planned is not None and self.epoch >= planned:
            self._say_ended(f"Following {one_line(self.path.name)}: the run has ended (epoch {self.epoch})")

    def _on_failed(self, serial: int, signature: Signature, message: str) -> None:
        if serial != self._serial or self.path is None:
            return
        # Tried: the same bytes are not read again; the next rewrite is.
        self._seen, self._loading = signature, None
        self._say_failed(message)

    def _say_failed(self, message: str) -> None:
        assert self.path is not None
        kept = f"still showing epoch {self.epoch}; " if self.epoch is not None else ""
        line = one_line(f"Following {self.path.name}: could not read this version ({message}); "
                        f"{kept}will retry when the file changes", limit=300)
        self.follow_failed.emit(line)
