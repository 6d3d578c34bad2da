"""Configuration field groups shared by several experiments, as frozen dataclass mixins.

An experiment's ``Config`` lists a group among its bases (``class MyConfig(GroupFields, Config)``)
to take its fields with their defaults, help and constraints; the registry skips this module.
Each family of experiments has its own section.
"""

from __future__ import annotations

import dataclasses

from jaxdyn.experiments.base import param

# --- neurashed ---


@dataclasses.dataclass(frozen=True)
class NeurashedRulesFields:
    """The appendix's multiplicative rules of Figure 5 and its initial factors (neurashed-ib,
    neurashed-batch): g+ = base^(11/4) x, g- = base^(-1/4) x (the 7th first-level node of the
    Figure 5 graph: base^(3/4) x), lambda and eta ~ U(0, init_high)."""

    base: float = param(1.022, "the appendix's base a of g+ = a^(11/4) x, g- = a^(-1/4) x (Figure 5's 7th node: a^(3/4) x)",
                        min=1.0, max=2.0, min_exclusive=True)
    init_high: float = param(0.01, "initial lambda and eta ~ U(0, init_high)", min=0.0, max=1.0, min_exclusive=True)
