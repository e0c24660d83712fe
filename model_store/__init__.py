"""Persistence of trained models as JSON files. Knows nothing of FastAPI or of the engine."""

from .base import (
    ID_PATTERN,
    SCHEMA_VERSION,
    CorruptModel,
    InvalidModelId,
    JobNotFound,
    JobQueueFull,
    Listing,
    ModelNotFound,
    ModelStore,
    PicklableError,
    Record,
    StoreDeleteFailed,
    StoreError,
    StoreUnavailable,
    StoreWriteFailed,
    check_model_id,
    new_model_id,
)
from .jobs import JobClaim, JobStore, JsonJobStore, PendingBody
from .json_store import JsonFileStore

__all__ = [
    "ID_PATTERN",
    "SCHEMA_VERSION",
    "CorruptModel",
    "InvalidModelId",
    "JobClaim",
    "JobNotFound",
    "JobQueueFull",
    "JobStore",
    "JsonFileStore",
    "JsonJobStore",
    "Listing",
    "ModelNotFound",
    "ModelStore",
    "PendingBody",
    "PicklableError",
    "Record",
    "StoreDeleteFailed",
    "StoreError",
    "StoreUnavailable",
    "StoreWriteFailed",
    "check_model_id",
    "new_model_id",
]
