"""Deep linear network y = W_D ... W_1 x (no biases).

Math layout: ``W_l`` has shape ``(d_l, d_{l-1})`` ("out, in").  Flax layout:
layer ``layer_{l-1}`` is an ``nn.Dense(use_bias=False)`` whose ``kernel`` is
``W_l.T`` with shape ``(d_{l-1}, d_l)``.  :func:`weight_matrices` and
:func:`params_from_matrices` convert between the two (both accept extra
leading axes, e.g. a seed-ensemble axis).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.models.layers import check_choice, check_positive_int

Array = jax.Array
"""A JAX array (alias of ``jax.Array``)."""

_INITS = ("small_random", "orthogonal", "given")


class _ConstMatrices(Sequence):
    """Read-only, hashable tuple of float32 numpy matrices.

    Flax modules must be hashable to be used as static jit arguments; a plain
    tuple of arrays is not, so 'given' matrices are frozen into this wrapper.
    """

    def __init__(self, matrices: Sequence[Any]):
        mats = []
        for m in matrices:
            a = np.array(m, dtype=np.float32)  # copy: later edits by the caller don't leak in
            a.setflags(write=False)
            mats.append(a)
        self._mats = tuple(mats)

    def __getitem__(self, i):
        return self._mats[i]

    def __len__(self):
        return len(self._mats)

    def __hash__(self):
        return hash(tuple((a.shape, a.tobytes()) for a in self._mats))

    def __eq__(self, other):
        if not isinstance(other, _ConstMatrices):
            return NotImplemented
        return len(self) == len(other) and all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(self, other)
        )

    def __repr__(self):
        return f"ConstMatrices(shapes={[a.shape for a in self._mats]})"


def _check_widths(widths: Any) -> tuple[int, ...]:
    try:
        w = tuple(widths)
    except TypeError:
        raise ValueError(f"widths must be a sequence of ints, got {widths!r}") from None
    if len(w) < 2:
        raise ValueError(
            f"widths must list (d_0, ..., d_D) with depth D >= 1, i.e. at least 2 entries; got {widths!r}"
        )
    for d in w:
        check_positive_int("widths", d)
    return tuple(int(d) for d in w)


def _check_matrices(matrices: Sequence[Any], widths: tuple[int, ...]) -> None:
    depth = len(widths) - 1
    if len(matrices) != depth:
        raise ValueError(
            f"matrices must hold one matrix per layer (depth {depth} from widths {widths}), "
            f"got {len(matrices)}"
        )
    for l, m in enumerate(matrices):
        expected = (widths[l + 1], widths[l])
        if tuple(np.shape(m)) != expected:
            raise ValueError(
                f"matrices[{l}] (W_{l + 1}) must have shape (out, in) = {expected} for widths "
                f"{widths}, got {tuple(np.shape(m))}"
            )


class DeepLinear(nn.Module):
    """Bias-free deep linear chain ``y = W_D ... W_1 x``.

    The init scheme field is ``init_scheme`` (not ``init``: a dataclass field
    named ``init`` would shadow ``nn.Module.init``).  :func:`deep_linear`
    accepts ``init=`` for convenience.

    Attributes:
      widths: ``(d_0, d_1, ..., d_D)``, input dimension first; depth D >= 1.
      init_scheme: ``'small_random'`` (iid N(0, scale^2) entries), ``'orthogonal'``
        ((semi-)orthogonal W_l times ``scale``, flax/jax orthogonal
        initializer), or ``'given'`` (use ``matrices``).
      scale: std (small_random) or multiplier (orthogonal); must be >= 0.
      matrices: for ``init_scheme='given'``: ``[W_1, ..., W_D]`` in math layout,
        ``W_l`` of shape ``(d_l, d_{l-1})``. Stored as a hashable read-only
        copy. Must be ``None`` otherwise.

    Params: ``{'layer_{l}': {'kernel': (d_l, d_{l+1})}}`` for l = 0..D-1.
    """

    widths: Sequence[int]
    init_scheme: str = "small_random"
    scale: float = 1e-3
    matrices: Sequence[Any] | None = None

    def __post_init__(self):
        # Normalise to hashable containers so the module can be a static jit arg.
        object.__setattr__(self, "widths", _check_widths(self.widths))
        check_choice("init_scheme", self.init_scheme, _INITS)
        try:
            scale_ok = math.isfinite(float(self.scale)) and float(self.scale) >= 0
        except (TypeError, ValueError):
            scale_ok = False
        if not scale_ok:
            raise ValueError(f"scale must be a finite float >= 0, got {self.scale!r}")
        if self.init_scheme == "given":
            if self.matrices is None:
                raise ValueError("init_scheme='given' requires matrices=[W_1, ..., W_D]")
            _check_matrices(self.matrices, self.widths)
            if not isinstance(self.matrices, _ConstMatrices):
                object.__setattr__(self, "matrices", _ConstMatrices(self.matrices))
        elif self.matrices is not None:
            raise ValueError(
                f"matrices is only used with init_scheme='given', got init_scheme={self.init_scheme!r}"
            )
        super().__post_init__()

    @property
    def depth(self) -> int:
        """Number of weight matrices D."""
        return len(self.widths) - 1

    def _kernel_init(self, l: int):
        if self.init_scheme == "small_random":
            return nn.initializers.normal(stddev=float(self.scale))
        if self.init_scheme == "orthogonal":
            return nn.initializers.orthogonal(scale=float(self.scale))
        w = self.matrices[l]

        def given(key, shape, dtype=jnp.float32):
            del key  # deterministic
            return jnp.asarray(w.T, dtype=dtype).reshape(shape)

        return given

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        """Apply the chain.

        Args:
          x: ``(N, d_0)``.
          train: unused (no dropout); accepted for the common model contract.

        Returns:
          ``(N, d_D)``.
        """
        del train
        if x.shape[-1] != self.widths[0]:
            raise ValueError(f"x must have last axis d_0 = {self.widths[0]}, got shape {x.shape}")
        h = jnp.asarray(x, jnp.float32)
        for l in range(self.depth):
            h = nn.Dense(
                self.widths[l + 1],
                use_bias=False,
                kernel_init=self._kernel_init(l),
                param_dtype=jnp.float32,
                name=f"layer_{l}",
            )(h)
        return h


def deep_linear(
    widths: Sequence[int],
    init: str = "small_random",
    scale: float = 1e-3,
    matrices: Sequence[Any] | None = None,
) -> DeepLinear:
    """Build a :class:`DeepLinear`; ``init`` maps to its ``init_scheme`` field."""
    return DeepLinear(widths, init_scheme=init, scale=scale, matrices=matrices)


def _params_dict(params: Mapping[str, Any]) -> Mapping[str, Any]:
    # Accept either the full variables dict or just its 'params' entry.
    return params["params"] if "params" in params else params


def weight_matrices(params: Mapping[str, Any]) -> list[Array]:
    """Math-layout weight matrices of a :class:`DeepLinear`.

    Args:
      params: ``variables`` or ``variables['params']``; kernels may carry
        extra leading axes (e.g. an ensemble axis ``S``).

    Returns:
      ``[W_1, ..., W_D]`` with ``W_l`` of shape ``(..., d_l, d_{l-1})``.
    """
    p = _params_dict(params)
    names = sorted((k for k in p if k.startswith("layer_")), key=lambda k: int(k.split("_")[1]))
    if not names:
        raise ValueError("params contains no 'layer_{l}' entries")
    return [jnp.swapaxes(p[n]["kernel"], -1, -2) for n in names]


def params_from_matrices(matrices: Sequence[Any]) -> dict[str, Any]:
    """Build a :class:`DeepLinear` params dict without calling ``init``.

    Args:
      matrices: ``[W_1, ..., W_D]``, ``W_l`` of shape ``(..., d_l, d_{l-1})``
        (leading axes, e.g. a seed axis, are kept).

    Returns:
      ``{'layer_{l}': {'kernel': W_{l+1}^T}}`` (float32) -- the ``'params'``
      collection; wrap as ``{'params': ...}`` to call ``apply``.
    """
    mats = [jnp.asarray(m, jnp.float32) for m in matrices]
    if not mats:
        raise ValueError("matrices must contain at least one matrix")
    for l in range(len(mats) - 1):
        if mats[l + 1].shape[-1] != mats[l].shape[-2]:
            raise ValueError(
                f"matrices[{l + 1}] has input dim {mats[l + 1].shape[-1]} but matrices[{l}] "
                f"has output dim {mats[l].shape[-2]}"
            )
    return {f"layer_{l}": {"kernel": jnp.swapaxes(m, -1, -2)} for l, m in enumerate(mats)}


def end_to_end_matrix(params: Mapping[str, Any]) -> Array:
    """Product ``W_D ... W_1`` of shape ``(..., d_D, d_0)`` (HIGHEST precision)."""
    mats = weight_matrices(params)
    out = mats[0]
    for w in mats[1:]:
        out = jnp.matmul(w, out, precision=jax.lax.Precision.HIGHEST)
    return out
