"""The document model of a derivation: statement, assumptions, steps with their rules, result, checks.

A :class:`Derivation` holds SymPy expressions, never LaTeX strings of results: the writers
(:mod:`perturb.latex.writers`) print every expression with SymPy's LaTeX printer, so the printed
result *is* the engine's expression.  Left-hand sides and prose are notation (``V^{(\\ell+1)}``,
"Price's theorem"), written as short LaTeX strings.

Numeric checks are run when a derivation is built and stored as :class:`Check` records with
their outcome; a document whose checks fail still renders (and says so), but
:meth:`Derivation.assert_checks` raises.

>>> import sympy as sp
>>> K = sp.Symbol("K", positive=True)
>>> d = Derivation(name="demo", title="Demo", statement="A demo.",
...                result=[Equation("f(K)", K**2)])
>>> d.checks_passed
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..errors import PerturbError

__all__ = ["Equation", "Step", "Check", "Derivation"]


@dataclass(frozen=True)
class Equation:
    """``lhs = rhs`` (or ``lhs`` ``relation`` ``rhs``): ``lhs`` is notation, ``rhs`` an expression.

    Attributes:
        lhs: LaTeX of the quantity being defined (notation, e.g. ``"V^{(\\ell+1)}"``).
        rhs: the SymPy expression (printed by SymPy's LaTeX printer).
        relation: LaTeX of the relation (``"="``, ``"\\simeq"``, ``":="``).
        note: a short remark printed after the equation (plain text).
    """

    lhs: str
    rhs: sp.Basic
    relation: str = "="
    note: str = ""

    def __post_init__(self):
        if isinstance(self.rhs, str):
            raise PerturbError("an Equation's right-hand side must be a SymPy expression, not a string")
        object.__setattr__(self, "rhs", sp.sympify(self.rhs))


@dataclass(frozen=True)
class Step:
    """One step of a derivation: what is done, the rule that justifies it, and its equations."""

    title: str
    rule: str
    text: str = ""
    equations: tuple[Equation, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "equations", tuple(self.equations))


@dataclass(frozen=True)
class Check:
    """A numeric (or exact) check run while building the derivation.

    Attributes:
        description: what is compared with what, and by which independent method.
        expected, observed: the two values, as printed text (numbers formatted by the builder).
        passed: the outcome.
        detail: how the decision was made (tolerance with its reason, z-score and p-value, ...).
    """

    description: str
    expected: str
    observed: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Derivation:
    """A complete derivation, ready for the LaTeX / Markdown / JSON writers."""

    name: str
    title: str
    statement: str
    assumptions: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    result: tuple[Equation, ...] = ()
    checks: tuple[Check, ...] = ()
    references: tuple[str, ...] = ()
    parameters: dict = field(default_factory=dict)
    symbol_names: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        for name in ("assumptions", "steps", "result", "checks", "references"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def checks_passed(self) -> bool:
        """True when every embedded check passed."""
        return all(c.passed for c in self.checks)

    def assert_checks(self) -> None:
        """Raise ``AssertionError`` naming the failed checks, if any."""
        bad = [c for c in self.checks if not c.passed]
        if bad:
            lines = [f"{c.description}: expected {c.expected}, observed {c.observed} ({c.detail})" for c in bad]
            raise AssertionError(f"derivation '{self.name}': {len(bad)} check(s) failed:\n" + "\n".join(lines))
