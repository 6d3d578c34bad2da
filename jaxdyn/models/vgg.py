"""Hanson's dense-sample VGG-style net.

``num_conv`` 3x3 conv layers (``conv_features`` filters, SAME padding, ReLU) at
full resolution, PyTorch-style adaptive average pool to ``pool_size`` x
``pool_size``, flatten in (C, H, W) order (so weights line up with the paper's
torch model), then Dense+ReLU+Dropout per ``hidden`` width and a final Dense to
``num_classes`` logits.

Parameter counts on 3-channel inputs (independent of H, W thanks to the pool):
``vgg_paper()`` 2,284,969; ``vgg_abstract()`` 1,235,369.

Activations are sown to the ``'intermediates'`` collection (no cost unless it
is mutable): ``conv_{i}`` (post-ReLU, ``(N, H, W, conv_features)``) and
``hidden_last`` (post-ReLU, pre-dropout, ``(N, hidden[-1])``).  Read them with
``model.apply(v, x, mutable=['intermediates'])`` or
:func:`jaxdyn.models.layers.capture_intermediates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdyn.models.layers import (
    adaptive_avg_pool2d,
    check_choice,
    check_positive_int,
    check_rate,
)
from jaxdyn.models.rbe_conv import CONV_IMPLS, make_conv

Array = jax.Array
"""A JAX array (alias of ``jax.Array``)."""


class DenseSampleVGG(nn.Module):
    """Dense-sample VGG (Hanson).

    Attributes:
      num_classes: output logits.
      num_conv: conv layers (>= 1); params ``conv2d_{i}`` (``conv_{i}`` is
        taken by the sown activations -- flax forbids sharing the name).
      conv_features: filters per conv layer.
      hidden: widths of the hidden Dense layers (>= 1 layer); params
        ``dense_{j}``; the output layer is ``head``.
      pool_size: adaptive-pool output side (int).
      dropout_rate: dropout after each hidden ReLU (only with ``train=True``).
      conv: ``'patches'`` (:class:`PatchConv`) or ``'flax'`` (``nn.Conv``).
      kernel_size: conv kernel side (3 in the paper).
    """

    num_classes: int = 5
    num_conv: int = 5
    conv_features: int = 3
    hidden: Sequence[int] = (1024, 1024)
    pool_size: int = 20
    dropout_rate: float = 0.5
    conv: str = "patches"
    kernel_size: int = 3

    def __post_init__(self):
        check_positive_int("num_classes", self.num_classes)
        check_positive_int("num_conv", self.num_conv)
        check_positive_int("conv_features", self.conv_features)
        try:
            hidden = tuple(self.hidden)
        except TypeError:
            raise ValueError(f"hidden must be a sequence of ints, got {self.hidden!r}") from None
        if len(hidden) < 1:
            raise ValueError(f"hidden must list at least one hidden width, got {self.hidden!r}")
        for w in hidden:
            check_positive_int("hidden", w)
        # Tuple keeps the module hashable (static jit arg).
        object.__setattr__(self, "hidden", tuple(int(w) for w in hidden))
        check_positive_int("pool_size", self.pool_size)
        check_rate("dropout_rate", self.dropout_rate)
        check_choice("conv", self.conv, CONV_IMPLS)
        check_positive_int("kernel_size", self.kernel_size)
        super().__post_init__()

    @nn.compact
    def _forward(self, x: Array, train: bool) -> tuple[Array, Array]:
        if x.ndim != 4:
            raise ValueError(f"x must have shape (N, H, W, C), got shape {x.shape}")
        h = jnp.asarray(x, jnp.float32)
        k = (self.kernel_size, self.kernel_size)
        for i in range(self.num_conv):
            h = nn.relu(make_conv(self.conv, self.conv_features, k, "SAME", f"conv2d_{i}")(h))
            self.sow("intermediates", f"conv_{i}", h)
        h = adaptive_avg_pool2d(h, self.pool_size)
        # Channels-first flatten, as torch.flatten on (N, C, H, W).
        h = jnp.transpose(h, (0, 3, 1, 2)).reshape(h.shape[0], -1)
        for j, width in enumerate(self.hidden):
            h = nn.relu(nn.Dense(width, name=f"dense_{j}")(h))
            if j == len(self.hidden) - 1:
                self.sow("intermediates", "hidden_last", h)
                feats = h
            h = nn.Dropout(self.dropout_rate, deterministic=not train, name=f"dropout_{j}")(h)
        logits = nn.Dense(self.num_classes, name="head")(h)
        return logits, feats

    def __call__(self, x: Array, train: bool = False) -> Array:
        """Logits.

        Args:
          x: ``(N, H, W, C)`` images (C = 3 for the paper).
          train: enable dropout (needs ``rngs={'dropout': key}``).

        Returns:
          ``(N, num_classes)`` logits.
        """
        return self._forward(x, train)[0]

    def features(self, x: Array, train: bool = False) -> Array:
        """Last hidden layer activations (post-ReLU, pre-dropout).

        Use ``model.apply(v, x, method='features')``.

        Args:
          x: ``(N, H, W, C)``.

        Returns:
          ``(N, hidden[-1])``.
        """
        return self._forward(x, train)[1]


def vgg_paper(**kwargs: Any) -> DenseSampleVGG:
    """The paper's model: hidden (1024, 1024); 2,284,969 params on RGB input."""
    kwargs.setdefault("hidden", (1024, 1024))
    return DenseSampleVGG(**kwargs)


def vgg_abstract(**kwargs: Any) -> DenseSampleVGG:
    """The abstract's 1.24M variant: hidden (1024,); 1,235,369 params on RGB input."""
    kwargs.setdefault("hidden", (1024,))
    return DenseSampleVGG(**kwargs)
