from numpy import ndarray

def scores(
    X: ndarray, mean: ndarray | None, scale: ndarray | None, W: ndarray, b: ndarray, out: ndarray, /
) -> int: ...
