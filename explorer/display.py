"""Text from files and folders, made safe to show: one line, no control characters."""

from __future__ import annotations

MAX_SHOWN = 200


def one_line(text: object, limit: int = MAX_SHOWN) -> str:
    """``text`` on one line with control characters (newlines, ANSI escapes) shown escaped,
    and cut to ``limit`` characters: a file name or class name must not rewrite the
    window's text or the terminal."""
    s = str(text)
    cleaned = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in s)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
