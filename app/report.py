"""The report of ``GET /models/{ref}/report``: Vega-Lite specifications built from a model's
record, its engine model and its latest evaluation. No web, no I/O: plain dicts out, which the
page (``app/api/report.py``) hands to vega-embed.

Charts: the coefficients (with their 95% intervals when statistics were computed), the training
loss by iteration, the latest evaluation's ROC curves, calibration and confusion matrix, and for
a model of two input features its predicted class over the training range (the boundary is
where the colour changes, curved for a polynomial model).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model_store import Record

from .engine import LogisticModel
from .engine.profile import InputProfile
from .records import design_names

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
#: Points per axis of the decision-boundary grid (GRID x GRID predictions).
GRID = 60
WIDTH, HEIGHT = 420, 300


def _chart(title: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": SCHEMA, "title": title, "width": WIDTH, "height": HEIGHT, **spec}


def _label(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def coefficients_chart(record: Record) -> dict[str, Any]:
    """One point per coefficient (and class); with statistics, its 95% interval as a rule."""
    stats = record.get("statistics")
    if stats is not None:
        rows = [
            {"term": r["name"], "coef": r["coef"], "lower": r["ci_lower"], "upper": r["ci_upper"]}
            for r in stats["coefficients"]
            if r["coef"] is not None
        ]
        layers: list[dict[str, Any]] = [
            {
                "mark": {"type": "rule"},
                "encoding": {
                    "y": {"field": "term", "type": "nominal", "sort": None, "title": None},
                    "x": {"field": "lower", "type": "quantitative", "title": "coefficient"},
                    "x2": {"field": "upper"},
                },
            },
            {
                "mark": {"type": "point", "filled": True, "size": 60},
                "encoding": {
                    "y": {"field": "term", "type": "nominal", "sort": None},
                    "x": {"field": "coef", "type": "quantitative"},
                    "tooltip": [{"field": f} for f in ("term", "coef", "lower", "upper")],
                },
            },
        ]
        title = "Coefficients with 95% intervals (input units)"
    else:
        m = record["model"]
        names = design_names(record)
        classes = m["classes"]
        outputs = [classes[1]] if m["multiclass"] == "binary" else classes
        rows = [
            {"term": name, "coef": w, "class": _label(c)}
            for c, coef in zip(outputs, m["coef"], strict=True)
            for name, w in zip(names, coef, strict=True)
        ]
        layers = [
            {
                "mark": {"type": "point", "filled": True, "size": 60},
                "encoding": {
                    "y": {"field": "term", "type": "nominal", "sort": None, "title": None},
                    "x": {"field": "coef", "type": "quantitative", "title": "coefficient"},
                    "color": {"field": "class", "type": "nominal"},
                    "tooltip": [{"field": f} for f in ("term", "class", "coef")],
                },
            }
        ]
        scaled = " (standardised columns)" if m["mean"] is not None else ""
        title = f"Coefficients{scaled}; no intervals: {record.get('statistics_note') or 'none'}"
    zero = {
        "data": {"values": [{}]},  # one rule, not one per row of the chart's data
        "mark": {"type": "rule", "color": "#999"},
        "encoding": {"x": {"datum": 0}},
    }
    return _chart(title, {"data": {"values": rows}, "layer": [zero, *layers]})


def loss_chart(record: Record) -> dict[str, Any]:
    history = record["training"]["loss_history"]
    values = [{"step": i, "loss": v} for i, v in enumerate(history)]
    return _chart(
        "Training loss by iteration (thinned to ~100 points)",
        {
            "data": {"values": values},
            "mark": {"type": "line", "point": True},
            "encoding": {
                "x": {"field": "step", "type": "quantitative", "title": "recorded step"},
                "y": {"field": "loss", "type": "quantitative", "scale": {"zero": False}},
            },
        },
    )


def roc_chart(evaluation: dict[str, Any]) -> dict[str, Any]:
    values = [
        {"label": _label(c["label"]), "fpr": f, "tpr": t}
        for c in evaluation["roc_curves"]
        for f, t in zip(c["fpr"], c["tpr"], strict=True)
    ]
    auc = evaluation["roc_auc"]
    shown = "n/a" if auc is None else f"{auc:.3f}"
    return _chart(
        f"ROC curve (AUC {shown})",
        {
            "data": {"values": values},
            "layer": [
                {
                    "data": {"values": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]},
                    "mark": {"type": "line", "strokeDash": [4, 4], "color": "#999"},
                    "encoding": {
                        "x": {"field": "x", "type": "quantitative"},
                        "y": {"field": "y", "type": "quantitative"},
                    },
                },
                {
                    "mark": {"type": "line"},
                    "encoding": {
                        "x": {
                            "field": "fpr",
                            "type": "quantitative",
                            "title": "false positive rate",
                        },
                        "y": {
                            "field": "tpr",
                            "type": "quantitative",
                            "title": "true positive rate",
                        },
                        "color": {"field": "label", "type": "nominal"},
                        "order": {"field": "fpr"},
                    },
                },
            ],
        },
    )


def calibration_chart(evaluation: dict[str, Any]) -> dict[str, Any]:
    values = [{**b, "label": _label(b["label"])} for b in evaluation["calibration"]]
    return _chart(
        "Calibration (10 bins of predicted probability)",
        {
            "layer": [
                {
                    "data": {"values": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]},
                    "mark": {"type": "line", "strokeDash": [4, 4], "color": "#999"},
                    "encoding": {
                        "x": {"field": "x", "type": "quantitative"},
                        "y": {"field": "y", "type": "quantitative"},
                    },
                },
                {
                    "data": {"values": values},
                    "mark": {"type": "line", "point": True},
                    "encoding": {
                        "x": {
                            "field": "mean_predicted",
                            "type": "quantitative",
                            "title": "mean predicted probability",
                            "scale": {"domain": [0, 1]},
                        },
                        "y": {
                            "field": "fraction_positive",
                            "type": "quantitative",
                            "title": "fraction positive",
                            "scale": {"domain": [0, 1]},
                        },
                        "color": {"field": "label", "type": "nominal"},
                        "tooltip": [
                            {"field": f}
                            for f in ("label", "count", "mean_predicted", "fraction_positive")
                        ],
                    },
                },
            ],
        },
    )


def confusion_chart(evaluation: dict[str, Any]) -> dict[str, Any]:
    cm = evaluation["confusion_matrix"]
    labels = [_label(v) for v in cm["labels"]]
    values = [
        {"true": labels[i], "predicted": labels[j], "count": n}
        for i, row in enumerate(cm["matrix"])
        for j, n in enumerate(row)
    ]
    axis = {"type": "nominal", "sort": labels}
    return _chart(
        "Confusion matrix (rows: true class)",
        {
            "data": {"values": values},
            "encoding": {
                "x": {"field": "predicted", **axis},
                "y": {"field": "true", **axis},
            },
            "layer": [
                {
                    "mark": {"type": "rect"},
                    "encoding": {"color": {"field": "count", "type": "quantitative"}},
                },
                {
                    "mark": {"type": "text", "color": "black"},
                    "encoding": {"text": {"field": "count", "type": "quantitative"}},
                },
            ],
        },
    )


def boundary_chart(model: LogisticModel, profile: InputProfile, names: list[str]) -> dict[str, Any]:
    """The predicted class over a ``GRID`` x ``GRID`` grid spanning the training range of a
    two-feature model, shaded by its probability: the boundary is where the class changes."""
    lo, hi = profile.minimum, profile.maximum
    pad = np.where(hi > lo, (hi - lo) * 0.05, 1.0)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], GRID)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], GRID)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    proba, index = model.classify(grid)
    labels = [_label(c) for c in model.classes]
    dx, dy = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    # compact rows (the page carries GRID^2 of them); the cells' far corners are computed there
    values = [
        {"x": x, "y": y, "k": k, "p": round(p, 3)}
        for x, y, k, p in zip(
            grid[:, 0].tolist(),
            grid[:, 1].tolist(),
            index.tolist(),
            proba.max(axis=1).tolist(),
            strict=True,
        )
    ]
    lookup = {
        "lookup": "k",
        "from": {
            "data": {"values": [{"k": k, "class": label} for k, label in enumerate(labels)]},
            "key": "k",
            "fields": ["class"],
        },
    }
    box = [
        {"x": float(lo[0]), "y": float(lo[1]), "x2": float(hi[0]), "y2": float(hi[1])},
    ]
    return _chart(
        "Predicted class over the training range (the decision boundary is where it changes)",
        {
            "layer": [
                {
                    "data": {"values": values},
                    "transform": [
                        lookup,
                        {"calculate": f"datum.x + {dx!r}", "as": "x2"},
                        {"calculate": f"datum.y + {dy!r}", "as": "y2"},
                    ],
                    "mark": {"type": "rect"},
                    "encoding": {
                        "x": {"field": "x", "type": "quantitative", "title": names[0]},
                        "x2": {"field": "x2"},
                        "y": {"field": "y", "type": "quantitative", "title": names[1]},
                        "y2": {"field": "y2"},
                        "color": {"field": "class", "type": "nominal", "sort": labels},
                        "opacity": {
                            "field": "p",
                            "type": "quantitative",
                            "scale": {"domain": [1 / len(labels), 1], "range": [0.15, 0.9]},
                            "legend": None,
                        },
                    },
                },
                {
                    "data": {"values": box},
                    "mark": {"type": "rect", "fillOpacity": 0, "stroke": "black"},
                    "encoding": {
                        "x": {"field": "x", "type": "quantitative"},
                        "x2": {"field": "x2"},
                        "y": {"field": "y", "type": "quantitative"},
                        "y2": {"field": "y2"},
                    },
                },
            ]
        },
    )


def build(
    record: Record,
    model: LogisticModel,
    profile: InputProfile | None,
    evaluation: dict[str, Any] | None,
) -> dict[str, Any]:
    """``{"summary": [(label, value)...], "charts": [{"id", "spec"}...], "notes": [...]}``."""
    t = record["training"]
    names = record.get("feature_names") or [f"x{i}" for i in range(record["n_features"])]
    poly = record["model"].get("polynomial")
    summary: list[tuple[str, str]] = [
        ("id", record["id"]),
        ("name", "" if record.get("name") is None else f"{record['name']}:{record.get('version')}"),
        ("created", record["created_at"]),
        ("classes", ", ".join(_label(c) for c in record["model"]["classes"])),
        ("features", ", ".join(names)),
        (
            "kind",
            record["model"]["multiclass"]
            + (f", polynomial degree {poly['degree']}" if poly else ""),
        ),
        ("solver", f"{t['solver']}, {t['iterations']} iterations, converged: {t['converged']}"),
        ("training rows", str(t["n_samples"])),
        ("training loss", f"{t['loss']:.6g}"),
        ("training accuracy", f"{t['accuracy']:.4f}"),
    ]
    charts = [
        {"id": "coefficients", "spec": coefficients_chart(record)},
        {"id": "loss", "spec": loss_chart(record)},
    ]
    notes: list[str] = []
    if evaluation is not None:
        summary += [
            ("latest evaluation", f"{evaluation['evaluated_at']} on {evaluation['n']} rows"),
            ("accuracy", f"{evaluation['accuracy']:.4f}"),
            ("log loss", f"{evaluation['log_loss']:.6g}"),
            ("ROC AUC", "n/a" if evaluation["roc_auc"] is None else f"{evaluation['roc_auc']:.4f}"),
            ("Brier", f"{evaluation['brier']:.6g}"),
        ]
        if evaluation["roc_curves"]:
            charts.append({"id": "roc", "spec": roc_chart(evaluation)})
        charts.append({"id": "calibration", "spec": calibration_chart(evaluation)})
        charts.append({"id": "confusion", "spec": confusion_chart(evaluation)})
    else:
        notes.append(
            "No evaluation yet: POST /models/{ref}/evaluate with labelled rows adds the ROC "
            "curve, the calibration curve and the confusion matrix here."
        )
    if record["n_features"] == 2 and profile is not None:
        charts.append({"id": "boundary", "spec": boundary_chart(model, profile, names)})
    elif record["n_features"] == 2:
        notes.append("No decision boundary: the model was stored before training ranges were.")
    return {"summary": summary, "charts": charts, "notes": notes}
