"""One training, from the request's bytes to the stored model: runs in a training child process
(or a thread, for small bodies). No FastAPI at import time: a spawned child imports this module
before its initializer has limited the BLAS threads, so heavy imports happen inside functions.
"""

from __future__ import annotations

import contextlib
import os
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .config import Settings
    from .schemas import TrainRequest

#: Environment variables that fix the thread pools of OpenBLAS, OpenMP and MKL.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


#: Niceness of training children: what they get where Linux's SCHED_IDLE (below) is missing.
CHILD_NICENESS = 19


def lowest_priority(pid: int = 0) -> None:
    """Give process ``pid`` (0: this one) Linux's SCHED_IDLE policy: it gets a core almost only
    when nothing else wants one (a weight of 3 against 1,024 at nice 0), any waking request
    handler takes the core from it at once, and its I/O gets the idle class. Nice 19 alone still
    left it a share of the CPU: the predict p99 of 1-s windows during a big fit was 2.9-3.9 ms
    at nice 19, 2.4-2.7 with SCHED_IDLE (idle: 2.0-2.5; docs/DEVELOPING.md). The price: on a
    saturated server a training barely moves, and holds its slot meanwhile. No privilege is
    needed to lower a priority; where the policy is missing or refused, niceness is all there is.
    """
    if hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):  # also ProcessLookupError: the child already left
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


class IdleSpawnProcess(SpawnProcess):
    """A spawned process that its parent gives the lowest priority as soon as it exists:
    Python's start-up and imports in the child (~0.15 s of a core) run before any initializer
    of the child could lower it."""

    def start(self) -> None:
        super().start()
        if self.pid is not None:
            lowest_priority(self.pid)


class IdleSpawnContext(SpawnContext):
    """The ``spawn`` start method, with ``IdleSpawnProcess``: the context of the training pool."""

    Process = IdleSpawnProcess


def init_child() -> None:
    """Training children use one BLAS thread and the lowest CPU priority: the server's cores
    belong to the predictions first."""
    for var in BLAS_THREAD_VARS:
        os.environ[var] = "1"
    os.nice(CHILD_NICENESS)
    lowest_priority()


def decode_csv(body: bytes, query: dict[str, str]) -> tuple[TrainRequest, np.ndarray]:
    """A ``text/csv`` body, its options in ``query``: the request (``features`` a placeholder)
    and the rows. Raises ``CsvError`` or ``RequestValidationError`` (``query.<name>``)."""
    from pydantic import ValidationError

    from . import csv_io
    from .api.body import validation_error
    from .api.csv_body import train_options
    from .schemas import TrainRequest

    options, params = train_options(query)
    table = csv_io.read_training(body, label=options.label)
    stub = {
        "features": [[0.0] * table.X.shape[1]],
        "labels": table.labels,
        "feature_names": table.feature_names,
        "name": options.name,
        "params": params,
    }
    try:
        return TrainRequest.model_validate(stub, context={"shape": table.X.shape}), table.X
    except ValidationError as exc:  # csv_io checks first, naming lines; this is a backstop
        raise validation_error(exc) from None


def decode_train(
    content_type: str | None, body: bytes, query: dict[str, str] | None = None
) -> tuple[TrainRequest, np.ndarray | None]:
    """The validated request and, when decoded apart, its rows (else ``None``).

    Raises what FastAPI would for a ``body: TrainRequest`` parameter (``RequestValidationError``,
    ``UnsupportedMediaType``); for ``text/csv``, see ``decode_csv``.
    """
    from pydantic import ValidationError

    from .api.body import validate_body
    from .api.deps import body_kind
    from .fast_body import parse_rows_body
    from .schemas import TrainRequest

    if body_kind(content_type) == "csv":
        return decode_csv(body, query or {})

    if content_type == "application/json":
        parsed = parse_rows_body(body)
        if parsed is not None:
            fields, X = parsed
            try:
                stub = {**fields, "features": [[0.0] * X.shape[1]]}
                return TrainRequest.model_validate(stub, context={"shape": X.shape}), X
            except ValidationError:
                pass  # the full path below names the problem
    return validate_body(content_type, body, TrainRequest), None


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def train_from_body(
    settings: Settings,
    content_type: str | None,
    body: bytes | str,
    query: dict[str, str] | None = None,
) -> Any:
    """Decode, validate, fit and save. ``body``: the bytes, or the path of a file holding them
    (read, then deleted); ``query``: the request's query parameters (the options of a CSV body).

    Returns ``("ok", summary dict)``, ``("invalid", errors)`` (for a 422/400),
    ``("media", content_type)`` (415) or ``("raise", exception)`` for domain errors, so that
    nothing unpicklable crosses the process boundary and the web layer maps each as before.
    """
    from fastapi.exceptions import RequestValidationError

    from model_store import JsonFileStore

    from .engine import EngineError
    from .errors import CsvError, LimitExceeded, UnsupportedMediaType
    from .service import ModelService

    if isinstance(body, str):
        with open(body, "rb") as fh:
            path, body = body, fh.read()
        # Freeing the file's pages takes tens of ms of a core for a big body: done here, at the
        # child's priority, not by the worker (which still removes it if the child never got here).
        with contextlib.suppress(OSError):
            os.unlink(path)
    try:
        request, X = decode_train(content_type, body, query)
        del body
        service = ModelService(JsonFileStore(settings.model_store_dir, create=False), settings)
        return ("ok", service.train(request, X).model_dump(mode="json"))
    except RequestValidationError as exc:
        errors = [
            {
                "type": e.get("type"),
                "loc": tuple(e.get("loc", ())),
                "msg": e.get("msg"),
                "ctx": {k: _plain(v) for k, v in (e.get("ctx") or {}).items()},
            }
            for e in exc.errors()
        ]
        return ("invalid", errors)
    except UnsupportedMediaType:
        return ("media", content_type)
    except (EngineError, LimitExceeded, CsvError) as exc:
        return ("raise", exc)
