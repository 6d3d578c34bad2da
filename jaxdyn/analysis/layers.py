"""Coupling between layers: the correlation of successive conv layers, and linear CKA.

Hanson et al. (2023, Figure 17) plot "the correlation over epochs of successive pairs of layers"
of their five-layer conv stack: a phase transition near epochs 22-28, after which the layers
decorrelate, the nearest layers staying more correlated than distant ones. The paper does not
define the correlation; this module defines two measures precisely.

Layer coupling (the paper's correlation). The VGG's conv layers all have the same shape
(N, H, W, C): stride 1, SAME padding, C = 3 filters. Filter c of layer l and filter c of layer
l + 1 are unrelated (any permutation of filters gives the same net), so each layer is reduced to
its channel-mean map m_l(n, y, x) = mean_c a_l(n, y, x, c) (post-ReLU), which is permutation
invariant and spatially aligned across layers. The coupling of layers l and l' is the Pearson
correlation of m_l and m_l' over all probe images and positions:

    rho(l, l') = cov(m_l, m_l') / (std(m_l) std(m_l')),                       (coupling)

and the successive coupling is rho(l, l + 1). A layer whose map is constant has rho = NaN.

Linear CKA (Kornblith et al. 2019). With X (N, p) and Y (N, q) the flattened activations of
two layers on N probe images, K = X X^T and L = Y Y^T their Gram matrices and H = I - 11^T/N,

    CKA(X, Y) = <HKH, HLH>_F / (||HKH||_F ||HLH||_F),                         (CKA)

invariant to orthogonal transforms and isotropic scaling of either layer, and defined between
layers of different widths. Gram matrices are (N, N), so the engine can record them for every
layer at every epoch at full resolution and CKA is computed afterwards.

The functions accept numpy or jax arrays and use jax.numpy, so they also run inside the
engine's scan (as observables).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array


def channel_mean_maps(activations: Sequence[Array]) -> Array:
    """Stack of channel-mean maps.

    Args:
        activations: L arrays of equal shape (N, H, W, C).

    Returns:
        (L, N * H * W) float32: each layer's mean over channels, flattened.
    """
    shapes = {tuple(a.shape) for a in activations}
    if len(shapes) != 1:
        raise ValueError(f"activations: the coupling needs layers of one shape (N, H, W, C), got {sorted(shapes)}")
    return jnp.stack([jnp.mean(jnp.asarray(a, jnp.float32), axis=-1).reshape(-1) for a in activations])


def coupling_matrix(activations: Sequence[Array]) -> Array:
    """(L, L) Pearson correlation rho(l, l') of the channel-mean maps (coupling), over images and positions.

    Args:
        activations: L arrays of shape (N, H, W, C).
    """
    m = channel_mean_maps(activations)
    m = m - m.mean(axis=1, keepdims=True)
    cov = m @ m.T
    sd = jnp.sqrt(jnp.diag(cov))
    return cov / (sd[:, None] * sd[None, :])


def successive_coupling(activations: Sequence[Array]) -> Array:
    """(L - 1,) rho(l, l + 1): the coupling of each layer with the next."""
    c = coupling_matrix(activations)
    return jnp.diagonal(c, offset=1)


def gram(x: Array) -> Array:
    """Linear Gram matrix K = X X^T of the flattened examples.

    Args:
        x: (N, ...) activations of N examples.

    Returns:
        (N, N) float32.
    """
    x = jnp.asarray(x, jnp.float32).reshape(x.shape[0], -1)
    return jnp.matmul(x, x.T, precision=jax.lax.Precision.HIGHEST)


def center_gram(k: Array) -> Array:
    """H K H with H = I - 11^T / N (double centring). (N, N) -> (N, N)."""
    k = jnp.asarray(k)
    k = k - k.mean(axis=0, keepdims=True)
    return k - k.mean(axis=1, keepdims=True)


def cka_from_grams(k: Array, l: Array) -> Array:  # noqa: E741
    """Linear CKA (CKA) from two (N, N) Gram matrices. Scalar in [0, 1]."""
    kc, lc = center_gram(k), center_gram(l)
    return jnp.sum(kc * lc) / (jnp.linalg.norm(kc) * jnp.linalg.norm(lc))


def linear_cka(x: Array, y: Array) -> Array:
    """Linear CKA between activations ``x`` (N, ...) and ``y`` (N, ...) of the same N examples."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y: need the same examples (first axis), got {x.shape[0]} and {y.shape[0]}")
    return cka_from_grams(gram(x), gram(y))


def cka_matrix(grams: Array) -> Array:
    """(L, L) linear CKA between every pair of layers.

    Args:
        grams: (L, N, N) Gram matrices of L layers on the same N examples.
    """
    g = jnp.asarray(grams, jnp.float32)
    c = jax.vmap(center_gram)(g)
    norms = jnp.sqrt(jnp.sum(c * c, axis=(1, 2)))
    inner = jnp.einsum("aij,bij->ab", c, c, precision=jax.lax.Precision.HIGHEST)
    return inner / (norms[:, None] * norms[None, :])
