import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from app.engine import FitParams, InvalidData, InvalidParams, TrainingDiverged, fit
from app.engine.loss import LogisticLoss
from tests.conftest import make_blobs


def test_gradient_descent_reaches_scikit_learn_optimum_on_breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    lam = 1e-2
    params = FitParams(solver="gd", l2=lam, max_iter=20_000, tol=1e-8)
    result = fit(X, y, params=params)
    assert result.report.converged
    Xs = StandardScaler().fit_transform(X)
    ref = LogisticRegression(C=1 / (lam * len(y)), tol=1e-12, max_iter=10_000).fit(Xs, y)
    loss = LogisticLoss(Xs, y[:, None].astype(float), l2=lam)
    ref_obj = loss.loss(np.r_[ref.coef_.ravel(), ref.intercept_])
    assert result.report.loss == pytest.approx(ref_obj, rel=1e-9)
    np.testing.assert_allclose(result.model.coef.ravel(), ref.coef_.ravel(), atol=1e-5)
    np.testing.assert_allclose(result.model.predict_proba(X), ref.predict_proba(Xs), atol=1e-6)


def test_tutorial_digits_is_it_a_two_holds_out_above_95_percent():
    X, y = load_digits(return_X_y=True)
    labels = (y == 2).astype(int)
    result = fit(X[:-797], labels[:-797])
    held_out = np.mean(np.array(result.model.predict(X[-797:])) == labels[-797:])
    assert held_out >= 0.95
    assert all(np.isfinite(result.report.history))


def test_one_vs_all_on_iris_picks_largest_h_and_normalises():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y].tolist()
    result = fit(X, names, params=FitParams(max_iter=3000))
    model = result.model
    assert model.multiclass == "ovr" and model.classes == ("setosa", "versicolor", "virginica")
    P = model.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    Z = model.decision_function(X)
    h = 1 / (1 + np.exp(-Z))
    np.testing.assert_allclose(P, h / h.sum(axis=1, keepdims=True), rtol=1e-12)
    assert model.predict(X) == [model.classes[i] for i in np.argmax(h, axis=1)]
    assert np.mean(np.array(model.predict(X)) == np.array(names)) >= 0.9


def test_binary_threshold_moves_the_decision():
    X, y = make_blobs(seed=4)
    model = fit(X, y).model
    p1 = model.predict_proba(X)[:, 1]
    for t in (0.1, 0.5, 0.9):
        assert model.predict(X, threshold=t) == [int(p >= t) for p in p1]


def test_labels_keep_their_kind():
    X, y = make_blobs(k=3, seed=5)
    ints = fit(X, (y * 10).tolist()).model
    assert ints.classes == (0, 10, 20) and all(type(c) is int for c in ints.classes)
    assert set(ints.predict(X)) <= {0, 10, 20}


def test_no_standardisation_and_no_intercept_are_respected():
    X, y = make_blobs(seed=6)
    m = fit(X, y, params=FitParams(standardize=False, fit_intercept=False)).model
    assert m.mean is None and m.scale is None
    assert m.intercept.tolist() == [0.0]


def test_separable_data_raises_no_warning_and_stays_finite():
    X = np.array([[0.0], [1.0], [2.0], [3.0]]) * 1e6
    y = [0, 0, 1, 1]
    raw = fit(X, y, params=FitParams(solver="gd", l2=0.0, standardize=False, max_iter=500))
    assert np.all(np.isfinite(raw.model.coef)) and np.isfinite(raw.report.loss)
    # standardisation is what makes plain gradient descent work on raw-scale features
    scaled = fit(X, y, params=FitParams(solver="gd", l2=0.0, max_iter=500))
    assert scaled.report.accuracy == 1.0
    assert scaled.report.loss < raw.report.loss


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        ([[1.0], [2.0]], [1, 1], "at least two distinct classes"),
        ([[1.0], [2.0]], [0, 1, 1], "3 labels for 2 rows"),
        ([[1.0], [np.nan]], [0, 1], r"features\[1\]\[0\]"),
        ([[1.0], [np.inf]], [0, 1], "finite"),
        ([[1.0, 2.0], [1.0]], [0, 1], "features"),
        ([], [], "empty"),
        ([[1.0], [2.0]], [0, "a"], "all integers, all strings or all booleans"),
    ],
)
def test_bad_data_is_named(X, y, message):
    with pytest.raises(InvalidData, match=message):
        fit(X, y)


def test_bad_params_are_named():
    with pytest.raises(InvalidParams, match="learning_rate"):
        fit([[0.0], [1.0]], [0, 1], params=FitParams(solver="gd", learning_rate=-1.0))
    with pytest.raises(InvalidParams, match="max_iter"):
        fit([[0.0], [1.0]], [0, 1], params=FitParams(max_iter=0))


def test_too_large_learning_rate_is_reported_not_turned_into_nan():
    X, y = make_blobs(seed=7)
    with pytest.raises(TrainingDiverged, match="learning_rate"):
        fit(X, y, params=FitParams(solver="gd", learning_rate=1e4, l2=1.0))


def test_time_budget_stops_the_solver():
    X, y = make_blobs(n=2000, d=20, seed=8)
    r = fit(X, y, params=FitParams(solver="gd", max_iter=10**7, tol=0.0, time_budget=0.2)).report
    assert r.stopped_by == "time_budget" and not r.converged
    assert r.seconds < 5


def test_history_is_thinned_and_decreasing():
    X, y = make_blobs(seed=9)
    r = fit(X, y, params=FitParams(solver="gd", max_iter=5000, tol=0.0)).report
    assert 2 <= len(r.history) <= 100
    assert r.history[-1] == r.loss
    assert np.all(np.diff(r.history) <= 1e-12)  # 1/L steps never raise the cost
