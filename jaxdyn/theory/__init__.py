"""Reduced theories: ODEs integrated with diffrax, and closed forms."""

from jaxdyn.theory import saxe
from jaxdyn.theory.saxe import ODESolution, solve_batch

__all__ = ["ODESolution", "saxe", "solve_batch"]
