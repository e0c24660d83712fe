"""The CSV module on its own: exact round trips, and line numbers as an editor counts them."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from app import csv_io

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 4)), elements=finite))
def test_numbers_round_trip_exactly(X):
    names = [f"x{j}" for j in range(X.shape[1])]
    out = io.StringIO()
    csv.writer(out).writerows([names, *X.tolist()])  # str(float) is the shortest round trip
    back = csv_io.read_features(out.getvalue().encode(), n_features=X.shape[1], feature_names=names)
    np.testing.assert_array_equal(back, X)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b, c", 'say "hi"', "ü"]), finite, finite),
        min_size=1,
        max_size=6,
    )
)
def test_written_predictions_read_back_exactly(rows):
    labels = [r[0] for r in rows]
    proba = np.array([[r[1], r[2]] for r in rows])
    text = csv_io.write_predictions(["k1", "k2"], labels, proba).decode()
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["prediction", "proba_k1", "proba_k2"]
    assert [r[0] for r in table[1:]] == labels
    np.testing.assert_array_equal([[float(v) for v in r[1:]] for r in table[1:]], proba)


def test_line_numbers_count_blank_lines_and_the_header():
    body = b"a,b,y\n\n1,2,x\n\n\n3,oops,y\n"
    with pytest.raises(csv_io.CsvError, match=r"^line 6, column 2 \('b'\): 'oops'"):
        csv_io.read_training(body)


def test_integer_labels_need_every_label_to_be_an_integer():
    t = csv_io.read_training(b"x,y\n1,-2\n2,+3\n3,10\n")
    assert t.labels == [-2, 3, 10] and t.feature_names == ["x"] and t.label_name == "y"
    assert csv_io.read_training(b"x,y\n1,2\n2,3a\n").labels == ["2", "3a"]


def test_label_column_anywhere():
    t = csv_io.read_training(b"y,a,b\nu,1,2\nv,3,4\n", label="y")
    np.testing.assert_array_equal(t.X, [[1, 2], [3, 4]])
    assert t.labels == ["u", "v"] and t.feature_names == ["a", "b"]
