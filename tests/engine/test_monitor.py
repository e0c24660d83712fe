"""A fit's monitor (``FitParams.monitor``): told of every iteration and of the blocks of a long
pass, able to stop the fit by raising, and without effect on the result."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine import FitParams, fit
from tests.conftest import make_blobs


class Stop(Exception):
    pass


class Recorder:
    def __init__(self, stop_after: int | None = None) -> None:
        self.iterations: list[tuple[int, float, float]] = []
        self.blocks: list[int] = []
        self.stop_after = stop_after

    def iteration(self, iteration: int, loss: float, grad_norm: float) -> None:
        self.iterations.append((iteration, loss, grad_norm))
        if self.stop_after is not None and len(self.iterations) > self.stop_after:
            raise Stop  # whatever the monitor raises comes out of fit as it is

    def block(self, rows: int) -> None:
        self.blocks.append(rows)


CASES = [
    {"solver": "gd", "max_iter": 200},
    {"solver": "lbfgs"},
    {"solver": "newton"},
    {"solver": "gd", "l1": 0.01, "max_iter": 200},  # proximal gradient
    {"solver": "newton", "l1": 0.01},  # proximal Newton
    {"solver": "auto", "l1": 0.01, "multiclass": "multinomial"},
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: "-".join(map(str, p.values())))
def test_every_iteration_is_told_and_the_result_is_unchanged(params):
    X, y = make_blobs(n=300, d=4, k=3 if "multiclass" in params else 2, seed=3)
    plain = fit(X, y, params=FitParams(tol=1e-8, **params))
    recorder = Recorder()
    watched = fit(X, y, params=FitParams(tol=1e-8, monitor=recorder, **params))
    assert np.array_equal(watched.model.coef, plain.model.coef)
    steps = [it for it, _, _ in recorder.iterations if it > 0]
    assert len(steps) == plain.report.iterations
    last = recorder.iterations[-1]
    assert last[2] == pytest.approx(plain.report.grad_norm)


def test_raising_stops_the_fit():
    X, y = make_blobs(n=300, d=4, seed=1)
    recorder = Recorder(stop_after=5)
    with pytest.raises(Stop):
        fit(X, y, params=FitParams(solver="gd", max_iter=10_000, tol=0, monitor=recorder))
    assert len(recorder.iterations) == 6


def test_a_hessian_tells_its_row_blocks():
    X, y = make_blobs(n=40_000, d=3, seed=2)
    recorder = Recorder()
    fit(X, y, params=FitParams(solver="newton", monitor=recorder))
    assert recorder.blocks and max(recorder.blocks) < 40_000
