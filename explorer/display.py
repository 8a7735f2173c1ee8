"""Text for people: from files and folders, made safe to show (one line, no control
characters); and words that agree with what they name (an ae, a vae; 1 step, 2 steps)."""

from __future__ import annotations

import re

MAX_SHOWN = 200


def one_line(text: object, limit: int = MAX_SHOWN) -> str:
    """``text`` on one line with control characters (newlines, ANSI escapes) shown escaped,
    and cut to ``limit`` characters: a file name or class name must not rewrite the
    window's text or the terminal."""
    s = str(text)
    cleaned = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in s)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


# Words read letter by letter or otherwise starting with a vowel sound though spelt with a
# consonant (an MLP, an FID), and the reverse (a user, a one-off, a uint8 image).
_AN_INITIALS = frozenset({"fid", "fmnist", "hdf5", "honest", "hour", "lstm", "mlp", "mnist", "mse", "nan", "onnx",
                          "rbm", "rgb", "sgd", "svg", "x", "xcb"})
_A_PREFIXES = ("eu", "one", "once", "uint", "uni", "usa", "use", "usu", "uti")


def article(word: object) -> str:
    """``a`` or ``an`` for ``word`` as it is read out: an ae, a vae, an MLP, a uint8 image."""
    first = re.split(r"[\s\-_/(),.:;]", str(word).strip().lower(), maxsplit=1)[0]
    if first in _AN_INITIALS or first.startswith("8") or first in ("11", "18"):
        return "an"
    if first.startswith(_A_PREFIXES):
        return "a"
    return "an" if first[:1] in ("a", "e", "i", "o", "u") else "a"


def with_article(word: object) -> str:
    """``word`` after its article: ``with_article("ae")`` is ``"an ae"``."""
    return f"{article(word)} {word}"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``count`` and ``noun`` agreeing: 1 step, 2 steps, 1,000 images, 1 entry, 2 entries.
    ``nouns`` gives any other plural (``plural(n, "batch", "batches")``)."""
    if count == 1:
        return f"1 {noun}"
    if nouns is None:
        if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
            nouns = noun[:-1] + "ies"
        elif noun.endswith(("s", "x", "z")):
            nouns = noun + "es"
        else:
            nouns = noun + "s"
    return f"{count:,} {nouns}"
