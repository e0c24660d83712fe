"""Seeded data factories and an app wired to a temporary model folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.main import create_app
from tests.asgi_client import ASGIClient
from tests.pg import PostgresCluster, find_bin


def make_blobs(
    *, n: int = 200, d: int = 3, k: int = 2, seed: int = 0, spread: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``k`` Gaussian clusters in ``d`` dimensions with overlapping tails; labels 0..k-1."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    y[:k] = np.arange(k)  # every class present
    X = centers[y] + rng.normal(scale=spread, size=(n, d))
    return X, y


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the whole run, started by the first test that needs it."""
    bin_dir = find_bin()
    if bin_dir is None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":  # .ci/run: a skip would hide the store
            pytest.fail("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")
        pytest.skip("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")
    cluster = PostgresCluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    """The URL of a new, empty database of the run's cluster."""
    return pg_cluster.new_database()


def store_url_for(request: pytest.FixtureRequest) -> str | None:
    """What ``MODEL_STORE_URL`` a test parametrised with ``"folder"`` / ``"postgres"`` uses."""
    kind = getattr(request, "param", "folder")
    return request.getfixturevalue("pg_url") if kind == "postgres" else None


#: The stores a parametrised test runs against.
STORES = ["folder", "postgres"]


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> str | None:
    """``MODEL_STORE_URL`` for ``settings``: the folder store unless a module overrides this
    fixture with ``params=STORES`` (see tests/api/test_lifecycle.py)."""
    return store_url_for(request)


@pytest.fixture
def settings(tmp_path: Path, store_url: str | None) -> Settings:
    return Settings(model_store_dir=tmp_path / "models", model_store_url=store_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[ASGIClient]:
    app = create_app(settings)
    c = ASGIClient(app)
    yield c
    c.close()
    app.state.service.store.close()


def train(client: ASGIClient, X: np.ndarray, y: list, **extra: object) -> dict:
    r = client.post("/train", json={"features": np.asarray(X).tolist(), "labels": y, **extra})
    assert r.status_code == 201, r.text
    return r.json()


#: Counts that fault, load and fuzz tests record (``record_figures``), printed at the end of the
#: run so that CI logs carry them (trainings acknowledged and killed, fuzz cases, ...).
FIGURES: list[tuple[str, dict[str, object]]] = []


def record_figures(name: str, **counts: object) -> None:
    FIGURES.append((name, counts))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("figures")
        for name, counts in FIGURES:
            shown = ", ".join(f"{k}={v}" for k, v in counts.items())
            terminalreporter.write_line(f"{name}: {shown}")
