"""The Monte Carlo laboratory: real finite-width random networks, estimators, verdicts.

Simulation uses explicit weight matrices and biases (docs/conventions.md) by default — never the
conditional Gaussian structure that the theory being tested relies on.  ``sampler="law"`` draws
the forward pass from that exact conditional law instead (much faster, forward outputs only); it
is checked against the explicit weights, which stay the reference.  Estimators return
:class:`Estimate` (value, stderr, n, dof); :func:`verdict` / :func:`assert_agrees` is the one
rule for comparing any prediction with an estimate.

>>> import numpy as np
>>> from perturb.montecarlo import cumulant, assert_agrees
>>> x = np.random.default_rng(0).standard_normal(50_000)
>>> assert_agrees(1.0, cumulant(x, 2)).passed
True
"""

from ._estimators import (
    DEFAULT_GROUPS,
    Estimate,
    bootstrap,
    central_moment,
    cumulant,
    extrapolate_in_width,
    jackknife,
    joint_cumulant,
    log_moment,
    moment,
    standardized_cumulant,
    standardized_moment,
)
from ._executor import Executor, open_executor
from ._simulate import (
    CHUNK_BYTES,
    SAMPLERS,
    WEIGHT_LAWS,
    chunk_size,
    run_sweep,
    sample_jacobian,
    sample_ntk,
    sample_outputs,
    sample_preactivations,
)
from ._train import TrainResult, train_ensemble, train_gd
from ._verdict import Verdict, assert_agrees, verdict

__all__ = [
    "sample_outputs",
    "sample_preactivations",
    "sample_jacobian",
    "sample_ntk",
    "train_gd",
    "train_ensemble",
    "TrainResult",
    "run_sweep",
    "Executor",
    "open_executor",
    "chunk_size",
    "CHUNK_BYTES",
    "WEIGHT_LAWS",
    "SAMPLERS",
    "DEFAULT_GROUPS",
    "Estimate",
    "extrapolate_in_width",
    "bootstrap",
    "central_moment",
    "cumulant",
    "jackknife",
    "joint_cumulant",
    "log_moment",
    "moment",
    "standardized_moment",
    "standardized_cumulant",
    "Verdict",
    "assert_agrees",
    "verdict",
]
