"""Background threads yield the CPU to the GUI thread, and work on their own model copy.

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
from dataclasses import dataclass

import torch

from explorer.config import ModelConfig
from explorer.models import Autoencoder, build_model
from explorer.runtime.heap import lazy_import

BACKGROUND_NICENESS = 10


def lower_this_thread_priority(niceness: int = BACKGROUND_NICENESS) -> bool:
    """Make the calling thread (and threads it creates later) yield to the GUI thread.

    The main thread is left alone: it is the GUI thread (or a script's or a notebook
    kernel's), and background work run inline there (a test, a script) would otherwise
    slow it for the rest of the process's life."""
    if not sys.platform.startswith("linux") or threading.current_thread() is threading.main_thread():
        return False
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + niceness))
        return True
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class ModelCopy:
    """A model's config and a copy of its weights: what background work takes from the
    GUI thread, so it never reads weights that a snapshot is overwriting."""

    config: ModelConfig
    state: dict[str, torch.Tensor]
    # A model whose weights never change in the app (a user's own encoder and decoder,
    # explorer.models.external) is shared, not rebuilt: its code is not the app's to rebuild.
    shared: torch.nn.Module | None = None

    @classmethod
    def of(cls, model: Autoencoder) -> ModelCopy:
        if getattr(model, "shared_weights", False):
            return cls(model.config, {}, shared=model)
        return cls(model.config, {k: v.detach().clone() for k, v in model.state_dict().items()})

    def build(self) -> Autoencoder:
        """Call in the background thread: lowers its priority, uses one torch thread (the
        other core is the trainer's), and returns the model in eval mode. Called on the
        main thread (a script, a test) it changes neither."""
        if lower_this_thread_priority():
            torch.set_num_threads(1)
        if self.shared is not None:
            return self.shared  # type: ignore[return-value]
        model = build_model(self.config, check=False)  # a copy of a model already checked
        model.load_state_dict(self.state)
        return model.eval()


def warm_view_imports() -> None:
    """Import, in this background thread, what the views need as soon as its result lands:
    torchvision's grid code takes ~0.7 s to import the first time, which on the GUI thread
    froze the window when the first run's data arrived."""
    with lazy_import():  # its modules would otherwise lengthen every full collection
        import torchvision.utils  # noqa: F401 - imported for its side effect


class SharedProgress:
    """How far a background task has got, written by its thread and read by a GUI timer:
    a fraction and a stage name under a lock (no signal per batch, so a fast loop cannot
    flood the GUI thread's event queue)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fraction = 0.0
        self._label = ""

    def report(self, fraction: float, label: str) -> None:
        with self._lock:
            self._fraction, self._label = max(0.0, min(1.0, fraction)), label

    def read(self) -> tuple[float, str]:
        with self._lock:
            return self._fraction, self._label


# The window's own short background tasks, on daemon threads: plugin discovery (imports each
# plugin and builds its model) and a dataset probe. Python ends a daemon thread that is inside
# torch at exit by aborting the process, so the exit waits for them (at most this long).
WINDOW_WORKERS = ("latent-explorer-plugins", "latent-explorer-probe")
WORKERS_AT_EXIT_S = 60.0


def let_window_workers_finish() -> None:
    """Before the interpreter stops (the app's exit, or atexit for a window opened from
    Python): wait for the window's short background tasks. Without it a script that closed
    its window within a second or two of opening it died in plugin discovery ("terminate
    called without an active exception", exit status 134)."""
    for thread in threading.enumerate():
        if thread.daemon and thread.name in WINDOW_WORKERS and thread is not threading.current_thread():
            thread.join(WORKERS_AT_EXIT_S)
