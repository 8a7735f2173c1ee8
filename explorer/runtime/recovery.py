"""Knowing, at start-up, whether the last session crashed.

A window that opens writes a small lock file beside the autosave (its process id) and
removes it when it closes normally. If the next start finds a lock whose process is gone,
the app ended without closing (a crash, a kill, a power cut) and the autosaved run is
worth offering back. A lock held by a live process means another window is open: that is
not a crash, and its lock is left alone.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from explorer.safe_files import FileRefused, read_regular_file

MAX_LOCK_BYTES = 4096  # ours is about 20 bytes
MAX_LISTED = 10_000  # entries of the autosave folder looked at; it holds a handful


def _warn_on_stderr(message: str) -> None:
    print(f"latent-explorer: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LastSession:
    crashed: bool
    other_instance: bool


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return False
    return True


class SessionLock:
    """The crash lock. Anything may sit at its path (a FIFO, a link to ``/dev/zero``, a
    folder, a huge file), so it is read as an untrusted file (explorer.safe_files): one
    that is not a small regular file was not written by us; it is moved aside with one
    line through ``warn`` (stderr by default) and the start goes on as after a clean exit.
    The lock is written to a temporary file and renamed into place, so a FIFO or a link
    there is replaced, never written through."""

    def __init__(self, path: Path, warn: Callable[[str], None] = _warn_on_stderr) -> None:
        self.path = path
        self.held = False
        self.warn = warn
        self.notice: str | None = None  # what was said about an unusable lock, for a status line

    def acquire(self) -> LastSession:
        """Take the lock; say how the previous holder ended."""
        previous = self._read_pid()
        if previous is not None and previous > 0 and previous != os.getpid() and _alive(previous):
            return LastSession(crashed=False, other_instance=True)
        crashed = previous is not None and previous != os.getpid()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write(json.dumps({"pid": os.getpid()}).encode("utf-8"))
            self.held = True
        except OSError:
            pass  # an unwritable data folder costs crash detection, nothing else
        return LastSession(crashed=crashed, other_instance=False)

    def release(self) -> None:
        if self.held:
            try:
                self.path.unlink()
            except OSError:
                pass
            self.held = False

    def _write(self, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.path)  # replaces whatever is there, a link included, never its target
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _read_pid(self) -> int | None:
        """The previous holder's pid; None: no previous session (or an unusable lock, set
        aside); -1: a damaged lock, whose writer did not finish cleanly either."""
        try:
            raw = read_regular_file(self.path, MAX_LOCK_BYTES)
        except FileNotFoundError:
            return None
        except FileRefused as exc:
            self._set_aside(str(exc))
            return None
        try:
            pid = json.loads(raw.decode("utf-8"))["pid"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return -1
        return pid if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31 else -1  # a pid_t

    def _set_aside(self, problem: str) -> None:
        target = self.path.with_name(f"{self.path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(self.path, target)
            where = f"moved to {target.name}"
        except OSError:
            where = "left where it is"
        self.notice = f"ignored the crash lock: {problem}; {where}"
        self.warn(self.notice)


AUTOSAVE_KEEP = 5
LEGACY_AUTOSAVE = "last-run.safetensors"  # the single autosave of earlier versions


class AutosaveStore:
    """The last few runs, one autosave file each, so a new run never erases the previous
    one. Files are ``run-<time>-<n>.safetensors`` in one folder; the oldest beyond
    ``keep`` are deleted when a new run starts. A file that fails to load is set aside
    (renamed ``*.broken``) so it is never offered again."""

    def __init__(self, folder: Path, keep: int = AUTOSAVE_KEEP) -> None:
        self.folder = folder
        self.keep = keep

    def new_path(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        n = 1
        while (path := self.folder / f"run-{stamp}-{n}.safetensors").exists():
            n += 1
        return path

    def runs(self) -> list[Path]:
        """Autosaved runs, newest first: regular files only, never links or FIFOs (the
        listing reads no file; it looks at no more than MAX_LISTED entries)."""
        entries: list[tuple[float, str, Path]] = []
        try:
            with os.scandir(self.folder) as listing:
                for n, entry in enumerate(listing):
                    if n >= MAX_LISTED:
                        break
                    name = entry.name
                    if not ((name.startswith("run-") or name == LEGACY_AUTOSAVE) and name.endswith(".safetensors")):
                        continue
                    try:
                        if entry.is_file(follow_symlinks=False):
                            entries.append((entry.stat(follow_symlinks=False).st_mtime, name, Path(entry.path)))
                    except OSError:
                        continue
        except OSError:
            return []
        return [path for _, _, path in sorted(entries, reverse=True)]

    def latest(self) -> Path | None:
        runs = self.runs()
        return runs[0] if runs else None

    def prune(self, keep_also: Path | None = None) -> None:
        """Delete the oldest runs beyond ``keep`` (``keep_also`` is never deleted)."""
        for path in self.runs()[self.keep:]:
            if path != keep_also:
                try:
                    path.unlink()
                except OSError:
                    pass

    def set_aside(self, path: Path) -> Path | None:
        """Move a broken autosave out of the list; returns where it went."""
        target = path.with_name(path.name + ".broken")
        try:
            os.replace(path, target)
        except OSError:
            try:
                path.unlink()
            except OSError:
                return None
            return None
        return target
