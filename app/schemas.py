"""Request and response models: what comes in, what goes out. Examples feed the docs page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

#: A JSON number that is finite. Strict: ``true`` and ``"1.5"`` are not numbers.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Label = StrictInt | Annotated[StrictStr, Field(min_length=1, max_length=200)]
Row = list[Number]

EXAMPLE_FEATURES: list[Any] = [
    [0.5, 8.0],
    [1.0, 6.5],
    [1.5, 7.0],
    [2.0, 5.0],
    [3.0, 7.5],
    [3.5, 6.0],
    [4.0, 8.0],
    [5.0, 7.0],
]
EXAMPLE_LABELS: list[Any] = ["fail", "fail", "fail", "pass", "fail", "pass", "pass", "pass"]
EXAMPLE_ID = "187a9d3c5e2f41b08c6d1e2f3a4b5c6d"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def check_rows(features: list[list[float]]) -> int:
    """Number of columns, after checking that every row has the same, non-zero, length."""
    if not features:
        raise ValueError("features: must contain at least one row")
    width = len(features[0])
    if width == 0:
        raise ValueError("features[0]: a row must contain at least one number")
    for i, row in enumerate(features):
        if len(row) != width:
            raise ValueError(f"features[{i}]: has {len(row)} values, but row 0 has {width}")
    return width


class TrainParams(Strict):
    """Training settings; every one is optional."""

    solver: Literal["gd"] = Field("gd", description="`gd`: batch gradient descent.")
    learning_rate: Annotated[StrictFloat | StrictInt, Field(gt=0)] | None = Field(
        None,
        description="Gradient-descent step. Unset: 1/L, with L the gradient's Lipschitz constant "
        "estimated from the data (the largest step that is guaranteed to lower the cost).",
    )
    max_iter: StrictInt = Field(1000, ge=1, description="Cap on solver iterations.")
    tol: Annotated[StrictFloat | StrictInt, Field(ge=0)] = Field(
        1e-4, description="Converged when every component of the cost's gradient is at most this."
    )
    l2: Annotated[StrictFloat | StrictInt, Field(ge=0)] = Field(
        1e-4,
        description="L2 strength lambda in J = mean cross-entropy + lambda/2 * ||w||^2 (the "
        "intercept is not penalised). scikit-learn's C maps to lambda = 1 / (C * n_samples).",
    )
    multiclass: Literal["ovr"] = Field(
        "ovr", description="`ovr`: one-vs-all, one binary model per class."
    )
    standardize: StrictBool = Field(
        True, description="Scale each feature to mean 0, variance 1 (kept in the model)."
    )
    fit_intercept: StrictBool = Field(True, description="Fit the bias term b.")


class TrainRequest(Strict):
    """Labelled rows to learn from."""

    features: list[Row] = Field(description="One row per example, every row the same length.")
    labels: list[Label] = Field(description="One label per row: all integers or all strings.")
    feature_names: list[Annotated[StrictStr, Field(min_length=1, max_length=200)]] | None = None
    name: Annotated[StrictStr, Field(max_length=200)] | None = None
    params: TrainParams = Field(default_factory=TrainParams)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "features": EXAMPLE_FEATURES,
                    "labels": EXAMPLE_LABELS,
                    "feature_names": ["hours_studied", "hours_slept"],
                    "name": "exam-pass",
                    "params": {"max_iter": 2000, "l2": 0.001},
                }
            ]
        },
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainRequest:
        width = check_rows(self.features)
        if len(self.labels) != len(self.features):
            raise ValueError(
                f"labels: has {len(self.labels)} entries for {len(self.features)} rows of features"
            )
        kinds = {type(v) for v in self.labels}
        if len(kinds) > 1:
            raise ValueError("labels: must be all integers or all strings, not a mix")
        if self.feature_names is not None:
            if len(self.feature_names) != width:
                raise ValueError(
                    f"feature_names: has {len(self.feature_names)} names for {width} features"
                )
            if len(set(self.feature_names)) != width:
                raise ValueError("feature_names: names must be distinct")
        return self


class TrainingSummary(BaseModel):
    solver: str
    iterations: int
    converged: bool
    loss: float = Field(description="Final value of the training objective.")
    accuracy: float = Field(description="Accuracy on the training rows.")
    seconds: float
    n_samples: int


class ModelSummary(BaseModel):
    id: str
    name: str | None
    created_at: datetime
    classes: list[Label]
    n_features: int
    feature_names: list[str] | None
    training: TrainingSummary

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_ID,
                    "name": "exam-pass",
                    "created_at": "2026-11-23T10:00:00Z",
                    "classes": ["fail", "pass"],
                    "n_features": 2,
                    "feature_names": ["hours_studied", "hours_slept"],
                    "training": {
                        "solver": "gd",
                        "iterations": 412,
                        "converged": True,
                        "loss": 0.2874,
                        "accuracy": 0.875,
                        "seconds": 0.004,
                        "n_samples": 8,
                    },
                }
            ]
        }
    )


class ModelParameters(BaseModel):
    """What was learned. Weights apply to standardised features ``(x - mean) / scale``."""

    multiclass: Literal["binary", "ovr"]
    coef: list[list[float]] = Field(
        description="One row of weights per output: 1 output for a binary model "
        "(for classes[1]), one per class for one-vs-all."
    )
    intercept: list[float]
    mean: list[float] | None
    scale: list[float] | None


class ModelDetail(ModelSummary):
    params: TrainParams
    parameters: ModelParameters
    loss_history: list[float] = Field(description="Training objective, at most ~100 points.")


class ModelList(BaseModel):
    items: list[ModelSummary]
    total: int
    limit: int
    offset: int
    unreadable: list[str] = Field(
        default_factory=list,
        description="Ids on this page whose files are corrupt (see GET /models/{id}).",
    )


class PredictRequest(Strict):
    model_id: StrictStr = Field(
        description="The id that `POST /train` answered, or `latest` for the newest model."
    )
    features: list[Row] = Field(description="Rows to classify, as many values each as in training.")
    threshold: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] | None = Field(
        None,
        description="Binary models only: predict classes[1] when its probability is at least "
        "this (default 0.5).",
    )

    model_config = ConfigDict(
        extra="forbid",
        protected_namespaces=(),
        json_schema_extra={
            # `latest`, so that "Try it out" on /train and then /predict works as shipped
            "examples": [{"model_id": "latest", "features": [[1.0, 7.0], [4.5, 6.5]]}]
        },
    )

    @model_validator(mode="after")
    def _rectangular(self) -> PredictRequest:
        check_rows(self.features)
        return self


class PredictResponse(BaseModel):
    model_id: str
    classes: list[Label]
    predictions: list[Label]
    probabilities: list[list[float]] = Field(
        description="One column per class, in `classes` order."
    )

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "model_id": EXAMPLE_ID,
                    "classes": ["fail", "pass"],
                    "predictions": ["fail", "pass"],
                    "probabilities": [[0.93, 0.07], [0.04, 0.96]],
                }
            ]
        },
    )


class ErrorItem(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    detail: str = Field(description="What is wrong, naming the field, row and column.")
    errors: list[ErrorItem] | None = None


class Health(BaseModel):
    status: Literal["ok"]
    models: int


__all__ = [
    "ErrorResponse",
    "Health",
    "ModelDetail",
    "ModelList",
    "ModelParameters",
    "ModelSummary",
    "PredictRequest",
    "PredictResponse",
    "TrainParams",
    "TrainRequest",
    "TrainingSummary",
]
