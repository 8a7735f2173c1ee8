"""The user's settings file, opened so that no file and no value can stop the window.

QSettings reads its file when it is made, so a FIFO there would hang the start and a
corrupt file would feed every reader junk. The file is checked first (a regular file of a
sane size that Qt can parse); one that is not is moved aside, with a warning for the user,
and the defaults are used. Values are read through small typed readers that fall back to
the default on anything unexpected.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

from explorer.display import one_line
from explorer.safe_files import FileRefused, check_regular_file

APP_NAME = "Latent Explorer"
MAX_SETTINGS_BYTES = 4 * 1024 * 1024  # a few KB in practice; anything near this is not ours


def settings_path() -> Path:
    """Where Qt's native format keeps them on Linux (so earlier settings carry over); the
    same ini file layout on every platform."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericConfigLocation)
    return Path(base) / APP_NAME / f"{APP_NAME}.conf"


def unusable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be our settings file, or None when it can (or does not exist).
    The file is opened the way every file read at start-up is (explorer.safe_files: no
    blocking on a FIFO, ``fstat`` on the descriptor), not merely stat'ed by name."""
    try:
        check_regular_file(path, MAX_SETTINGS_BYTES)
    except FileNotFoundError:
        return None
    except FileRefused as exc:
        return exc.reason
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    return None


def set_aside(path: Path) -> Path | None:
    """Move an unusable settings file out of the way; where it went (None: removed or stuck)."""
    target = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.replace(path, target)
        return target
    except OSError:
        try:
            os.unlink(path)
        except OSError:
            return None
        return None


def open_settings(path: Path | None = None) -> tuple[QSettings, str | None]:
    """The settings at ``path`` (the user's by default) and a warning to show, if the file
    had to be set aside."""
    path = path or settings_path()
    problem = unusable_reason(path)
    if problem is None:
        settings = QSettings(str(path), QSettings.Format.IniFormat)
        if settings.status() == QSettings.Status.NoError:
            return settings, None
        problem = "could not be parsed"
        del settings
    moved = set_aside(path)
    where = f"it was moved to {one_line(moved)}" if moved is not None else "it could not be moved"
    warning = f"The settings file {one_line(path)} {problem}; {where}, and the default settings are used."
    return QSettings(str(path), QSettings.Format.IniFormat), warning


# -- typed readers: the default on anything unexpected --------------------------------------

def read_int(settings: QSettings, key: str, default: int, lowest: int, highest: int) -> int:
    value = settings.value(key, default)
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return default
    return number if lowest <= number <= highest else default


def read_flag(settings: QSettings, key: str, default: bool) -> bool:
    value = str(settings.value(key, default)).strip().lower()
    return {"true": True, "1": True, "false": False, "0": False}.get(value, default)


def read_text(settings: QSettings, key: str, default: str = "", max_chars: int = 100_000) -> str:
    value = settings.value(key, default)
    return value if isinstance(value, str) and len(value) <= max_chars else default


def read_text_list(settings: QSettings, key: str, max_items: int, max_chars: int = 4096) -> list[str]:
    value = settings.value(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return []
    return [v for v in value if isinstance(v, str) and 0 < len(v) <= max_chars][:max_items]
