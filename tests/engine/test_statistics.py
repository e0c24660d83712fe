import math

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.preprocessing import PolynomialFeatures as SkPolynomialFeatures

from app.engine import FitParams, fit
from app.engine.statistics import (
    CoefficientStatistics,
    StatisticsUnavailable,
    coefficient_statistics,
    logit_statistics,
)
from tests.conftest import make_blobs

#: A well-conditioned, non-separable subset of load_breast_cancer: mean radius, mean texture,
#: mean smoothness, mean symmetry, mean fractal dimension, texture error, smoothness error.
CANCER_COLUMNS = [0, 1, 4, 8, 9, 11, 14]

RTOL = 1e-4  # the bar; measured differences are ~1e-12 (see the report)


def cancer() -> tuple[np.ndarray, np.ndarray, list[str]]:
    data = load_breast_cancer()
    names = [str(data.feature_names[c]) for c in CANCER_COLUMNS]
    return data.data[:, CANCER_COLUMNS], data.target, names


def synthetic(*, n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes from a known logistic model (so the MLE exists)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [1.0, 0.5, 2.0, 1.0]
    z = 0.3 + X @ np.array([1.0, -2.0, 0.25, 0.0])
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(int)
    return X, y


def assert_matches_statsmodels(stats: CoefficientStatistics, y, design) -> float:
    """Every column of the table within RTOL of statsmodels; returns the largest difference."""
    res = sm.Logit(np.asarray(y, dtype=float), design).fit(disp=0, tol=1e-12, maxiter=100)
    assert res.mle_retvals["converged"]
    ci = np.asarray(res.conf_int(alpha=0.05))
    pairs = {
        "coef": (stats.coef, res.params),
        "std_err": (stats.std_err, res.bse),
        "z": (stats.z, res.tvalues),
        "p_value": (stats.p_value, res.pvalues),
        "ci_lower": (stats.ci_lower, ci[:, 0]),
        "ci_upper": (stats.ci_upper, ci[:, 1]),
        "odds_ratio": (stats.odds_ratio, np.exp(res.params)),
    }
    worst = 0.0
    for name, (ours, ref) in pairs.items():
        ref = np.asarray(ref)
        np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=0, err_msg=name)
        worst = max(worst, float(np.max(np.abs(ours - ref) / np.abs(ref))))
    assert stats.log_likelihood == pytest.approx(res.llf, rel=RTOL)
    return worst


def fit_with_statistics(X, y, names=None, **params):
    p = FitParams(**{"l2": 0.0, "max_iter": 50_000, "tol": 1e-6, **params})
    result = fit(X, y, params=p)
    return (*coefficient_statistics(X, y, result, params=p, feature_names=names), result)


@pytest.mark.parametrize(
    "solver, standardize", [("gd", True), ("newton", True), ("newton", False), ("lbfgs", True)]
)
def test_breast_cancer_statistics_match_statsmodels_on_the_original_scale(solver, standardize):
    X, y, names = cancer()
    stats, note, result = fit_with_statistics(X, y, names, solver=solver, standardize=standardize)
    assert note is None and stats is not None
    assert (result.model.mean is not None) is standardize  # fitted on these features...
    assert_matches_statsmodels(stats, y, sm.add_constant(X))  # ...reported on the raw ones
    assert stats.names == ("intercept", *names)
    assert stats.n_samples == len(y)


def test_breast_cancer_raw_design_from_zero_matches_statsmodels():
    """The maths alone, on raw features whose scales differ by 10^3, with no solver's start."""
    X, y, _ = cancer()
    stats = logit_statistics(X, y.astype(float))
    assert_matches_statsmodels(stats, y, sm.add_constant(X))
    assert stats.names[:2] == ("intercept", "x0")


@pytest.mark.parametrize("standardize", [True, False])
def test_synthetic_statistics_match_statsmodels_with_and_without_standardisation(standardize):
    X, y = synthetic(seed=1)
    stats, note, result = fit_with_statistics(X, y, standardize=standardize)
    assert note is None and stats is not None
    assert (result.model.mean is None) is (not standardize)
    assert_matches_statsmodels(stats, y, sm.add_constant(X))
    assert stats.names == ("intercept", "x0", "x1", "x2", "x3")
    # the table is the fitted model, undone from the standardised scale
    model = result.model
    w, b = model.coef[0], model.intercept[0]
    if standardize:
        w, b = w / model.scale, b - w @ (model.mean / model.scale)
    np.testing.assert_allclose(stats.coef, np.r_[b, w], rtol=1e-4)


@pytest.mark.parametrize("standardize", [True, False])
def test_without_intercept_matches_statsmodels_without_a_constant(standardize):
    X, y = synthetic(seed=2)
    X = X + np.array([3.0, -1.0, 0.5, 2.0])  # off-centre, so that centring matters
    stats, note, result = fit_with_statistics(
        X, y, fit_intercept=False, standardize=standardize, solver="newton"
    )
    assert note is None and stats is not None
    assert "intercept" not in stats.names
    # standardising centres: the fitted model is z = (x - mean) . beta, a centred design
    design = X - X.mean(axis=0) if standardize else X
    assert_matches_statsmodels(stats, y, design)
    # ...and the table describes the fitted model: beta = w / scale
    model = result.model
    raw_weights = model.coef[0] / model.scale if standardize else model.coef[0]
    np.testing.assert_allclose(stats.coef, raw_weights, rtol=1e-4)


def test_polynomial_statistics_are_for_the_raw_monomials():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(800, 2))
    z = -1.0 + 0.8 * (X**2).sum(axis=1) + 0.5 * X[:, 0]
    y = (rng.uniform(size=800) < 1 / (1 + np.exp(-z))).astype(int)
    stats, note, _ = fit_with_statistics(X, y, ["u", "v"], polynomial_degree=2)
    assert note is None and stats is not None
    assert stats.names == ("intercept", "u", "v", "u^2", "u v", "v^2")
    design = SkPolynomialFeatures(degree=2, include_bias=False).fit_transform(X)
    assert_matches_statsmodels(stats, y, sm.add_constant(design))


def test_p_values_are_two_sided_normal_tail_probabilities():
    X, y = synthetic(seed=4)
    stats, _, _ = fit_with_statistics(X, y)
    assert stats is not None
    expected = [math.erfc(abs(z) / math.sqrt(2)) for z in stats.z]
    np.testing.assert_allclose(stats.p_value, expected, rtol=1e-15)
    width = stats.ci_upper - stats.ci_lower
    np.testing.assert_allclose(width, 2 * 1.959963984540054 * stats.std_err)
    # the true coefficient of x3 is zero, of x1 is -2: not significant and very significant
    assert stats.p_value[4] > 0.05 and stats.p_value[2] < 1e-10


def test_penalised_model_has_no_statistics():
    X, y = synthetic(seed=5)
    for params in (FitParams(), FitParams(l2=0.5)):
        result = fit(X, y, params=params)
        stats, note = coefficient_statistics(X, y, result, params=params)
        assert stats is None
        assert note == f"penalised model (l2={params.l2:g}): statistics need l2=0 and no l1"


def test_multi_class_model_has_no_statistics():
    X, y = load_iris(return_X_y=True)
    params = FitParams(l2=0.0)
    stats, note = coefficient_statistics(X, y, fit(X, y, params=params), params=params)
    assert stats is None and note is not None and note.startswith("multi-class model")


def test_unconverged_model_has_no_statistics():
    X, y = synthetic(seed=6)
    params = FitParams(l2=0.0, max_iter=3, solver="gd")
    result = fit(X, y, params=params)
    assert not result.report.converged
    stats, note = coefficient_statistics(X, y, result, params=params)
    assert stats is None and note is not None
    assert note.startswith("not converged") and "after 3 iterations" in note


def test_perfect_separation_is_a_singular_hessian():
    X, y = make_blobs(n=100, d=2, spread=0.1, seed=7)  # far-apart tight clusters
    stats, note, result = fit_with_statistics(X, y, max_iter=2000, tol=1e-4)
    assert result.report.accuracy == 1.0
    assert stats is None and note is not None
    assert note.startswith("singular Hessian (perfect separation or collinear features)")
    assert "separates the classes" in note


def test_collinear_features_are_a_singular_hessian():
    X, y = synthetic(seed=8)
    X = np.column_stack([X, X[:, 0] - 2 * X[:, 1]])  # an exact linear combination
    stats, note, result = fit_with_statistics(X, y, max_iter=5000, tol=1e-4)
    assert result.report.converged
    assert stats is None and note is not None
    assert note.startswith("singular Hessian (perfect separation or collinear features)")


def test_logit_statistics_raises_on_a_constant_column_beside_the_intercept():
    X, y = synthetic(seed=9)
    X[:, 2] = 4.0
    with pytest.raises(StatisticsUnavailable, match="singular Hessian"):
        logit_statistics(X, y.astype(float))


def test_rows_are_json_ready_and_non_finite_values_become_none():
    X, y = synthetic(seed=10)
    stats, _, _ = fit_with_statistics(X, y)
    assert stats is not None
    rows = stats.rows()
    assert [r["name"] for r in rows] == list(stats.names)
    assert rows[1]["odds_ratio"] == pytest.approx(math.exp(rows[1]["coef"]))
    assert all(type(v) is float for r in rows for k, v in r.items() if k != "name")


def test_rescaling_a_feature_rescales_its_coefficient_and_nothing_else():
    """Reported on the original scale: feature * c -> coef / c, std_err / c, same z and p."""
    X, y = synthetic(seed=11)
    c = np.array([1000.0, 1.0, 0.001, 1.0])
    base = logit_statistics(X, y.astype(float))
    scaled = logit_statistics(X * c, y.astype(float))
    factor = np.r_[1.0, 1 / c]
    np.testing.assert_allclose(scaled.coef, base.coef * factor, rtol=1e-9)
    np.testing.assert_allclose(scaled.std_err, base.std_err * factor, rtol=1e-9)
    np.testing.assert_allclose(scaled.z, base.z, rtol=1e-9)
    np.testing.assert_allclose(scaled.p_value, base.p_value, rtol=1e-7)


def test_weighted_and_l1_models_get_a_note_not_statistics():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] + rng.normal(size=200) > 0).astype(int)
    params = FitParams(l2=0.0, solver="newton")
    w = np.full(200, 2.0)
    result = fit(X, y, params=params, sample_weight=w)
    stats, note = coefficient_statistics(X, y, result, params=params, sample_weight=w)
    assert stats is None and note is not None and note.startswith("weighted model")
    params = FitParams(l2=0.0, l1=0.01)
    stats, note = coefficient_statistics(X, y, fit(X, y, params=params), params=params)
    assert stats is None and note is not None and note.startswith("penalised model (l2=0, l1=0.01)")
