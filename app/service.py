"""Use-cases: train, predict, get, list, delete. Schemas <-> engine <-> store; no FastAPI here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np

from model_store import CorruptModel, ModelStore, Record, check_model_id, new_model_id

from .config import Settings
from .engine import EngineError, FitParams, InvalidData, InvalidParams, LogisticModel, fit
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


T = TypeVar("T")
#: What reading a record of the wrong shape raises (a file edited by hand whose checksum was
#: recomputed, or written by an incompatible version): the model is corrupt, not the server.
SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError)


def from_record(model_id: str, build: Callable[[Record], T], record: Record) -> T:
    """``build(record)``, with a record of the wrong shape reported as ``CorruptModel``.

    The record must hold a usable model whatever is built from it, so that listing, reading
    and predicting agree on which models are corrupt.
    """
    try:
        if build is not model_from_record:
            model_from_record(record)
        return build(record)
    except SHAPE_ERRORS as exc:
        raise CorruptModel(model_id, f"unexpected content ({type(exc).__name__}: {exc})") from None


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


def all_finite(model: LogisticModel) -> bool:
    poly = model.polynomial
    arrays: list[np.ndarray | None] = [model.coef, model.intercept, model.mean, model.scale]
    if poly is not None:
        arrays += [poly.mean, poly.scale]
    return all(bool(np.isfinite(a).all()) for a in arrays if a is not None)


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
    """The engine's model from a stored record; ``ValueError`` if its arrays do not fit together."""
    m = record["model"]

    def arr(v: Any) -> np.ndarray | None:
        return None if v is None else np.asarray(v, dtype=np.float64)

    classes = tuple(m["classes"])
    intercept = np.asarray(m["intercept"], dtype=np.float64)
    coef = np.asarray(m["coef"], dtype=np.float64)
    mean, scale = arr(m["mean"]), arr(m["scale"])
    poly = m.get("polynomial")  # absent in records stored before polynomial models: degree 1
    polynomial = (
        None
        if poly is None
        else PolynomialFeatures(
            n_input_features=poly["n_input_features"],
            degree=poly["degree"],
            mean=arr(poly["mean"]),
            scale=arr(poly["scale"]),
        )
    )
    n_out = 1 if m["multiclass"] == "binary" else len(classes)
    n_inputs = record["n_features"]
    width = n_inputs if polynomial is None else polynomial.n_output_features
    if (
        len(classes) < 2
        or intercept.shape != (n_out,)
        or coef.shape != (n_out, width)
        or any(a is not None and a.shape != (width,) for a in (mean, scale))
        or (
            polynomial is not None
            and (
                polynomial.n_input_features != n_inputs
                or any(
                    a is not None and a.shape != (n_inputs,)
                    for a in (polynomial.mean, polynomial.scale)
                )
            )
        )
    ):
        raise ValueError("the model's arrays do not have consistent shapes")
    model = LogisticModel(
        classes=classes,
        multiclass=m["multiclass"],
        coef=coef,
        intercept=intercept,
        mean=mean,
        scale=scale,
        polynomial=polynomial,
    )
    if not all_finite(model):
        raise ValueError("the model holds values that are not finite numbers")
    return model


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
        s = self.settings
        n_rows, n_features = len(request.features), len(request.features[0])
        self._check_size(n_rows, n_features)
        p = request.params
        if "max_iter" not in p.model_fields_set and p.max_iter > s.max_iter:
            # the default must not break a service configured with a lower MAX_ITER
            p = p.model_copy(update={"max_iter": s.max_iter})
        if p.max_iter > s.max_iter:
            raise InvalidParams(
                f"params.max_iter: {p.max_iter} is more than the limit of {s.max_iter}"
            )
        n_classes = len(set(request.labels))
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
        X = np.asarray(request.features, dtype=np.float64)
        # Finite but huge values (|x| near 1e308) overflow the standardisation or the scores;
        # that is the data's problem, answered below as a 422, not a warning in the logs.
        with np.errstate(over="ignore", invalid="ignore"):
            result = fit(X, request.labels, params=fit_params, sample_weight=request.sample_weight)
        report = result.report
        if not all_finite(result.model) or not np.isfinite(report.loss):
            raise InvalidData(
                "features: values too large to train on (a column's mean, spread or the "
                "model's scores overflow 64-bit floats); rescale the data"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            stats, stats_note = coefficient_statistics(
                X,
                request.labels,
                result,
                params=fit_params,
                feature_names=request.feature_names,
                sample_weight=request.sample_weight,
            )
        record: Record = {
            "id": new_model_id(),
            "name": request.name,
            "created_at": datetime.now(UTC).isoformat(),
            "n_features": n_features,
            "feature_names": request.feature_names,
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
        record = self.store.load(check_model_id(model_id))
        return from_record(model_id, model_from_record, record)

    def predict(self, request: PredictRequest) -> PredictResponse:
        self._check_size(len(request.features), len(request.features[0]))
        model = self.load_model(request.model_id)
        X = np.asarray(request.features, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                proba = model.predict_proba(X)
            except EngineError:
                raise
            except SHAPE_ERRORS as exc:  # a stored model that passed the checks but cannot work
                raise CorruptModel(request.model_id, f"cannot predict ({exc})") from None
        bad = ~np.isfinite(proba).all(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            raise InvalidData(
                f"features[{row}]: values too large for this model (its score overflows "
                "64-bit floats)"
            )
        index = model.index_from_proba(proba, threshold=request.threshold)
        classes = list(model.classes)
        return PredictResponse(
            model_id=request.model_id,
            classes=classes,
            predictions=[classes[i] for i in index],
            probabilities=proba.tolist(),
        )

    def get(self, model_id: str) -> ModelDetail:
        record = self.store.load(check_model_id(model_id))
        return from_record(model_id, detail_from_record, record)

    def list(self, *, limit: int, offset: int) -> ModelList:
        listing = self.store.list(offset=offset, limit=limit)
        items, unreadable = [], []
        for model_id, entry in listing.entries:
            if isinstance(entry, CorruptModel):
                unreadable.append(model_id)
                continue
            try:
                items.append(from_record(model_id, summary_from_record, entry))
            except CorruptModel:
                unreadable.append(model_id)
        return ModelList(
            items=items, total=listing.total, limit=limit, offset=offset, unreadable=unreadable
        )

    def count(self) -> int:
        return self.store.count()

    def delete(self, model_id: str) -> None:
        self.store.delete(check_model_id(model_id))


def detail_from_record(record: Record) -> ModelDetail:
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
                    record["feature_names"] or [f"x{i}" for i in range(poly["n_input_features"])],
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
