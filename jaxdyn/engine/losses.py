"""Losses in the engine's form ``loss(outputs, batch) -> scalar``.

Each reads the targets from ``batch['y']``. The sum/mean convention matters for theory:
``half_squared_error_sum`` is the objective of Saxe's deep linear analysis, whose gradient
flow at learning rate lr is the reduced ODE with tau = 1/lr.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax


def half_squared_error_sum(outputs: jax.Array, batch: Mapping[str, jax.Array]) -> jax.Array:
    """L = 1/2 sum_mu ||y_mu - f(x_mu)||^2, summed (not averaged) over the batch.

    Args:
        outputs: (B, ...) predictions.
        batch: with ``y`` of the same shape as ``outputs``.
    """
    return 0.5 * jnp.sum((batch["y"] - outputs) ** 2)


def mean_squared_error(outputs: jax.Array, batch: Mapping[str, jax.Array]) -> jax.Array:
    """L = mean over the batch of ||y - f(x)||^2 (Keras' 'mse' for one output).

    Args:
        outputs: (B,) or (B, K) predictions.
        batch: with ``y`` of the same shape.
    """
    err = (batch["y"] - outputs) ** 2
    return jnp.mean(jnp.sum(err.reshape(err.shape[0], -1), axis=-1))


def binary_cross_entropy(outputs: jax.Array, batch: Mapping[str, jax.Array], eps: float = 1e-7) -> jax.Array:
    """Mean binary cross-entropy of probabilities ``outputs`` (B,) against labels ``y`` (B,) in [0, 1].

    Probabilities are clipped to [eps, 1 - eps] as Keras does, so a saturated sigmoid gives a
    large finite loss rather than inf.
    """
    p = jnp.clip(outputs, eps, 1.0 - eps)
    y = batch["y"]
    return -jnp.mean(y * jnp.log(p) + (1.0 - y) * jnp.log1p(-p))


def softmax_cross_entropy(outputs: jax.Array, batch: Mapping[str, jax.Array]) -> jax.Array:
    """Mean softmax cross-entropy of logits ``outputs`` (B, K) against integer labels ``y`` (B,)."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(outputs, batch["y"]))


LOSSES = {
    "mse": mean_squared_error,
    "bce": binary_cross_entropy,
    "half_sse": half_squared_error_sum,
    "softmax_ce": softmax_cross_entropy,
}
"""Losses by the names experiments' configurations use (``loss = "mse"``): ``{name: loss(outputs, batch) -> scalar}``."""
