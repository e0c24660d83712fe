"""``LogisticModel.explain``: the baseline plus a row's contributions is the row's score within
1e-9 (relative to the size of the terms), for linear and polynomial, binary, one-vs-rest and
multinomial models, standardised or not; and a standardised column's contribution is the
coefficient in input units times the distance from the training mean (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from app.engine import FitParams, fit
from app.service import design_mean
from tests.conftest import make_blobs

CASES = {
    "binary": (2, FitParams()),
    "binary-raw": (2, FitParams(standardize=False)),
    "ovr": (3, FitParams(multiclass="ovr")),
    "multinomial": (3, FitParams(multiclass="multinomial")),
    "poly-binary": (2, FitParams(polynomial_degree=2)),
    "poly-multinomial-raw": (
        3,
        FitParams(polynomial_degree=3, multiclass="multinomial", standardize=False),
    ),
}
MODELS = {}
for name, (k, params) in CASES.items():
    X, y = make_blobs(n=120, d=3, k=k, seed=len(name), spread=2.0)
    model = fit(X, y, params=params).model
    MODELS[name] = (model, np.asarray(design_mean(model, X)))


@pytest.mark.parametrize("name", list(CASES))
@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    X=arrays(
        np.float64,
        st.tuples(st.integers(1, 5), st.just(3)),
        elements=st.floats(-1e3, 1e3, allow_nan=False),
    )
)
def test_baseline_plus_contributions_is_the_score(name, X):
    model, centre = MODELS[name]
    e = model.explain(X, centre=centre)
    Z = model.decision_function(X)
    n, K = Z.shape
    assert e.baseline.shape == (K,)
    assert e.contributions.shape == (n, K, model.coef.shape[1])
    total = e.baseline[None, :] + e.contributions.sum(axis=2)
    size = np.abs(e.baseline)[None, :] + np.abs(e.contributions).sum(axis=2) + 1.0
    assert np.all(np.abs(total - Z) <= 1e-9 * size)


def test_the_baseline_is_the_score_of_the_training_mean():
    X, y = make_blobs(n=200, d=2, k=2, seed=5)
    for params in (FitParams(), FitParams(standardize=False)):
        model = fit(X, y, params=params).model
        centre = np.asarray(design_mean(model, X))
        e = model.explain(X[:3], centre=centre)
        at_mean = model.decision_function(X.mean(axis=0, keepdims=True))[0]
        assert np.allclose(e.baseline, at_mean, rtol=1e-12, atol=1e-12)
        # coefficient in input units x distance from the mean
        w = model.coef[0] / (model.scale if model.scale is not None else 1.0)
        assert np.allclose(e.contributions[:, 0, :], w * (X[:3] - X.mean(axis=0)), atol=1e-12)
