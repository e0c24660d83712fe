"""The engine against scikit-learn: same objective, same optimum, same probabilities.

scikit-learn runs to a tight tolerance (``tol=1e-12``) on the standardised data, one BLAS thread;
its solution is scored with *our* objective, so both are judged by the same function.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from app.engine import FitParams, fit
from app.engine.loss import LogisticLoss, MultinomialLoss
from tests.conftest import make_blobs


def synthetic_binary() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs(n=600, d=6, k=2, seed=11, spread=2.5)


def synthetic_four() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs(n=600, d=5, k=4, seed=12, spread=2.5)


DATA = {
    "breast_cancer": lambda: load_breast_cancer(return_X_y=True),
    "iris": lambda: load_iris(return_X_y=True),
    "digits": lambda: load_digits(return_X_y=True),
    "synthetic2": synthetic_binary,
    "synthetic4": synthetic_four,
}

#: (data, multiclass, l2): binary data ignore ``multiclass``.
CASES = [
    ("breast_cancer", "ovr", 1e-3),
    ("synthetic2", "ovr", 1e-4),
    ("iris", "multinomial", 1e-3),
    ("iris", "ovr", 1e-3),
    ("digits", "multinomial", 1e-2),
    ("digits", "ovr", 1e-2),
    ("synthetic4", "multinomial", 1e-3),
    ("synthetic4", "ovr", 1e-3),
]


@cache
def dataset(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = DATA[name]()
    return X, y, StandardScaler().fit_transform(X)


def one_hot(y: np.ndarray) -> np.ndarray:
    return (y[:, None] == np.unique(y)[None, :]).astype(float)


def our_objective(
    Xs: np.ndarray,
    y: np.ndarray,
    mode: str,
    coef: np.ndarray,
    intercept: np.ndarray,
    *,
    l2: float,
    l1: float = 0.0,
    sample_weight: np.ndarray | None = None,
) -> float:
    """Our objective J evaluated at (scikit-learn's) coefficients."""
    flat = np.c_[coef, intercept].ravel()
    Y = one_hot(y)
    if Y.shape[1] == 2:
        loss: Any = LogisticLoss(Xs, Y[:, 1:], l2=l2, sample_weight=sample_weight)
    elif mode == "ovr":
        loss = LogisticLoss(Xs, Y, l2=l2, sample_weight=sample_weight)
    else:
        loss = MultinomialLoss(Xs, Y, l2=l2, sample_weight=sample_weight)
    return float(loss.loss(flat)) + l1 * float(np.abs(coef).sum())


@cache
def reference(name: str, mode: str, l2: float) -> tuple[float, np.ndarray]:
    """scikit-learn's optimum scored by our objective, and its probabilities on the data."""
    _, y, Xs = dataset(name)
    C = 1.0 / (l2 * len(y))
    lr = LogisticRegression(C=C, tol=1e-12, max_iter=100_000)
    with threadpool_limits(1):
        if mode == "ovr" and len(np.unique(y)) > 2:
            est = OneVsRestClassifier(lr).fit(Xs, y)
            coef = np.vstack([e.coef_ for e in est.estimators_])
            intercept = np.concatenate([e.intercept_ for e in est.estimators_])
        else:
            est = lr.fit(Xs, y)
            coef, intercept = est.coef_, est.intercept_
    return our_objective(Xs, y, mode, coef, intercept, l2=l2), est.predict_proba(Xs)


@pytest.mark.parametrize("solver", ["newton", "lbfgs", "auto"])
@pytest.mark.parametrize(("name", "mode", "l2"), CASES)
def test_solver_reaches_scikit_learn_optimum(name, mode, l2, solver):
    X, y, _ = dataset(name)
    ref_obj, ref_proba = reference(name, mode, l2)
    params = FitParams(solver=solver, multiclass=mode, l2=l2, tol=1e-10, max_iter=10_000)
    result = fit(X, y, params=params)
    assert result.report.converged, result.report
    assert result.report.grad_norm <= 1e-10
    assert result.report.loss == pytest.approx(ref_obj, rel=1e-6)
    assert result.report.loss <= ref_obj * (1 + 1e-9)  # never worse than the reference
    np.testing.assert_allclose(result.model.predict_proba(X), ref_proba, atol=1e-5)
    expected = "binary" if len(np.unique(y)) == 2 else mode
    assert result.model.multiclass == expected


@pytest.mark.parametrize(
    ("name", "mode"),
    [("breast_cancer", "ovr"), ("iris", "ovr"), ("iris", "multinomial"), ("synthetic4", "ovr")],
)
def test_gradient_descent_gets_within_1e_3_of_the_optimum_in_default_iterations(name, mode):
    X, y, _ = dataset(name)
    l2 = 1e-2
    optimum, _ = reference(name, mode, l2)
    gd = fit(X, y, params=FitParams(solver="gd", multiclass=mode, l2=l2))
    assert gd.report.solver == "gd"
    assert gd.report.iterations <= FitParams().max_iter
    gap = gd.report.loss - optimum
    assert -1e-12 <= gap <= 1e-3 * optimum


def test_l1_matches_liblinear_sparsity_and_objective():
    X, y, Xs = dataset("breast_cancer")
    C = 0.5
    l1 = 1.0 / (C * len(y))
    with threadpool_limits(1):
        ref = LogisticRegression(
            C=C, l1_ratio=1.0, solver="liblinear", tol=1e-10, max_iter=100_000, fit_intercept=False
        ).fit(Xs, y)
    params = FitParams(l1=l1, l2=0.0, tol=1e-9, fit_intercept=False)
    result = fit(X, y, params=params)
    assert result.report.solver == "proximal-newton" and result.report.converged
    loss = LogisticLoss(Xs, y[:, None].astype(float), fit_intercept=False)
    ref_obj = loss.loss(ref.coef_.ravel()) + l1 * np.abs(ref.coef_).sum()
    assert result.report.loss == pytest.approx(ref_obj, rel=1e-8)
    zeros = result.model.coef == 0.0
    assert 5 <= zeros.sum() < zeros.size  # sparse, with exact zeros
    np.testing.assert_array_equal(zeros, ref.coef_ == 0.0)
    np.testing.assert_allclose(result.model.coef, ref.coef_, atol=1e-5)


@pytest.mark.parametrize("mode", ["multinomial", "ovr"])
def test_elasticnet_matches_saga(mode):
    X, y, Xs = dataset("iris")
    C, l1_ratio = 0.5, 0.5
    lam = 1.0 / (C * len(y))
    lr = LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-10, max_iter=100_000)
    with threadpool_limits(1):
        if mode == "ovr":
            est: Any = OneVsRestClassifier(lr).fit(Xs, y)
            coef = np.vstack([e.coef_ for e in est.estimators_])
            intercept = np.concatenate([e.intercept_ for e in est.estimators_])
        else:
            est = lr.fit(Xs, y)
            coef, intercept = est.coef_, est.intercept_
    params = FitParams(l1=lam * l1_ratio, l2=lam * (1 - l1_ratio), tol=1e-10, multiclass=mode)
    result = fit(X, y, params=params)
    assert result.report.converged
    ref_obj = our_objective(
        Xs, y, mode, coef, intercept, l2=lam * (1 - l1_ratio), l1=lam * l1_ratio
    )
    assert result.report.loss == pytest.approx(ref_obj, rel=1e-7)
    np.testing.assert_array_equal(result.model.coef == 0.0, coef == 0.0)
    assert (result.model.coef == 0.0).any()
    np.testing.assert_allclose(result.model.predict_proba(X), est.predict_proba(Xs), atol=1e-5)


@pytest.mark.parametrize(
    ("name", "mode"), [("breast_cancer", "ovr"), ("iris", "multinomial"), ("iris", "ovr")]
)
@pytest.mark.parametrize("weighting", ["balanced", "mapping", "sample_weight", "both"])
def test_weights_match_scikit_learn(name, mode, weighting):
    X, y, Xs = dataset(name)
    rng = np.random.default_rng(5)
    classes = np.unique(y)
    sw = None
    class_weight: Any = None
    if weighting in ("balanced", "both"):
        class_weight = "balanced"
    if weighting == "mapping":
        class_weight = {int(c): 1.0 + i for i, c in enumerate(classes)}
    if weighting in ("sample_weight", "both"):
        sw = rng.uniform(0.0, 3.0, size=len(y))
        sw[:5] = 0.0
    # the effective row weights scikit-learn uses, so that C maps to lambda = 1 / (C * S)
    if class_weight == "balanced":
        totals = np.bincount(y, weights=sw)
        per_class = totals.sum() / (len(classes) * totals)
    elif class_weight is not None:
        per_class = np.array([class_weight[int(c)] for c in classes])
    else:
        per_class = np.ones(len(classes))
    effective = per_class[y] * (1.0 if sw is None else sw)
    l2 = 1e-3
    C = 1.0 / (l2 * effective.sum())
    lr = LogisticRegression(C=C, tol=1e-12, max_iter=100_000)
    with threadpool_limits(1):
        if mode == "ovr" and len(classes) > 2:
            # one-vs-all with the multi-class row weights (one weight per row for all outputs)
            ests = [
                LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(
                    Xs, (y == c).astype(int), sample_weight=effective
                )
                for c in classes
            ]
            coef = np.vstack([e.coef_ for e in ests])
            intercept = np.concatenate([e.intercept_ for e in ests])
            h = np.column_stack([e.predict_proba(Xs)[:, 1] for e in ests])
            ref_proba = h / h.sum(axis=1, keepdims=True)
        else:
            est = lr.set_params(class_weight=class_weight).fit(Xs, y, sample_weight=sw)
            coef, intercept, ref_proba = est.coef_, est.intercept_, est.predict_proba(Xs)
    ref_obj = our_objective(Xs, y, mode, coef, intercept, l2=l2, sample_weight=effective)
    params = FitParams(l2=l2, tol=1e-10, multiclass=mode, class_weight=class_weight)
    result = fit(X, y, params=params, sample_weight=sw)
    assert result.report.converged
    assert result.report.loss == pytest.approx(ref_obj, rel=1e-6)
    np.testing.assert_allclose(result.model.predict_proba(X), ref_proba, atol=1e-5)


def test_class_weight_mapping_accepts_json_string_keys():
    X, y, _ = dataset("iris")
    as_int = fit(X, y, params=FitParams(class_weight={0: 2.0, 2: 0.5}))
    as_str = fit(X, y, params=FitParams(class_weight={"0": 2.0, "2": 0.5}))
    np.testing.assert_array_equal(as_int.model.coef, as_str.model.coef)
    plain = fit(X, y)
    assert not np.allclose(plain.model.coef, as_int.model.coef)


def test_subsampled_newton_path_finds_the_exact_optimum():
    rng = np.random.default_rng(21)
    n, d = 60_000, 4
    X = rng.normal(size=(n, d)) * [1.0, 5.0, 0.2, 3.0] + [0.0, 10.0, -1.0, 2.0]
    z = (X - X.mean(0)) / X.std(0) @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    auto = fit(X, y, params=FitParams(tol=1e-10))
    assert auto.report.solver == "subsampled-newton" and auto.report.converged
    exact = fit(X, y, params=FitParams(solver="newton", tol=1e-10))
    assert auto.report.loss == pytest.approx(exact.report.loss, rel=1e-12)
    np.testing.assert_allclose(auto.model.coef, exact.model.coef, atol=1e-7)
    assert auto.report.passes < exact.report.passes + 5
