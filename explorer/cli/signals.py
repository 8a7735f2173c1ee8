"""Signals while a command runs: SIGINT, SIGTERM and SIGHUP interrupt like Ctrl+C; a save holds them."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

# -- signals ------------------------------------------------------------------------------
# What every command needs and what must never be left half-imported: numpy and torch fail
# in odd ways after a KeyboardInterrupt in the middle of their import.
STARTUP_IMPORTS = ("numpy", "torch")

def _import_while_starting() -> None:
    """Import the heavy modules while the entry point's start-up handlers are in place
    (explorer.startup_signals): a signal now ends the process at once with 128 + signum,
    before ``_Signals`` (which raises KeyboardInterrupt) takes over."""
    from explorer import startup_signals

    if startup_signals.installed():
        for name in STARTUP_IMPORTS:
            __import__(name)

def _importing(frame: Any) -> bool:
    """Whether ``frame`` (the main thread's, where a signal landed) is inside an import."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False

class _Signals:
    """SIGINT, SIGTERM and SIGHUP all interrupt a command the way Ctrl+C does: the first
    one raises KeyboardInterrupt where the work is. From then on, and inside :meth:`held`
    (a save), further signals are only counted, so a save is never cut short: it ends with
    the old file or the complete new one, and the message can say which. A signal the
    process ignored when it started (``nohup`` ignores SIGHUP) stays ignored. Handlers are
    installed in the main thread only and restored on exit (or, ``restore=False``, left
    holding signals: the process is about to end)."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

    def __init__(self, restore: bool = True) -> None:
        self.received: list[str] = []
        self._holding = False
        self._restore = restore
        self._previous: dict[int, Any] = {}
        self._redelivery: threading.Thread | None = None

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                previous = signal.getsignal(sig)
                if previous == signal.SIG_IGN:
                    continue
                self._previous[sig] = previous
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._restore:
            self._holding = True
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if not self._holding and _importing(frame) and self._redeliver_after_import(signum):
            # Raising in the middle of an import leaves a half-initialised module behind;
            # the signal is delivered again, and raised, once the import is over.
            return
        self.received.append(signal.Signals(signum).name)
        if self._holding:
            return
        self._holding = True  # the unwinding and the save that follow are not to be cut short
        raise KeyboardInterrupt(self.received[-1])

    def _redeliver_after_import(self, signum: int) -> bool:
        """Send ``signum`` to the main thread again once it is out of every import (a
        watcher thread polls its frames); False where that cannot be done (no pthread_kill)."""
        if self._redelivery is not None and self._redelivery.is_alive():
            return True  # one pending signal interrupts once; the rest would be held anyway
        main = threading.main_thread().ident
        if main is None or not hasattr(signal, "pthread_kill"):
            return False
        tick = threading.Event()

        def watch() -> None:
            while True:
                frame = sys._current_frames().get(main)
                if frame is None:
                    return
                busy = _importing(frame)
                del frame
                if not busy:
                    break
                tick.wait(0.005)
            if signal.getsignal(signum) == self._handle:  # not after the command has put the old handlers back
                signal.pthread_kill(main, signum)

        self._redelivery = threading.Thread(target=watch, name="latent-explorer-signal", daemon=True)
        self._redelivery.start()
        return True

    def hold(self) -> None:
        """Count signals instead of raising them from now on."""
        self._holding = True

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Count signals instead of raising them for the duration of the block."""
        before = self._holding
        self._holding = True
        try:
            yield
        finally:
            self._holding = before

    def named(self) -> str:
        """' (SIGTERM)' when a signal other than Ctrl+C's interrupted, else ''."""
        first = self.received[0] if self.received else "SIGINT"
        return "" if first == "SIGINT" else f" ({first})"
