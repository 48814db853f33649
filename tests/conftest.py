"""Shared test helpers."""

import pytest


@pytest.fixture
def ntk_move_cli(capsys):
    """Run ``perturb ntk-move ARGS`` in-process: returns (exit status, stdout, stderr)."""
    from perturb.cli import main

    def run(*args):
        status = main(["ntk-move", *args])
        out = capsys.readouterr()
        return status, out.out, out.err

    return run
