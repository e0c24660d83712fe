"""A fit over ``RowBlocks`` (rows read block by block, as from a dataset's file) reaches the same
model as the same fit over the array in memory, by every solver."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from app.engine import FitParams, InvalidParams, fit
from app.engine.source import RowBlocks, take_rows
from tests.conftest import make_blobs


def blocks(X: np.ndarray, *, cuts: list[int], block_rows: int) -> RowBlocks:
    """``X`` as column batches split at ``cuts`` (uneven, one of a single row), read in blocks
    of ``block_rows`` that straddle the batches."""
    edges = [0, *cuts, len(X)]
    batches = [[X[a:b, j].copy() for j in range(X.shape[1])] for a, b in pairwise(edges)]
    return RowBlocks(batches, block_rows=block_rows)


def test_row_blocks_read_like_the_array():
    X = np.arange(60.0).reshape(20, 3)
    R = blocks(X, cuts=[7, 8, 15], block_rows=3)
    assert R.shape == (20, 3) and R.spans()[-1] == (18, 20)
    for a, b in [(0, 20), (5, 9), (7, 8), (14, 20), (3, 3)]:
        np.testing.assert_array_equal(R[a:b], X[a:b])
    rows = np.array([19, 0, 7, 8, 12])
    np.testing.assert_array_equal(take_rows(R, rows), X[rows])
    mean, scale = X.mean(axis=0), X.std(axis=0)
    np.testing.assert_allclose(R.standardized(mean, scale)[2:9], (X[2:9] - mean) / scale)


CASES = [
    ({"solver": "newton"}, 2),
    ({"solver": "lbfgs"}, 2),
    ({"solver": "gd"}, 2),
    ({"solver": "newton", "l1": 1e-3}, 2),
    ({"solver": "gd", "l1": 1e-3}, 2),
    ({"solver": "lbfgs", "standardize": False}, 2),
    ({"solver": "newton", "class_weight": "balanced"}, 2),
    ({"solver": "newton"}, 3),
    ({"solver": "lbfgs", "multiclass": "multinomial"}, 3),
    ({"solver": "newton", "multiclass": "multinomial"}, 3),
    ({"solver": "auto", "multiclass": "multinomial", "l2": 1e-5}, 4),  # preconditioned-lbfgs
]


@pytest.mark.parametrize(("extra", "k"), CASES, ids=lambda v: str(v))
def test_blocks_fit_the_same_model_as_memory(extra, k):
    X, y = make_blobs(n=400, d=4, k=k, seed=3, spread=2.5)
    X = X * [1.0, 10.0, 0.1, 3.0] + [0.0, 50.0, -1.0, 7.0]
    # gradient descent stopped early: both take the same steps, converged or not
    max_iter = 300 if extra["solver"] == "gd" else 20_000
    params = FitParams(tol=1e-9, max_iter=max_iter, **extra)
    memory = fit(X, y, params=params)
    chunked = fit(blocks(X, cuts=[100, 101, 333], block_rows=37), y, params=params)
    assert chunked.report.solver == memory.report.solver
    assert chunked.report.converged == memory.report.converged
    assert chunked.report.iterations == memory.report.iterations
    np.testing.assert_allclose(
        chunked.model.predict_proba(X), memory.model.predict_proba(X), rtol=0, atol=1e-6
    )


def test_subsampled_newton_over_blocks():
    """From 50,000 rows ``auto`` warms up on a subsample (``take``): the same optimum."""
    X, y = make_blobs(n=60_000, d=5, seed=4, spread=3.0)
    params = FitParams(tol=1e-8)
    memory = fit(X, y, params=params)
    chunked = fit(blocks(X, cuts=[20_000, 20_001], block_rows=8192), y, params=params)
    assert chunked.report.solver == memory.report.solver == "subsampled-newton"
    np.testing.assert_allclose(
        chunked.model.predict_proba(X[:2000]),
        memory.model.predict_proba(X[:2000]),
        rtol=0,
        atol=1e-6,
    )


def test_polynomial_features_need_an_array():
    X, y = make_blobs(n=50, d=2)
    with pytest.raises(InvalidParams, match=r"params\.polynomial_degree"):
        fit(blocks(X, cuts=[10], block_rows=8), y, params=FitParams(polynomial_degree=2))


def test_a_non_finite_cell_is_named_by_its_row():
    X, y = make_blobs(n=50, d=2)
    X[31, 1] = np.nan
    with pytest.raises(Exception, match=r"features\[31\]\[1\]"):
        fit(blocks(X, cuts=[10], block_rows=8), y)
