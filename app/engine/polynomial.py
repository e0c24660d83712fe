"""Polynomial feature expansion: every monomial of the inputs up to a degree.

For inputs ``x = (x_0, ..., x_{n-1})`` and degree ``D`` the expansion is every product
``x_0^{p_0} * ... * x_{n-1}^{p_{n-1}}`` with ``1 <= p_0 + ... + p_{n-1} <= D`` (no constant
column: the intercept plays that part). Columns come in scikit-learn's
``PolynomialFeatures(degree=D, include_bias=False)`` order: by total degree, and within a degree
in lexicographic order of the sorted index tuples (``combinations_with_replacement``). For two
inputs and ``D = 2``: ``x0, x1, x0^2, x0 x1, x1^2``. There are ``C(n + D, D) - 1`` columns.

How the fit uses it (``fit_polynomial``), so that plain gradient descent still converges:

1. standardise the raw inputs (``standardize=True``): centred inputs make ``x`` and ``x^2``
   far less correlated than raw ones, which is what keeps the problem well conditioned;
2. expand the standardised inputs;
3. standardise the expanded columns, so every column the solver sees has mean 0 and variance 1.

With ``standardize=False`` the raw inputs are expanded and nothing is scaled. Degree 1 is the
identity and takes exactly the old path (one standardisation), so degree-1 models are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np
from numpy.typing import NDArray

from .errors import InvalidParams
from .loss import Array
from .preprocessing import Standardizer

#: Largest ``polynomial_degree`` accepted (a guard; the column count is the real limit).
MAX_DEGREE = 10


def n_output_features(n_input_features: int, degree: int) -> int:
    """Number of monomials of degree 1..``degree`` in ``n_input_features`` variables.

    ``C(n + D, D) - 1``, computed exactly (Python integers), so callers can refuse a request
    before allocating anything.
    """
    return math.comb(n_input_features + degree, degree) - 1


def monomial_powers(n_input_features: int, degree: int) -> NDArray[np.int64]:
    """Exponents of each output column, in the module's column order.

    Returns
    -------
    powers : ndarray of int64, shape (n_output_features, n_input_features)
        ``powers[j, i]`` is the exponent of input ``i`` in output column ``j``.
    """
    rows = [
        np.bincount(np.asarray(combo, dtype=np.intp), minlength=n_input_features)
        for d in range(1, degree + 1)
        for combo in combinations_with_replacement(range(n_input_features), d)
    ]
    return np.asarray(rows, dtype=np.int64).reshape(-1, n_input_features)


def monomial_names(input_names: Sequence[str], degree: int) -> list[str]:
    """Names of the output columns, as scikit-learn's ``get_feature_names_out`` spells them.

    An exponent of 1 is left out and factors are joined by a space: ``x0^2 x1``.
    """
    powers = monomial_powers(len(input_names), degree)
    names = []
    for row in powers:
        factors = []
        for i in np.flatnonzero(row).tolist():
            factors.append(input_names[i] if row[i] == 1 else f"{input_names[i]}^{row[i]}")
        names.append(" ".join(factors))
    return names


def expand(X: Array, degree: int) -> Array:
    """Every monomial of the columns of ``X`` up to ``degree``.

    Each degree's block is built from the previous degree's block by multiplying whole column
    ranges by one input column (the scheme scikit-learn uses): ``n * (degree - 1)`` vectorised
    products, no Python loop over rows or output columns.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_input_features)
    degree : int
        At least 1.

    Returns
    -------
    ndarray of shape (n_samples, n_output_features)
        Columns in the module's order (scikit-learn's ``PolynomialFeatures(include_bias=False)``).
    """
    n_samples, n = X.shape
    out = np.empty((n_samples, n_output_features(n, degree)), dtype=np.float64)
    out[:, :n] = X
    # start[i]: first column of the previous degree's block whose monomial starts with input i;
    # multiplying columns start[i]:end by x_i gives exactly the next degree's monomials whose
    # smallest index is i, in lexicographic order.
    start = list(range(n + 1))
    col = n
    for _ in range(1, degree):
        end = start[-1]
        next_start = []
        for i in range(n):
            next_start.append(col)
            width = end - start[i]
            np.multiply(out[:, start[i] : end], X[:, i : i + 1], out=out[:, col : col + width])
            col += width
        next_start.append(col)
        start = next_start
    return out


@dataclass(frozen=True)
class PolynomialFeatures:
    """The expansion a model applies to its inputs before its own standardisation.

    Attributes
    ----------
    n_input_features : int
        Columns the model takes (what ``predict`` checks).
    degree : int
        Highest total degree of the monomials, at least 2 (degree 1 needs no expansion).
    mean, scale : ndarray of shape (n_input_features,) or None
        Standardisation of the raw inputs applied *before* expanding: ``(x - mean) / scale``.
    """

    n_input_features: int
    degree: int
    mean: Array | None = None
    scale: Array | None = None

    @property
    def n_output_features(self) -> int:
        return n_output_features(self.n_input_features, self.degree)

    def transform(self, X: Array) -> Array:
        """Expanded features of shape (n_samples, n_output_features) of ``X`` (n_samples, n_in)."""
        if self.mean is not None and self.scale is not None:
            X = Standardizer(self.mean, self.scale).transform(X)
        return expand(X, self.degree)

    def feature_names(self, input_names: Sequence[str] | None = None) -> list[str]:
        """Monomial names of the output columns, from ``input_names`` (default x0, x1, ...)."""
        names = input_names or [f"x{i}" for i in range(self.n_input_features)]
        return monomial_names(names, self.degree)


def check_degree(degree: int) -> None:
    """``InvalidParams`` naming ``params.polynomial_degree`` unless it is in 1..MAX_DEGREE."""
    if isinstance(degree, bool) or not isinstance(degree, int | np.integer):
        raise InvalidParams(f"params.polynomial_degree: must be an integer, got {degree!r}")
    if not 1 <= degree <= MAX_DEGREE:
        raise InvalidParams(
            f"params.polynomial_degree: must be between 1 and {MAX_DEGREE}, got {degree}"
        )


def fit_polynomial(X: Array, *, degree: int, standardize: bool) -> PolynomialFeatures | None:
    """The expansion ``fit`` applies to ``X`` before its usual standardisation.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Raw, checked training features.
    degree : int
        ``polynomial_degree``; 1 means no expansion (``None`` is returned).
    standardize : bool
        Standardise the inputs before expanding (learned from ``X``). ``fit`` standardises the
        expanded columns afterwards, as it does any features; see the module docstring.
    """
    if degree == 1:
        return None
    pre = Standardizer.fit(X) if standardize else None
    return PolynomialFeatures(
        n_input_features=X.shape[1],
        degree=degree,
        mean=None if pre is None else pre.mean,
        scale=None if pre is None else pre.scale,
    )
