"""A row's answer never depends on the rows beside it, nor on the CPU: the same status and, when
it is scored, the same probabilities to the last bit, alone or in any batch (the probabilities of a
few rows, on Python floats, included). This is what every front end (JSON, CSV, /v2) relies on;
tests/api/test_one_answer.py holds them to it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from app.engine import FitParams, InvalidData, fit
from app.engine.model import SMALL_BATCH

#: Rows with ordinary values, and values so large that some rows' scores overflow.
VALUES = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False),
    st.floats(-1.7e308, 1.7e308, allow_nan=False, allow_infinity=False),
)


@st.composite
def models(draw):
    n_features = draw(st.integers(1, 5))
    n_classes = draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(size=(40, n_features)) * 10.0 ** rng.uniform(-2, 2, size=n_features)
    y = rng.integers(0, n_classes, size=40)
    y[:n_classes] = np.arange(n_classes)
    params = FitParams(
        multiclass=draw(st.sampled_from(["ovr", "multinomial"])),
        polynomial_degree=draw(st.integers(1, 2)),
        standardize=draw(st.booleans()),
        max_iter=30,
    )
    with np.errstate(over="ignore", under="ignore"):
        return fit(X, y, params=params).model


def answer(model, X, threshold=None):
    """``("ok", probabilities, indices)`` or ``("refused", message)``."""
    try:
        proba, index = model.classify(X, threshold=threshold)
    except InvalidData as exc:
        return ("refused", str(exc))
    return ("ok", proba, index)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(model=models(), data=st.data())
def test_a_row_alone_and_in_any_batch_gets_the_same_answer(model, data):
    w = model.n_features
    n = data.draw(st.integers(1, 2 * SMALL_BATCH + 3), label="rows")
    X = data.draw(arrays(np.float64, (n, w), elements=VALUES), label="X")
    threshold = data.draw(st.sampled_from([None, 0.3])) if model.multiclass == "binary" else None
    alone = [answer(model, X[i : i + 1], threshold) for i in range(n)]
    batch = answer(model, X, threshold)
    refused = [i for i, a in enumerate(alone) if a[0] == "refused"]
    if refused:
        # the batch is refused, naming its first row that is refused alone
        assert batch[0] == "refused"
        assert batch[1].startswith(f"features[{refused[0]}]: ")
        return
    assert batch[0] == "ok"
    for i, a in enumerate(alone):
        assert a[1].tobytes() == batch[1][i].tobytes()
        assert a[2][0] == batch[2][i]


@pytest.mark.parametrize("n", [1, 2, SMALL_BATCH, SMALL_BATCH + 1, 200])
def test_a_score_that_overflows_is_refused_in_every_batch(n):
    """The report that opened issue 11: alone, this row was class 1 at probability 1.0; beside
    another row, class 0. Both terms of its score overflow, one to +inf and one to -inf."""
    model = fit(np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.5]]), [0, 0, 1, 1]).model
    X = np.ones((n, 2))
    X[n - 1] = [1.7e308, -1.7e308]
    with pytest.raises(InvalidData, match=rf"^features\[{n - 1}\]: values too large"):
        model.classify(X)


def test_small_and_large_batches_give_the_same_bits():
    """Python floats for the probabilities of up to SMALL_BATCH rows, NumPy above; the scores
    of a large batch are computed without the GIL: a row's bits are the same in every case."""
    rng = np.random.default_rng(7)
    n = 6000  # 6000 rows x 12 columns x 1-4 outputs: past _scores.c's NOGIL_WORK
    X = rng.normal(size=(n, 12)) * 10.0 ** rng.uniform(-3, 3, size=12)
    cases = (("ovr", 2, 1), ("ovr", 3, 1), ("multinomial", 4, 1), ("ovr", 2, 2))
    for multiclass, k, degree in cases:
        y = rng.integers(0, k, size=n)
        params = FitParams(multiclass=multiclass, polynomial_degree=degree, max_iter=20)
        with np.errstate(over="ignore", under="ignore"):
            model = fit(X, y, params=params).model
        many = model.predict_proba(X)
        for block in (1, SMALL_BATCH, SMALL_BATCH + 1, 256, 4999):
            parts = [model.predict_proba(X[i : i + block]) for i in range(0, n, block)]
            assert np.vstack(parts).tobytes() == many.tobytes(), (multiclass, k, degree, block)
