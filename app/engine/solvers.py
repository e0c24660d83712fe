"""Solvers: they see a loss object (``loss_gradient`` of a flat coefficient vector), no more."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .errors import TrainingDiverged
from .loss import Array

#: Longest cost history kept with a model (evenly thinned, first and last points kept).
HISTORY_POINTS = 100


class DifferentiableLoss(Protocol):
    def loss_gradient(self, coef: Array) -> tuple[float, Array]: ...

    def lipschitz_bound(self) -> float: ...


@dataclass(frozen=True)
class SolverResult:
    """What a solver returns: the coefficients and an honest account of how it got there."""

    coef: Array
    iterations: int
    converged: bool
    loss: float
    grad_norm: float
    stopped_by: str  # "tol", "max_iter" or "time_budget"
    history: list[float] = field(default_factory=list)


def thin_history(history: list[float], points: int = HISTORY_POINTS) -> list[float]:
    """At most ``points`` evenly spaced entries of ``history``, keeping the first and the last."""
    if len(history) <= points:
        return list(history)
    idx = np.unique(np.linspace(0, len(history) - 1, points).round().astype(int))
    return [history[i] for i in idx]


def gradient_descent(
    loss: DifferentiableLoss,
    coef0: Array,
    *,
    learning_rate: float | None,
    max_iter: int,
    tol: float,
    deadline: float | None = None,
) -> SolverResult:
    """Batch gradient descent with a fixed learning rate: ``w <- w - alpha * grad J(w)``.

    Parameters
    ----------
    loss : loss object
        Provides ``loss_gradient(coef) -> (J, grad)`` and ``lipschitz_bound()``.
    coef0 : ndarray of shape (n_coef,)
        Starting point.
    learning_rate : float or None
        The step ``alpha``. ``None`` picks ``1 / L`` with ``L`` an estimate of the gradient's
        Lipschitz constant, the largest step for which the cost is guaranteed to fall.
    max_iter : int
        Cap on the number of steps (each step is one pass over the data).
    tol : float
        Converged when the largest absolute component of the gradient is at most ``tol``.
    deadline : float, optional
        ``time.monotonic()`` value after which the solver stops, reporting not converged.

    Raises
    ------
    TrainingDiverged
        When the cost grows far above its starting value (the learning rate is too large).
    """
    if learning_rate is None:
        bound = loss.lipschitz_bound()
        # zero: the cost is flat (every feature 0, no intercept, no penalty), any step will do
        alpha = 1.0 / bound if bound > 0 else 1.0
    else:
        alpha = float(learning_rate)
    coef = np.array(coef0, dtype=np.float64, copy=True)
    f, g = loss.loss_gradient(coef)
    f0 = f
    history = [f]
    grad_norm = float(np.max(np.abs(g))) if g.size else 0.0
    iterations = 0
    stopped_by = "max_iter"
    while True:
        if grad_norm <= tol:
            stopped_by = "tol"
            break
        if iterations >= max_iter:
            break
        if deadline is not None and time.monotonic() > deadline:
            stopped_by = "time_budget"
            break
        coef -= alpha * g
        iterations += 1
        f, g = loss.loss_gradient(coef)
        history.append(f)
        grad_norm = float(np.max(np.abs(g)))
        # Stop long before the weights can overflow: a fixed step that makes the cost grow this
        # much is too large for the data, and the user should hear that rather than get NaN.
        if not np.isfinite(f) or f > 100.0 * f0 + 10.0:
            raise TrainingDiverged(
                f"gradient descent diverged at iteration {iterations}: the cost grew from "
                f"{f0:.6g} to {f:.6g}; learning_rate={alpha:g} is too large for this data "
                "(use a smaller one, or leave it unset to pick one automatically)"
            )
    return SolverResult(
        coef=coef,
        iterations=iterations,
        converged=stopped_by == "tol",
        loss=f,
        grad_norm=grad_norm,
        stopped_by=stopped_by,
        history=thin_history(history),
    )
