"""``store``: each test that takes it runs against the folder store and against PostgreSQL (a new
database of the run's cluster): one contract, two stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model_store import ModelStore, open_store
from tests.conftest import STORES, store_url_for


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ModelStore]:
    opened = open_store(store_url_for(request), tmp_path / "models")
    yield opened
    opened.close()
