"""Every domain error survives pickle: the training child raises them in the server process.

The classes are found by introspection of ``app.errors`` (defined there or re-exported), so a new
one cannot be forgotten; its constructor's arguments are made from their names (a new name fails
here until it has a sample below).
"""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import pytest

import app.errors

SAMPLES: dict[str, Any] = {
    "model_id": "0123456789abcdef0123456789abcdef",
    "reason": "checksum mismatch",
    "root": "/srv/models",
    "error": OSError(28, "No space left on device"),
    "running": 2,
    "retry_after": 5,
    "errors": [{"field": f"features[{i}][0]", "message": "bad"} for i in range(30)],
    "total": 40_000,
    "content_type": "text/plain",
    "allowed": ("application/json", "text/csv"),
    "job_id": "0123456789abcdef0123456789abcdef",
    "status": "succeeded",
    "queued": 20,
    "name": "churn",
    "alias": "champion",
    "version": 3,
    "message": "alias 'champion' of 'churn' cannot be rolled back: no previous version",
    "field": "name",
    "value": "Churn!",
    "rule": "1-64 characters of a-z, 0-9",
}


def error_classes() -> list[type[BaseException]]:
    classes = {
        value
        for value in vars(app.errors).values()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    public = {cls for cls in classes if not cls.__name__.startswith("_")}
    assert public >= {getattr(app.errors, name) for name in app.errors.__all__}
    return sorted(public, key=lambda cls: cls.__name__)


def instance(cls: type[BaseException]) -> BaseException:
    if not inspect.isfunction(cls.__init__):  # BaseException's: the message
        return cls(f"a {cls.__name__}")
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    missing = [p.name for p in params if p.name not in SAMPLES]
    assert not missing, f"{cls.__name__}: add a sample for {missing}"
    args = [SAMPLES[p.name] for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    kwargs = {p.name: SAMPLES[p.name] for p in params if p.kind is p.KEYWORD_ONLY}
    return cls(*args, **kwargs)


def test_every_error_is_found():
    names = {cls.__name__ for cls in error_classes()}
    assert {"UnsupportedMediaType", "StoreWriteFailed", "InvalidData", "TrainingCrashed"} <= names


@pytest.mark.parametrize("cls", error_classes(), ids=lambda cls: cls.__name__)
def test_round_trip(cls):
    original = instance(cls)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        copy = pickle.loads(pickle.dumps(original, protocol=protocol))
        assert type(copy) is cls
        assert str(copy) == str(original) and copy.args == original.args
        assert vars(copy) == vars(original)


def test_invalid_request_keeps_its_cap_and_count():
    error = instance(app.errors.InvalidRequest)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, app.errors.InvalidRequest)
    assert len(copy.errors) == app.errors.MAX_LISTED and copy.total == 40_000
    assert str(copy).endswith(f"; and {40_000 - app.errors.MAX_IN_MESSAGE} more")
