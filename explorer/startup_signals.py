"""Signals while the program starts: the process ends at once, cleanly, with exit 130.

Python's own SIGINT handler raises KeyboardInterrupt wherever the main thread is. While
numpy or torch is importing, that leaves half-initialised modules behind, and whatever
touches them next fails in odd ways (``module 'numpy' has no attribute 'multiply'``,
"cannot load module more than once per process", a RecursionError), or the interpreter
hangs on its way out while a background thread is still importing torch. Nothing worth
keeping exists that early, so the entry point installs :func:`install` before anything
heavy is imported: a SIGINT, SIGTERM or SIGHUP then writes one line to stderr and ends
the process with ``os._exit(130)`` ("interrupted", as every command exits on a signal), never running code in
half-imported modules. A command replaces these handlers with its own once its imports
are done (``cli._Signals``). The window keeps them and, once its event loop runs, closes
itself on the first signal as on a normal close (:func:`on_signal`, gui.app.startup).

``LATENT_EXPLORER_TEST_PAUSE_AT=STAGE`` (tests only) makes the process say
``latent-explorer: test pause at STAGE`` on stderr and wait there (at most
PAUSE_LIMIT_S) so a test can signal it at a known point: ``before-imports`` (the top of
the entry point) or ``importing-PACKAGE`` (inside ``PACKAGE/__init__``, the first time it
imports one of its own submodules: the package is half-initialised then).

Only the standard library here: this runs before anything else is loaded.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PAUSE_ENV = "LATENT_EXPLORER_TEST_PAUSE_AT"
PAUSE_LIMIT_S = 120.0  # a paused process nobody signals goes on by itself
SIGNAL_NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

_installed: dict[int, Any] = {}
_after_start: Callable[[int], bool] | None = None
EXIT_INTERRUPTED = 130  # the CLI's code for a run ended by SIGINT or SIGTERM (README)
_ending = False


def _exit_now(signum: int, frame: object) -> None:
    global _ending
    if _after_start is not None and not _ending:
        try:
            _ending = bool(_after_start(signum))
        except Exception:  # noqa: BLE001 - whatever went wrong, the process still ends below
            _ending = False
        if _ending:
            return  # the window closes itself; a second signal ends the process at once
    name = signal.Signals(signum).name
    line = "latent-explorer: interrupted" + ("" if name == "SIGINT" else f" ({name})") + "\n"
    try:
        os.write(2, line.encode())
    except OSError:
        pass
    os._exit(EXIT_INTERRUPTED)


def install() -> None:
    """End the process on SIGINT, SIGTERM or SIGHUP from now on (main thread only). A
    signal the process was started with ignored (``nohup``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in SIGNAL_NAMES:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        previous = signal.getsignal(sig)
        if previous == signal.SIG_IGN:
            continue
        signal.signal(sig, _exit_now)
        _installed[sig] = previous
    stage = os.environ.get(PAUSE_ENV, "")
    if stage.startswith("importing-"):
        sys.meta_path.insert(0, _PauseInsidePackage(stage.removeprefix("importing-")))


def on_signal(handler: Callable[[int], bool]) -> None:
    """Let ``handler(signum)`` end the process its own way once the program has started
    (the window closes, saving as on a normal close); it returns False while it cannot
    (still starting), and the process then ends at once as before."""
    global _after_start
    _after_start = handler


def installed() -> bool:
    """Whether the start-up handlers are the ones in place for SIGINT."""
    return signal.getsignal(signal.SIGINT) is _exit_now


def pause_point(stage: str) -> None:
    """Wait here when a test asked to (``LATENT_EXPLORER_TEST_PAUSE_AT``); else nothing."""
    if os.environ.get(PAUSE_ENV) == stage:
        _pause(stage)


def _pause(stage: str) -> None:
    os.write(2, f"latent-explorer: test pause at {stage}\n".encode())
    deadline = time.monotonic() + PAUSE_LIMIT_S
    while time.monotonic() < deadline:
        time.sleep(0.02)  # in the main thread, a signal's handler runs between these


class _PauseInsidePackage:
    """A meta path finder that finds nothing: it pauses once, when ``package``'s own
    ``__init__`` asks for its first submodule (the package is half-imported then)."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.done = False

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if not self.done and name.startswith(self.package + ".") and self.package in sys.modules:
            self.done = True
            _pause(f"importing-{self.package}")
        return None
