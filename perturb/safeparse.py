"""A whitelist parser for user expressions: strings are data, never code.

SymPy's ``parse_expr``/``sympify`` build a Python expression from the text and ``eval`` it, so
``__import__("os").system(...)`` typed as an activation or a claim would run.  Every user string
that becomes a SymPy expression goes through :func:`parse_expression` instead, which never calls
``eval``:

1. **tokens** — the text is split into numbers (``12``, ``0.5``, ``1e-3``), ASCII names, and the
   operators ``+ - * / ** ^ ( ) ,``; any other character (quotes, dots outside numbers,
   brackets, ``=``, ``@``, non-ASCII, ...) is rejected naming the character and its position.
   ``^`` means ``**``; with ``implicit=True`` a ``*`` is inserted between juxtaposed factors
   (``2z``, ``C_W**(2) V``, ``(z+1)(z-1)``).
2. **tree** — the tokens are parsed by Python's ``ast.parse`` (parsing only builds a tree) and
   the tree is walked: the admitted nodes are numeric literals, names, the binary operators
   ``+ - * / **``, unary ``±``, and calls ``f(a, b, ...)`` of a function *named* in the
   registry the caller passes.  Attributes, subscripts, keywords, lambdas, comprehensions,
   strings, comparisons, tuples and names with a leading underscore are refused.
3. **bounded evaluation** — each admitted node is built bottom-up with SymPy constructors
   (``sp.Add``-style arithmetic on already-built SymPy objects): literals have at most
   :data:`MAX_LITERAL_DIGITS` digits and magnitude at most 1e300, a numeric exponent is at most
   :data:`MAX_EXPONENT` in size, and an exact number raised to a power may have at most
   :data:`MAX_POWER_BITS` bits, so that nothing like ``10**10**10`` makes SymPy hang.

Anything outside the whitelist raises :class:`~perturb.errors.PerturbError` (or the caller's
subclass) naming the offending token and what is allowed — before any SymPy evaluation.

>>> import sympy as sp
>>> z = sp.Symbol("z")
>>> parse_expression("2z^2 + exp(-z)", symbols={"z": z}, functions={"exp": sp.exp}, implicit=True)
2*z**2 + exp(-z)
>>> parse_expression('__import__("os")', symbols={"z": z}, functions={})
Traceback (most recent call last):
    ...
perturb.errors.PerturbError: cannot parse the expression '__import__("os")': character '"' at position 12 is not allowed; allowed: numbers, names, + - * / ** ^ ( ) and calls f(...)
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping

import sympy as sp

from .errors import PerturbError

__all__ = ["parse_expression", "parse_number", "MATH_FUNCTIONS", "MAX_LENGTH", "MAX_EXPONENT"]

#: the longest expression accepted (characters)
MAX_LENGTH = 2000
#: the most digits a numeric literal may have (before the exponent)
MAX_LITERAL_DIGITS = 60
#: the largest magnitude of a numeric literal
MAX_LITERAL = 1e300
#: the largest |exponent| of a power with a numeric exponent (z**k, 2**k), and of a derivative order
MAX_EXPONENT = 100
#: the most bits an exact number raised to an exact power may have
MAX_POWER_BITS = 4096


def _derivative(expr, *spec):
    """``Derivative(f, x, k)`` with the order k bounded (a huge k would never finish)."""
    for s in spec:
        if isinstance(s, sp.Number) and (not s.is_Integer or not 0 <= int(s) <= MAX_EXPONENT):
            raise PerturbError(f"derivative order {s} is out of range (0..{MAX_EXPONENT})")
        if isinstance(s, sp.Basic) and not (isinstance(s, (sp.Symbol, sp.Number))):
            raise PerturbError(f"Derivative(f, x, k) takes symbols and integer orders, got {s}")
    return sp.Derivative(expr, *spec)


#: elementary functions admitted in every expression (name -> SymPy constructor)
MATH_FUNCTIONS: dict[str, Callable] = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt,
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
    "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "asinh": sp.asinh, "acosh": sp.acosh,
    "atanh": sp.atanh, "erf": sp.erf, "erfc": sp.erfc,
    "Abs": sp.Abs, "abs": sp.Abs, "Max": sp.Max, "max": sp.Max, "Min": sp.Min, "min": sp.Min,
    "Heaviside": sp.Heaviside, "sign": sp.sign,
    "Derivative": _derivative, "diff": _derivative,
}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|[-+*/^(),])
""", re.VERBOSE)

_ALLOWED = "numbers, names, + - * / ** ^ ( ) and calls f(...)"


def _tokens(text: str, fail) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            fail(f"character {text[pos]!r} at position {pos + 1} is not allowed; allowed: {_ALLOWED}")
        kind = m.lastgroup
        if kind != "ws":
            tok = m.group()
            out.append((kind, "**" if tok == "^" else tok, pos))
        pos = m.end()
    return out


def _with_implicit_products(toks, functions: Mapping, symbols: Mapping):
    """Insert ``*`` between juxtaposed factors: ``2z``, ``x y``, ``2(z+1)``, ``(a)(b)``, ``x**(2) V``."""
    out = []
    for tok in toks:
        if out:
            (lk, lt, _), (rk, rt, _) = out[-1], tok
            left_ends = lk in ("num", "name") or lt == ")"
            right_starts = rk in ("num", "name") or rt == "("
            is_call = lk == "name" and rt == "(" and (lt in functions or lt not in symbols)
            if left_ends and right_starts and not is_call:
                out.append(("op", "*", tok[2]))
        out.append(tok)
    return out


def _number(text: str, exact: bool, fail) -> sp.Number:
    mantissa, _, exponent = text.lower().partition("e")
    if exponent and abs(int(exponent)) > 400:
        fail(f"the number {text} is out of range (decimal exponent at most 400 in magnitude)")
    if len(mantissa.replace(".", "").lstrip("0")) > MAX_LITERAL_DIGITS:
        fail(f"the number {text[:20]}... has more than {MAX_LITERAL_DIGITS} digits")
    try:
        big = abs(float(text)) > MAX_LITERAL
    except OverflowError:  # pragma: no cover - float() returns inf instead
        big = True
    if big:
        fail(f"the number {text} is too large (at most {MAX_LITERAL:g} in magnitude)")
    if re.fullmatch(r"\d+", text):
        return sp.Integer(int(text))
    return sp.Rational(text) if exact else sp.Float(text)


def _bits(q: sp.Rational) -> int:
    return max(int(q.p).bit_length(), int(q.q).bit_length())


def parse_expression(text: str, *, symbols: Mapping[str, sp.Basic], functions: Mapping[str, Callable],
                     implicit: bool = False, unknown_symbols: bool = False, exact_decimals: bool = False,
                     what: str = "expression", error: type[PerturbError] = PerturbError) -> sp.Expr:
    """Parse ``text`` into a SymPy expression without evaluating any Python (module docstring).

    Args:
        text: the user's string.
        symbols: the names it may use, mapped to SymPy objects (symbols or constants).
        functions: the functions it may call, name -> callable building a SymPy expression.
        implicit: insert ``*`` between juxtaposed factors (``2z``, ``C_W**(2) V``).
        unknown_symbols: turn other names into plain ``sp.Symbol`` (the caller then reports
            them with its own message) instead of refusing them here.
        exact_decimals: read ``0.1`` as the exact rational 1/10 instead of a Float.
        what: how the message names the string ("activation expression", "claim", ...).
        error: the PerturbError subclass raised.

    Raises:
        error: anything outside the whitelist, a syntax error (with its position), a literal or
            power beyond the bounds, or a function called with bad arguments.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> parse_expression("x^2/3 - 0.5", symbols={"x": x}, functions={}, exact_decimals=True)
    x**2/3 - 1/2
    """
    def fail(msg: str):
        raise error(f"cannot parse the {what} {text!r}: {msg}")

    if not isinstance(text, str) or not text.strip():
        raise error(f"the {what} is empty")
    if len(text) > MAX_LENGTH:
        raise error(f"the {what} is {len(text)} characters long; at most {MAX_LENGTH} are accepted")
    toks = _tokens(text, fail)
    if implicit:
        toks = _with_implicit_products(toks, functions, symbols)
    code, literal_at, starts = "", {}, []
    for kind, tok, pos in toks:
        code += (" " if code else "")
        if kind == "num":
            literal_at[len(code)] = tok
        starts.append((len(code), pos))
        code += tok
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError as exc:
        # the offset in the joined tokens, mapped back to the user's text (one line, 1-based)
        at = (exc.offset or 1) - 1
        pos = next((orig + at - c for c, orig in reversed(starts) if c <= at), 0) + 1
        where = f"at position {pos}" if pos <= len(text.rstrip()) else "at the end"
        raise error(f"cannot parse the {what} {text!r} {where}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        fail("it is nested too deeply")
    allowed_names = ", ".join(sorted(symbols)) or "none"
    allowed_funcs = ", ".join(sorted(functions)) or "none"

    def build(node: ast.AST):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                fail(f"the literal {node.value!r} is not a number")
            return _number(literal_at[node.col_offset], exact_decimals, fail)
        if isinstance(node, ast.Name):
            name = node.id
            if name.startswith("_"):
                fail(f"the name {name!r} is not allowed (names may not start with '_'); "
                     f"allowed names: {allowed_names}")
            if name in symbols:
                return symbols[name]
            if name in functions:
                fail(f"the function {name!r} must be called with an argument: {name}(...)")
            if unknown_symbols:
                return sp.Symbol(name)
            fail(f"unknown name {name!r}; allowed names: {allowed_names}; functions: {allowed_funcs}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = build(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
            a, b = build(node.left), build(node.right)
            if not (isinstance(a, sp.Expr) and isinstance(b, sp.Expr)):
                fail("an operand is not an expression")
            if isinstance(node.op, ast.Pow):
                return power(a, b)
            if isinstance(node.op, ast.Div) and b == 0:
                fail("division by zero")
            return {ast.Add: sp.Add, ast.Sub: lambda x, y: x - y, ast.Mult: sp.Mul,
                    ast.Div: lambda x, y: x / y}[type(node.op)](a, b)
        if isinstance(node, ast.Call):
            f = node.func
            if not isinstance(f, ast.Name):
                fail("only named functions may be called, e.g. exp(z)")
            if f.id.startswith("_") or f.id not in functions:
                fail(f"unknown function {f.id!r}; allowed functions: {allowed_funcs}")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                fail(f"{f.id}(...) takes plain arguments only")
            args = [build(a) for a in node.args]
            try:
                return functions[f.id](*args)
            except PerturbError as exc:
                fail(str(exc))
            except (TypeError, ValueError, AttributeError, IndexError, NotImplementedError) as exc:
                fail(f"bad arguments to {f.id}(...): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        what_node = {ast.Attribute: "attribute access '.'", ast.Subscript: "indexing [...]",
                     ast.Tuple: "a tuple (a, b)", ast.Compare: "a comparison"}.get(type(node), type(node).__name__)
        fail(f"{what_node} is not allowed; allowed: {_ALLOWED}")

    def power(a, b):
        if b.is_number:
            try:
                big = abs(complex(b)) > MAX_EXPONENT
            except (TypeError, ValueError):
                big = True
            if big:
                fail(f"the exponent {b} is too large (at most {MAX_EXPONENT} in magnitude)")
            if isinstance(a, sp.Rational) and isinstance(b, sp.Rational) and _bits(a) * abs(b) > MAX_POWER_BITS:
                fail(f"the power {a}**{b} is too large (at most {MAX_POWER_BITS} bits)")
        return a**b

    try:
        out = build(tree.body)
    except RecursionError:
        fail("it is nested too deeply")
    if not isinstance(out, sp.Expr):
        fail("it is not an expression")
    return out


def parse_number(text: str, *, what: str = "number", error: type[PerturbError] = PerturbError) -> sp.Rational:
    """An exact number from ``"0.1"``, ``"1/3"``, ``"-2e-3"`` (no names, bounded like any literal).

    >>> parse_number("0.1")
    1/10
    """
    out = parse_expression(text, symbols={}, functions={}, exact_decimals=True, what=what, error=error)
    if not out.is_Rational:
        raise error(f"the {what} {text!r} is not a real number")
    return out
