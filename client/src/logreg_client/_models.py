"""What the service answers, as frozen dataclasses (no pydantic: the client depends on httpx
only). Each keeps the whole JSON object in ``raw``, so fields the service adds later (a model's
``version``, say) are there before this module names them."""

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
    """A stored model: what ``POST /train`` and ``GET /models`` answer for each."""

    id: str
    name: str | None
    created_at: datetime
    classes: list[Label]
    n_features: int
    feature_names: list[str] | None
    training: TrainingSummary
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSummary:
        return cls(
            id=data["id"],
            name=data.get("name"),
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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelList:
        return cls(
            items=[ModelSummary.from_json(item) for item in data["items"]],
            total=data["total"],
            limit=data["limit"],
            offset=data["offset"],
            unreadable=list(data.get("unreadable") or []),
        )


@dataclass(frozen=True)
class Prediction:
    """``POST /predict``: labels, and one probability column per class in ``classes`` order."""

    model_id: str
    classes: list[Label]
    predictions: list[Label]
    probabilities: list[list[float]]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        return cls(
            model_id=data["model_id"],
            classes=list(data["classes"]),
            predictions=list(data["predictions"]),
            probabilities=data["probabilities"],
        )

    def to_pandas(self) -> Any:
        """A DataFrame: ``prediction``, then ``proba_<class>`` per class (needs ``[pandas]``)."""
        import pandas as pd

        frame = pd.DataFrame(
            self.probabilities, columns=[f"proba_{c}" for c in self.classes], dtype=float
        )
        frame.insert(0, "prediction", self.predictions)
        return frame
