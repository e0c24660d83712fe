"""Request bytes -> validated request, for every path: the predict route and its front layer, and
the training child. No web framework here; errors are those of ``app.errors``.

JSON bodies go to the fast decoders of ``app.fast_body`` first: they turn the ``features``
matrix into one float64 array and hand back the other fields, or decline. The other fields are
then validated by the request's own schema, with a one-row placeholder for ``features``: what
the fast decoder proved is not checked again. A body it declines takes the ordinary path, which
is FastAPI's for a ``body: Model`` parameter (``json.loads``, then the schema); either way a bad
request gets the documented error. CSV bodies are read by ``app.csv_io``; their options come as
query parameters, which are refused beside a JSON body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError, create_model

from . import csv_io, fast_body, media
from .errors import MAX_LISTED, InvalidRequest, MalformedJSON, UnsupportedMediaType
from .schemas import (
    CsvEvaluateOptions,
    CsvPredictOptions,
    CsvTrainOptions,
    DatasetEvaluateRequest,
    DatasetTrainRequest,
    EvaluateRequest,
    Number,
    PredictRequest,
    TrainParams,
    TrainRequest,
    is_flat,
)

M = TypeVar("M", bound=BaseModel)
#: Query parameters as sent, repeated names included (Starlette's ``multi_items()``).
Query = Sequence[tuple[str, str]]

#: Union branch names that pydantic adds to an error's location.
_BRANCHES = frozenset({"int", "str", "float", "constrained-str", "function-after[...]"})


class PredictInput(NamedTuple):
    """A decoded JSON predict body."""

    model_id: str  # the reference as sent (an id, or ``latest``)
    X: np.ndarray  # (n_samples, n_features) float64, finite
    threshold: float | None
    explain: bool = False


# ---- errors --------------------------------------------------------------------------------


def field_path(loc: Sequence[Any]) -> str:
    """``('body', 'features', 3, 2)`` -> ``features[3][2]``."""
    out = ""
    for p in loc:
        if p == "body" or p in _BRANCHES:
            continue
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or "body"


def request_error(errors: Sequence[Mapping[str, Any]]) -> MalformedJSON | InvalidRequest:
    """The domain error for a list of pydantic's (or FastAPI's) errors: ``MalformedJSON`` for a
    ``json_invalid`` one, else ``InvalidRequest``."""
    for e in errors:
        if e.get("type") == "json_invalid":
            return MalformedJSON((e.get("ctx") or {}).get("error", "invalid JSON"))
    return invalid_request(errors)


def invalid_request(errors: Iterable[Mapping[str, Any]]) -> InvalidRequest:
    """``InvalidRequest`` for pydantic-style errors (``loc``, ``msg``): one item per field and
    message, in order."""
    items: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for e in errors:
        msg = str(e.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            # our own model validators name the field in the message
            msg = msg.removeprefix("Value error, ")
            field, _, rest = msg.partition(": ")
            key = (field, rest) if rest else (field_path(e.get("loc", ())), msg)
        else:
            key = (field_path(e.get("loc", ())), msg)
        if key not in seen:
            seen.add(key)
            items.append({"field": key[0], "message": key[1]})
    return InvalidRequest(items)


def invalid(exc: ValidationError, prefix: tuple[str, ...] = ("body",)) -> InvalidRequest:
    """``InvalidRequest`` for pydantic's errors on a value found at ``prefix``."""
    return invalid_request(
        {**e, "loc": (*prefix, *e["loc"])} for e in exc.errors(include_url=False)
    )


# ---- the ordinary path ---------------------------------------------------------------------


def json_document(body: bytes) -> Any:
    """``json.loads`` of a JSON body, as FastAPI does it; ``MalformedJSON`` when it fails."""
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:  # found by the fuzzer: not UTF-8 at all is malformed JSON
        raise MalformedJSON(f"not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise MalformedJSON(exc.msg) from None
    except Exception:  # anything else json.loads may raise (RecursionError on deep nesting)
        raise MalformedJSON() from None


def validate(body: bytes, model: type[M], **kw: Any) -> M:
    """FastAPI's handling of a ``body: model`` parameter on a JSON body: ``json.loads``, then
    presence and validation (``InvalidRequest`` with locations under ``body``). ``kw`` goes to
    ``model_validate`` (e.g. a ``context``)."""
    if not body:
        raise InvalidRequest([{"field": "body", "message": "Field required"}])
    document = json_document(body)
    rows = document.get("features") if type(document) is dict else None
    if type(rows) is list and len(rows) > ROWS_PER_CALL and not is_flat(rows):
        check_many_rows(rows)  # a flat list is one error, the schema's
    try:
        return model.model_validate(document, from_attributes=True, **kw)
    except ValidationError as exc:
        raise invalid(exc) from None


#: ``features`` longer than this are validated this many rows per pydantic call.
ROWS_PER_CALL = 1024
_ROWS: TypeAdapter[list[list[Number]]] = TypeAdapter(list[list[Number]])


def check_many_rows(rows: list[Any]) -> None:
    """``InvalidRequest`` for bad cells of a long ``features``, at a cost bounded by the body.

    pydantic validates the rows ``ROWS_PER_CALL`` at a time (the GIL is let go between calls)
    until ``MAX_LISTED`` errors are found; the rest are then only counted, by type, without an
    error object each (one per bad cell made gigabytes of them: docs/DEVELOPING.md).
    """
    listed: list[dict[str, Any]] = []
    rest = 0
    for start in range(0, len(rows), ROWS_PER_CALL):
        chunk = rows[start : start + ROWS_PER_CALL]
        if len(listed) >= MAX_LISTED:
            rest += sum(_bad_cells(row) for row in chunk)
            continue
        try:
            _ROWS.validate_python(chunk)
        except ValidationError as exc:
            for e in exc.errors(include_url=False):
                i, *tail = e["loc"]
                listed.append({**e, "loc": ("body", "features", start + int(i), *tail)})
    if listed:
        error = invalid_request(listed)
        raise InvalidRequest(error.errors, total=error.total + rest)


def _bad_cells(row: Any) -> int:
    """How many errors pydantic would find in a row: 1 for a row that is not a list, else its
    cells that are not finite numbers (booleans are not numbers)."""
    if type(row) is not list:
        return 1
    return sum(1 for v in row if not (type(v) is int or (type(v) is float and math.isfinite(v))))


#: What ``features`` is while the other fields are validated (pydantic copies, never mutates).
_PLACEHOLDER = [[0.0]]


def _with_rows(fields: dict[str, Any], X: np.ndarray, model: type[M]) -> M:
    """``model`` from the fields the fast decoder handed back; ``features`` a placeholder, and
    the real shape in the validation context."""
    try:
        return model.model_validate(
            {**fields, "features": _PLACEHOLDER}, context={"shape": X.shape}
        )
    except ValidationError as exc:
        raise invalid(exc) from None


# ---- query parameters ----------------------------------------------------------------------


def check_query(content_type: str | None, query: Query) -> None:
    """``InvalidRequest`` naming ``query.<name>`` for query parameters sent with a body that is
    not CSV: they are the options of a CSV body; a JSON body carries its own (``params``,
    ``model_id``), and a setting silently ignored would be worse than one refused."""
    if not query or media.media_type(content_type) == media.CSV:
        return
    raise invalid_request(
        {
            "loc": ("query", key),
            "msg": "query parameters are read only with a text/csv body; in a JSON body, "
            "send this in the body instead",
        }
        for key, _ in query
    )


def check_request(content_type: str | None, query: Query) -> media.BodyKind:
    """What a ``/train`` or ``/predict`` request's headers and query decide before its body is
    read: ``UnsupportedMediaType``, or query parameters refused beside a JSON body."""
    kind = media.body_kind(content_type)
    check_query(content_type, query)
    return kind


def query_options(query: Query, model: type[M], *, text: Iterable[str] = ()) -> M:
    """``model`` from query parameters (the last of a repeated name); ``InvalidRequest`` naming
    ``query.<name>`` when one is wrong or unknown.

    Values are read as JSON where they parse as JSON (``2000``, ``0.001``, ``true``, ``null``)
    and as text otherwise; the parameters named in ``text`` are always text.
    """
    text = set(text)
    values: dict[str, Any] = {}
    for key, value in query:
        if key in text:
            values[key] = value
            continue
        try:
            values[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            values[key] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise invalid(exc, ("query",)) from None


def train_options(query: Query) -> tuple[CsvTrainOptions, TrainParams]:
    """``?label=&name=`` and every ``params`` field (``?max_iter=2000&l2=0.001``)."""
    own = [(k, v) for k, v in query if k in CsvTrainOptions.model_fields]
    rest = [(k, v) for k, v in query if k not in CsvTrainOptions.model_fields]
    options = query_options(own, CsvTrainOptions, text=CsvTrainOptions.model_fields)
    return options, query_options(rest, TrainParams)


def predict_options(query: Query) -> CsvPredictOptions:
    """``?model_id=&threshold=`` of a CSV predict body (the rows need the model: ``csv_io``)."""
    return query_options(query, CsvPredictOptions, text=["model_id"])


# ---- the requests --------------------------------------------------------------------------


def decode_predict(
    content_type: str | None, body: bytes, query: Query = (), *, fast: bool = True
) -> PredictInput:
    """A JSON predict body (CSV ones: ``predict_options``, then ``csv_io.read_features``):
    the fast decoder, then, if it declines (or ``fast`` is false: it already has), the
    ordinary path, which alone words the errors.

    Raises ``UnsupportedMediaType``, ``InvalidRequest`` (also for query parameters) or
    ``MalformedJSON``.
    """
    got = decode_predict_fast(content_type, body, query) if fast else None
    if got is not None:
        return got
    request = validate(body, PredictRequest)
    return PredictInput(
        request.model_id,
        np.asarray(request.features, dtype=np.float64),
        request.threshold,
        request.explain,
    )


def decode_predict_fast(
    content_type: str | None, body: bytes, query: Query = ()
) -> PredictInput | None:
    """``decode_predict`` by the fast decoder alone; ``None`` where it declines."""
    if check_request(content_type, query) != "json":
        raise UnsupportedMediaType(media.CSV, (media.JSON,))  # the caller reads CSV itself
    return decode_json_fast(body)


def decode_json_fast(body: bytes) -> PredictInput | None:
    """``decode_predict_fast`` of a body its caller knows is JSON, sent without query
    parameters (``check_request`` passed)."""
    parsed = fast_body.parse_predict(body)
    if parsed is None:
        return None
    fields, X = parsed
    model_id, threshold, explain = predict_fields(fields)
    return PredictInput(model_id, X, threshold, explain)


def predict_fields(fields: dict[str, Any]) -> tuple[str, float | None, bool]:
    """``(model_id, threshold, explain)`` of a predict body's fields beside its rows (strings,
    numbers, booleans or null: ``fast_body`` declines the rest), validated by the schema.

    Clients send the same few field sets over and over: a valid set is remembered (up to
    ``FIELDS_MEMO_SIZE``), keyed by each value's type as well, since ``1``, ``1.0`` and ``True``
    are equal keys. An invalid set is validated each time it comes, for its error.
    """
    key = tuple([(name, type(value), value) for name, value in fields.items()])
    known = _FIELDS_MEMO.get(key)
    if known is not None:
        return known
    try:
        request: Any = _VALIDATE_PREDICT_FIELDS(fields)  # model_validate, one call fewer
    except ValidationError as exc:
        raise invalid(exc) from None
    known = (request.model_id, request.threshold, request.explain)
    if len(_FIELDS_MEMO) >= FIELDS_MEMO_SIZE:
        _FIELDS_MEMO.clear()  # many distinct sets: start over (a set is cheap to validate again)
    _FIELDS_MEMO[key] = known
    return known


def _without_features(model: type[M]) -> type[BaseModel]:
    """``model``'s own fields and configuration, ``features`` left out: for the fields beside
    rows that the fast decoder has already proven (a list of equal-width rows of finite
    numbers), so that the one definition of each field also checks the fast path's, without
    building a placeholder for ``features`` and running the row validators on it (~3 us of a
    ~25 us prediction)."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in model.model_fields.items()
        if name != "features"
    }
    return create_model(f"{model.__name__}Fields", __config__=model.model_config, **fields)


_PREDICT_FIELDS = _without_features(PredictRequest)
_VALIDATE_PREDICT_FIELDS = _PREDICT_FIELDS.__pydantic_validator__.validate_python
FIELDS_MEMO_SIZE = 1024
_FIELDS_MEMO: dict[tuple[tuple[str, type, Any], ...], tuple[str, float | None, bool]] = {}


def decode_train_csv(
    body: bytes, query: Query, *, max_features: int | None = None
) -> tuple[TrainRequest, np.ndarray]:
    """A ``text/csv`` training body, its options in ``query``: the request (``features`` a
    placeholder) and the rows. Raises ``CsvError``, ``InvalidRequest`` (``query.<name>``), or
    ``LimitExceeded`` for a header of more than ``max_features`` features."""
    options, params = train_options(query)
    table = csv_io.read_training(body, label=options.label, max_features=max_features)
    stub = {
        "labels": table.labels,
        "feature_names": table.feature_names,
        "name": options.name,
        "params": params,
    }
    # csv_io checks first, naming lines; the schema is a backstop
    return _with_rows(stub, table.X, TrainRequest), table.X


def names_dataset(body: bytes) -> bool:
    """Whether a JSON training body may be a training from a dataset (``"dataset"`` appears in
    it): such bodies are small, and their training runs in a child process whatever their size."""
    return b'"dataset"' in body


def _dataset_form(body: bytes, model: type[M]) -> M | None:
    """``model`` validated from a JSON body that names a dataset (``{"dataset": ...}``), or
    ``None`` for any other body; ``InvalidRequest`` when it names one but does not validate."""
    if not names_dataset(body):
        return None
    document = json_document(body)
    if type(document) is not dict or "dataset" not in document:
        return None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise invalid(exc) from None


def decode_train(
    content_type: str | None, body: bytes, query: Query = (), *, max_features: int | None = None
) -> tuple[TrainRequest | DatasetTrainRequest, np.ndarray | None]:
    """The validated training request and, when decoded apart, its rows (else ``None``: they
    are ``request.features``, or in a dataset). ``max_features``: checked on a CSV header
    before anything else.

    Raises ``UnsupportedMediaType``, ``InvalidRequest``, ``MalformedJSON``, ``CsvError`` or
    ``LimitExceeded``.
    """
    if check_request(content_type, query) == "csv":
        return decode_train_csv(body, query, max_features=max_features)
    trained = _dataset_form(body, DatasetTrainRequest)
    if trained is not None:
        return trained, None
    parsed = fast_body.parse_rows_body(body)
    if parsed is not None:
        fields, X = parsed
        return _with_rows(fields, X, TrainRequest), X
    return validate(body, TrainRequest), None


class EvaluateInput(NamedTuple):
    """A decoded ``POST /models/{ref}/evaluate`` body."""

    X: np.ndarray  # (n_samples, n_features) float64, finite
    labels: list[Any]
    threshold: float | None
    positive_label: Any
    header: list[str] | None  # CSV: the names of X's columns, to match the model's (else None)
    raw_labels: list[str] | None = None  # CSV: the label cells as written


def decode_dataset_evaluate(content_type: str | None, body: bytes) -> DatasetEvaluateRequest | None:
    """The ``{"dataset": id, "label": column}`` form of an evaluation body, or ``None`` for
    any other body (rows, CSV)."""
    if media.media_type(content_type) != media.JSON:
        return None
    return _dataset_form(body, DatasetEvaluateRequest)


def decode_evaluate(
    content_type: str | None,
    body: bytes,
    query: Query = (),
    *,
    max_features: int | None = None,
    ordinary: bool = True,
) -> EvaluateInput | None:
    """An evaluation body: JSON (``EvaluateRequest``: the fast decoder of training bodies, then
    the schema, or the ordinary path), or CSV with its options (``?label=&threshold=``) in
    ``query``. Raises what ``decode_train`` raises. ``ordinary=False``: ``None`` for a JSON body
    the fast decoder declines (the caller runs the ordinary path elsewhere)."""
    if check_request(content_type, query) == "csv":
        options = query_options(query, CsvEvaluateOptions, text=["label"])
        table = csv_io.read_training(body, label=options.label, max_features=max_features)
        return EvaluateInput(
            table.X,
            table.labels,
            options.threshold,
            options.positive_label,
            table.feature_names,
            table.raw_labels,
        )
    parsed = fast_body.parse_rows_body(body)
    if parsed is not None:
        fields, X = parsed
        request = _with_rows(fields, X, EvaluateRequest)
    elif not ordinary:
        return None
    else:
        request = validate(body, EvaluateRequest)
        X = np.asarray(request.features, dtype=np.float64)
    return EvaluateInput(X, request.labels, request.threshold, request.positive_label, None)
