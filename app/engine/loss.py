"""Loss objects for logistic regression.

A loss object owns the (preprocessed) design matrix and the targets and exposes ``loss``,
``gradient`` and ``loss_gradient`` of the flattened coefficient vector, so that solvers only
see callables (the shape of scikit-learn's ``LinearModelLoss``).

Objective (per output column k, summed over the K outputs)::

    J(w, b) = 1/S * sum_i s_i * [log(1 + exp(z_i)) - y_i * z_i] + lambda/2 * ||w||^2
    z_i     = x_i . w + b,   S = sum_i s_i

which, with unit sample weights ``s_i``, is the mean binary cross-entropy of
``h(x) = sigmoid(w.x + b)`` plus an L2 penalty that leaves the intercept ``b`` alone.
scikit-learn's ``C`` maps to ``lambda = 1 / (C * n_samples)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def sigmoid(z: Array) -> Array:
    """Logistic function ``1 / (1 + exp(-z))``, accurate in both tails.

    Uses ``e = exp(-|z|)``, which never overflows: ``1 / (1 + e)`` for ``z >= 0`` and
    ``e / (1 + e)`` otherwise, so tiny probabilities keep their relative precision.
    """
    e = np.exp(-np.abs(z))
    out = np.where(z >= 0, 1.0, e)
    out /= 1.0 + e
    return out


def log_sigmoid(z: Array) -> Array:
    """``log(sigmoid(z)) = -log(1 + exp(-z))`` without overflow or ``log(0)``."""
    return -np.logaddexp(0.0, -z)


def log1pexp(z: Array) -> Array:
    """``log(1 + exp(z))`` without overflow (``np.logaddexp(0, z)``)."""
    return np.logaddexp(0.0, z)


class LogisticLoss:
    """Sum of K independent binary cross-entropy objectives sharing one design matrix.

    K = 1 is the binary model; K > 1 is one-vs-all, where output k is "class k versus the rest".
    All K outputs are evaluated in one pass over ``X`` (``X @ W`` and ``X.T @ R``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Preprocessed features (C- or F-contiguous float64).
    Y : ndarray of shape (n_samples, n_outputs)
        Targets in {0, 1}.
    l2 : float
        Penalty strength lambda (see the module docstring).
    fit_intercept : bool
        Whether each output has an unpenalised intercept.
    sample_weight : ndarray of shape (n_samples,), optional
        Non-negative weights; ``None`` means all ones.

    Notes
    -----
    Coefficients are packed as a flat vector of an array of shape
    ``(n_outputs, n_features + fit_intercept)``; the intercept is the last column.
    """

    def __init__(
        self,
        X: Array,
        Y: Array,
        *,
        l2: float = 0.0,
        fit_intercept: bool = True,
        sample_weight: Array | None = None,
    ) -> None:
        self.X = X
        self.Y = Y
        self.l2 = float(l2)
        self.fit_intercept = fit_intercept
        n = X.shape[0]
        if sample_weight is None:
            self.sw: Array | None = None
            self.sw_sum = float(n)
        else:
            self.sw = np.asarray(sample_weight, dtype=np.float64)
            self.sw_sum = float(self.sw.sum())
        self.n_outputs = Y.shape[1]
        self.n_features = X.shape[1]
        self.n_coef_cols = self.n_features + int(fit_intercept)

    @property
    def n_coef(self) -> int:
        return self.n_outputs * self.n_coef_cols

    def unpack(self, coef: Array) -> tuple[Array, Array]:
        """Split flat ``coef`` into weights (n_outputs, n_features) and intercepts (n_outputs,)."""
        C = coef.reshape(self.n_outputs, self.n_coef_cols)
        if self.fit_intercept:
            return C[:, :-1], C[:, -1]
        return C, np.zeros(self.n_outputs)

    def raw_prediction(self, coef: Array) -> Array:
        """``z = X @ W.T + b``, of shape (n_samples, n_outputs)."""
        W, b = self.unpack(coef)
        Z = self.X @ W.T
        if self.fit_intercept:
            Z += b
        return Z

    def loss_per_output(self, coef: Array) -> Array:
        """Objective of each output separately, of shape (n_outputs,)."""
        Z = self.raw_prediction(coef)
        return self._loss_from_raw(coef, Z)

    def _loss_from_raw(self, coef: Array, Z: Array) -> Array:
        W, _ = self.unpack(coef)
        pointwise = log1pexp(Z)
        pointwise -= self.Y * Z
        if self.sw is None:
            data = pointwise.sum(axis=0) / self.sw_sum
        else:
            data = self.sw @ pointwise / self.sw_sum
        return data + 0.5 * self.l2 * np.einsum("kj,kj->k", W, W)

    def loss(self, coef: Array) -> float:
        return float(self.loss_per_output(coef).sum())

    def loss_gradient(self, coef: Array) -> tuple[float, Array]:
        """Objective and its gradient (flat, same shape as ``coef``) in one pass over ``X``."""
        Z = self.raw_prediction(coef)
        loss = float(self._loss_from_raw(coef, Z).sum())
        return loss, self._gradient_from_raw(coef, Z)

    def gradient(self, coef: Array) -> Array:
        return self._gradient_from_raw(coef, self.raw_prediction(coef))

    def _gradient_from_raw(self, coef: Array, Z: Array) -> Array:
        W, _ = self.unpack(coef)
        R = sigmoid(Z)
        R -= self.Y
        if self.sw is not None:
            R *= self.sw[:, None]
        R /= self.sw_sum
        G = np.empty((self.n_outputs, self.n_coef_cols))
        G[:, : self.n_features] = R.T @ self.X
        G[:, : self.n_features] += self.l2 * W
        if self.fit_intercept:
            G[:, -1] = R.sum(axis=0)
        return G.ravel()

    def lipschitz_bound(self, *, max_rows: int = 5000, seed: int = 0) -> float:
        """Estimate of the gradient's Lipschitz constant, ``max eig(X1.T X1) / (4 n) + lambda``.

        ``X1`` is ``X`` with a column of ones when an intercept is fitted. Estimated on at most
        ``max_rows`` rows (a uniform sample), so it costs far less than one pass over a large ``X``.
        """
        X = self.X
        n = X.shape[0]
        if n > max_rows:
            rows = np.random.default_rng(seed).choice(n, size=max_rows, replace=False)
            X = X[np.sort(rows)]
        m = X.shape[0]
        if self.fit_intercept:
            X = np.hstack([X, np.ones((m, 1))])
        gram = X.T @ X / m
        if gram.shape[0] <= 1500:
            top = float(np.linalg.eigvalsh(gram)[-1])
        else:  # power iteration: a few hundred mat-vecs beat an O(d^3) eigensolver
            v = np.ones(gram.shape[0]) / np.sqrt(gram.shape[0])
            top = 0.0
            for _ in range(200):
                u = gram @ v
                top = float(np.linalg.norm(u))
                if top == 0.0:
                    break
                v = u / top
        # The sample can under-estimate the full-data eigenvalue; a 10% margin keeps 1/L safe.
        return 1.1 * 0.25 * top + self.l2
