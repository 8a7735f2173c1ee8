"""Keeping the garbage collector's full passes short while a window paints.

A full collection walks every container object the interpreter tracks and holds the GIL
throughout, so it stalls the GUI thread whichever thread triggers it. A window freezes
what start-up made (``gc.freeze``: those objects never die, and frozen ones are skipped);
but the heavy imports that start-up leaves to background threads (torchvision's ops pull
in torch._dynamo, the ONNX exporter and sympy: about 150,000 functions, tuples and dicts)
landed after that freeze, and each full pass then took 70-77 ms of the GUI thread in the
middle of a training run. Such an import runs inside ``lazy_import()``: while it runs, the
GUI thread's collector leaves out full passes (each would walk the half-imported modules),
and when it ends what it made is frozen.

Freezing only leaves the objects out of the cyclic collector: reference counting still
frees each of them when its last reference goes, so a frozen tensor or array is not kept.
What a freeze keeps for good is cyclic garbage alive at that moment, which right after an
import is a few small cycles.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_freezing = False
_imports_running = 0
_lock = threading.Lock()


def keep_collections_short() -> None:
    """Collect once and freeze what is left: everything that exists now is long-lived.
    For an interactive process (the window) once it is built; a script needs none of it."""
    global _freezing
    gc.collect()
    gc.freeze()
    _freezing = True


def freeze_new_long_lived() -> None:
    """After a lazy import (modules live as long as the process): freeze what it made, if
    this process keeps its collections short. Without a collection first: that pass is
    the very stall this avoids, and what it would free right after an import is small."""
    if _freezing:
        gc.freeze()


@contextmanager
def lazy_import() -> Iterator[None]:
    """Wrap a background thread's import of long-lived modules: no full collection while
    it runs (see ``full_collection_allowed``), and what it made is frozen at the end."""
    global _imports_running
    with _lock:
        _imports_running += 1
    try:
        yield
    finally:
        with _lock:
            _imports_running -= 1
        freeze_new_long_lived()


def full_collection_allowed() -> bool:
    """False while a ``lazy_import`` runs: a full pass then walks every object the import
    has made so far (tens of ms each), all of which the freeze at its end leaves out."""
    return _imports_running == 0
