"""Hypothesis properties of the store: any JSON record survives save and load exactly, and any
damage to a saved file is detected."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_store import CorruptModel, JsonFileStore, new_model_id

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=8), inner, max_size=5
        )
    ),
    max_leaves=30,
)
RECORDS = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda k: k not in ("id", "checksum", "schema_version")),
    JSON,
    max_size=6,
)
FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


def same(a, b) -> bool:
    """Equality that tells -0.0 from 0.0 and 1 from 1.0 (the file must keep both)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@FIXTURE_OK
@given(body=RECORDS)
def test_any_record_round_trips_exactly(store, body):
    record = {"id": new_model_id(), **body}
    store.save(record)
    assert same(store.load(record["id"]), record)


@FIXTURE_OK
@given(body=RECORDS, where=st.floats(0, 1, exclude_max=True), byte=st.integers(0, 255))
def test_any_change_to_a_saved_file_is_detected(tmp_path, body, where, byte):
    store = JsonFileStore(tmp_path)
    record = {"id": new_model_id(), **body}
    store.save(record)
    path = store.path(record["id"])
    data = bytearray(path.read_bytes())
    i = int(where * len(data))
    if data[i] == byte:
        return
    data[i] = byte
    path.write_bytes(bytes(data))
    try:
        loaded = store.load(record["id"])
    except CorruptModel:
        return
    # a change that keeps the same JSON meaning (whitespace, an escaped character) is harmless
    assert same(loaded, record)


@pytest.mark.parametrize("cut", [1, 10, 100])
def test_truncations_are_detected(tmp_path, cut):
    store = JsonFileStore(tmp_path)
    record = {"id": new_model_id(), "w": [0.1] * 50}
    store.save(record)
    path = store.path(record["id"])
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(CorruptModel):
        store.load(record["id"])
