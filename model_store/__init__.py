"""Persistence of trained models as JSON files. Knows nothing of FastAPI or of the engine."""

from .base import (
    ID_PATTERN,
    SCHEMA_VERSION,
    CorruptModel,
    InvalidModelId,
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
from .datasets import (
    CorruptDataset,
    DatasetListing,
    DatasetNotFound,
    DatasetStore,
    FileDatasetStore,
    Upload,
)
from .json_store import JsonFileStore

__all__ = [
    "ID_PATTERN",
    "SCHEMA_VERSION",
    "CorruptDataset",
    "CorruptModel",
    "DatasetListing",
    "DatasetNotFound",
    "DatasetStore",
    "FileDatasetStore",
    "InvalidModelId",
    "JsonFileStore",
    "Listing",
    "ModelNotFound",
    "ModelStore",
    "PicklableError",
    "Record",
    "StoreDeleteFailed",
    "StoreError",
    "StoreUnavailable",
    "StoreWriteFailed",
    "Upload",
    "check_model_id",
    "new_model_id",
]
