"""Extreme magnitudes in the engine (issue 12, item 3): the standardiser scales a column by its
largest magnitude before squaring, so its statistics are those of the unit-scaled column times
the scale; fits are scale-invariant; weights count only relative to each other."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from app.engine import FitParams, InvalidData, fit
from app.engine.preprocessing import Standardizer
from tests.conftest import make_blobs

FACTORS = [1e-320, 1e-310, 1e-300, 1e-160, 1e-100, 1.0, 1e100, 1e154, 1e160, 1e300]


def columns(n: int = 500, seed: int = 0) -> np.ndarray:
    """Unit-scale columns of every kind the standardiser treats apart: spread around 0, a
    mean far from 0 (cancellation), constant, all zero, a single non-zero value."""
    rng = np.random.default_rng(seed)
    single = np.zeros(n)
    single[7] = 3.0
    return np.column_stack(
        [rng.normal(size=n), 2.5 + 1e-3 * rng.normal(size=n), np.full(n, 1.5), np.zeros(n), single]
    )


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("others", [0, 20])  # every column extreme, or a few cut out of many
def test_statistics_of_a_scaled_column_are_the_scaled_statistics(factor, others):
    X = columns()
    plain = np.random.default_rng(2).normal(size=(len(X), others))
    unit = Standardizer.fit(X)
    # reference: two-pass mean and deviation in exact-enough arithmetic on the unit columns
    mean = X.mean(axis=0)
    std = np.sqrt(((X - mean) ** 2).mean(axis=0))
    np.testing.assert_allclose(unit.mean, mean, rtol=1e-14, atol=0)
    np.testing.assert_allclose(unit.scale[[0, 1, 4]], std[[0, 1, 4]], rtol=1e-12)
    assert unit.scale[2] == unit.scale[3] == 1.0  # constant columns: scale 1
    with np.errstate(under="ignore"):
        Xf = np.column_stack([X * factor, plain])
        got = Standardizer.fit(Xf)
        alone = Standardizer.fit(plain)  # BLAS may sum a wider matrix in another order
        np.testing.assert_allclose(got.mean[5:], alone.mean, rtol=1e-13)
        np.testing.assert_allclose(got.scale[5:], alone.scale, rtol=1e-13)
        rtol = 1e-12 if factor >= 1e-300 else 1e-3  # subnormal inputs carry fewer digits
        np.testing.assert_allclose(got.mean[:5], mean * factor, rtol=rtol, atol=0)
        np.testing.assert_allclose(got.scale[[0, 1, 4]], std[[0, 1, 4]] * factor, rtol=rtol)
    assert got.scale[2] == got.scale[3] == 1.0
    assert np.isfinite(got.transform(Xf)).all()


def test_values_near_the_largest_double_of_both_signs():
    x = np.array([1.7e308, -1.7e308, 1.7e308, -1.7e308, 0.0])[:, None]
    std = Standardizer.fit(x)
    np.testing.assert_allclose(std.mean, [0.0], atol=1e-300)
    np.testing.assert_allclose(std.scale, [1.7e308 * np.sqrt(0.8)], rtol=1e-14)


def test_non_finite_values_still_give_non_finite_statistics():
    for bad in (np.nan, np.inf, -np.inf):
        X = columns()
        X[3, 0] = bad
        X[5, 2] = bad  # also in a column that is otherwise constant
        std = Standardizer.fit(X)
        assert not np.isfinite(std.mean[0]) and not np.isfinite(std.mean[2])
        assert np.isfinite(std.mean[[1, 3, 4]]).all()


@pytest.mark.parametrize("extreme", [False, True])
def test_the_standardiser_never_copies_x(extreme):
    """One read for the sums and one for the squares; extreme columns are redone block by
    block: temporaries stay a small fraction of X either way."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100_000, 20))
    if extreme:
        X *= 1e200
    tracemalloc.start()
    try:
        Standardizer.fit(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.15 * X.nbytes, peak


@pytest.mark.parametrize("factor", [f for f in FACTORS if f >= 1e-310])
@pytest.mark.parametrize("solver", ["newton", "lbfgs", "gd"])
def test_a_fit_is_the_same_at_every_scale(factor, solver):
    X, y = make_blobs(n=120, d=3, seed=4, spread=2.0)
    params = FitParams(solver=solver, tol=1e-9, max_iter=20_000)
    ref = fit(X, y, params=params)
    with np.errstate(under="ignore"):
        got = fit(X * factor, y, params=params)
    assert got.report.converged and got.report.accuracy == ref.report.accuracy
    np.testing.assert_allclose(got.model.coef, ref.model.coef, rtol=1e-6)
    np.testing.assert_allclose(got.model.intercept, ref.model.intercept, rtol=1e-6)
    np.testing.assert_allclose(got.report.loss, ref.report.loss, rtol=1e-9)


def test_a_polynomial_fit_is_the_same_at_every_scale():
    X, y = make_blobs(n=120, d=2, seed=5, spread=2.0)
    params = FitParams(polynomial_degree=3, tol=1e-9)
    ref = fit(X, y, params=params)
    for factor in (1e-160, 1e160):
        got = fit(X * factor, y, params=params)
        np.testing.assert_allclose(got.model.coef, ref.model.coef, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("top", [1e151, 1e160, 1e308])
@pytest.mark.parametrize("solver", ["auto", "gd", "newton", "lbfgs"])
def test_without_standardisation_too_large_values_name_the_column_and_the_setting(top, solver):
    X = np.array([[1.0, top / 4], [2.0, top / 2], [3.0, top * 0.75], [4.0, top]])
    with pytest.raises(InvalidData, match=r"^features: column 1 .*params\.standardize") as info:
        fit(X, [0, 0, 1, 1], params=FitParams(standardize=False, solver=solver))
    assert "learning_rate" not in str(info.value)


def test_without_standardisation_a_polynomial_names_the_monomial():
    X = np.array([[1.0, 1e80], [2.0, 2e80], [3.0, 3e80], [4.0, 4e80]])
    with pytest.raises(InvalidData, match=r"features: the monomial x1\^2 .*params\.standardize"):
        fit(X, [0, 0, 1, 1], params=FitParams(standardize=False, polynomial_degree=2))


@pytest.mark.parametrize("factor", [1e-305, 1e-300, 1e300, 1e308])
def test_sample_weights_count_only_relative_to_each_other(factor):
    X, y = make_blobs(n=80, d=2, seed=6, spread=2.0)
    w = np.random.default_rng(0).uniform(0.5, 1.0, size=len(y))
    params = FitParams(class_weight={0: 3.0, 1: 1.0}, tol=1e-9)
    ref = fit(X, y, params=params, sample_weight=w)
    with np.errstate(under="ignore"):
        got = fit(X, y, params=params, sample_weight=w * factor)
    np.testing.assert_allclose(got.model.coef, ref.model.coef, rtol=1e-7)
    np.testing.assert_allclose(got.report.loss, ref.report.loss, rtol=1e-12)
    huge_class = fit(X, y, params=FitParams(class_weight={0: 3e307, 1: 1e307}, tol=1e-9))
    plain = fit(X, y, params=FitParams(class_weight={0: 3.0, 1: 1.0}, tol=1e-9))
    np.testing.assert_allclose(huge_class.model.coef, plain.model.coef, rtol=1e-7)
