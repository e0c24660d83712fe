"""Python client for the logistic-regression service: ``Client``, ``AsyncClient``, the
scikit-learn estimator ``RemoteLogisticRegression`` (needs the ``[sklearn]`` extra) and the
``logreg`` command.

    from logreg_client import Client

    with Client("http://127.0.0.1:8000") as client:
        model = client.train(X, y, name="exam-pass", l2=1e-3)
        print(client.predict(model.id, X_new).predictions)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._client import AsyncClient, Client, __version__
from ._core import Retry
from ._exceptions import (
    BadRequest,
    ClientError,
    Conflict,
    InsufficientStorage,
    InvalidInput,
    LogregError,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServerError,
    ServiceError,
    ServiceUnavailable,
    ServiceUnreachable,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)
from ._models import (
    Label,
    ModelDetail,
    ModelList,
    ModelParameters,
    ModelSummary,
    Prediction,
    TrainingSummary,
)

if TYPE_CHECKING:
    from .estimator import RemoteLogisticRegression


def __getattr__(name: str) -> Any:
    # scikit-learn is an optional extra: imported only when the estimator is asked for
    if name == "RemoteLogisticRegression":
        from .estimator import RemoteLogisticRegression

        return RemoteLogisticRegression
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "InsufficientStorage",
    "InvalidInput",
    "Label",
    "LogregError",
    "ModelDetail",
    "ModelList",
    "ModelParameters",
    "ModelSummary",
    "NotFound",
    "PayloadTooLarge",
    "Prediction",
    "RemoteLogisticRegression",
    "RequestTimeout",
    "Retry",
    "ServerError",
    "ServiceError",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "TooManyRequests",
    "TrainingSummary",
    "Unauthorized",
    "UnsupportedMediaType",
    "__version__",
]
