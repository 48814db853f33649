"""``perturb relu-exact`` — exact finite-width statistics of a ReLU network's output at one input.

    perturb relu-exact --widths 8,8,8 --x 1,0.5,-0.3 [--cw 2] --moment M [--density z1,z2,...] [--dps D] --json

prints ``{"moment", "moment_exact", "cumulant", "p_zero", "log_mean", "log_var", "beta"}`` (and with
``--ntk`` the exact NTK statistics ``"ntk_mean"``, ``"ntk_var"``, ``"ntk_second"``, ``"ntk_mean_exact"``,
``"ntk_var_exact"`` at x, λ_W = C_W unless ``--lambda-w``; :mod:`perturb.ntk_exact`) for
the output z^{(L+1)} (M even; ``cumulant`` is κ_M of z; ``log_mean``/``log_var`` are the mean and
variance of log Σ^{(L)} conditioned on Σ^{(L)} > 0, i.e. on z ≠ 0), and ``"density"`` with
``--density`` (the continuous part: mpmath Meijer-G mixture; without ``--dps`` and beyond
20000 mixture terms, the numpy log-space inversion, ~1e-12 absolute).  Biases are zero (``--cb`` other than 0 is refused).
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction

import mpmath

from ..errors import PerturbError
from ..safeparse import parse_number
from ._common import dps_int, emit_json, width_list


def _number_list(text: str) -> list[str]:
    if text.strip() and any(t.strip() == "" for t in text.split(",")):
        raise argparse.ArgumentTypeError(f"empty entry in {text!r}; expected comma-separated numbers like 1,0.5")
    toks = [t.strip() for t in text.split(",") if t.strip() != ""]
    if not toks:
        raise argparse.ArgumentTypeError("expected at least one number")
    for t in toks:
        try:
            parse_number(t)  # exact and bounded (no 1e999999999 that would take minutes to expand)
        except PerturbError as exc:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}: {exc}") from None
    return toks


def register(sub) -> None:
    p = sub.add_parser("relu-exact", help="exact moments, cumulants, atom at 0, log-moments and density "
                                          "of a ReLU network output at one input (zero biases)",
                       description="Exact finite-width statistics of the output z of a ReLU network with zero "
                       "biases at one input. Given the last hidden layer z is Gaussian with variance Σ, and Σ = "
                       "K^(1) Π_l (C_W/n_l) χ²_{B_l} with B_l ~ Binomial(n_l, 1/2) independent (Les Houches lectures, "
                       "arXiv 2309.01592, Prop. 5.2; Hanin & Nica 2019), so every even moment is an exact rational "
                       "(moment_exact), and the atom P(z = 0), the log-moments and the density (a Meijer-G "
                       "mixture) are closed forms; --dps D evaluates them with mpmath at D digits.")
    p.add_argument("--widths", type=width_list, required=True, help="hidden widths n_1,...,n_L")
    p.add_argument("--x", type=_number_list, required=True, help="the input x (comma-separated, non-zero)")
    p.add_argument("--cw", type=_number_list, default=["2"],
                   help="C_W: one value, or one per layer 1..L+1 (default 2, criticality)")
    p.add_argument("--cb", type=_number_list, default=["0"], help="C_b: must be 0 (default 0)")
    p.add_argument("--moment", type=int, required=True, help="even moment order M of z")
    p.add_argument("--density", type=_number_list, default=None,
                   help="also evaluate the density of z (continuous part) at these points")
    p.add_argument("--dps", type=dps_int, default=None,
                   help="evaluate with mpmath at D significant digits; numbers print as strings")
    p.add_argument("--ntk", action="store_true",
                   help="also the exact NTK mean and variance at x (keys ntk_mean, ntk_var, ntk_second)")
    p.add_argument("--lambda-w", dest="lambda_w", type=_number_list, default=None,
                   help="with --ntk: λ_W, one value or one per layer (default: C_W, NTK parameterisation)")
    p.add_argument("--lambda-b", dest="lambda_b", type=_number_list, default=["0"],
                   help="with --ntk: λ_b of the (zero-initialised) biases, one value or one per layer (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON (default: a readable table)")
    p.set_defaults(func=run)


def _exact_text(q: Fraction) -> str:
    try:
        return str(q)
    except ValueError:  # Python refuses to print integers of more than 4300 digits
        raise PerturbError(f"the exact moment has more than {sys.get_int_max_str_digits()} digits; "
                           "use a smaller --x or --moment") from None


def compute(widths, x, cw, cb, M, density_points=None, dps=None, ntk=False, lambda_w=None,
            lambda_b=("0",)) -> dict:
    """The JSON payload of ``perturb relu-exact`` (library entry point for the command)."""
    from ..relu_exact import relu_output_law

    cws = cw[0] if len(cw) == 1 else cw
    law = relu_output_law(widths, x, C_W=cws, C_b=cb)
    mom = law.moment(M)
    work = max(dps or 17, 17)
    with mpmath.workdps(work + 5):
        def num(q: Fraction):
            return mpmath.mpf(q.numerator) / q.denominator
        lm, lv = law.log_moments(dps=work + 5)
        out = {
            "moment": num(mom),
            "moment_exact": _exact_text(mom),
            "cumulant": num(law.cumulant(M)),
            "p_zero": num(law.p_zero()),
            "log_mean": lm,
            "log_var": lv,
            "beta": mpmath.mpf(sum(mpmath.log1p(mpmath.mpf(5) / n) for n in widths)),
        }
        if ntk:
            from ..ntk_exact import relu_ntk_moments

            def one(v):
                return None if v is None else (v[0] if len(v) == 1 else list(v))
            nm = relu_ntk_moments(widths, x, C_W=cws, lambda_W=one(lambda_w), lambda_b=one(lambda_b))
            out.update({"ntk_mean": num(Fraction(int(nm["mean"].p), int(nm["mean"].q))),
                        "ntk_var": num(Fraction(int(nm["var"].p), int(nm["var"].q))),
                        "ntk_second": num(Fraction(int(nm["second"].p), int(nm["second"].q))),
                        "ntk_mean_exact": str(nm["mean"]), "ntk_var_exact": str(nm["var"])})
        if density_points is not None:
            if dps is None and law.mixture_size() is None:
                # too many Meijer terms: float64 log-space Fourier inversion (~1e-12 absolute)
                zs = [float(Fraction(z)) for z in density_points]
                if any(z == 0 for z in zs):
                    raise PerturbError("the density of z at 0 is infinite; give points != 0")
                out["density"] = [float(v) for v in law.density_numpy(zs)]
            else:
                out["density"] = [law.density(z, dps=work) for z in density_points]
    return out


def _beyond_float64_to_null(out: dict) -> dict:
    """Values outside the float64 range become null, with a "note" naming them (JSON has no Infinity)."""
    import sys

    def fits(v):
        return not isinstance(v, (mpmath.mpf, float)) or (mpmath.isfinite(v) and abs(v) <= sys.float_info.max)

    bad = []
    res = {}
    for k, v in out.items():
        ok = all(map(fits, v)) if isinstance(v, list) else fits(v)
        res[k] = [t if fits(t) else None for t in v] if isinstance(v, list) else (v if ok else None)
        if not ok:
            bad.append(k)
    if bad:
        res["note"] = (f"{', '.join(bad)} outside the float64 range, printed as null; --dps D prints them as "
                       "D-digit strings (moment_exact is exact)")
    return res


def run(args) -> int:
    if args.dps is not None and args.dps > 1000:
        raise PerturbError(f"--dps {args.dps} is too large (at most 1000)")
    if not args.ntk and (args.lambda_w is not None or args.lambda_b != ["0"]):
        raise PerturbError("--lambda-w/--lambda-b set the NTK's learning rates; add --ntk")
    out = compute(args.widths, args.x, args.cw, args.cb, args.moment, args.density, args.dps,
                  ntk=args.ntk, lambda_w=args.lambda_w, lambda_b=args.lambda_b)
    if args.json:
        if not args.dps:
            out = _beyond_float64_to_null(out)
        emit_json(out, args.dps)
    else:
        for k, v in out.items():
            if isinstance(v, list):
                v = ", ".join(mpmath.nstr(t, args.dps or 15) for t in v)
            elif not isinstance(v, str):
                v = mpmath.nstr(v, args.dps or 15)
            print(f"{k:>13}  {v}")
    return 0
