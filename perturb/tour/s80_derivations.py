"""Tour: derivations as documents, and verifying a hand calculation."""

from __future__ import annotations

TITLE = "Derivations as LaTeX documents; verifying a hand calculation"


def run(ctx) -> list[str]:
    import derivations
    from perturb.latex import compile_pdf, pdflatex_available, to_latex, to_markdown
    from perturb.verify import verify_claim

    lines = []
    names = ["four_point_vertex", "catapult"] if ctx.quick else list(derivations.REGISTRY)
    for name in names:
        doc = derivations.build(name)
        tex = to_latex(doc)
        ctx.write_text(f"derivation_{name}.tex", tex)
        ctx.write_text(f"derivation_{name}.md", to_markdown(doc))
        state = "checks passed" if doc.checks_passed else "CHECKS FAILED"
        if pdflatex_available():
            compile_pdf(tex, ctx.path(f"derivation_{name}.pdf"))
            state += ", PDF compiled"
        lines.append(f"{name}: {len(doc.steps)} steps, {len(doc.checks)} checks ({state})")
    good = verify_claim("V", "C_W**2*(E(s**4) - E(s**2)**2) + r*chi**2*V")
    bad = verify_claim("V", "C_W**2*(E(s**4) - E(s**2)**2) + chi**2*V")
    lines.append(f"verify V (PDLT form): {'equal' if good.holds else 'not equal'}; "
                 f"without the factor r: {'equal' if bad.holds else 'not equal'} — {next(iter(bad.difference))}")
    return lines
