"""Content types and Accept: which body a request carries, which answer it wants. Pure functions
on header values (``None`` when the header is absent); no web framework here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from .errors import UnsupportedMediaType

JSON = "application/json"
CSV = "text/csv"

BodyKind = Literal["json", "csv"]


def media_type(content_type: str | None) -> str:
    """``'Application/JSON; charset=utf-8'`` -> ``'application/json'``: the type and subtype of a
    Content-Type value, lowercased, without parameters (``''`` when none)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


@lru_cache(maxsize=256)  # a server sees a few values, asked twice per request
def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/<anything>+json``, with any parameters: what
    FastAPI parses as JSON (it reads the header with ``email.message``: exactly one ``/``)."""
    main, _, sub = media_type(content_type).partition("/")
    return main == "application" and "/" not in sub and (sub == "json" or sub.endswith("+json"))


def body_kind(content_type: str | None, *, csv: bool = True) -> BodyKind:
    """``"json"`` or ``"csv"`` (``text/csv``, when ``csv``); else ``UnsupportedMediaType``
    naming the types the route reads."""
    if is_json(content_type):
        return "json"
    if csv and media_type(content_type) == CSV:
        return "csv"
    raise UnsupportedMediaType(media_type(content_type), (JSON, CSV) if csv else (JSON,))


def wants_csv(accept: str | None) -> bool:
    """True when an Accept header prefers ``text/csv`` to JSON (JSON wins ties it names)."""
    if not accept or CSV not in accept.lower():
        return False  # the common case, without parsing: no text/csv, no CSV answer
    quality: dict[str, float] = {}
    for part in (accept or "").split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        quality[media] = max(quality.get(media, 0.0), q)
    csv_q = quality.get(CSV, 0.0)
    json_q = quality.get(JSON, 0.0)
    other_q = max(quality.get("application/*", 0.0), quality.get("*/*", 0.0))
    return csv_q > 0 and csv_q > json_q and csv_q >= other_q
