"""The GUI's side of the task runner: a timer drains finished work on the GUI thread, and
two signals tell the one place that shows progress and errors (the status bar).

Views never start threads themselves: they call ``tasks.submit(key, fn, ...)`` with a
function of a model copy and numpy/torch data, and get ``on_done(result)`` back on the GUI
thread, only if no newer request for the same key and no other model came meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from explorer.runtime.tasks import TaskHandle, TaskRunner

POLL_MS = 15


class Tasks(QObject):
    busy_changed = Signal(list)  # labels of the work in progress (empty: idle)
    failed = Signal(str, str)  # label, message: work that failed without its own handler

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = TaskRunner()
        self._busy: list[str] = []
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)

    def submit(self, key: str, fn: Callable[[TaskHandle], Any], *, label: str = "",
               on_done: Callable[[Any], None] | None = None, on_failed: Callable[[str], None] | None = None,
               model_bound: bool = True) -> TaskHandle | None:
        handle = self.runner.submit(key, fn, label=label, on_done=on_done, on_failed=on_failed,
                                    model_bound=model_bound)
        if handle is not None:
            self._timer.start()
            self._report_busy()
        return handle

    def invalidate(self) -> None:
        """Another model: what belonged to the old one is cancelled and dropped."""
        self.runner.invalidate()
        self._report_busy()

    def cancel(self, key: str) -> None:
        self.runner.cancel(key)
        self._report_busy()

    @property
    def idle(self) -> bool:
        return self.runner.idle

    @property
    def busy_labels(self) -> list[str]:
        return list(self._busy)

    def poll(self) -> None:
        self.runner.deliver(lambda label, message: self.failed.emit(label, message))
        self._report_busy()
        if self.runner.idle:
            self._timer.stop()

    def close(self) -> None:
        """Start nothing more, cancel what runs, and keep polling until it has ended."""
        self.runner.close()
        if not self.runner.idle:
            self._timer.start()

    def shutdown(self, timeout_s: float = 15.0) -> bool:
        self._timer.stop()
        return self.runner.shutdown(timeout_s)

    def _report_busy(self) -> None:
        busy = self.runner.busy_labels
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(list(busy))
