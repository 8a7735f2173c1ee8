"""Writing files so that whoever looks finds the earlier file or the complete new one.

Every file the app writes (checkpoints, ``.npy``/``.csv``/``.png`` outputs, generated
image folders) goes through here: the bytes go to a temporary file in the same folder
(``.NAME.XXXXXXXX.tmp``), are flushed and fsynced, and the temporary file is renamed over
the target in one step (``os.replace``), then the folder is fsynced. A full disk, a
failed rename, an exception or Ctrl+C in the middle removes the temporary file and leaves
an earlier file untouched. Only a hard kill (SIGKILL, power loss) can leave a stale
temporary file behind; it is never mistaken for the target, and the next write works.

:func:`check_writable` and :func:`check_writable_folder` prove a place can be written
before any work starts, with one sentence naming what is wrong. No torch, no Qt.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from explorer.errors import UserError

TEMP_SUFFIX = ".tmp"


class WriteError(UserError):
    """A file or folder that cannot be written; the message is one line."""


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask() sets the mask to read it, which is not safe while other threads create files.
_UMASK = _read_umask()


def temp_prefix(path: str | Path) -> str:
    """How the temporary files beside ``path`` start (tests look for leftovers with it); the
    name is shortened so that a target name near the file system's limit still fits."""
    return f".{Path(path).name[:100]}."


def reason(exc: OSError) -> str:
    """An OSError as a short phrase: 'No space left on device', 'Permission denied'."""
    return str(exc.strerror or exc).strip() or type(exc).__name__


def _is_symlink(path: Path) -> bool:
    try:
        return path.is_symlink()
    except (OSError, ValueError):
        return False


def _target(path: str | Path) -> Path:
    """Writing through a symlink replaces the file it points to and keeps the link."""
    path = Path(path)
    return Path(os.path.realpath(path)) if _is_symlink(path) else path


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def fsync_folder(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(name: str | Path) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def _link_no_clobber(tmp: str, path: Path) -> None:
    """Put ``tmp`` at ``path`` only if nothing is there (FileExistsError otherwise)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename (a small race)
        if os.path.lexists(path):
            raise FileExistsError(17, "File exists", str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, overwrite: bool = True, encoding: str | None = None,
                newline: str | None = None) -> Iterator[IO[Any]]:
    """A file object whose contents appear at ``path`` only if the block ends normally.

    ``mode`` is "wb" or "w". With ``overwrite=False`` an existing ``path`` is never
    replaced: FileExistsError is raised instead (and the new bytes are discarded). Any
    exception, KeyboardInterrupt included, removes the temporary file and propagates.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes new files ('wb' or 'w'), not mode {mode!r}")
    path = _target(path)
    folder = _folder(path)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=folder)
    pending: str | None = tmp
    try:
        try:
            fh = os.fdopen(fd, mode, encoding=encoding if mode == "w" else None,
                           newline=newline if mode == "w" else None)
        except BaseException:
            os.close(fd)
            raise
        with fh:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; these are ordinary files
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
        pending = None
        fsync_folder(folder)
    finally:
        if pending is not None:
            _unlink_quietly(pending)


def _failure(path: Path, exc: OSError, existed: bool) -> str:
    return (f"could not write {path}: {reason(exc)}; "
            + ("the earlier file there is untouched" if existed else "nothing was written"))


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any], *, overwrite: bool = True,
                 error: type[UserError] = WriteError) -> Path:
    """Call ``write(fh)`` on a binary file that replaces ``path`` only once it is complete.

    An OSError (a full disk, no permission, a missing folder) becomes ``error`` with one
    line saying what happened and that an earlier file is untouched. With
    ``overwrite=False`` an existing file raises FileExistsError and is left as it is.
    """
    path = Path(path)
    existed = os.path.lexists(path)
    try:
        with atomic_open(path, "wb", overwrite=overwrite) as fh:
            write(fh)
    except FileExistsError:
        if not overwrite:
            raise
        raise error(f"could not write {path}: something appeared there while writing") from None
    except OSError as exc:
        raise error(_failure(path, exc, existed)) from None
    return path


def write_bytes(path: str | Path, data: bytes, **kwargs: Any) -> Path:
    return atomic_write(path, lambda fh: fh.write(data), **kwargs)


def write_text(path: str | Path, write: Callable[[IO[str]], Any], *, newline: str | None = None,
               encoding: str = "utf-8", error: type[UserError] = WriteError) -> Path:
    """Like :func:`atomic_write` for a text file (``newline=""`` for csv)."""
    path = Path(path)
    existed = os.path.lexists(path)
    try:
        with atomic_open(path, "w", encoding=encoding, newline=newline) as fh:
            write(fh)
    except OSError as exc:
        raise error(_failure(path, exc, existed)) from None
    return path


def free_name(path: str | Path, tag: str) -> Path:
    """``NAME.TAG.EXT`` beside ``path``, or ``NAME.TAG-2.EXT``, ``-3``... where that is taken."""
    path = Path(path)
    stem = path.stem[:200]  # the tag must not push the name past the file system's limit (255)
    for k in range(1, 10_000):
        candidate = path.with_name(f"{stem}.{tag}{'' if k == 1 else f'-{k}'}{path.suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise WriteError(f"could not find a free name beside {path} (9,999 {tag} files are there)")


def write_beside(path: str | Path, write: Callable[[IO[bytes]], Any], tag: str,
                 error: type[UserError] = WriteError) -> Path:
    """Write to ``path`` if nothing is there, else to a free ``NAME.TAG.EXT`` beside it;
    nothing existing is ever replaced. Returns where the file went."""
    path = Path(path)
    candidate = path if not os.path.lexists(path) else free_name(path, tag)
    for _ in range(100):
        try:
            return atomic_write(candidate, write, overwrite=False, error=error)
        except FileExistsError:  # taken while we wrote: try the next free name
            candidate = free_name(path, tag)
    raise error(f"could not write beside {path}: every name tried was taken meanwhile")


# -- proving a place writable before work starts -----------------------------------------------


def _describe_stat_failure(what: Path, exc: OSError) -> str:
    return f"cannot write {what}: {reason(exc)}"


def _first_existing(path: Path) -> tuple[Path, os.stat_result]:
    """The nearest of ``path`` and its ancestors that exists, with its stat (WriteError if
    one cannot be looked at)."""
    if "\x00" in str(path):
        raise WriteError(f"cannot write {str(path)!r}: a file name cannot hold a NUL character")
    for candidate in (path, *path.parents):
        try:
            return candidate, os.stat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise WriteError(_describe_stat_failure(path, exc)) from None
    return Path("."), os.stat(".")


def _probe(folder: Path, path: Path) -> None:
    """Create and remove a temporary file in ``folder``: the only sure test of writing."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: no file can be created in {folder} ({reason(exc)})") from None
    os.close(fd)
    _unlink_quietly(tmp)


def check_writable(path: str | Path) -> Path:
    """Prove that a file can be written (atomically) at ``path`` before any work starts.

    Refuses, with one line each: a folder at ``path``, a device, pipe or socket there, a
    read-only file there, a missing folder, a regular file where a folder of the path should be, and a folder
    this process cannot create files in (read-only, no permission, full).
    """
    given = Path(path)
    if str(given) == "" or given.name in ("", ".", ".."):
        raise WriteError(f"cannot write {given}: that is a folder, not a file name")
    target = _target(given)
    existing, st = _first_existing(target)
    if existing == target:
        if stat.S_ISDIR(st.st_mode):
            raise WriteError(f"cannot write {given}: it is a folder; give a file name")
        if not stat.S_ISREG(st.st_mode):
            raise WriteError(f"cannot write {given}: it is not a regular file (a device, pipe or socket)")
        if not os.access(target, os.W_OK):  # a rename could replace it, but read-only means "keep"
            raise WriteError(f"cannot write {given}: the file is read-only")
        _probe(_folder(target), given)
        return given
    if not stat.S_ISDIR(st.st_mode):
        raise WriteError(f"cannot write {given}: {existing} is a file, not a folder")
    if existing != _folder(target):
        raise WriteError(f"cannot write {given}: the folder {_folder(target)} does not exist")
    _probe(existing, given)
    return given


def check_writable_folder(folder: str | Path) -> Path:
    """Prove that a new folder of files can appear at ``folder``: it is missing or an empty
    folder, no part of its path is a file, and its parent (created if missing) can take
    new entries (the folder is built beside it and renamed into place)."""
    given = Path(folder)
    target = _target(given)
    existing, st = _first_existing(target)
    if not stat.S_ISDIR(st.st_mode):
        what = "it" if existing == target else str(existing)
        raise WriteError(f"cannot write into {given}: {what} is a file, not a folder")
    if existing == target:
        try:
            occupied = any(os.scandir(target))
        except OSError as exc:
            raise WriteError(f"cannot write into {given}: {reason(exc)}") from None
        if occupied:
            raise WriteError(f"{given} already exists and is not empty; choose a new or empty folder")
        existing = _folder(target)
    try:
        tmp = tempfile.mkdtemp(prefix=temp_prefix(target), suffix=TEMP_SUFFIX, dir=existing)
    except OSError as exc:
        raise WriteError(f"cannot write into {given}: nothing can be created in {existing} ({reason(exc)})") \
            from None
    os.rmdir(tmp)
    return given


@contextlib.contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``folder`` that becomes ``folder`` (missing or empty) in
    one rename when the block ends normally; on any exception it is removed and
    ``folder`` is as it was. OSError becomes one-line :class:`WriteError`."""
    target = _target(folder)
    parent = _folder(target)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp: Path | None = Path(tempfile.mkdtemp(prefix=temp_prefix(target), suffix=TEMP_SUFFIX, dir=parent))
    except OSError as exc:
        raise WriteError(f"could not write into {folder}: {reason(exc)}") from None
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        yield tmp
        os.replace(tmp, target)  # onto a missing or empty folder; a non-empty one fails
        tmp = None
        fsync_folder(parent)
    except OSError as exc:
        raise WriteError(f"could not write into {folder}: {reason(exc)}; nothing was written there") from None
    except WriteError as exc:  # from a file written inside: name the folder, not the temporary one
        raise WriteError(str(exc).replace(str(tmp), str(target))) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
