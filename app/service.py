"""Use-cases: train, predict, get, list, delete. Schemas <-> engine <-> store; no FastAPI here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from model_store import CorruptModel, ModelStore, Record, check_model_id, new_model_id

from .config import Settings
from .engine import FitParams, InvalidParams, LogisticModel, fit
from .engine.polynomial import PolynomialFeatures, monomial_names, n_output_features
from .engine.statistics import CoefficientStatistics, coefficient_statistics
from .schemas import (
    CoefficientTable,
    ModelDetail,
    ModelList,
    ModelParameters,
    ModelSummary,
    PolynomialParameters,
    PredictRequest,
    PredictResponse,
    TrainingSummary,
    TrainParams,
    TrainRequest,
)


class LimitExceeded(ValueError):
    """A request is larger than the service's configured limits allow (HTTP 413)."""


@dataclass(frozen=True)
class Prediction:
    """What a model says about some rows; every front end (JSON, CSV, V2) formats this one result.

    Attributes
    ----------
    classes : tuple of int or str, length n_classes
        The model's labels; ``probabilities`` columns follow this order.
    index : ndarray of shape (n_samples,)
        Index into ``classes`` of each row's predicted label.
    probabilities : ndarray of shape (n_samples, n_classes)
    """

    model_id: str
    classes: tuple[Any, ...]
    index: np.ndarray
    probabilities: np.ndarray

    @property
    def labels(self) -> list[Any]:
        """Predicted labels, of the kind (int or str) the model was trained with."""
        return [self.classes[i] for i in self.index]


def _floats(a: np.ndarray | None) -> list[Any] | None:
    return None if a is None else a.tolist()


def model_to_record(model: LogisticModel) -> dict[str, Any]:
    return {
        "multiclass": model.multiclass,
        "classes": list(model.classes),
        "coef": model.coef.tolist(),
        "intercept": model.intercept.tolist(),
        "mean": _floats(model.mean),
        "scale": _floats(model.scale),
        "polynomial": None
        if model.polynomial is None
        else {
            "degree": model.polynomial.degree,
            "n_input_features": model.polynomial.n_input_features,
            "mean": _floats(model.polynomial.mean),
            "scale": _floats(model.polynomial.scale),
        },
    }


def statistics_to_record(stats: CoefficientStatistics | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {
        "coefficients": stats.rows(),
        "log_likelihood": stats.log_likelihood,
        "n_samples": stats.n_samples,
        "newton_steps": stats.newton_steps,
    }


#: Shown for models stored before coefficient statistics existed (no key in the record).
STATISTICS_NOT_STORED = "not computed: the model was stored before coefficient statistics existed"


def model_from_record(record: Record) -> LogisticModel:
    m = record["model"]

    def arr(v: Any) -> np.ndarray | None:
        return None if v is None else np.asarray(v, dtype=np.float64)

    coef = np.asarray(m["coef"], dtype=np.float64).reshape(len(m["intercept"]), -1)
    poly = m.get("polynomial")  # absent in records stored before polynomial models: degree 1
    return LogisticModel(
        classes=tuple(m["classes"]),
        multiclass=m["multiclass"],
        coef=coef,
        intercept=np.asarray(m["intercept"], dtype=np.float64),
        mean=arr(m["mean"]),
        scale=arr(m["scale"]),
        polynomial=None
        if poly is None
        else PolynomialFeatures(
            n_input_features=poly["n_input_features"],
            degree=poly["degree"],
            mean=arr(poly["mean"]),
            scale=arr(poly["scale"]),
        ),
    )


def summary_from_record(record: Record) -> ModelSummary:
    t = record["training"]
    return ModelSummary(
        id=record["id"],
        name=record["name"],
        created_at=datetime.fromisoformat(record["created_at"]),
        classes=record["model"]["classes"],
        n_features=record["n_features"],
        feature_names=record["feature_names"],
        training=TrainingSummary(**{k: t[k] for k in TrainingSummary.model_fields}),
    )


def prediction_response(prediction: Prediction) -> PredictResponse:
    return PredictResponse(
        model_id=prediction.model_id,
        classes=list(prediction.classes),
        predictions=prediction.labels,
        probabilities=prediction.probabilities.tolist(),
    )


class ModelService:
    def __init__(self, store: ModelStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def _check_size(self, n_rows: int, n_features: int) -> None:
        s = self.settings
        if n_rows > s.max_rows:
            raise LimitExceeded(f"features: {n_rows} rows is more than the limit of {s.max_rows}")
        if n_features > s.max_features:
            raise LimitExceeded(
                f"features: {n_features} columns is more than the limit of {s.max_features}"
            )

    def train(self, request: TrainRequest) -> ModelSummary:
        return self.train_arrays(
            np.asarray(request.features, dtype=np.float64),
            request.labels,
            feature_names=request.feature_names,
            name=request.name,
            params=request.params,
            sample_weight=request.sample_weight,
        )

    def train_arrays(
        self,
        X: np.ndarray,
        labels: list[Any],
        *,
        feature_names: list[str] | None,
        name: str | None,
        params: TrainParams,
        sample_weight: list[float] | None = None,
    ) -> ModelSummary:
        """Train on ``X`` of shape (n_samples, n_features) and one label per row (weighted by
        ``sample_weight``, one per row, if given); keep the model.

        The JSON and CSV front ends both end here, after checking their own input.
        """
        s = self.settings
        n_rows, n_features = X.shape
        self._check_size(n_rows, n_features)
        p = params
        if p.max_iter > s.max_iter:
            raise InvalidParams(
                f"params.max_iter: {p.max_iter} is more than the limit of {s.max_iter}"
            )
        n_classes = len(set(labels))
        if n_classes > s.max_classes:
            raise LimitExceeded(
                f"labels: {n_classes} distinct classes is more than the limit of {s.max_classes}"
            )
        if p.polynomial_degree > 1:
            expanded = n_output_features(n_features, p.polynomial_degree)
            if expanded > s.max_features:
                raise LimitExceeded(
                    f"params.polynomial_degree: degree {p.polynomial_degree} on {n_features} "
                    f"features makes {expanded} columns, more than the limit of "
                    f"{s.max_features} (MAX_FEATURES)"
                )
        fit_params = FitParams(**p.model_dump(), time_budget=s.train_time_budget)
        result = fit(X, labels, params=fit_params, sample_weight=sample_weight)
        stats, stats_note = coefficient_statistics(
            X,
            labels,
            result,
            params=fit_params,
            feature_names=feature_names,
            sample_weight=sample_weight,
        )
        report = result.report
        record: Record = {
            "id": new_model_id(),
            "name": name,
            "created_at": datetime.now(UTC).isoformat(),
            "n_features": n_features,
            "feature_names": feature_names,
            "params": p.model_dump(),
            "model": model_to_record(result.model),
            "training": {
                "solver": report.solver,
                "iterations": report.iterations,
                "converged": report.converged,
                "stopped_by": report.stopped_by,
                "loss": report.loss,
                "grad_norm": report.grad_norm,
                "accuracy": report.accuracy,
                "seconds": report.seconds,
                "n_samples": report.n_samples,
                "passes": report.passes,
                "loss_history": report.history,
            },
            "statistics": statistics_to_record(stats),
            "statistics_note": stats_note,
        }
        self.store.save(record)
        return summary_from_record(record)

    def load_model(self, model_id: str) -> LogisticModel:
        return model_from_record(self.store.load(check_model_id(model_id)))

    def describe(self, model_id: str) -> ModelSummary:
        """The summary of a stored model (classes, number and names of features...)."""
        return summary_from_record(self.store.load(check_model_id(model_id)))

    def predict_array(
        self, model_id: str, X: np.ndarray, *, threshold: float | None = None
    ) -> Prediction:
        """Classify ``X`` of shape (n_samples, n_features) with a stored model.

        The one prediction path: the JSON, CSV and Open Inference Protocol front ends all call it.
        """
        self._check_size(*X.shape)
        model = self.load_model(model_id)
        proba = model.predict_proba(X)
        index = model.index_from_proba(proba, threshold=threshold)
        return Prediction(
            model_id=model_id, classes=model.classes, index=index, probabilities=proba
        )

    def predict(self, request: PredictRequest) -> PredictResponse:
        X = np.asarray(request.features, dtype=np.float64)
        return prediction_response(
            self.predict_array(request.model_id, X, threshold=request.threshold)
        )

    def get(self, model_id: str) -> ModelDetail:
        record = self.store.load(check_model_id(model_id))
        summary = summary_from_record(record)
        m = record["model"]
        poly = m.get("polynomial")
        stats = record.get("statistics")
        return ModelDetail(
            **summary.model_dump(),
            params=TrainParams(**record["params"]),
            parameters=ModelParameters(
                multiclass=m["multiclass"],
                coef=m["coef"],
                intercept=m["intercept"],
                mean=m["mean"],
                scale=m["scale"],
                polynomial=None
                if poly is None
                else PolynomialParameters(
                    degree=poly["degree"],
                    mean=poly["mean"],
                    scale=poly["scale"],
                    features=monomial_names(
                        record["feature_names"]
                        or [f"x{i}" for i in range(poly["n_input_features"])],
                        poly["degree"],
                    ),
                ),
            ),
            loss_history=record["training"]["loss_history"],
            statistics=None if stats is None else CoefficientTable(**stats),
            statistics_note=record.get("statistics_note", STATISTICS_NOT_STORED)
            if stats is None
            else None,
        )

    def list(self, *, limit: int, offset: int) -> ModelList:
        listing = self.store.list(offset=offset, limit=limit)
        items, unreadable = [], []
        for model_id, entry in listing.entries:
            if isinstance(entry, CorruptModel):
                unreadable.append(model_id)
            else:
                items.append(summary_from_record(entry))
        return ModelList(
            items=items, total=listing.total, limit=limit, offset=offset, unreadable=unreadable
        )

    def count(self) -> int:
        return self.store.count()

    def delete(self, model_id: str) -> None:
        self.store.delete(check_model_id(model_id))
