"""What JSON kobliat takes in, stores and gives back: the same limits on every path.

NUL: PostgreSQL text and jsonb cannot hold it, SQLite can. Lone surrogates: no UTF-8 text can
hold them (one backend fails to store, the other to answer). NaN and Infinity: Python's JSON
parser accepts them, PostgreSQL's jsonb does not, and answers could not carry them back.
Depth: answers nest stored values a few levels deeper, and serialising stops at ~255 levels.
Request bodies are refused (422) and webhook items are refused one by one when they break a
limit; reads replace a stored value that breaks one (stored before the limits, or by hand) with
a marker, so one row never blocks a page or the feed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import structlog

log = structlog.get_logger(__name__)
MAX_DEPTH = 64
# The key of what a read gives instead of a value it cannot serialise.
UNSERIALISABLE = "unserialisable"
_SHOWN_PATH = 6  # path elements a reason quotes: a 65-level path says nothing more
# JSON can escape them ("\\ud800"); no UTF-8 text, and so no database or answer, can hold one.
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED = re.compile("[\x00\ud800-\udfff]")  # shown as JSON escapes: answers must be UTF-8
_NOT_FINITE = "numbers must be finite (JSON has no NaN or Infinity)"
_reported: set[str] = set()
_REPORT_LIMIT = 1000


def unstorable(value: Any) -> tuple[str, tuple[str, ...]] | None:
    """Why and where a value (dataclass fields and metadata included) breaks a limit, or None."""
    found = _find(value, 0)
    if found is None:
        return None
    reason, reversed_path = found
    return reason, tuple(reversed(reversed_path))


def _find(value: Any, depth: int) -> tuple[str, list[str]] | None:
    # The path is built on the way back, only when something is found: this runs on every item.
    if depth > MAX_DEPTH:
        return f"JSON nested deeper than {MAX_DEPTH} levels", []
    if isinstance(value, str):
        return _bad_text(value)
    if isinstance(value, float):
        return None if math.isfinite(value) else (_NOT_FINITE, [])
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and (bad := _bad_text(key)) is not None:
            bad[1].append(key)
            return bad
        found = _find(item, depth + 1)
        if found is not None:
            found[1].append(str(key))
            return found
    return None


def _bad_text(text: str) -> tuple[str, list[str]] | None:
    if "\x00" in text:
        return "text must not contain NUL (U+0000)", []
    if not text.isascii() and _SURROGATE.search(text):
        return "text must not contain lone UTF-16 surrogates (U+D800 to U+DFFF)", []
    return None


# What can make a value parsed from a JSON body (or from JSON text inside one) break a limit:
# the literals NaN and Infinity and numbers past a double's range (the standard parser takes
# them), and an escaped lone surrogate. Valid escaped pairs match too: they only cost the walk.
_MAYBE_UNSTORABLE = re.compile(rb"NaN|Infinity|[eE][+-]?[0-9]{3}|\\u[dD][89a-fA-F]")


def plainly_storable(body: bytes) -> bool:
    """True when no value parsed from this JSON object body can break a limit, judged from the
    raw bytes alone (NUL aside): too few brackets to nest deep, nothing that parses to NaN,
    Infinity or a lone surrogate. False means only that the values must be walked."""
    if body.lstrip()[:1] != b"{":
        return False  # not JSON (a form): its fields are judged the long way
    brackets = body.count(b"{") + body.count(b"[")
    return brackets <= MAX_DEPTH // 2 and _MAYBE_UNSTORABLE.search(body) is None


def describe(found: tuple[str, tuple[str, ...]]) -> str:
    """A reason from `unstorable` as one line: what, and where (a long path shortened)."""
    reason, path = found
    shown = path if len(path) <= _SHOWN_PATH else (*path[:_SHOWN_PATH], "…")
    place = _ESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", ".".join(shown)) or "the top level"
    return f"{reason}; found at {place}"


def readable(value: Any, *, what: str) -> Any:
    """`value`, or a marker naming why it cannot be given back (logged once per `what`)."""
    found = unstorable(value)
    if found is None:
        return value
    reason = describe(found)
    if what not in _reported and len(_reported) < _REPORT_LIMIT:
        _reported.add(what)
        log.warning("stored value unserialisable, answered with a marker", what=what, reason=reason)
    return {UNSERIALISABLE: reason}
