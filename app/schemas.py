"""Request and response models: what comes in, what goes out. Examples feed the docs page."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    model_validator,
)

from model_store import ALIAS_RULE, NAME_RULE, InvalidName, check_name

from .engine.model import INT64_MAX, INT64_MIN, NOT_A_LABEL, ONE_KIND


def _registered_name(value: str) -> str:
    try:
        return check_name(value)
    except InvalidName:
        raise ValueError(f"name: {value[:100]!r} is not valid: {NAME_RULE}") from None


#: A registered model name (``churn``, ``fraud.eu-v2``); the schema states the rule's pattern,
#: the validator the whole rule (not 32 hex digits, not ``latest``) in its message.
RegisteredName = Annotated[
    StrictStr,
    AfterValidator(_registered_name),
    Field(json_schema_extra={"pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"}),
]
NAME_RULE_DOC = f"Names: {NAME_RULE}."
ALIAS_RULE_DOC = f"Aliases: {ALIAS_RULE}."
REFERENCE_DOC = (
    "The model: its id (what `POST /train` answered), `NAME` (the newest version of a "
    "registered name), `NAME:VERSION` (`churn:3`), `NAME@ALIAS` (`churn@champion`), or `latest` "
    "(the newest model of all)."
)

#: A JSON number that is finite. Strict: ``true`` and ``"1.5"`` are not numbers.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
#: Integer labels are 64-bit: larger ones cannot be stored in the model's JSON file. Booleans
#: are stored as JSON booleans, so a model trained on them predicts booleans.
Label = (
    Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
    | StrictBool
    | Annotated[StrictStr, Field(min_length=1, max_length=200)]
)
_KIND = {int: "an integer", str: "a string", bool: "a boolean"}


def _shown(value: Any) -> str:
    """A value that is not a label, as a sentence shows it."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return json.dumps(value)  # null, 0.5, NaN


def _whole_number(value: float, i: int) -> int:
    if not value.is_integer():
        raise ValueError(f"labels[{i}]: {_shown(value)} {NOT_A_LABEL}")
    if not INT64_MIN <= value < 2.0**63:
        raise ValueError(
            f"labels[{i}]: {value!r} is out of range; integer labels must fit in 64 bits"
        )
    return int(value)


def class_labels(value: Any) -> Any:
    """``labels`` as sent, whole-number floats as integers (``1.0`` is the class ``1``: what
    ``y.tolist()`` of a pandas column gives). Whatever is not a label is refused in one sentence
    naming it (``labels[3]: 0.5 is not a class label; ...``), where each branch of the ``Label``
    union would add its own error. One pass over the list, in C where it can be."""
    if type(value) is not list:
        return value  # pydantic words it
    kinds = {type(v) for v in value}
    if kinds == {float}:  # a pandas column's tolist(): checked and converted in C
        floats = np.array(value, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            whole = (np.floor(floats) == floats) & (floats >= INT64_MIN) & (floats < 2.0**63)
        if whole.all():
            return floats.astype(np.int64).tolist()
    if float in kinds:
        value = [_whole_number(v, i) if type(v) is float else v for i, v in enumerate(value)]
        kinds = {type(v) for v in value}
    if not kinds <= _KIND.keys():
        i, bad = next((i, v) for i, v in enumerate(value) if type(v) not in _KIND)
        raise ValueError(f"labels[{i}]: {_shown(bad)} {NOT_A_LABEL}")
    if len(kinds) > 1:
        first = type(value[0])
        i, odd = next((i, type(v)) for i, v in enumerate(value) if type(v) is not first)
        raise ValueError(
            f"labels[{i}]: {_KIND[odd]}, but labels[0] is {_KIND[first]}; labels {ONE_KIND}"
        )
    if kinds == {int} and not (min(value) >= INT64_MIN and max(value) <= INT64_MAX):
        i, big = next((i, v) for i, v in enumerate(value) if not INT64_MIN <= v <= INT64_MAX)
        raise ValueError(f"labels[{i}]: {big} is out of range; integer labels must fit in 64 bits")
    if kinds == {str} and not (min(map(len, value)) >= 1 and max(map(len, value)) <= 200):
        i, n = next((i, len(v)) for i, v in enumerate(value) if not 1 <= len(v) <= 200)
        if n == 0:
            raise ValueError(
                f"labels[{i}]: the empty string is not a class label; string labels have 1 to "
                "200 characters"
            )
        raise ValueError(
            f"labels[{i}]: a string of {n} characters is too long; string labels have 1 to "
            "200 characters"
        )
    return value


#: One label per row, checked as ``class_labels`` says.
Labels = Annotated[list[Label], BeforeValidator(class_labels)]
#: ``minItems`` here and on ``features`` and ``labels``: the OpenAPI document states what the
#: validators check (a row needs a number; training needs two rows of two classes), so that a
#: client generated from it, or a fuzzer, does not take ``[]`` for a valid request.
Row = Annotated[list[Number], Field(json_schema_extra={"minItems": 1})]
FLAT_ROWS = "features: must be a list of rows, e.g. [[1, 2, 3]]"


def is_flat(rows: object) -> bool:
    """``[1, 2, 3]`` where ``[[1, 2, 3]]`` was meant: a non-empty list with no row in it."""
    return type(rows) is list and bool(rows) and not any(type(row) is list for row in rows)


def _not_flat(rows: object) -> object:
    # one mistake, said once (pydantic says "Input should be a valid list" once per number)
    if is_flat(rows):
        raise ValueError(FLAT_ROWS)
    return rows


#: ``features``: one list of numbers per row.
Rows = Annotated[list[Row], BeforeValidator(_not_flat)]


def _whole(value: object) -> object:
    return int(value) if type(value) is float and value.is_integer() else value


#: An integer setting. JSON has one number type, and JSON Schema's ``integer`` (what the
#: OpenAPI document says) includes ``2000.0``: a whole float is that integer. Booleans and
#: strings stay refused.
WholeInt = Annotated[StrictInt, BeforeValidator(_whole)]

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

# Classes that overlap (no line splits them), so the unpenalised fit has a finite optimum and
# coefficient statistics: train with "params": {"l2": 0}.
EXAMPLE_STATS_FEATURES: list[Any] = [
    *EXAMPLE_FEATURES,
    [1.0, 8.0],
    [2.5, 6.0],
    [3.0, 5.5],
    [4.5, 7.5],
    [2.0, 8.5],
    [5.5, 5.0],
    [1.5, 5.5],
    [4.0, 6.0],
]
EXAMPLE_STATS_LABELS: list[Any] = [
    *EXAMPLE_LABELS,
    *["fail", "pass", "fail", "pass", "pass", "pass", "fail", "fail"],
]
# An inner and an outer ring: no line separates them, a degree-2 boundary (a circle) does.
EXAMPLE_RING_FEATURES: list[Any] = [
    *[[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]],
    *[[0.0, 3.0], [3.0, 0.0], [0.0, -3.0], [-3.0, 0.0]],
]
EXAMPLE_RING_LABELS: list[Any] = ["inner"] * 4 + ["outer"] * 4
EXAMPLE_STATISTICS: dict[str, Any] = {
    "coefficients": [
        {
            "name": "intercept",
            "coef": -3.768894,
            "std_err": 4.186192,
            "z": -0.900316,
            "p_value": 0.367952,
            "ci_lower": -11.973681,
            "ci_upper": 4.435892,
            "odds_ratio": 0.023078,
        },
        {
            "name": "hours_studied",
            "coef": 1.026044,
            "std_err": 0.510319,
            "z": 2.010592,
            "p_value": 0.044369,
            "ci_lower": 0.025836,
            "ci_upper": 2.026251,
            "odds_ratio": 2.790006,
        },
        {
            "name": "hours_slept",
            "coef": 0.144465,
            "std_err": 0.555956,
            "z": 0.25985,
            "p_value": 0.79498,
            "ci_lower": -0.945189,
            "ci_upper": 1.234119,
            "odds_ratio": 1.155421,
        },
    ],
    "log_likelihood": -8.104875,
    "n_samples": 16,
    "newton_steps": 2,
}


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

    solver: Literal["auto", "gd", "newton", "lbfgs"] = Field(
        "auto",
        description="`auto` (default): picks by problem size (Newton for up to ~1000 coefficients "
        "per Hessian block, with subsample-preconditioning from 50,000 rows; L-BFGS beyond). "
        "`gd`: batch gradient descent (proximal with `l1`). `newton`: Newton/IRLS with a "
        "Cholesky solve and a line search (proximal Newton with `l1`). `lbfgs`: L-BFGS with a "
        "strong-Wolfe line search (no `l1`).",
    )
    learning_rate: Annotated[StrictFloat | StrictInt, Field(gt=0)] | None = Field(
        None,
        description="Gradient-descent step (solver `gd` only). Unset: 1/L, with L the gradient's "
        "Lipschitz constant estimated from the data (the largest step that is guaranteed to "
        "lower the cost).",
    )
    max_iter: WholeInt = Field(1000, ge=1, description="Cap on solver iterations.")
    tol: Annotated[StrictFloat | StrictInt, Field(ge=0)] = Field(
        1e-4,
        description="Converged when every component of the cost's (sub)gradient is at most this.",
    )
    l2: Annotated[StrictFloat | StrictInt, Field(ge=0)] = Field(
        1e-4,
        description="L2 strength lambda in J = mean cross-entropy + lambda/2 * ||w||^2 + "
        "l1 * ||w||_1 (the intercept is not penalised). scikit-learn's C maps to "
        "lambda = 1 / (C * n_samples) (with weights: the sum of the row weights).",
    )
    l1: Annotated[StrictFloat | StrictInt, Field(ge=0)] = Field(
        0.0,
        description="L1 strength (sparse models, exact zeros). Both l1 and l2 > 0 is the elastic "
        "net: scikit-learn's penalty='elasticnet', l1_ratio, C is l1 = l1_ratio / (C * n) and "
        "l2 = (1 - l1_ratio) / (C * n).",
    )
    multiclass: Literal["ovr", "multinomial"] = Field(
        "ovr",
        description="More than two labels: `ovr`, one-vs-all, one binary model per class; "
        "`multinomial`, one softmax model (cross-entropy over all classes).",
    )
    class_weight: (
        Literal["balanced"] | dict[str, Annotated[StrictFloat | StrictInt, Field(ge=0)]] | None
    ) = Field(
        None,
        description="Weight of each class in the cost: `balanced` (n / (n_classes * count)) or "
        "a mapping from label (integers written as strings) to weight; unlisted labels weigh 1.",
    )
    standardize: StrictBool = Field(
        True, description="Scale each feature to mean 0, variance 1 (kept in the model)."
    )
    fit_intercept: StrictBool = Field(True, description="Fit the bias term b.")
    polynomial_degree: WholeInt = Field(
        1,
        ge=1,
        le=10,
        description="Expand the features into every monomial up to this degree before the fit "
        "(scikit-learn's PolynomialFeatures order, no constant column), for curved decision "
        "boundaries; 1 is the linear model. The expanded column count, C(n + degree, degree) - 1 "
        "for n features, must stay within MAX_FEATURES.",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"solver": "auto", "l2": 0.001},
                {"solver": "newton", "multiclass": "multinomial", "class_weight": "balanced"},
                {"l1": 0.01, "l2": 0.001},
            ]
        },
    )


class TrainRequest(Strict):
    """Labelled rows to learn from."""

    features: Rows = Field(
        description="One row per example, every row the same length.",
        json_schema_extra={"minItems": 2},
    )
    labels: Labels = Field(
        description="One label per row: all integers (1.0 counts as 1), all strings or all "
        "booleans, at least two distinct. A model answers labels of the kind it was trained on.",
        json_schema_extra={"minItems": 2},
    )
    feature_names: list[Annotated[StrictStr, Field(min_length=1, max_length=200)]] | None = None
    name: RegisteredName | None = Field(
        None,
        description="Register the model under this name: each training under a name makes its "
        "next version (1, 2, 3...), served as `NAME` (the newest), `NAME:VERSION` or "
        "`NAME@ALIAS`. " + NAME_RULE_DOC,
    )
    params: TrainParams = Field(default_factory=TrainParams)
    sample_weight: list[Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)]] | None = (
        Field(
            None,
            description="One weight per row (finite, >= 0, not all zero); the cost is the "
            "weighted mean. Multiplied by `params.class_weight` when both are given.",
        )
    )

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
                },
                {
                    "features": EXAMPLE_STATS_FEATURES,
                    "labels": EXAMPLE_STATS_LABELS,
                    "feature_names": ["hours_studied", "hours_slept"],
                    "name": "exam-pass-with-statistics",
                    "params": {"l2": 0},
                },
                {
                    "features": EXAMPLE_RING_FEATURES,
                    "labels": EXAMPLE_RING_LABELS,
                    "name": "rings",
                    "params": {"polynomial_degree": 2},
                },
            ]
        },
    )

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> TrainRequest:
        width = check_rows(self.features)
        n_rows = len(self.features)
        if info.context and "shape" in info.context:
            # the rows were decoded apart (app.decode); ``features`` is a placeholder
            n_rows, width = info.context["shape"]
        if len(self.labels) != n_rows:
            raise ValueError(
                f"labels: has {len(self.labels)} entries for {n_rows} rows of features"
            )
        if self.feature_names is not None:
            if len(self.feature_names) != width:
                raise ValueError(
                    f"feature_names: has {len(self.feature_names)} names for {width} features"
                )
            if len(set(self.feature_names)) != width:
                raise ValueError("feature_names: names must be distinct")
        if self.sample_weight is not None:
            if len(self.sample_weight) != n_rows:
                raise ValueError(
                    f"sample_weight: has {len(self.sample_weight)} entries for "
                    f"{n_rows} rows of features"
                )
            if not any(w > 0 for w in self.sample_weight):
                raise ValueError("sample_weight: all weights are zero")
        return self


class TrainingSummary(BaseModel):
    solver: str
    iterations: int
    converged: bool
    loss: float = Field(description="Final value of the training objective.")
    accuracy: float = Field(description="Accuracy on the training rows.")
    seconds: float
    n_samples: int
    warnings: list[str] = Field(
        default_factory=list,
        description="What to know before using the model, in words: e.g. that the solver "
        "stopped before converging (`converged: false`), and what to change. Empty when all "
        "went well (and for models stored before this field existed).",
    )


class TrainedOn(BaseModel):
    """The dataset a model was trained on (``POST /train`` with ``dataset``)."""

    id: str
    label: str = Field(description="The column that held the labels.")


class ModelSummary(BaseModel):
    id: str
    name: str | None = Field(description="The registered name; null for an unnamed model.")
    version: int | None = Field(
        None, description="The version under `name` (1, 2, 3...); null for an unnamed model."
    )
    created_at: datetime
    classes: list[Label]
    n_features: int
    feature_names: list[str] | None
    training: TrainingSummary
    dataset: TrainedOn | None = Field(
        None, description="The dataset it was trained on; `null` when trained on rows sent."
    )

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
                        "warnings": [],
                    },
                }
            ]
        }
    )


class PolynomialParameters(BaseModel):
    """The polynomial expansion a model applies to its inputs before ``mean`` and ``scale``."""

    degree: int
    mean: list[float] | None = Field(
        description="Standardisation of the raw inputs applied before expanding (null when "
        "`standardize` was false)."
    )
    scale: list[float] | None
    features: list[str] = Field(
        description="Names of the expanded columns, in the order of `coef` (e.g. `x0^2 x1`)."
    )


class ModelParameters(BaseModel):
    """What was learned. Weights apply to standardised features ``(x - mean) / scale``; for a
    polynomial model, ``x`` is the expanded feature vector (see ``polynomial``)."""

    multiclass: Literal["binary", "ovr", "multinomial"]
    coef: list[list[float]] = Field(
        description="One row of weights per output: 1 output for a binary model "
        "(for classes[1]), one per class for one-vs-all and multinomial (softmax)."
    )
    intercept: list[float]
    mean: list[float] | None
    scale: list[float] | None
    polynomial: PolynomialParameters | None = Field(
        None, description="Polynomial expansion (null for a linear model)."
    )


class CoefficientRow(BaseModel):
    """One coefficient on the original feature scale; null where a value is not finite."""

    name: str = Field(description="`intercept`, a feature name, or a monomial like `x0^2 x1`.")
    coef: float | None = Field(description="Maximum-likelihood estimate.")
    std_err: float | None = Field(description="Standard error, from the inverse Hessian.")
    z: float | None = Field(description="coef / std_err.")
    p_value: float | None = Field(description="Two-sided, from the normal distribution.")
    ci_lower: float | None = Field(description="Lower end of the 95% confidence interval.")
    ci_upper: float | None = Field(description="Upper end of the 95% confidence interval.")
    odds_ratio: float | None = Field(description="exp(coef).")


class CoefficientTable(BaseModel):
    """Coefficient statistics of an unpenalised binary model, as statsmodels' Logit gives them."""

    coefficients: list[CoefficientRow]
    log_likelihood: float = Field(description="Maximised log-likelihood of the training rows.")
    n_samples: int
    newton_steps: int = Field(
        description="Newton steps that refined the solver's answer to the exact optimum."
    )


class ModelDetail(ModelSummary):
    params: TrainParams
    parameters: ModelParameters
    loss_history: list[float] = Field(description="Training objective, at most ~100 points.")
    statistics: CoefficientTable | None = Field(
        None,
        description="Standard errors, z-values, p-values, 95% intervals and odds ratios, for "
        'binary models trained with `"params": {"l2": 0}` that converged; null otherwise, '
        "with the reason in `statistics_note`.",
    )
    statistics_note: str | None = Field(
        None,
        description="Why `statistics` is null: penalised model (l2 > 0), multi-class model, "
        "singular Hessian (perfect separation or collinear features), or not converged.",
    )
    links: dict[str, str] = Field(
        default_factory=dict,
        description="Related pages: `report` (an HTML page of charts: coefficients, training "
        "loss, the latest evaluation's ROC, calibration and confusion matrix) and `evaluations`.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_ID,
                    "name": "exam-pass-with-statistics",
                    "created_at": "2026-11-23T10:00:00Z",
                    "classes": ["fail", "pass"],
                    "n_features": 2,
                    "feature_names": ["hours_studied", "hours_slept"],
                    "training": {
                        "solver": "newton",
                        "iterations": 3,
                        "converged": True,
                        "loss": 0.506555,
                        "accuracy": 0.625,
                        "seconds": 0.002,
                        "n_samples": 16,
                        "warnings": [],
                    },
                    "params": {"l2": 0},
                    "parameters": {
                        "multiclass": "binary",
                        "coef": [[1.516357, 0.161304]],
                        "intercept": [0.050688],
                        "mean": [2.78125, 6.6875],
                        "scale": [1.47869, 1.116286],
                        "polynomial": None,
                    },
                    "loss_history": [0.693147, 0.51376, 0.506668, 0.506555],
                    "statistics": EXAMPLE_STATISTICS,
                    "statistics_note": None,
                }
            ]
        }
    )


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
    model_id: StrictStr = Field(description=REFERENCE_DOC)
    features: Rows = Field(
        description="Rows to classify, as many values each as in training.",
        json_schema_extra={"minItems": 1},
    )
    threshold: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] | None = Field(
        None,
        description="Binary models only: predict classes[1] when its probability is at least "
        "this (default 0.5).",
    )
    explain: StrictBool = Field(
        False,
        description="Also answer `terms` (the model's columns: features, or their monomials "
        "for a polynomial model, as `coefficients` names them), `baseline` (the score, in "
        "logits, of the training mean: one per output, that is one for a binary model, for "
        "classes[1], else one per class) and `contributions[row][output][term]` = coefficient "
        "x (value - training mean) on the model's columns, so that `baseline[output]` plus a "
        "row's contributions is its score. JSON answers only.",
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
    model_id: str = Field(description="The id of the model that answered (whatever the reference).")
    name: str | None = None
    version: int | None = None
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


class CsvTrainOptions(Strict):
    """Query parameters of ``POST /train`` with a ``text/csv`` body (besides ``params`` fields)."""

    label: StrictStr | None = Field(
        None, description="Name of the label column; the last column when not given."
    )
    name: RegisteredName | None = Field(
        None, description="Register the model under this name (as `name` in the JSON body)."
    )


class CsvPredictOptions(Strict):
    """Query parameters of ``POST /predict`` with a ``text/csv`` body."""

    model_id: StrictStr = Field(description=REFERENCE_DOC)
    threshold: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] | None = Field(
        None, description="Binary models only: as in the JSON body."
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


# --- names, versions, aliases, audit ------------------------------------------------------------


class NameSummary(BaseModel):
    name: str
    latest_version: int | None = Field(description="The newest version (what `NAME` serves).")
    versions: int = Field(description="How many versions the name has.")
    aliases: dict[str, int] = Field(description="Each alias and the version it points to.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "exam-pass",
                    "latest_version": 2,
                    "versions": 2,
                    "aliases": {"champion": 1},
                }
            ]
        }
    )


class NameList(BaseModel):
    items: list[NameSummary]
    total: int
    limit: int
    offset: int


class NameVersion(BaseModel):
    version: int
    id: str = Field(description="The model's id.")
    created_at: datetime
    training: TrainingSummary | None = Field(
        description="The training's summary; null when the model's file cannot be read."
    )


class NameDetail(NameSummary):
    items: list[NameVersion] = Field(description="Every version, newest first.")


def _a_number(value: object) -> object:
    """JSON's integers include ``3.0``; not ``"3"`` or ``true``."""
    if isinstance(value, str | bool):
        raise ValueError("must be a whole number")
    return value


class AliasRequest(Strict):
    version: Annotated[int, BeforeValidator(_a_number)] = Field(
        ge=1, le=2**31 - 1, description="The version to point to."
    )

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 1}]})


class AliasChangeResponse(BaseModel):
    name: str
    alias: str
    version: int | None = Field(description="What the alias points to now (null: deleted).")
    previous_version: int | None = Field(description="What it pointed to before (null: new).")
    changed_at: datetime


class AliasHistoryItem(BaseModel):
    action: Literal["set", "delete", "rollback"]
    version: int | None
    previous_version: int | None
    changed_at: datetime
    changed_by: str | None = Field(description="The id of the API key that made the change.")


class AliasHistory(BaseModel):
    name: str
    alias: str
    items: list[AliasHistoryItem] = Field(description="Every change, newest first.")


class AuditEntry(BaseModel):
    time: datetime
    action: str = Field(
        description="`model.stored`, `model.deleted`, `alias.set`, `alias.deleted`, "
        "`alias.rolled_back`, `job.cancelled`."
    )
    target: dict[str, Any] = Field(description="What changed: name, version, id, alias.")
    outcome: str = Field(description="`ok`, or `refused: <why>`.")
    key_id: str | None
    client: str | None
    request_id: str | None


class AuditList(BaseModel):
    items: list[AuditEntry] = Field(description="Oldest first.")


EXAMPLE_JOB_ID = "1879b2c4d5e6f7a8b9c0d1e2f3a4b5c6"


class JobProgress(BaseModel):
    phase: Literal["reading", "fitting", "saving"] = Field(
        description="`reading` the request, `fitting` the model, `saving` it."
    )
    iteration: int = Field(description="Solver iterations done so far.")
    max_iter: int | None = Field(description="The iteration cap (`params.max_iter`).")
    loss: float | None = Field(description="The training objective now.")
    grad_norm: float | None = Field(
        description="Largest gradient component now; converged at `params.tol`."
    )
    rows_read: int = Field(description="Rows read so far.")
    elapsed_s: float = Field(description="Seconds since the job started.")


class JobError(BaseModel):
    status: int = Field(description="The HTTP status the same training would answer at once.")
    detail: str


class Job(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: JobProgress | None = Field(None, description="Null until the job starts.")
    model_id: str | None = Field(None, description="When `succeeded`: the model it stored.")
    error: JobError | None = Field(None, description="When `failed`: why.")
    attempts: int | None = Field(
        None,
        description="Times it was started: 2 when a PostgreSQL training worker died running it "
        "and another ran it again (once at most). Null until it starts.",
    )
    runner: str | None = Field(
        None, description="`host/pid` of the process that runs (or ran) it. Null until it starts."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_JOB_ID,
                    "status": "running",
                    "created_at": "2026-12-01T10:00:00Z",
                    "started_at": "2026-12-01T10:00:01Z",
                    "finished_at": None,
                    "progress": {
                        "phase": "fitting",
                        "iteration": 420,
                        "max_iter": 1000,
                        "loss": 0.3121,
                        "grad_norm": 0.0031,
                        "rows_read": 200000,
                        "elapsed_s": 12.5,
                    },
                    "model_id": None,
                    "error": None,
                }
            ]
        }
    )


class JobList(BaseModel):
    items: list[Job]
    total: int
    limit: int
    offset: int


__all__ = [
    "AliasChangeResponse",
    "AliasHistory",
    "AliasHistoryItem",
    "AliasRequest",
    "AuditEntry",
    "AuditList",
    "NameDetail",
    "NameList",
    "NameSummary",
    "NameVersion",
    "CoefficientRow",
    "CoefficientTable",
    "CsvPredictOptions",
    "CsvTrainOptions",
    "ErrorResponse",
    "Health",
    "Job",
    "JobError",
    "JobList",
    "JobProgress",
    "ModelDetail",
    "ModelList",
    "ModelParameters",
    "ModelSummary",
    "PredictRequest",
    "PolynomialParameters",
    "PredictResponse",
    "TrainParams",
    "TrainRequest",
    "TrainingSummary",
]


# ---- datasets ---------------------------------------------------------------------------------

ColumnName = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class DatasetTrainRequest(Strict):
    """Train on a stored dataset (``POST /datasets``), its columns named."""

    dataset: StrictStr = Field(description="The id that `POST /datasets` answered.")
    label: ColumnName = Field(description="The column holding the labels.")
    features: list[ColumnName] | None = Field(
        None,
        min_length=1,
        description="The feature columns, in the model's order; default every column but the "
        "label.",
    )
    name: RegisteredName | None = Field(
        None, description="Register the model under this name, as in a training on rows."
    )
    params: TrainParams = Field(default_factory=TrainParams)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "dataset": EXAMPLE_ID,
                    "label": "result",
                    "features": ["hours_studied", "hours_slept"],
                    "name": "exam-pass",
                    "params": {"l2": 0.001},
                }
            ]
        },
    )

    @model_validator(mode="before")
    @classmethod
    def _not_mixed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("labels", "sample_weight", "feature_names"):
                if key in data:
                    raise ValueError(
                        f"{key}: cannot be sent with dataset; a training from a dataset takes "
                        "its rows and labels from the dataset's columns (label, features)"
                    )
            rows = data.get("features")
            if isinstance(rows, list) and any(isinstance(r, list) for r in rows):
                raise ValueError(
                    "features: with dataset, features lists column names, not rows of numbers"
                )
        return data

    @model_validator(mode="after")
    def _distinct(self) -> DatasetTrainRequest:
        if self.features is not None and len(set(self.features)) != len(self.features):
            raise ValueError("features: column names must be distinct")
        return self


class ColumnSummary(BaseModel):
    name: str
    dtype: Literal["float64", "string", "bool"] = Field(
        description="`float64` for feature columns; the label column is kept as text (`string`)."
    )
    min: float | None
    max: float | None
    mean: float | None = Field(description="Over the values present; `null` for text.")
    missing: int = Field(description="Empty or `NA`/`NaN`/`null` cells.")


class DatasetSummary(BaseModel):
    id: str
    name: str | None
    rows: int
    columns: list[ColumnSummary]
    bytes: int = Field(description="Size of the stored, parsed form on disk.")
    created_at: datetime

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_ID,
                    "name": "exams",
                    "rows": 8,
                    "columns": [
                        {
                            "name": "hours_studied",
                            "dtype": "float64",
                            "min": 0.5,
                            "max": 5.0,
                            "mean": 2.56,
                            "missing": 0,
                        },
                        {
                            "name": "result",
                            "dtype": "string",
                            "min": None,
                            "max": None,
                            "mean": None,
                            "missing": 0,
                        },
                    ],
                    "bytes": 1234,
                    "created_at": "2026-11-23T10:00:00Z",
                }
            ]
        }
    )


class DatasetList(BaseModel):
    items: list[DatasetSummary]
    total: int
    limit: int
    offset: int
    unreadable: list[str] = Field(
        default_factory=list, description="Ids of datasets whose metadata cannot be read."
    )


# --- evaluation (issue 15) ---------------------------------------------------------------------

Threshold = Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)]


class EvaluateRequest(Strict):
    """Labelled rows to judge a model on."""

    features: Rows = Field(
        description="Rows, as many values each as the model has features.",
        json_schema_extra={"minItems": 1},
    )
    labels: Labels = Field(
        description="The true label of each row; every one a class the model knows.",
        json_schema_extra={"minItems": 1},
    )
    threshold: Threshold | None = Field(
        None,
        description="Binary models only: predict classes[1] when its probability is at least "
        "this (default 0.5); used for the accuracy, the confusion matrix and `per_class`.",
    )
    positive_label: Label | None = Field(
        None,
        description="Binary models only: the class whose probability the ROC AUC, average "
        "precision, Brier score and calibration are about (default classes[1]).",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"features": EXAMPLE_FEATURES, "labels": EXAMPLE_LABELS}],
        },
    )

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> EvaluateRequest:
        check_rows(self.features)
        n_rows = len(self.features)
        if info.context and "shape" in info.context:
            n_rows = info.context["shape"][0]  # rows decoded apart (app.decode)
        if len(self.labels) != n_rows:
            raise ValueError(
                f"labels: has {len(self.labels)} entries for {n_rows} rows of features"
            )
        return self


class DatasetEvaluateRequest(Strict):
    """Judge a model on a stored dataset (``POST /datasets``): its feature columns are the
    model's feature names (or every column but the label, for a model without names)."""

    dataset: StrictStr = Field(description="The id that `POST /datasets` answered.")
    label: ColumnName = Field(description="The column holding the true labels.")
    threshold: Threshold | None = Field(None, description="As with rows.")
    positive_label: Label | None = Field(None, description="As with rows.")


class CsvEvaluateOptions(Strict):
    """Query parameters of ``POST /models/{ref}/evaluate`` with a ``text/csv`` body."""

    label: StrictStr | None = Field(
        None, description="Name of the label column; the last column when not given."
    )
    threshold: Threshold | None = Field(None, description="As in the JSON body.")
    positive_label: Label | None = Field(None, description="As in the JSON body.")


class ConfusionMatrix(BaseModel):
    labels: list[Label]
    matrix: list[list[int]] = Field(description="Rows: true class; columns: predicted class.")


class ClassMetrics(BaseModel):
    label: Label
    precision: float
    recall: float
    f1: float
    support: int


class CalibrationBin(BaseModel):
    label: Label = Field(description="The class whose probability is binned.")
    lower: float
    upper: float
    count: int
    mean_predicted: float
    fraction_positive: float


class RocCurve(BaseModel):
    label: Label
    fpr: list[float]
    tpr: list[float]


class Evaluation(BaseModel):
    model_id: str
    name: str | None = None
    version: int | None = None
    evaluated_at: datetime
    n: int
    log_loss: float
    accuracy: float
    balanced_accuracy: float
    brier: float = Field(
        description="Binary: mean of (p - y)^2 for `positive_label`; multi-class: mean over rows "
        "of the sum over classes."
    )
    roc_auc: float | None = Field(
        description="Binary: for `positive_label`; multi-class: macro mean one-vs-rest. Null when "
        "the rows hold one class only."
    )
    roc_auc_weighted: float | None = Field(
        description="Multi-class: one-vs-rest, weighted by each class's rows (binary: `roc_auc`)."
    )
    average_precision: float | None
    positive_label: Label | None
    threshold: float | None
    confusion_matrix: ConfusionMatrix
    per_class: list[ClassMetrics]
    calibration: list[CalibrationBin] = Field(
        description="Ten equal bins of predicted probability (empty ones left out); one set per "
        "class for multi-class models."
    )
    roc_curves: list[RocCurve] = Field(
        description="At most 101 points each: `positive_label`'s, or one per class."
    )

    model_config = ConfigDict(protected_namespaces=())


class EvaluationList(BaseModel):
    model_id: str
    items: list[Evaluation] = Field(description="Newest first.")
    kept: int = Field(description="How many evaluations a model keeps (older ones are dropped).")

    model_config = ConfigDict(protected_namespaces=())
