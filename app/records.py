"""Stored records: the engine's model <-> the record the store keeps <-> the response schemas.
No FastAPI here, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from operator import le
from typing import Any, TypeVar

import numpy as np
import orjson

from model_store import CorruptModel, Record

from .engine import LogisticModel, TrainingReport
from .engine.polynomial import PolynomialFeatures, monomial_names, n_output_features
from .engine.profile import InputProfile, out_of_range
from .engine.statistics import CoefficientStatistics
from .schemas import (
    CoefficientTable,
    ModelDetail,
    ModelParameters,
    ModelSummary,
    PolynomialParameters,
    TrainingSummary,
    TrainParams,
)

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


#: The widest a number gets in a model's file: 24 characters (``-1.2345678901234567e-100``),
#: the indentation of the coefficients' rows (8 spaces) and ``,\n``, as the store writes it
#: (``model_store.json_store.encode``: sorted, indented JSON).
FILE_BYTES_PER_NUMBER = 34
#: A model's file besides its arrays and names: the settings, the training report and its loss
#: history, the coefficient statistics (at most 1,000 rows).
FILE_BYTES_OTHER = 1024 * 1024
PROFILE_NUMBERS_PER_FEATURE = 23
#: ``ServedModel.out_of_range`` compares up to this many values on Python floats (a row or two:
#: past that, NumPy's three calls cost less).
SMALL_CELLS = 64


def model_file_bytes(
    *, classes: Collection[Any], n_features: int, degree: int, names: Sequence[str] | None
) -> int:
    """An upper estimate of the size of a model's file, from the sizes of its training request:
    the coefficients (one row per output), the standardisations, the labels and feature names
    (``model_to_record``; names are counted twice, for the statistics table)."""
    q = n_output_features(n_features, degree)
    outputs = 1 if len(classes) == 2 else len(classes)
    numbers = outputs * (q + 1) + 2 * q + (2 * n_features if degree > 1 else 0)
    # the input profile (range, mean, std, 9 decile edges and 10 shares per feature) and, for a
    # model without standardisation, the training mean of each design column
    numbers += PROFILE_NUMBERS_PER_FEATURE * n_features + q
    text = sum(len(orjson.dumps(v)) + 8 for v in classes) + 2 * sum(
        len(orjson.dumps(v)) + 8 for v in names or ()
    )
    return FILE_BYTES_PER_NUMBER * numbers + text + FILE_BYTES_OTHER


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


def profile_to_record(p: InputProfile) -> dict[str, Any]:
    return {
        "min": p.minimum.tolist(),
        "max": p.maximum.tolist(),
        "mean": p.mean.tolist(),
        "std": p.std.tolist(),
        "deciles": p.edges.tolist(),
        "decile_fractions": p.fractions.tolist(),
    }


def profile_from_record(record: Record) -> InputProfile | None:
    """The stored input profile (``None`` for models stored before profiles existed);
    ``ValueError`` when its arrays do not fit the model's inputs."""
    raw = record.get("inputs")
    if raw is None:
        return None
    n = record["n_features"]
    p = InputProfile(
        minimum=np.asarray(raw["min"], dtype=np.float64),
        maximum=np.asarray(raw["max"], dtype=np.float64),
        mean=np.asarray(raw["mean"], dtype=np.float64),
        std=np.asarray(raw["std"], dtype=np.float64),
        edges=np.asarray(raw["deciles"], dtype=np.float64),
        fractions=np.asarray(raw["decile_fractions"], dtype=np.float64),
    )
    if any(a.shape != (n,) for a in (p.minimum, p.maximum, p.mean, p.std)) or (
        p.edges.shape != (n, 9) or p.fractions.shape != (n, 10)
    ):
        raise ValueError("the input profile's arrays do not fit the model's features")
    return p


def design_names(record: Record) -> list[str]:
    """The names of a model's design columns, as ``coefficients`` names them: the feature names
    (``x0``, ``x1``... without), or their monomials for a polynomial model."""
    n = record["n_features"]
    names = record.get("feature_names") or [f"x{i}" for i in range(n)]
    poly = record["model"].get("polynomial")
    return names if poly is None else monomial_names(names, poly["degree"])


def training_warnings(report: TrainingReport, *, solver: str) -> list[str]:
    """What a user should know about a training that kept a model: why it did not converge and
    what to change (``solver``: the one asked for, ``auto`` or a named one)."""
    if report.converged:
        return []
    n = report.iterations
    iterations = f"{n} iteration{'' if n == 1 else 's'}"
    if report.stopped_by == "time_budget":
        return [
            f"did not converge: stopped by the time budget (TRAIN_TIME_BUDGET) after "
            f"{iterations}; train on fewer rows or features, or ask the operator for more time"
        ]
    if report.stopped_by == "line_search":
        return [
            f"did not converge: no step lowered the cost after {iterations} (the limit of "
            "floating-point precision, or badly scaled features); raise tol, or standardize"
        ]
    advice = "raise max_iter" if solver == "auto" else "raise max_iter or use solver auto"
    return [f"did not converge in {iterations}; {advice}"]


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
        version=record.get("version"),
        created_at=datetime.fromisoformat(record["created_at"]),
        classes=record["model"]["classes"],
        n_features=record["n_features"],
        feature_names=record.get("feature_names"),
        # a key the record lacks takes its default (``warnings``), or fails validation
        training=TrainingSummary(**{k: t[k] for k in TrainingSummary.model_fields if k in t}),
        dataset=record.get("dataset"),
    )


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
        links={
            "report": f"/models/{record['id']}/report",
            "evaluations": f"/models/{record['id']}/evaluations",
        },
    )


@dataclass(frozen=True)
class ServedModel:
    """A stored model as the predict paths need it: the engine's model, its id and what the
    front ends check inputs against (number and names of features)."""

    id: str
    model: LogisticModel
    feature_names: list[str] | None = None
    name: str | None = None
    version: int | None = None
    #: the training inputs' profile (``None``: stored before profiles existed)
    profile: InputProfile | None = None
    #: training means of the design columns of a model without standardisation (``explain``)
    centre: np.ndarray | None = None
    #: names of the design columns (``explain``)
    design_names: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, record: Record) -> ServedModel:
        model_id = str(record.get("id", "?"))

        def extras(r: Record) -> tuple[InputProfile | None, np.ndarray | None, list[str]]:
            centre = r.get("design_mean")
            return (
                profile_from_record(r),
                None if centre is None else np.asarray(centre, dtype=np.float64),
                design_names(r),
            )

        model = from_record(model_id, model_from_record, record)
        profile, centre, names = from_record(model_id, extras, record)
        if centre is not None and centre.shape != (model.coef.shape[1],):
            raise CorruptModel(model_id, "design_mean does not fit the model's columns")
        return cls(
            id=model_id,
            model=model,
            feature_names=record.get("feature_names"),
            name=record.get("name"),
            version=record.get("version"),
            profile=profile,
            centre=centre,
            design_names=tuple(names),
        )

    @property
    def n_features(self) -> int:
        return self.model.n_features

    @cached_property
    def input_names(self) -> list[str]:
        """The names of the input features (``x0``, ``x1``... for a model without names)."""
        return self.feature_names or [f"x{j}" for j in range(self.n_features)]

    @cached_property
    def _range(self) -> tuple[list[float], list[float]]:
        assert self.profile is not None
        return self.profile.minimum.tolist(), self.profile.maximum.tolist()

    def out_of_range(self, X: np.ndarray) -> list[tuple[int, int]]:
        """``(row, feature)`` of each value of ``X`` (n_samples, n_features) outside the
        training range, row by row (none for a model stored without a profile). Up to
        ``SMALL_CELLS`` values, compared as Python floats; more, by one NumPy test of the whole
        batch, and only a batch with some value outside is searched for which."""
        if self.profile is None:
            return []
        if X.size <= SMALL_CELLS:
            lows, highs = self._range
            rows = X.tolist()
            if all([all(map(le, lows, row)) and all(map(le, row, highs)) for row in rows]):
                return []  # the usual case, without a Python-level loop
            return [
                (i, j)
                for i, row in enumerate(rows)
                for j, (v, lo, hi) in enumerate(zip(row, lows, highs, strict=True))
                if v < lo or v > hi
            ]
        lo, hi = self.profile.minimum, self.profile.maximum
        if not ((lo > X) | (hi < X)).any():
            return []
        return [(int(i), int(j)) for i, j in out_of_range(X, lo, hi)]

    @cached_property
    def classes(self) -> list[Any]:
        """The model's classes, as answers list them (one list, shared: not to be changed)."""
        return list(self.model.classes)

    def nbytes(self) -> int:
        """The memory this model holds, as the cache counts it (``MODEL_CACHE_BYTES``)."""
        m = self.model
        arrays = [m.coef, m.intercept, m.mean, m.scale]
        if m.polynomial is not None:
            arrays += [m.polynomial.mean, m.polynomial.scale]
        size = sum(a.nbytes for a in arrays if a is not None)
        if self.profile is not None:
            size += 8 * PROFILE_NUMBERS_PER_FEATURE * len(self.profile.mean)
        if self.centre is not None:
            size += self.centre.nbytes
        names = [*map(str, m.classes), *(self.feature_names or ())]
        return size + sum(len(n) + 64 for n in names) + 1024
