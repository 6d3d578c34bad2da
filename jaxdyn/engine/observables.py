"""Ready-made observables: hashable functions of a :class:`~jaxdyn.engine.core.Snapshot`.

Each is a frozen dataclass, so two equal observables share one compiled program. Pass them in
``train(..., observables={name: obs})`` or a :class:`~jaxdyn.engine.recording.Record`; the engine
records each every ``record_every`` steps, giving a record of shape (seed, time, *output shape).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax

from jaxdyn.engine.core import Snapshot


@dataclasses.dataclass(frozen=True)
class BatchLoss:
    """The loss on the batch of the next step, evaluated without dropout. Output: scalar.

    Attributes:
        loss: ``loss(outputs, batch) -> scalar``.
    """

    loss: Callable[[jax.Array, Mapping[str, jax.Array]], jax.Array]
    attrs = {"long_name": "loss on the next step's batch (evaluation mode)", "units": "1"}

    def __call__(self, snap: Snapshot) -> jax.Array:
        return self.loss(snap.apply(snap.params, snap.batch["x"]), snap.batch)


@dataclasses.dataclass(frozen=True)
class Predictions:
    """The model's outputs on ``data[probe]`` (P, ...) without dropout. Output: (P, ...).

    Attributes:
        probe: the key of the inputs in the member's (or the shared) data.
    """

    probe: str

    @property
    def dims(self):
        return (self.probe,)

    def __call__(self, snap: Snapshot) -> jax.Array:
        return snap.apply(snap.params, snap.data[self.probe])


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One parameter array, by its path in the params tree (e.g. ``('layer_0', 'kernel')``)."""

    path: tuple[str, ...]

    def __call__(self, snap: Snapshot) -> jax.Array:
        node = snap.params
        for name in self.path:
            node = node[name]
        return node


def batch_loss(loss: Callable[[jax.Array, Mapping[str, jax.Array]], jax.Array]) -> BatchLoss:
    """The loss on the batch of the next step, evaluated without dropout. Output: scalar."""
    return BatchLoss(loss)


def predictions(probe: str) -> Predictions:
    """The model's outputs on ``data[probe]`` (P, ...) without dropout. Output: (P, ...)."""
    return Predictions(probe)


def parameter(*path: str) -> Parameter:
    """One parameter array, by its path in the params tree (e.g. ``'layer_0', 'kernel'``)."""
    return Parameter(tuple(path))
