"""Input checks and feature preprocessing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .errors import InvalidData
from .loss import Array


def check_features(
    X: ArrayLike, *, n_features: int | None = None, check_finite: bool = True
) -> Array:
    """``X`` as a 2-D float64 array of finite numbers, or ``InvalidData`` naming the problem.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_features : int, optional
        Required number of columns (a trained model's).
    check_finite : bool
        ``False`` leaves the NaN / infinity check to the caller (``ensure_finite``), for a caller
        that reads every value anyway (``fit`` computing column means).
    """
    try:
        A = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidData(f"features: must be a list of rows of numbers ({exc})") from None
    if A.size == 0 and A.ndim <= 2 and (A.ndim < 2 or A.shape[0] == 0):
        raise InvalidData("features: is empty; send at least one row")
    if A.ndim != 2:
        raise InvalidData("features: must be a list of rows, each a list of numbers")
    if A.shape[1] == 0:
        raise InvalidData("features: rows must contain at least one number")
    if n_features is not None and A.shape[1] != n_features:
        raise InvalidData(
            f"features: rows have {A.shape[1]} values but the model expects {n_features}"
        )
    if check_finite:
        with np.errstate(over="ignore", invalid="ignore"):
            total = A.sum()  # NaN or inf anywhere makes the sum non-finite: one cheap pass
        if not np.isfinite(total):
            ensure_finite(A)
    return A


def ensure_finite(A: Array) -> None:
    """``InvalidData`` naming the first non-finite cell of ``A``, if there is one."""
    finite = np.isfinite(A)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise InvalidData(f"features[{row}][{col}]: must be a finite number, got {A[row, col]}")


@dataclass(frozen=True)
class Standardizer:
    """``(x - mean) / scale`` per column; constant columns get scale 1 (they become 0)."""

    mean: Array
    scale: Array

    @classmethod
    def fit(cls, X: Array, *, chunk_rows: int = 4096) -> Standardizer:
        """Mean and (population) standard deviation of each column.

        One read of ``X`` for the sums and one for the sums of squares (matrix products, no
        temporaries); columns where ``E[x^2] - mean^2`` would cancel digits (``|mean|`` above
        ~100 standard deviations) are recomputed as sums of squared deviations over blocks of
        ``chunk_rows`` rows. Non-finite values give non-finite statistics, silently: ``fit``
        checks ``mean`` and ``scale`` and then names the offending cell.
        """
        n = X.shape[0]
        with np.errstate(over="ignore", invalid="ignore"):
            mean = (np.ones(n) @ X) / n
            squares = np.einsum("ij,ij->j", X, X) / n
            m2 = (squares - mean * mean) * n
            risky = np.flatnonzero(~(m2 > 1e-4 * squares * n))
            if risky.size:
                m2[risky] = 0.0
                for start in range(0, n, chunk_rows):  # two-pass variance, block by block
                    dev = X[start : start + chunk_rows, risky] - mean[risky]
                    m2[risky] += np.einsum("ij,ij->j", dev, dev)
        scale = np.sqrt(m2 / n)
        # A constant column can keep a rounding-sized spread; treat it as constant (it becomes 0).
        scale[~(scale > n * np.finfo(np.float64).eps * np.abs(mean))] = 1.0
        return cls(mean=mean, scale=scale)

    def transform(self, X: Array) -> Array:
        out = X - self.mean
        out /= self.scale
        return out
