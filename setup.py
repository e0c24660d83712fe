"""The one compiled part: app/engine/_scores.c (everything else is in pyproject.toml).

-ffp-contract=off: the compiler must not fuse a product and a sum into one rounding (GCC does by
default wherever the CPU has fused multiply-add), or a score's bits would depend on the CPU the
package was built for. No -ffast-math for the same reason.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "app.engine._scores",
            sources=["app/engine/_scores.c"],
            extra_compile_args=["-O2", "-ffp-contract=off", "-fno-fast-math"],
        )
    ]
)
