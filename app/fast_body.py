"""Fast decoding of request bodies whose bulk is a ``features`` matrix: the engine room of
``app.decode``, its only caller. No FastAPI here.

Each function is a fast path: it returns the ``features`` that the ordinary path (``json.loads``,
as FastAPI does, then the pydantic schema) would accept, with the same float64 values bit for
bit, and the body's other fields as ``json.loads`` makes them, or ``None`` to decline.
``app.decode`` validates those fields with the schema, or, for a declined body, takes the
ordinary path, which alone words the errors: a declined body costs a second parse but never
gets a different answer.

``parse_predict`` uses simdjson (pysimdjson): it parses the body into its own tape and copies the
rows straight into a buffer of doubles, without a Python object per number (measurements:
docs/DEVELOPING.md). Its numbers are correctly rounded like
``float()`` of the text; it refuses ``NaN``/``Infinity``, numbers beyond the double range, integers
beyond 64 bits, invalid UTF-8, control characters and lone surrogates in strings, and anything
after the value (all of which the ordinary path turns into the documented 4xx or decodes itself).
``Array.as_buffer`` flattens nested arrays and refuses ``true``/``null``/strings/objects, so the
structure is proven apart: every row an array of the first row's length, the flat length
``n * w``, and exactly ``n + 1`` ``[`` bytes in the whole body (the features and its rows: no array
nested anywhere; a ``[`` inside a string only adds to the count, so it can only make this decline).

``parse_rows_body`` (training bodies, parsed in the child process) does the same, and turns the
body's other arrays and objects (labels, params...) into Python values.
"""

from __future__ import annotations

import gc
import threading
from typing import Any, cast

import numpy as np
import orjson
import simdjson

_local = threading.local()
_SMALL = 1 << 13  # below this, bytes.count (a byte at a time) beats NumPy's call overhead
_REUSE_LIMIT = 1 << 20


def _parser(size: int) -> Any:
    """A parser for a body of ``size`` bytes. A parser keeps the capacity of the largest body it
    has parsed (about twice its size), so only bodies up to ``_REUSE_LIMIT`` use this thread's
    parser (a parser cannot parse again while values of its last document are alive: one per
    thread, and ``parse_predict`` drops every value before returning); a larger body gets its
    own, freed with it, so that one huge request does not leave a worker that much bigger."""
    if size > _REUSE_LIMIT:
        return simdjson.Parser()
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    return parser


def _count_open_brackets(body: bytes) -> int:
    if len(body) < _SMALL:
        return body.count(b"[")
    return int(np.count_nonzero(np.frombuffer(body, np.uint8) == 0x5B))


def parse_predict(body: bytes) -> tuple[dict[str, Any], np.ndarray] | None:
    """``{"model_id": ..., "features": [[...]], "threshold": ...}`` -> (fields, X of shape (n, w)).

    ``fields`` holds the other keys, whose values must be strings, numbers, booleans or null;
    ``features`` is not among them. Declines (``None``) on anything but a JSON object whose
    ``features`` are ``n >= 1`` rows of ``w >= 1`` finite numbers (and, above ``SMALL_BODY``
    bytes, on duplicate keys).
    """
    return parse_small(body) if len(body) <= SMALL_BODY else parse_simdjson(body)


def parse_simdjson(body: bytes) -> tuple[dict[str, Any], np.ndarray] | None:
    """``parse_predict`` for large bodies (see the module docstring); declines duplicate keys."""
    return _with_document(body, nested=False)


def parse_rows_body(body: bytes) -> tuple[dict[str, Any], np.ndarray] | None:
    """``parse_simdjson`` for any object with a ``features`` matrix, such as training bodies,
    whose other fields may be arrays and objects (labels, params, names): those become Python
    values as ``json.loads`` makes them (simdjson's ``as_list``/``as_dict``; nested duplicate
    keys keep the last value, as there), and their arrays are counted into the ``[`` proof.
    """
    return _with_document(body, nested=True)


def _with_document(body: bytes, *, nested: bool) -> tuple[dict[str, Any], np.ndarray] | None:
    try:
        parser = _parser(len(body))
        try:
            doc = parser.parse(body)
        except RuntimeError:  # a value of the last document still alive (or a big integer)
            parser = _local.parser = simdjson.Parser()
            doc = parser.parse(body)
    except (ValueError, RuntimeError):  # not JSON simdjson accepts: the ordinary path decides
        return None
    # The row proxies are short-lived objects that refcounting frees; no collection needed.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse_document(doc, body, nested=nested)
    finally:
        del doc  # before the parser parses again
        if collecting:
            gc.enable()


def _count_lists(value: Any) -> int:
    """The JSON arrays in a value made by ``as_list``/``as_dict``, nested ones included
    (iteratively: the nesting is the client's to choose)."""
    count, stack = 0, [value]
    while stack:
        v = stack.pop()
        if type(v) is list:
            count += 1
            stack.extend([x for x in v if type(x) in (list, dict)])
        elif type(v) is dict:
            stack.extend([x for x in v.values() if type(x) in (list, dict)])
    return count


def _parse_document(
    doc: Any, body: bytes, *, nested: bool
) -> tuple[dict[str, Any], np.ndarray] | None:
    """The fields and rows of the parsed ``body`` (predict or training); ``nested``: fields other
    than ``features`` may be arrays and objects (else: declined)."""
    Array, Object = simdjson.Array, simdjson.Object
    if type(doc) is not Object:
        return None
    keys = list(doc.keys())
    if len(set(keys)) != len(keys) or "features" not in keys:
        return None  # json.loads keeps the last of duplicate keys, simdjson finds the first
    if any("\x00" in key for key in keys):
        return None  # simdjson looks keys up as C strings: "\u0000" would find "" (or nothing)
    fields: dict[str, Any] = {}
    other_arrays = 0
    for key in keys:
        if key != "features":
            value = doc[key]
            if isinstance(value, (Array, Object)):
                if not nested:
                    return None
                try:
                    plain = value.as_list() if isinstance(value, Array) else value.as_dict()
                except RecursionError:  # deeply nested: the ordinary path decides
                    return None
                other_arrays += _count_lists(plain)
                fields[key] = plain
            else:
                fields[key] = value
    rows = doc["features"]
    if type(rows) is not Array:
        return None
    n = len(rows)
    if n == 0:
        return None
    first = rows[0]
    if type(first) is not Array:
        return None
    w = len(first)
    del first
    if w == 0:
        return None
    try:
        # every row of the first row's length (a string or an object among the rows has a
        # length too, and as_buffer refuses it below)
        if set(map(len, cast(Any, rows))) != {w}:
            return None
        X = np.frombuffer(rows.as_buffer(of_type="d"), dtype=np.float64)
    except TypeError:  # a number, true/false or null among the rows; or (as_buffer) among the
        return None  # numbers: one of those, a string or an object
    del rows
    if X.size != n * w or _count_open_brackets(body) != n + 1 + other_arrays:
        return None  # an array nested in a row (as_buffer flattens it), or elsewhere
    # no finiteness check: simdjson refuses NaN, Infinity and numbers past the double range
    # (tests/api/test_fast_paths.py holds both decoders to that)
    return fields, X.reshape(n, w)


#: Bodies up to this size are parsed by ``parse_small``: simdjson's per-value proxies cost more
#: than orjson on small bodies.
SMALL_BODY = 4096


def _object_with_rows(body: bytes) -> tuple[dict[str, Any], list[Any]] | None:
    """orjson's object without its ``features``, and those (a non-empty list); else ``None``."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    rows = obj.pop("features", None)
    if type(rows) is not list or not rows:
        return None
    return obj, rows


def parse_small(body: bytes) -> tuple[dict[str, Any], np.ndarray] | None:
    """``parse_predict`` for small bodies: orjson, then a check of every value in Python.

    orjson accepts a subset of what ``json.loads`` accepts (no ``NaN``, no lone surrogates, no
    numbers beyond the double range), keeps the last of duplicate keys as ``json.loads`` does,
    and rounds numbers (integers beyond 64 bits included) as ``float()`` does.
    """
    got = _object_with_rows(body)
    if got is None:
        return None
    obj, rows = got
    if type(rows[0]) is not list:
        return None
    w = len(rows[0])
    if w == 0:
        return None
    for row in rows:
        if type(row) is not list or len(row) != w:
            return None
        for v in row:
            if type(v) is not float and type(v) is not int:  # bool, None, str, list, dict
                return None  # (orjson makes no infinity or NaN: no finiteness check)
    for v in obj.values():
        if type(v) in (list, dict):
            return None
    return obj, np.array(rows, dtype=np.float64)
