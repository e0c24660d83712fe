"""Rows and labels as the service's JSON wants them, from NumPy arrays, pandas objects or lists.

Duck-typed: NumPy and pandas are never imported here, so the client runs without them. A
pandas DataFrame gives its column names as ``feature_names``; NumPy's ``tolist`` gives Python
floats, ints, strings and booleans, which JSON carries exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


def is_dataframe(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "to_numpy")


def feature_names(X: Any) -> list[str] | None:
    """A DataFrame's column names, when the service can take them (distinct strings of 1-200
    characters); otherwise ``None``."""
    return usable_names(list(X.columns)) if is_dataframe(X) else None


def usable_names(names: Sequence[Any]) -> list[str] | None:
    """``names`` if the service takes them as ``feature_names``, else ``None``."""
    strings = all(isinstance(n, str) and 1 <= len(n) <= 200 for n in names)
    if names and strings and len(set(names)) == len(names):
        return [str(n) for n in names]
    return None


def rows(X: Any) -> list[list[float]]:
    """``X`` as a list of rows of numbers. Raises ValueError naming the first NaN or infinity
    (JSON cannot carry them)."""
    if is_dataframe(X):
        X = X.to_numpy(dtype=float)
    if hasattr(X, "tolist") and hasattr(X, "ndim"):  # a NumPy array (or array-like)
        if X.ndim != 2:
            raise ValueError(
                f"features: must be 2-dimensional (rows of numbers), got {X.ndim} dimension(s)"
            )
        out: list[list[float]] = X.astype(float).tolist()
    else:
        # anything not a row is sent as is, for the service to name (``features: must be ...``)
        out = [list(row) if isinstance(row, (list, tuple)) else row for row in X]
    check_finite(out)
    return out


def check_finite(table: Sequence[Sequence[Any]]) -> None:
    for i, row in enumerate(table):
        for j, value in enumerate(row if isinstance(row, list) else ()):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"features[{i}][{j}]: {value} is not a finite number")


def labels(y: Any) -> list[Any]:
    """``y`` as a list of labels (a pandas Series, a NumPy array or any iterable)."""
    if hasattr(y, "tolist"):
        values: list[Any] = y.tolist()
        return values
    return list(y)


def weights(sample_weight: Iterable[float] | None) -> list[float] | None:
    if sample_weight is None:
        return None
    return [float(w) for w in labels(sample_weight)]
