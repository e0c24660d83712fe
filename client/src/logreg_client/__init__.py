"""Python client for the logistic-regression service: ``Client``, ``AsyncClient``, the
scikit-learn estimator ``RemoteLogisticRegression`` (needs the ``[sklearn]`` extra) and the
``logreg`` command.

    from logreg_client import Client

    with Client("http://127.0.0.1:8000") as client:
        model = client.train(X, y, name="exam-pass", l2=1e-3)  # version 1, 2, ... of exam-pass
        client.set_alias("exam-pass", "champion", model.version)
        print(client.predict("exam-pass@champion", X_new).predictions)
        job = client.submit(X, y, solver="gd", max_iter=100_000)  # a training job, at once
        model = job.wait(progress=lambda state: print(state.progress))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._client import AsyncClient, Client, __version__
from ._core import Retry
from ._exceptions import (
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    InsufficientStorage,
    InvalidInput,
    JobCancelled,
    JobTimeout,
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
from ._jobs import AsyncJob, Job, JobProgressCallback
from ._models import (
    AliasChange,
    AliasHistory,
    AliasHistoryItem,
    AuditEntry,
    AuditList,
    CalibrationBin,
    ClassMetrics,
    ColumnSummary,
    ConfusionMatrix,
    Dataset,
    DatasetList,
    Evaluation,
    EvaluationList,
    InputWarning,
    JobError,
    JobList,
    JobProgress,
    JobState,
    Label,
    ModelDetail,
    ModelList,
    ModelParameters,
    ModelSummary,
    NameDetail,
    NameList,
    NameSummary,
    NameVersion,
    Prediction,
    RocCurve,
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
    "RocCurve",
    "InputWarning",
    "EvaluationList",
    "Evaluation",
    "ConfusionMatrix",
    "ClassMetrics",
    "CalibrationBin",
    "AliasChange",
    "AliasHistory",
    "AliasHistoryItem",
    "AsyncClient",
    "AsyncJob",
    "AuditEntry",
    "AuditList",
    "BadRequest",
    "Client",
    "ClientError",
    "ColumnSummary",
    "Conflict",
    "Dataset",
    "DatasetList",
    "Forbidden",
    "InsufficientStorage",
    "InvalidInput",
    "Job",
    "JobCancelled",
    "JobError",
    "JobList",
    "JobProgress",
    "JobProgressCallback",
    "JobState",
    "JobTimeout",
    "Label",
    "LogregError",
    "ModelDetail",
    "ModelList",
    "ModelParameters",
    "ModelSummary",
    "NameDetail",
    "NameList",
    "NameSummary",
    "NameVersion",
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
