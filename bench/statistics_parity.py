"""Coefficient statistics against statsmodels' Logit: the largest relative difference per column.

    python bench/statistics_parity.py

Fits each case with the engine (``l2=0``, then the statistics module's Newton polish) and with
``statsmodels.api.Logit(y, add_constant(design)).fit()``, and prints max |ours - theirs| / |theirs|
over the coefficients for each column of the table. The tests assert these are below 1e-4.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import statsmodels.api as sm
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import PolynomialFeatures

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine import FitParams, fit
from app.engine.statistics import coefficient_statistics

CANCER_COLUMNS = [0, 1, 4, 8, 9, 11, 14]


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [1.0, 0.5, 2.0, 1.0]
    z = 0.3 + X @ np.array([1.0, -2.0, 0.25, 0.0])
    return X, (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(int)


def rings(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    z = -1.0 + 0.8 * (X**2).sum(axis=1) + 0.5 * X[:, 0]
    return X, (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(int)


def main() -> None:
    cancer = load_breast_cancer()
    Xc, yc = cancer.data[:, CANCER_COLUMNS], cancer.target
    Xs, ys = synthetic(2000, 1)
    Xr, yr = rings(2000, 3)
    cases = [
        ("breast_cancer[7 cols]", Xc, yc, {"standardize": True}),
        ("synthetic 2000x4", Xs, ys, {"standardize": True}),
        ("synthetic 2000x4", Xs, ys, {"standardize": False}),
        ("synthetic, no intercept", Xs, ys, {"fit_intercept": False}),
        ("rings 2000x2, degree 2", Xr, yr, {"polynomial_degree": 2}),
        ("rings 2000x2, degree 3", Xr, yr, {"polynomial_degree": 3}),
    ]
    columns = ["coef", "std_err", "z", "p_value", "ci_lower", "ci_upper", "odds_ratio"]
    head = f"{'case':<26}{'std':>6}{'newton':>7}{'stats s':>9}"
    print(head + "".join(f"{c:>11}" for c in columns))
    for label, X, y, extra in cases:
        params = FitParams(l2=0.0, max_iter=50_000, tol=1e-6, **extra)  # type: ignore[arg-type]
        result = fit(X, y, params=params)
        started = time.perf_counter()
        stats, note = coefficient_statistics(X, y, result, params=params)
        seconds = time.perf_counter() - started
        if stats is None:
            print(f"{label:<26} no statistics: {note}")
            continue
        design = X
        if params.polynomial_degree > 1:
            expansion = PolynomialFeatures(params.polynomial_degree, include_bias=False)
            design = expansion.fit_transform(X)
        if params.fit_intercept:
            design = sm.add_constant(design)
        elif params.standardize:  # standardising centres: the model is (x - mean) . beta
            design = design - design.mean(axis=0)
        res = sm.Logit(y.astype(float), design).fit(disp=0)
        ci = np.asarray(res.conf_int())
        ref = {
            "coef": res.params,
            "std_err": res.bse,
            "z": res.tvalues,
            "p_value": res.pvalues,
            "ci_lower": ci[:, 0],
            "ci_upper": ci[:, 1],
            "odds_ratio": np.exp(res.params),
        }
        diffs = [
            float(np.max(np.abs(getattr(stats, c) - ref[c]) / np.abs(ref[c]))) for c in columns
        ]
        print(
            f"{label:<26}{params.standardize!s:>6}{stats.newton_steps:>7}{seconds:>9.4f}"
            + "".join(f"{d:>11.1e}" for d in diffs)
        )


if __name__ == "__main__":
    main()
