"""``latent-explorer --self-test``: does this install (or packaged app) really work?

Opens the main window (offscreen unless a Qt platform was chosen), trains one short epoch on
the bundled MNIST through the window's own Start action and TrainingSession, checks the
result, closes the window and answers with an exit status: 0 and one line on stdout when
everything worked, 1 and one line on stderr saying why not.

It runs with private, temporary data and cache folders and a private copy of the user's
settings (a broken settings file is named in the result), so it starts the window as the
user's start would, yet never changes the user's settings, autosaved model or cache.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.display import plural

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings

PREFIX = "latent-explorer self-test"
LIMIT = 256  # images per split
EPOCHS = 1
BATCH_SIZE = 64
TIMEOUT_S = 120.0


class SelfTestFailure(Exception):
    """A check failed; the message is the one-line reason."""


@contextmanager
def _private_dirs() -> Iterator[Path]:
    """A temporary folder for settings, data (autosave) and cache; the environment is
    restored afterwards (the self-test may run inside another process, e.g. a test)."""
    keys = ("LATENT_EXPLORER_DATA", "LATENT_EXPLORER_CACHE")
    saved = {k: os.environ.get(k) for k in keys}
    with tempfile.TemporaryDirectory(prefix="latent-explorer-self-test-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        os.environ["LATENT_EXPLORER_DATA"] = str(root / "data")
        os.environ["LATENT_EXPLORER_CACHE"] = str(root / "cache")
        try:
            yield root
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _copy_of_user_settings(target: Path) -> tuple[QSettings, str | None]:
    """A private copy of the user's settings, so the self-test starts the window with what
    the user's start would read, and never changes the real file. A file the app would set
    aside is named in the note instead of copied."""
    import shutil

    from explorer.gui.state.settings import open_settings, settings_path, unusable_reason

    source = settings_path()
    note = None
    problem = unusable_reason(source)
    if problem is not None:
        note = f"the settings file {source} {problem}; the app will set it aside and use the defaults"
    elif source.exists():
        try:
            shutil.copyfile(source, target)
        except OSError as exc:
            note = f"the settings file {source} could not be copied ({exc.strerror or exc})"
    settings, warning = open_settings(target)
    return settings, note or (warning and warning.replace(str(target), str(source)))


def _one_line(text: str) -> str:
    """The first paragraph of a message, on one line."""
    return " ".join(str(text).split("\n\n")[0].split()) or "(no message)"


def _train_once(root: Path, timeout_s: float) -> str:
    """Build the window, train, check; the success line, or raise SelfTestFailure."""
    from PySide6.QtCore import QEventLoop, QTimer

    from explorer.gui.app.application import make_application
    from explorer.gui.app.main_window import MainWindow

    make_application(sys.argv[:1])
    settings, settings_note = _copy_of_user_settings(root / "settings.ini")
    window = MainWindow(settings=settings)
    try:
        window.show()
        window.panel.limit.setValue(LIMIT)
        window.panel.epochs.setValue(EPOCHS)
        window.panel.batch_size.setValue(BATCH_SIZE)
        window.panel.min_steps.setValue(0)  # exactly EPOCHS epochs: a quick check, not a trained model
        session = window.session

        outcome: dict[str, object] = {}
        loop = QEventLoop()
        session.run_finished.connect(lambda result: outcome.setdefault("result", result))
        session.error.connect(lambda message: outcome.setdefault("error", message))
        session.warning.connect(lambda message: outcome.setdefault("warning", message))

        def check() -> None:  # the run is over once the worker is joined and the session idle
            if ("result" in outcome or "error" in outcome) and not session.is_running:
                loop.quit()

        poll = QTimer()
        poll.setInterval(20)
        poll.timeout.connect(check)
        deadline = QTimer()
        deadline.setSingleShot(True)
        deadline.timeout.connect(lambda: (outcome.setdefault("timeout", True), loop.quit()))

        if not window.start_action.isEnabled():
            raise SelfTestFailure("the Start action is disabled in a fresh window")
        started = time.perf_counter()
        window.start_action.trigger()  # what the toolbar's Start button (F5) does
        if not session.is_running and "error" not in outcome:
            raise SelfTestFailure(f"pressing Start did not start a run (state {session.state!r})")
        poll.start()
        deadline.start(int(timeout_s * 1000))
        loop.exec()
        poll.stop()
        deadline.stop()
        seconds = time.perf_counter() - started

        if "error" in outcome:
            message = _one_line(str(outcome["error"]))
            raise SelfTestFailure(message if message.lower().startswith("training failed")
                                  else f"training failed: {message}")
        if "timeout" in outcome:
            raise SelfTestFailure(f"training did not finish within {timeout_s:g} s (state {session.state!r})")
        result = outcome["result"]
        if getattr(result, "status", None) != "completed":
            raise SelfTestFailure(f"the run ended {getattr(result, 'status', '?')}: "
                                  f"{_one_line(getattr(result, 'message', '') or '')}")
        if session.view_model is None:
            raise SelfTestFailure("the run completed but the window has no model")
        epochs = session.history.epochs
        if len(epochs) != EPOCHS:
            raise SelfTestFailure(f"expected {plural(EPOCHS, 'finished epoch')}, the history has "
                                  f"{plural(len(epochs), 'epoch')}")
        train_loss, test_loss = epochs[-1]["train"]["loss"], epochs[-1]["test"]["loss"]
        if not (math.isfinite(train_loss) and math.isfinite(test_loss)):
            raise SelfTestFailure(f"the loss is not finite (train {train_loss}, test {test_loss})")
        if "warning" in outcome:
            raise SelfTestFailure(f"the app warned: {_one_line(str(outcome['warning']))}")
        preset = session.model_config.preset if session.model_config is not None else "?"
        return (f"{PREFIX}: ok: trained {preset} for {plural(EPOCHS, 'epoch')} on {LIMIT} MNIST images on "
                f"{session.device} "
                f"in {seconds:.1f} s; train loss {train_loss:.2f}, test loss {test_loss:.2f}"
                + (f"; note: {settings_note}" if settings_note else ""))
    finally:
        window.close_without_asking()  # stops and joins the worker, like a person closing the window
        joined = window.session.shutdown()
        window.deleteLater()
        if not joined and sys.exc_info()[0] is None:
            raise SelfTestFailure("a background thread did not stop when the window closed")


def run_self_test(timeout_s: float = TIMEOUT_S) -> int:
    """Exit status 0 (and one line on stdout) if the app trains through its window, else 1
    (and one line on stderr)."""
    if not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    try:
        with _private_dirs() as root:
            line = _train_once(root, timeout_s)
    except SelfTestFailure as exc:
        print(f"{PREFIX}: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - a broken install shows here; report it in one line
        print(f"{PREFIX}: FAILED: {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr, flush=True)
        return 1
    print(line, flush=True)
    return 0
