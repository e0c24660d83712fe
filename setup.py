"""The one compiled part: app/engine/_scores.c (everything else is in pyproject.toml).

COMPILE_ARGS keep a score's bits the same on every CPU (tests/engine/test_scores.py checks the
code they make): -ffp-contract=off, so that the compiler does not fuse a product and a sum into
one rounding (GCC does by default wherever the CPU has fused multiply-add); no fast-math; and on
32-bit x86, SSE2 arithmetic instead of the x87 unit's 80-bit intermediates. setuptools puts them
after any CFLAGS, so they win.
"""

import platform

from setuptools import Extension, setup

COMPILE_ARGS = ["-O2", "-ffp-contract=off", "-fno-fast-math"]
if platform.machine().lower() in {"i386", "i486", "i586", "i686", "x86"}:
    COMPILE_ARGS += ["-msse2", "-mfpmath=sse"]

if __name__ == "__main__":  # as setuptools' build backend runs it; a test reads COMPILE_ARGS
    setup(
        ext_modules=[
            Extension(
                "app.engine._scores",
                sources=["app/engine/_scores.c"],
                extra_compile_args=COMPILE_ARGS,
            )
        ]
    )
