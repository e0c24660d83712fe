"""``encode_labels``: every label kept exactly as given (issue 12, items 1, 2 and 14)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine import InvalidData, fit
from app.engine.model import encode_labels


def test_strings_that_differ_only_by_trailing_nuls_are_distinct_classes():
    labels = ["a", "a\x00", "a\x00\x00", "\x00", "b", "a"]
    classes, index = encode_labels(labels)
    assert classes == ("\x00", "a", "a\x00", "a\x00\x00", "b")
    assert [classes[i] for i in index] == labels


def test_a_model_predicts_a_nul_label_exactly():
    model = fit([[0.0], [1.0], [2.0], [3.0]], ["\x00", "\x00", "x\x00", "x\x00"]).model
    assert model.classes == ("\x00", "x\x00")
    assert model.predict([[0.0], [3.0]]) == ["\x00", "x\x00"]


def test_a_single_class_is_named_with_its_nuls():
    with pytest.raises(InvalidData, match=r"got only 'a\\x00'"):
        encode_labels(["a\x00", "a\x00"])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.text(alphabet="a\x00\x01 é", max_size=4), min_size=2, max_size=30))
def test_string_labels_round_trip_exactly_in_code_point_order(labels):
    if len(set(labels)) < 2:
        return
    classes, index = encode_labels(labels)
    assert list(classes) == sorted(set(labels))  # Python's order: code points, as np.unique
    assert [classes[i] for i in index] == labels
    assert index.dtype == np.intp


# ---- item 14: floats and booleans -----------------------------------------------------------


def test_whole_number_floats_are_integer_classes():
    for y in ([0.0, 1.0, 1.0, 0.0], np.array([0.0, 1.0, 1.0, 0.0]), [0, 1.0, 1, 0.0]):
        classes, index = encode_labels(y)
        assert classes == (0, 1) and all(type(c) is int for c in classes)
        assert index.tolist() == [0, 1, 1, 0]


def test_booleans_are_boolean_classes():
    for y in ([False, True, True], np.array([False, True, True])):
        classes, index = encode_labels(y)
        assert classes == (False, True) and all(type(c) is bool for c in classes)
        assert index.tolist() == [0, 1, 1]
    model = fit([[0.0], [1.0], [2.0], [3.0]], [True, True, False, False]).model
    assert model.predict([[0.0], [3.0]]) == [True, False]


@pytest.mark.parametrize(
    ("y", "match"),
    [
        ([0.0, 1.0, 0.5], r"^labels\[2\]: 0\.5 is not a class label"),
        (np.array([0.0, np.nan, 1.0]), r"^labels\[1\]: nan is not a class label"),
        ([0, 1, True], r"^labels: must be all integers, all strings or all booleans"),
        ([0.0, 1.0, 1e300], r"^labels\[2\]: 1e\+300 is out of range"),
    ],
)
def test_labels_that_are_not_classes_are_named(y, match):
    with pytest.raises(InvalidData, match=match):
        encode_labels(y)
