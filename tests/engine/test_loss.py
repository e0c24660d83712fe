import numpy as np
import pytest

from app.engine.loss import Design, LogisticLoss, MultinomialLoss, log_sigmoid, sigmoid


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


def _problem(kind, *, fit_intercept=True, l2=0.2, weighted=True, seed=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 4)) * [1.0, 3.0, 0.5, 2.0] + [0.0, 5.0, -2.0, 1.0]
    labels = rng.integers(0, 3, size=60)
    sw = rng.uniform(0.0, 2.0, size=60) if weighted else None
    mean, scale = X.mean(0), X.std(0)
    design = Design(X, mean, scale)
    if kind == "binary":
        Y = (labels == 1).astype(float)[:, None]
        cls = LogisticLoss
    elif kind == "ovr":
        Y = (labels[:, None] == np.arange(3)).astype(float)
        cls = LogisticLoss
    else:
        Y = (labels[:, None] == np.arange(3)).astype(float)
        cls = MultinomialLoss
    loss = cls(design, Y, l2=l2, fit_intercept=fit_intercept, sample_weight=sw)
    dense = cls((X - mean) / scale, Y, l2=l2, fit_intercept=fit_intercept, sample_weight=sw)
    return loss, dense, rng.normal(size=loss.n_coef)


def _full_hessian(loss, coef):
    blocks = loss.hessian(coef)
    B, q, _ = blocks.shape
    H = np.zeros((B * q, B * q))
    for k in range(B):
        H[k * q : (k + 1) * q, k * q : (k + 1) * q] = blocks[k]
    return H


@pytest.mark.parametrize("kind", ["binary", "ovr", "multinomial"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_hessian_and_products_match_finite_differences(kind, fit_intercept):
    loss, _, coef = _problem(kind, fit_intercept=fit_intercept)
    H = _full_hessian(loss, coef)
    fd = np.column_stack(
        [
            (loss.gradient(coef + 1e-6 * e) - loss.gradient(coef - 1e-6 * e)) / 2e-6
            for e in np.eye(loss.n_coef)
        ]
    )
    np.testing.assert_allclose(H, fd, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(H, H.T, atol=1e-14)
    hv = loss.hessp(coef)
    V = np.random.default_rng(0).normal(size=(3, loss.n_coef))
    for v in V:
        np.testing.assert_allclose(hv(v), H @ v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["binary", "ovr", "multinomial"])
def test_weighted_gradient_matches_finite_differences(kind):
    loss, _, coef = _problem(kind)
    np.testing.assert_allclose(
        loss.gradient(coef), finite_difference_gradient(loss.loss, coef), rtol=1e-6, atol=1e-8
    )


@pytest.mark.parametrize("kind", ["binary", "ovr", "multinomial"])
def test_folded_standardisation_equals_a_standardised_copy(kind):
    folded, dense, coef = _problem(kind)
    f1, g1 = folded.loss_gradient(coef)
    f2, g2 = dense.loss_gradient(coef)
    assert f1 == pytest.approx(f2, rel=1e-13)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(folded.hessian(coef), dense.hessian(coef), rtol=1e-10, atol=1e-13)


def test_multinomial_loss_is_weighted_mean_softmax_cross_entropy_plus_l2_on_all_rows():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(25, 3))
    y = rng.integers(0, 4, size=25)
    sw = rng.uniform(0.5, 2.0, size=25)
    W, b, lam = rng.normal(size=(4, 3)), rng.normal(size=4), 0.3
    Z = X @ W.T + b
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    expected = -np.sum(sw * np.log(P[np.arange(25), y])) / sw.sum() + lam / 2 * np.sum(W * W)
    Y = (y[:, None] == np.arange(4)).astype(float)
    loss = MultinomialLoss(X, Y, l2=lam, sample_weight=sw)
    assert loss.loss(np.c_[W, b].ravel()) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", [12, 60])  # fewer / more rows than coefficients
@pytest.mark.parametrize(("fit_intercept", "l2"), [(True, 0.2), (False, 0.2), (True, 0.0)])
def test_multinomial_inverse_hessian_inverts_the_hessian_off_its_null_space(n, fit_intercept, l2):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, 6)) * rng.uniform(0.5, 3.0, size=6) + rng.normal(size=6)
    Y = (rng.integers(0, 3, size=n)[:, None] == np.arange(3)).astype(float)
    sw = rng.uniform(0.2, 2.0, size=n)
    loss = MultinomialLoss(
        Design(X, X.mean(0), X.std(0)), Y, l2=l2, fit_intercept=fit_intercept, sample_weight=sw
    )
    coef = rng.normal(size=loss.n_coef)
    H = loss.hessian(coef)[0]
    null = loss.null_space()
    project = np.eye(loss.n_coef) if null is None else np.eye(loss.n_coef) - null @ null.T
    op = loss.inverse_hessian(coef, min_curvature=-1.0)  # every row
    assert op is not None
    for v in rng.normal(size=(3, loss.n_coef)):
        g = project @ v  # gradients are orthogonal to the flat directions
        u = op(g)
        np.testing.assert_allclose(H @ u, g, rtol=1e-5, atol=1e-7 * np.abs(g).max())
        if null is not None:
            np.testing.assert_allclose(null.T @ u, 0.0, atol=1e-4 * np.abs(u).max())


def test_multinomial_inverse_hessian_uses_only_rows_with_curvature():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(40, 3))
    Y = (rng.integers(0, 3, size=40)[:, None] == np.arange(3)).astype(float)
    loss = MultinomialLoss(X, Y, l2=0.1)
    coef = np.zeros(loss.n_coef)  # p = 1/3 everywhere: 1 - max p = 2/3
    assert loss.inverse_hessian(coef, min_curvature=0.7) is None  # no row qualifies
    assert loss.inverse_hessian(coef, min_curvature=0.5) is not None


def _reference_loss(Z, y, *, multinomial):
    """The mean cross-entropy row by row, in the most accurate form: ``log1p`` of the other
    classes' ``exp(z_k - z_y)`` (softmax) or of ``exp(-|z|)`` (sigmoid), summed by ``fsum``."""
    import math

    rows = []
    for z, label in zip(Z, y, strict=True):
        if multinomial:
            others = np.delete(z, label) - z[label]
            top = max(others.max(), 0.0)
            rows.append(top + math.log(math.exp(-top) + float(np.exp(others - top).sum())))
        else:
            s = float(z[0]) if label == 1 else -float(z[0])  # log(1 + exp(-s))
            rows.append(max(-s, 0.0) + math.log1p(math.exp(-abs(s))))
    return math.fsum(rows) / len(rows)


@pytest.mark.parametrize("multinomial", [True, False])
@pytest.mark.parametrize("stretch", [1.0, 10.0, 30.0, 100.0, 300.0, 1e4])
def test_the_loss_is_never_negative_on_separable_data(multinomial, stretch):
    """Issue 12, item 4: summing the rows' log-sum-exp and subtracting the sum of true-class
    scores cancelled to -2.5e-14; each row's loss is now formed first, and each is >= 0."""
    rng = np.random.default_rng(3)
    K = 3 if multinomial else 2
    y = np.repeat(np.arange(K), 200)
    X = (y[:, None] + 0.3 * rng.random((len(y), 1))) * 10.0
    if multinomial:
        Y = np.eye(K)[y]
        loss = MultinomialLoss(X, Y, l2=0.0)
        # scores 0, x - 5, 2x - 21.5: each class wins its rows by a margin of 2 to 3.5
        W = np.array([[0.0], [1.0], [2.0]]) * stretch
        b = np.array([0.0, -5.0, -21.5]) * stretch
    else:
        Y = y[:, None].astype(float)
        loss = LogisticLoss(X, Y, l2=0.0)
        W, b = np.array([[1.0]]) * stretch, np.array([-6.5]) * stretch
    coef = np.column_stack([W, b]).ravel()
    value = loss.loss(coef)
    Z = X @ W.T + b
    expected = _reference_loss(Z, y, multinomial=multinomial)
    assert value >= 0.0
    assert abs(value - expected) <= 4 * np.finfo(float).eps * max(expected, 1e-300) + 1e-16
