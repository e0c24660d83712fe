"""A matrix read in row blocks: the engine's data source for data that is not one array in memory.

``RowBlocks`` holds the columns of an ``(n_samples, n_features)`` matrix as batches of 1-D
float64 arrays (for instance memory-mapped from a file: a record batch per group of rows, one
array per column). It offers what the engine reads from a matrix (``shape``, row slices
``X[a:b]``, ``take``) with each slice materialised as a small array, so a fit over it keeps
only about one block of rows in memory besides the per-row vectors of the loss. ``Design``
(``app.engine.loss``) and ``Standardizer`` run their products block by block over it
(``spans``); with a plain ndarray they are one product each, as before: one implementation of
the maths, two ways to feed it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

#: Rows per block of the products: 65,536 rows x 20 columns is 10 MiB, large enough that a
#: product's fixed costs vanish, small enough to stay out of the way.
BLOCK_ROWS = 65_536


class RowBlocks:
    """Rows of a matrix held as column batches, read block by block.

    Parameters
    ----------
    batches : sequence of sequences of ndarray
        ``batches[b][j]`` is column ``j`` of batch ``b``, a 1-D float64 array; the batches of
        a column have the same number of columns, and their rows follow each other.
    block_rows : int
        Rows per block of ``spans``.
    mean, scale : ndarray of shape (n_features,), optional
        When given, every row read is ``(x - mean) / scale`` (see ``standardized``).
    """

    ndim = 2
    dtype = np.dtype(np.float64)

    def __init__(
        self,
        batches: Sequence[Sequence[Array]],
        *,
        block_rows: int = BLOCK_ROWS,
        mean: Array | None = None,
        scale: Array | None = None,
    ) -> None:
        self.batches = [list(b) for b in batches if len(b) and len(b[0])]
        if not self.batches:
            raise ValueError("RowBlocks: no rows")
        width = len(self.batches[0])
        if any(len(b) != width or len({len(c) for c in b}) != 1 for b in self.batches):
            raise ValueError("RowBlocks: every batch needs the same columns, of equal length")
        lengths = [len(b[0]) for b in self.batches]
        self.starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.shape = (int(self.starts[-1]), width)
        self.block_rows = max(1, int(block_rows))
        self.mean = mean
        self.scale = scale

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * 8

    def __len__(self) -> int:
        return self.shape[0]

    def spans(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each block of rows, in order."""
        n, step = self.shape[0], self.block_rows
        return [(a, min(a + step, n)) for a in range(0, n, step)]

    def standardized(self, mean: Array, scale: Array) -> RowBlocks:
        """The same rows read as ``(x - mean) / scale``."""
        out = object.__new__(RowBlocks)
        out.__dict__.update(self.__dict__)
        out.mean, out.scale = mean, scale
        return out

    def _finish(self, out: Array) -> Array:
        if self.mean is not None and self.scale is not None:
            out -= self.mean
            out /= self.scale
        return out

    def __getitem__(self, key: slice) -> Array:
        """Rows ``key`` (a slice with step 1) as a new (rows, n_features) array, column-major."""
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("RowBlocks: only row slices X[a:b] can be read")
        start, stop, _ = key.indices(self.shape[0])
        stop = max(start, stop)
        out = np.empty((stop - start, self.shape[1]), order="F")
        b = bisect_right(self.starts, start) - 1
        at = start
        while at < stop:
            first, last = int(self.starts[b]), int(self.starts[b + 1])
            lo, hi = at - first, min(stop, last) - first
            for j, column in enumerate(self.batches[b]):
                out[at - start : at - start + hi - lo, j] = column[lo:hi]
            at += hi - lo
            b += 1
        return self._finish(out)

    def take(self, rows: NDArray[np.intp]) -> Array:
        """Rows ``rows`` (sorted or not) as a new (len(rows), n_features) array."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), order="F")
        which = np.searchsorted(self.starts, rows, side="right") - 1
        for b in np.unique(which):
            mine = np.flatnonzero(which == b)
            local = rows[mine] - self.starts[b]
            for j, column in enumerate(self.batches[b]):
                out[mine, j] = column[local]
        return self._finish(out)


def take_rows(X: Array | RowBlocks, rows: NDArray[np.intp]) -> Array:
    """Rows ``rows`` of ``X`` as a new array (``np.take`` for an ndarray)."""
    if isinstance(X, RowBlocks):
        return X.take(rows)
    return np.take(X, rows, axis=0)


def spans(X: Array | RowBlocks) -> list[tuple[int, int]]:
    """Blocks of rows to read ``X`` in: all of an ndarray at once."""
    return X.spans() if isinstance(X, RowBlocks) else [(0, X.shape[0])]
