"""Coefficient statistics of an unpenalised binary logistic model (what statsmodels' ``Logit``
reports): standard errors, z-values, two-sided p-values, 95% confidence intervals, odds ratios.

The model, on the original feature scale, is ``P(y = 1 | x) = sigmoid(b + x . beta)`` where, for
a polynomial model, ``x`` is the vector of monomials of the *raw* inputs (named ``x0^2 x1``...).
Its log-likelihood over the training rows is::

    l(theta) = sum_i [y_i * z_i - log(1 + exp(z_i))],   z = A @ theta,   A = [1, x]

with gradient ``A.T @ (y - p)`` and Hessian ``-A.T @ diag(p * (1 - p)) @ A``. At the maximum
``theta_hat`` the estimated covariance is the inverse of the observed information
``I = A.T @ diag(p (1 - p)) @ A``, and for each coefficient::

    se = sqrt(diag(I^-1)),   z = theta_hat / se,   p-value = erfc(|z| / sqrt(2)),
    95% CI = theta_hat -/+ 1.959963984540054 * se,   odds ratio = exp(theta_hat)

The information is built directly on the raw design ``A`` rather than by transforming the
standardised model's covariance: it is the same matrix mathematically and needs no algebra for
polynomial models. Its columns are scaled to unit root-mean-square before any solve (Jacobi
scaling does not change the answer, only the rounding).

The optimum must be tight for these numbers to be right to 4-5 significant digits, tighter than
the fit's ``tol``; so the fit's answer is refined here by the engine's Newton solver
(``solvers.newton``) on the raw design, down to a gradient of ``GRADIENT_TOL``, starting from the
model's own linear predictor: 1-3 quadratically convergent steps. The table therefore reports the
exact maximum-likelihood estimate; the model's weights agree with it to the fit's tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .loss import Array, LogisticLoss, log1pexp
from .model import FitParams, FitResult, encode_labels
from .polynomial import expand, monomial_names
from .preprocessing import check_features
from .solvers import newton

#: Phi^-1(0.975): half-width of a 95% normal confidence interval, in standard errors.
Z_95 = 1.959963984540054

#: Largest number of coefficients (intercept included) for which statistics are computed; the
#: information matrix is p x p and its Cholesky factorisation O(p^3).
MAX_COEFFICIENTS = 1000

#: A Jacobi-scaled information matrix with a larger condition number is treated as singular:
#: beyond it the inverse has fewer than ~4 correct digits.
MAX_CONDITION = 1e12

#: Newton runs until the largest component of the mean log-loss gradient is at most this. The
#: distance to the optimum is then ~1e-10 of a coefficient's scale, far below the 1e-4 relative
#: agreement with statsmodels that the tests ask for.
GRADIENT_TOL = 1e-13
NEWTON_MAX_STEPS = 50

SINGULAR = "singular Hessian (perfect separation or collinear features)"


class StatisticsUnavailable(Exception):
    """The statistics do not exist for this fit; the message says why (shown to the user)."""


@dataclass(frozen=True)
class CoefficientStatistics:
    """The statistics table: one entry per coefficient, the intercept first.

    Attributes
    ----------
    names : tuple of str, length n_coef
        ``"intercept"`` (when fitted), then the feature (or monomial) names.
    coef, std_err, z, p_value, ci_lower, ci_upper, odds_ratio : ndarray of shape (n_coef,)
        Maximum-likelihood estimate on the original feature scale and its statistics (see the
        module docstring). ``odds_ratio`` is ``exp(coef)``; it may overflow to ``inf``.
    log_likelihood : float
        ``l(theta_hat)``, the maximised log-likelihood (statsmodels' ``llf``).
    n_samples : int
    newton_steps : int
        Newton steps taken to refine the solver's answer.
    """

    names: tuple[str, ...]
    coef: Array
    std_err: Array
    z: Array
    p_value: Array
    ci_lower: Array
    ci_upper: Array
    odds_ratio: Array
    log_likelihood: float
    n_samples: int
    newton_steps: int

    def rows(self) -> list[dict[str, Any]]:
        """The table as a list of JSON-ready dicts; non-finite numbers become ``None``."""

        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return [
            {
                "name": name,
                "coef": num(self.coef[j]),
                "std_err": num(self.std_err[j]),
                "z": num(self.z[j]),
                "p_value": num(self.p_value[j]),
                "ci_lower": num(self.ci_lower[j]),
                "ci_upper": num(self.ci_upper[j]),
                "odds_ratio": num(self.odds_ratio[j]),
            }
            for j, name in enumerate(self.names)
        ]


def _check_conditioning(H: Array) -> None:
    """``StatisticsUnavailable`` when the Jacobi-scaled ``H`` has condition above the limit.

    Scaling by the diagonal first means a feature's units do not count, only how close the
    columns are to being linearly dependent (or, under separation, how close the weights
    ``p (1 - p)`` are to zero).
    """
    d = np.sqrt(np.diag(H))
    if not np.all(d > 0):
        raise StatisticsUnavailable(f"{SINGULAR}: a column of the design is zero")
    eig = np.linalg.eigvalsh(H / np.outer(d, d))
    if not eig[0] > 0 or eig[-1] / eig[0] > MAX_CONDITION:
        raise StatisticsUnavailable(
            f"{SINGULAR}: the information matrix has condition number "
            f"{eig[-1] / eig[0] if eig[0] > 0 else math.inf:.3g}"
        )


def _least_squares(A: Array, b: Array) -> Array:
    """Coefficients of ``b`` (n_samples,) on the columns of ``A`` (n_samples, n_coef).

    Only a starting point for Newton, so the normal equations (one syrk, 5-10x cheaper than
    an SVD on tall data) are accurate enough; an SVD takes over if they are singular.
    """
    try:
        return np.asarray(np.linalg.solve(A.T @ A, A.T @ b), dtype=np.float64)
    except np.linalg.LinAlgError:
        return np.asarray(np.linalg.lstsq(A, b, rcond=None)[0], dtype=np.float64)


def maximum_likelihood(
    X: Array, y: Array, theta0: Array, *, fit_intercept: bool
) -> tuple[Array, Array, int]:
    """The unpenalised maximum-likelihood estimate, to rounding, and its information matrix.

    Runs the engine's Newton solver (``solvers.newton``) on the mean cross-entropy with a
    gradient tolerance of ``GRADIENT_TOL``: from a first-order solver's answer that takes 1-3
    quadratically convergent steps.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Design without the intercept column, ideally with columns of comparable scale.
    y : ndarray of shape (n_samples,)
        Targets in {0, 1}.
    theta0 : ndarray of shape (n_features + fit_intercept,)
        Starting point, the intercept last.
    fit_intercept : bool

    Returns
    -------
    theta : ndarray of shape (n_features + fit_intercept,)
        The maximiser, the intercept last.
    information : ndarray of shape (n_features + fit_intercept,) * 2
        ``A.T @ diag(p (1 - p)) @ A`` at ``theta`` (``A``: ``X`` with the column of ones).
    steps : int

    Raises
    ------
    StatisticsUnavailable
        No convergence (the classes may be quasi-separated).
    """
    loss = LogisticLoss(X, y[:, None], l2=0.0, fit_intercept=fit_intercept)
    res = newton(loss, theta0, max_iter=NEWTON_MAX_STEPS, tol=GRADIENT_TOL)
    # A line search that stalls at the rounding floor just short of GRADIENT_TOL is the optimum.
    if not (res.converged or res.grad_norm <= 100 * GRADIENT_TOL):
        raise StatisticsUnavailable(
            "not converged: Newton's method did not reach the maximum-likelihood estimate "
            f"(largest gradient component {res.grad_norm:.3g} after {res.iterations} steps, "
            f"stopped by {res.stopped_by}); the classes may be quasi-separated"
        )
    information = loss.hessian(res.coef)[0] * X.shape[0]  # the loss is a mean over rows
    return res.coef, information, res.iterations


def logit_statistics(
    X: Array,
    y: Array,
    *,
    fit_intercept: bool = True,
    names: Sequence[str] | None = None,
    start: Array | None = None,
) -> CoefficientStatistics:
    """Coefficient statistics of the unpenalised logistic regression of ``y`` on ``X``.

    The same numbers as ``statsmodels.api.Logit(y, add_constant(X)).fit()`` (or
    ``Logit(y, X)`` without an intercept).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Features on the scale the coefficients should be reported on.
    y : ndarray of shape (n_samples,)
        Targets in {0, 1}.
    fit_intercept : bool
    names : sequence of str, length n_features, optional
        Default ``x0, x1, ...``.
    start : ndarray of shape (n_samples,), optional
        A linear predictor close to the optimum (a fitted model's ``z``); Newton starts from
        its least-squares coefficients on ``X``. Default: start from zero.

    Raises
    ------
    StatisticsUnavailable
        Perfect separation, collinear features, or no convergence.
    """
    n, d = X.shape
    # Jacobi scaling: unit RMS columns keep the solves accurate for raw features of very
    # different magnitudes (areas in the thousands beside ratios near 0.1).
    col_scale = np.sqrt(np.mean(X * X, axis=0))
    col_scale[~(col_scale > 0)] = 1.0
    Xs = X / col_scale
    if start is not None:
        A = np.hstack([Xs, np.ones((n, 1))]) if fit_intercept else Xs
        theta0 = _least_squares(A, np.asarray(start, dtype=np.float64))
    else:
        theta0 = np.zeros(d + int(fit_intercept))
    theta_s, information, steps = maximum_likelihood(Xs, y, theta0, fit_intercept=fit_intercept)
    _check_conditioning(information)
    try:
        L = np.linalg.cholesky(information)
    except np.linalg.LinAlgError:
        raise StatisticsUnavailable(SINGULAR) from None
    # Covariance = D^-1 (A.T W A)^-1 D^-1 with D = diag(col_scale, 1); its diagonal from L^-1.
    L_inv = np.linalg.solve(L, np.eye(L.shape[0]))
    scale = np.r_[col_scale, 1.0] if fit_intercept else col_scale
    theta = theta_s / scale
    se = np.sqrt(np.einsum("ij,ij->j", L_inv, L_inv)) / scale
    z_lin = Xs @ theta_s[:d] + (theta_s[d] if fit_intercept else 0.0)
    log_likelihood = float(y @ z_lin - np.sum(log1pexp(z_lin)))
    if fit_intercept:  # the table lists the intercept first, as statsmodels' add_constant
        theta, se = np.roll(theta, 1), np.roll(se, 1)
    z = theta / se
    p_value = np.array([math.erfc(abs(v) / math.sqrt(2.0)) for v in z])
    with np.errstate(over="ignore"):
        odds = np.exp(theta)
    feature_names = list(names) if names is not None else [f"x{i}" for i in range(d)]
    return CoefficientStatistics(
        names=tuple((["intercept"] if fit_intercept else []) + feature_names),
        coef=theta,
        std_err=se,
        z=z,
        p_value=p_value,
        ci_lower=theta - Z_95 * se,
        ci_upper=theta + Z_95 * se,
        odds_ratio=odds,
        log_likelihood=log_likelihood,
        n_samples=n,
        newton_steps=steps,
    )


def statistics_not_applicable(
    result: FitResult, params: FitParams, *, weighted: bool = False
) -> str | None:
    """Why a fitted model cannot have coefficient statistics whatever its data, else ``None``."""
    model = result.model
    if model.multiclass != "binary":
        return "multi-class model: coefficient statistics are computed for binary models only"
    if params.l2 != 0 or params.l1 != 0:
        strengths = f"l2={params.l2:g}" + (f", l1={params.l1:g}" if params.l1 else "")
        return f"penalised model ({strengths}): statistics need l2=0 and no l1"
    if weighted or params.class_weight is not None:
        return (
            "weighted model (class_weight or sample_weight): the usual standard errors assume "
            "unweighted rows; train without weights for statistics"
        )
    n_coef = model.coef.shape[1] + int(params.fit_intercept)
    if n_coef > MAX_COEFFICIENTS:
        return (
            f"too many coefficients ({n_coef}) for the statistics table "
            f"(at most {MAX_COEFFICIENTS})"
        )
    return None


def separates(z: Array, y: Array) -> bool:
    """Whether the linear predictor ``z`` (n_samples,) puts every row strictly on its class's side.

    Then no finite maximum-likelihood estimate exists: scaling the weights up always raises the
    likelihood (complete separation).
    """
    positive = y > 0.5
    return bool(np.all(z[positive] > 0) and np.all(z[~positive] < 0))


def coefficient_statistics(
    X: ArrayLike,
    y: ArrayLike,
    result: FitResult,
    *,
    params: FitParams,
    feature_names: Sequence[str] | None = None,
    sample_weight: ArrayLike | None = None,
) -> tuple[CoefficientStatistics | None, str | None]:
    """Statistics of a fitted model on its training data, or ``None`` and the reason.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The raw training features passed to ``fit``.
    y : array-like of shape (n_samples,)
        The training labels passed to ``fit``.
    result : FitResult
        What ``fit(X, y, params=params)`` returned.
    params : FitParams
    feature_names : sequence of str, length n_features, optional
        Names of the raw inputs (default ``x0, x1, ...``); a polynomial model's rows are named
        by monomials of them (``x0^2 x1``).

        With ``fit_intercept=False`` and ``standardize=True`` the fitted model is
        ``z = (x - mean) . beta`` (standardising centres), so the table is that of
        ``Logit(y, x - mean)``: the columns centred on their training means.
    sample_weight : array-like of shape (n_samples,), optional
        Row weights given to ``fit``; a weighted model gets no statistics (and a note).

    Returns
    -------
    statistics : CoefficientStatistics or None
    note : str or None
        Why there are no statistics (penalised, multi-class, not converged, singular Hessian),
        ``None`` when there are.
    """
    reason = statistics_not_applicable(result, params, weighted=sample_weight is not None)
    if reason is not None:
        return None, reason
    model = result.model
    Xc = check_features(X)
    classes, yi = encode_labels(y)
    if classes != model.classes:
        raise ValueError("y: labels differ from the ones the model was fitted on")
    names = list(feature_names) if feature_names else [f"x{i}" for i in range(Xc.shape[1])]
    design = Xc
    if model.polynomial is not None:
        degree = model.polynomial.degree
        design = expand(Xc, degree)
        names = monomial_names(names, degree)
    if not params.fit_intercept and params.standardize:
        # Standardising centres the columns, so a model "without intercept" on standardised
        # features is z = (x - mean) . beta: its design is the centred raw columns.
        design = design - design.mean(axis=0)
    start = model.decision_function(Xc)[:, 0]
    # Separation first: the solver cannot converge then, and this is the reason to tell.
    if separates(start, yi):
        return None, (
            f"{SINGULAR}: a hyperplane separates the classes perfectly, so the unpenalised "
            "maximum-likelihood estimate does not exist (the weights grow without bound); "
            "use l2 > 0"
        )
    report = result.report
    if not report.converged:
        return None, (
            f"not converged: the solver stopped ({report.stopped_by}) after "
            f"{report.iterations} iterations; raise max_iter or tol"
        )
    try:
        stats = logit_statistics(
            design,
            yi.astype(np.float64),
            fit_intercept=params.fit_intercept,
            names=names,
            start=start,
        )
    except StatisticsUnavailable as exc:
        return None, str(exc)
    except np.linalg.LinAlgError:  # e.g. an SVD that does not converge in the starting point
        return None, SINGULAR
    return stats, None
