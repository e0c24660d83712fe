import numpy as np
import pytest

from app.engine.loss import LogisticLoss, log_sigmoid, sigmoid


def finite_difference_gradient(f, x, eps=1e-6):
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_gradient_matches_finite_differences(n_outputs, fit_intercept, l2):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    Y = (rng.random((40, n_outputs)) < 0.5).astype(float)
    loss = LogisticLoss(X, Y, l2=l2, fit_intercept=fit_intercept)
    coef = rng.normal(size=loss.n_coef)
    value, grad = loss.loss_gradient(coef)
    assert value == pytest.approx(loss.loss(coef))
    np.testing.assert_allclose(grad, loss.gradient(coef))
    np.testing.assert_allclose(
        grad, finite_difference_gradient(loss.loss, coef), rtol=1e-6, atol=1e-8
    )


def test_loss_is_mean_cross_entropy_plus_half_l2_without_intercept():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 2))
    y = (rng.random(30) < 0.5).astype(float)
    w, b, lam = np.array([0.7, -1.2]), 0.4, 0.25
    h = 1 / (1 + np.exp(-(X @ w + b)))
    expected = -np.mean(y * np.log(h) + (1 - y) * np.log(1 - h)) + lam / 2 * w @ w
    loss = LogisticLoss(X, y[:, None], l2=lam)
    assert loss.loss(np.r_[w, b]) == pytest.approx(expected, rel=1e-12)


def test_sigmoid_is_accurate_and_silent_at_extremes():
    z = np.array([-1e308, -800.0, -40.0, 0.0, 40.0, 800.0, 1e308, -np.inf, np.inf])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = sigmoid(z)
        lp = log_sigmoid(z[:-2])
    assert p[3] == 0.5
    assert p[2] == pytest.approx(np.exp(-40.0), rel=1e-12)  # tail keeps relative precision
    assert np.all((p >= 0) & (p <= 1))
    assert p[0] == 0.0 and p[-1] == 1.0
    assert lp[2] == pytest.approx(-40.0, rel=1e-12)
    assert np.all(np.isfinite(lp))


def test_loss_is_finite_on_huge_scores():
    X = np.array([[1e6], [-1e6]])
    Y = np.array([[1.0], [1.0]])
    loss = LogisticLoss(X, Y)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value, grad = loss.loss_gradient(np.array([1e3, 0.0]))
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx(0.5 * 1e9)  # the misclassified row costs |z|


def test_lipschitz_bound_makes_a_safe_step():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 5)) @ rng.normal(size=(5, 5))
    Y = (rng.random((500, 1)) < 0.5).astype(float)
    loss = LogisticLoss(X, Y, l2=0.1)
    L = loss.lipschitz_bound()
    Xb = np.hstack([X, np.ones((500, 1))])
    exact = np.linalg.eigvalsh(Xb.T @ Xb / 500)[-1] / 4 + 0.1
    assert exact == pytest.approx(L, rel=1e-9)  # all 500 rows used: no margin needed
