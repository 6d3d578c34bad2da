"""Adapters: models that are not flax linen modules, in the form the engine and the NTK take.

The engine's gradient learner calls ``model.init({'params': key}, x)`` and
``model.apply({'params': params}, x)`` (with ``train=`` when the model's ``__call__`` takes it).
Two small adapters give other models that interface, so they train, record and get their NTKs
like the package's own:

* :class:`PureModel` -- a pair of pure functions ``init(key, x) -> params`` and
  ``apply(params, x) -> outputs`` (neural-tangents' ``stax`` style, or hand-written JAX);
* :class:`EquinoxModel` -- an equinox module, built per member by ``make(key) -> module``; its
  array leaves are the parameters, the rest is static structure.

Both are frozen dataclasses compared by value (their functions by identity), so the engine
compiles once per model; pass module-level functions (or classes), not lambdas made in a loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

PyTree = Any
"""A pytree of arrays (nested dicts, lists, tuples of arrays), e.g. a model's parameters."""
Array = jax.Array
"""A JAX array (alias of ``jax.Array``)."""


def _params_key(rngs) -> Array:
    if isinstance(rngs, dict):
        if "params" not in rngs:
            raise ValueError("rngs: expected {'params': key}")
        return rngs["params"]
    return rngs


@dataclasses.dataclass(frozen=True)
class PureModel:
    """A model given as two pure functions.

    Attributes:
        init_fn: ``init_fn(key, x) -> params``: the parameters (any pytree) for inputs like ``x``
            (B, ...). A neural-tangents ``stax`` init (``init_fn(key, input_shape) -> (shape,
            params)``) is wrapped with ``stax_init=True``.
        apply_fn: ``apply_fn(params, x) -> outputs`` for a batch ``x`` (B, ...).
        stax_init: ``init_fn`` takes the input shape and returns ``(output_shape, params)``.
    """

    init_fn: Callable[..., Any]
    apply_fn: Callable[[PyTree, Array], Array]
    stax_init: bool = False

    def init(self, rngs, x: Array, **kwargs) -> dict:
        """``{'params': params}`` drawn with ``rngs['params']`` for inputs like ``x``."""
        key = _params_key(rngs)
        params = self.init_fn(key, x.shape)[1] if self.stax_init else self.init_fn(key, x)
        return {"params": params}

    def apply(self, variables: dict, x: Array, **kwargs) -> Array:
        """``apply_fn(variables['params'], x)``; flax-only keywords (``rngs``, ``method``) are refused."""
        unknown = set(kwargs) - {"rngs"}
        if unknown:
            raise ValueError(f"PureModel.apply: a pure (init, apply) pair takes no {sorted(unknown)} (no train mode, no methods)")
        return self.apply_fn(variables["params"], x)


@dataclasses.dataclass(frozen=True)
class EquinoxModel:
    """An equinox module as an engine model.

    Attributes:
        make: ``make(key) -> equinox.Module``; called with each member's key to draw its
            parameters (the module's array leaves), and abstractly to recover its structure.
        batched: the module takes a batch (B, ...) itself; default False, an equinox module
            takes one example and the adapter vmaps it over the batch.
    """

    make: Callable[[Array], Any]
    batched: bool = False

    def _static(self):
        import equinox as eqx

        abstract = eqx.filter_eval_shape(self.make, jax.random.key(0))
        return eqx.partition(abstract, eqx.is_array)[1]

    def init(self, rngs, x: Array, **kwargs) -> dict:
        """``{'params': the module's array leaves}`` (an equinox-structured pytree)."""
        import equinox as eqx

        module = self.make(_params_key(rngs))
        if not isinstance(module, eqx.Module):
            raise ValueError(f"EquinoxModel.make: expected an equinox.Module, got {type(module).__name__}")
        return {"params": eqx.partition(module, eqx.is_array)[0]}

    def apply(self, variables: dict, x: Array, **kwargs) -> Array:
        """The module rebuilt from the parameters, applied to the batch ``x`` (B, ...)."""
        import equinox as eqx

        unknown = set(kwargs) - {"rngs"}
        if unknown:
            raise ValueError(f"EquinoxModel.apply: an equinox module takes no {sorted(unknown)} here")
        module = eqx.combine(variables["params"], self._static())
        return module(x) if self.batched else jax.vmap(module)(x)
