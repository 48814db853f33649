"""Errors raised by perturb.

Every user-facing mistake raises :class:`PerturbError` (a ``ValueError``) with a one-line
message that names the bad value and what would be valid.  The command line turns it into
``perturb: error: ...`` and exit status 2, never a traceback.
"""

from __future__ import annotations


class PerturbError(ValueError):
    """Invalid input or an impossible request (bad activation, width, kernel, order, ...)."""


class DivergentIntegralError(PerturbError):
    """A Gaussian expectation that does not converge (e.g. ``<exp(z**2)>_K`` for K >= 1/2)."""


class NotImplementedOrderError(PerturbError):
    """An expansion order, statistic or case that perturb does not implement."""


def require(condition: bool, message: str, exc: type[PerturbError] = PerturbError) -> None:
    """Raise ``exc(message)`` unless ``condition`` holds."""
    if not condition:
        raise exc(message)
