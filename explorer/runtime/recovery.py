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
import time
from dataclasses import dataclass
from pathlib import Path


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
    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False

    def acquire(self) -> LastSession:
        """Take the lock; say how the previous holder ended."""
        previous = self._read_pid()
        if previous is not None and previous > 0 and previous != os.getpid() and _alive(previous):
            return LastSession(crashed=False, other_instance=True)
        crashed = previous is not None and previous != os.getpid()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"pid": os.getpid()}), encoding="utf-8")
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

    def _read_pid(self) -> int | None:
        try:
            pid = json.loads(self.path.read_text(encoding="utf-8"))["pid"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return -1  # a damaged lock: its writer did not finish cleanly either
        return pid if isinstance(pid, int) and pid > 0 else -1


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
        """Autosaved runs, newest first (regular files only)."""
        try:
            entries = [p for p in self.folder.iterdir()
                       if (p.name.startswith("run-") or p.name == LEGACY_AUTOSAVE)
                       and p.name.endswith(".safetensors") and p.is_file() and not p.is_symlink()]
        except OSError:
            return []

        def mtime(p: Path) -> float:
            try:
                return p.stat().st_mtime
            except OSError:
                return 0.0

        return sorted(entries, key=lambda p: (mtime(p), p.name), reverse=True)

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
