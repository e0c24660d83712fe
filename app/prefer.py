"""The ``Prefer`` request header (RFC 7240): which preferences a request states.

``Prefer: respond-async, wait=10`` or several ``Prefer`` headers; each preference is a token,
optionally ``=value`` (a token or a quoted string), then ``;parameters``. Names are
case-insensitive; a comma or semicolon inside a quoted string is part of the value.
"""

from __future__ import annotations

from collections.abc import Iterable

RESPOND_ASYNC = "respond-async"


def _split(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside quoted strings (backslash escapes inside them)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def preferences(headers: Iterable[str]) -> dict[str, str]:
    """Preference name (lower case) -> value (``""`` when it has none), from the values of every
    ``Prefer`` header; the first of a repeated name wins (RFC 7240, section 2)."""
    found: dict[str, str] = {}
    for header in headers:
        for element in _split(header, ","):
            pref = _split(element, ";")[0]
            name, _, value = pref.partition("=")
            name = name.strip().lower()
            if not name or any(c in name for c in ' "\t'):
                continue  # empty, or not a token: ignored, as RFC 7240 asks of what it cannot read
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found.setdefault(name, value)
    return found


def prefers_async(headers: Iterable[str]) -> bool:
    """Whether the request asks ``respond-async``."""
    return RESPOND_ASYNC in preferences(headers)
