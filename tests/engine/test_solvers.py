"""Solver behaviour: what ``auto`` picks, proximal methods, line searches, reports, bad params."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.datasets import load_digits

from app.engine import FitParams, InvalidData, InvalidParams, fit
from app.engine.loss import LogisticLoss
from app.engine.solvers import (
    ARMIJO,
    WOLFE,
    fista,
    optimality,
    proximal_newton,
    wolfe_line_search,
)
from tests.conftest import make_blobs


@pytest.mark.parametrize(
    ("shape", "k", "params", "expected"),
    [
        ((200, 3), 2, {}, "newton"),
        ((200, 3), 4, {"multiclass": "multinomial"}, "newton"),
        ((200, 3), 2, {"l1": 0.01}, "proximal-newton"),
        ((60, 1200), 2, {}, "lbfgs"),
        ((60, 1200), 2, {"l1": 0.01}, "fista"),
        ((200, 3), 2, {"solver": "gd", "l1": 0.01}, "gd"),
        ((200, 3), 2, {"solver": "newton", "l1": 0.01}, "proximal-newton"),
    ],
)
def test_auto_and_l1_pick_the_documented_solver(shape, k, params, expected):
    X, y = make_blobs(n=shape[0], d=shape[1], k=k, seed=3)
    assert fit(X, y, params=FitParams(**params)).report.solver == expected


def test_auto_uses_preconditioned_lbfgs_for_a_multinomial_whose_hessian_is_costly():
    X, y = load_digits(return_X_y=True)
    params = FitParams(multiclass="multinomial", l2=1e-4, tol=1e-8, max_iter=10_000)
    auto = fit(X, y, params=params).report
    plain = fit(X, y, params=replace(params, solver="lbfgs")).report
    assert auto.solver == "preconditioned-lbfgs" and auto.converged and auto.grad_norm <= 1e-8
    assert plain.solver == "lbfgs" and plain.converged
    assert auto.loss == pytest.approx(plain.loss, rel=1e-9)
    # the point of it: far fewer passes over the data (measured 89.5 against 191)
    assert auto.passes < 0.6 * plain.passes


def test_preconditioned_lbfgs_with_a_loose_tolerance_is_the_plain_warm_start():
    X, y = load_digits(return_X_y=True)
    r = fit(X[:300], y[:300], params=FitParams(multiclass="multinomial", tol=1e-2)).report
    assert r.solver == "preconditioned-lbfgs" and r.converged and r.grad_norm <= 1e-2


def _binary_loss(seed=0, n=300, d=8):
    X, y = make_blobs(n=n, d=d, seed=seed, spread=3.0)
    Xs = (X - X.mean(0)) / X.std(0)
    return LogisticLoss(Xs, y[:, None].astype(float), l2=0.0)


def test_fista_and_proximal_newton_agree_with_exact_zeros():
    loss = _binary_loss()
    l1 = 0.02
    x0 = np.zeros(loss.n_coef)
    a = proximal_newton(loss, x0, l1=l1, max_iter=100, tol=1e-10)
    b = fista(loss, x0, l1=l1, max_iter=20_000, tol=1e-8)
    assert a.converged and b.converged
    assert a.loss == pytest.approx(b.loss, rel=1e-9)
    mask = loss.penalized()
    zeros = (a.coef == 0) & mask
    assert zeros.any() and not zeros.all()
    np.testing.assert_array_equal(zeros, (b.coef == 0) & mask)
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-6)
    # the intercept is never thresholded
    assert a.coef[-1] != 0
    # KKT: the reported optimality is the min-norm subgradient, checked independently here
    g = loss.gradient(a.coef)
    w = a.coef[mask]
    gw = g[mask]
    assert np.all(np.abs(gw[w == 0]) <= l1 + 1e-10)
    np.testing.assert_allclose(gw[w != 0], -l1 * np.sign(w[w != 0]), atol=1e-9)


def test_large_l1_gives_the_intercept_only_model():
    X, y = make_blobs(n=200, d=4, seed=2)
    m = fit(X, y, params=FitParams(l1=10.0, tol=1e-10)).model
    assert np.all(m.coef == 0)
    p = m.predict_proba(X)[:, 1]
    np.testing.assert_allclose(p, np.mean(y), rtol=1e-8)


def test_proximal_gradient_descent_makes_exact_zeros_and_never_raises_the_cost():
    X, y = make_blobs(n=300, d=8, seed=0, spread=3.0)
    r = fit(X, y, params=FitParams(solver="gd", l1=0.02, l2=0.0, max_iter=3000, tol=1e-7))
    assert (r.model.coef == 0).any()
    assert np.all(np.diff(r.report.history) <= 1e-12)
    best = fit(X, y, params=FitParams(l1=0.02, l2=0.0, tol=1e-10))
    assert r.report.loss == pytest.approx(best.report.loss, rel=1e-6)
    np.testing.assert_array_equal(r.model.coef == 0, best.model.coef == 0)


def test_optimality_is_the_min_norm_subgradient():
    coef = np.array([0.0, 0.0, 1.0, -2.0, 5.0])
    g = np.array([0.3, 0.05, -0.1, 0.1, 0.2])
    mask = np.array([True, True, True, True, False])
    # |0.3| - 0.1; max(0.05 - 0.1, 0); -0.1 + 0.1; 0.1 - 0.1; intercept 0.2
    assert optimality(coef, g, 0.1, mask) == pytest.approx(0.2)
    assert optimality(coef, g, 0.0, mask) == pytest.approx(0.3)


def test_wolfe_line_search_returns_a_strong_wolfe_step():
    # phi(t) = f(w + t d) for the 1-D function f(x) = x^4 - 3x^2 + x from x = 2, d = -1
    def f(x):
        return x**4 - 3 * x**2 + x, 4 * x**3 - 6 * x + 1

    def phi(t):
        v, dv = f(2.0 - t)
        return v, -dv, np.array([dv])

    f0, d0 = phi(0.0)[0], phi(0.0)[1]
    for t0 in (1.0, 0.01, 5.0):
        found = wolfe_line_search(phi, f0, d0, t0=t0)
        assert found is not None
        t, ft, _ = found
        assert ft <= f0 + ARMIJO * t * d0
        assert abs(phi(t)[1]) <= WOLFE * abs(d0)


@pytest.mark.parametrize("solver", ["auto", "gd", "newton", "lbfgs"])
@pytest.mark.parametrize("multiclass", ["ovr", "multinomial"])
def test_every_solver_reports_honestly(solver, multiclass):
    X, y = make_blobs(n=300, d=4, k=3, seed=8, spread=2.0)
    r = fit(X, y, params=FitParams(solver=solver, multiclass=multiclass, tol=1e-6)).report
    assert 2 <= len(r.history) <= 100
    assert r.history[-1] == r.loss
    assert r.converged == (r.grad_norm <= 1e-6)
    if solver != "gd":  # gradient descent needs more than max_iter steps for this tol
        assert r.converged and r.stopped_by == "tol"
    assert r.passes >= r.iterations > 0
    assert r.history[-1] <= r.history[0]


@pytest.mark.parametrize("solver", ["gd", "newton", "lbfgs"])
def test_max_iter_stops_a_solver_unconverged(solver):
    X, y = make_blobs(n=300, d=4, k=3, seed=8, spread=2.0)
    r = fit(X, y, params=FitParams(solver=solver, max_iter=2, tol=1e-12)).report
    assert r.iterations == 2 and not r.converged and r.stopped_by == "max_iter"


def test_multinomial_model_predicts_the_softmax():
    X, y = make_blobs(n=300, d=3, k=4, seed=9, spread=2.0)
    m = fit(X, y, params=FitParams(multiclass="multinomial")).model
    assert m.multiclass == "multinomial" and m.coef.shape == (4, 3)
    Z = m.decision_function(X)
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(m.predict_proba(X), P, rtol=1e-12)
    assert m.intercept.sum() == pytest.approx(0.0, abs=1e-12)  # centred: unique
    np.testing.assert_allclose(m.coef.sum(axis=0), 0.0, atol=1e-6)  # the L2 optimum's rows
    assert m.predict(X) == [m.classes[i] for i in np.argmax(Z, axis=1)]


def test_two_classes_with_multinomial_is_the_binary_model():
    X, y = make_blobs(n=200, d=3, k=2, seed=1)
    a = fit(X, y, params=FitParams(multiclass="multinomial")).model
    b = fit(X, y).model
    assert a.multiclass == "binary"
    np.testing.assert_array_equal(a.coef, b.coef)


def test_sample_weights_equal_repeated_rows():
    X, y = make_blobs(n=120, d=3, k=3, seed=6, spread=2.0)
    counts = np.random.default_rng(0).integers(0, 4, size=len(y))
    counts[:3] = 1  # keep every class
    weighted = fit(
        X,
        y,
        params=FitParams(multiclass="multinomial", tol=1e-10, standardize=False),
        sample_weight=counts,
    )
    repeated = fit(
        np.repeat(X, counts, axis=0),
        np.repeat(y, counts),
        params=FitParams(multiclass="multinomial", tol=1e-10, standardize=False),
    )
    np.testing.assert_allclose(weighted.model.coef, repeated.model.coef, atol=1e-7)
    assert weighted.report.loss == pytest.approx(repeated.report.loss, rel=1e-10)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"solver": "lbfgs", "l1": 0.1}, "params.solver"),
        ({"solver": "magic"}, "params.solver"),
        ({"multiclass": "softmax"}, "params.multiclass"),
        ({"l1": -1.0}, "params.l1"),
        ({"l1": float("nan")}, "params.l1"),
        ({"class_weight": "heavy"}, "params.class_weight"),
        ({"class_weight": {7: 1.0}}, r"params.class_weight.7"),
        ({"class_weight": {0: -1.0}}, r"params.class_weight.0"),
        ({"class_weight": {0: 0.0, 1: 0.0}}, "params.class_weight"),
        ({"solver": "newton", "learning_rate": 0.1}, "params.learning_rate"),
    ],
)
def test_bad_params_name_the_field(params, field):
    X, y = make_blobs(n=50, d=2, seed=1)
    with pytest.raises(InvalidParams, match=field):
        fit(X, y, params=FitParams(**params))


@pytest.mark.parametrize(
    ("weights", "field"),
    [
        ([1.0] * 49, "sample_weight: has 49 entries for 50 rows"),
        ([1.0] * 10 + [-1.0] + [1.0] * 39, r"sample_weight\[10\]"),
        ([1.0] * 3 + [np.nan] + [1.0] * 46, r"sample_weight\[3\]"),
        ([0.0] * 50, "all weights are zero"),
    ],
)
def test_bad_sample_weights_are_named(weights, field):
    X, y = make_blobs(n=50, d=2, seed=1)
    with pytest.raises(InvalidData, match=field):
        fit(X, y, sample_weight=weights)


def test_time_budget_stops_newton_and_lbfgs():
    X, y = make_blobs(n=3000, d=30, k=5, seed=8)
    for solver in ("newton", "lbfgs"):
        r = fit(X, y, params=FitParams(solver=solver, tol=0.0, l2=0.0, time_budget=0.0)).report
        assert r.stopped_by == "time_budget" and not r.converged
