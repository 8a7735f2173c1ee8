"""Suite-wide set-up: Qt offscreen, user directories in a temp folder, no leaked threads."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if os.environ["QT_QPA_PLATFORM"] == "offscreen":
    # Qt's offscreen screen is 800x800 by default, smaller than the window's default size;
    # the window fits itself to its screen, so give it a common desktop's 1920x1080.
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={Path(__file__).with_name('offscreen-screen.json')}"
os.environ.setdefault("LATENT_EXPLORER_SLOW_MS", "50")  # log GUI-thread handlers over 50 ms
# A suite started as a background job (`make test &`, a script's `( ... ) &`) inherits SIGINT
# ignored, and so would every program the tests start: the tests that press Ctrl+C on one
# then waited out their hang guard. The tests' programs get the terminal's default instead.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def qapp_cls():
    """pytest-qt's application is the app's timed one, so stalls are caught (tests/gui)."""
    from explorer.gui.app.slow_handlers import TimedApplication

    return TimedApplication


@pytest.fixture(autouse=True, scope="session")
def _private_user_dirs(tmp_path_factory: pytest.TempPathFactory):
    """Keep the suite out of the real user cache and data folders."""
    root = tmp_path_factory.mktemp("userdirs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENT_EXPLORER_CACHE", str(root / "cache"))
        mp.setenv("LATENT_EXPLORER_DATA", str(root / "data"))
        yield


@pytest.fixture(autouse=True)
def _no_thread_left_running():
    """Fail any test that leaves a Python thread running (a worker nobody joined)."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    for t in leftover:
        t.join(timeout=5)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"test left threads running: {still}"
