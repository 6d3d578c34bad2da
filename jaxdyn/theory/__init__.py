"""Reduced theories: ODEs integrated with diffrax, closed forms, infinite-width kernels and
linearised dynamics."""

from jaxdyn._lowering import use_unrolled_threefry_on_cpu
from jaxdyn.theory import kernels, linearized, saxe
from jaxdyn.theory.kernels import (
    AdaptiveAvgPool,
    Conv,
    Dense,
    Elementwise,
    Elu,
    Erf,
    Flatten,
    GlobalAvgPool,
    Kernels,
    Relu,
    Serial,
    from_model,
    linear_chain_kernels,
    serial,
)
from jaxdyn.theory.linearized import (
    Prediction,
    linearize,
    linearized_apply,
    predict_loss,
    predict_mse,
    trajectory_gap,
)
from jaxdyn.theory.saxe import ODESolution, solve_batch

use_unrolled_threefry_on_cpu()  # faster XLA:CPU compilation, the same random bits (jaxdyn/_lowering.py)

__all__ = [
    "AdaptiveAvgPool",
    "Conv",
    "Dense",
    "Elementwise",
    "Elu",
    "Erf",
    "Flatten",
    "GlobalAvgPool",
    "Kernels",
    "ODESolution",
    "Prediction",
    "Relu",
    "Serial",
    "from_model",
    "kernels",
    "linear_chain_kernels",
    "linearize",
    "linearized",
    "linearized_apply",
    "predict_loss",
    "predict_mse",
    "saxe",
    "serial",
    "solve_batch",
    "trajectory_gap",
]
