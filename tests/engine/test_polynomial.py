import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.preprocessing import PolynomialFeatures as SkPolynomialFeatures

from app.engine import FitParams, InvalidParams, fit
from app.engine.loss import sigmoid
from app.engine.polynomial import (
    PolynomialFeatures,
    expand,
    monomial_names,
    monomial_powers,
    n_output_features,
)
from app.engine.preprocessing import Standardizer


def make_circles(*, n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy concentric circles (radii 1 and 2.5), off the origin; label 1 = outer."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    radius = np.where(y == 0, 1.0, 2.5) + rng.normal(scale=0.15, size=n)
    angle = rng.uniform(0, 2 * np.pi, size=n)
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]) + np.array([3.0, -1.0])
    return X, y


@pytest.mark.parametrize("n_in", [1, 2, 3, 5])
@pytest.mark.parametrize("degree", [1, 2, 3, 4])
def test_expansion_equals_scikit_learn_column_for_column(n_in, degree):
    X = np.random.default_rng(n_in * 10 + degree).normal(size=(30, n_in))
    ref = SkPolynomialFeatures(degree=degree, include_bias=False).fit(X)
    ours = expand(X, degree)
    assert ours.shape == (30, n_output_features(n_in, degree))
    np.testing.assert_allclose(ours, ref.transform(X), rtol=1e-14, atol=0)
    names = [f"x{i}" for i in range(n_in)]
    assert monomial_names(names, degree) == list(ref.get_feature_names_out(names))
    np.testing.assert_array_equal(monomial_powers(n_in, degree), ref.powers_)


def test_names_use_the_given_feature_names():
    assert monomial_names(["a", "b"], 3) == [
        "a",
        "b",
        "a^2",
        "a b",
        "b^2",
        "a^3",
        "a^2 b",
        "a b^2",
        "b^3",
    ]
    assert PolynomialFeatures(n_input_features=2, degree=2).feature_names()[-2] == "x0 x1"


def test_output_count_is_the_binomial_coefficient():
    assert n_output_features(2, 2) == 5
    assert n_output_features(10, 3) == 285
    assert n_output_features(10_000, 2) == 50_015_000  # computed, never allocated


FLOATS = st.floats(-3, 3)


@settings(max_examples=50, deadline=None)
@given(
    X=arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)), elements=FLOATS),
    degree=st.integers(1, 4),
)
def test_every_column_is_its_monomial(X, degree):
    powers = monomial_powers(X.shape[1], degree)
    expected = np.prod(X[:, None, :] ** powers[None, :, :], axis=2)
    np.testing.assert_allclose(expand(X, degree), expected, rtol=1e-12, atol=1e-12)
    assert set(powers.sum(axis=1)) == set(range(1, degree + 1))
    assert len({tuple(p) for p in powers}) == len(powers)  # every monomial exactly once


def test_degree_two_separates_circles_that_degree_one_cannot():
    X, y = make_circles(seed=0)
    X_test, y_test = make_circles(seed=1)
    linear = fit(X, y, params=FitParams(polynomial_degree=1)).model
    quadratic = fit(X, y, params=FitParams(polynomial_degree=2)).model
    assert np.mean(np.array(linear.predict(X_test)) == y_test) <= 0.7
    assert np.mean(np.array(quadratic.predict(X_test)) == y_test) >= 0.97
    assert quadratic.n_features == 2 and quadratic.coef.shape == (1, 5)


def test_predict_applies_standardise_expand_standardise_in_that_order():
    X, y = make_circles(n=100, seed=2)
    model = fit(X, y, params=FitParams(polynomial_degree=3)).model
    assert model.polynomial is not None and model.polynomial.degree == 3
    inner = Standardizer.fit(X)
    np.testing.assert_allclose(model.polynomial.mean, inner.mean)
    expanded = expand(inner.transform(X), 3)
    design = (expanded - expanded.mean(axis=0)) / expanded.std(axis=0)
    # the expanded training columns have mean 0 and variance 1
    np.testing.assert_allclose(model.transform(X).mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(model.transform(X).std(axis=0), 1, rtol=1e-12)
    h = sigmoid(design @ model.coef[0] + model.intercept[0])
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], h, rtol=1e-10)


def test_without_standardisation_the_raw_inputs_are_expanded():
    X, y = make_circles(n=100, seed=3)
    X = X - X.mean(axis=0)  # centred, so that plain gd on raw monomials is well posed
    model = fit(X, y, params=FitParams(polynomial_degree=2, standardize=False)).model
    assert model.mean is None and model.polynomial is not None and model.polynomial.mean is None
    np.testing.assert_array_equal(model.transform(X), expand(X, 2))
    assert np.mean(np.array(model.predict(X)) == y) >= 0.97


def test_degree_one_is_the_linear_model_unchanged():
    X, y = make_circles(n=100, seed=4)
    default = fit(X, y).model
    one = fit(X, y, params=FitParams(polynomial_degree=1)).model
    assert one.polynomial is None
    np.testing.assert_array_equal(one.coef, default.coef)


def test_predict_checks_the_input_width_not_the_expanded_width():
    X, y = make_circles(n=60, seed=5)
    model = fit(X, y, params=FitParams(polynomial_degree=2)).model
    with pytest.raises(ValueError, match="model expects 2"):
        model.predict_proba(np.zeros((1, 5)))


@pytest.mark.parametrize("degree", [0, -1, 11, True, 2.0])
def test_bad_degrees_name_the_field(degree):
    X, y = make_circles(n=20, seed=6)
    with pytest.raises(InvalidParams, match=r"params\.polynomial_degree"):
        fit(X, y, params=FitParams(polynomial_degree=degree))
