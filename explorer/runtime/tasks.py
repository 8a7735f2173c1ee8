"""One runner for the window's background work: latest request wins, stale results drop.

Everything the views compute that grows with the data (encoding the test set, fits,
anomaly scores, PCA baselines, denoising batches, exports) goes through a TaskRunner
instead of each view keeping its own thread and its own staleness rule.

- Work is keyed by what it produces (``"encode"``, ``"anomaly"``, ...). At most one task
  per key runs at a time; a newer request for a key replaces the waiting one, and the
  result of a superseded task is dropped, so a burst of requests costs one or two runs,
  never a queue of them.
- Model-bound work is stamped with the runner's *epoch*. ``invalidate()`` (another model
  was opened or trained) bumps it: everything of the old model is cancelled and its
  results are dropped when they arrive.
- Threads are plain Python threads that never touch Qt; outcomes go to a thread-safe
  queue that the owner drains on its own thread (the GUI's ``Tasks`` wraps this with a
  timer). A task can look at ``TaskHandle.cancelled`` to stop early.
- The threads are kept for the next task (``Workers``), and the owner never waits for
  one: ``threading.Thread.start`` blocks until the new thread runs, and joining a
  finished task's thread waits until it exits; both wait on a low-priority thread, which
  on a busy two-core machine kept the GUI thread for tens of milliseconds at a time.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from explorer.cancellation import Cancelled, cancellable
from explorer.errors import UserError, describe_failure


@dataclass
class TaskHandle:
    """What a running task may consult, and what the runner knows of it."""

    key: str
    label: str
    epoch: int
    serial: int
    model_bound: bool
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()


@dataclass(frozen=True)
class TaskOutcome:
    """A finished task's result, delivered once on the owner's thread."""

    handle: TaskHandle
    ok: bool
    value: Any = None
    message: str = ""


@dataclass
class _Request:
    handle: TaskHandle
    fn: Callable[[TaskHandle], Any]
    on_done: Callable[[Any], None] | None
    on_failed: Callable[[str], None] | None


class Workers:
    """Threads that run jobs and wait a while for the next one, so that handing over a job
    is a list append and a notify, not a thread start. A job that finds no idle thread
    starts one. An idle thread ends after ``idle_s`` without work, or at ``close``.
    Threads are not daemons: Python aborts the process when it ends a daemon thread that
    is inside torch."""

    def __init__(self, prefix: str, idle_s: float = 2.0) -> None:
        self._prefix = prefix
        self._idle_s = idle_s
        self._jobs: deque[Callable[[], None]] = deque()
        self._cond = threading.Condition()
        self._idle = 0  # threads waiting for a job (a new one counts from its start)
        self._threads: set[threading.Thread] = set()
        self._closed = False
        self._count = 0

    def run(self, job: Callable[[], None]) -> None:
        thread = None
        with self._cond:
            if self._closed:
                raise RuntimeError("the workers are closed")
            self._jobs.append(job)
            if len(self._jobs) > self._idle:
                self._count += 1
                thread = threading.Thread(target=self._work, name=f"{self._prefix}-worker-{self._count}",
                                          daemon=False)
                self._threads.add(thread)
                self._idle += 1
            else:
                self._cond.notify()
        if thread is not None:
            thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                with self._cond:
                    deadline = time.monotonic() + self._idle_s
                    while not self._jobs:
                        left = deadline - time.monotonic()
                        if self._closed or left <= 0:
                            self._idle -= 1
                            return
                        self._cond.wait(left)
                    job = self._jobs.popleft()
                    self._idle -= 1
                try:
                    job()
                finally:
                    with self._cond:
                        self._idle += 1
        finally:
            with self._cond:
                self._threads.discard(me)

    def close(self) -> None:
        """Take no more jobs; idle threads end now, busy ones after their job."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def join(self, timeout_s: float) -> bool:
        """After ``close``: wait up to ``timeout_s`` in all for the threads to end."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    @property
    def threads(self) -> int:
        with self._cond:
            return len(self._threads)


class TaskRunner:
    """Latest-wins background work, keyed by what it produces (see the module docstring)."""

    def __init__(self, thread_prefix: str = "latent-explorer") -> None:
        self._prefix = thread_prefix
        self._outbox: queue.SimpleQueue[TaskOutcome] = queue.SimpleQueue()
        self._workers = Workers(thread_prefix)
        self._running: dict[str, _Request] = {}
        self._waiting: dict[str, _Request] = {}
        self._latest: dict[str, int] = {}  # key -> serial of the newest request
        self._serial = 0
        self.epoch = 0
        self.closed = False

    # -- asking -----------------------------------------------------------------------------

    def submit(self, key: str, fn: Callable[[TaskHandle], Any], *, label: str = "",
               on_done: Callable[[Any], None] | None = None, on_failed: Callable[[str], None] | None = None,
               model_bound: bool = True) -> TaskHandle | None:
        """Ask for ``fn(handle)`` off this thread; None once the runner is closed. A newer
        request for ``key`` supersedes this one (its result is then dropped)."""
        if self.closed:
            return None
        self._serial += 1
        handle = TaskHandle(key, label or key, self.epoch, self._serial, model_bound)
        self._latest[key] = handle.serial
        request = _Request(handle, fn, on_done, on_failed)
        if key in self._running:
            self._running[key].handle.cancel()  # it may stop early; its result is dropped
            self._waiting[key] = request
        else:
            self._start(request)
        return handle

    def invalidate(self) -> None:
        """Another model: cancel what belongs to the old one and drop its results."""
        self.epoch += 1
        for key, request in list(self._waiting.items()):
            if request.handle.model_bound:
                del self._waiting[key]
        for request in self._running.values():
            if request.handle.model_bound:
                request.handle.cancel()

    def cancel(self, key: str) -> None:
        self._waiting.pop(key, None)
        self._latest.pop(key, None)
        if key in self._running:
            self._running[key].handle.cancel()

    # -- state ------------------------------------------------------------------------------

    @property
    def busy_labels(self) -> list[str]:
        """What is being computed now, for the one place the window shows progress."""
        return [request.handle.label for request in self._running.values() if self._is_current(request.handle)]

    @property
    def idle(self) -> bool:
        return not self._running and not self._waiting

    def is_busy(self, key: str) -> bool:
        """Whether wanted work for ``key`` is running or waiting to run."""
        if key in self._waiting:
            return True
        running = self._running.get(key)
        return running is not None and self._is_current(running.handle)

    def is_current(self, handle: TaskHandle) -> bool:
        return self._is_current(handle)

    def _is_current(self, handle: TaskHandle) -> bool:
        return (self._latest.get(handle.key) == handle.serial and not handle.cancelled
                and (not handle.model_bound or handle.epoch == self.epoch))

    # -- delivering -------------------------------------------------------------------------

    def drain(self) -> list[tuple[_Request, TaskOutcome]]:
        """Outcomes that are still wanted, in the order they finished. Starts waiting work."""
        delivered = []
        while True:
            try:
                outcome = self._outbox.get_nowait()
            except queue.Empty:
                break
            key = outcome.handle.key
            running = self._running.get(key)
            if running is not None and running.handle is outcome.handle:
                request = self._running.pop(key)  # its thread is returning to the pool: no join
                if key in self._waiting and not self.closed:
                    self._start(self._waiting.pop(key))
                if self._is_current(outcome.handle):
                    delivered.append((request, outcome))
        return delivered

    def deliver(self, report_failure: Callable[[str, str], None]) -> int:
        """Drain and call each wanted outcome's callback; a failure without its own handler,
        or a callback that raises, goes to ``report_failure(label, message)``."""
        count = 0
        for request, outcome in self.drain():
            count += 1
            label = request.handle.label
            try:
                if outcome.ok:
                    if request.on_done is not None:
                        request.on_done(outcome.value)
                elif request.on_failed is not None:
                    request.on_failed(outcome.message)
                else:
                    report_failure(label, outcome.message)
            except Exception as exc:  # noqa: BLE001 - one view's fault must not stop the rest
                report_failure(label, describe_failure(exc))
        return count

    def close(self) -> None:
        """Start nothing more and cancel what runs, without waiting for it: a window that is
        closing keeps painting while its threads end (``drain`` sees them go)."""
        self.closed = True
        self._waiting.clear()
        for request in self._running.values():
            request.handle.cancel()
        self._workers.close()

    def shutdown(self, timeout_s: float = 15.0) -> bool:
        """Start nothing more; cancel and join what runs. True if every thread ended."""
        self.close()
        ended = self._workers.join(timeout_s)
        self.drain()
        return ended

    @property
    def threads(self) -> int:
        """Threads alive now, running a task or waiting for the next."""
        return self._workers.threads

    def _start(self, request: _Request) -> None:
        self._running[request.handle.key] = request
        self._workers.run(lambda: self._run(request))

    def _run(self, request: _Request) -> None:
        handle = request.handle
        threading.current_thread().name = f"{self._prefix}-{handle.key}"  # what a debugger or py-spy shows
        try:
            with cancellable(handle._cancel):
                value = request.fn(handle)
            self._outbox.put(TaskOutcome(handle, True, value))
        except Cancelled:  # nobody wants the result: deliver an empty outcome, which is dropped
            handle.cancel()
            self._outbox.put(TaskOutcome(handle, False, message="cancelled"))
        except UserError as exc:
            self._outbox.put(TaskOutcome(handle, False, message=str(exc)))
        except BaseException as exc:  # noqa: BLE001 - reported to the user instead of lost with the thread
            self._outbox.put(TaskOutcome(handle, False, message=describe_failure(exc)))
