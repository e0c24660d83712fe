"""Fit and predict: arrays in, arrays and frozen dataclasses out. No web, no files."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .errors import InvalidData, InvalidParams
from .loss import Array, LogisticLoss, log_sigmoid, sigmoid
from .polynomial import PolynomialFeatures, check_degree, fit_polynomial
from .preprocessing import Standardizer, check_features
from .solvers import SolverResult, gradient_descent

SOLVERS = ("gd",)
MULTICLASS = ("ovr",)


@dataclass(frozen=True)
class FitParams:
    """Training settings. See ``LogisticLoss`` for the objective that ``l2`` enters."""

    solver: str = "gd"
    learning_rate: float | None = None
    max_iter: int = 1000
    tol: float = 1e-4
    l2: float = 1e-4
    multiclass: str = "ovr"
    standardize: bool = True
    fit_intercept: bool = True
    polynomial_degree: int = 1  # monomials up to this degree (see ``polynomial``); 1 = linear
    time_budget: float | None = None  # seconds; the solver stops (not converged) past it

    def validate(self) -> None:
        if self.solver not in SOLVERS:
            raise InvalidParams(
                f"params.solver: must be one of {list(SOLVERS)}, got {self.solver!r}"
            )
        if self.multiclass not in MULTICLASS:
            raise InvalidParams(
                f"params.multiclass: must be one of {list(MULTICLASS)}, got {self.multiclass!r}"
            )
        if self.learning_rate is not None and not (
            np.isfinite(self.learning_rate) and self.learning_rate > 0
        ):
            raise InvalidParams("params.learning_rate: must be a positive number")
        if self.max_iter < 1:
            raise InvalidParams("params.max_iter: must be at least 1")
        if not (np.isfinite(self.tol) and self.tol >= 0):
            raise InvalidParams("params.tol: must be a non-negative number")
        if not (np.isfinite(self.l2) and self.l2 >= 0):
            raise InvalidParams("params.l2: must be a non-negative number")
        check_degree(self.polynomial_degree)


@dataclass(frozen=True)
class LogisticModel:
    """A trained model: everything needed to predict, nothing else.

    Attributes
    ----------
    classes : tuple of int or str, length n_classes
        Sorted class labels; probability columns follow this order.
    multiclass : {"binary", "ovr"}
        "binary" has one output (for ``classes[1]``); "ovr" has one output per class.
    coef : ndarray of shape (n_outputs, n_design_features)
        Weights in the preprocessed (expanded, standardised) feature space.
    intercept : ndarray of shape (n_outputs,)
    mean, scale : ndarray of shape (n_design_features,) or None
        Standardisation applied just before ``coef``: ``(x - mean) / scale``.
    polynomial : PolynomialFeatures or None
        Expansion applied to the inputs first (``None``: linear model, and
        ``n_design_features == n_features``).
    """

    classes: tuple[Any, ...]
    multiclass: str
    coef: Array
    intercept: Array
    mean: Array | None = None
    scale: Array | None = None
    polynomial: PolynomialFeatures | None = None

    @property
    def n_features(self) -> int:
        """Number of input columns ``predict`` takes."""
        if self.polynomial is not None:
            return self.polynomial.n_input_features
        return int(self.coef.shape[1])

    def transform(self, X: Array) -> Array:
        """Raw inputs (n_samples, n_features) -> design matrix (n_samples, n_design_features)."""
        if self.polynomial is not None:
            X = self.polynomial.transform(X)
        if self.mean is None or self.scale is None:
            return X
        return Standardizer(self.mean, self.scale).transform(X)

    def decision_function(self, X: ArrayLike) -> Array:
        """Raw scores ``z = x . w + b`` of shape (n_samples, n_outputs)."""
        Xc = check_features(X, n_features=self.n_features)
        return self.transform(Xc) @ self.coef.T + self.intercept

    def predict_proba(self, X: ArrayLike) -> Array:
        """Class probabilities of shape (n_samples, n_classes), columns in ``classes`` order.

        Binary: ``[1 - h(x), h(x)]``. One-vs-all: the K values ``h_k(x)`` normalised to sum to 1
        (done in the log domain so that rows where every ``h_k`` underflows stay defined).
        """
        Z = self.decision_function(X)
        if self.multiclass == "binary":
            p1 = sigmoid(Z[:, 0])
            return np.column_stack([sigmoid(-Z[:, 0]), p1])
        log_h = log_sigmoid(Z)
        log_h -= log_h.max(axis=1, keepdims=True)
        P = np.exp(log_h)
        P /= P.sum(axis=1, keepdims=True)
        return P

    def index_from_proba(self, proba: Array, *, threshold: float | None = None) -> np.ndarray:
        """Index into ``classes`` of the predicted class of each row of ``predict_proba``'s output.

        Binary: ``classes[1]`` where ``h(x) >= threshold`` (default 0.5). One-vs-all: the class
        whose ``h`` is largest (``threshold`` does not apply).
        """
        if self.multiclass == "binary":
            t = 0.5 if threshold is None else threshold
            return (proba[:, 1] >= t).astype(np.intp)
        if threshold is not None:
            raise InvalidParams("threshold: applies to binary models only")
        return np.argmax(proba, axis=1)

    def predict_index(self, X: ArrayLike, *, threshold: float | None = None) -> np.ndarray:
        return self.index_from_proba(self.predict_proba(X), threshold=threshold)

    def predict(self, X: ArrayLike, *, threshold: float | None = None) -> list[Any]:
        """Predicted labels, of the same kind (int or str) as the training labels."""
        return [self.classes[i] for i in self.predict_index(X, threshold=threshold)]


@dataclass(frozen=True)
class TrainingReport:
    solver: str
    iterations: int
    converged: bool
    loss: float
    accuracy: float
    seconds: float
    n_samples: int
    stopped_by: str
    grad_norm: float
    history: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class FitResult:
    model: LogisticModel
    report: TrainingReport


def encode_labels(y: ArrayLike) -> tuple[tuple[Any, ...], np.ndarray]:
    """Sorted distinct labels and the index of each row's label among them.

    Labels must be all integers or all strings; at least two distinct labels are needed.
    """
    labels = list(np.asarray(y, dtype=object).ravel()) if not isinstance(y, list) else y
    if not labels:
        raise InvalidData("labels: must not be empty")
    kinds = {type(v) for v in labels}
    if any(k is bool for k in kinds) or not (
        kinds <= {str} or all(issubclass(k, (int, np.integer)) for k in kinds)
    ):
        raise InvalidData("labels: must be all integers or all strings")
    classes, index = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2:
        raise InvalidData(
            f"labels: need at least two distinct classes, got only {classes[0].item()!r}"
        )
    as_py = tuple(c.item() if hasattr(c, "item") else c for c in classes)
    return as_py, index.ravel()


def fit(
    X: ArrayLike,
    y: ArrayLike,
    *,
    params: FitParams | None = None,
) -> FitResult:
    """Fit logistic regression to ``X`` and labels ``y``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Finite numbers.
    y : array-like of shape (n_samples,)
        Integer or string labels, at least two distinct.
    params : FitParams, optional

    Returns
    -------
    FitResult
        The frozen model and a training report (training-set accuracy included).
    """
    params = params or FitParams()
    params.validate()
    started = time.perf_counter()
    deadline = None if params.time_budget is None else time.monotonic() + params.time_budget
    Xc = check_features(X)
    classes, yi = encode_labels(y)
    if len(yi) != Xc.shape[0]:
        raise InvalidData(
            f"labels: {len(yi)} labels for {Xc.shape[0]} rows of features; they must match"
        )
    if len(classes) == 2:
        multiclass = "binary"
        Y = (yi == 1).astype(np.float64)[:, None]
    else:
        multiclass = params.multiclass
        Y = (yi[:, None] == np.arange(len(classes))[None, :]).astype(np.float64)

    # Non-linear boundaries: from here on the "features" are the monomials (see polynomial.py).
    polynomial = fit_polynomial(Xc, degree=params.polynomial_degree, standardize=params.standardize)
    if polynomial is not None:
        Xc = polynomial.transform(Xc)

    if params.standardize:
        std = Standardizer.fit(Xc)
        Xp = std.transform(Xc)
        mean, scale = std.mean, std.scale
    else:
        Xp, mean, scale = Xc, None, None

    loss = LogisticLoss(Xp, Y, l2=params.l2, fit_intercept=params.fit_intercept)
    coef0 = np.zeros(loss.n_coef)
    result: SolverResult = gradient_descent(
        loss,
        coef0,
        learning_rate=params.learning_rate,
        max_iter=params.max_iter,
        tol=params.tol,
        deadline=deadline,
    )
    W, b = loss.unpack(result.coef)
    model = LogisticModel(
        classes=classes,
        multiclass=multiclass,
        coef=np.ascontiguousarray(W),
        intercept=np.array(b, dtype=np.float64),
        mean=mean,
        scale=scale,
        polynomial=polynomial,
    )
    # Training accuracy from the preprocessed matrix already in memory (no second transform).
    Z = Xp @ model.coef.T + model.intercept
    pred = (Z[:, 0] >= 0).astype(np.intp) if multiclass == "binary" else np.argmax(Z, axis=1)
    report = TrainingReport(
        solver=params.solver,
        iterations=result.iterations,
        converged=result.converged,
        loss=result.loss,
        accuracy=float(np.mean(pred == yi)),
        seconds=time.perf_counter() - started,
        n_samples=int(Xc.shape[0]),
        stopped_by=result.stopped_by,
        grad_norm=result.grad_norm,
        history=result.history,
    )
    return FitResult(model=model, report=report)
