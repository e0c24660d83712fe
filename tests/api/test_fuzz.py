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


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    settings = Settings(
        model_store_dir=tmp_path_factory.mktemp("fuzz") / "models",
        max_rows=500,
        max_features=50,
        max_iter=500,
        train_time_budget=0.5,
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
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
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
