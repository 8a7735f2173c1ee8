"""Recognising "out of memory", whichever allocator ran out, and saying what to try.

The CLI and the training worker both turn an exhausted allocator into advice instead of
a traceback. They share this module so that both know every form it takes: Python's
``MemoryError``, the CPU allocator's ``RuntimeError`` ("DefaultCPUAllocator: can't
allocate memory"), an ``OSError`` with ENOMEM, and the GPU backends' ``RuntimeError``
("CUDA out of memory", torch.OutOfMemoryError, "MPS backend out of memory"). No torch
import, so the CLI can use it at any point.
"""

from __future__ import annotations

import errno

# Lower-case pieces of the messages torch's host allocator raises.
_HOST_MARKERS = ("can't allocate memory", "cannot allocate memory")
# ...and its accelerators' (CUDA, HIP, MPS, XPU).
_DEVICE_MARKERS = ("out of memory",)


def _is_host(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _HOST_MARKERS)


def _is_device(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _DEVICE_MARKERS)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means an allocator ran out of memory (host or accelerator)."""
    return _is_host(exc) or _is_device(exc)


def out_of_memory_message(exc: BaseException, smaller_batch: str = "a smaller batch size",
                          fewer_images: str = "fewer training images", sentences: bool = False) -> str:
    """Advice for an out-of-memory ``exc``, in the caller's words for its two knobs.

    Host memory holds the whole dataset as well as the batch, so both knobs help there; on
    an accelerator the batch's activations are what usually overflow. ``sentences`` gives
    capitalised sentences (the window's dialogs) instead of the CLI's one clause.
    """
    if _is_device(exc) and not _is_host(exc):
        what, advice = "the device ran out of memory", f"try {smaller_batch}"
    else:
        what, advice = "out of memory", f"try {smaller_batch} or {fewer_images}"
    if sentences:
        return f"{what[0].upper()}{what[1:]}. {advice[0].upper()}{advice[1:]}."
    return f"{what}; {advice}"
