"""What the service answers, as frozen dataclasses (no pydantic: the client depends on httpx
only). Each answer, and each model, name and audit entry in a list, keeps its whole JSON object
in ``raw``, so fields the service adds later are there before this module names them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: A class label as the service keeps it: an integer, a string or a boolean.
Label = int | str | bool


@dataclass(frozen=True)
class TrainingSummary:
    solver: str
    iterations: int
    converged: bool
    loss: float
    accuracy: float
    seconds: float
    n_samples: int
    warnings: list[str]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingSummary:
        return cls(
            solver=data["solver"],
            iterations=data["iterations"],
            converged=data["converged"],
            loss=data["loss"],
            accuracy=data["accuracy"],
            seconds=data["seconds"],
            n_samples=data["n_samples"],
            warnings=list(data.get("warnings") or []),
        )


@dataclass(frozen=True)
class ModelSummary:
    """A stored model: what ``POST /train`` and ``GET /models`` answer for each. ``name`` and
    ``version`` are the registered name and the version under it (both ``None`` for a model
    trained without a name)."""

    id: str
    name: str | None
    version: int | None
    created_at: datetime
    classes: list[Label]
    n_features: int
    feature_names: list[str] | None
    training: TrainingSummary
    raw: dict[str, Any] = field(repr=False, compare=False)
    #: the dataset it was trained on (``train_file``, ``train_dataset``); ``None`` for rows sent
    dataset_id: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSummary:
        dataset = data.get("dataset")
        return cls(
            dataset_id=dataset.get("id") if isinstance(dataset, dict) else None,
            id=data["id"],
            name=data.get("name"),
            version=data.get("version"),
            created_at=datetime.fromisoformat(data["created_at"]),
            classes=list(data["classes"]),
            n_features=data["n_features"],
            feature_names=data.get("feature_names"),
            training=TrainingSummary.from_json(data["training"]),
            raw=data,
        )


@dataclass(frozen=True)
class ModelParameters:
    """What was learned. Weights apply to ``(x - mean) / scale`` (of the expanded features when
    ``polynomial`` is set)."""

    multiclass: str
    coef: list[list[float]]
    intercept: list[float]
    mean: list[float] | None
    scale: list[float] | None
    polynomial: dict[str, Any] | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelParameters:
        return cls(
            multiclass=data["multiclass"],
            coef=data["coef"],
            intercept=data["intercept"],
            mean=data.get("mean"),
            scale=data.get("scale"),
            polynomial=data.get("polynomial"),
        )


@dataclass(frozen=True)
class ModelDetail(ModelSummary):
    """``GET /models/{ref}``: the summary, the training settings and what was learned."""

    params: dict[str, Any] = field(default_factory=dict)
    parameters: ModelParameters | None = None
    loss_history: list[float] = field(default_factory=list)
    statistics: dict[str, Any] | None = None
    statistics_note: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelDetail:
        summary = ModelSummary.from_json(data)
        return cls(
            **{name: getattr(summary, name) for name in ModelSummary.__dataclass_fields__},
            params=data.get("params") or {},
            parameters=ModelParameters.from_json(data["parameters"]),
            loss_history=list(data.get("loss_history") or []),
            statistics=data.get("statistics"),
            statistics_note=data.get("statistics_note"),
        )


@dataclass(frozen=True)
class ModelList:
    """One page of ``GET /models``, newest first."""

    items: list[ModelSummary]
    total: int
    limit: int
    offset: int
    unreadable: list[str]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelList:
        return cls(
            items=[ModelSummary.from_json(item) for item in data["items"]],
            total=data["total"],
            limit=data["limit"],
            offset=data["offset"],
            unreadable=list(data.get("unreadable") or []),
            raw=data,
        )


@dataclass(frozen=True)
class InputWarning:
    """A value outside the training range of its feature (``row``: its row in the request)."""

    row: int
    feature: str
    value: float
    min: float
    max: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputWarning:
        return cls(
            row=data["row"],
            feature=data["feature"],
            value=data["value"],
            min=data["min"],
            max=data["max"],
        )


@dataclass(frozen=True)
class Prediction:
    """``POST /predict``: labels, and one probability column per class in ``classes`` order.
    ``model_id``, ``name`` and ``version`` are the model the reference resolved to (for
    ``churn@champion``: which version answered).

    ``warnings``: the first 20 values outside their feature's training range, row by row, and
    ``warnings_total`` how many there are (the predictions are the same without them). With
    ``explain=True``: ``terms`` (the model's columns, as its coefficients are named),
    ``baseline`` (the score, in logits, of the training mean: one per output, that is one for a
    binary model, for ``classes[1]``, else one per class) and ``contributions[row][output][term]``,
    so that ``baseline[output] + sum(contributions[row][output])`` is the row's score; ``None``
    without ``explain``."""

    model_id: str
    name: str | None
    version: int | None
    classes: list[Label]
    predictions: list[Label]
    probabilities: list[list[float]]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    warnings: list[InputWarning] = field(default_factory=list)
    warnings_total: int = 0
    terms: list[str] | None = None
    baseline: list[float] | None = None
    contributions: list[list[list[float]]] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        warnings = [InputWarning.from_json(w) for w in data.get("warnings") or []]
        return cls(
            model_id=data["model_id"],
            name=data.get("name"),
            version=data.get("version"),
            classes=list(data["classes"]),
            predictions=list(data["predictions"]),
            probabilities=data["probabilities"],
            raw=data,
            warnings=warnings,
            warnings_total=data.get("warnings_total", len(warnings)),
            terms=data.get("terms"),
            baseline=data.get("baseline"),
            contributions=data.get("contributions"),
        )

    def to_pandas(self) -> Any:
        """A DataFrame: ``prediction``, then ``proba_<class>`` per class (needs ``[pandas]``)."""
        import pandas as pd

        frame = pd.DataFrame(
            self.probabilities, columns=[f"proba_{c}" for c in self.classes], dtype=float
        )
        frame.insert(0, "prediction", self.predictions)
        return frame


# --- names, versions, aliases and the audit log ------------------------------------------------


@dataclass(frozen=True)
class NameSummary:
    """A registered name (``GET /names``): its newest version (what ``NAME`` serves), how many
    versions it has, and each alias with the version it points to."""

    name: str
    latest_version: int | None
    versions: int
    aliases: dict[str, int]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NameSummary:
        return cls(
            name=data["name"],
            latest_version=data.get("latest_version"),
            versions=data["versions"],
            aliases=dict(data.get("aliases") or {}),
            raw=data,
        )


@dataclass(frozen=True)
class NameList:
    """One page of ``GET /names``."""

    items: list[NameSummary]
    total: int
    limit: int
    offset: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NameList:
        return cls(
            items=[NameSummary.from_json(item) for item in data["items"]],
            total=data["total"],
            limit=data["limit"],
            offset=data["offset"],
            raw=data,
        )


@dataclass(frozen=True)
class NameVersion:
    """One version of a name: the model's ``id`` (usable wherever a reference is), and its
    training summary (``None`` when the model's file cannot be read)."""

    version: int
    id: str
    created_at: datetime
    training: TrainingSummary | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NameVersion:
        training = data.get("training")
        return cls(
            version=data["version"],
            id=data["id"],
            created_at=datetime.fromisoformat(data["created_at"]),
            training=None if training is None else TrainingSummary.from_json(training),
        )


@dataclass(frozen=True)
class NameDetail(NameSummary):
    """``GET /names/{name}``: the summary, and every version, newest first."""

    items: list[NameVersion] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NameDetail:
        summary = NameSummary.from_json(data)
        return cls(
            **{name: getattr(summary, name) for name in NameSummary.__dataclass_fields__},
            items=[NameVersion.from_json(item) for item in data.get("items") or []],
        )


@dataclass(frozen=True)
class AliasChange:
    """What setting or rolling back an alias answers: the version it points to now and the one
    it pointed to before (``None``: the alias was new, or had been deleted)."""

    name: str
    alias: str
    version: int | None
    previous_version: int | None
    changed_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AliasChange:
        return cls(
            name=data["name"],
            alias=data["alias"],
            version=data.get("version"),
            previous_version=data.get("previous_version"),
            changed_at=datetime.fromisoformat(data["changed_at"]),
            raw=data,
        )


@dataclass(frozen=True)
class AliasHistoryItem:
    """One change of an alias: ``action`` is ``set``, ``delete`` or ``rollback``; ``changed_by``
    the id of the API key that made it (never the key)."""

    action: str
    version: int | None
    previous_version: int | None
    changed_at: datetime
    changed_by: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AliasHistoryItem:
        return cls(
            action=data["action"],
            version=data.get("version"),
            previous_version=data.get("previous_version"),
            changed_at=datetime.fromisoformat(data["changed_at"]),
            changed_by=data.get("changed_by"),
        )


@dataclass(frozen=True)
class AliasHistory:
    """``GET /names/{name}/aliases/{alias}/history``: every change, newest first."""

    name: str
    alias: str
    items: list[AliasHistoryItem]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AliasHistory:
        return cls(
            name=data["name"],
            alias=data["alias"],
            items=[AliasHistoryItem.from_json(item) for item in data["items"]],
            raw=data,
        )


@dataclass(frozen=True)
class AuditEntry:
    """One line of the service's audit log: ``action`` (``model.stored``, ``model.deleted``,
    ``alias.set``, ``alias.deleted``, ``alias.rolled_back``, ``job.cancelled``), its ``target``
    (id, name, version, alias; a job's id), ``outcome`` (``ok`` or ``refused: <why>``), the
    API key's id, the client's address and the request's ``X-Request-ID``."""

    time: datetime
    action: str
    target: dict[str, Any]
    outcome: str
    key_id: str | None
    client: str | None
    request_id: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditEntry:
        return cls(
            time=datetime.fromisoformat(data["time"]),
            action=data["action"],
            target=dict(data.get("target") or {}),
            outcome=data["outcome"],
            key_id=data.get("key_id"),
            client=data.get("client"),
            request_id=data.get("request_id"),
            raw=data,
        )


@dataclass(frozen=True)
class AuditList:
    """``GET /audit``: entries oldest first."""

    items: list[AuditEntry]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditList:
        return cls(items=[AuditEntry.from_json(item) for item in data["items"]], raw=data)


# --- training jobs ----------------------------------------------------------------------------

#: A job's states; the last three are final.
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class JobProgress:
    """How far a running job is: ``phase`` (``reading``, ``fitting``, ``saving``), solver
    ``iteration`` of ``max_iter``, the objective ``loss`` and ``grad_norm`` now (converged at
    ``params.tol``), ``rows_read`` and ``elapsed_s`` since the job started."""

    phase: str
    iteration: int
    max_iter: int | None
    loss: float | None
    grad_norm: float | None
    rows_read: int
    elapsed_s: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobProgress:
        return cls(
            phase=data["phase"],
            iteration=data.get("iteration") or 0,
            max_iter=data.get("max_iter"),
            loss=data.get("loss"),
            grad_norm=data.get("grad_norm"),
            rows_read=data.get("rows_read") or 0,
            elapsed_s=data.get("elapsed_s") or 0.0,
        )


@dataclass(frozen=True)
class JobError:
    """Why a job failed: the ``status`` and ``detail`` ``POST /train`` would have answered at
    once (422 unusable data, 413 past a limit, 503 the training process died)."""

    status: int
    detail: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobError:
        return cls(status=int(data["status"]), detail=str(data.get("detail") or ""))


@dataclass(frozen=True)
class JobState:
    """A training job as the service shows it at one moment (``GET /jobs/{id}``): ``status``
    (``queued``, ``running``, then ``succeeded``, ``failed`` or ``cancelled``), ``progress``
    (``None`` until it starts), ``model_id`` once it succeeded, ``error`` once it failed."""

    id: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: JobProgress | None
    model_id: str | None
    error: JobError | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def final(self) -> bool:
        """Whether the job has ended (``succeeded``, ``failed`` or ``cancelled``)."""
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobState:
        progress, error = data.get("progress"), data.get("error")
        return cls(
            id=data["id"],
            status=data["status"],
            created_at=datetime.fromisoformat(data["created_at"]),
            started_at=_time(data.get("started_at")),
            finished_at=_time(data.get("finished_at")),
            progress=None if progress is None else JobProgress.from_json(progress),
            model_id=data.get("model_id"),
            error=None if error is None else JobError.from_json(error),
            raw=data,
        )


@dataclass(frozen=True)
class JobList:
    """One page of ``GET /jobs``, newest first."""

    items: list[JobState]
    total: int
    limit: int
    offset: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobList:
        return cls(
            items=[JobState.from_json(item) for item in data["items"]],
            total=data["total"],
            limit=data["limit"],
            offset=data["offset"],
            raw=data,
        )


@dataclass(frozen=True)
class ColumnSummary:
    """One column of a dataset: ``dtype`` (``float64``, or ``string`` for the label), ``min``,
    ``max`` and ``mean`` over the values present (``None`` for text), ``missing`` cells."""

    name: str
    dtype: str
    min: float | None
    max: float | None
    mean: float | None
    missing: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ColumnSummary:
        return cls(
            name=data["name"],
            dtype=data["dtype"],
            min=data.get("min"),
            max=data.get("max"),
            mean=data.get("mean"),
            missing=data.get("missing") or 0,
        )


@dataclass(frozen=True)
class Dataset:
    """A stored dataset (``POST /datasets``, ``GET /datasets/{id}``): ``rows``, its ``columns``,
    ``bytes`` of its stored (parsed, column-wise) form."""

    id: str
    name: str | None
    rows: int
    columns: list[ColumnSummary]
    bytes: int
    created_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dataset:
        return cls(
            id=data["id"],
            name=data.get("name"),
            rows=data["rows"],
            columns=[ColumnSummary.from_json(c) for c in data["columns"]],
            bytes=data["bytes"],
            created_at=datetime.fromisoformat(data["created_at"]),
            raw=data,
        )


@dataclass(frozen=True)
class DatasetList:
    """One page of ``GET /datasets``, newest first."""

    items: list[Dataset]
    total: int
    limit: int
    offset: int
    unreadable: list[str]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetList:
        return cls(
            items=[Dataset.from_json(item) for item in data["items"]],
            total=data["total"],
            limit=data["limit"],
            offset=data["offset"],
            unreadable=list(data.get("unreadable") or []),
            raw=data,
        )


# --- evaluations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfusionMatrix:
    """``matrix[i][j]``: rows of true class ``labels[i]`` predicted as ``labels[j]``."""

    labels: list[Label]
    matrix: list[list[int]]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConfusionMatrix:
        return cls(labels=list(data["labels"]), matrix=data["matrix"])


@dataclass(frozen=True)
class ClassMetrics:
    """One class's precision, recall and F1 (0 where nothing was predicted), and its rows."""

    label: Label
    precision: float
    recall: float
    f1: float
    support: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassMetrics:
        return cls(
            label=data["label"],
            precision=data["precision"],
            recall=data["recall"],
            f1=data["f1"],
            support=data["support"],
        )


@dataclass(frozen=True)
class CalibrationBin:
    """Rows whose predicted probability of ``label`` is in [``lower``, ``upper``): their
    ``count``, mean prediction and the fraction that were ``label``."""

    label: Label
    lower: float
    upper: float
    count: int
    mean_predicted: float
    fraction_positive: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CalibrationBin:
        return cls(
            label=data["label"],
            lower=data["lower"],
            upper=data["upper"],
            count=data["count"],
            mean_predicted=data["mean_predicted"],
            fraction_positive=data["fraction_positive"],
        )


@dataclass(frozen=True)
class RocCurve:
    label: Label
    fpr: list[float]
    tpr: list[float]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RocCurve:
        return cls(label=data["label"], fpr=data["fpr"], tpr=data["tpr"])


@dataclass(frozen=True)
class Evaluation:
    """``POST /models/{ref}/evaluate``: how good the model is on labelled rows, each number as
    ``sklearn.metrics`` computes it. Binary models: ``roc_auc``, ``average_precision``,
    ``brier`` and ``calibration`` are about ``positive_label``; multi-class: ``roc_auc`` is the
    one-vs-rest macro mean (``roc_auc_weighted`` weighted by class rows). ``roc_auc`` and
    ``average_precision`` are ``None`` when the rows hold one class. ``threshold`` moves the
    predicted class (``accuracy``, ``confusion_matrix``, ``per_class``), not the rest."""

    model_id: str
    name: str | None
    version: int | None
    evaluated_at: datetime
    n: int
    log_loss: float
    accuracy: float
    balanced_accuracy: float
    brier: float
    roc_auc: float | None
    roc_auc_weighted: float | None
    average_precision: float | None
    positive_label: Label | None
    threshold: float | None
    confusion_matrix: ConfusionMatrix
    per_class: list[ClassMetrics]
    calibration: list[CalibrationBin]
    roc_curves: list[RocCurve]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evaluation:
        return cls(
            model_id=data["model_id"],
            name=data.get("name"),
            version=data.get("version"),
            evaluated_at=datetime.fromisoformat(data["evaluated_at"]),
            n=data["n"],
            log_loss=data["log_loss"],
            accuracy=data["accuracy"],
            balanced_accuracy=data["balanced_accuracy"],
            brier=data["brier"],
            roc_auc=data.get("roc_auc"),
            roc_auc_weighted=data.get("roc_auc_weighted"),
            average_precision=data.get("average_precision"),
            positive_label=data.get("positive_label"),
            threshold=data.get("threshold"),
            confusion_matrix=ConfusionMatrix.from_json(data["confusion_matrix"]),
            per_class=[ClassMetrics.from_json(c) for c in data.get("per_class") or []],
            calibration=[CalibrationBin.from_json(b) for b in data.get("calibration") or []],
            roc_curves=[RocCurve.from_json(r) for r in data.get("roc_curves") or []],
            raw=data,
        )


@dataclass(frozen=True)
class EvaluationList:
    """``GET /models/{ref}/evaluations``: the model's last evaluations, newest first; the
    service keeps ``kept`` of them."""

    model_id: str
    items: list[Evaluation]
    kept: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvaluationList:
        return cls(
            model_id=data["model_id"],
            items=[Evaluation.from_json(item) for item in data["items"]],
            kept=data["kept"],
            raw=data,
        )
