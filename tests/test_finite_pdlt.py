"""Derived, then matched: the engine's order-1 layer map equals PDLT's recursions (REFERENCE §3).

The engine derives the layer map for the generic activation σ; here the printed forms of
PDLT (4.90-type multi-input V, the G1 recursion, and their one-input reductions [LH Thm 4.2])
are typed in the test only, and the two are compared as symbolic expressions in the
Gaussian-expectation atoms.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import sympy as sp

from perturb.activations import SIGMA, Z
from perturb.finite.layer import LayerMap, moment_symbol
from perturb.gaussian import E, zvars
from perturb.gaussian.atom import atom_canonical


def assert_same(a: sp.Expr, b: sp.Expr) -> None:
    diff = atom_canonical(a - b)
    assert diff == 0, f"engine and PDLT differ by {diff}"


# ----------------------------------------------------------------------------- one input

def test_one_input_V_and_G1_match_pdlt():
    lm = LayerMap(n_inputs=1, order=1)
    K, C_W, n = lm.K[(0, 0)], lm.syms.C_W, lm.syms.n
    n_prev, V, G1 = sp.symbols("n_prev V G1", positive=True)
    r = n / n_prev
    incoming = {moment_symbol((1,), 1): G1 / n_prev, moment_symbol((2,), 1): V / n_prev}
    s = SIGMA(Z)
    # engine: Var Σ^{(ℓ)} = V'/n_ℓ, E Σ^{(ℓ)} − K' = G1'/n_ℓ at order 1
    V_engine = n * lm.moment((2,))[1].xreplace(incoming)
    G1_engine = n * lm.moment((1,))[1].xreplace(incoming)
    # PDLT / REFERENCE §3 (typed here only)
    chi = C_W / (2 * K**2) * E(s**2 * (Z**2 - K), K)
    V_pdlt = C_W**2 * (E(s**4, K) - E(s**2, K) ** 2) + r * chi**2 * V
    G1_pdlt = r * (chi * G1 + C_W / (8 * K**4) * E(s**2 * (Z**4 - 6 * K * Z**2 + 3 * K**2), K) * V)
    assert_same(V_engine, V_pdlt)
    assert_same(G1_engine, G1_pdlt)


def test_wrong_coefficient_is_detected():
    """The comparison can fail: a PDLT form with a wrong factor is rejected."""
    lm = LayerMap(n_inputs=1, order=1)
    K, C_W, n = lm.K[(0, 0)], lm.syms.C_W, lm.syms.n
    V = sp.Symbol("V")
    s = SIGMA(Z)
    V_engine = n * lm.moment((2,))[1].xreplace({moment_symbol((2,), 1): V / n})
    chi = C_W / (2 * K**2) * E(s**2 * (Z**2 - K), K)
    wrong = C_W**2 * (E(s**4, K) - E(s**2, K) ** 2) + 2 * chi**2 * V
    assert atom_canonical(V_engine - wrong) != 0


# ----------------------------------------------------------------------------- two inputs

def _hermite2(Kinv, zs, b1, b2, Kmat):
    """z^{b1} z^{b2} − K^{b1 b2} with raised indices z^b = K^{bc} z_c."""
    up = [sum(Kinv[b, c] * zs[c] for c in range(2)) for b in range(2)]
    return up[b1] * up[b2] - Kinv[b1, b2]


def _hermite4(Kinv, zs, b):
    up = [sum(Kinv[x, c] * zs[c] for c in range(2)) for x in range(2)]
    b1, b2, b3, b4 = b
    quad = up[b1] * up[b2] * up[b3] * up[b4]
    pairs = [((b1, b2), (b3, b4)), ((b1, b3), (b2, b4)), ((b1, b4), (b2, b3))]
    two = sum(Kinv[i, j] * up[k] * up[l] + Kinv[k, l] * up[i] * up[j] for (i, j), (k, l) in pairs)
    zero = sum(Kinv[i, j] * Kinv[k, l] for (i, j), (k, l) in pairs)
    return quad - two + zero


@pytest.fixture(scope="module")
def two_input_map():
    return LayerMap(n_inputs=2, order=1)


def _incoming(lm, V, G1, n_prev):
    """M[e_p]_1 = G1_p / n_prev, M[e_p + e_q]_1 = V_{pq} / n_prev."""
    sub = {}
    P = len(lm.pairs)
    for p in range(P):
        sub[moment_symbol(lm.unit(p), 1)] = G1[lm.pairs[p]] / n_prev
        for q in range(P):
            a = tuple(x + y for x, y in zip(lm.unit(p), lm.unit(q)))
            sub[moment_symbol(a, 1)] = V[(lm.pairs[p], lm.pairs[q])] / n_prev
    return sub


def _symbols(lm):
    V, G1 = {}, {}
    for p in lm.pairs:
        G1[p] = sp.Symbol(f"G_{p[0] + 1}{p[1] + 1}")
        for q in lm.pairs:
            key = tuple(sorted([p, q]))
            V[(p, q)] = sp.Symbol(f"V_{key[0][0] + 1}{key[0][1] + 1}_{key[1][0] + 1}{key[1][1] + 1}")
    return V, G1


def _pair(a, b):
    """The symmetric pair (α, β) as stored: α <= β."""
    return (min(a, b), max(a, b))


@pytest.fixture(scope="module")
def two_input(two_input_map):
    """The two-input layer map with PDLT's incoming V_{pq}, G1_p and the symbols of the forms."""
    lm = two_input_map
    n_prev = sp.Symbol("n_prev", positive=True)
    Kmat = sp.ImmutableMatrix(2, 2, lambda i, j: lm.K[_pair(i, j)])
    V, G1 = _symbols(lm)
    return SimpleNamespace(lm=lm, C_W=lm.syms.C_W, n=lm.syms.n, r=lm.syms.n / n_prev, Kmat=Kmat,
                           Kinv=Kmat.inv(), zs=zvars(2), V=V, G1=G1, sub=_incoming(lm, V, G1, n_prev))


def test_two_input_V_all_components_match_pdlt(two_input):
    t = two_input
    lm, Kmat, Kinv, zs = t.lm, t.Kmat, t.Kinv, t.zs

    def sig(*idx):
        return sp.Mul(*[SIGMA(zs[i]) for i in idx])

    for p, q in itertools.combinations_with_replacement(range(len(lm.pairs)), 2):
        (a1, a2), (a3, a4) = lm.pairs[p], lm.pairs[q]
        a = tuple(x + y for x, y in zip(lm.unit(p), lm.unit(q)))
        engine = t.n * lm.moment(a)[1].xreplace(t.sub)
        # PDLT (4.90)-type: with lower-index V and the Hermite tensors in raised indices
        pdlt = t.C_W**2 * (E(sig(a1, a2, a3, a4), Kmat) - E(sig(a1, a2), Kmat) * E(sig(a3, a4), Kmat))
        acc = 0
        for b1, b2, b3, b4 in itertools.product(range(2), repeat=4):
            acc += (t.V[(_pair(b1, b2), _pair(b3, b4))] * E(sig(a1, a2) * _hermite2(Kinv, zs, b1, b2, Kmat), Kmat)
                    * E(sig(a3, a4) * _hermite2(Kinv, zs, b3, b4, Kmat), Kmat))
        pdlt += t.C_W**2 * t.r / 4 * acc
        assert_same(engine, pdlt)


def test_two_input_G1_matches_pdlt(two_input):
    t = two_input
    lm, Kmat, Kinv, zs = t.lm, t.Kmat, t.Kinv, t.zs
    for p, (a1, a2) in enumerate(lm.pairs):
        engine = t.n * lm.moment(lm.unit(p))[1].xreplace(t.sub)
        s2 = SIGMA(zs[a1]) * SIGMA(zs[a2])
        first = sum(t.G1[_pair(b1, b2)] * E(s2 * _hermite2(Kinv, zs, b1, b2, Kmat), Kmat)
                    for b1, b2 in itertools.product(range(2), repeat=2)) * t.C_W / 2
        second = sum(t.V[(_pair(b[0], b[1]), _pair(b[2], b[3]))] * E(s2 * _hermite4(Kinv, zs, b), Kmat)
                     for b in itertools.product(range(2), repeat=4))
        pdlt = t.r * (first + t.C_W / 8 * second)
        assert_same(engine, pdlt)
