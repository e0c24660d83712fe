"""Schemathesis fuzzes every operation of the app's own OpenAPI schema: no 5xx, and every answer
conforms to what the schema documents (status codes, content type, body schema)."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import positive_data_acceptance

from app.config import Settings
from app.main import create_app
from app.schemas import EXAMPLE_ID
from tests.conftest import record_figures

#: Bounded: the whole module stays well under a minute on a shared 2-core machine.
EXAMPLES_PER_OPERATION = 60
CASES: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


KEY = "fuzz-key-0123456789"


def fuzz_app(tmp_path_factory, **extra):
    settings = Settings(
        model_store_dir=tmp_path_factory.mktemp("fuzz") / "models",
        max_rows=500,
        max_features=50,
        max_iter=500,
        train_time_budget=0.5,
        **extra,
    )
    app = create_app(settings)
    # a model under the id the schema's examples use, so examples reach the success paths
    service = app.state.service
    from app.schemas import TrainRequest

    summary = service.train(
        TrainRequest(features=[[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], labels=["a", "b", "a"])
    )
    record = service.store.load(summary.id)
    service.store.save({**record, "id": EXAMPLE_ID})
    return app


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    yield schemathesis.openapi.from_asgi("/openapi.json", fuzz_app(tmp_path_factory))
    record_figures(
        "fuzz",
        cases=sum(CASES.values()),
        operations=len(CASES),
        statuses=dict(sorted(STATUSES.items())),
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_conforms_to_its_schema(case):
    # positive_data_acceptance is left out on purpose: the schema cannot express cross-field
    # rules (one label per row, at least two classes, the configured limits), so most
    # schema-valid random bodies are rightly refused with a 422 that names the rule.
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
    CASES[case.operation.label] += 1
    STATUSES[response.status_code] += 1
    assert response.status_code < 500


AUTH_STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def locked_schema(tmp_path_factory):
    app = fuzz_app(tmp_path_factory, api_key=KEY)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    record_figures(
        "fuzz with API_KEY set",
        cases=sum(AUTH_STATUSES.values()),
        statuses=dict(sorted(AUTH_STATUSES.items())),
    )


locked = schemathesis.pytest.from_fixture("locked_schema")


@locked.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION // 6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_with_an_api_key_every_operation_conforms_too(case):
    """With the key the answers conform as above; without it (the ignored_auth check, and a
    plain call) every protected operation answers its documented 401."""
    with_key = case.call_and_validate(
        headers={"X-API-Key": KEY}, excluded_checks=[positive_data_acceptance]
    )
    without = case.call(headers={"X-API-Key": "wrong"})
    case.validate_response(without, excluded_checks=[positive_data_acceptance])
    AUTH_STATUSES[with_key.status_code] += 1  # one case, two calls: counted once
    assert with_key.status_code < 500
    if case.path == "/health":
        assert without.status_code != 401
    else:
        assert without.status_code == 401
