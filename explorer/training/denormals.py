"""Subnormal floats flushed to zero while a run trains on the CPU, and left as they were after.

Late in a run some of Adam's second moments and gradients fall below float32's normal range
(about 1e-38). Every arithmetic operation on such a number takes a slow microcode path on
x86, so the compiled ``vae`` step went from 2.0 to 2.6 ms after one epoch of MNIST, the
eager one likewise. A value that small moves no weight by a representable amount, so
flushing it to zero costs nothing the training can see (measured: the same test loss).

The flags live in each thread's MXCSR register, and ``torch.set_flush_denormal`` sets only
the calling thread's. The other members of its OpenMP team (which run half of every
parallel kernel on two cores) keep theirs, so the team is reached through the OpenMP
runtime's own ``GOMP_parallel`` entry point (libgomp's, which LLVM's and Intel's runtimes
provide too). Where no such runtime is found only the calling thread is set.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

_TEAM_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_LIBRARY_PATTERNS = ("libgomp*.so*", "libomp*.so*", "libiomp5*.so*", "libomp*.dylib", "libiomp5*.dylib")


@functools.cache
def _openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime torch ships and runs its kernels on (already loaded, so this
    opens the same library), or None."""
    lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
    for pattern in _LIBRARY_PATTERNS:
        for path in sorted(glob.glob(os.path.join(lib_dir, pattern))):
            try:
                runtime = ctypes.CDLL(path)
                runtime.GOMP_parallel  # noqa: B018 - the entry point must exist
                runtime.omp_get_thread_num  # noqa: B018
            except (OSError, AttributeError):
                continue
            runtime.omp_get_thread_num.restype = ctypes.c_int
            return runtime
    return None


def _on_each_team_thread(action: Callable[[int], None]) -> None:
    """``action(thread_number)`` on the calling thread (number 0) and on every other member of
    its OpenMP team, each in its own thread; only on the calling thread without a runtime."""
    runtime = _openmp_runtime()
    threads = torch.get_num_threads()
    if runtime is None or threads <= 1:
        action(0)
        return
    errors: list[BaseException] = []

    def each(_data: object) -> None:
        try:
            action(runtime.omp_get_thread_num())
        except BaseException as exc:  # noqa: BLE001 - raised again in the calling thread
            errors.append(exc)

    callback = _TEAM_CALLBACK(each)  # kept alive until the team is done with it
    runtime.GOMP_parallel(callback, None, ctypes.c_uint(threads), ctypes.c_uint(0))
    if errors:
        raise errors[0]


def _flushing_here() -> bool:
    """Whether this thread flushes subnormals (a subnormal input reads as zero)."""
    return float(torch.tensor([1e-39]) * 1.0) == 0.0


def team_flushes() -> list[bool]:
    """For each member of the calling thread's OpenMP team (the caller first): whether it
    flushes subnormals to zero."""
    seen: dict[int, bool] = {}
    lock = threading.Lock()

    def look(number: int) -> None:
        flushing = _flushing_here()
        with lock:
            seen[number] = flushing

    _on_each_team_thread(look)
    return [seen[k] for k in sorted(seen)]


@contextmanager
def denormals_flushed() -> Iterator[None]:
    """The calling thread and its OpenMP team flush subnormals inside the block; each is
    set back as it was when the block ends in the same thread (a generator closed from
    another thread leaves them flushing, which only makes later float work faster)."""
    if not _set_supported():
        yield
        return
    before = dict(enumerate(team_flushes()))
    owner = threading.get_ident()
    _on_each_team_thread(lambda _number: torch.set_flush_denormal(True))
    try:
        yield
    finally:
        if threading.get_ident() == owner and not all(before.values()):
            # Threads the team gained meanwhile were made by the caller, as it was before.
            _on_each_team_thread(lambda number: torch.set_flush_denormal(before.get(number, before[0])))


@functools.cache
def _set_supported() -> bool:
    """Whether this CPU has the flags at all (``set_flush_denormal`` says so, x86 with SSE3)."""
    flushing = _flushing_here()
    supported = torch.set_flush_denormal(True)
    torch.set_flush_denormal(flushing)
    return bool(supported)


T = TypeVar("T")
R = TypeVar("R")


def flushing_generator(events: Generator[T, None, R]) -> Generator[T, None, R]:
    """``events`` run with subnormals flushed in the thread that drives it (see
    :func:`denormals_flushed`)."""
    with denormals_flushed():
        return (yield from events)
