"""Use-cases: train, predict, get, list, delete. Schemas <-> engine <-> store; no FastAPI here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NamedTuple, TypeVar

import numpy as np

from model_store import (
    CorruptModel,
    ModelNotFound,
    ModelStore,
    Record,
    check_model_id,
    new_model_id,
)

from . import metrics
from .config import Settings
from .engine import EngineError, FitParams, InvalidData, InvalidParams, LogisticModel, fit
from .engine.polynomial import PolynomialFeatures, monomial_names, n_output_features
from .engine.statistics import CoefficientStatistics, coefficient_statistics
from .model_cache import ModelCache
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

#: ``model_id`` alias for the newest model, so the docs page's examples work as shipped.
LATEST = "latest"


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
    # records always carry n_features; a bare {"model": ...} (tests, tools) is checked by itself
    default = polynomial.n_input_features if polynomial else (coef.shape[-1] if coef.ndim else 0)
    n_inputs = record.get("n_features", default)
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
        feature_names=record.get("feature_names"),
        training=TrainingSummary(**{k: t[k] for k in TrainingSummary.model_fields}),
    )


@dataclass(frozen=True)
class PreparedModel:
    """A model as the predict path wants it: the engine's model and its labels as an array."""

    model: LogisticModel
    classes: list[Any]
    labels: np.ndarray  # shape (n_classes,): int64 for integer labels, object for strings
    feature_names: list[str] | None = None
    name: str | None = None

    @classmethod
    def from_record(cls, record: Record) -> PreparedModel:
        model = from_record(str(record.get("id", "?")), model_from_record, record)
        classes = list(model.classes)
        is_int = all(type(c) is int for c in classes)
        labels = np.array(classes, dtype=np.int64 if is_int else object)
        return cls(
            model=model,
            classes=classes,
            labels=labels,
            feature_names=record.get("feature_names"),
            name=record.get("name"),
        )

    @property
    def n_features(self) -> int:
        return self.model.n_features

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``model.predict_proba(X)`` bit for bit, for ``X`` already float64, 2-D and finite.

        The binary case is the engine's arithmetic, operation for operation, without its input
        checks and temporaries (a 1-row prediction is mostly call overhead); everything else
        goes to the engine itself.
        """
        m = self.model
        if not self._plain_binary(X):
            return m.predict_proba(X)  # also raises the engine's message for a width mismatch
        z, e = self._binary_scores(X)
        denom = 1.0 + e
        P = np.empty((z.shape[0], 2))
        np.divide(np.where(z <= 0, 1.0, e), denom, out=P[:, 0])
        np.divide(np.where(z >= 0, 1.0, e), denom, out=P[:, 1])
        return P

    def classify(self, X: np.ndarray, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities, index into classes)`` for ``X`` float64, 2-D and finite; the same
        numbers as ``predict_proba`` and ``model.index_from_proba``, bit for bit.

        ``InvalidData`` names the first row whose probabilities are not finite numbers.
        """
        if len(X) <= SMALL_BATCH and self._plain_binary(X):
            return self._classify_small_binary(X, threshold)
        proba = self.predict_proba(X)
        bad = ~np.isfinite(proba).all(axis=1)
        if bad.any():
            raise _overflow(int(np.argmax(bad)))
        return proba, self.model.index_from_proba(proba, threshold=threshold)

    @cached_property
    def _binary_width(self) -> int | None:
        """The number of features of a binary model without polynomial features, else None:
        the models whose probabilities this class computes itself."""
        m = self.model
        return m.n_features if m.multiclass == "binary" and m.polynomial is None else None

    def _plain_binary(self, X: np.ndarray) -> bool:
        return X.shape[1] == self._binary_width

    def _standardised(self, X: np.ndarray) -> np.ndarray:
        m = self.model
        if m.mean is not None and m.scale is not None:
            X = X - m.mean
            X /= m.scale
        return X

    def _binary_scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``z`` of shape (n,), and ``e = exp(-|z|)`` that ``sigmoid(z)`` and ``sigmoid(-z)``
        share (app.engine.loss.sigmoid)."""
        m = self.model
        z = (self._standardised(X) @ m.coef.T + m.intercept)[:, 0]
        return z, np.exp(-np.abs(z))

    def _classify_small_binary(
        self, X: np.ndarray, threshold: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``classify`` for a few rows: the operations of ``predict_proba`` that NumPy does
        elementwise (adding the intercept, ``-|z|``, the divisions) on Python floats, the same
        IEEE operations, because a NumPy call on a tiny array costs more than its arithmetic;
        the matrix product and ``exp`` stay NumPy's (one row: 51 us before, 20 us now)."""
        m = self.model
        b = float(m.intercept[0])
        zs = [d + b for d in (self._standardised(X) @ m.coef.T).ravel().tolist()]
        es = np.exp([-abs(z) for z in zs]).tolist()
        t = 0.5 if threshold is None else threshold
        P, index = [], []
        for row, (zi, ei) in enumerate(zip(zs, es, strict=True)):
            if zi != zi:  # NaN: the inputs overflowed the standardisation or the score
                raise _overflow(row)
            d = 1.0 + ei
            p1 = (1.0 if zi >= 0 else ei) / d
            P.append(((1.0 if zi <= 0 else ei) / d, p1))
            index.append(p1 >= t)
        return np.array(P), np.array(index, dtype=np.intp)


#: Up to this many rows, ``PreparedModel.classify`` works on Python floats (measured faster).
SMALL_BATCH = 16


def _overflow(row: int) -> InvalidData:
    return InvalidData(
        f"features[{row}]: values too large for this model (its score overflows 64-bit floats)"
    )


class Prediction(NamedTuple):  # a NamedTuple: a third of a frozen dataclass's cost to build
    classes: list[Any]
    predictions: np.ndarray  # shape (n_samples,), labels
    probabilities: np.ndarray  # shape (n_samples, n_classes)
    model_id: str = ""  # the model's id (``latest`` resolved)


class ModelService:
    def __init__(self, store: ModelStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.cache: ModelCache[PreparedModel] = ModelCache(
            store, PreparedModel.from_record, size=settings.model_cache_size
        )

    def _check_size(self, n_rows: int, n_features: int) -> None:
        s = self.settings
        if n_rows > s.max_rows:
            raise LimitExceeded(f"features: {n_rows} rows is more than the limit of {s.max_rows}")
        if n_features > s.max_features:
            raise LimitExceeded(
                f"features: {n_features} columns is more than the limit of {s.max_features}"
            )

    def train(self, request: TrainRequest, X: np.ndarray | None = None) -> ModelSummary:
        """Fit and store a model. ``X`` (n_samples, n_features): the rows if decoded apart,
        in which case ``request.features`` is a placeholder."""
        s = self.settings
        if X is None:
            X = np.asarray(request.features, dtype=np.float64)
        n_rows, n_features = X.shape
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
        # Finite but huge values (|x| near 1e308) overflow the standardisation or the scores;
        # that is the data's problem, answered below as a 422, not a warning in the logs.
        with metrics.timed_training(), np.errstate(over="ignore", invalid="ignore"):
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
        """The model, from this process's cache (checked against the stored file) or the store."""
        return self.cache.get(check_model_id(model_id)).model

    def prepared(self, model_id: str) -> PreparedModel:
        """A stored model with what the front ends check inputs against (number and names of
        features, classes), from the cache."""
        return self.cache.get(check_model_id(model_id))

    def predict_array(
        self, model_id: str, X: np.ndarray, *, threshold: float | None = None
    ) -> Prediction:
        """Labels and probabilities for ``X`` of shape (n_samples, n_features).

        The one prediction path: the JSON, CSV and Open Inference Protocol front ends all call it.
        """
        self._check_size(X.shape[0], X.shape[1])
        model_id = self.resolve(model_id)
        prepared = self.cache.get(check_model_id(model_id))
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                proba, index = prepared.classify(X, threshold)
            except EngineError:
                raise
            except SHAPE_ERRORS as exc:  # a stored model that passed the checks but cannot work
                raise CorruptModel(model_id, f"cannot predict ({exc})") from None
        metrics.record_predictions(
            model_id, X.shape[0], max_model_ids=self.settings.metrics_max_model_ids
        )
        return Prediction(
            classes=prepared.classes,
            predictions=prepared.labels[index],
            probabilities=proba,
            model_id=model_id,
        )

    def resolve(self, model_id: str) -> str:
        """``model_id``, or for ``latest`` the id of the newest model."""
        if model_id != LATEST:
            return model_id
        newest = self.store.list(limit=1).entries
        if not newest:
            raise ModelNotFound(LATEST)
        return newest[0][0]

    def predict(self, request: PredictRequest) -> PredictResponse:
        p = self.predict_array(
            request.model_id,
            np.asarray(request.features, dtype=np.float64),
            threshold=request.threshold,
        )
        return PredictResponse(
            model_id=p.model_id,
            classes=p.classes,
            predictions=p.predictions.tolist(),
            probabilities=p.probabilities.tolist(),
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
        self.cache.discard(model_id)


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
