"""Loss objects for logistic regression.

A loss object owns the design matrix and the targets and exposes ``loss``, ``gradient``,
``loss_gradient``, ``hessian`` and ``hessp`` of the flattened coefficient vector, so that solvers
only see callables (the shape of scikit-learn's ``LinearModelLoss``).

Objective (the one place it is written out). With per-row weights ``s_i`` (all ones unless
``sample_weight`` / ``class_weight`` are given) and ``S = sum_i s_i``::

    J(W, b) = 1/S * sum_i s_i * l(y_i, z_i) + lambda/2 * ||W||^2 + lambda_1 * ||W||_1
    z_i     = W x_i + b

- binary and one-vs-all (``LogisticLoss``): ``K`` independent outputs, ``z_ik = w_k . x_i + b_k``,
  ``l = sum_k [log(1 + exp(z_ik)) - y_ik * z_ik]`` (cross-entropy of ``sigmoid(z)``);
- multinomial (``MultinomialLoss``): ``K`` rows of ``W`` (one per class, the over-parameterised
  softmax that scikit-learn uses), ``l = logsumexp_k(z_ik) - z_i,y_i``.

The intercepts ``b`` are never penalised. ``lambda`` is ``l2``; the L1 term ``lambda_1`` is not
part of these smooth objects: the proximal solvers add it (see ``solvers.py``).
scikit-learn's ``C`` maps to ``lambda = 1 / (C * S)``: its objective is
``C * sum_i s_i l_i + 1/2 ||W||^2``, which is ours times ``C * S``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .source import RowBlocks, take_rows

if TYPE_CHECKING:
    from .monitor import Monitor

Array = NDArray[np.float64]
HessianProduct = Callable[[Array], Array]

#: Rows per block when a Hessian or column statistics are accumulated, so temporaries stay small.
CHUNK_ROWS = 16384


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


def softmax(Z: Array) -> Array:
    """Row-wise softmax of ``Z`` of shape (n_samples, n_classes), without overflow."""
    P = Z - Z.max(axis=1, keepdims=True)
    np.exp(P, out=P)
    P /= P.sum(axis=1, keepdims=True)
    return P


def _lower_triangular_inverse(L: Array, *, block: int = 64) -> Array:
    """``L^-1`` for lower-triangular ``L`` of shape (p, p), by recursive halving.

    ``[[A, 0], [C, D]]^-1 = [[A^-1, 0], [-D^-1 C A^-1, D^-1]]``: the work is in matrix products
    (p^3 / 3 flops), where ``np.linalg.inv`` would factor the matrix again (~2.7 p^3).
    """
    p = L.shape[0]
    if p <= block:
        return np.asarray(np.linalg.inv(L), dtype=np.float64)
    h = p // 2
    top = _lower_triangular_inverse(L[:h, :h], block=block)
    bottom = _lower_triangular_inverse(L[h:, h:], block=block)
    out = np.zeros_like(L)
    out[:h, :h] = top
    out[h:, h:] = bottom
    out[h:, :h] = -bottom @ (L[h:, :h] @ top)
    return out


class Design:
    """The design matrix ``Xs = (X - mean) / scale`` used through products only.

    Standardisation is folded into the products (``Xs @ V = X @ (V / scale) - mean @ (V / scale)``
    and ``Xs.T @ R = (X.T @ R - mean * sum(R)) / scale``), so a large ``X`` is never copied.
    ``passes`` counts full-data products (one ``X @ V`` plus one ``X.T @ R`` make one pass).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), or RowBlocks
        ``RowBlocks`` (``app.engine.source``): the products run block by block of rows, so a
        matrix read from a file is never in memory whole; the results are the same.
    mean, scale : ndarray of shape (n_features,), optional
        Both or neither.
    """

    def __init__(
        self,
        X: Array | RowBlocks,
        mean: Array | None = None,
        scale: Array | None = None,
        *,
        weight: float = 1,
    ) -> None:
        self.X = X
        self.mean = mean
        self.inv_scale = None if scale is None else 1.0 / scale
        self.n_samples, self.n_features = X.shape
        self._passes = [0.0]  # shared with the designs made by ``take``
        self._weight = weight  # fraction of the full data these rows are, for ``passes``
        self.monitor: Monitor | None = None  # told of each block of a blocked pass

    @property
    def passes(self) -> float:
        """Full passes so far, over this design and the row subsets taken from it."""
        return self._passes[0]

    def matmat(self, V: Array) -> Array:
        """``Xs @ V`` for ``V`` of shape (n_features, k), of shape (n_samples, k)."""
        self._passes[0] += 0.5 * self._weight
        U = V if self.inv_scale is None else V * self.inv_scale[:, None]
        # Computed as (U.T @ X.T).T: the result is (n_samples, k) in column-major order, so that
        # each output's scores are contiguous and reductions over the k outputs stay fast.
        X = self.X
        if isinstance(X, RowBlocks):
            Z = np.empty((self.n_samples, U.shape[1]), order="F")
            for a, b in X.spans():
                Z[a:b] = (U.T @ X[a:b].T).T
        else:
            Z = (U.T @ X.T).T
        if self.mean is not None:
            Z -= self.mean @ U
        return Z

    def rmatmat(self, R: Array, *, colsum: Array | None = None) -> Array:
        """``Xs.T @ R`` for ``R`` of shape (n_samples, k), of shape (n_features, k).

        ``colsum``: ``R.sum(axis=0)`` if the caller has it already.
        """
        self._passes[0] += 0.5 * self._weight
        # Computed as (R.T @ X).T: the residuals come column-major (R.T contiguous), and a
        # product of two row-major operands ran ~1.5x faster on digits (10 x 1,797 by 1,797 x 64,
        # one BLAS thread) than X.T @ R; on one column it is as fast.
        X = self.X
        if isinstance(X, RowBlocks):
            G = np.zeros((self.n_features, R.shape[1]))
            for a, b in X.spans():
                G += (R[a:b].T @ X[a:b]).T
        else:
            G = (R.T @ X).T
        if self.inv_scale is None or self.mean is None:
            return G
        G -= self.mean[:, None] * (R.sum(axis=0) if colsum is None else colsum)
        G *= self.inv_scale[:, None]
        return G

    def block(self, start: int, stop: int, *, ones: bool) -> Array:
        """Rows ``start:stop`` of ``Xs`` materialised (with a column of ones appended if asked)."""
        Xb = self.X[start:stop]
        if self.inv_scale is not None and self.mean is not None:
            Xb = (Xb - self.mean) * self.inv_scale
        if ones:
            Xb = np.hstack([Xb, np.ones((Xb.shape[0], 1))])
        return Xb

    def take(self, rows: NDArray[np.intp]) -> Design:
        """A ``Design`` over a subset of the rows (copies those rows only).

        Its products count towards this design's ``passes``, pro rata.
        """
        sub = Design(
            take_rows(self.X, rows),
            self.mean,
            None if self.inv_scale is None else 1.0 / self.inv_scale,
            weight=self._weight * len(rows) / self.n_samples,
        )
        sub._passes = self._passes
        sub.monitor = self.monitor
        return sub

    def weighted_grams(self, C: Array, *, ones: bool) -> Array:
        """``X1.T @ diag(C[:, j]) @ X1`` for every column j of ``C``, of shape (m, q, q).

        ``X1`` is ``Xs`` with a column of ones appended when ``ones``; ``q`` is its width.
        Accumulated over blocks of rows of the raw ``X`` (at most ``CHUNK_ROWS`` rows weighted at a
        time, so a large X is never copied whole; below that, one block is all of X), then
        the standardisation is applied to the small result: with ``s = X.T c`` and ``t = sum c``,
        ``Xs.T diag(c) Xs = S^-1 (X.T diag(c) X - mean s.T - s mean.T + t mean mean.T) S^-1``.
        (Folding can cancel a few digits when ``|mean| / scale`` is large; a Hessian only steers
        the step, the optimum is fixed by the exact gradient.) Non-negative weights use
        ``A.T @ A`` with ``A = sqrt(c) X`` (a symmetric rank-k update, half the flops).
        """
        n, d = self.X.shape
        m = C.shape[1]
        grams = np.zeros((m, d, d))
        sums = np.zeros((d, m))
        nonneg = bool(C.min() >= 0)
        rows = max(1, min(CHUNK_ROWS, (1 << 22) // (m * d if not nonneg else d)))
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            if self.monitor is not None:
                self.monitor.block(start)
            Xb = self.X[start:stop]
            Cb = C[start:stop]
            sums += Xb.T @ Cb
            if nonneg:
                for j in range(m):
                    A = Xb * np.sqrt(Cb[:, j : j + 1])
                    grams[j] += A.T @ A
            else:  # one product for all m weightings: Xb.T @ [Xb * c_1, ..., Xb * c_m]
                scaled = Cb[:, :, None] * Xb[:, None, :]
                grams += (
                    (Xb.T @ scaled.reshape(stop - start, m * d)).reshape(d, m, d).transpose(1, 0, 2)
                )
        totals = C.sum(axis=0)
        if self.inv_scale is not None and self.mean is not None:
            # The same fold for many grams at once (a Python loop per gram cost more than the
            # products themselves on small data: iris, multinomial, has m = 6 grams of 4 x 4),
            # in groups whose temporaries stay ~2 MB (a gram each would triple a large Hessian).
            # At most two such temporaries live at once, as with the loop per gram.
            mu, inv = self.mean, self.inv_scale
            group = max(1, (1 << 18) // (d * d))
            for a in range(0, m, group):
                b = min(a + group, m)
                cross = mu[None, :, None] * sums.T[a:b, None, :]  # [j] = outer(mu, sums[:, j])
                both = cross + cross.transpose(0, 2, 1)
                del cross
                grams[a:b] -= both
                del both
                grams[a:b] += totals[a:b, None, None] * np.outer(mu, mu)
                grams[a:b] *= np.outer(inv, inv)
            sums = (sums - totals * mu[:, None]) * inv[:, None]
        if not ones:
            return grams
        out = np.empty((m, d + 1, d + 1))
        out[:, :d, :d] = grams
        out[:, :d, d] = sums.T
        out[:, d, :d] = sums.T
        out[:, d, d] = totals
        return out


def _as_design(X: Array | Design) -> Design:
    return X if isinstance(X, Design) else Design(np.asarray(X, dtype=np.float64))


class _LinearLoss:
    """What the binary / one-vs-all and the multinomial losses share: data, weights, layout."""

    def __init__(
        self,
        X: Array | Design,
        Y: Array,
        *,
        l2: float = 0.0,
        fit_intercept: bool = True,
        sample_weight: Array | None = None,
    ) -> None:
        self.design = _as_design(X)
        self.Y = Y
        self.l2 = float(l2)
        self.fit_intercept = fit_intercept
        n = self.design.n_samples
        if sample_weight is None:
            self.sw: Array | None = None
            self.sw_sum = float(n)
        else:
            self.sw = np.asarray(sample_weight, dtype=np.float64)
            self.sw_sum = float(self.sw.sum())
        self.n_outputs = Y.shape[1]
        self.n_features = self.design.n_features
        self.n_coef_cols = self.n_features + int(fit_intercept)
        self._cache: tuple[Array, Array] | None = None
        # Per-row work (losses, residuals) runs over these spans of rows: all rows at once for
        # an in-memory X, block by block for ``RowBlocks``, whose per-row temporaries then stay
        # the size of a block.
        source = self.design.X
        self._spans = source.spans() if isinstance(source, RowBlocks) else [(0, n)]
        self._ones = np.ones(max(b - a for a, b in self._spans))

    @property
    def X(self) -> Array | RowBlocks:  # noqa: N802 - the design matrix is X everywhere
        return self.design.X

    @property
    def n_coef(self) -> int:
        return self.n_outputs * self.n_coef_cols

    @property
    def passes(self) -> float:
        return self.design.passes

    def penalized(self) -> NDArray[np.bool_]:
        """Mask over the flat coefficients: True for weights, False for intercepts."""
        mask = np.ones((self.n_outputs, self.n_coef_cols), dtype=bool)
        if self.fit_intercept:
            mask[:, -1] = False
        return mask.ravel()

    def unpack(self, coef: Array) -> tuple[Array, Array]:
        """Split flat ``coef`` into weights (n_outputs, n_features) and intercepts (n_outputs,)."""
        C = coef.reshape(self.n_outputs, self.n_coef_cols)
        if self.fit_intercept:
            return C[:, :-1], C[:, -1]
        return C, np.zeros(self.n_outputs)

    def raw_prediction(self, coef: Array) -> Array:
        """``Z = Xs @ W.T + b``, of shape (n_samples, n_outputs). The last one is remembered."""
        if self._cache is not None and np.array_equal(self._cache[0], coef):
            return self._cache[1]
        self._cache = None  # not held beside the new scores
        W, b = self.unpack(coef)
        Z = self.design.matmat(W.T)
        if self.fit_intercept:
            Z += b
        self._cache = (coef.copy(), Z)
        return Z

    def _row_weights(self) -> Array | float:
        """``s_i / S`` as a column (n_samples, 1), or the scalar ``1 / n``."""
        if self.sw is None:
            return 1.0 / self.sw_sum
        return (self.sw / self.sw_sum)[:, None]

    def _penalty(self, W: Array) -> float:
        return 0.5 * self.l2 * float(np.einsum("kj,kj->", W, W))

    def _pack_gradient(self, coef: Array, R: Array, *, scale: float = 1.0) -> Array:
        """Flat gradient from the residuals ``scale * R``, of shape (n_samples, n_outputs)."""
        W, _ = self.unpack(coef)
        G = np.empty((self.n_outputs, self.n_coef_cols))
        # a matrix product: far faster than R.sum(axis=0) on few columns
        a, b = self._spans[0]
        colsum = self._ones[: b - a] @ R[a:b]
        for a, b in self._spans[1:]:
            colsum += self._ones[: b - a] @ R[a:b]
        G[:, : self.n_features] = self.design.rmatmat(R, colsum=colsum).T
        if scale != 1.0:
            colsum *= scale
            G[:, : self.n_features] *= scale
        G[:, : self.n_features] += self.l2 * W
        if self.fit_intercept:
            G[:, -1] = colsum
        return G.ravel()

    def loss(self, coef: Array) -> float:
        return self.loss_gradient(coef, gradient=False)[0]

    def gradient(self, coef: Array) -> Array:
        return self.loss_gradient(coef)[1]

    def loss_gradient(self, coef: Array, *, gradient: bool = True) -> tuple[float, Array]:
        raise NotImplementedError

    def lipschitz_bound(self, *, max_rows: int = 5000, seed: int = 0) -> float:
        """Estimate of the gradient's Lipschitz constant, ``c * max eig(X1.T C X1) + lambda``.

        ``X1`` is ``Xs`` with a column of ones when an intercept is fitted, ``C`` the normalised
        row weights and ``c`` the curvature bound of the pointwise loss (1/4 for the sigmoid,
        1/2 for the softmax). Estimated on at most ``max_rows`` rows (a uniform sample), so it
        costs far less than one pass over a large ``X``.
        """
        n = self.design.n_samples
        rows = np.arange(n)
        if n > max_rows:
            rows = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
        sub = self.design.take(rows)
        w = np.ones(len(rows)) if self.sw is None else self.sw[rows]
        total = float(w.sum())
        A = sub.block(0, len(rows), ones=self.fit_intercept)
        A *= np.sqrt(w / total if total > 0 else w)[:, None]
        # The top eigenvalue of A.T A is that of A A.T: use the smaller of the two.
        gram = A.T @ A if A.shape[0] >= A.shape[1] else A @ A.T
        exact = gram.shape[0] <= 500
        if exact:
            top = float(np.linalg.eigvalsh(gram)[-1])
        else:  # power iteration: a few hundred mat-vecs beat an O(d^3) eigensolver
            vec: Array = np.random.default_rng(seed).normal(size=(gram.shape[0],))
            vec *= 1.0 / float(np.linalg.norm(vec))
            top = 0.0
            for _ in range(300):
                u = gram @ vec
                top = float(np.linalg.norm(u))
                if top == 0.0:
                    break
                vec = u / top
        # A sample (or an unfinished power iteration) can under-estimate the eigenvalue; a 10%
        # margin keeps 1/L safe.
        margin = 1.1 if n > max_rows or not exact else 1.0
        return margin * self.curvature * top + self.l2

    curvature = 0.25

    def null_space(self) -> Array | None:
        """Orthonormal directions (n_coef, r) along which the objective is flat, if any."""
        return None


class LogisticLoss(_LinearLoss):
    """Sum of K independent binary cross-entropy objectives sharing one design matrix.

    K = 1 is the binary model; K > 1 is one-vs-all, where output k is "class k versus the rest".
    All K outputs are evaluated in one pass over ``X`` (``X @ W`` and ``X.T @ R``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or Design
        Preprocessed features, or a ``Design`` that standardises on the fly.
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
    ``(n_outputs, n_features + fit_intercept)``; the intercept is the last column. The Hessian
    is block diagonal, one block per output.
    """

    def take(self, rows: NDArray[np.intp]) -> LogisticLoss:
        """The same objective over a subset of the rows (a subsample for a cheap Hessian)."""
        return LogisticLoss(
            self.design.take(rows),
            self.Y[rows],
            l2=self.l2,
            fit_intercept=self.fit_intercept,
            sample_weight=None if self.sw is None else self.sw[rows],
        )

    def loss_gradient(self, coef: Array, *, gradient: bool = True) -> tuple[float, Array]:
        """Objective and its gradient (flat, same shape as ``coef``) in one pass over ``X``.

        One ``exp`` serves both: with ``e = exp(-|z|)``, ``log(1 + exp(z)) = max(z, 0) +
        log1p(e)`` and ``sigmoid(z) = (1 if z >= 0 else e) / (1 + e)``. Sums over rows are
        matrix products, and the ``1 / S`` of the unweighted mean is applied to the small
        gradient rather than to every row.

        Each row's loss ``(max(z, 0) - y z) + log1p(e)`` is formed before the rows are summed:
        with ``y`` in {0, 1} the bracket is exact and >= 0, so the loss is never negative (sums
        of ``max(z, 0)`` and of ``y z`` taken apart cancel digits on separable data).
        """
        Z = self.raw_prediction(coef)
        W, _ = self.unpack(coef)
        data = 0.0
        R = np.empty_like(Z) if gradient and len(self._spans) > 1 else None
        for a, b in self._spans:
            part, Rb = self._pointwise(Z[a:b], self.Y[a:b], a, b, gradient=gradient)
            data += part
            if R is None:
                R = Rb  # one span: the residuals themselves, no copy
            elif Rb is not None:
                R[a:b] = Rb
        loss = data / self.sw_sum + self._penalty(W)
        if not gradient or R is None:
            return loss, np.empty(0)
        if self.sw is None:
            return loss, self._pack_gradient(coef, R, scale=1.0 / self.sw_sum)
        R *= self._row_weights()
        return loss, self._pack_gradient(coef, R)

    def _pointwise(
        self, Z: Array, Y: Array, start: int, stop: int, *, gradient: bool
    ) -> tuple[float, Array | None]:
        """Rows ``start:stop``: their weighted loss sum and (if ``gradient``) their residuals
        ``sigmoid(z) - y`` (see ``loss_gradient``)."""
        weights = self._ones[: stop - start] if self.sw is None else self.sw[start:stop]
        e = np.abs(Z)
        np.negative(e, out=e)
        np.exp(e, out=e)
        pointwise = np.maximum(Z, 0.0)
        pointwise -= Y * Z
        pointwise += np.log1p(e)
        data = float((weights @ pointwise).sum())
        if not gradient:
            return data, None
        del pointwise
        R = np.where(Z >= 0, 1.0, e)
        e += 1.0
        R /= e
        R -= Y
        return data, R

    def _curvature_weights(self, coef: Array) -> Array:
        """``s_i / S * p_ik (1 - p_ik)``, of shape (n_samples, n_outputs)."""
        P = sigmoid(self.raw_prediction(coef))
        D = P * (1.0 - P)
        D *= self._row_weights()
        return D

    def hessian(self, coef: Array) -> Array:
        """Block-diagonal Hessian: one (q, q) block per output, of shape (n_outputs, q, q).

        ``q = n_features + fit_intercept``; block k is ``X1.T @ diag(D_k) @ X1 + lambda * I``
        (no penalty on the intercept), with ``D_ik = s_i / S * p_ik (1 - p_ik)``.
        """
        H = self.design.weighted_grams(self._curvature_weights(coef), ones=self.fit_intercept)
        idx = np.arange(self.n_features)
        H[:, idx, idx] += self.l2
        return H

    def hessp(self, coef: Array) -> HessianProduct:
        """A function ``v -> H v`` at ``coef`` (one pass over ``X`` per product)."""
        D = self._curvature_weights(coef)

        def product(v: Array) -> Array:
            Vw, vb = self.unpack(v)
            U = self.design.matmat(Vw.T)
            if self.fit_intercept:
                U += vb
            U *= D
            return self._pack_gradient(v, U)

        return product


class MultinomialLoss(_LinearLoss):
    """Softmax cross-entropy over K classes, with one row of weights per class.

    The parameterisation is the full, over-parameterised one of scikit-learn: K rows of weights
    and K intercepts, L2 on all K rows. Adding one vector to every row of ``[W, b]`` leaves the
    probabilities unchanged; the L2 term picks the rows of ``W`` that sum to zero, and the
    intercepts stay determined only up to a common constant (``null_space``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or Design
    Y : ndarray of shape (n_samples, n_classes)
        One-hot targets.
    l2, fit_intercept, sample_weight
        As for ``LogisticLoss``.
    """

    curvature = 0.5
    _Yt: Array | None = None
    #: The Hessian's (k, m) class pairs, as a list and as two index arrays, and the penalised
    #: coordinates: made by the first ``hessian`` call.
    _pairs: (
        tuple[list[tuple[int, int]], NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]] | None
    ) = None

    def take(self, rows: NDArray[np.intp]) -> MultinomialLoss:
        return MultinomialLoss(
            self.design.take(rows),
            self.Y[rows],
            l2=self.l2,
            fit_intercept=self.fit_intercept,
            sample_weight=None if self.sw is None else self.sw[rows],
        )

    def loss_gradient(self, coef: Array, *, gradient: bool = True) -> tuple[float, Array]:
        """Objective and its gradient in one pass over ``X``.

        Works on the transposed scores (n_classes, n_samples), where every reduction over the
        classes runs along contiguous rows of samples.

        Each row's loss ``(top - z_y) + log(sum_k exp(z_k - top))`` is formed before the rows
        are summed (``top`` the row's largest score): both terms are >= 0, so the loss is never
        negative. The sum of the rows' log-sum-exp minus the sum of their true-class scores
        cancelled digits on separable data (-2.5e-14 was reported).
        """
        Zt = self.raw_prediction(coef).T
        W, _ = self.unpack(coef)
        if self._Yt is None:
            self._Yt = np.ascontiguousarray(self.Y.T)
        Yt = self._Yt
        top = Zt.max(axis=0)
        P = Zt - top
        np.exp(P, out=P)
        total = P.sum(axis=0)
        pointwise = top - np.einsum("kn,kn->n", Yt, Zt)  # one-hot Y: exactly top - z_y
        pointwise += np.log(total)
        if self.sw is not None:
            data = float(self.sw @ pointwise)
        elif len(self._ones) == len(pointwise):
            data = float(self._ones @ pointwise)
        else:
            data = float(pointwise.sum())
        loss = data / self.sw_sum + self._penalty(W)
        if not gradient:
            return loss, np.empty(0)
        P /= total
        P -= Yt
        if self.sw is None:
            return loss, self._pack_gradient(coef, P.T, scale=1.0 / self.sw_sum)
        P *= self.sw / self.sw_sum
        return loss, self._pack_gradient(coef, P.T)

    def hessian(self, coef: Array) -> Array:
        """Full Hessian, of shape (1, p, p) with ``p = n_classes * q`` (one block).

        Block (k, l) is ``X1.T @ diag(s_i / S * (p_ik [k = l] - p_ik p_il)) @ X1``, plus lambda on
        the diagonal of the weights.
        """
        K, q = self.n_outputs, self.n_coef_cols
        P = softmax(self.raw_prediction(coef))
        c = self._row_weights()
        if self._pairs is None:  # the same for every Hessian of this loss
            pairs = [(k, m) for k in range(K) for m in range(k, K)]
            self._pairs = (
                pairs,
                np.array([k for k, _ in pairs]),
                np.array([m for _, m in pairs]),
                self.penalized().nonzero()[0],
            )
        pairs, ks, ms, idx = self._pairs
        # One product per class k (pairs (k, k..K-1)), not per pair: K Python steps, not K^2,
        # and no temporaries beside C (K = 60 classes make 1830 pairs).
        C = np.empty((P.shape[0], len(pairs)))
        j = 0
        for k in range(K):
            Ck = C[:, j : j + K - k]
            np.multiply(P[:, k : k + 1], P[:, k:], out=Ck)
            np.negative(Ck, out=Ck)
            Ck[:, 0] += P[:, k]
            j += K - k
        C *= c
        grams = self.design.weighted_grams(C, ones=self.fit_intercept)
        H = np.empty((K * q, K * q))
        blocks = H.reshape(K, q, K, q)  # a view: blocks[k, :, m, :] is block (k, m)
        blocks[ks, :, ms, :] = grams
        blocks[ms, :, ks, :] = grams
        H[idx, idx] += self.l2
        return H[None]

    def hessp(self, coef: Array) -> HessianProduct:
        """A function ``v -> H v`` at ``coef`` (one pass over ``X`` per product)."""
        P = softmax(self.raw_prediction(coef))
        c = self._row_weights()

        def product(v: Array) -> Array:
            Vw, vb = self.unpack(v)
            U = self.design.matmat(Vw.T)
            if self.fit_intercept:
                U += vb
            T = P * U
            T -= P * T.sum(axis=1, keepdims=True)
            T *= c
            return self._pack_gradient(v, T)

        return product

    def inverse_hessian(
        self, coef: Array, *, min_curvature: float = 1e-3, max_rows: int | None = None
    ) -> HessianProduct | None:
        """An approximate ``v -> H^-1 v`` at ``coef``, for preconditioning; ``None`` if singular.

        Only the rows that still carry curvature enter (``1 - max_k p_ik > min_curvature``, at
        most ``max_rows`` of them, the largest first: a row predicted with near certainty adds
        almost nothing to ``H``). With ``m`` such rows of weight ``c_i = s_i / S``, ``x1_i`` the
        row with its 1 (length q) and ``a_ik = sqrt(c_i) p_ik``, ``H = D - B.T B`` where ``D`` is
        block diagonal, one (q, q) block per class, ``X1.T diag(c p_k) X1 + lambda``, and row i of
        ``B`` is ``a_i (x) x1_i``. Woodbury's identity gives
        ``H^-1 = D^-1 + D^-1 B.T M^-1 B D^-1`` with ``M = I - B D^-1 B.T`` of shape (m, m); ``B``
        is never formed (products with it go through the (m, q) rows), so the memory is
        ``m^2`` numbers plus the rows.

        ``H`` is singular along ``null_space()`` (intercepts, or without L2 all columns, shifted
        together across classes). A tiny ridge (1e-8 of the mean curvature) on those coordinates
        of every class makes each flat direction an eigenvector, so gradients (orthogonal to
        them) map to directions orthogonal to them, and elsewhere changes ``H`` by ~1e-8 of
        itself: the operator is the pseudo-inverse to about that precision.
        """
        K, q = self.n_outputs, self.n_coef_cols
        P = softmax(self.raw_prediction(coef))
        spread = 1.0 - P.max(axis=1)
        rows = np.flatnonzero(spread > min_curvature)
        if max_rows is not None and len(rows) > max_rows:
            rows = np.sort(rows[np.argsort(spread[rows])[len(rows) - max_rows :]])
        m = len(rows)
        if m == 0:
            return None
        A = self.design.take(rows).block(0, m, ones=self.fit_intercept)  # (m, q)
        c = np.full(m, 1.0 / self.sw_sum) if self.sw is None else self.sw[rows] / self.sw_sum
        Pm = P[rows]
        a = np.sqrt(c)[:, None] * Pm  # (m, K)
        D = np.empty((K, q, q))
        for k in range(K):
            D[k] = (A * (c * Pm[:, k])[:, None]).T @ A
        # lambda on the weights (the exact Hessian's); a tiny ridge where H is flat (see above)
        ridge = np.full(q, self.l2)
        tiny = 1e-8 * max(float(np.trace(D.sum(axis=0))) / q, 1e-300)
        if self.l2 == 0:
            ridge[:] = tiny
        elif self.fit_intercept:
            ridge[-1] = tiny
        D[:, np.arange(q), np.arange(q)] += ridge
        try:
            Dinv = np.linalg.inv(D)
            del D
            # B_k D_k^-1 B_k.T = G_k G_k.T with G_k = diag(a_k) A chol(D_k^-1): symmetric products
            R = np.linalg.cholesky(Dinv)
            M = np.eye(m)
            for k in range(K):
                G = A @ R[k]
                G *= a[:, k : k + 1]
                M -= G @ G.T
            del G, R
            Li = _lower_triangular_inverse(np.asarray(np.linalg.cholesky(M), dtype=np.float64))
            del M
            Minv = Li.T @ Li
            del Li
        except np.linalg.LinAlgError:
            return None
        if not (np.isfinite(Minv).all() and np.isfinite(Dinv).all()):
            return None

        def woodbury(v: Array) -> Array:
            Dv = np.matmul(Dinv, v.reshape(K, q, 1))[:, :, 0]  # (K, q)
            t = np.einsum("mk,mk->m", A @ Dv.T, a)  # B D^-1 v
            U = A.T @ (a * (Minv @ t)[:, None])  # (q, K)
            Dv += np.matmul(Dinv, U.T[:, :, None])[:, :, 0]
            return Dv.ravel()

        return woodbury

    def null_space(self) -> Array | None:
        """Intercepts shifted together (and, without L2, weight columns shifted together)."""
        K, q = self.n_outputs, self.n_coef_cols
        cols = [q - 1] if self.fit_intercept else []
        if self.l2 == 0:
            cols = list(range(q))
        if not cols:
            return None
        U = np.zeros((K * q, len(cols)))
        for j, col in enumerate(cols):
            U[col::q, j] = 1.0 / np.sqrt(K)
        return U
