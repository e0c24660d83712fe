"""Input checks and feature preprocessing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import InvalidData
from .loss import Array
from .source import RowBlocks, spans


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


def ensure_finite(A: Array | RowBlocks) -> None:
    """``InvalidData`` naming the first non-finite cell of ``A``, if there is one."""
    for start, stop in spans(A):
        block = A[start:stop]
        finite = np.isfinite(block)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            raise InvalidData(
                f"features[{start + row}][{col}]: must be a finite number, got {block[row, col]}"
            )


#: Columns whose mean square falls outside these bounds are redone scaled by their largest
#: magnitude: above, squares overflow (|x| >~ 1.3e154); below, they lose digits to underflow
#: (squares under ~2.2e-308 / eps are subnormal or zero: |x| <~ 1e-146 counted as constant).
SQUARES_MAX = 1e300
SQUARES_MIN = float(np.finfo(np.float64).tiny / np.finfo(np.float64).eps)


def column_max_abs(
    X: Array | RowBlocks, columns: NDArray[np.intp] | None = None, *, chunk_rows: int = 4096
) -> Array:
    """Largest ``|x|`` of each column (of ``columns`` only, if given), block by block: no
    temporary the size of ``X``. NaN where a column holds a NaN."""
    out = np.zeros(X.shape[1] if columns is None else len(columns))
    for start in range(0, X.shape[0], chunk_rows):
        np.maximum(out, np.abs(_block(X, start, chunk_rows, columns)).max(axis=0), out=out)
    return out


def _subset(
    columns: NDArray[np.intp], width: int
) -> tuple[NDArray[np.intp] | None, slice | NDArray[np.intp]]:
    """How to read ``columns`` of ``width`` block by block: ``(columns to cut each block to,
    where the columns are in a block's results)``. A few are cut out; when there are many,
    every column is computed and the rest thrown away, which costs less than cutting."""
    if 4 * len(columns) < width:
        return columns, slice(None)
    return None, columns


def _block(X: Array | RowBlocks, start: int, rows: int, columns: NDArray[np.intp] | None) -> Array:
    """Rows ``start:start + rows`` of ``X``, of ``columns`` only if given. ``np.take``: ten
    times faster than ``X[a:b, columns]`` with many columns (NumPy 2.x, 4096 x 100)."""
    block = X[start : start + rows]
    return block if columns is None else np.take(block, columns, axis=1)


@dataclass(frozen=True)
class Standardizer:
    """``(x - mean) / scale`` per column; constant columns get scale 1 (they become 0)."""

    mean: Array
    scale: Array

    @classmethod
    def fit(cls, X: Array | RowBlocks, *, chunk_rows: int = 4096) -> Standardizer:
        """Mean and (population) standard deviation of each column.

        One read of ``X`` for the sums and one for the sums of squares (matrix products, no
        temporaries). Two kinds of column are then redone, block by block over ``chunk_rows``
        rows of those columns only:

        - extreme magnitudes, whose squares overflow or underflow (mean square outside
          ``[SQUARES_MIN, SQUARES_MAX]``): divided by their largest ``|x|`` (one more read
          for it, one for the sums), so that any finite column gets its true mean and spread;
        - columns where ``E[x^2] - mean^2`` would cancel digits (``|mean|`` above ~100 standard
          deviations): sums of squared deviations from the mean (two-pass variance).

        Non-finite values give non-finite statistics, silently: ``fit`` checks ``mean`` and
        ``scale`` and then names the offending cell.
        """
        n, d = X.shape
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            mean, squares = np.zeros(d), np.zeros(d)
            for a, b in spans(X):  # one block for an ndarray, several for RowBlocks
                block = X[a:b]
                mean += np.ones(b - a) @ block
                squares += np.einsum("ij,ij->j", block, block)
            mean /= n
            squares /= n
            m2 = (squares - mean * mean) * n
            extreme = ~((squares >= SQUARES_MIN) & (squares <= SQUARES_MAX))
            unit = np.ones(d)  # what each column is divided by before squaring
            if extreme.any():
                cols = np.flatnonzero(extreme)
                take, at = _subset(cols, d)
                top = column_max_abs(X, take, chunk_rows=chunk_rows)[at]
                top[~(top > 0) | ~np.isfinite(top)] = 1.0  # zeros stay 0; NaN / inf stay so
                unit[cols] = top
                per = unit if take is None else top
                total = np.zeros(d if take is None else len(cols))
                for start in range(0, n, chunk_rows):
                    total += (_block(X, start, chunk_rows, take) / per).sum(axis=0)
                mean[cols] = total[at] / n  # in units of ``top`` until the end
            risky = np.flatnonzero(extreme | ~(m2 > 1e-4 * squares * n))
            if risky.size:
                take, at = _subset(risky, d)
                per, centre = (unit, mean) if take is None else (unit[risky], mean[risky])
                total = np.zeros(len(per))
                for start in range(0, n, chunk_rows):  # two-pass variance, block by block
                    dev = _block(X, start, chunk_rows, take) / per - centre
                    total += np.einsum("ij,ij->j", dev, dev)
                m2[risky] = total[at]
            scale = np.sqrt(m2 / n) * unit
            mean *= unit
            # A constant column can keep a rounding-sized spread; treat it as constant (it
            # becomes 0).
            scale[~(scale > n * np.finfo(np.float64).eps * np.abs(mean))] = 1.0
        return cls(mean=mean, scale=scale)

    def transform(self, X: Array) -> Array:
        out = X - self.mean
        out /= self.scale
        return out
