"""Fit and predict: arrays in, arrays and frozen dataclasses out. No web, no files."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._scores import scores
from .errors import InvalidData, InvalidParams
from .loss import Array, Design, LogisticLoss, MultinomialLoss, log_sigmoid
from .monitor import Monitor
from .polynomial import PolynomialFeatures, check_degree, fit_polynomial
from .preprocessing import Standardizer, check_features, column_max_abs, ensure_finite
from .solvers import (
    SolverResult,
    cholesky_solve,
    fista,
    gradient_descent,
    lbfgs,
    newton,
    proximal_newton,
    thin_history,
)
from .source import RowBlocks

SOLVERS = ("auto", "gd", "newton", "lbfgs")
MULTICLASS = ("ovr", "multinomial")

#: ``auto`` and ``newton`` build an explicit Hessian block of this many rows/columns at most
#: (``n_features + 1`` per output for binary / one-vs-all, ``n_classes * (n_features + 1)`` for
#: multinomial); beyond it ``auto`` uses L-BFGS (or FISTA with ``l1``) and ``newton`` is refused.
NEWTON_MAX_BLOCK = 1000
NEWTON_HARD_MAX_BLOCK = 4000

#: Integer labels spanning at most this many values are encoded by counting, not sorting.
COUNT_LABELS_RANGE = 65_535

#: From this many rows on, ``auto`` takes its Hessians from a row subsample (see ``solve``).
SUBSAMPLE_MIN_ROWS = 50_000

#: The warm start of "subsampled-newton" uses ``n / SUBSAMPLE_FRACTION`` rows (at most 200,000)
#: and stops at gradient ``WARM_TOL`` (its optimum differs from the full one by more than that
#: anyway); its preconditioner is the Hessian of ``HESSIAN_ROWS`` of them.
SUBSAMPLE_FRACTION = 10
HESSIAN_ROWS = 20_000
WARM_TOL = 1e-3

#: Below that many rows, ``auto`` uses Newton when one Hessian costs at most this many passes over
#: the data (``hessian_cost``); Newton needs ~10 iterations where L-BFGS needs ~100-200.
NEWTON_MAX_HESSIAN_PASSES = 4.0

#: "preconditioned-lbfgs" (small multinomial problems): plain L-BFGS down to gradient
#: ``PRECONDITION_WARM_TOL``, then L-BFGS preconditioned by the inverse Hessian at that point, built
#: from the rows whose ``1 - max_k p_ik`` exceeds ``PRECONDITION_MIN_CURVATURE`` (see
#: ``MultinomialLoss.inverse_hessian``). Tuned on ``load_digits`` (bench/fit.py). The warm tolerance
#: was 1e-3; at 3e-4 the inverse Hessian is taken nearer the optimum and steers better (passes to
#: gradient 1e-6: 68 -> 60 at l2 = 1e-4, 296 -> 190 at l2 = 1e-6, 34 -> 40 at l2 = 1e-2; see
#: docs/DEVELOPING.md).
#: At most ``sqrt(X.nbytes / PRECONDITION_MEMORY_RATIO)`` rows enter it (its (m, m) matrices then
#: take a small fraction of ``X``'s memory: a fit's peak memory stays under 3x ``X``).
PRECONDITION_WARM_TOL = 3e-4
PRECONDITION_MIN_CURVATURE = 1e-3
PRECONDITION_MEMORY_RATIO = 32

#: Standardisation is folded into the products with ``X`` (no standardised copy) unless some
#: column's ``|mean| / scale`` exceeds this, where folding would cancel too many digits.
FOLD_MAX_RATIO = 1e4
#: ... or unless some column's values may reach beyond ``FOLD_MAX_MAGNITUDE``, or its scale is
#: under ``FOLD_MIN_SCALE``: the folded products work on the raw ``X`` (``X.T @ R``, the Gram
#: matrices' ``x^2`` and ``1 / scale^2``), which would overflow or underflow there.
FOLD_MAX_MAGNITUDE = 1e140
FOLD_MIN_SCALE = 1e-140
#: Without standardisation the solvers need the squares of the features (the curvature of the
#: objective): columns beyond this magnitude are refused (their squares overflow from ~1.3e154).
RAW_MAX_MAGNITUDE = 1e150


@dataclass(frozen=True)
class FitParams:
    """Training settings. See ``app.engine.loss`` for the objective ``l2`` and ``l1`` enter.

    ``class_weight``: ``None``, ``"balanced"`` (``n_samples / (n_classes * count(class))``, as
    scikit-learn) or a mapping from label to weight (labels not listed weigh 1; keys may be the
    labels or, as JSON requires strings, ``"12"`` for 12 and ``"true"`` for True). Row weights
    are the product of ``sample_weight`` and the class weight; the data term is their weighted
    mean.
    """

    solver: str = "auto"
    learning_rate: float | None = None
    max_iter: int = 1000
    tol: float = 1e-4
    l2: float = 1e-4
    l1: float = 0.0
    multiclass: str = "ovr"
    class_weight: str | Mapping[Any, float] | None = None
    standardize: bool = True
    fit_intercept: bool = True
    polynomial_degree: int = 1  # monomials up to this degree (see ``polynomial``); 1 = linear
    time_budget: float | None = None  # seconds; the solver stops (not converged) past it
    #: Told of each iteration, may stop the fit by raising (``solvers.Monitor``); not a setting
    #: of the model, so it takes no part in comparisons.
    monitor: Monitor | None = field(default=None, compare=False, repr=False)

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
        if self.learning_rate is not None and self.solver != "gd":
            raise InvalidParams(
                f"params.learning_rate: applies to solver 'gd' only (solver is {self.solver!r})"
            )
        if self.max_iter < 1:
            raise InvalidParams("params.max_iter: must be at least 1")
        if not (np.isfinite(self.tol) and self.tol >= 0):
            raise InvalidParams("params.tol: must be a non-negative number")
        if not (np.isfinite(self.l2) and self.l2 >= 0):
            raise InvalidParams("params.l2: must be a non-negative number")
        if not (np.isfinite(self.l1) and self.l1 >= 0):
            raise InvalidParams("params.l1: must be a non-negative number")
        if self.l1 > 0 and self.solver == "lbfgs":
            raise InvalidParams(
                "params.solver: 'lbfgs' needs a smooth objective and cannot fit l1; use 'auto' "
                "or 'newton' (proximal Newton) or 'gd' (proximal gradient)"
            )
        cw = self.class_weight
        if isinstance(cw, str) and cw != "balanced":
            raise InvalidParams(f"params.class_weight: must be 'balanced' or a mapping, got {cw!r}")
        if isinstance(cw, Mapping):
            for key, value in cw.items():
                if not (np.isfinite(value) and value >= 0):
                    raise InvalidParams(
                        f"params.class_weight.{key}: must be a finite number >= 0, got {value!r}"
                    )
        check_degree(self.polynomial_degree)


@dataclass(frozen=True)
class LogisticModel:
    """A trained model: everything needed to predict, nothing else.

    Attributes
    ----------
    classes : tuple of int or str, length n_classes
        Sorted class labels; probability columns follow this order.
    multiclass : {"binary", "ovr", "multinomial"}
        "binary" has one output (for ``classes[1]``); "ovr" has one output per class, each a
        sigmoid; "multinomial" has one output per class, the probabilities their softmax.
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

    @cached_property
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
        """Scores ``z = x . w + b`` of shape (n_samples, n_outputs).

        Each row's score is computed by the same operations in the same order whatever the batch
        (``linear_scores``), so a row gives the same bits alone or among others, on any CPU.
        ``InvalidData`` names the first row whose score is not a finite number: a cell that is
        not a finite number, or values that overflow this model.
        """
        Xc = check_features(X, n_features=self.n_features, check_finite=False)
        D = Xc
        if self.polynomial is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                D = self.polynomial.transform(Xc)
        mean, scale, W, b = self._score_arrays
        Z, row = linear_scores(D, W, b, mean=mean, scale=scale)
        if row < 0:
            return Z
        ensure_finite(Xc)  # a NaN or an infinity in X is named by its cell
        raise InvalidData(
            f"features[{row}]: values too large for this model (its score overflows 64-bit floats)"
        )

    def predict_proba(self, X: ArrayLike) -> Array:
        """Class probabilities of shape (n_samples, n_classes), columns in ``classes`` order.

        Binary: ``[1 - h(x), h(x)]``. One-vs-all: the K values ``h_k(x)`` normalised to sum to 1
        (done in the log domain so that rows where every ``h_k`` underflows stay defined).
        Multinomial: ``softmax(z)``. Row by row: a row's probabilities never depend on the others.
        """
        return self.classify(X)[0]

    def classify(self, X: ArrayLike, *, threshold: float | None = None) -> tuple[Array, np.ndarray]:
        """``(predict_proba(X), index into classes of each row's predicted class)``.

        Binary: ``classes[1]`` where ``h(x) >= threshold`` (default 0.5). Multi-class: the class
        with the largest probability (``threshold`` does not apply). The one implementation of
        prediction; up to ``SMALL_BATCH`` rows a binary model's probabilities are computed on
        Python floats, the same IEEE operations as ``binary_proba``, so the bits are the same.
        """
        if threshold is not None and self.multiclass != "binary":
            raise InvalidParams("threshold: applies to binary models only")
        Z = self.decision_function(X)
        if self.multiclass == "binary":
            threshold = 0.5 if threshold is None else threshold
            if len(Z) <= SMALL_BATCH:
                return small_binary_proba(Z[:, 0].tolist(), threshold)
            return binary_proba(Z[:, 0], threshold)
        with np.errstate(over="ignore", under="ignore"):
            if self.multiclass == "multinomial":
                P = Z - Z.max(axis=1, keepdims=True)  # <= 0: exp cannot overflow
            else:
                P = log_sigmoid(Z)
                P -= P.max(axis=1, keepdims=True)
            np.exp(P, out=P)
        P /= column_sum(P)[:, None]
        return P, np.argmax(P, axis=1)

    def explain(self, X: ArrayLike, *, centre: ArrayLike | None = None) -> Explanation:
        """Each row's score split into a ``baseline`` and one contribution per design column.

        The score of output ``k`` is ``z_k = sum_j W[k, j] d_j + b_k`` on the design columns
        ``d`` (expanded, standardised). With ``c`` the training mean of ``d`` (0 for a
        standardised model: its columns are centred on it), the contribution of column ``j`` is
        ``W[k, j] (d_j - c_j)``, in logit units, and the baseline, the score of the training
        mean, is ``b_k + sum_j W[k, j] c_j``; so ``baseline + sum of contributions = z_k`` up to
        rounding. For a standardised column, ``W[k, j] (d_j - c_j) = (W[k, j] / scale_j)
        (x_j - mean_j)``: the coefficient in input units times the distance from the mean.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        centre : array-like of shape (n_design_features,), optional
            Training means of the design columns of a model trained without standardisation
            (``None``: zeros, the baseline is then the score at ``d = 0``). Ignored for a
            standardised model.
        """
        Xc = check_features(X, n_features=self.n_features)
        with np.errstate(over="ignore", invalid="ignore"):
            D = self.transform(Xc)
            *_, W, b = self._score_arrays
            if self.mean is None and centre is not None:
                c = np.asarray(centre, dtype=np.float64)
                D = D - c
                baseline = b + linear_scores(c[None, :], W, np.zeros_like(b))[0][0]
            else:
                baseline = b.copy()
            contributions = D[:, None, :] * W[None, :, :]
        return Explanation(baseline=baseline, contributions=contributions)

    def predict_index(self, X: ArrayLike, *, threshold: float | None = None) -> np.ndarray:
        return self.classify(X, threshold=threshold)[1]

    def predict(self, X: ArrayLike, *, threshold: float | None = None) -> list[Any]:
        """Predicted labels, of the same kind (int or str) as the training labels."""
        return self.labels[self.predict_index(X, threshold=threshold)].tolist()

    @cached_property
    def labels(self) -> np.ndarray:
        """``classes`` as an array, for indexing by ``classify``'s output: int64 when every
        label fits, else objects."""
        fits = all(type(c) is int and INT64_MIN <= c <= INT64_MAX for c in self.classes)
        return np.array(self.classes, dtype=np.int64 if fits else object)

    @cached_property
    def _score_arrays(self) -> tuple[Array | None, Array | None, Array, Array]:
        """``mean``, ``scale``, ``coef`` and ``intercept`` as ``linear_scores`` takes them
        (C-contiguous float64)."""
        W, b = _float64(self.coef), _float64(self.intercept)
        if self.mean is None or self.scale is None:  # as in ``transform``
            return None, None, W, b
        return _float64(self.mean), _float64(self.scale), W, b


#: Up to this many rows, a binary model's probabilities are computed on Python floats: a NumPy
#: call costs more than its arithmetic on a few rows (measured in docs/DEVELOPING.md).
SMALL_BATCH = 16
Floats = list[float]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _float64(a: Array) -> Array:
    return np.ascontiguousarray(a, dtype=np.float64)


def linear_scores(
    D: Array, W: Array, b: Array, *, mean: Array | None = None, scale: Array | None = None
) -> tuple[Array, int]:
    """``Z[i, k] = ((0 + d[i, 0] W[k, 0]) + d[i, 1] W[k, 1] + ...) + b[k]``, left to right, with
    ``d = (D - mean) / scale`` (``d = D`` without them); and the first row whose score is not a
    finite number (-1: none).

    Parameters
    ----------
    D : ndarray of shape (n_samples, n_design_features)
    W : ndarray of shape (n_outputs, n_design_features), C-contiguous float64
    b : ndarray of shape (n_outputs,), float64
    mean, scale : ndarray of shape (n_design_features,), float64, optional

    Returns
    -------
    Z : ndarray of shape (n_samples, n_outputs)
    row : int

    A matrix product would be as fast, but BLAS chooses its summation order (and fused
    multiply-adds) by batch shape and CPU, so a row's score, and whether it overflows, would
    change with the rows beside it. Here each term is one rounded quotient, one rounded product
    and one rounded sum in a fixed order (compiled, ``_scores.c``): the same bits alone or in any
    batch, on any machine.
    """
    Z = np.empty((D.shape[0], W.shape[0]))
    return Z, scores(np.ascontiguousarray(D, dtype=np.float64), mean, scale, W, b, Z)


def column_sum(P: Array) -> Array:
    """Sum of each row of ``P`` (n_samples, n_classes), left to right (NumPy's pairwise sum
    may order the terms of a row differently by batch shape)."""
    s = P[:, 0].copy()
    for k in range(1, P.shape[1]):
        s += P[:, k]
    return s


def binary_proba(z: Array, threshold: float) -> tuple[Array, np.ndarray]:
    """``([1 - h, h], h >= threshold)`` for finite scores ``z`` of shape (n_samples,).

    ``h = sigmoid(z)`` through ``e = exp(-|z|)`` as ``app.engine.loss.sigmoid``: ``1 / (1 + e)``
    for ``z >= 0``, else ``e / (1 + e)``.
    """
    e = np.exp(-np.abs(z))
    d = 1.0 + e
    P = np.empty((len(z), 2))
    np.divide(np.where(z <= 0, 1.0, e), d, out=P[:, 0])
    np.divide(np.where(z >= 0, 1.0, e), d, out=P[:, 1])
    return P, (P[:, 1] >= threshold).astype(np.intp)


def small_binary_proba(z: Floats, threshold: float) -> tuple[Array, np.ndarray]:
    """``binary_proba`` for a few scores as Python floats: the same operations on them, after
    NumPy's ``exp`` (which gives an element the same bits wherever it sits in an array)."""
    flat: list[float] = []  # row after row, [1 - h, h]
    index = []
    for zi, ei in zip(z, np.exp([-abs(zi) for zi in z]).tolist(), strict=True):
        d = 1.0 + ei
        h = (1.0 if zi >= 0 else ei) / d
        flat += ((1.0 if zi <= 0 else ei) / d, h)
        index.append(h >= threshold)
    return np.array(flat).reshape(-1, 2), np.array(index, dtype=np.intp)


@dataclass(frozen=True)
class Explanation:
    """``LogisticModel.explain``: ``baseline`` of shape (n_outputs,), ``contributions`` of shape
    (n_samples, n_outputs, n_design_features), in logit units."""

    baseline: Array
    contributions: Array


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
    passes: float = 0.0  # full passes over X (one X @ W plus one X.T @ R each)


@dataclass(frozen=True)
class FitResult:
    model: LogisticModel
    report: TrainingReport


#: The sentence that refuses a value as a class label (``labels[i]: <value> NOT_A_LABEL``).
NOT_A_LABEL = "is not a class label; labels are integers, strings or booleans"
#: ... and the rule for a list of labels (``labels: ONE_KIND``).
ONE_KIND = "must be all integers, all strings or all booleans"


def encode_labels(y: ArrayLike) -> tuple[tuple[Any, ...], np.ndarray]:
    """Sorted distinct labels and the index of each row's label among them.

    Labels must be all integers, all strings or all booleans; at least two distinct labels are
    needed. Whole-number floats are integers (``1.0`` is the class ``1``: a pandas column of
    integer classes with a missing value is float, and so is its ``tolist()``); other floats
    are refused. Booleans stay booleans (``(False, True)``), so ``predict`` answers booleans.
    Strings are kept exactly as given: they are compared as Python strings, never through
    NumPy's fixed-width ``<U`` arrays, which drop trailing NUL characters (``"a\\0"`` would
    become ``"a"``, one class with it).
    """
    if isinstance(y, np.ndarray) and y.dtype.kind == "f":
        y = whole_numbers(y.ravel())
    if isinstance(y, np.ndarray) and y.dtype.kind in "iu" and y.size:
        # integer codes within a small range (a dataset's labels, 0..K-1 classes): counted, not
        # sorted (np.unique's sort was ~2% of a 50,000-row fit); the index is of the smallest
        # type that holds it (1 byte a row for up to 256 classes)
        flat = y.ravel()
        lo = 0 if y.dtype.kind == "u" and y.dtype.itemsize <= 2 else int(flat.min())
        if int(flat.max()) - lo <= COUNT_LABELS_RANGE:
            shifted = flat if lo == 0 else flat - lo
            present = np.flatnonzero(np.bincount(shifted))
            if len(present) < 2:
                raise InvalidData(
                    f"labels: need at least two distinct classes, got only {int(present[0]) + lo!r}"
                )
            lookup = np.zeros(int(present[-1]) + 1, dtype=np.min_scalar_type(len(present) - 1))
            lookup[present] = np.arange(len(present))
            return tuple(int(c) + lo for c in present), lookup[shifted]
    if isinstance(y, np.ndarray) and y.dtype.kind in "iuUb":  # already typed: skip the scan
        if y.size == 0:
            raise InvalidData("labels: must not be empty")
        classes, index = np.unique(y.ravel(), return_inverse=True)
    else:
        labels = list(np.asarray(y, dtype=object).ravel()) if not isinstance(y, list) else y
        if not labels:
            raise InvalidData("labels: must not be empty")
        kinds = {type(v) for v in labels}
        if kinds <= {str}:
            return _encode_strings(labels)
        if any(issubclass(k, (float, np.floating)) for k in kinds):
            labels = [
                _whole_number(float(v), i) if isinstance(v, (float, np.floating)) else v
                for i, v in enumerate(labels)
            ]
            kinds = {type(v) for v in labels}
        booleans = all(issubclass(k, (bool, np.bool_)) for k in kinds)
        integers = all(issubclass(k, (int, np.integer)) and k is not bool for k in kinds)
        if not (booleans or integers):
            raise InvalidData(f"labels: {ONE_KIND}")
        typed = np.asarray(labels, dtype=bool if booleans else None)
        classes, index = np.unique(typed, return_inverse=True)
    if len(classes) < 2:
        raise InvalidData(
            f"labels: need at least two distinct classes, got only {classes[0].item()!r}"
        )
    as_py = tuple(c.item() if hasattr(c, "item") else c for c in classes)
    return as_py, index.ravel()


def whole_numbers(y: Array) -> np.ndarray:
    """Float labels (n_samples,) as int64, or ``InvalidData`` naming the first that is not a
    whole number in the 64-bit range."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(y) & (np.floor(y) == y) & (y >= INT64_MIN) & (y < 2.0**63)
    if not ok.all():
        i = int(np.argmin(ok))
        _whole_number(float(y[i]), i)
    return y.astype(np.int64)


def _whole_number(v: float, i: int) -> int:
    """``labels[i]`` (a float) as an int, or ``InvalidData`` saying why it is not a class."""
    if not v.is_integer():  # also NaN and the infinities
        raise InvalidData(f"labels[{i}]: {v!r} {NOT_A_LABEL}")
    if not INT64_MIN <= v < 2.0**63:
        raise InvalidData(f"labels[{i}]: {v!r} is out of range; integer labels must fit in 64 bits")
    return int(v)


def _encode_strings(labels: list[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """``encode_labels`` for Python strings: a set and a dict, exact, in code point order (as
    ``np.unique`` sorts), and ~8x faster than ``np.unique`` on 10^6 labels."""
    classes = tuple(sorted(set(labels)))
    if len(classes) < 2:
        raise InvalidData(f"labels: need at least two distinct classes, got only {classes[0]!r}")
    position = {c: i for i, c in enumerate(classes)}
    index = np.fromiter(map(position.__getitem__, labels), dtype=np.intp, count=len(labels))
    return classes, index


def fit(
    X: ArrayLike | RowBlocks,
    y: ArrayLike,
    *,
    params: FitParams | None = None,
    sample_weight: ArrayLike | None = None,
) -> FitResult:
    """Fit logistic regression to ``X`` and labels ``y``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), or RowBlocks
        Finite numbers. ``RowBlocks`` (``app.engine.source``, e.g. columns memory-mapped from
        a file) is read block by block of rows and never copied whole: the same solvers reach
        the same optimum (``polynomial_degree`` must be 1).
    y : array-like of shape (n_samples,)
        Integer or string labels, at least two distinct.
    params : FitParams, optional
    sample_weight : array-like of shape (n_samples,), optional
        Finite, non-negative row weights, not all zero (multiplied by ``params.class_weight``).

    Returns
    -------
    FitResult
        The frozen model and a training report (training-set accuracy included).
    """
    params = params or FitParams()
    params.validate()
    started = time.perf_counter()
    deadline = None if params.time_budget is None else time.monotonic() + params.time_budget
    if isinstance(X, RowBlocks):
        if params.polynomial_degree != 1:
            raise InvalidParams(
                "params.polynomial_degree: must be 1 when the rows are read in blocks (a "
                "dataset); expand the features before uploading"
            )
        Xc: Array | RowBlocks = X
        if not params.standardize:
            ensure_finite(Xc)
    else:
        Xc = check_features(X, check_finite=not params.standardize)
    classes, yi = encode_labels(y)
    yi = yi.astype(np.min_scalar_type(len(classes) - 1), copy=False)  # 1 byte a row, not 8
    if len(yi) != Xc.shape[0]:
        raise InvalidData(
            f"labels: {len(yi)} labels for {Xc.shape[0]} rows of features; they must match"
        )
    sw = row_weights(classes, yi, class_weight=params.class_weight, sample_weight=sample_weight)
    # Targets in {0, 1}: float64 for the in-memory products; one byte each when the rows are
    # read in blocks, where these per-row arrays are most of the fit's memory (same values).
    target = np.uint8 if isinstance(Xc, RowBlocks) else np.float64
    if len(classes) == 2:
        multiclass = "binary"
        Y = (yi == 1).astype(target)[:, None]
    else:
        multiclass = params.multiclass
        Y = (yi[:, None] == np.arange(len(classes))[None, :]).astype(target)

    # Non-linear boundaries: from here on the "features" are the monomials (see polynomial.py).
    polynomial = None
    if not isinstance(Xc, RowBlocks):
        polynomial = fit_polynomial(
            Xc, degree=params.polynomial_degree, standardize=params.standardize
        )
        if polynomial is not None:
            Xc = polynomial.transform(Xc)

    mean: Array | None = None
    scale: Array | None = None
    design = Design(Xc)
    if params.standardize:
        std = Standardizer.fit(Xc)
        mean, scale = std.mean, std.scale
        if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
            ensure_finite(Xc)  # NaN / inf in X made them so: name the cell
        if can_fold(mean, scale, n_samples=Xc.shape[0]):
            design = Design(Xc, mean, scale)
        elif isinstance(Xc, RowBlocks):  # each block is standardised as it is read
            design = Design(Xc.standardized(mean, scale))
        else:  # folding would cancel digits or overflow: materialise the standardised copy
            design = Design(std.transform(Xc))
    else:
        check_raw_magnitudes(Xc, polynomial)

    design.monitor = params.monitor
    loss_type = MultinomialLoss if multiclass == "multinomial" else LogisticLoss
    loss = loss_type(design, Y, l2=params.l2, fit_intercept=params.fit_intercept, sample_weight=sw)
    result, solver_name = solve(loss, params, deadline=deadline)
    W, b = loss.unpack(result.coef)
    if multiclass == "multinomial" and params.fit_intercept:
        b = b - b.mean()  # the intercepts are defined up to a common shift: centre them
    model = LogisticModel(
        classes=classes,
        multiclass=multiclass,
        coef=np.ascontiguousarray(W),
        intercept=np.array(b, dtype=np.float64),
        mean=mean,
        scale=scale,
        polynomial=polynomial,
    )
    # Training accuracy from the scores of the last evaluation (no extra pass when cached).
    Z = loss.raw_prediction(result.coef)
    pred = (Z[:, 0] >= 0).view(np.uint8) if multiclass == "binary" else np.argmax(Z, axis=1)
    report = TrainingReport(
        solver=solver_name,
        iterations=result.iterations,
        converged=result.converged,
        loss=result.loss,
        accuracy=float(np.mean(pred == yi)),
        seconds=time.perf_counter() - started,
        n_samples=int(Xc.shape[0]),
        stopped_by=result.stopped_by,
        grad_norm=result.grad_norm,
        history=result.history,
        passes=loss.passes,
    )
    return FitResult(model=model, report=report)


def can_fold(mean: Array, scale: Array, *, n_samples: int) -> bool:
    """Whether ``Design`` may fold the standardisation into products with the raw ``X``.

    Every ``|x|`` of a column is at most ``|mean| + sqrt(n) * scale`` (no value lies further
    from the mean than that); both terms are bounded apart, without overflowing here.
    """
    limit = FOLD_MAX_MAGNITUDE / 2
    return bool(
        np.max(np.abs(mean) / scale) <= FOLD_MAX_RATIO
        and np.max(np.abs(mean)) <= limit
        and np.max(scale) <= limit / np.sqrt(n_samples)
        and np.min(scale) >= FOLD_MIN_SCALE
    )


def check_raw_magnitudes(X: Array | RowBlocks, polynomial: PolynomialFeatures | None) -> None:
    """``InvalidData`` naming the first column of the design ``X`` (n_samples, n_design_features)
    that is too large to fit without standardisation (``RAW_MAX_MAGNITUDE``)."""
    top = column_max_abs(X)
    bad = ~(top <= RAW_MAX_MAGNITUDE)
    if not bad.any():
        return
    j = int(np.argmax(bad))
    where = f"column {j}"
    if polynomial is not None:
        where = f"the monomial {polynomial.feature_names()[j]}"
    reach = f"{top[j]:.3g}" if np.isfinite(top[j]) else "beyond the largest 64-bit float"
    raise InvalidData(
        f"features: {where} holds values up to {reach}, too large to fit with "
        f"params.standardize false: the solvers need their squares, which overflow 64-bit "
        f"floats beyond ~{RAW_MAX_MAGNITUDE:.0e}; leave standardize on (the default) or rescale"
    )


def row_weights(
    classes: tuple[Any, ...],
    yi: np.ndarray,
    *,
    class_weight: str | Mapping[Any, float] | None,
    sample_weight: ArrayLike | None,
) -> Array | None:
    """Per-row weights ``sample_weight * class_weight[label]``, or ``None`` for all ones.

    ``"balanced"`` gives class c the weight ``S / (K * S_c)`` with ``S`` the total and ``S_c`` the
    class's total sample weight (row counts without ``sample_weight``), as scikit-learn does.
    The data term is a weighted mean, so only ratios count: each factor, and the product, is
    divided by its largest value, which keeps weights of 1e308 (or 1e-320) from overflowing
    (or underflowing) the sums of the objective.
    """
    n = len(yi)
    sw: Array | None = None
    if sample_weight is not None:
        try:
            sw = np.asarray(sample_weight, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidData("sample_weight: must be a list of numbers") from None
        if sw.ndim != 1 or len(sw) != n:
            raise InvalidData(f"sample_weight: has {sw.size} entries for {n} rows; they must match")
        bad = ~(np.isfinite(sw) & (sw >= 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidData(f"sample_weight[{i}]: must be a finite number >= 0, got {sw[i]}")
        if not (sw > 0).any():
            raise InvalidData("sample_weight: all weights are zero")
        sw = sw / sw.max()  # only ratios count (a weighted mean): no sum can overflow
    if class_weight is None:
        return sw
    K = len(classes)
    if isinstance(class_weight, str):  # "balanced" (validated)
        totals = np.bincount(yi, weights=sw, minlength=K).astype(np.float64)
        per_class = totals.sum() / (K * np.where(totals > 0, totals, 1.0))
    else:
        per_class = np.ones(K)
        lookup = {str(c): i for i, c in enumerate(classes)}
        # JSON object keys are strings: "1" for the class 1, "true" for the class True
        lookup.update({str(c).lower(): i for i, c in enumerate(classes) if type(c) is bool})
        lookup.update({c: i for i, c in enumerate(classes)})
        for key, value in class_weight.items():
            if key not in lookup:
                raise InvalidParams(
                    f"params.class_weight.{key}: is not one of the labels {list(classes)}"
                )
            per_class[lookup[key]] = float(value)
        if per_class.max() > 0:
            per_class /= per_class.max()
    w = per_class[yi] if sw is None else sw * per_class[yi]
    if not (w > 0).any():
        raise InvalidParams("params.class_weight: gives every row a weight of zero")
    return w / w.max()


Loss = LogisticLoss | MultinomialLoss


def hessian_cost(loss: Loss) -> float:
    """Cost of one explicit Hessian, in passes over the data (one ``X @ W`` plus ``X.T @ R``).

    Binary / one-vs-all: ``K`` Gram matrices of width ``q`` against ``2 K`` matrix-vector
    products of ``X``, so ``q / 2``; multinomial: ``K (K + 1) / 2`` Grams, so ``(K + 1) q / 4``.
    Divided by 8: a Gram matrix is a matrix-matrix product, which runs several times faster per
    flop than the memory-bound matrix-vector products of a pass.
    """
    multinomial = isinstance(loss, MultinomialLoss)
    return hessian_passes(loss.n_coef_cols, loss.n_outputs, multinomial=multinomial)


def hessian_passes(n_coef_cols: int, n_outputs: int, *, multinomial: bool) -> float:
    """``hessian_cost`` from the problem's sizes (``q = n_coef_cols``, ``K = n_outputs``)."""
    if multinomial:
        return (n_outputs + 1) * n_coef_cols / 4 / 8
    return n_coef_cols / 2 / 8


def auto_solver(
    *, l1: float, n_samples: int, block: int, hessian_passes: float, multinomial: bool
) -> str:
    """The solver ``auto`` runs (the rule in ``solve``'s docstring; ``block``: ``p`` there)."""
    if block > NEWTON_MAX_BLOCK:
        return "fista" if l1 > 0 else "lbfgs"
    if l1 > 0:
        return "newton"
    if n_samples >= SUBSAMPLE_MIN_ROWS:
        return "subsampled-newton"
    if hessian_passes <= NEWTON_MAX_HESSIAN_PASSES:
        return "newton"
    return "preconditioned-lbfgs" if multinomial else "lbfgs"


def solve(
    loss: Loss, params: FitParams, *, deadline: float | None = None
) -> tuple[SolverResult, str]:
    """Run the solver ``params.solver`` asks for; returns its result and the solver that ran.

    The rule for ``auto`` (``p`` = size of one Hessian block: ``n_features + 1`` for binary and
    one-vs-all, ``n_classes * (n_features + 1)`` for multinomial):

    - ``l1 > 0``: proximal Newton when ``p <= NEWTON_MAX_BLOCK``, else FISTA;
    - otherwise L-BFGS when ``p > NEWTON_MAX_BLOCK`` or when one Hessian costs more than
      ``NEWTON_MAX_HESSIAN_PASSES`` passes over the data (``hessian_cost``), else Newton;
      in the second case a multinomial fit (``p <= NEWTON_MAX_BLOCK``, fewer than
      ``SUBSAMPLE_MIN_ROWS`` rows) runs "preconditioned-lbfgs" instead: L-BFGS to gradient
      ``PRECONDITION_WARM_TOL``, then L-BFGS preconditioned by the inverse Hessian there (see
      ``_preconditioned_lbfgs``), ~2x fewer passes on ``load_digits``;
    - from ``SUBSAMPLE_MIN_ROWS`` rows on (and ``p <= NEWTON_MAX_BLOCK``): "subsampled-newton",
      a warm start fitted on a row subsample, then L-BFGS on every row preconditioned by the
      subsample's Hessian (see ``_subsampled_newton``); gradients and line searches always use
      every row, so it stops at the same exact optimum, by the same gradient test.

    ``gd`` with ``l1 > 0`` is proximal gradient descent (the same fixed step, then soft
    thresholding); ``newton`` with ``l1 > 0`` is proximal Newton; ``lbfgs`` refuses ``l1``.
    """
    coef0 = np.zeros(loss.n_coef)
    block = loss.n_coef if isinstance(loss, MultinomialLoss) else loss.n_coef_cols
    common: dict[str, Any] = {
        "max_iter": params.max_iter,
        "tol": params.tol,
        "deadline": deadline,
        "monitor": params.monitor,
    }
    solver = params.solver
    if solver == "newton" and block > NEWTON_HARD_MAX_BLOCK:
        raise InvalidParams(
            f"params.solver: 'newton' would build a {block} x {block} Hessian; use 'auto' or "
            "'lbfgs' for this many features"
        )
    if solver == "auto":
        solver = auto_solver(
            l1=params.l1,
            n_samples=loss.design.n_samples,
            block=block,
            hessian_passes=hessian_cost(loss),
            multinomial=isinstance(loss, MultinomialLoss),
        )
    if solver == "gd":
        res = gradient_descent(
            loss, coef0, learning_rate=params.learning_rate, l1=params.l1, **common
        )
        return res, "gd"
    if solver == "lbfgs":
        return lbfgs(loss, coef0, **common), "lbfgs"
    if solver == "fista":
        return fista(loss, coef0, l1=params.l1, **common), "fista"
    if solver == "newton" and params.l1 > 0:
        return proximal_newton(loss, coef0, l1=params.l1, **common), "proximal-newton"
    if solver == "newton":
        return newton(loss, coef0, **common), "newton"
    if solver == "preconditioned-lbfgs":
        assert isinstance(loss, MultinomialLoss)
        return _preconditioned_lbfgs(loss, coef0, **common), "preconditioned-lbfgs"
    return _subsampled_newton(loss, coef0, **common), "subsampled-newton"


def _subsampled_newton(
    loss: Loss,
    coef0: Array,
    *,
    max_iter: int,
    tol: float,
    deadline: float | None,
    monitor: Monitor | None = None,
) -> SolverResult:
    """Exact optimum in few passes over a large ``X``: subsample warm start, then polish.

    1. L-BFGS on a seeded row subsample of ``m = min(n, max(n / SUBSAMPLE_FRACTION capped at
       200_000, 50 p))`` rows to a loose tolerance (cheap: each pass is ``m / n`` of a full one);
    2. the Hessian at that point from the first ``min(m, max(HESSIAN_ROWS, 20 p))`` of those
       rows, one Cholesky factorisation;
    3. L-BFGS on all rows from the warm start, with that Hessian as its initial inverse-Hessian
       (preconditioner); gradients and line searches see every row, so the result is the exact
       optimum, stopped by the same full-data gradient test as every other solver.
    """
    n = loss.design.n_samples
    block = loss.n_coef if isinstance(loss, MultinomialLoss) else loss.n_coef_cols
    m = int(min(n, max(50 * block, min(n // SUBSAMPLE_FRACTION, 200_000))))
    rows = np.sort(np.random.default_rng(0).choice(n, size=m, replace=False))
    sub = loss.take(rows)
    warm = lbfgs(
        sub, coef0, max_iter=max_iter, tol=max(tol, WARM_TOL), deadline=deadline, monitor=monitor
    )
    mh = int(min(m, max(HESSIAN_ROWS, 20 * block)))
    hsub = sub if mh == m else sub.take(np.arange(mh))
    H = hsub.hessian(warm.coef)
    null = loss.null_space()
    factors = []
    for k in range(H.shape[0]):
        Hk = H[k] if null is None else H[k] + null @ null.T
        Hk[np.diag_indices_from(Hk)] += 1e-12 * max(float(np.trace(Hk)), 1e-300) / len(Hk)
        factors.append(np.linalg.cholesky(Hk))
    q = H.shape[1]

    def precondition(v: Array) -> Array:
        V = v.reshape(len(factors), q)
        out = np.empty_like(V)
        for k, Lk in enumerate(factors):
            out[k] = cholesky_solve(Lk, V[k])
        return out.ravel()

    res = lbfgs(
        loss,
        warm.coef,
        max_iter=max(1, max_iter - warm.iterations),
        tol=tol,
        deadline=deadline,
        monitor=monitor,
        precondition=precondition,
    )
    return SolverResult(
        coef=res.coef,
        iterations=warm.iterations + res.iterations,
        converged=res.converged,
        loss=res.loss,
        grad_norm=res.grad_norm,
        stopped_by=res.stopped_by,
        history=res.history,
    )


def _preconditioned_lbfgs(
    loss: MultinomialLoss,
    coef0: Array,
    *,
    max_iter: int,
    tol: float,
    deadline: float | None,
    monitor: Monitor | None = None,
) -> SolverResult:
    """L-BFGS whose initial inverse-Hessian is the softmax Hessian's, taken once on the way.

    Small multinomial problems with little L2 are ill-conditioned in a way no per-class
    (block-diagonal) scaling fixes: the classes' curvatures are coupled. Plain L-BFGS needs
    ~200 passes on ``load_digits``. Here:

    1. plain L-BFGS down to gradient ``PRECONDITION_WARM_TOL`` (~25 passes on digits);
    2. the inverse Hessian at that point from the rows that still carry curvature, at most
       ``sqrt(X.nbytes / PRECONDITION_MEMORY_RATIO)`` of them (``MultinomialLoss.inverse_hessian``,
       by Woodbury; on digits 169 of 1,797 rows);
    3. L-BFGS from there with it as ``H0``, rescaled at each step by ``s.y / y.H0 y`` (it was
       taken at another point): ~85 passes in all to a gradient of 1e-8 on digits.

    The gradients and line searches are the exact full-data ones, so the optimum and the stopping
    test are those of every other solver. If the inverse cannot be formed, step 3 runs without.
    """
    warm = lbfgs(
        loss,
        coef0,
        max_iter=max_iter,
        tol=max(tol, PRECONDITION_WARM_TOL),
        deadline=deadline,
        monitor=monitor,
    )
    if tol >= PRECONDITION_WARM_TOL or not warm.converged:
        return warm
    max_rows = int(np.sqrt(loss.design.X.nbytes / PRECONDITION_MEMORY_RATIO))
    precondition = loss.inverse_hessian(
        warm.coef, min_curvature=PRECONDITION_MIN_CURVATURE, max_rows=max_rows
    )
    res = lbfgs(
        loss,
        warm.coef,
        max_iter=max_iter - warm.iterations,
        tol=tol,
        deadline=deadline,
        monitor=monitor,
        precondition=precondition,
        scale_preconditioner=True,
    )
    return SolverResult(
        coef=res.coef,
        iterations=warm.iterations + res.iterations,
        converged=res.converged,
        loss=res.loss,
        grad_norm=res.grad_norm,
        stopped_by=res.stopped_by,
        history=thin_history(warm.history + res.history[1:]),
    )
