"""Fit time, passes over the data and peak memory against scikit-learn's lbfgs. Prints a table.

Usage::

    python bench/fit.py            # the four rows of the issue (needs ~1 GB of RAM, a few minutes)
    python bench/fit.py --quick    # small sanity run (seconds)

What is compared, exactly: the same problem, J = mean cross-entropy + l2/2 ||w||^2 on
standardised features (intercept unpenalised). Ours gets the raw X with ``standardize=True``
(its timing includes computing the column means and scales); scikit-learn gets a standardised
copy made beforehand (not timed) and ``C = 1 / (l2 * n)``. Both stop on the same test, the
largest gradient component of that mean objective at most ``--tol`` (scikit-learn's lbfgs
``gtol``), and the objective gap is ours minus scikit-learn's, relative, scored by our loss.

Timings are the best of ``--repeat`` runs; ours and scikit-learn's one-thread fit run
alternately (ours, theirs, ours, ...), so that load from other processes on a shared machine
falls on both, and "ratio med" is the median of the per-round ratios ("q1-q3" their quartiles).
``--issue`` runs issue 14's four rows instead (breast_cancer, iris and digits multinomial,
synthetic 50,000 x 50, at ``--tol`` 1e-6). "1 thr" runs under ``threadpool_limits(1)`` (ours
always does); "sk dflt" is scikit-learn with its default BLAS threads. A pass is one ``X @ W``
plus one ``X.T @ R`` over all rows (subsample work counted pro rata); the floor is the time of a
bare ``X @ w`` plus ``X.T @ r`` on the same array. Peak memory is what ``tracemalloc`` sees
allocated during our fit (NumPy reports its buffers to it), as a multiple of ``X.nbytes``; the
thread limit around it is set up before tracing starts, so its own allocations do not count.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine import FitParams, fit
from app.engine.loss import LogisticLoss, MultinomialLoss


def synthetic(n: int, d: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated Gaussian features, various scales and offsets; labels from a logistic model."""
    rng = np.random.default_rng(seed)
    mix = np.eye(d) + 0.3 * rng.normal(size=(d, d)) / np.sqrt(d)
    X = rng.normal(size=(n, d)) @ mix
    X *= rng.uniform(0.5, 5.0, size=d)
    X += rng.normal(scale=3.0, size=d)
    Xs = (X - X.mean(0)) / X.std(0)
    w = rng.normal(size=d) * 2.0 / np.sqrt(d)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(Xs @ w + 0.3)))).astype(np.int64)
    return X, y


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - t)
    return best, out


def alternate(
    repeat: int, ours: Callable[[], Any], theirs: Callable[[], Any]
) -> tuple[list[float], Any, list[float], Any]:
    """``repeat`` rounds of ``ours()`` then ``theirs()``: each one's times and last result."""
    t_ours: list[float] = []
    t_theirs: list[float] = []
    out_ours = out_theirs = None
    for _ in range(repeat):
        t = time.perf_counter()
        out_ours = ours()
        t_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        out_theirs = theirs()
        t_theirs.append(time.perf_counter() - t)
    return t_ours, out_ours, t_theirs, out_theirs


def objective(Xs: np.ndarray, y: np.ndarray, multinomial: bool, coef, intercept, l2: float):
    flat = np.c_[coef, intercept].ravel()
    if multinomial:
        Y = (y[:, None] == np.unique(y)[None, :]).astype(float)
        return MultinomialLoss(Xs, Y, l2=l2).loss(flat)
    return LogisticLoss(Xs, y[:, None].astype(float), l2=l2).loss(flat)


def floor_per_pass(X: np.ndarray, repeat: int) -> float:
    w = np.ones(X.shape[1]) / X.shape[1]
    r = np.ones(X.shape[0]) / X.shape[0]

    def bare() -> None:
        X @ w
        X.T @ r

    with threadpool_limits(1):
        return best_of(max(repeat, 3), bare)[0]


def row(name: str, X: np.ndarray, y: np.ndarray, *, l2: float, tol: float, repeat: int) -> dict:
    n, d = X.shape
    k = len(np.unique(y))
    multinomial = k > 2
    params = FitParams(l2=l2, tol=tol, max_iter=10_000, multiclass="multinomial")
    with threadpool_limits(1):
        ours = fit(X, y, params=params)
    mean, scale = ours.model.mean, ours.model.scale
    Xs = (X - mean) / scale  # the same standardisation, made once, not timed
    sk = LogisticRegression(C=1.0 / (l2 * n), tol=tol, max_iter=100_000)
    with threadpool_limits(1):
        t_ours, ours, t_sk, ref = alternate(
            repeat, lambda: fit(X, y, params=params), lambda: sk.fit(Xs, y)
        )
    ours_s, sk1_s = min(t_ours), min(t_sk)
    ratios = np.array(t_ours) / np.array(t_sk)
    skd_s, _ = best_of(repeat, lambda: sk.fit(Xs, y))
    ref_obj = objective(Xs, y, multinomial, ref.coef_, ref.intercept_, l2)
    # threadpool_limits is entered before tracing starts: entering and leaving it allocates
    # ~0.4 MB of its own (it scans the loaded libraries), 3.2x X on breast_cancer.
    with threadpool_limits(1):
        tracemalloc.start()
        fit(X, y, params=params)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    floor = floor_per_pass(X, repeat)
    r = ours.report
    return {
        "dataset": name,
        "n x d": f"{n:,} x {d}",
        "K": k,
        "solver": r.solver,
        "ours s": ours_s,
        "sk 1thr s": sk1_s,
        "sk dflt s": skd_s,
        "ratio 1thr": ours_s / sk1_s,
        "ratio med": float(np.median(ratios)),
        "q1-q3": "{:.2f}-{:.2f}".format(*np.quantile(ratios, [0.25, 0.75])),
        "ours med s": float(np.median(t_ours)),
        "sk med s": float(np.median(t_sk)),
        "ratio dflt": ours_s / skd_s,
        "rel gap": (r.loss - ref_obj) / ref_obj,
        "conv": r.converged,
        "passes": r.passes,
        "s/pass": ours_s / max(r.passes, 1e-12),
        "floor s": floor,
        "peak/X": peak / X.nbytes,
    }


def print_table(rows: list[dict]) -> None:
    cols = list(rows[0])
    fmt = {
        "ours s": "{:.4f}",
        "sk 1thr s": "{:.4f}",
        "sk dflt s": "{:.4f}",
        "ratio 1thr": "{:.2f}",
        "ratio dflt": "{:.2f}",
        "ratio med": "{:.2f}",
        "ours med s": "{:.4f}",
        "sk med s": "{:.4f}",
        "rel gap": "{:+.1e}",
        "passes": "{:.1f}",
        "s/pass": "{:.4f}",
        "floor s": "{:.4f}",
        "peak/X": "{:.2f}",
    }
    cells = [[fmt.get(c, "{}").format(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    print(" | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for x in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(x, widths, strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small data, one repeat")
    ap.add_argument(
        "--issue",
        action="store_true",
        help="issue 14's rows: breast_cancer, iris, digits, synthetic 50,000 x 50; tol 1e-6",
    )
    ap.add_argument(
        "--tol", type=float, default=None, help="gradient tolerance for both (1e-8; --issue 1e-6)"
    )
    ap.add_argument("--l2", type=float, default=1e-4, help="lambda (C = 1 / (lambda n))")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.tol is None:
        args.tol = 1e-6 if args.issue else 1e-8
    repeat = 1 if args.quick else args.repeat
    cases: list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = [
        ("breast_cancer", lambda: load_breast_cancer(return_X_y=True)),
        ("digits (multinomial)", lambda: load_digits(return_X_y=True)),
    ]
    if args.issue:
        cases.insert(1, ("iris (multinomial)", lambda: load_iris(return_X_y=True)))
        cases.append(("synthetic", lambda: synthetic(50_000, 50)))
    elif args.quick:
        cases.append(("synthetic", lambda: synthetic(20_000, 20)))
    else:
        cases.append(("synthetic", lambda: synthetic(100_000, 100)))
        cases.append(("synthetic", lambda: synthetic(1_000_000, 20)))
    rows = []
    for name, load in cases:
        X, y = load()
        X = np.ascontiguousarray(X, dtype=np.float64)
        rows.append(row(name, X, y, l2=args.l2, tol=args.tol, repeat=repeat))
        del X, y
    print(f"tol={args.tol:g}  l2={args.l2:g}  repeat={repeat}")
    print_table(rows)


if __name__ == "__main__":
    main()
