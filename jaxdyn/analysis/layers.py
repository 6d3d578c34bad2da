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

Sufficient statistics. Over many exemplars the coupling is computed from sums: with
n = the number of (image, position) pairs, s_l = sum m_l and c_ll' = sum m_l m_l',

    rho(l, l') = (c_ll' - s_l s_l' / n) / sqrt((c_ll - s_l^2 / n)(c_l'l' - s_l'^2 / n)).

:func:`coupling_statistics` gives (n, s, c) of a batch of activations (inside the engine's
scan, summed over chunks and exemplar groups), :func:`coupling_from_statistics` the coupling
(float64, on the host); sums over any union of groups give that union's coupling, so a results
file holding per-group statistics lets one recompute the coupling without jaxdyn.

Weight reading. Figure 17 may also be read as a correlation of the layers' weights: the conv
kernels all have one shape (3, 3, C, C), so :func:`weight_correlation` gives the Pearson
correlation of the flattened kernels of every pair of layers.

Distance profile. :func:`distance_profile` averages rho(l, l + d) over l for each layer
distance d; :func:`profile_linearity` is the R^2 of a straight line through it (the paper:
"nearly linear over the 5 layers").

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

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
"""A JAX array (alias of ``jax.Array``)."""


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


def coupling_statistics(activations: Sequence[Array], mask: Array | None = None) -> tuple[Array, Array, Array]:
    """Sums from which the coupling of these activations (and of any union of batches) follows.

    Args:
        activations: L arrays (N, H, W, C) of the same N images.
        mask: (N,) weights (1: counted, 0: padding), or None for all.

    Returns:
        (count (), sums (L,), cross (L, L)) float32: the number of (image, position) pairs, and
        sum m_l, sum m_l m_l' of the channel-mean maps over them (products at HIGHEST precision).
    """
    maps = jnp.stack([jnp.mean(jnp.asarray(a, jnp.float32), axis=-1) for a in activations])  # (L, N, H, W)
    num_l, n = maps.shape[0], maps.shape[1]
    w = jnp.ones((n,), jnp.float32) if mask is None else jnp.asarray(mask, jnp.float32)
    flat = maps.reshape(num_l, n, -1)
    weighted = flat * w[None, :, None]
    count = jnp.sum(w) * flat.shape[-1]
    sums = jnp.sum(weighted, axis=(1, 2))
    cross = jnp.einsum("anp,bnp->ab", weighted, flat, precision=jax.lax.Precision.HIGHEST)
    return count, sums, cross


def coupling_from_statistics(count, sums, cross):
    """(..., L, L) coupling rho(l, l') from (count (...), sums (..., L), cross (..., L, L)), in
    float64 numpy (see the module docstring); NaN where a layer's map is constant."""
    count = np.asarray(count, np.float64)[..., None, None]
    sums = np.asarray(sums, np.float64)
    cross = np.asarray(cross, np.float64)
    cov = cross - sums[..., :, None] * sums[..., None, :] / count
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.where(var > 0, var, np.nan))
        return cov / (sd[..., :, None] * sd[..., None, :])


def distance_profile(coupling):
    """(..., L - 1) mean coupling rho(l, l + d) over l, for d = 1 .. L - 1, of (..., L, L)."""
    c = np.asarray(coupling, np.float64)
    num_l = c.shape[-1]
    return np.stack([np.mean(np.stack([c[..., i, i + d] for i in range(num_l - d)], -1), -1) for d in range(1, num_l)], -1)


def profile_linearity(profile) -> float:
    """R^2 of the least-squares line through a distance profile (L - 1,) against d = 1 .. L - 1
    (1: exactly linear); NaN for a constant or non-finite profile."""
    y = np.asarray(profile, np.float64)
    if y.size < 3 or not np.all(np.isfinite(y)):
        return float("nan")
    d = np.arange(1, y.size + 1, dtype=np.float64)
    slope, intercept = np.polyfit(d, y, 1)
    sst = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - slope * d - intercept) ** 2)) / sst if sst > 0 else float("nan")


def weight_correlation(kernels, kernel_ndim: int = 4) -> np.ndarray:
    """(..., L, L) Pearson correlation of the flattened kernels of every pair of layers.

    Args:
        kernels: (..., L, *kernel shape), one kernel shape for every layer (e.g. (3, 3, C, C)).
        kernel_ndim: the number of trailing kernel axes (4 for a 2-D conv kernel).
    """
    k = np.asarray(kernels, np.float64)
    if k.ndim < kernel_ndim + 1:
        raise ValueError(f"kernels: expected (..., L, {kernel_ndim} kernel axes), got shape {k.shape}")
    flat = k.reshape(k.shape[: k.ndim - kernel_ndim] + (-1,))
    flat = flat - flat.mean(-1, keepdims=True)
    cov = np.einsum("...ap,...bp->...ab", flat, flat)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / (sd[..., :, None] * sd[..., None, :])


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
