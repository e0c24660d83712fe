"""What a fit will cost in memory, from the problem's sizes alone: callers refuse a request
before allocating anything (``fit`` itself does not check).

A fit's memory grows with products of sizes that no single limit sees: rows x expanded columns
(``polynomial_degree``), rows x classes, classes x columns, and for the Newton family a Hessian
of columns^2 per class or, multinomial, rows x class pairs. The estimate below follows what
``fit`` and its solvers allocate, term by term, as 64-bit floats; it is an upper estimate
(``tests/engine/test_footprint.py`` holds it to measured peaks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .model import (
    HESSIAN_ROWS,
    PRECONDITION_MEMORY_RATIO,
    SUBSAMPLE_FRACTION,
    FitParams,
    auto_solver,
    hessian_passes,
)
from .polynomial import n_output_features
from .solvers import HISTORY_POINTS
from .statistics import MAX_COEFFICIENTS

#: Arrays of shape (n_samples, n_outputs) alive at once: targets, scores, probabilities,
#: residuals, weights and the line search's trial scores (measured: 4-6).
ROW_OUTPUT_ARRAYS = 8
#: Vectors of the coefficients' size alive at once: L-BFGS's 10 pairs, gradients, steps.
COEF_ARRAYS = 30
#: Copies of the design that coefficient statistics make (expansion, centring, scaling, the
#: least-squares start).
STATISTICS_COPIES = 6
#: Blocks, temporaries and the interpreter's own arrays, whatever the sizes.
SLACK_BYTES = 64 * 1024 * 1024
_FLOAT = 8


@dataclass(frozen=True)
class FitFootprint:
    """Bytes a fit needs, in parts; ``total`` is what to compare with a limit.

    ``design``: the rows (``n_samples x n_features``) and what ``fit`` builds from them (the
    polynomial expansion, a standardised copy); ``outputs``: arrays of rows x classes;
    ``coefficients``: the solver's vectors of classes x columns; ``hessian``: Newton's
    matrices (for multinomial fits, rows x class pairs); ``statistics``: the coefficient
    statistics' copies of the design.
    """

    solver: str
    design: int
    outputs: int
    coefficients: int
    hessian: int
    statistics: int

    @property
    def total(self) -> int:
        parts = (self.design, self.outputs, self.coefficients, self.hessian, self.statistics)
        return sum(parts) + SLACK_BYTES

    def largest(self) -> str:
        """The name of the largest part."""
        parts = {
            "design": self.design,
            "outputs": self.outputs,
            "coefficients": self.coefficients,
            "hessian": self.hessian,
            "statistics": self.statistics,
        }
        return max(parts, key=parts.__getitem__)


def fit_footprint(
    *,
    n_samples: int,
    n_features: int,
    n_classes: int,
    params: FitParams,
    weighted: bool = False,
    in_memory: bool = True,
) -> FitFootprint:
    """The memory ``fit(X, y, params=params)`` needs for ``X`` of shape (n_samples, n_features)
    and ``n_classes`` distinct labels (``X`` itself included). ``weighted``: row weights given.
    ``in_memory=False``: ``X`` is ``RowBlocks`` over a mapped file, read block by block (its rows
    are not counted, nor a standardised copy: blocks are standardised as read).
    """
    n, d, k = n_samples, n_features, n_classes
    q = n_output_features(d, params.polynomial_degree)  # d itself at degree 1
    q1 = q + int(params.fit_intercept)
    outputs = 1 if k == 2 else k
    multinomial = outputs > 1 and params.multiclass == "multinomial"
    block = outputs * q1 if multinomial else q1
    solver = params.solver
    if solver == "auto":
        solver = auto_solver(
            l1=params.l1,
            n_samples=n,
            block=block,
            hessian_passes=hessian_passes(q1, outputs, multinomial=multinomial),
            multinomial=multinomial,
        )
    # the rows, the expansion (degree > 1) and a standardised copy (where folding is refused)
    design = n * d + (n * q if q != d else 0) + n * q if in_memory else 0
    hessian = 0
    if solver == "newton":
        hessian = _hessian(n, q1, outputs, multinomial=multinomial)
    elif solver == "subsampled-newton":
        m = int(min(n, max(50 * block, min(n // SUBSAMPLE_FRACTION, 200_000))))
        mh = int(min(m, max(HESSIAN_ROWS, 20 * block)))
        design += m * q  # the subsample's rows
        hessian = m * outputs * ROW_OUTPUT_ARRAYS + _hessian(
            mh, q1, outputs, multinomial=multinomial
        )
    elif solver == "preconditioned-lbfgs":
        m = int(math.sqrt(n * q * _FLOAT / PRECONDITION_MEMORY_RATIO))
        hessian = 3 * m * m + 2 * outputs * q1 * q1 + m * q1
    statistics = 0
    if (
        in_memory
        and k == 2
        and params.l1 == 0
        and params.l2 == 0
        and not weighted
        and q1 <= MAX_COEFFICIENTS
    ):
        statistics = STATISTICS_COPIES * n * q1 + 3 * q1 * q1
    return FitFootprint(
        solver=solver,
        design=_FLOAT * design,
        outputs=_FLOAT * ROW_OUTPUT_ARRAYS * n * outputs,
        coefficients=_FLOAT * (COEF_ARRAYS * outputs * q1 + HISTORY_POINTS),
        hessian=_FLOAT * hessian,
        statistics=_FLOAT * statistics,
    )


def _hessian(rows: int, q1: int, outputs: int, *, multinomial: bool) -> int:
    """Numbers in Newton's matrices: one (q1, q1) block per output, its factor and the step's
    work (proximal Newton's inner solves: measured ~5 blocks); multinomial, the rows' weights
    for every pair of classes, a Gram matrix per pair and the full matrix."""
    if not multinomial:
        return 6 * outputs * q1 * q1
    pairs = outputs * (outputs + 1) // 2
    return rows * pairs + pairs * q1 * q1 + 3 * (outputs * q1) ** 2
