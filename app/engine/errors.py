"""Domain errors of the engine. Plain exceptions: the web layer alone maps them to HTTP."""


class EngineError(ValueError):
    """Base class: the input or the settings make the requested computation impossible."""


class InvalidData(EngineError):
    """Features or labels are unusable (shape, non-finite values, a single class...)."""


class InvalidParams(EngineError):
    """A training parameter is out of range or unknown."""


class TrainingDiverged(EngineError):
    """The solver's cost blew up (for gradient descent: the learning rate is too large)."""
