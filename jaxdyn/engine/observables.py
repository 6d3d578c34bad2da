"""Ready-made observables: functions of a :class:`~jaxdyn.engine.core.Snapshot`.

Each factory returns ``fn(snapshot) -> array`` for the ``observables`` argument of
:func:`jaxdyn.engine.train`; the engine records it every ``record_every`` steps, giving a
record of shape (seed, time, *shape of fn's output).
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax

from jaxdyn.engine.core import Snapshot


def batch_loss(loss: Callable[[jax.Array, Mapping[str, jax.Array]], jax.Array]):
    """The loss on the batch of the next step, evaluated without dropout. Output: scalar."""

    def fn(snap: Snapshot) -> jax.Array:
        return loss(snap.apply(snap.params, snap.batch["x"]), snap.batch)

    return fn


def predictions(probe: str):
    """The model's outputs on ``data[probe]`` (P, ...) without dropout. Output: (P, ...)."""

    def fn(snap: Snapshot) -> jax.Array:
        return snap.apply(snap.params, snap.data[probe])

    return fn


def parameter(*path: str):
    """One parameter array, by its path in the params tree (e.g. ``'layer_0', 'kernel'``)."""

    def fn(snap: Snapshot) -> jax.Array:
        node = snap.params
        for name in path:
            node = node[name]
        return node

    return fn
