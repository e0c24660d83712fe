"""Solvers. They see a loss object's callables (``loss_gradient``, ``hessian``...), no more.

Every solver minimises ``F(w) = f(w) + l1 * ||w[penalized]||_1`` where ``f`` is the smooth loss
object's objective (``l1 = 0`` for all but the proximal ones) and reports the same things: the
iterations, whether it converged, the final ``F``, the optimality measure and a thinned history.

Converged means *by the gradient*: the largest component of the minimum-norm subgradient of ``F``
is at most ``tol`` (for ``l1 = 0`` that is ``max |grad f|``), never only "the cost stopped moving".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from .errors import TrainingDiverged
from .loss import Array, HessianProduct
from .monitor import Monitor

#: Longest cost history kept with a model (evenly thinned, first and last points kept).
HISTORY_POINTS = 100

#: Sufficient-decrease constant (Armijo) and curvature constant (Wolfe) of the line searches.
ARMIJO = 1e-4
WOLFE = 0.9

#: L-BFGS with ``scale_preconditioner`` recomputes its scaling this often (iterations): on
#: ``load_digits`` every 10 iterations took as few passes as every iteration, at ~1/10 the cost.
RESCALE_EVERY = 10

#: Relative slack on a cost comparison, so that steps near the optimum, whose decrease is below
#: the rounding error of the cost itself, are judged by the gradient (Hager & Zhang's
#: "approximate Wolfe" idea) rather than refused.
ROUNDING = 64 * np.finfo(np.float64).eps

#: Rows per block of the blocked triangular substitution; a Newton block this small or smaller
#: is solved in one ``np.linalg.solve`` call instead.
SOLVE_BLOCK = 64


class SmoothLoss(Protocol):
    def loss_gradient(self, coef: Array, *, gradient: bool = True) -> tuple[float, Array]: ...

    def lipschitz_bound(self) -> float: ...

    def penalized(self) -> NDArray[np.bool_]: ...


class TwiceDifferentiableLoss(SmoothLoss, Protocol):
    def hessian(self, coef: Array) -> Array: ...

    def hessp(self, coef: Array) -> HessianProduct: ...

    def null_space(self) -> Array | None: ...


@dataclass(frozen=True)
class SolverResult:
    """What a solver returns: the coefficients and an honest account of how it got there."""

    coef: Array
    iterations: int
    converged: bool
    loss: float
    grad_norm: float
    stopped_by: str  # "tol", "max_iter", "time_budget" or "line_search"
    history: list[float] = field(default_factory=list)


def thin_history(history: list[float], points: int = HISTORY_POINTS) -> list[float]:
    """At most ``points`` evenly spaced entries of ``history``, keeping the first and the last."""
    if len(history) <= points:
        return list(history)
    idx = np.unique(np.linspace(0, len(history) - 1, points).round().astype(int))
    return [history[i] for i in idx]


def soft_threshold(v: Array, t: NDArray[np.floating] | float) -> Array:
    """``sign(v) * max(|v| - t, 0)``: the proximal map of ``t * ||.||_1`` (exact zeros)."""
    return np.sign(v) * np.maximum(np.abs(v) - t, 0.0)


def optimality(coef: Array, g: Array, l1: float, mask: NDArray[np.bool_]) -> float:
    """Largest component of the minimum-norm subgradient of ``f + l1 * ||coef[mask]||_1``.

    Zero exactly at the optimum: for a penalised ``w_j != 0`` the component is
    ``g_j + l1 * sign(w_j)``, for ``w_j = 0`` it is ``max(|g_j| - l1, 0)``.
    """
    if g.size == 0:
        return 0.0
    if l1 == 0:
        return float(np.max(np.abs(g)))
    r = np.abs(g)
    pen = mask
    nz = pen & (coef != 0)
    z = pen & (coef == 0)
    r[nz] = np.abs(g[nz] + l1 * np.sign(coef[nz]))
    r[z] = np.maximum(np.abs(g[z]) - l1, 0.0)
    return float(np.max(r))


class _Clock:
    def __init__(self, deadline: float | None, monitor: Monitor | None = None) -> None:
        self.deadline = deadline
        self.monitor = monitor

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def tick(self, it: int, f: float, gn: float) -> None:
        """Once per iteration, before its stopping test (iteration 0: the starting point)."""
        if self.monitor is not None:
            self.monitor.iteration(it, f, gn)


def _stop_reason(gn: float, tol: float, it: int, max_iter: int, clock: _Clock) -> str | None:
    """Why a solver stops before iteration ``it`` (converged, out of iterations, out of time),
    or ``None`` to go on; the same order of checks for every solver."""
    if gn <= tol:
        return "tol"
    if it >= max_iter:
        return "max_iter"
    if clock.expired():
        return "time_budget"
    return None


def _result(
    coef: Array, it: int, f: float, gn: float, stop: str, hist: list[float]
) -> SolverResult:
    return SolverResult(
        coef=coef,
        iterations=it,
        converged=stop == "tol",
        loss=f,
        grad_norm=gn,
        stopped_by=stop,
        history=thin_history(hist),
    )


# --------------------------------------------------------------------------- gradient descent


def gradient_descent(
    loss: SmoothLoss,
    coef0: Array,
    *,
    learning_rate: float | None,
    max_iter: int,
    tol: float,
    l1: float = 0.0,
    deadline: float | None = None,
    monitor: Monitor | None = None,
) -> SolverResult:
    """Batch gradient descent with a fixed learning rate: ``w <- w - alpha * grad f(w)``.

    With ``l1 > 0`` each step is followed by the L1 proximal map (soft thresholding), which is
    proximal gradient descent (ISTA) with the same fixed step.

    Parameters
    ----------
    loss : loss object
        Provides ``loss_gradient(coef) -> (f, grad)`` and ``lipschitz_bound()``.
    coef0 : ndarray of shape (n_coef,)
        Starting point.
    learning_rate : float or None
        The step ``alpha``. ``None`` picks ``1 / L`` with ``L`` an estimate of the gradient's
        Lipschitz constant, the largest step for which the cost is guaranteed to fall.
    max_iter : int
        Cap on the number of steps (each step is one pass over the data).
    tol : float
        Converged when the largest component of the (sub)gradient is at most ``tol``.
    l1 : float
        L1 strength on the penalised coefficients.
    deadline : float, optional
        ``time.monotonic()`` value after which the solver stops, reporting not converged.

    Raises
    ------
    TrainingDiverged
        When the cost grows far above its starting value (the learning rate is too large).
    """
    if learning_rate is None:
        bound = loss.lipschitz_bound()
        if not np.isfinite(bound):
            raise TrainingDiverged(
                "gradient descent cannot pick its step: the curvature of the cost (from the "
                "squares of the features) overflows 64-bit floats; rescale the features, or "
                "leave standardize on"
            )
        # zero: the cost is flat (every feature 0, no intercept, no penalty), any step will do
        alpha = 1.0 / bound if bound > 0 else 1.0
    else:
        alpha = float(learning_rate)
    mask = loss.penalized()
    thresh = alpha * l1 * mask
    clock = _Clock(deadline, monitor)
    coef = np.array(coef0, dtype=np.float64, copy=True)
    f, g = loss.loss_gradient(coef)
    f += l1 * float(np.abs(coef[mask]).sum())
    f0 = f
    history = [f]
    grad_norm = optimality(coef, g, l1, mask)
    iterations = 0
    stopped_by = "max_iter"
    while True:
        clock.tick(iterations, f, grad_norm)
        if grad_norm <= tol:
            stopped_by = "tol"
            break
        if iterations >= max_iter:
            break
        if clock.expired():
            stopped_by = "time_budget"
            break
        coef -= alpha * g
        if l1 > 0:
            coef = soft_threshold(coef, thresh)
        iterations += 1
        f, g = loss.loss_gradient(coef)
        f += l1 * float(np.abs(coef[mask]).sum())
        history.append(f)
        grad_norm = optimality(coef, g, l1, mask)
        # Stop long before the weights can overflow: a fixed step that makes the cost grow this
        # much is too large for the data, and the user should hear that rather than get NaN.
        if not np.isfinite(f) or f > 100.0 * f0 + 10.0:
            grew = (
                f"gradient descent diverged at iteration {iterations}: the cost grew from "
                f"{f0:.6g} to {f:.6g}"
            )
            if learning_rate is None:  # 1/L cannot make the cost grow in exact arithmetic
                raise TrainingDiverged(
                    f"{grew} with the automatic step 1/L = {alpha:g}: the features are too badly "
                    "scaled for 64-bit floats; rescale them, or leave standardize on"
                )
            raise TrainingDiverged(
                f"{grew}; learning_rate={alpha:g} is too large for this data "
                "(use a smaller one, or leave it unset to pick one automatically)"
            )
    return _result(coef, iterations, f, grad_norm, stopped_by, history)


# --------------------------------------------------------------------------- Newton


def newton_direction(H: Array, g: Array, null: Array | None = None) -> Array:
    """``-H^+ g`` for a block-diagonal Hessian ``H`` of shape (B, q, q), by Cholesky per block.

    ``null`` (n_coef, r), orthonormal directions along which the objective is flat (the gradient
    is orthogonal to them): adding ``U U.T`` makes the block positive definite without changing
    the step, which then stays orthogonal to the flat directions. A block that is still not
    numerically positive definite gets a small multiple of its trace added to the diagonal
    (Levenberg-Marquardt), which keeps a descent direction.
    """
    B, q, _ = H.shape
    G = g.reshape(B, q)
    out = np.empty_like(G)
    flat = None if null is None else null @ null.T
    for k in range(B):
        Hk = H[k]
        if flat is not None:
            Hk = Hk + flat
        scale = max(float(np.trace(Hk)) / q, np.finfo(np.float64).tiny)
        jitter = 0.0
        for _ in range(12):
            try:
                Hj = Hk + jitter * np.eye(q) if jitter else Hk
                L = np.linalg.cholesky(Hj)
                break
            except np.linalg.LinAlgError:
                jitter = scale * 1e-10 if jitter == 0 else jitter * 100
        else:  # pragma: no cover - only a NaN Hessian gets here
            Hj = L = np.sqrt(scale) * np.eye(q)
        out[k] = -_solve_factored(Hj, L, G[k])
    return out.ravel()


def _solve_factored(H: Array, L: Array, b: Array) -> Array:
    """``H^-1 b`` for positive definite ``H`` with lower Cholesky factor ``L``.

    Up to one substitution block, one LAPACK solve of ``H`` is one call where the two triangular
    substitutions are two, each as costly (iris, multinomial: ~10% of its fit). A matrix that
    rounding makes exactly singular for LU (Cholesky passed) goes through ``L`` as before.
    """
    if H.shape[0] <= SOLVE_BLOCK:
        try:
            return np.asarray(np.linalg.solve(H, b), dtype=np.float64)
        except np.linalg.LinAlgError:
            pass
    return cholesky_solve(L, b)


def _triangular_solve(T: Array, b: Array, *, lower: bool, block: int = SOLVE_BLOCK) -> Array:
    """Solve ``T x = b`` for triangular ``T`` of shape (p, p) by blocked substitution.

    NumPy has no triangular solver; blocks of ``block`` rows keep the Python loop short and the
    work in matrix-vector products (O(p^2), where a general solve would be O(p^3)).
    """
    p = T.shape[0]
    x = np.empty_like(b)
    starts = range(0, p, block) if lower else reversed(range(0, p, block))
    for start in starts:
        stop = min(start + block, p)
        rhs = b[start:stop].copy()
        if lower and start > 0:
            rhs -= T[start:stop, :start] @ x[:start]
        elif not lower and stop < p:
            rhs -= T[start:stop, stop:] @ x[stop:]
        x[start:stop] = np.linalg.solve(T[start:stop, start:stop], rhs)
    return x


def cholesky_solve(L: Array, b: Array) -> Array:
    """``x`` with ``L L.T x = b``, for the lower Cholesky factor ``L``."""
    return _triangular_solve(L.T, _triangular_solve(L, b, lower=True), lower=False)


def _armijo(
    loss: SmoothLoss,
    coef: Array,
    f: float,
    slope: float,
    step: Array,
    *,
    composite: Callable[[Array], float] | None = None,
) -> tuple[float, Array, float, Array] | None:
    """Backtracking from the unit step until ``F(w + t d) <= F(w) + ARMIJO * t * slope``.

    ``slope`` is the directional derivative (for the composite objective, the predicted
    decrease). Returns ``(t, new coef, F, grad f)`` or ``None`` when no step helps.
    """
    t = 1.0
    for _ in range(40):
        trial = coef + t * step
        ft, gt = loss.loss_gradient(trial)
        if composite is not None:
            ft += composite(trial)
        if np.isfinite(ft) and ft <= f + ARMIJO * t * slope + ROUNDING * abs(f):
            return t, trial, ft, gt
        t *= 0.5
    return None


def newton(
    loss: TwiceDifferentiableLoss,
    coef0: Array,
    *,
    max_iter: int,
    tol: float,
    deadline: float | None = None,
    hessian_loss: TwiceDifferentiableLoss | None = None,
    monitor: Monitor | None = None,
) -> SolverResult:
    """Newton's method (IRLS): Cholesky solve of ``H d = -g``, then Armijo backtracking.

    Parameters
    ----------
    loss : loss object
        ``loss_gradient`` (exact, on all the data) and ``null_space``.
    coef0 : ndarray of shape (n_coef,)
    max_iter : int
        Cap on Newton steps.
    tol : float
        Converged when ``max |grad f| <= tol`` (the exact full-data gradient).
    hessian_loss : loss object, optional
        Where the Hessian comes from; by default ``loss``. A row subsample of ``loss`` gives a
        cheap Hessian and still converges to the exact optimum (linearly fast rather than
        quadratically), because the gradient and the line search use all the data.
    """
    hloss = loss if hessian_loss is None else hessian_loss
    null = loss.null_space()
    mask = loss.penalized()
    clock = _Clock(deadline, monitor)
    coef = np.array(coef0, dtype=np.float64, copy=True)
    f, g = loss.loss_gradient(coef)
    history = [f]
    gn = optimality(coef, g, 0.0, mask)
    it = 0
    stop = "max_iter"
    while True:
        clock.tick(it, f, gn)
        if (reason := _stop_reason(gn, tol, it, max_iter, clock)) is not None:
            stop = reason
            break
        step = newton_direction(hloss.hessian(coef), g, null)
        slope = float(g @ step)
        if not slope < 0:
            stop = "line_search"
            break
        found = _armijo(loss, coef, f, slope, step)
        if found is None:
            stop = "line_search"
            break
        _, coef, f, g = found
        it += 1
        history.append(f)
        gn = optimality(coef, g, 0.0, mask)
    return _result(coef, it, f, gn, stop, history)


# --------------------------------------------------------------------------- L-BFGS


def _cubic_min(a: float, fa: float, da: float, b: float, fb: float, db: float) -> float | None:
    """Minimiser of the cubic through ``(a, fa, da)`` and ``(b, fb, db)``, if it is defined."""
    d1 = da + db - 3 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    if disc < 0:
        return None
    d2 = np.copysign(np.sqrt(disc), b - a)
    denom = db - da + 2 * d2
    if denom == 0:
        return None
    return float(b - (b - a) * (db + d2 - d1) / denom)


def wolfe_line_search(
    phi: Callable[[float], tuple[float, float, Array]],
    f0: float,
    d0: float,
    *,
    t0: float = 1.0,
    max_evals: int = 25,
) -> tuple[float, float, Array] | None:
    """A step ``t`` satisfying the strong Wolfe conditions (Nocedal & Wright, Alg. 3.5 and 3.6).

    ``phi(t) -> (F(w + t d), F'(w + t d; d), grad)``; ``f0 = phi(0)``, ``d0 = phi'(0) < 0``.
    Conditions: ``phi(t) <= f0 + ARMIJO * t * d0`` (up to rounding of ``f0``) and
    ``|phi'(t)| <= WOLFE * |d0|``. Trial points come from cubic interpolation, safeguarded.
    Returns ``(t, phi(t), grad)``, or ``None`` if none is found within ``max_evals``.
    """
    slack = ROUNDING * abs(f0)
    # Fallback near the optimum, where cost differences drown in rounding: the evaluated step
    # with the smallest |phi'| among those that do not raise the cost beyond rounding.
    fallback: list[tuple[float, float, float, Array]] = []

    def evaluate(t: float) -> tuple[float, float, Array]:
        ft, dt, gt = phi(t)
        better = not fallback or abs(dt) < fallback[0][0]
        if np.isfinite(ft) and ft <= f0 + slack and abs(dt) < abs(d0) and better:
            fallback[:] = [(abs(dt), t, ft, gt)]
        return ft, dt, gt

    def armijo_ok(t: float, ft: float) -> bool:
        return bool(np.isfinite(ft) and ft <= f0 + ARMIJO * t * d0 + slack)

    def zoom(
        lo: float, flo: float, dlo: float, hi: float, fhi: float, dhi: float, evals: int
    ) -> tuple[float, float, Array] | None:
        while evals < max_evals:
            t = _cubic_min(lo, flo, dlo, hi, fhi, dhi) if np.isfinite(fhi) else None
            left, right = min(lo, hi), max(lo, hi)
            margin = 0.1 * (right - left)
            if t is None or not (left + margin <= t <= right - margin):
                t = 0.5 * (lo + hi)
            ft, dt, gt = evaluate(t)
            evals += 1
            if not armijo_ok(t, ft) or ft >= flo:
                hi, fhi, dhi = t, ft, dt
            else:
                if abs(dt) <= -WOLFE * d0:
                    return t, ft, gt
                if dt * (hi - lo) >= 0:
                    hi, fhi, dhi = lo, flo, dlo
                lo, flo, dlo = t, ft, dt
            if abs(hi - lo) <= 1e-16 * max(1.0, abs(lo)):
                break
        return give_up()

    def give_up() -> tuple[float, float, Array] | None:
        if fallback:
            _, t, ft, gt = fallback[0]
            return t, ft, gt
        return None

    prev_t, prev_f, prev_d = 0.0, f0, d0
    t = t0
    for i in range(max_evals):
        ft, dt, gt = evaluate(t)
        if not armijo_ok(t, ft) or (i > 0 and ft >= prev_f):
            return zoom(prev_t, prev_f, prev_d, t, ft, dt, i + 1)
        if abs(dt) <= -WOLFE * d0:
            return t, ft, gt
        if dt >= 0:
            return zoom(t, ft, dt, prev_t, prev_f, prev_d, i + 1)
        prev_t, prev_f, prev_d = t, ft, dt
        t *= 2.0
    return give_up()


def _along(loss: SmoothLoss, w: Array, d: Array) -> Callable[[float], tuple[float, float, Array]]:
    """``phi(t) = (f(w + t d), f'(w + t d; d), grad f(w + t d))`` for the line search."""

    def phi(t: float) -> tuple[float, float, Array]:
        ft, gt = loss.loss_gradient(w + t * d)
        return ft, float(gt @ d), gt

    return phi


class _Pairs:
    """L-BFGS's newest ``memory`` correction pairs ``(s, y)`` and the two-loop recursion.

    The pairs sit in two (memory, n) ring buffers, with ``s_i . y_j`` of every two kept up to
    date (two products a new pair), so that the recursion's dot products come from a few
    products with the buffers and scalar loops over ``memory`` numbers: ``s_i . q`` in the
    first loop is ``s_i . g`` minus the ``alpha_j s_i . y_j`` of the newer pairs, ``y_i . q``
    in the second is ``y_i . H0 q`` plus the ``(alpha_j - beta_j) y_i . s_j`` of the older
    ones. That replaced 4 * ``memory`` vector operations an iteration (~55 -> ~20 us with 10
    pairs of 650 coefficients, ~5% of digits' multinomial fit); the arithmetic is the same up
    to rounding.
    """

    def __init__(self, memory: int, n: int) -> None:
        self.memory = memory
        self.S = np.zeros((memory, n))  # unused rows stay 0, so products with them are 0
        self.Y = np.zeros((memory, n))
        self.dots = np.zeros((memory, memory))  # dots[a, b] = S[a] . Y[b]
        self.slots: list[int] = []  # the used rows, oldest first
        self.rho: list[float] = []  # 1 / s . y, in the order of ``slots``
        self._order = np.zeros(0, dtype=np.intp)  # ``slots`` as an array
        self._dots: list[list[float]] = []  # ``dots`` in the order of ``slots``, as floats

    def __len__(self) -> int:
        return len(self.slots)

    def clear(self) -> None:
        self.S[:] = 0.0
        self.Y[:] = 0.0
        self.dots[:] = 0.0
        self.slots, self.rho = [], []
        self._order = np.zeros(0, dtype=np.intp)
        self._dots = []

    def add(self, s: Array, y: Array, rho: float) -> None:
        if len(self.slots) == self.memory:
            slot = self.slots.pop(0)
            self.rho.pop(0)
        else:
            slot = len(self.slots)
        self.S[slot] = s
        self.Y[slot] = y
        self.dots[slot, :] = self.Y @ s
        self.dots[:, slot] = self.S @ y
        self.slots.append(slot)
        self.rho.append(rho)
        self._order = np.array(self.slots)
        self._dots = self.dots[np.ix_(self._order, self._order)].tolist()

    def newest(self) -> tuple[Array, Array]:
        slot = self.slots[-1]
        return self.S[slot], self.Y[slot]

    def first_loop(self, g: Array) -> tuple[Array, list[float]]:
        """``q`` after the first loop (newest pair to oldest), and the ``alpha``s (oldest first)."""
        k = len(self.slots)
        if k == 0:
            return g.copy(), []
        slots, rho, dots = self._order, self.rho, self._dots
        sg = (self.S @ g)[slots].tolist()
        alphas = [0.0] * k
        for i in range(k - 1, -1, -1):
            v = sg[i]
            for j in range(i + 1, k):
                v -= alphas[j] * dots[i][j]
            alphas[i] = rho[i] * v
        coeff = np.zeros(self.memory)
        coeff[slots] = alphas
        return g - self.Y.T @ coeff, alphas

    def second_loop(self, q: Array, alphas: list[float]) -> None:
        """The second loop (oldest pair to newest), on ``q = H0 (first loop's q)`` in place."""
        k = len(self.slots)
        if k == 0:
            return
        slots, rho, dots = self._order, self.rho, self._dots
        yq = (self.Y @ q)[slots].tolist()
        steps = [0.0] * k  # alpha_i - beta_i
        for i in range(k):
            v = yq[i]
            for j in range(i):
                v += steps[j] * dots[j][i]
            steps[i] = alphas[i] - rho[i] * v
        coeff = np.zeros(self.memory)
        coeff[slots] = steps
        q += self.S.T @ coeff


def lbfgs(
    loss: SmoothLoss,
    coef0: Array,
    *,
    max_iter: int,
    tol: float,
    deadline: float | None = None,
    monitor: Monitor | None = None,
    memory: int = 10,
    precondition: Callable[[Array], Array] | None = None,
    scale_preconditioner: bool = False,
) -> SolverResult:
    """Limited-memory BFGS with a strong-Wolfe line search.

    Parameters
    ----------
    loss : loss object
        ``loss_gradient`` only.
    coef0 : ndarray of shape (n_coef,)
    max_iter : int
        Cap on iterations (each costs one or a few passes over the data).
    tol : float
        Converged when ``max |grad f| <= tol``.
    memory : int
        Number of correction pairs kept.
    precondition : callable, optional
        ``v -> H0^{-1} v``, the initial inverse-Hessian of the two-loop recursion (for example a
        Cholesky solve with a subsample's Hessian). Default: the usual scaled identity.
    scale_preconditioner : bool
        Multiply ``H0^{-1}`` by ``gamma = s.y / y.H0^{-1}y`` of the newest pair (the scaling the
        identity gets, Nocedal & Wright eq. 7.20, carried over to ``H0``): for a preconditioner
        taken at another point, whose overall curvature is off by some factor. Recomputed every
        ``RESCALE_EVERY`` iterations (each costs one more ``H0^{-1}`` product).
    """
    clock = _Clock(deadline, monitor)
    coef = np.array(coef0, dtype=np.float64, copy=True)
    f, g = loss.loss_gradient(coef)
    history = [f]
    mask = loss.penalized()
    gn = optimality(coef, g, 0.0, mask)
    pairs = _Pairs(memory, len(coef))
    it = 0
    gamma = None
    stop = "max_iter"
    while True:
        clock.tick(it, f, gn)
        if (reason := _stop_reason(gn, tol, it, max_iter, clock)) is not None:
            stop = reason
            break
        # two-loop recursion: d = -H_k g
        q, alphas = pairs.first_loop(g)
        if precondition is not None:
            q = precondition(q)
            if scale_preconditioner and pairs:
                # one extra H0 product: not every step (it costs ~half a pass on small data)
                if gamma is None or it % RESCALE_EVERY == 0:
                    s_last, y_last = pairs.newest()
                    y_h0_y = float(y_last @ precondition(y_last))
                    if y_h0_y > 0:
                        gamma = float(s_last @ y_last) / y_h0_y
                if gamma is not None:
                    q *= gamma
        elif pairs:
            s_last, y_last = pairs.newest()
            q *= float(s_last @ y_last) / float(y_last @ y_last)
        else:  # no curvature yet: a first trial step of length at most 1 (1 / ||g||_2; it was
            # 1 / ||g||_1, too short on many coefficients: 4 evaluations to the first step on
            # digits, 6 fewer passes there in all; see docs/DEVELOPING.md)
            q *= min(1.0, 1.0 / max(float(np.sqrt(g @ g)), 1e-300))
        pairs.second_loop(q, alphas)
        d = -q
        d0 = float(g @ d)
        if not d0 < 0:  # lost the descent property: restart from steepest descent
            pairs.clear()
            d = -g * min(1.0, 1.0 / max(float(np.abs(g).sum()), 1e-300))
            d0 = float(g @ d)

        phi = _along(loss, coef, d)

        found = wolfe_line_search(phi, f, d0)
        if found is None and pairs:  # forget the curvature pairs and try steepest descent once
            pairs.clear()
            d = -g * min(1.0, 1.0 / max(float(np.abs(g).sum()), 1e-300))
            found = wolfe_line_search(_along(loss, coef, d), f, float(g @ d))
        if found is None:
            stop = "line_search"
            break
        t, f_new, g_new = found
        s = t * d
        y = g_new - g
        coef = coef + s
        f, g = f_new, g_new
        it += 1
        history.append(f)
        gn = optimality(coef, g, 0.0, mask)
        sy, yy = float(s @ y), float(y @ y)
        # a pair whose y . y underflows to 0 carries no usable curvature (and H0 divides by it)
        if yy > 0 and sy > 1e-12 * float(np.sqrt((s @ s) * yy)):
            pairs.add(s, y, 1.0 / sy)
    return _result(coef, it, f, gn, stop, history)


# --------------------------------------------------------------------------- L1: proximal methods


def _l1_term(l1: float, mask: NDArray[np.bool_]) -> Callable[[Array], float]:
    def term(coef: Array) -> float:
        return l1 * float(np.abs(coef[mask]).sum())

    return term


def fista(
    loss: SmoothLoss,
    coef0: Array,
    *,
    l1: float,
    max_iter: int,
    tol: float,
    deadline: float | None = None,
    monitor: Monitor | None = None,
) -> SolverResult:
    """Accelerated proximal gradient (FISTA) with backtracking on ``L`` and adaptive restart.

    Minimises ``f + l1 * ||w[penalized]||_1``; the soft-thresholding step gives exact zeros.
    Each iteration costs one pass over the data (two when ``L`` is raised).
    """
    mask = loss.penalized()
    term = _l1_term(l1, mask)
    clock = _Clock(deadline, monitor)
    L = loss.lipschitz_bound() * 0.5
    x = np.array(coef0, dtype=np.float64, copy=True)
    fx, gx = loss.loss_gradient(x)
    F = fx + term(x)
    history = [F]
    gn = optimality(x, gx, l1, mask)
    yv, fy, gy = x, fx, gx
    tk = 1.0
    it = 0
    stop = "max_iter"
    while True:
        clock.tick(it, F, gn)
        if (reason := _stop_reason(gn, tol, it, max_iter, clock)) is not None:
            stop = reason
            break
        for _ in range(60):
            x_new = soft_threshold(yv - gy / L, (l1 / L) * mask)
            diff = x_new - yv
            f_new, g_new = loss.loss_gradient(x_new)
            bound = fy + float(gy @ diff) + 0.5 * L * float(diff @ diff)
            if f_new <= bound + ROUNDING * abs(fy):
                break
            L *= 2.0
        F_new = f_new + term(x_new)
        it += 1
        if F_new > F + ROUNDING * abs(F):  # momentum overshot: restart from the last point
            tk = 1.0
            yv, fy, gy = x, fx, gx
            continue
        t_next = 0.5 * (1 + np.sqrt(1 + 4 * tk * tk))
        mom = (tk - 1) / t_next
        yv = x_new + mom * (x_new - x)
        x, fx, gx, F = x_new, f_new, g_new, F_new
        fy, gy = loss.loss_gradient(yv) if mom != 0 else (fx, gx)
        tk = t_next
        history.append(F)
        gn = optimality(x, gx, l1, mask)
        L *= 0.9  # let the step grow back
    return _result(x, it, F, gn, stop, history)


def _prox_quadratic(
    H: Array,
    g: Array,
    coef: Array,
    *,
    l1: float,
    mask: NDArray[np.bool_],
    tol: float,
    max_iter: int = 20000,
) -> Array:
    """Minimise ``g.(u - w) + 1/2 (u - w).H.(u - w) + l1 ||u[mask]||_1`` over ``u`` (FISTA).

    ``H`` is block diagonal, of shape (B, q, q). Runs until the proximal-gradient step is below
    ``tol`` in every component (scaled by the step); returns ``u``.
    """
    B, q, _ = H.shape

    def hmul(v: Array) -> Array:
        return np.einsum("bij,bj->bi", H, v.reshape(B, q)).ravel()

    L = max(float(np.linalg.eigvalsh(H).max()), 1e-300)
    thresh = (l1 / L) * mask
    u = coef.copy()
    y = u.copy()
    t = 1.0
    for _ in range(max_iter):
        grad = g + hmul(y - coef)
        u_new = soft_threshold(y - grad / L, thresh)
        step = u_new - y
        if float(np.max(np.abs(step))) * L <= tol:
            return u_new
        t_next = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
        if float(step @ (u_new - u)) < 0:  # gradient-based adaptive restart
            t_next, y = 1.0, u_new.copy()
        else:
            y = u_new + ((t - 1) / t_next) * (u_new - u)
        u, t = u_new, t_next
    return u


def proximal_newton(
    loss: TwiceDifferentiableLoss,
    coef0: Array,
    *,
    l1: float,
    max_iter: int,
    tol: float,
    deadline: float | None = None,
    monitor: Monitor | None = None,
) -> SolverResult:
    """Proximal Newton for ``f + l1 * ||w[penalized]||_1`` (Lee, Sun & Saunders 2014).

    Each outer step minimises the quadratic model of ``f`` plus the exact L1 term (by FISTA on the
    explicit Hessian, no data passes), then backtracks on ``F`` with the sufficient decrease
    ``F(w + t d) <= F(w) + ARMIJO * t * (g.d + l1 ||w + d||_1 - l1 ||w||_1)``. Zeros are exact.
    Converges like Newton near the optimum.
    """
    mask = loss.penalized()
    term = _l1_term(l1, mask)
    clock = _Clock(deadline, monitor)
    coef = np.array(coef0, dtype=np.float64, copy=True)
    f, g = loss.loss_gradient(coef)
    F = f + term(coef)
    history = [F]
    gn = optimality(coef, g, l1, mask)
    it = 0
    stop = "max_iter"
    while True:
        clock.tick(it, F, gn)
        if (reason := _stop_reason(gn, tol, it, max_iter, clock)) is not None:
            stop = reason
            break
        H = loss.hessian(coef)
        u = _prox_quadratic(H, g, coef, l1=l1, mask=mask, tol=max(min(0.1 * gn, gn * gn), tol / 10))
        step = u - coef
        if not np.any(step):
            stop = "line_search"
            break
        # Near the optimum the predicted decrease is below the rounding error of F and may come
        # out >= 0; the line search (with its rounding slack) then judges the step.
        decrease = min(float(g @ step) + term(u) - term(coef), 0.0)
        found = _armijo(loss, coef, F, decrease, step, composite=term)
        if found is None:
            stop = "line_search"
            break
        _, coef, F, g = found
        it += 1
        history.append(F)
        gn = optimality(coef, g, l1, mask)
    return _result(coef, it, F, gn, stop, history)
