"""The compiled scores (app/engine/_scores.c) against the same sums on Python floats, the code
its build flags make, and its refusals of arrays it cannot read."""

from __future__ import annotations

import platform
import re
import runpy
import shlex
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine._scores import scores
from app.engine.model import linear_scores


def python_scores(X, mean, scale, W, b):
    """The definition, one IEEE operation at a time on Python floats."""
    Z = []
    for row in X.tolist():
        if mean is not None:
            row = [(x - m) / s for x, m, s in zip(row, mean.tolist(), scale.tolist(), strict=True)]
        zs = []
        for wk, bk in zip(W.tolist(), b.tolist(), strict=True):
            z = 0.0
            for d, w in zip(row, wk, strict=True):
                z += d * w
            zs.append(z + bk)
        Z.append(zs)
    return np.array(Z, dtype=np.float64).reshape(len(X), len(b))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 40),
    p=st.integers(1, 9),
    k=st.integers(1, 4),
    standardise=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_same_bits_as_the_sums_on_python_floats(n, p, k, standardise, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * 10.0 ** rng.uniform(-300, 300, size=(n, p))
    W = rng.normal(size=(k, p)) * 10.0 ** rng.uniform(-8, 8, size=(k, p))
    b = rng.normal(size=k)
    mean = rng.normal(size=p) if standardise else None
    scale = rng.uniform(0.1, 10.0, size=p) if standardise else None
    with np.errstate(over="ignore", invalid="ignore"):
        expected = python_scores(X, mean, scale, W, b)
    Z, row = linear_scores(X, W, b, mean=mean, scale=scale)
    assert Z.tobytes() == expected.tobytes()
    bad = ~np.isfinite(expected).all(axis=1)
    assert row == (int(np.argmax(bad)) if bad.any() else -1)


def test_a_product_and_a_sum_are_rounded_apart():
    """No fused multiply-add: with one rounding, -1 + a b would be -2**-60. (A build for baseline
    x86-64 has no such instruction to use; the next test covers a build for a CPU with one.)"""
    a, c = 1.0 + 2.0**-30, 1.0 - 2.0**-30  # a c = 1 - 2**-60, rounded to 1.0
    Z, row = linear_scores(np.array([[1.0, a]]), np.array([[-1.0, c]]), np.zeros(1))
    assert (Z[0, 0], row) == (0.0, -1)


ROOT = Path(__file__).resolve().parents[2]
#: a fused multiply-add (or -subtract) instruction, by architecture, and flags that allow it
FMA = {
    "x86_64": (r"\bvf(n)?m(add|sub)\w*sd\b", ["-march=haswell"]),
    "aarch64": (r"\bf(n)?m(add|sub)\s+d\d", []),
}


def compile_args() -> list[str]:
    """``COMPILE_ARGS`` as setup.py makes them on this machine."""
    found = runpy.run_path(str(ROOT / "setup.py"), run_name="compile_args")["COMPILE_ARGS"]
    assert "-ffp-contract=off" in found, found
    return found


def assembly(*flags: str) -> str:
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    source = ROOT / "app/engine/_scores.c"
    command = [*cc, "-S", "-o", "-", f"-I{include}", *flags, str(source)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(
    platform.machine() not in FMA, reason="FMA instructions known for x86-64, arm64"
)
def test_the_build_flags_keep_fused_multiply_adds_out_for_a_cpu_that_has_them():
    """The loop compiled for a CPU with fused multiply-add: with setup.py's flags, no such
    instruction; with the compiler's default contraction (the control), the loop uses one."""
    pattern, target = FMA[platform.machine()]
    assert re.search(pattern, assembly(*target, "-O2", "-ffp-contract=fast"))
    assert not re.search(pattern, assembly(*target, *compile_args()))


def test_the_first_term_is_added_to_zero():
    """``0.0 + (-0.0)`` is ``0.0``: a score of negative zero comes out as zero."""
    Z, _ = linear_scores(np.array([[-0.0]]), np.array([[1.0]]), np.array([-0.0]))
    assert str(Z[0, 0]) == "0.0"


def test_a_large_batch_computed_without_the_gil_gives_the_same_bits():
    """3,000 x 30 values: past the size from which the loop releases the GIL."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 30)) * 10.0 ** rng.uniform(-3, 3, size=30)
    W, b = rng.normal(size=(1, 30)), rng.normal(size=1)
    mean, scale = rng.normal(size=30), rng.uniform(0.5, 2.0, size=30)
    Z, row = linear_scores(X, W, b, mean=mean, scale=scale)
    blocks = [
        linear_scores(X[i : i + 100], W, b, mean=mean, scale=scale)[0] for i in range(0, 3000, 100)
    ]
    assert row == -1
    assert (
        Z.tobytes() == np.vstack(blocks).tobytes() == python_scores(X, mean, scale, W, b).tobytes()
    )


def test_no_rows_no_scores():
    Z, row = linear_scores(np.empty((0, 3)), np.ones((2, 3)), np.zeros(2))
    assert (Z.shape, row) == ((0, 2), -1)


def arrays(n=3, p=2, k=1):
    return [np.ones((n, p)), None, None, np.ones((k, p)), np.zeros(k), np.empty((n, k))]


@pytest.mark.parametrize(
    ("position", "value", "error", "message"),
    [
        (0, np.ones((3, 2), dtype=np.float32), TypeError, "X: expected a 2-dimensional float64"),
        (0, np.ones((2, 3)).T, TypeError, "X: expected a C-contiguous"),
        (0, np.ones(6), TypeError, "X: expected a 2-dimensional"),
        (0, [[1.0, 2.0]], TypeError, "X: expected a C-contiguous"),
        (3, np.ones((1, 3)), ValueError, "shapes"),
        (4, np.zeros(2), ValueError, "shapes"),
        (5, np.empty((3, 2)), ValueError, "shapes"),
        (1, np.zeros(2), TypeError, "mean and scale: both arrays or both None"),
        (
            0,
            np.frombuffer(bytearray(49), offset=1).reshape(3, 2),
            TypeError,
            "X: expected an aligned",
        ),
    ],
)
def test_arrays_it_cannot_read_are_refused(position, value, error, message):
    args = arrays()
    args[position] = value
    with pytest.raises(error, match=message):
        scores(*args)


def test_a_read_only_output_is_refused():
    args = arrays()
    args[5].flags.writeable = False
    with pytest.raises(TypeError, match="out: expected a C-contiguous writable"):
        scores(*args)
    with pytest.raises(TypeError, match="takes 6 arguments"):
        scores(*args[:5])


def test_an_output_that_shares_memory_with_an_input_is_refused():
    """Written while the inputs are still read, it would give wrong scores, not an error."""
    A, W = np.ones((2, 2)), np.ones((2, 2))
    with pytest.raises(ValueError, match="out: shares memory with an input"):
        scores(A, None, None, W, np.zeros(2), A)
    memory = np.ones(6)
    W, out = memory[:4].reshape(2, 2), memory[2:].reshape(2, 2)  # W's second row is out's first
    with pytest.raises(ValueError, match="out: shares memory with an input"):
        scores(A, None, None, W, np.zeros(2), out)
    scores(A, None, None, W, np.zeros(2), np.empty((2, 2)))  # apart: accepted
