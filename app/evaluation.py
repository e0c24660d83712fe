"""How good a model is on labelled rows: the metrics of ``POST /models/{ref}/evaluate``.

NumPy only, no web, no files: probabilities and true labels in, a plain dict out. Each number is
defined as ``sklearn.metrics`` defines it (tests compare them within 1e-9), but the service
never imports scikit-learn or SciPy at runtime (their thread pools fight NumPy's on 2 cores:
docs/DEVELOPING.md).

Conventions (those of scikit-learn):

- binary metrics (``roc_auc``, ``average_precision``, ``brier``, the calibration and the ROC
  curve) are about ``positive``, by default ``classes[1]``;
- multi-class: ``roc_auc`` is the macro mean of the one-vs-rest AUCs, ``roc_auc_weighted`` their
  mean weighted by each class's share of the rows, ``average_precision`` the macro mean, and
  ``brier`` the mean over rows of ``sum_k (p_k - [y = k])^2`` (not halved);
- ``log_loss`` clips probabilities to ``[eps, 1 - eps]`` (``eps`` of float64);
- precision, recall and F1 of a class with nothing predicted (or no rows) are 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Calibration bins: ``[0, 0.1], (0.1, 0.2], ...`` as ``sklearn.calibration.calibration_curve``
#: (``strategy="uniform"``) cuts them.
CALIBRATION_BINS = 10
#: The ROC curves kept with an evaluation have at most this many points (for the report).
ROC_POINTS = 101
#: Unknown labels named in the 422 (the rest counted).
MAX_LISTED_LABELS = 20


def label_key(value: Any) -> tuple[str, Any]:
    """A dict key that tells ``True`` from ``1`` (equal, with one hash, in Python)."""
    return (type(value).__name__, value)


def encode_true_labels(
    classes: Sequence[Any], labels: Sequence[Any]
) -> tuple[np.ndarray, list[Any]]:
    """The index into ``classes`` of each label, and the labels ``classes`` lacks (distinct, in
    order of first appearance; empty when all are known)."""
    position = {label_key(c): i for i, c in enumerate(classes)}
    index = np.empty(len(labels), dtype=np.intp)
    unknown: dict[tuple[str, Any], Any] = {}
    for i, value in enumerate(labels):
        k = position.get(label_key(value))
        if k is None:
            unknown.setdefault(label_key(value), value)
            k = -1
        index[i] = k
    return index, list(unknown.values())


def binary_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, highest first (as
    ``sklearn.metrics._binary_clf_curve``). ``y`` of shape (n,) in {0, 1}, ``score`` (n,)."""
    order = np.argsort(score, kind="mergesort")[::-1]
    s, t = score[order], y[order].astype(np.float64)
    distinct = np.flatnonzero(np.diff(s))
    ends = np.r_[distinct, len(s) - 1]
    tps = np.cumsum(t)[ends]
    fps = 1.0 + ends - tps
    return tps, fps


def roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve by the trapezoidal rule (``roc_auc_score``); ``None`` when
    ``y`` holds one class only (undefined)."""
    tps, fps = binary_curve(y, score)
    if tps[-1] == 0 or fps[-1] == 0:
        return None
    tpr = np.r_[0.0, tps] / tps[-1]
    fpr = np.r_[0.0, fps] / fps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def roc_curve(y: np.ndarray, score: np.ndarray) -> dict[str, list[float]] | None:
    """``{fpr, tpr}`` of the ROC curve, at most ``ROC_POINTS`` points (evenly chosen along it,
    ends kept); ``None`` when ``y`` holds one class only."""
    tps, fps = binary_curve(y, score)
    if tps[-1] == 0 or fps[-1] == 0:
        return None
    tpr = np.r_[0.0, tps] / tps[-1]
    fpr = np.r_[0.0, fps] / fps[-1]
    if len(tpr) > ROC_POINTS:
        keep = np.unique(np.linspace(0, len(tpr) - 1, ROC_POINTS).round().astype(np.intp))
        tpr, fpr = tpr[keep], fpr[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


def average_precision(y: np.ndarray, score: np.ndarray) -> float | None:
    """``sum_n (R_n - R_{n-1}) P_n`` over the distinct thresholds (``average_precision_score``);
    ``None`` when ``y`` has no positive row."""
    tps, fps = binary_curve(y, score)
    if tps[-1] == 0:
        return None
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def calibration(y: np.ndarray, p: np.ndarray, label: Any) -> list[dict[str, Any]]:
    """The non-empty bins of ``CALIBRATION_BINS`` equal widths over [0, 1]: each bin's
    ``count``, ``mean_predicted`` and ``fraction_positive`` (``calibration_curve``'s
    ``prob_pred`` and ``prob_true``)."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    ids = np.searchsorted(edges[1:-1], p)
    counts = np.bincount(ids, minlength=CALIBRATION_BINS)
    sums = np.bincount(ids, weights=p, minlength=CALIBRATION_BINS)
    trues = np.bincount(ids, weights=y.astype(np.float64), minlength=CALIBRATION_BINS)
    return [
        {
            "label": label,
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": int(counts[b]),
            "mean_predicted": float(sums[b] / counts[b]),
            "fraction_positive": float(trues[b] / counts[b]),
        }
        for b in range(CALIBRATION_BINS)
        if counts[b] > 0
    ]


def evaluate(
    classes: Sequence[Any],
    proba: np.ndarray,
    predicted: np.ndarray,
    true: np.ndarray,
    *,
    positive: int = 1,
) -> dict[str, Any]:
    """The metrics of ``proba`` (n, K) and ``predicted`` (n,), indices into ``classes``, against
    ``true`` (n,), indices into ``classes``. ``positive``: the index of the binary metrics'
    positive class (binary models only)."""
    n, K = proba.shape
    onehot = true[:, None] == np.arange(K)[None, :]
    eps = np.finfo(np.float64).eps
    clipped = np.clip(proba, eps, 1 - eps)
    log_loss = float(-np.mean(np.log(clipped[np.arange(n), true])))

    matrix = np.zeros((K, K), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, tp / predicted_count, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0

    out: dict[str, Any] = {
        "n": int(n),
        "log_loss": log_loss,
        "accuracy": float(np.mean(predicted == true)),
        "balanced_accuracy": float(np.mean(recall[present])),
    }
    if K == 2:
        y = (true == positive).astype(np.intp)
        p = proba[:, positive]
        out["brier"] = float(np.mean((y - p) ** 2))
        out["roc_auc"] = roc_auc(y, p)
        out["roc_auc_weighted"] = out["roc_auc"]
        out["average_precision"] = average_precision(y, p)
        out["positive_label"] = classes[positive]
        out["calibration"] = calibration(y, p, classes[positive])
        curve = roc_curve(y, p)
        out["roc_curves"] = [] if curve is None else [{"label": classes[positive], **curve}]
    else:
        out["brier"] = float(np.mean(np.sum((onehot - proba) ** 2, axis=1)))
        aucs, aps, weights, cal, curves = [], [], [], [], []
        for k in range(K):
            y = onehot[:, k].astype(np.intp)
            auc = roc_auc(y, proba[:, k])
            if auc is not None:
                aucs.append(auc)
                weights.append(support[k])
            ap = average_precision(y, proba[:, k])
            if ap is not None:
                aps.append(ap)
            cal += calibration(y, proba[:, k], classes[k])
            curve = roc_curve(y, proba[:, k])
            if curve is not None:
                curves.append({"label": classes[k], **curve})
        out["roc_auc"] = float(np.mean(aucs)) if aucs else None
        out["roc_auc_weighted"] = float(np.average(aucs, weights=weights)) if aucs else None
        out["average_precision"] = float(np.mean(aps)) if aps else None
        out["positive_label"] = None
        out["calibration"] = cal
        out["roc_curves"] = curves
    out["confusion_matrix"] = {"labels": list(classes), "matrix": matrix.tolist()}
    out["per_class"] = [
        {
            "label": classes[k],
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(support[k]),
        }
        for k in range(K)
    ]
    return out
