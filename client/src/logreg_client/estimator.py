"""``RemoteLogisticRegression``: a scikit-learn classifier whose ``fit`` trains on the service.

Needs the ``[sklearn]`` extra. Defaults follow scikit-learn's ``LogisticRegression`` (``C=1.0``,
no standardisation, softmax on 3+ classes), so swapping one for the other gives the same model;
the service's own defaults differ (``standardize=True``, ``ovr``, ``l2=1e-4``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._client import Client
from ._data import usable_names
from ._models import ModelDetail, TrainingSummary

SOLVERS = ("auto", "gd", "newton", "lbfgs")
MULTICLASS = ("ovr", "multinomial")


def class_weight_key(label: Any) -> str:
    """A label as the service's ``class_weight`` keys write it: ``"1"``, ``"true"``, ``"a"``."""
    if isinstance(label, np.generic):
        label = label.item()
    if isinstance(label, str):
        return label
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return json.dumps(label)


class RemoteLogisticRegression(ClassifierMixin, BaseEstimator):
    """Logistic regression trained and served by the logistic-regression service.

    ``fit`` sends the rows to ``POST /train`` and reads the model back; ``predict`` and
    ``predict_proba`` (and ``score``) call ``POST /predict``. ``decision_function`` is
    ``X @ coef_.T + intercept_``, scikit-learn's definition, from the parameters read at fit
    (for ``polynomial_degree > 1``: the log-odds of the service's probabilities).

    Parameters
    ----------
    url : str, optional
        The service; default ``$LOGREG_URL`` (read at fit and predict time).
    api_key : str, optional
        Default ``$LOGREG_API_KEY``.
    C : float, default 1.0
        Inverse regularisation strength, as in ``LogisticRegression``: the service's
        ``l2 = (1 - l1_ratio) / (C * S)`` and ``l1 = l1_ratio / (C * S)``, ``S`` the number of
        rows (or the sum of the row weights times their class weights). ``np.inf``: no penalty.
    l1_ratio : float, default 0.0
        0 is the L2 penalty, 1 the L1 penalty, between them the elastic net.
    solver, max_iter, tol, multiclass, class_weight, standardize, fit_intercept,
    polynomial_degree, learning_rate
        The service's training settings of the same names (docs/api.md); ``multiclass``
        defaults to ``"multinomial"`` and ``standardize`` to ``False`` as in scikit-learn.
    name : str, optional
        A registered name: each ``fit`` stores its model as the name's next version (1, 2,
        3...; ``version_``), so ``Client().predict(name, X)`` serves the newest fit and an
        alias can pin one. Every clone fits too: under ``GridSearchCV`` or ``cross_val_score``
        each fold of each candidate registers a version (``GridSearchCV``'s refit comes last,
        so then ``name`` serves ``best_estimator_``). The estimator itself always predicts with
        the model it fitted (``model_id_``), whatever the name serves later.
    timeout : float, default 360
        Seconds to wait for each answer (a training may run up to the service's budget).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        On the raw features (for ``polynomial_degree > 1``: on the expanded, standardised
        columns of ``expanded_feature_names_``, as the service stores them).
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        When ``X`` was a DataFrame with string column names.
    n_iter_ : ndarray of shape (1,)
    model_id_ : str
        The service's id of the model: ``Client().predict(est.model_id_, X)`` works too.
    version_ : int or None
        The model's version under ``name`` (``None`` without a name): ``f"{name}:{version_}"``
        is a reference to it.
    training_ : TrainingSummary
        What the service reported of the fit (solver, iterations, converged, warnings).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        C: float = 1.0,
        l1_ratio: float = 0.0,
        solver: str = "auto",
        max_iter: int = 1000,
        tol: float = 1e-4,
        multiclass: str = "multinomial",
        class_weight: dict[Any, float] | str | None = None,
        standardize: bool = False,
        fit_intercept: bool = True,
        polynomial_degree: int = 1,
        learning_rate: float | None = None,
        name: str | None = None,
        timeout: float = 360.0,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.C = C
        self.l1_ratio = l1_ratio
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.multiclass = multiclass
        self.class_weight = class_weight
        self.standardize = standardize
        self.fit_intercept = fit_intercept
        self.polynomial_degree = polynomial_degree
        self.learning_rate = learning_rate
        self.name = name
        self.timeout = timeout

    def _client(self) -> Client:
        return Client(self.url, self.api_key, timeout=self.timeout)

    def _penalty_weight(self, y: np.ndarray, sample_weight: np.ndarray | None) -> float:
        """``S``: what the service divides the data term by (the sum of the row weights)."""
        weights = np.ones(len(y)) if sample_weight is None else sample_weight
        if isinstance(self.class_weight, dict):
            per_class = {class_weight_key(k): float(v) for k, v in self.class_weight.items()}
            weights = weights * np.array([per_class.get(class_weight_key(v), 1.0) for v in y])
        # "balanced" weighs class c by S / (K * S_c): the sum stays S
        return float(weights.sum())

    def _params(self, S: float) -> dict[str, Any]:
        """The service's ``params``; bad values raise ValueError here, before any upload."""
        C, ratio = float(self.C), float(self.l1_ratio)
        if not C > 0:
            raise ValueError(f"C: must be > 0, got {self.C!r}")
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"l1_ratio: must be between 0 and 1, got {self.l1_ratio!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver: must be one of {SOLVERS}, got {self.solver!r}")
        if self.multiclass not in MULTICLASS:
            raise ValueError(f"multiclass: must be one of {MULTICLASS}, got {self.multiclass!r}")
        strength = 0.0 if math.isinf(C) else 1.0 / (C * S)
        params: dict[str, Any] = {
            "solver": self.solver,
            "max_iter": int(self.max_iter),
            "tol": float(self.tol),
            "l2": (1.0 - ratio) * strength,
            "l1": ratio * strength,
            "multiclass": self.multiclass,
            "standardize": bool(self.standardize),
            "fit_intercept": bool(self.fit_intercept),
            "polynomial_degree": int(self.polynomial_degree),
        }
        if isinstance(self.class_weight, dict):
            params["class_weight"] = {
                class_weight_key(k): float(v) for k, v in self.class_weight.items()
            }
        elif self.class_weight is not None:
            params["class_weight"] = self.class_weight
        if self.learning_rate is not None:
            params["learning_rate"] = float(self.learning_rate)
        return params

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> RemoteLogisticRegression:
        """Train on the service.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but the data "
                f"contains only one class: {classes[0]!r}"
            )
        weights = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        if weights is not None and not (weights > 0).any():
            raise ValueError("sample_weight: all weights are zero")
        params = self._params(self._penalty_weight(y, weights))
        names = getattr(self, "feature_names_in_", None)
        with self._client() as client:
            summary = client.train(
                X,
                y,
                name=self.name,
                feature_names=None if names is None else usable_names(names.tolist()),
                sample_weight=weights,
                **params,
            )
            detail = client.model(summary.id)
        self.classes_ = classes
        self.model_id_ = summary.id
        self.version_ = summary.version
        self.training_: TrainingSummary = summary.training
        self.n_iter_ = np.array([summary.training.iterations])
        self._set_parameters(detail)
        return self

    def _set_parameters(self, detail: ModelDetail) -> None:
        """``coef_`` and ``intercept_`` in ``classes_`` order, on the raw feature scale."""
        assert detail.parameters is not None
        p = detail.parameters
        # where each of the service's classes sits in classes_ (1 == 1.0: float labels match)
        order = np.array([self._index[c] for c in detail.classes])
        coef = np.array(p.coef, dtype=np.float64)
        intercept = np.array(p.intercept, dtype=np.float64)
        if p.polynomial is None and p.scale is not None and p.mean is not None:
            coef = coef / np.array(p.scale)
            intercept = intercept - coef @ np.array(p.mean)
        if len(detail.classes) == 2:
            if order[1] == 0:  # the service's classes[1] is our classes_[0]
                coef, intercept = -coef, -intercept
        else:
            rows = np.empty_like(order)
            rows[order] = np.arange(len(order))
            coef, intercept = coef[rows], intercept[rows]
        self.coef_ = coef
        self.intercept_ = intercept
        self.expanded_feature_names_ = (
            None if p.polynomial is None else np.array(p.polynomial["features"], dtype=object)
        )

    @property
    def _index(self) -> dict[Any, int]:
        return {c: i for i, c in enumerate(self.classes_.tolist())}

    def _served(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """The service's predictions (as indices into ``classes_``) and probabilities (columns
        in ``classes_`` order)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        with self._client() as client:
            answer = client.predict(self.model_id_, X)
        index = self._index
        order = np.array([index[c] for c in answer.classes])
        proba = np.empty((X.shape[0], len(order)))
        proba[:, order] = np.array(answer.probabilities, dtype=np.float64).reshape(proba.shape)
        predicted = np.array([index[c] for c in answer.predictions], dtype=np.intp)
        return predicted, proba

    def predict(self, X: Any) -> np.ndarray:
        """Class labels, from the service."""
        predicted, _ = self._served(X)
        out: np.ndarray = self.classes_[predicted]
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities of shape (n_samples, n_classes), columns in ``classes_`` order."""
        return self._served(X)[1]

    def predict_log_proba(self, X: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            out: np.ndarray = np.log(self.predict_proba(X))
        return out

    def decision_function(self, X: Any) -> np.ndarray:
        """Scores: of shape (n_samples,) for two classes (> 0 means ``classes_[1]``), else
        (n_samples, n_classes)."""
        check_is_fitted(self)
        if self.expanded_feature_names_ is not None:
            log_proba = self.predict_log_proba(X)
            if len(self.classes_) == 2:
                out: np.ndarray = log_proba[:, 1] - log_proba[:, 0]
                return out
            return log_proba
        X = validate_data(self, X, reset=False, dtype=np.float64)
        scores = X @ self.coef_.T + self.intercept_
        return scores.ravel() if len(self.classes_) == 2 else scores

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
