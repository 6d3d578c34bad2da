"""Configuration field groups shared by several experiments, as dataclass mixins.

A mixin is a frozen dataclass of :func:`~jaxdyn.experiments.base.param` fields (and the
cross-field rules they need, in a ``check`` that calls ``super().check()``); an experiment's
``Config`` lists it before :class:`~jaxdyn.experiments.base.Config`::

    @dataclasses.dataclass(frozen=True)
    class RBEResponseConfig(RBETrainingFields, ResponseMeasurementFields, Config): ...

A subclass may redeclare a field to change its default. The registry skips this module.
"""

from __future__ import annotations

import dataclasses

from jaxdyn.engine.losses import LOSSES
from jaxdyn.experiments.base import ConfigError, param

# --- training response (Nakazato: rbe-*) ---
RBE_LOSSES = ("mse", "bce")


@dataclasses.dataclass(frozen=True)
class RBETrainingFields:
    """SGD on random bit-string encoders: learning rate, loss, epochs and record cadence."""

    num_steps: int = param(800, "training epochs (one SGD step on one point each)", min=1, max=10_000_000)
    record_every: int = param(10, "epochs between measurements", min=1, max=1_000_000)
    lr: float = param(0.1, "SGD learning rate (the paper: 0.1)", min=0.0, max=10.0, min_exclusive=True)
    loss: str = param("mse", "training loss: mse (the paper's Eq. 5) or bce", choices=RBE_LOSSES)
    init: str = param("keras", "weight initialisation: keras (Glorot-uniform kernels, zero biases: the paper's Keras nets) "
                      "or flax (LeCun-normal kernels, zero biases)", choices=("keras", "flax"))

    def check(self) -> None:
        super().check()
        if self.num_steps % self.record_every:
            raise ConfigError(f"record_every: must divide num_steps ({self.num_steps}), got {self.record_every}")

    @property
    def loss_fn(self):
        """The engine loss named by ``loss``."""
        return LOSSES[self.loss]


@dataclasses.dataclass(frozen=True)
class ResponseMeasurementFields:
    """Where the response law is read: reported epochs, the power-law window, bootstrap size."""

    epochs: tuple[int, ...] = param((0, 200, 400, 600, 800), "epochs at which the kernel is reported (multiples of record_every)", min=0, max_len=32)
    fit_start: int = param(50, "first epoch of the power-law fit (after the initial phase)", min=1)
    n_boot: int = param(1000, "bootstrap resamples of the seeds for intervals", min=10, max=100_000)

    def check(self) -> None:
        super().check()
        for e in self.epochs:
            if e % self.record_every or e > self.num_steps:
                raise ConfigError(f"epochs: {e} must be a multiple of record_every ({self.record_every}) and <= num_steps ({self.num_steps})")
        if self.fit_start + 2 * self.record_every > self.num_steps:
            raise ConfigError(f"fit_start: {self.fit_start} leaves fewer than 3 records before num_steps ({self.num_steps})")
