"""``RemoteLogisticRegression`` against a real server: scikit-learn's own estimator checks, and
the same answers as ``LogisticRegression`` in a Pipeline, cross_val_score and GridSearchCV."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from logreg_client import Client, RemoteLogisticRegression
from tests.conftest import make_blobs
from tests.live_server import LiveServer

#: Checks the estimator cannot pass, with the reason (also listed in client/README.md).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}
#: Tight enough that both solvers stop at the same optimum to far below 1e-6.
TIGHT = {"tol": 1e-10}


@pytest.fixture(scope="module", autouse=True)
def service_url(server: LiveServer) -> Iterator[str]:
    """The estimators below are built without a URL (at collection, before the server runs):
    they find it in LOGREG_URL, as a user's would."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOGREG_URL", server.url)
        yield server.url


@parametrize_with_checks(
    [RemoteLogisticRegression()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS
)
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)


def test_cross_val_score_in_a_pipeline_matches_scikit_learn() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scoring = ["accuracy", "neg_log_loss"]
    for C in (0.05, 1.0):
        remote = make_pipeline(StandardScaler(), RemoteLogisticRegression(C=C, **TIGHT))
        exact = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10)
        local = make_pipeline(StandardScaler(), exact)
        ours = cross_validate(remote, X, y, cv=folds, scoring=scoring)
        theirs = cross_validate(local, X, y, cv=folds, scoring=scoring)
        for name in scoring:
            np.testing.assert_allclose(
                ours[f"test_{name}"], theirs[f"test_{name}"], rtol=1e-6, atol=1e-9
            )
        assert cross_val_score(remote, X, y, cv=folds).tolist() == ours["test_accuracy"].tolist()


def test_parameters_match_scikit_learn_multinomial_and_weights() -> None:
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    weights = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    class_weight = {"setosa": 2.0, "virginica": 0.5}
    ours = RemoteLogisticRegression(C=0.3, class_weight=class_weight, **TIGHT)
    ours.fit(X, labels, sample_weight=weights)
    theirs = LogisticRegression(C=0.3, class_weight=class_weight, tol=1e-10, max_iter=10**4)
    theirs.fit(X, labels, sample_weight=weights)
    assert ours.classes_.tolist() == theirs.classes_.tolist()
    # multinomial weights are defined up to a constant per feature: compare centred rows
    np.testing.assert_allclose(
        ours.coef_ - ours.coef_.mean(0), theirs.coef_ - theirs.coef_.mean(0), atol=1e-6
    )
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-7)
    assert (ours.predict(X) == theirs.predict(X)).all()
    best = ours.decision_function(X).argmax(1)
    assert (ours.classes_[best] == ours.predict(X)).all()


def test_grid_search_picks_what_scikit_learn_picks() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    grid = {"clf__C": [0.001, 0.1, 10.0]}
    remote = Pipeline([("scale", StandardScaler()), ("clf", RemoteLogisticRegression(**TIGHT))])
    exact = LogisticRegression(solver="newton-cholesky", tol=1e-10)
    local = Pipeline([("scale", StandardScaler()), ("clf", exact)])
    ours = GridSearchCV(remote, grid, cv=3, scoring="neg_log_loss").fit(X, y)
    theirs = GridSearchCV(local, grid, cv=3, scoring="neg_log_loss").fit(X, y)
    assert ours.best_params_ == theirs.best_params_
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"], rtol=1e-6
    )
    assert (ours.predict(X) == theirs.predict(X)).all()


def test_raw_scale_coefficients_whatever_the_service_standardises() -> None:
    """Unpenalised, standardising does not change the model: coef_ is on the raw features in
    both cases, and decision_function is X @ coef_.T + intercept_."""
    X, y = make_blobs(n=300, d=3, seed=6, spread=3.0)
    X = X * [1.0, 100.0, 0.01] + [5.0, -300.0, 0.0]
    raw = RemoteLogisticRegression(C=np.inf, **TIGHT).fit(X, y)
    scaled = RemoteLogisticRegression(C=np.inf, standardize=True, **TIGHT).fit(X, y)
    np.testing.assert_allclose(scaled.coef_, raw.coef_, rtol=1e-6)
    np.testing.assert_allclose(scaled.intercept_, raw.intercept_, rtol=1e-6, atol=1e-9)
    proba = scaled.predict_proba(X)[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-scaled.decision_function(X))), proba, rtol=1e-9)


def test_dataframe_names_pickling_and_the_service_model() -> None:
    X, y = make_blobs(n=80, d=2, seed=7)
    frame = pd.DataFrame(X, columns=["height", "weight"])
    est = RemoteLogisticRegression(name="pickled").fit(frame, np.where(y == 1, "yes", "no"))
    assert est.feature_names_in_.tolist() == ["height", "weight"] and est.n_features_in_ == 2
    back = pickle.loads(pickle.dumps(est))
    assert back.model_id_ == est.model_id_
    np.testing.assert_array_equal(back.predict_proba(frame), est.predict_proba(frame))
    with Client() as client:  # the model is the service's: usable without the estimator
        model = client.model(est.model_id_)
        assert model.name == "pickled" and model.feature_names == ["height", "weight"]
        assert client.predict(est.model_id_, X[:4]).predictions == est.predict(frame[:4]).tolist()


def test_each_fit_under_a_name_is_its_next_version() -> None:
    X, y = make_blobs(n=60, d=2, seed=8)
    first = RemoteLogisticRegression(name="est-versions", C=0.1).fit(X, y)
    second = clone(first).set_params(C=10.0).fit(X, y)  # a clone registers too, as in a search
    assert (first.version_, second.version_) == (1, 2)
    assert RemoteLogisticRegression().fit(X, y).version_ is None
    with Client() as client:
        assert [v.id for v in client.name("est-versions").items] == [
            second.model_id_,
            first.model_id_,
        ]
        served = client.predict("est-versions", X[:5])  # the name serves the newest fit
        assert (served.model_id, served.version) == (second.model_id_, 2)
        assert served.probabilities == second.predict_proba(X[:5]).tolist()
        pinned = client.predict("est-versions:1", X[:5]).probabilities
    # each estimator keeps predicting with the model it fitted
    np.testing.assert_array_equal(first.predict_proba(X[:5]), np.array(pinned))


def test_polynomial_degree_scores_from_the_service() -> None:
    angle = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ring = np.c_[np.cos(angle), np.sin(angle)]
    X = np.r_[ring, 3 * ring]
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    est = RemoteLogisticRegression(polynomial_degree=2, standardize=True).fit(X, y)
    assert est.score(X, y) == 1.0 and est.expanded_feature_names_ is not None
    assert ((est.decision_function(X) > 0) == (est.predict(X) == 1)).all()


def test_bad_settings_are_value_errors_before_any_upload() -> None:
    X, y = make_blobs(n=10, d=2)
    for bad in ({"C": 0}, {"l1_ratio": 2.0}, {"solver": "sag"}, {"multiclass": "both"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RemoteLogisticRegression(**bad).fit(X, y)
