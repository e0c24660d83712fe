"""NumPy logistic-regression engine. Arrays in, arrays and frozen dataclasses out.

Knows nothing of HTTP, pydantic or files, so it can be imported in a notebook::

    from app.engine import fit, FitParams
    result = fit(X, y, params=FitParams(l2=1e-3))
    result.model.predict_proba(X_new)
"""

from .errors import EngineError, InvalidData, InvalidParams, TrainingDiverged
from .model import FitParams, FitResult, LogisticModel, TrainingReport, fit

__all__ = [
    "EngineError",
    "FitParams",
    "FitResult",
    "InvalidData",
    "InvalidParams",
    "LogisticModel",
    "TrainingDiverged",
    "TrainingReport",
    "fit",
]
