"""Truncated power series in 1/n (the bookkeeping ε of the expansion).

A series is a dict ``{order e: coefficient}``; coefficients may be numbers, numpy arrays,
mpmath numbers or SymPy expressions — only ``+`` and ``*`` are used.

>>> mul({0: 1, 1: 2}, {0: 3, 1: 1}, order=1)
{0: 3, 1: 7}
"""

from __future__ import annotations

import math

__all__ = ["add", "mul", "scale", "total", "moments_to_cumulants"]


def add(x: dict, y: dict) -> dict:
    out = dict(x)
    for e, c in y.items():
        out[e] = out[e] + c if e in out else c
    return out


def scale(x: dict, s) -> dict:
    return {e: s * c for e, c in x.items()}


def mul(x: dict, y: dict, order: int) -> dict:
    out: dict = {}
    for e, c in x.items():
        for f, d in y.items():
            if e + f <= order:
                out[e + f] = out[e + f] + c * d if e + f in out else c * d
    return out


def total(x: dict, zero=0):
    """The sum of all orders (the truncated prediction)."""
    s = zero
    for c in x.values():
        s = s + c
    return s


def moments_to_cumulants(moments: list[dict], order: int) -> list[dict]:
    """Cumulants κ_1..κ_J from raw moments m_1..m_J (series), truncated at ``order``.

    ``moments[j-1]`` is the series of E X^j.  Uses κ_j = m_j − Σ_{i=1}^{j−1} C(j−1, i−1) κ_i m_{j−i}.
    """
    kappas: list[dict] = []
    for j in range(1, len(moments) + 1):
        kj = dict(moments[j - 1])
        for i in range(1, j):
            kj = add(kj, scale(mul(kappas[i - 1], moments[j - i - 1], order), -math.comb(j - 1, i - 1)))
        kappas.append(kj)
    return kappas
