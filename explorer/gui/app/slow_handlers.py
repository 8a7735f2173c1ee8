"""A debug switch that names every GUI-thread handler that runs too long.

The GUI thread only paints; anything slower belongs in the task runner. Set
``LATENT_EXPLORER_SLOW_MS=50`` and the application times each event it delivers (a
click, a timer, a queued signal, a paint): any that takes longer is written to stderr
with the receiver and the event type, and kept in ``SLOW_HANDLERS`` so the GUI tests can
fail on a stall. Nested deliveries (an event sent from inside a handler) count towards
the outermost one, which is what blocks the event loop.

A handler's own time leaves out what it did not cost: the garbage collector's pauses, and
on Linux the time the GUI thread sat runnable while the kernel ran other threads (the
"run delay" in ``/proc/thread-self/schedstat``). On a busy 2-core machine other processes
took 300-500 ms from handlers that cost a few ms. Waiting for the GIL, a lock or a joined
thread still counts: that is a stall the app caused.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication

ENV = "LATENT_EXPLORER_SLOW_MS"
DEFAULT_MS = 50.0


@dataclass(frozen=True)
class SlowHandler:
    ms: float
    receiver: str
    event: str
    gc_ms: float = 0.0  # of which the garbage collector took this much
    waiting_ms: float = 0.0  # of which the thread waited for a CPU (the kernel ran others)

    @property
    def own_ms(self) -> float:
        """The handler's own time: what its code cost, the collector's pauses and the time
        the kernel gave the CPU to others left out."""
        return max(0.0, self.ms - self.gc_ms - self.waiting_ms)

    def __str__(self) -> str:
        parts = [f"{self.gc_ms:.0f} ms of it garbage collection"] if self.gc_ms >= 1 else []
        if self.waiting_ms >= 1:
            parts.append(f"{self.waiting_ms:.0f} ms waiting for a CPU")
        extra = f" ({'; '.join(parts)})" if parts else ""
        return f"{self.ms:.0f} ms in {self.receiver} handling {self.event}{extra}"


class _GcClock:
    """Total time spent in garbage collections, from the interpreter's gc callbacks."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self.total_s += time.perf_counter() - self._started
            self._started = 0.0


GC_CLOCK = _GcClock()


SLOW_HANDLERS: list[SlowHandler] = []
_SCHEDSTAT = "/proc/thread-self/schedstat"


def run_delay_s() -> float:
    """How long the calling thread has waited on a run queue so far (Linux; 0 elsewhere)."""
    try:
        with open(_SCHEDSTAT, "rb") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def threshold_ms() -> float | None:
    """The switch's value in ms, or None when it is unset or not a positive number."""
    try:
        value = float(os.environ.get(ENV, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def _describe(receiver: QObject) -> str:
    """The receiver and its owner (a bare QTimer says little; its parent says whose)."""
    try:
        name = receiver.objectName()
        text = f"{type(receiver).__name__}{f'({name})' if name else ''}"
        parent = receiver.parent()
        if parent is None:
            return text
        text += f" of {type(parent).__name__}"
        owner = parent  # the app's own widget above it (one of many plots says little)
        while owner is not None and not type(owner).__module__.startswith("explorer."):
            owner = owner.parent()
        return f"{text} in {type(owner).__name__}" if owner is not None and owner is not parent else text
    except RuntimeError:  # deleted while its event was handled
        return "a deleted object"


class TimedApplication(QApplication):
    """A QApplication that times event deliveries (only created when the switch is on:
    routing every event through Python costs a little)."""

    def __init__(self, argv: list[str], limit_ms: float | None = None) -> None:
        super().__init__(argv)
        self.limit_ms = limit_ms if limit_ms is not None else (threshold_ms() or DEFAULT_MS)
        self._depth = 0
        if GC_CLOCK not in gc.callbacks:
            gc.callbacks.append(GC_CLOCK)

    def notify(self, receiver: QObject, event: QEvent) -> bool:  # noqa: D102 - Qt's virtual
        if self._depth:
            return super().notify(receiver, event)
        self._depth += 1
        kind = event.type()  # read before delivery: the event may be deleted by it
        gc_before = GC_CLOCK.total_s
        delay_before = run_delay_s()
        start = time.perf_counter()
        try:
            return super().notify(receiver, event)
        finally:
            self._depth -= 1
            ms = (time.perf_counter() - start) * 1000
            if ms > self.limit_ms:
                gc_ms = (GC_CLOCK.total_s - gc_before) * 1000
                waiting_ms = (run_delay_s() - delay_before) * 1000
                record = SlowHandler(ms, _describe(receiver), getattr(kind, "name", str(kind)), gc_ms, waiting_ms)
                SLOW_HANDLERS.append(record)
                print(f"latent-explorer: slow GUI handler: {record}", file=sys.stderr)


def application_class() -> type[QApplication]:
    return TimedApplication if threshold_ms() is not None else QApplication


def new_application(argv: list[str]) -> QApplication:
    limit = threshold_ms()
    return TimedApplication(argv, limit) if limit is not None else QApplication(argv)
