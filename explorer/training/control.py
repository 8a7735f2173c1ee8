"""How another thread steers a running engine: stop, pause, and a queue of setting changes.

A queue (not a single slot) so that two quick changes both arrive, in order, and each is
applied at a step boundary.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class SetLearningRate:
    value: float


@dataclass(frozen=True)
class SetBeta:
    value: float


@dataclass(frozen=True)
class SetThreads:
    """Torch threads for the run's own steps: a window lends a core to an evaluation beside it
    (0: every core). Not a setting of the run: nothing is reported or saved."""

    value: int


Command = SetLearningRate | SetBeta | SetThreads


class TrainingControl:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()  # set = not paused
        self._running.set()
        self.commands: queue.SimpleQueue[Command] = queue.SimpleQueue()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused engine so it can notice the stop

    def pause(self) -> None:
        if not self._stop.is_set():
            self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def set_lr(self, value: float) -> None:
        self.commands.put(SetLearningRate(float(value)))

    def set_beta(self, value: float) -> None:
        self.commands.put(SetBeta(float(value)))

    def set_threads(self, value: int) -> None:
        self.commands.put(SetThreads(int(value)))

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def pause_requested(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self, timeout: float | None = None) -> None:
        self._running.wait(timeout)

    def drain(self) -> list[Command]:
        out: list[Command] = []
        while True:
            try:
                out.append(self.commands.get_nowait())
            except queue.Empty:
                return out
