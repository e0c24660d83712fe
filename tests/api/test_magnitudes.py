"""Extreme magnitudes through HTTP (issue 12, item 3): any finite column whose standardised
values are representable trains, to the model its unit-scaled copy gives; what cannot be
represented is a 422 that gives the true reason and stores nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.asgi_client import ASGIClient

LINE = [[1.0], [2.0], [3.0], [4.0]]
LABELS = [0, 0, 1, 1]
# Overlapping classes: a finite optimum that every solver reaches, whatever the scale.
OVERLAP = [[0.0, 1.0], [1.0, 3.0], [2.0, 0.5], [3.0, 2.0], [4.0, 4.5], [5.0, 3.5]]
OVERLAP_LABELS = [0, 0, 1, 0, 1, 1]


def trained(client: ASGIClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/train", json=body)
    assert r.status_code == 201, r.text
    return client.get(f"/models/{r.json()['id']}").json()


def scaled(rows: list[list[float]], factor: float) -> list[list[float]]:
    return [[v * factor for v in row] for row in rows]


@pytest.mark.parametrize("factor", [1e-160, 1e-300, 1e-310, 1e154, 1e160, 1e300])
def test_a_column_of_extreme_magnitude_trains_as_its_unit_scaled_copy(client, factor):
    """Was: 1e-160 trained a constant model (coefficient 0, accuracy 0.5: squares underflowed),
    and from 1e154 on a 422 "values too large" (squares overflowed)."""
    unit = trained(client, {"features": OVERLAP, "labels": OVERLAP_LABELS})
    model = trained(client, {"features": scaled(OVERLAP, factor), "labels": OVERLAP_LABELS})
    assert model["training"]["converged"] and model["training"]["accuracy"] == 5 / 6
    a, b = unit["parameters"], model["parameters"]
    np.testing.assert_allclose(b["coef"], a["coef"], rtol=1e-6)
    np.testing.assert_allclose(b["intercept"], a["intercept"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(b["scale"], np.multiply(a["scale"], factor), rtol=1e-12)
    answers = []
    for m, rows in ((unit, OVERLAP), (model, scaled(OVERLAP, factor))):
        r = client.post("/predict", json={"model_id": m["id"], "features": rows})
        assert r.status_code == 200, r.text
        answers.append(r.json())
    assert answers[1]["predictions"] == answers[0]["predictions"]
    np.testing.assert_allclose(answers[1]["probabilities"], answers[0]["probabilities"], rtol=1e-9)


def test_the_issue_reproduction_1e_160_is_no_longer_a_constant_model(client):
    model = trained(client, {"features": scaled(LINE, 1e-160), "labels": LABELS})
    assert model["training"]["accuracy"] == 1.0
    assert model["training"]["iterations"] > 0 and model["parameters"]["coef"][0][0] > 0


def test_values_near_1e308_of_both_signs_train(client):
    """Was a 422 "values too large": the column's sum and squares overflowed."""
    body = {"features": [[1e308, 1.0], [-1e308, 0.0], [2.0, 2.0], [3.0, 3.0]], "labels": LABELS}
    model = trained(client, body)
    assert np.isfinite(model["parameters"]["scale"]).all()
    np.testing.assert_allclose(model["parameters"]["scale"][0], 1e308 / np.sqrt(2), rtol=1e-12)


@pytest.mark.parametrize("solver", ["auto", "gd", "newton", "lbfgs"])
@pytest.mark.parametrize("top", [1e160, 1e308])
def test_without_standardisation_too_large_values_are_a_422_with_the_reason(client, solver, top):
    """Was a 201 model that ran 0 iterations, or (gd) "learning_rate=1 is too large" when no
    learning rate was sent."""
    features = [[top / 4], [top / 2], [top * 0.75], [top]]
    params = {"standardize": False, "solver": solver}
    r = client.post("/train", json={"features": features, "labels": LABELS, "params": params})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("features: column 0") and "params.standardize" in detail, detail
    assert "learning_rate" not in detail
    assert client.get("/models").json()["total"] == 0


def test_without_standardisation_large_but_representable_values_train(client):
    body = {"features": scaled(OVERLAP, 1e100), "labels": OVERLAP_LABELS}
    model = trained(client, {**body, "params": {"standardize": False, "l2": 0}})
    assert model["training"]["accuracy"] == 5 / 6


@pytest.mark.parametrize(
    ("extra", "reference"),
    [
        ({"sample_weight": [1e308, 1e308, 5e307, 5e307, 1e308, 1e308]}, {"sample_weight": [2, 2, 1, 1, 2, 2]}),  # noqa: E501
        ({"sample_weight": [1e-320, 1e-320, 5e-321, 5e-321, 1e-320, 1e-320]}, {"sample_weight": [2, 2, 1, 1, 2, 2]}),  # noqa: E501
        ({"params": {"class_weight": {"0": 1e308, "1": 5e307}}}, {"params": {"class_weight": {"0": 2, "1": 1}}}),  # noqa: E501
        (
            {"sample_weight": [1e308] * 6, "params": {"class_weight": {"0": 1e308, "1": 2e307}}},
            {"params": {"class_weight": {"0": 5, "1": 1}}},
        ),
    ],
)  # fmt: skip
def test_huge_or_tiny_weights_count_relative_to_each_other(client, extra, reference):
    """Was a 201 with loss 0 after 0 iterations (the weights' sum overflowed), or a 422 naming
    "features". Weights enter a weighted mean, so only their ratios matter."""
    base = {"features": OVERLAP, "labels": OVERLAP_LABELS}
    model = trained(client, {**base, **extra})
    ref = trained(client, {**base, **reference})
    assert model["training"]["iterations"] > 0 and model["training"]["converged"]
    np.testing.assert_allclose(model["training"]["loss"], ref["training"]["loss"], rtol=1e-9)
    np.testing.assert_allclose(model["parameters"]["coef"], ref["parameters"]["coef"], rtol=1e-6)
