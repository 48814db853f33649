"""Fast high precision without closed forms (the lattice rule) and the GELU closed form.

Independent methods: the nested ``mpmath.quad`` path (``method="quad"``, kept as the reference),
closed forms from the registry evaluated by mpmath (the lattice never consults the registry),
float64 quadrature, and the GELU kernel as printed by Tsuchida et al. (AAAI 2021), a comparison
only: the registry derives its own.
"""

from __future__ import annotations

import json

import mpmath
import numpy as np
import pytest
import sympy as sp

from perturb.activations import Z, get_activation
from perturb.cli import main
from perturb.errors import PerturbError
from perturb.gaussian import closed_form, closed_form_of, expect_mpmath, expect_numeric, zvars
from perturb.gaussian.closed import PAIR_KERNELS
from perturb.infinite import Network, kernels

z1, z2 = zvars(2)
R = sp.Rational


def pair(expr):
    return expr.subs(Z, z1) * expr.subs(Z, z2)


USER = sp.sympify("z*tanh(log(1+exp(z)))").subs(sp.Symbol("z"), Z)
GELU = get_activation("gelu").expr

# (name, integrand, exact covariance, <f>_K).  Reference values: the Gauss–Legendre panel rule
# (the previous default, an independent rule), expect_mpmath(f, K, dps=34, method="panels"),
# printed to 34 digits; test_against_references[panels] (slow) recomputes them, and
# test_nested_quad_reference_slow checks the first one against nested mpmath.quad.
REFERENCES = [
    ("tanh", pair(sp.tanh(Z)), [[R("0.9"), R("0.4")], [R("0.4"), R("1.3")]],
     "0.1406385945564757909689309670416446"),
    ("gelu", pair(GELU), [[R("1.2"), R("-0.5")], [R("-0.5"), R("0.7")]],
     "-0.03171547786394144144568444084289488"),
    ("user", pair(USER), [[R("1.1"), R("0.9")], [R("0.9"), R("0.8")]],
     "0.4037404046119577089092708643037163"),
    ("tanh_weak", pair(sp.tanh(Z)), [[R(2), R("0.3")], [R("0.3"), R(1)]],   # |rho| < 1/4: Mehler
     "0.08751833776380414254364323635765162"),
]


def _agrees(value, ref: str, digits: int) -> bool:
    with mpmath.workdps(digits + 10):
        return abs(value - mpmath.mpf(ref)) <= mpmath.mpf(10) ** -digits * abs(mpmath.mpf(ref))


# (method, dps, digits required): the lattice at 30 digits against the references (default);
# the panel rule recomputing them (slow)
RULES = [pytest.param("lattice", 30, 30, id="lattice"),
         pytest.param("panels", 34, 33, id="panels", marks=pytest.mark.slow)]


@pytest.mark.parametrize("method, dps, digits", RULES)
@pytest.mark.parametrize("name, f, K, ref", REFERENCES, ids=[c[0] for c in REFERENCES])
def test_against_references(name, f, K, ref, method, dps, digits):
    assert _agrees(expect_mpmath(f, K, dps=dps, method=method), ref, digits)


@pytest.mark.slow
def test_nested_quad_reference_slow():
    # nested mpmath.quad (method="quad") is the slowest path: 15 digits on the first entry
    name, f, K, ref = REFERENCES[0]
    assert _agrees(expect_mpmath(f, K, dps=15, method="quad"), ref, 15)


@pytest.mark.slow
def test_lattice_matches_panels_at_30_digits_slow():
    # the Gauss–Legendre panel rule (the previous default) as a second reference
    for f, K in [(pair(get_activation("silu").expr), [[0.9, 0.6], [0.6, 1.3]]),
                 (pair(get_activation("softplus").expr), [[1.5, -1.2], [-1.2, 1.0]])]:
        fast, panels = (expect_mpmath(f, K, dps=30, method=m) for m in ("lattice", "panels"))
        assert abs(fast - panels) <= mpmath.mpf(10) ** -30 * abs(panels)


def _erf_pair_closed(a, b, c, dps):
    # Williams' erf kernel from the registry, evaluated by mpmath
    return closed_form_of(pair(sp.erf(Z)), 2).mpmath(a, b, c, dps=dps)


@pytest.mark.parametrize("rho", [0.0, 1e-5, -0.2, 0.6, -0.97, 1 - 1e-7, -1.0])
def test_lattice_all_correlations_against_erf_closed_form(rho):
    # every regime of the rule: c = 0, Mehler (|rho| <= 1/4), aligned lattice, direct lattice
    # (|rho| -> 1) and the degenerate s = 0 line
    a, b = mpmath.mpf("1.7"), mpmath.mpf("0.6")
    with mpmath.workdps(40):
        c = mpmath.mpf(rho) * mpmath.sqrt(a * b)
        ref = _erf_pair_closed(a, b, c, 40)
    value = expect_mpmath(pair(sp.erf(Z)), [[a, c], [c, b]], dps=30, method="lattice")
    with mpmath.workdps(40):
        scale = mpmath.sqrt(_erf_pair_closed(a, a, a, 40) * _erf_pair_closed(b, b, b, 40))
        assert abs(value - ref) <= mpmath.mpf(10) ** -30 * scale


def test_fifty_digits_two_rule_sizes_and_closed_form():
    # 50 digits: the rule chosen for 50 and the (larger) one chosen for 60 digits agree (tanh);
    # an entire integrand against its registry closed form (sin/cos kernels, evaluated by mpmath)
    K = [[R("0.8"), R("0.5")], [R("0.5"), R("1.4")]]
    t50 = expect_mpmath(pair(sp.tanh(Z)), K, dps=50, method="lattice")
    t60 = expect_mpmath(pair(sp.tanh(Z)), K, dps=60, method="lattice")
    f = pair(sp.sin(Z) + sp.cos(Z) / 2)
    v50 = expect_mpmath(f, K, dps=50, method="lattice")
    closed = closed_form_of(f, 2).mpmath(K[0][0], K[1][1], K[0][1], dps=60)
    with mpmath.workdps(60):
        assert abs(t50 - t60) <= mpmath.mpf(10) ** -50 * abs(t60)
        assert abs(v50 - closed) <= mpmath.mpf(10) ** -50 * abs(closed)


@pytest.mark.slow
def test_fifty_digits_tanh_slow():
    K = [[R("0.8"), R("0.5")], [R("0.5"), R("1.4")]]
    t50 = expect_mpmath(pair(sp.tanh(Z)), K, dps=50, method="lattice")
    t60 = expect_mpmath(pair(sp.tanh(Z)), K, dps=60, method="lattice")
    panels = expect_mpmath(pair(sp.tanh(Z)), K, dps=50, method="panels")
    with mpmath.workdps(60):
        assert abs(t50 - t60) <= mpmath.mpf(10) ** -50 * abs(t60)
        assert abs(t50 - panels) <= mpmath.mpf(10) ** -50 * abs(t60)


@pytest.mark.parametrize("rho", [0.1, 0.5])
def test_tiny_values_keep_their_digits(rho):
    # E[tanh(eps u) tanh(eps v)] = eps² c (1 + O(eps²)): values ~1e-20 must not drown in the
    # fixed-point sums (Mehler path at rho = 0.1, lattice at 0.5)
    eps = R(1, 10**20)
    c = R(rho).limit_denominator(10)
    value = expect_mpmath(pair(sp.tanh(eps * Z)), [[1, c], [c, 1]], dps=30, method="lattice")
    with mpmath.workdps(40):
        assert abs(value - mpmath.mpf(eps**2 * c)) <= mpmath.mpf(10) ** -30 * mpmath.mpf(eps**2 * c)


def test_one_variable_lattice_against_quad():
    # one variable: lattice vs nested quad (fast in 1-D) at 30 digits, incl. a small variance
    for f, K in [(sp.tanh(Z) ** 2, R(3, 10)), (get_activation("silu").expr ** 2, R(5, 2)),
                 (USER * sp.sin(Z), R(7, 10))]:
        fast = expect_mpmath(f, K, dps=30, method="lattice")
        quad = expect_mpmath(f, K, dps=30, method="quad")
        assert abs(fast - quad) <= mpmath.mpf(10) ** -30 * abs(quad)


def test_non_separable_integrand():
    # f(z1, z2) that is no sum of products: evaluated point by point on the lattice; against the
    # Gauss–Legendre panel rule (~2 s each)
    f = sp.tanh(z1 + z2 + R(3, 10)) * sp.cos(z1 * z2 / 4)
    K = [[R(7, 10), R(1, 5)], [R(1, 5), R(1, 2)]]
    fast = expect_mpmath(f, K, dps=20, method="lattice")
    panels = expect_mpmath(f, K, dps=20, method="panels")
    assert abs(fast - panels) <= mpmath.mpf(10) ** -20 * abs(panels)


def test_lattice_refuses_kinks_and_auto_falls_back():
    f = sp.Max(z1, 0) * sp.tanh(z2)
    with pytest.raises(PerturbError, match="lattice rule did not reach"):
        expect_mpmath(f, [[1, 0.5], [0.5, 1]], dps=15, method="lattice")
    with pytest.raises(PerturbError, match="valid: auto, lattice, panels, quad"):
        expect_mpmath(f, [[1, 0.5], [0.5, 1]], dps=15, method="simpson")


# ---------------------------------------------------------------- GELU closed form

A, B, C = sp.symbols("a b c", positive=True)


def _tsuchida_gelu(a, b, c):
    """GELU kernel in the form printed by Tsuchida et al. (AAAI 2021), with ‖x₁‖² = a, ‖x₂‖² = b,
    cos θ = c/√(ab): comparison only."""
    cos2 = c**2 / (a * b)
    sin2 = 1 - cos2
    q = 1 + a + b + a * b * sin2
    first = (a + b + a * b * sin2 + (2 * cos2 + 2) / 2) / ((1 + a) * (1 + b) * sp.sqrt(q))
    second = c * sp.atan(c / sp.sqrt(q)) / (a * b)
    return a * b / (2 * sp.pi) * (first + second) + c / 4


def test_gelu_closed_form_is_derived_and_matches_literature():
    expr = closed_form(pair(GELU), sp.ImmutableMatrix([[A, C], [C, B]]))
    assert expr is not None
    rng = np.random.default_rng(7)
    for _ in range(5):
        a, b = (R(int(x)) / 100 for x in rng.integers(5, 400, 2))
        c = R(int(rng.integers(-99, 100)), 100) * sp.sqrt(a * b)
        vals = {A: a, B: b, C: c}
        assert abs(sp.N(expr.subs(vals) - _tsuchida_gelu(a, b, c), 40)) < 1e-35


def _random_psd(rng, rho=None):
    a, b = rng.uniform(0.05, 4.0, 2)
    r = rng.uniform(-1, 1) if rho is None else rho
    return a, b, r * np.sqrt(a * b)


@pytest.mark.parametrize("name", ["gelu_pair", "gelu_prime_pair"])
def test_gelu_closed_forms_against_quadrature(name):
    # float64 panel quadrature (split-free: the integrands are smooth), 1e-12 relative to the scale
    expr = GELU if name == "gelu_pair" else sp.diff(GELU, Z)
    f = pair(expr)
    closed = closed_form_of(f, 2)
    assert closed is not None
    rng = np.random.default_rng(11)
    covs = [_random_psd(rng) for _ in range(6)]
    covs += [_random_psd(rng, r) for r in (1.0, -1.0, 1 - 1e-9, -(1 - 1e-9), 0.0)]
    for a, b, c in covs:
        quad = float(expect_numeric(f, np.array([[a, c], [c, b]])))
        scale = np.sqrt(float(expect_numeric(expr**2, a)) * float(expect_numeric(expr**2, b)))
        assert abs(float(closed(a, b, c)) - quad) <= 1e-12 * scale


@pytest.mark.parametrize("name", ["gelu_pair", "gelu_prime_pair"])
def test_gelu_closed_forms_against_mpmath_30_digits(name):
    expr = GELU if name == "gelu_pair" else sp.diff(GELU, Z)
    f = pair(expr)
    closed = closed_form_of(f, 2)
    for rho in ((0.999999, -0.3) if name == "gelu_pair" else (0.8, -0.6)):
        a, b = mpmath.mpf(37) / 64, mpmath.mpf(150) / 64
        with mpmath.workdps(45):
            c = mpmath.mpf(rho) * mpmath.sqrt(a * b)
        cf = closed.mpmath(a, b, c, dps=40)
        value = expect_mpmath(f, [[a, c], [c, b]], dps=30, method="lattice")
        with mpmath.workdps(40):
            scale = mpmath.sqrt(expect_mpmath(expr**2, a, dps=20) * expect_mpmath(expr**2, b, dps=20))
            assert abs(value - cf) <= mpmath.mpf(10) ** -30 * scale


def test_gelu_diagonal_closed_form():
    K = sp.Symbol("K", positive=True)
    for expr, k in ((GELU, R(7)), (sp.diff(GELU, Z), R(1, 10))):
        cf = closed_form(expr**2, K)
        assert cf is not None
        ref = expect_mpmath(expr**2, k, dps=30, method="quad")
        with mpmath.workdps(40):
            assert abs(mpmath.mpf(sp.N(cf.subs(K, k), 40)) - ref) <= mpmath.mpf(10) ** -30 * ref


def test_gelu_gram_uses_closed_form():
    # the numpy Gram matrices (closed form, compiled) against the mpmath ones (closed form at
    # 30 digits) and against the lattice rule entry by entry
    X = np.array([[1.0, 0.5, -0.3], [0.2, -1.1, 0.7], [0.9, 0.8, 0.1]])
    net = Network("gelu", depth=2, C_W=1.5, C_b=0.05)
    fast = kernels(net, X)
    precise = kernels(net, X, dps=30)
    for ka, kb in ((fast.nngp, precise.nngp), (fast.ntk, precise.ntk)):
        assert np.allclose(ka, np.array(kb, dtype=float), rtol=1e-12, atol=0)


_PRIMITIVE_EXPR = {
    "one": lambda s: sp.S.One, "lin": lambda s: Z, "relu": lambda s: sp.Max(0, s * Z),
    "step": lambda s: sp.Heaviside(s * Z), "erf": lambda s: sp.erf(s * Z),
    "gauss": lambda s: sp.exp(-s * Z**2), "sin": lambda s: sp.sin(s * Z),
    "cos": lambda s: sp.cos(s * Z), "lin_erf": lambda s: Z * sp.erf(s * Z),
    "lin_gauss": lambda s: Z * sp.exp(-s * Z**2),
}
_DERIVED = sorted(k for k in PAIR_KERNELS if {"gauss", "lin_erf", "lin_gauss"} & set(k))


@pytest.mark.parametrize("kinds", _DERIVED, ids=["-".join(k) for k in _DERIVED])
def test_derived_pair_kernels_against_quadrature(kinds):
    # every kernel the tilt/Stein rules add to the registry, with non-unit scales, against
    # float64 quadrature (split at kinks) at three covariances incl. rho = -0.95
    scale = {"relu": -1, "step": 1}
    g, h = (_PRIMITIVE_EXPR[k](scale.get(k, R(k_s))) for k, k_s in zip(kinds, ("3/4", "6/5")))
    f = g.subs(Z, z1) * h.subs(Z, z2)
    closed = closed_form_of(f, 2)
    assert closed is not None
    for a, b, r in ((1.3, 0.6, 0.4), (0.5, 2.0, -0.95), (0.8, 0.8, 0.0)):
        c = r * np.sqrt(a * b)
        quad = float(expect_numeric(f, np.array([[a, c], [c, b]])))
        bound = np.sqrt(float(expect_numeric(g**2, a)) * float(expect_numeric(h**2, b)))
        assert abs(float(closed(a, b, c)) - quad) <= 1e-10 * bound


# ---------------------------------------------------------------- CLI at 30 digits


def test_cli_kernel_tanh_dps30_agrees_with_numpy(tmp_path, capsys):
    p = tmp_path / "x.json"
    p.write_text(json.dumps([[1.0, 0.5, -0.3], [0.2, -1.1, 0.7], [0.9, 0.8, 0.1]]))
    base = ["kernel", "--activation", "tanh", "--cw", "1.5", "--cb", "0.05", "--depth", "2",
            "--inputs", str(p), "--json"]
    assert main(base + ["--dps", "30"]) == 0
    precise = json.loads(capsys.readouterr().out)
    assert main(base) == 0
    fast = json.loads(capsys.readouterr().out)
    for key in ("nngp", "ntk"):
        strings = np.array(precise[key])
        assert all(len(s.lstrip("-0.").replace(".", "")) >= 29 for s in strings.ravel())
        assert np.allclose(strings.astype(float), np.array(fast[key]), rtol=1e-10, atol=1e-12)
