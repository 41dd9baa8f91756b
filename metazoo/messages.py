"""Wording shared by every layer's errors: an error echoes what it was given, but never much.

A config with two million unknown keys, or one key a megabyte long, must still give an error
of one short line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def brief(items: Iterable[Any], limit: int = 5, width: int = 60, separator: str = ", ") -> str:
    """``items`` joined by ``separator``: at most ``limit`` of them, each cut to ``width``
    characters, then how many more there are.

    >>> brief(["a", "b", "c"], limit=2)
    'a, b and 1 more'
    """
    items = list(items)
    shown = [_cut(item if isinstance(item, str) else repr(item), width) for item in items[:limit]]
    more = f" and {len(items) - limit:,} more" if len(items) > limit else ""
    return separator.join(shown) + more


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line, whatever the input held
    return text if len(text) <= width else text[:width - 1] + "…"
