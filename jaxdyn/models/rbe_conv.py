"""Nakazato's random bit-string encoder (RBE) 1-D convolutional net.

Input: bit strings ``(N, 16)`` of float 0/1 -> ``(N, 16, 1)``; ``num_layers``
Conv1D layers (``features`` filters, kernel ``kernel_size``), each followed by
ELU/ReLU and dropout; flatten; Dense to 1; sigmoid -> ``(N,)`` probabilities.

Padding defaults to 'VALID' (Keras ``Conv1D``'s default; the paper used Keras
and states no padding): with 16 bits and 3 layers of kernel 3 the lengths go
16 -> 14 -> 12 -> 10, so the dense layer sees 10 * features inputs. The kernel
size 3 is the project's choice too: the paper gives none.

Initialisation (``init_scheme``): ``'flax'`` (flax's defaults: LeCun-normal kernels,
zero biases) or ``'keras'`` (Keras' defaults, which the paper's nets had:
Glorot-uniform kernels, U(-l, l) with l = sqrt(6 / (fan_in + fan_out)), fans
counted with the receptive field as Keras does, and zero biases). The model's
default stays ``'flax'``; the rbe-* experiments default to ``'keras'``.

Parametrisation (``parametrization``): ``'standard'`` (the layers compute x @ W + b with W
drawn by ``init_scheme``, as Keras and flax do) or ``'ntk'`` (each conv and the readout
compute (x / sqrt(fan_in)) @ W + b with W drawn as ``init_scheme``'s kernel times sqrt(fan_in),
fan_in = receptive field x input channels). Both give the same initial function from the same
key; under ``'ntk'`` the gradient of each layer's weights is 1/sqrt(fan_in) of the standard one,
so the NTK stays of order one as the width grows and a fixed learning rate takes a
width-independent step (Jacot et al. 2018).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdyn.models.layers import (
    PatchConv,
    check_choice,
    check_positive_int,
    check_rate,
    elu,
)

Array = jax.Array
"""A JAX array."""

ACTIVATIONS = {"elu": elu, "relu": nn.relu}  # layers.elu: nn.elu's values and derivatives, faster on CPU
"""The activations of the RBE nets by name."""
CONV_IMPLS = ("patches", "flax")
"""The convolution implementations: PatchConv (patches, faster on CPU) or flax's nn.Conv; same parameters."""
#: Kernel initialisers by name: flax's default (LeCun normal) and Keras' (Glorot uniform).
#: Biases start at zero in both.
KERNEL_INITS = {"flax": nn.initializers.lecun_normal(), "keras": nn.initializers.glorot_uniform()}
"""Kernel initialisers by scheme name (biases start at zero in both)."""
PARAMETRIZATIONS = ("standard", "ntk")
"""The RBE nets' parametrisations (module docstring)."""


def _scaled_init(init, factor: float):
    """``init``'s draw times ``factor``: the NTK-parametrised kernel whose scaled use
    (x / factor) @ W reproduces the standard layer's initial weights."""
    return lambda key, shape, dtype=jnp.float32: init(key, shape, dtype) * jnp.asarray(factor, dtype)


def make_conv(impl: str, features: int, kernel_size, padding: str, name: str, kernel_init=None, **patch_options) -> nn.Module:
    """``PatchConv`` (impl='patches') or ``nn.Conv`` (impl='flax'); same params either way.
    ``kernel_init`` defaults to flax's (LeCun normal); ``patch_options`` (``bias_in_matmul``,
    ``weight_grad_by_columns``) go to PatchConv only."""
    init = {} if kernel_init is None else {"kernel_init": kernel_init}
    if impl == "patches":
        return PatchConv(features, kernel_size, padding=padding, name=name, **init, **patch_options)
    if impl == "flax":
        return nn.Conv(features, kernel_size, padding=padding, name=name, **init)
    raise ValueError(f"conv must be one of {CONV_IMPLS}, got {impl!r}")


class _RBENet(nn.Module):
    """The RBE net over ``spatial_dims`` input axes (the two classes below): ``num_layers``
    convolutions of ``features`` filters, each followed by the activation and dropout, then
    flatten, Dense(1) and sigmoid. Fields and validation are shared; subclasses set
    ``spatial_dims`` and the PatchConv options."""

    num_layers: int = 3
    features: int = 8
    kernel_size: int = 3
    activation: str = "elu"
    dropout_rate: float = 0.0
    padding: str = "VALID"
    conv: str = "patches"
    return_logits: bool = False
    init_scheme: str = "flax"
    parametrization: str = "standard"

    spatial_dims: ClassVar[int]
    patch_options: ClassVar[tuple[tuple[str, bool], ...]] = ()

    def __post_init__(self):
        check_positive_int("num_layers", self.num_layers)
        check_positive_int("features", self.features)
        check_positive_int("kernel_size", self.kernel_size)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_rate("dropout_rate", self.dropout_rate)
        check_choice("padding", self.padding, ("SAME", "VALID"))
        check_choice("conv", self.conv, CONV_IMPLS)
        check_choice("init_scheme", self.init_scheme, tuple(KERNEL_INITS))
        check_choice("parametrization", self.parametrization, PARAMETRIZATIONS)
        super().__post_init__()

    @nn.compact
    def _logits(self, x: Array, train: bool) -> Array:
        d = self.spatial_dims
        axes = ("L",) if d == 1 else ("H", "W")
        if x.ndim == d + 1:
            x = x[..., None]  # one input channel
        if x.ndim != d + 2:
            raise ValueError(f"x must have shape (N, {', '.join(axes)}) or (N, {', '.join(axes)}, C), got shape {x.shape}")
        if self.padding == "VALID" and min(x.shape[1:1 + d]) - self.num_layers * (self.kernel_size - 1) < 1:
            raise ValueError(f"input {x.shape[1:1 + d]} too short for {self.num_layers} VALID conv layers "
                             f"of kernel_size {self.kernel_size}")
        act = ACTIVATIONS[self.activation]
        init = KERNEL_INITS[self.init_scheme]
        ntk = self.parametrization == "ntk"

        def layer_input(h, fan_in):
            """(the layer's input, its kernel initialiser) under this parametrisation."""
            if not ntk:
                return h, init
            root = float(fan_in) ** 0.5
            return h * (1.0 / root), _scaled_init(init, root)

        h = jnp.asarray(x, jnp.float32)
        for i in range(self.num_layers):
            h, kernel_init = layer_input(h, self.kernel_size ** d * h.shape[-1])
            h = make_conv(self.conv, self.features, (self.kernel_size,) * d, self.padding, f"conv_{i}",
                          kernel_init=kernel_init, **dict(self.patch_options))(h)
            h = act(h)
            h = nn.Dropout(self.dropout_rate, deterministic=not train, name=f"dropout_{i}")(h)
        h = h.reshape(h.shape[0], -1)  # position-major, like Keras' Flatten
        h, kernel_init = layer_input(h, h.shape[-1])
        return nn.Dense(1, name="dense", kernel_init=kernel_init)(h)[:, 0]

    def __call__(self, x: Array, train: bool = False) -> Array:
        """Forward pass: inputs (N, *spatial[, C]) -> (N,) probabilities in (0, 1) (logits if
        ``return_logits``); ``train`` enables dropout."""
        z = self._logits(x, train)
        return z if self.return_logits else jax.nn.sigmoid(z)

    def logits(self, x: Array, train: bool = False) -> Array:
        """Pre-sigmoid outputs ``(N,)``; use ``apply(..., method='logits')``."""
        return self._logits(x, train)


class RBEConvNet(_RBENet):
    """Random bit-string encoder net (Nakazato).

    Attributes:
      num_layers: number of conv layers (>= 1), named ``conv_0 .. conv_{n-1}``.
      features: filters per conv layer.
      kernel_size: 1-D kernel width.
      activation: ``'elu'`` or ``'relu'``.
      dropout_rate: dropout after each conv activation, active only when
        ``train=True`` (needs ``rngs={'dropout': key}`` if rate > 0).
      padding: ``'VALID'`` (default, Keras-like) or ``'SAME'``.
      conv: ``'patches'`` (:class:`PatchConv`, fast under vmap) or ``'flax'``
        (``nn.Conv``); identical parameter trees and outputs.
      return_logits: if True ``__call__`` returns pre-sigmoid logits.
      init_scheme: ``'flax'`` (LeCun-normal kernels, the default) or ``'keras'``
        (Glorot-uniform kernels, as the paper's Keras nets); zero biases in both.
      parametrization: ``'standard'`` (default) or ``'ntk'`` (module docstring): the same
        initial function, a width-independent NTK scale.

    Params: ``conv_{i}`` {kernel (k, C_in, features), bias (features,)},
    ``dense`` {kernel (L_out * features, 1), bias (1,)}.
    """

    spatial_dims: ClassVar[int] = 1
    # Ensembles of this small net on CPU: see PatchConv's bias_in_matmul and weight_grad_by_columns.
    patch_options: ClassVar[tuple[tuple[str, bool], ...]] = (("bias_in_matmul", True), ("weight_grad_by_columns", True))


class RBEConvNet2D(_RBENet):
    """The RBE net with 2-D convolutions (paper appendix: "2 dimensional convolution along the
    input image size"; ELU, the standard N = 3 layers of M = 8 filters).

    Input (N, H, W) or (N, H, W, C) -> ``num_layers`` k x k conv layers (VALID, Keras' default) with
    activation and dropout -> flatten -> Dense(1) -> sigmoid -> (N,). On 8x8 digits with three 3x3
    layers the maps go 8 -> 6 -> 4 -> 2, so the dense layer sees 2 * 2 * features inputs.

    Params: ``conv_{i}`` {kernel (k, k, C_in, features), bias}, ``dense`` {kernel, bias}.
    """

    spatial_dims: ClassVar[int] = 2


@functools.partial(jax.jit, static_argnums=(0, 3))
def _init_members(model: nn.Module, keys: Array, x: Array, stream: int) -> Any:
    return jax.vmap(lambda k: model.init(jax.random.fold_in(jax.random.wrap_key_data(k), stream), x)["params"])(keys)


def init_members(model: nn.Module, keys, x: Array, stream: int = 11) -> Any:
    """Initial parameters of every member, drawn outside the engine (so that kernels can be
    measured on them before training and the engine given them as ``init_params``).

    Args:
        model: the flax model (hashable: compiled once per model and shapes).
        keys: (member, 2) uint32 raw root keys.
        x: (N, ...) an input batch fixing the shapes.
        stream: the ``fold_in`` tag of the initialisation stream of each member's key.

    Returns:
        The ``'params'`` tree with leaves (member, ...).
    """
    return _init_members(model, jnp.asarray(keys), jnp.asarray(x), int(stream))
