"""What a fit tells whoever watches it (a training job's progress and cancel)."""

from __future__ import annotations

from typing import Protocol


class Monitor(Protocol):
    """Watches a fit from outside: told of every solver iteration, and of every block of rows of
    a long pass over the data (a Hessian accumulated block by block; a fit that reads its rows
    in blocks). Either call may raise to stop the fit: the exception propagates out of ``fit``
    and no model is made. Keep both cheap: they run once per iteration (per block), so look at
    a clock before doing anything costlier.
    """

    def iteration(self, iteration: int, loss: float, grad_norm: float) -> None:
        """``iteration`` of the running solver (0: its starting point), its objective and the
        largest component of its (sub)gradient there."""

    def block(self, rows: int) -> None:
        """``rows`` of the current pass over the data are done."""
