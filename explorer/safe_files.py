"""Reading a small file that anyone may have put in its place, without hanging or filling memory.

The app reads a few files it did not necessarily write itself as it starts: the crash lock,
the settings file, a start-up trace. A FIFO at such a path blocks a plain ``open()``
forever (the window never shows), and a link to ``/dev/zero`` reads until memory runs out.
So these files are opened with ``O_NONBLOCK`` (a FIFO without a writer cannot hang the
open), checked with ``fstat`` on the descriptor itself (no race with a file swapped in
between), refused unless they are regular files of a bounded size, and read no further
than that bound. No torch, no Qt: the entry points use it before anything heavy is loaded.

A missing file raises the usual :class:`FileNotFoundError`, so callers can tell "absent"
from "unusable"; everything else is a :class:`FileRefused` whose message is one line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

READ_CHUNK = 1024 * 1024

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class FileRefused(OSError):
    """A file that is not a regular file of a sane size, or cannot be read. ``reason`` is
    the phrase without the path ('is a FIFO, not a regular file'); ``str()`` is one line
    with the path."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.message = f"{_shown(Path(path))} {reason}"
        super().__init__(self.message)
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return self.message


def kind(mode: int) -> str:
    """What a non-regular file is, in words ('a FIFO', 'a folder', ...)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def size_text(n: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _shown(path: Path) -> str:
    """The path on one line (a name may hold newlines or control characters)."""
    return ascii(str(path))[1:-1] if not str(path).isprintable() else str(path)


def open_regular(path: str | os.PathLike[str], max_bytes: int) -> tuple[int, int]:
    """A read-only descriptor of ``path`` and its size, only when it is a regular file of
    at most ``max_bytes``. The caller closes the descriptor."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise FileRefused(path, "is a folder, not a regular file") from None
    except OSError as exc:
        raise FileRefused(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(path, f"is {kind(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise FileRefused(path, f"is {size_text(info.st_size)}, more than the "
                              f"{size_text(max_bytes)} such a file can be")
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def read_up_to(fd: int, n: int, path: str | os.PathLike[str] = "the file") -> bytes:
    """At most ``n`` bytes from ``fd`` (fewer only at the end of the file), never more."""
    chunks, left = [], n
    try:
        while left > 0:
            chunk = os.read(fd, min(left, READ_CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except BlockingIOError:
        raise FileRefused(path, "cannot be read (it gives no data without waiting)") from None
    except OSError as exc:
        raise FileRefused(path, f"cannot be read ({exc.strerror or exc})") from None
    return b"".join(chunks)


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``max_bytes``. A file that grows
    past the bound while it is read (or a /proc file that says it is empty) is refused too."""
    fd, _ = open_regular(path, max_bytes)
    try:
        data = read_up_to(fd, max_bytes + 1, path)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise FileRefused(path, f"is more than the {size_text(max_bytes)} such a file can be")
    return data


def check_regular_file(path: str | os.PathLike[str], max_bytes: int) -> None:
    """Raise unless ``path`` is a readable regular file of at most ``max_bytes`` (for a file
    another library then reads itself, such as QSettings' ini file)."""
    fd, _ = open_regular(path, max_bytes)
    os.close(fd)
