"""Stopping background work between batches, without passing a token through every call.

The task runner marks the thread that runs a task with the task's cancel flag
(``cancellable``); long loops in the core (encoding, scoring, fitting, decoding in batches)
call ``check()`` between batches, which raises ``Cancelled`` once the flag is set. Outside a
task (the CLI, tests) ``check()`` does nothing. A window that closes, or a newer request,
then waits for one batch at most instead of the whole computation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()


class Cancelled(Exception):  # noqa: N818 - it is an outcome, not an error
    """The work was cancelled (its result is no longer wanted)."""


@contextmanager
def cancellable(flag: threading.Event) -> Iterator[None]:
    """Within this block, ``check()`` on this thread raises once ``flag`` is set."""
    previous = getattr(_local, "flag", None)
    _local.flag = flag
    try:
        yield
    finally:
        _local.flag = previous


def check() -> None:
    """Raise Cancelled if the task running on this thread was cancelled."""
    flag = getattr(_local, "flag", None)
    if flag is not None and flag.is_set():
        raise Cancelled
