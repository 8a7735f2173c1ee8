"""JSON from a file nobody vouches for, parsed only when it is shallow enough.

Python's ``json`` parser recurses once per nested array or object, so ``[[[[...`` a hundred
thousand deep is a RecursionError traceback rather than a parse error. :func:`json_depth`
measures the nesting first, in linear time whatever the text holds, so a hostile file costs
no more than reading it. The checkpoint loader (``training``) and the folder cache
(``data``) both use it; numpy only, no torch, no Qt.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

# A string, or an unterminated one up to the end. Every quote that starts a match matches at
# once, so the engine never retries from inside a string: requiring the closing quote made it
# rescan to the end from each quote of '"\"\"\"...', and 160,000 of them took five minutes.
_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S]?[^"\\]*)*(?:"|\Z)')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """How deep ``text``'s arrays and objects nest, found without parsing it (strings are
    cut out first, then the brackets counted with numpy): linear time, fast on megabytes.
    Brackets after an unterminated string are not counted; the parser refuses such text
    before it could recurse into them."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int64)
    return int(np.cumsum(steps).max())


def loads_bounded(text: str, max_depth: int) -> Any:
    """``json.loads(text)`` for text nested at most ``max_depth`` deep; ValueError (one
    line) for deeper or malformed text, never a RecursionError."""
    # Fewer brackets in all than the limit cannot nest deeper: no need to measure (a cache's
    # meta.json of 200,000 names takes 2 ms to count, 40 ms to measure).
    opening = text.count("[") + text.count("{")
    depth = opening if opening <= max_depth else json_depth(text)
    if depth > max_depth:
        raise ValueError(f"nested {depth:,} deep, more than the {max_depth} allowed")
    try:
        return json.loads(text)
    except RecursionError:  # cannot happen below the depth checked; kept as a last guard
        raise ValueError("nested too deep to parse") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({str(exc).splitlines()[0][:120]})") from None
