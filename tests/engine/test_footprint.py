"""The memory estimate of a fit (``app.engine.footprint``) against the memory fits really take.

NumPy reports its allocations to ``tracemalloc``, so the peak of a fit (and of the coefficient
statistics the service computes after it) is measured exactly, whatever else the process holds.
Each case is sized so that the part of the estimate it exercises dominates.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from app.engine import FitParams, fit
from app.engine.footprint import SLACK_BYTES, fit_footprint
from app.engine.statistics import coefficient_statistics
from tests.conftest import record_figures

CASES = [
    # (n_samples, n_features, n_classes, params, the part that dominates)
    (5000, 19, 2, {"polynomial_degree": 3, "max_iter": 20}, "design", "lbfgs"),
    (20000, 50, 2, {"l2": 0.0}, "statistics", "newton"),
    (3000, 900, 2, {"l1": 0.01, "max_iter": 5}, "design", "newton"),
    (3000, 300, 20, {"solver": "newton", "max_iter": 3}, "hessian", "newton"),
    (
        20000,
        5,
        100,
        {"multiclass": "multinomial", "max_iter": 30},
        "outputs",
        "preconditioned-lbfgs",
    ),
    (50000, 5, 60, {"multiclass": "multinomial", "max_iter": 5}, "hessian", "subsampled-newton"),
]
MEASURED: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _figures():
    yield
    record_figures(
        "fit memory: measured peak / estimate (tests/engine/test_footprint.py)",
        cases=", ".join(MEASURED),
    )


@pytest.mark.parametrize(("n", "d", "k", "kw", "part", "solver"), CASES)
def test_the_estimate_bounds_the_memory_a_fit_takes(n, d, k, kw, part, solver):
    params = FitParams(**kw)
    estimate = fit_footprint(n_samples=n, n_features=d, n_classes=k, params=params)
    assert estimate.solver == solver and estimate.largest() == part
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, size=n)
    y[:k] = np.arange(k)
    tracemalloc.start()
    try:
        X = rng.normal(size=(n, d)) + 0.3 * y[:, None]  # the request's rows count too
        with np.errstate(all="ignore"):
            result = fit(X, y, params=params)
            coefficient_statistics(X, y, result, params=params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.report.solver.endswith(solver)  # "proximal-newton" for newton with l1
    bound = estimate.total - SLACK_BYTES  # the estimate's own terms, without its slack
    MEASURED.append(f"{estimate.solver} {peak / 2**20:.0f}/{bound / 2**20:.0f} MiB")
    assert peak <= bound, (peak, estimate)
    assert bound <= 4 * peak + 2**20, (peak, estimate)  # an estimate, not a fantasy


def test_what_grows_with_what():
    """The products the other limits do not see: rows x expanded columns, classes x columns,
    rows x pairs of classes for a multinomial Newton fit."""
    base = fit_footprint(n_samples=20000, n_features=19, n_classes=2, params=FitParams())
    poly = fit_footprint(
        n_samples=20000, n_features=19, n_classes=2, params=FitParams(polynomial_degree=4)
    )
    assert poly.largest() == "design" and poly.design >= 20000 * 8854 * 8 > 100 * base.design
    many = fit_footprint(
        n_samples=1000, n_features=19, n_classes=1000, params=FitParams(polynomial_degree=4)
    )
    assert many.largest() == "coefficients" and many.coefficients > 1000 * 8855 * 8 * 10
    pairs = fit_footprint(
        n_samples=60000, n_features=1, n_classes=300, params=FitParams(multiclass="multinomial")
    )
    assert pairs.solver == "subsampled-newton" and pairs.largest() == "hessian"
    assert pairs.hessian >= 20000 * 300 * 301 // 2 * 8
