"""Every error the client raises, in one place.

Exception hierarchy::

    LogregError ......................... anything this client raises on purpose
    ├── ServiceUnreachable .............. no answer: connection refused, DNS, timeout
    ├── JobCancelled .................... a job waited for was cancelled (``job_id``)
    ├── JobTimeout ...................... ``job.wait(timeout=)`` ran out; the job goes on
    │                                     (also a TimeoutError)
    └── ServiceError .................... the service answered an error; ``status``, ``detail``,
        │                                 ``errors`` (``[{"field", "message"}]``), ``retry_after``,
        │                                 ``request_id``
        ├── ClientError ................. 4xx: the request was refused as sent
        │   ├── BadRequest .............. 400: not JSON, CSV not UTF-8
        │   ├── Unauthorized ............ 401: missing or wrong API key
        │   ├── Forbidden ............... 403: the key lacks the route's scope (train, admin)
        │   ├── NotFound ................ 404: no such model, name, version or alias (or route)
        │   ├── RequestTimeout .......... 408: the body did not arrive in time
        │   ├── Conflict ................ 409: an alias points to the model, no version to roll
        │   │                             back to, or the model's file is damaged on disk
        │   ├── PayloadTooLarge ......... 413: past a configured limit
        │   ├── UnsupportedMediaType .... 415
        │   ├── InvalidInput ............ 422: the service names the field (also a ValueError)
        │   └── TooManyRequests ......... 429: every training slot taken (retried first)
        └── ServerError ................. 5xx
            ├── ServiceUnavailable ...... 503: folder unreadable, child killed (retried first)
            └── InsufficientStorage ..... 507: disk full

A job that failed raises, from ``job.wait()``, the exception of its ``error.status``: what
the same training would have raised at once (``InvalidInput`` for 422...).

``InvalidInput`` is also a ``ValueError``, as scikit-learn expects of bad data. Every one pickles
(``args`` holds what ``__init__`` takes), so they survive joblib's worker processes.
"""

from __future__ import annotations

from typing import Any


class LogregError(Exception):
    """Base of every error this client raises."""


class ServiceUnreachable(LogregError):
    """The service could not be reached or did not answer in time."""


class JobCancelled(LogregError):
    """The job waited for was cancelled (by ``cancel``, by anyone): it stored no model."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id

    def __str__(self) -> str:
        return f"job {self.job_id} was cancelled"


class JobTimeout(LogregError, TimeoutError):
    """``job.wait(timeout=...)`` ran out before the job ended; the job goes on (``cancel`` it,
    or wait again)."""

    def __init__(self, job_id: str, status: str, timeout: float) -> None:
        super().__init__(job_id, status, timeout)
        self.job_id = job_id
        self.status = status
        self.timeout = timeout

    def __str__(self) -> str:
        return f"job {self.job_id} still {self.status} after {self.timeout:g} s"


class ServiceError(LogregError):
    """The service answered with an error status.

    Attributes
    ----------
    status : int
        The HTTP status.
    detail : str
        The service's message (``detail``), naming the field, row and column.
    errors : list of dict
        The service's ``errors``: ``{"field": ..., "message": ...}`` per problem (may be empty).
    retry_after : float or None
        Seconds from the ``Retry-After`` header, when the service sent one.
    request_id : str or None
        The answer's ``X-Request-ID``: what the service's logs and audit log call this request.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(status, detail, errors, retry_after, request_id)
        self.status = status
        self.detail = detail
        self.errors: list[dict[str, Any]] = list(errors or [])
        self.retry_after = retry_after
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"


class ClientError(ServiceError):
    """4xx: the service refused the request as sent."""


class BadRequest(ClientError):
    """400."""


class Unauthorized(ClientError):
    """401: the API key is missing or wrong."""


class Forbidden(ClientError):
    """403: the API key is known but lacks the scope the route needs (the detail names it)."""


class NotFound(ClientError):
    """404: no such model, name, version or alias."""


class RequestTimeout(ClientError):
    """408."""


class Conflict(ClientError):
    """409: the change would break something (deleting a version an alias points to, rolling
    back an alias with no earlier version), or the model's file is damaged on the server."""


class PayloadTooLarge(ClientError):
    """413."""


class UnsupportedMediaType(ClientError):
    """415."""


class InvalidInput(ClientError, ValueError):
    """422: the service names what is wrong with the input."""


class TooManyRequests(ClientError):
    """429: every training slot is taken; ``retry_after`` says when to come back."""


class ServerError(ServiceError):
    """5xx."""


class ServiceUnavailable(ServerError):
    """503."""


class InsufficientStorage(ServerError):
    """507."""


BY_STATUS: dict[int, type[ServiceError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    408: RequestTimeout,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    429: TooManyRequests,
    503: ServiceUnavailable,
    507: InsufficientStorage,
}


def error_type(status: int) -> type[ServiceError]:
    """The exception class for an error status: its own, else its family's."""
    if status in BY_STATUS:
        return BY_STATUS[status]
    return ClientError if status < 500 else ServerError
