"""Background threads yield the CPU to the GUI thread.

On a small machine the trainer's OpenMP team and an encoding pass can take every core,
and the GUI thread then waits for a time slice before it can paint a drag (measured on 2
cores: drag-to-image p95 went from 7 ms idle to 35 ms while training). Linux schedules
threads separately and lets one thread lower its own priority; threads it starts (the
OpenMP team) inherit it. Elsewhere this does nothing.
"""

from __future__ import annotations

import os
import sys
import threading

BACKGROUND_NICENESS = 10


def lower_this_thread_priority(niceness: int = BACKGROUND_NICENESS) -> bool:
    """Make the calling thread (and threads it creates later) yield to the GUI thread."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + niceness))
        return True
    except (OSError, AttributeError):
        return False
