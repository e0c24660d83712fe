"""The compiled scores (app/engine/_scores.c) against the same sums on Python floats, and its
refusals of arrays it cannot read."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine._scores import scores
from app.engine.model import linear_scores


def python_scores(X, mean, scale, W, b):
    """The definition, one IEEE operation at a time on Python floats."""
    Z = []
    for row in X.tolist():
        if mean is not None:
            row = [(x - m) / s for x, m, s in zip(row, mean.tolist(), scale.tolist(), strict=True)]
        zs = []
        for wk, bk in zip(W.tolist(), b.tolist(), strict=True):
            z = 0.0
            for d, w in zip(row, wk, strict=True):
                z += d * w
            zs.append(z + bk)
        Z.append(zs)
    return np.array(Z, dtype=np.float64).reshape(len(X), len(b))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 40),
    p=st.integers(1, 9),
    k=st.integers(1, 4),
    standardise=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_same_bits_as_the_sums_on_python_floats(n, p, k, standardise, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * 10.0 ** rng.uniform(-300, 300, size=(n, p))
    W = rng.normal(size=(k, p)) * 10.0 ** rng.uniform(-8, 8, size=(k, p))
    b = rng.normal(size=k)
    mean = rng.normal(size=p) if standardise else None
    scale = rng.uniform(0.1, 10.0, size=p) if standardise else None
    with np.errstate(over="ignore", invalid="ignore"):
        expected = python_scores(X, mean, scale, W, b)
    Z, row = linear_scores(X, W, b, mean=mean, scale=scale)
    assert Z.tobytes() == expected.tobytes()
    bad = ~np.isfinite(expected).all(axis=1)
    assert row == (int(np.argmax(bad)) if bad.any() else -1)


def test_a_product_and_a_sum_are_rounded_apart():
    """No fused multiply-add: with one rounding, -1 + a b would be -2**-60."""
    a, c = 1.0 + 2.0**-30, 1.0 - 2.0**-30  # a c = 1 - 2**-60, rounded to 1.0
    Z, row = linear_scores(np.array([[1.0, a]]), np.array([[-1.0, c]]), np.zeros(1))
    assert (Z[0, 0], row) == (0.0, -1)


def test_the_first_term_is_added_to_zero():
    """``0.0 + (-0.0)`` is ``0.0``: a score of negative zero comes out as zero."""
    Z, _ = linear_scores(np.array([[-0.0]]), np.array([[1.0]]), np.array([-0.0]))
    assert str(Z[0, 0]) == "0.0"


def arrays(n=3, p=2, k=1):
    return [np.ones((n, p)), None, None, np.ones((k, p)), np.zeros(k), np.empty((n, k))]


@pytest.mark.parametrize(
    ("position", "value", "error", "message"),
    [
        (0, np.ones((3, 2), dtype=np.float32), TypeError, "X: expected a 2-dimensional float64"),
        (0, np.ones((2, 3)).T, TypeError, "X: expected a C-contiguous"),
        (0, np.ones(6), TypeError, "X: expected a 2-dimensional"),
        (0, [[1.0, 2.0]], TypeError, "X: expected a C-contiguous"),
        (3, np.ones((1, 3)), ValueError, "shapes"),
        (4, np.zeros(2), ValueError, "shapes"),
        (5, np.empty((3, 2)), ValueError, "shapes"),
        (1, np.zeros(2), TypeError, "mean and scale: both arrays or both None"),
    ],
)
def test_arrays_it_cannot_read_are_refused(position, value, error, message):
    args = arrays()
    args[position] = value
    with pytest.raises(error, match=message):
        scores(*args)


def test_a_read_only_output_is_refused():
    args = arrays()
    args[5].flags.writeable = False
    with pytest.raises(TypeError, match="out: expected a C-contiguous writable"):
        scores(*args)
    with pytest.raises(TypeError, match="takes 6 arguments"):
        scores(*args[:5])
