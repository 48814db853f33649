"""compile_expr on sums too long for Python's compiler (the order-6 coefficients of
``perturb cumulants --order 6`` died with RecursionError in lambdify; issue 16)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

from perturb.compile import NUMPY_MODULES, compile_expr


@pytest.mark.slow
def test_long_sum_compiles_and_evaluates():
    xs = sp.symbols("x0:4")
    terms = [xs[0] ** (i % 9) * xs[1] ** (i // 9 % 9) * xs[2] ** (i // 81 % 9) * xs[3] ** (i // 729 % 9)
             for i in range(4000)]
    expr = sp.Add(*terms)
    with pytest.raises(RecursionError):  # what plain lambdify does with it (the printed sum nests 4000 deep)
        sp.lambdify(xs, expr, modules=NUMPY_MODULES, cse=False)
    f = compile_expr(expr, xs, cse=False)
    # at x = 1 every monomial is 1; at x = (1/2, 1, 1, 1) the sum is Σ_i 2^-(i mod 9), exactly
    assert float(f(1.0, 1.0, 1.0, 1.0)) == 4000.0
    exact = sum(sp.Rational(1, 2 ** (i % 9)) for i in range(4000))
    assert abs(f.mpmath(0.5, 1, 1, 1, dps=30) - mpmath.mpf(exact.p) / exact.q) < mpmath.mpf(10) ** -25


def test_short_expressions_print_as_before():
    """Below the chunk size the printer is sympy's own: same generated source."""
    import inspect

    z = sp.Symbol("z")
    e = sp.erf(z) + sp.Heaviside(z) * z + sp.Max(z, 0) ** 2
    from perturb.compile import _lambdify

    assert inspect.getsource(_lambdify([z], e, NUMPY_MODULES, cse=True)) == \
        inspect.getsource(sp.lambdify([z], e, modules=NUMPY_MODULES, cse=True))


def test_compiled_objects_pickle_for_process_pools():
    # an activation keeps its compiled derivatives; a network sent to a process pool or a Dask
    # worker is pickled with them, and lambdify's functions cannot be pickled by reference
    import pickle

    from perturb.network import Network

    net = Network("tanh", widths=(8, 8))
    d1 = net.activation.numpy(1)
    back = pickle.loads(pickle.dumps(net))
    z = np.linspace(-3, 3, 7)
    assert np.array_equal(back.activation.numpy(1)(z), d1(z))
    assert back.activation.numpy(1).expr == d1.expr
