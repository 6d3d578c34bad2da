"""rbe-images: the training response law on real images (Nakazato, appendix Fig. 8-9).

The paper trains "the same type of convolutional network", with 2-D convolutions, on one randomly
drawn MNIST image whose label is drawn at every epoch from p(y) with p0/p1 = 1/5. Here the images are
the 8x8 digits that ship with scikit-learn (no download).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdyn.models.layers import check_choice, check_positive_int, check_rate
from jaxdyn.models.rbe_conv import ACTIVATIONS, CONV_IMPLS, make_conv

Array = jax.Array


class RBEConvNet2D(nn.Module):
    """The RBE net with 2-D convolutions (paper appendix: "2 dimensional convolution along the
    input image size"; ELU, the standard N = 3 layers of M = 8 filters).

    Input (N, H, W) or (N, H, W, C) -> ``num_layers`` k x k conv layers (VALID, Keras' default) with
    activation and dropout -> flatten -> Dense(1) -> sigmoid -> (N,). On 8x8 digits with three 3x3
    layers the maps go 8 -> 6 -> 4 -> 2, so the dense layer sees 2 * 2 * features inputs.

    Params: ``conv_{i}`` {kernel (k, k, C_in, features), bias}, ``dense`` {kernel, bias}.
    """

    num_layers: int = 3
    features: int = 8
    kernel_size: int = 3
    activation: str = "elu"
    dropout_rate: float = 0.0
    padding: str = "VALID"
    conv: str = "patches"
    return_logits: bool = False

    def __post_init__(self):
        check_positive_int("num_layers", self.num_layers)
        check_positive_int("features", self.features)
        check_positive_int("kernel_size", self.kernel_size)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_rate("dropout_rate", self.dropout_rate)
        check_choice("padding", self.padding, ("SAME", "VALID"))
        check_choice("conv", self.conv, CONV_IMPLS)
        super().__post_init__()

    @nn.compact
    def _logits(self, x: Array, train: bool) -> Array:
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4:
            raise ValueError(f"x must have shape (N, H, W) or (N, H, W, C), got shape {x.shape}")
        if self.padding == "VALID" and min(x.shape[1:3]) - self.num_layers * (self.kernel_size - 1) < 1:
            raise ValueError(f"image {x.shape[1:3]} too small for {self.num_layers} VALID {self.kernel_size}x{self.kernel_size} convs")
        act = ACTIVATIONS[self.activation]
        h = jnp.asarray(x, jnp.float32)
        k = (self.kernel_size, self.kernel_size)
        for i in range(self.num_layers):
            h = act(make_conv(self.conv, self.features, k, self.padding, f"conv_{i}")(h))
            h = nn.Dropout(self.dropout_rate, deterministic=not train, name=f"dropout_{i}")(h)
        h = h.reshape(h.shape[0], -1)
        return nn.Dense(1, name="dense")(h)[:, 0]

    def __call__(self, x: Array, train: bool = False) -> Array:
        """(N, H, W[, C]) images -> (N,) probabilities (logits if ``return_logits``)."""
        z = self._logits(x, train)
        return z if self.return_logits else jax.nn.sigmoid(z)

    def logits(self, x: Array, train: bool = False) -> Array:
        """Pre-sigmoid outputs (N,); ``apply(..., method='logits')``."""
        return self._logits(x, train)
