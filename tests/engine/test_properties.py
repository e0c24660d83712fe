"""Hypothesis properties of the engine: probabilities are probabilities, whatever the data, and a
model survives the trip through its stored record unchanged."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from app.engine import FitParams, InvalidData, fit
from app.records import model_from_record, model_to_record

FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def training_sets(draw):
    n_features = draw(st.integers(1, 4))
    n_classes = draw(st.integers(2, 4))
    n = draw(st.integers(n_classes, 30))
    X = draw(arrays(np.float64, (n, n_features), elements=FINITE))
    y = draw(arrays(np.int64, n, elements=st.integers(0, n_classes - 1)))
    y[:n_classes] = np.arange(n_classes)  # every class present
    params = FitParams(
        solver=draw(st.sampled_from(["auto", "gd", "newton", "lbfgs"])),
        multiclass=draw(st.sampled_from(["ovr", "multinomial"])),
        polynomial_degree=draw(st.integers(1, 2)),
        max_iter=draw(st.integers(1, 50)),
        l2=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        standardize=draw(st.booleans()),
        fit_intercept=draw(st.booleans()),
    )
    return X, y, params


def fit_quietly(X, y, params):
    # unscaled data of +-1e6 with standardize=False may overflow the scores: the engine is
    # expected to cope, but numpy warns, and warnings are errors here
    with np.errstate(over="ignore", under="ignore"):
        return fit(X, y.tolist(), params=params)


@settings(max_examples=60, deadline=None)
@given(data=training_sets(), rows=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_probabilities_are_in_0_1_and_sum_to_1(data, rows, seed):
    X, y, params = data
    try:
        result = fit_quietly(X, y, params)
    except ValueError:  # e.g. a learning rate that diverges on this data: a clean refusal
        return
    rng = np.random.default_rng(seed)
    X_new = rng.uniform(-1e6, 1e6, size=(rows, X.shape[1]))
    with np.errstate(over="ignore", under="ignore"):
        try:
            P = result.model.predict_proba(X_new)
        except InvalidData as exc:
            # Training columns of spread ~1e-150 put a row of 1e5 ~1e155 deviations away; at
            # degree 2 its score (~1e310) truly overflows: a clean refusal, as documented.
            assert "values too large for this model" in str(exc)
            return
    assert P.shape == (rows, len(result.model.classes))
    assert np.isfinite(P).all()
    assert ((P >= 0) & (P <= 1)).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert set(result.model.predict(X_new)) <= set(result.model.classes)


@settings(max_examples=40, deadline=None)
@given(data=training_sets())
def test_a_model_is_unchanged_by_its_stored_record(data):
    import orjson

    X, y, params = data
    try:
        result = fit_quietly(X, y, params)
    except ValueError:
        return
    record = {"n_features": X.shape[1], "model": model_to_record(result.model)}
    back = model_from_record(orjson.loads(orjson.dumps(record)))  # what the file holds
    with np.errstate(over="ignore", under="ignore"):
        before, after = result.model.predict_proba(X), back.predict_proba(X)
    assert np.array_equal(before, after)  # bit for bit
    assert back.classes == result.model.classes


def test_a_flat_cost_does_not_divide_by_zero():
    """Regression (Hypothesis): all-zero features, no intercept, no penalty gave a Lipschitz
    bound of 0 and a ZeroDivisionError (a 500 through HTTP)."""
    result = fit(np.zeros((4, 2)), [0, 1, 0, 1], params=FitParams(fit_intercept=False, l2=0.0))
    assert result.report.converged
    np.testing.assert_array_equal(result.model.predict_proba(np.ones((1, 2))), [[0.5, 0.5]])
