"""Local elasticity (He & Su, arXiv 1910.06943; Su, arXiv 2112.09741 eq. 3.1) for any model and loss.

One SGD step at a base input x with its label, w+ = w - lr grad_w L(z(x, w), y), changes the
logits z = (z_1, ..., z_K) everywhere. Su's measure of the impact of the base x on a test x' is

    LE(x, x') = ||z(x', w+) - z(x', w)|| / ||z(x, w+) - z(x, w)||                 (3.1)

He & Su's kernelized form divides the change at x' by the step instead of by the change at x.
For K logits we project on the loss gradient g = dL/dz(x, w) of the base, the direction the
step pushes the base's logits:

    S_ker(x, x') = -<z(x', w+) - z(x', w), g> / (lr ||g||^2)

which tends, as lr -> 0, to the neural tangent kernel seen along g,

    S_ntk(x, x') = g^T Theta(x', x) g / ||g||^2,   Theta(x', x)_{ab} = sum_p dz_a(x')/dw_p dz_b(x)/dw_p,

because z(x', w+) - z(x', w) = -lr Theta(x', x) g + O(lr^2). For one output (K = 1) both reduce to
He & Su's scalar forms: S_ker = -Delta z(x') / (lr dL/dz(x)) -> Theta(x', x). The NTK comes from
:func:`jaxdyn.ntk.ntk` (vjp then jvp).

Everything takes ``f(params, x) -> (N,) or (N, K)`` logits (e.g. :func:`jaxdyn.ntk.apply_fn`) and an
engine loss ``loss(outputs, batch) -> scalar`` on those logits; the step is taken in evaluation
mode (no dropout), so the measure is a deterministic function of the weights.

:func:`separation` condenses a matrix of pair values into the same-class and other-class
medians and one number, the AUC: the probability that a random same-class pair has a larger
value than a random other-class pair (0.5: no separation; 1: complete).

Figure 6 of Su's text shows tiers: LE is largest for the same class, smaller for a similar class,
smallest for a dissimilar one. :func:`similarity_tiers` defines class similarity without LE, by the
distance between class means of the inputs (the nearest other class is "similar", the farthest
"dissimilar"), and :func:`tier_separation` gives the AUC between two tiers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from jaxdyn import ntk as ntk_module

Array = jax.Array
"""A JAX array (alias of ``jax.Array``)."""
PyTree = Any
"""A pytree of arrays (nested dicts, lists, tuples of arrays), e.g. a model's parameters."""


def _as_2d(z: Array) -> Array:
    return z[:, None] if z.ndim == 1 else z.reshape(z.shape[0], -1)


class StepChanges(NamedTuple):
    """The effect of one SGD step at each base.

    Attributes:
        probe: (B, P, K) z(x', w+) - z(x', w) at every probe x' for the step at base b.
        base: (B, K) z(x, w+) - z(x, w) at the base itself.
        grad: (B, K) g = dL/dz at the base before the step.
        logits: (B, K) z(x, w) at the base before the step.
    """

    probe: Array
    base: Array
    grad: Array
    logits: Array


@functools.partial(jax.jit, static_argnames=("f", "loss", "batch_size"))
def step_changes(f: Callable[[PyTree, Array], Array], params: PyTree, loss: Callable, bases: Array, labels: Array,
                 probes: Array, lr: float, *, batch_size: int | None = None) -> StepChanges:
    """One SGD step at each base (separately, from the same ``params``) and the logit changes.

    Args:
        f: ``f(params, x) -> (N,)`` or ``(N, K)`` logits.
        params: the weights w.
        loss: ``loss(outputs, batch) -> scalar`` with ``batch = {'x': (1, ...), 'y': (1, ...)}``.
        bases: (B, ...) base inputs x.
        labels: (B, ...) their labels (as the loss expects them).
        probes: (P, ...) test inputs x'.
        lr: step size.
        batch_size: bases processed together (``None``: all, vmapped); use a small value for
            large models to bound memory (one parameter copy per base in flight).

    Jitted with ``f`` and ``loss`` static: pass the same function objects to reuse the
    compilation.

    Returns:
        :class:`StepChanges` (K = 1 for a single-output model).
    """
    z_probe = _as_2d(f(params, probes))
    z_base = _as_2d(f(params, bases))

    def one(args):
        x, y, zb = args
        batch = {"x": x[None], "y": y[None]}
        out = f(params, batch["x"])
        g = jax.grad(lambda o: loss(o, batch))(out)
        grads = jax.grad(lambda p: loss(f(p, batch["x"]), batch))(params)
        plus = jax.tree_util.tree_map(lambda p, d: p - lr * d, params, grads)
        return (_as_2d(f(plus, probes)) - z_probe, _as_2d(f(plus, x[None]))[0] - zb, _as_2d(g)[0])

    if batch_size is None:
        dp, db, g = jax.vmap(lambda x, y, zb: one((x, y, zb)))(bases, labels, z_base)
    else:
        dp, db, g = jax.lax.map(one, (bases, labels, z_base), batch_size=batch_size)
    return StepChanges(probe=dp, base=db, grad=g, logits=z_base)


@jax.jit
def local_elasticity(changes: StepChanges) -> Array:
    """LE(x_b, x'_p) of (3.1): (B, P) = ||Delta z(x'_p)|| / ||Delta z(x_b)||."""
    return jnp.linalg.norm(changes.probe, axis=-1) / jnp.linalg.norm(changes.base, axis=-1)[:, None]


@jax.jit
def kernelized_similarity(changes: StepChanges, lr: float) -> Array:
    """He & Su's kernelized similarity along g: (B, P) = -<Delta z(x'_p), g_b> / (lr ||g_b||^2)."""
    g = changes.grad
    return -jnp.einsum("bpk,bk->bp", changes.probe, g) / (lr * jnp.sum(g * g, -1))[:, None]


@functools.partial(jax.jit, static_argnames=("f", "ntk_fn", "batch_size"))
def ntk_similarity(f: Callable[[PyTree, Array], Array], params: PyTree, grad: Array, bases: Array, probes: Array,
                   *, ntk_fn: Callable | None = None, batch_size: int | None = 16) -> Array:
    """The lr -> 0 limit of :func:`kernelized_similarity`: g_b^T Theta(x'_p, x_b) g_b / ||g_b||^2, (B, P).

    Args:
        f, params: as in :func:`step_changes`.
        grad: (B, K) the bases' loss gradients dL/dz (``StepChanges.grad``).
        bases, probes: (B, ...), (P, ...).
        ntk_fn: the empirical NTK, default :func:`jaxdyn.ntk.ntk` ``(f, params, x1, x2) ->
            (N1, N2)`` or ``(N1, N2, K, K)``.
        batch_size: rows of the probes per NTK chunk.
    """
    ntk_fn = ntk_module.ntk if ntk_fn is None else ntk_fn
    theta = ntk_fn(f, params, probes, bases, batch_size=batch_size)  # (P, B[, K, K])
    if theta.ndim == 2:
        theta = theta[..., None, None]
    return jnp.einsum("ka,pkac,kc->kp", grad, theta, grad) / jnp.sum(grad * grad, -1)[:, None]


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a random positive > a random negative) + P(tie) / 2 (the Mann-Whitney AUC)."""
    positive, negative = np.ravel(positive), np.ravel(negative)
    if positive.size == 0 or negative.size == 0:
        return float("nan")
    u = scipy.stats.mannwhitneyu(positive, negative, alternative="two-sided").statistic
    return float(u / (positive.size * negative.size))


class Separation(NamedTuple):
    """Same-class vs other-class summary of a (B, P) matrix of pair values.

    Attributes:
        median_same, median_other: medians over same-class and other-class pairs.
        auc: P(same > other) over random pairs of pairs (0.5: no separation).
        auc_low, auc_high: 95% bootstrap interval of the AUC, resampling bases.
    """

    median_same: float
    median_other: float
    auc: float
    auc_low: float
    auc_high: float


def separation(values: np.ndarray, same: np.ndarray, *, num_bootstrap: int = 200, rng: np.random.Generator | int = 0) -> Separation:
    """Medians and AUC of ``values`` (B, P) for same-class pairs (``same``, (B, P) bool) vs the rest.

    The AUC's interval resamples the B bases with replacement (pairs sharing a base are not
    independent, so resampling pairs would understate the uncertainty). Non-finite values are
    left out.
    """
    values, same = np.asarray(values, np.float64), np.asarray(same, bool)
    if values.shape != same.shape or values.ndim != 2:
        raise ValueError(f"values and same must both be (B, P), got {values.shape} and {same.shape}")
    rng = np.random.default_rng(rng)
    ok = np.isfinite(values)  # e.g. LE at a base whose step changed nothing (0 / 0)
    pos, neg = same & ok, ~same & ok
    a = auc(values[pos], values[neg])
    boots = []
    for _ in range(num_bootstrap):
        idx = rng.integers(0, values.shape[0], values.shape[0])
        v, p, n = values[idx], pos[idx], neg[idx]
        if p.any() and n.any():
            boots.append(auc(v[p], v[n]))
    low, high = (np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan))
    med = lambda m: float(np.median(values[m])) if m.any() else float("nan")  # noqa: E731
    return Separation(median_same=med(pos), median_other=med(neg), auc=a, auc_low=float(low), auc_high=float(high))


def resolved(changes: StepChanges, factor: float = 1e6) -> np.ndarray:
    """(B,) bool: the step at the base changed its own logits by more than ``factor`` times the
    floating-point resolution of those logits. A base the network already fits with certainty
    has g = dL/dz ~ 0, and its step can fall below what the arithmetic resolves; LE and the
    kernelized similarity (ratios of such changes) are then rounding noise."""
    eps = np.finfo(np.asarray(changes.base).dtype).eps
    size = np.linalg.norm(np.asarray(changes.logits), axis=-1) + 1.0
    return np.linalg.norm(np.asarray(changes.base), axis=-1) > factor * eps * size


def pair_measures(f: Callable, params: PyTree, loss: Callable, bases: Array, labels: Array, probes: Array, lr: float,
                  *, with_ntk: bool = True, batch_size: int | None = None, with_logits: bool = False) -> Mapping[str, np.ndarray]:
    """LE, kernelized similarity and (optionally) its NTK limit for every (base, probe) pair.

    Rows of bases whose step is not resolved (:func:`resolved`) are NaN in ``le`` and ``kernel``.

    Args:
        with_logits: also return the raw logits, so LE can be recomputed from them:
            ``logits_probe`` (P, K) z(x', w), ``delta_probe`` (B, P, K) z(x', w+) - z(x', w),
            ``logits_base`` (B, K) z(x, w), ``delta_base`` (B, K), ``grad`` (B, K) dL/dz at the base.

    Returns:
        ``{'le': (B, P), 'kernel': (B, P), 'ntk': (B, P), 'resolved': (B,) bool, ...}`` as numpy.
    """
    ch = step_changes(f, params, loss, bases, labels, probes, lr, batch_size=batch_size)
    ok = resolved(ch)
    out = {"le": np.where(ok[:, None], np.asarray(local_elasticity(ch)), np.nan),
           "kernel": np.where(ok[:, None], np.asarray(kernelized_similarity(ch, lr)), np.nan)}
    if with_ntk:
        out["ntk"] = ntk_similarity(f, params, ch.grad, bases, probes)
    if with_logits:
        out.update(logits_probe=_as_2d(f(params, probes)), delta_probe=ch.probe, logits_base=ch.logits, delta_base=ch.base,
                   grad=ch.grad)
    out = {k: np.asarray(v, np.float64) for k, v in out.items()}
    out["resolved"] = ok
    return out


class Tiers(NamedTuple):
    """Class similarity from the inputs alone.

    Attributes:
        distance: (K, K) Euclidean distance between class means of the inputs.
        similar: (K,) for each class, the nearest other class.
        dissimilar: (K,) for each class, the farthest other class.
    """

    distance: np.ndarray
    similar: np.ndarray
    dissimilar: np.ndarray


# Tier codes of :func:`pair_tiers` (int8 values of its output).
TIER_SAME = 0
"""Tier code of :func:`pair_tiers` for a probe of the base's own class."""
TIER_SIMILAR = 1
"""Tier code of :func:`pair_tiers` for a probe of the base class's nearest other class (:attr:`Tiers.similar`)."""
TIER_DISSIMILAR = 2
"""Tier code of :func:`pair_tiers` for a probe of the base class's farthest other class (:attr:`Tiers.dissimilar`)."""
TIER_OTHER = 3
"""Tier code of :func:`pair_tiers` for a probe of any other class."""


def similarity_tiers(x: np.ndarray, y: np.ndarray) -> Tiers:
    """The nearest and farthest other class of every class by the distance between class means.

    Args:
        x: (N, ...) inputs (flattened per sample), e.g. the training set.
        y: (N,) integer classes 0..K-1 (at least three classes for distinct tiers).

    Returns:
        :class:`Tiers`.
    """
    x = np.asarray(x, np.float64).reshape(len(y), -1)
    classes = np.unique(y)
    if classes.size < 3:
        raise ValueError(f"y: similarity tiers need at least three classes, got {classes.size}")
    means = np.stack([x[y == k].mean(0) for k in classes])
    dist = np.linalg.norm(means[:, None] - means[None], axis=-1)
    masked = np.where(np.eye(len(classes), dtype=bool), np.inf, dist)
    far = np.where(np.eye(len(classes), dtype=bool), -np.inf, dist)
    return Tiers(distance=dist, similar=classes[masked.argmin(1)], dissimilar=classes[far.argmax(1)])


def pair_tiers(tiers: Tiers, base_labels: np.ndarray, probe_labels: np.ndarray) -> np.ndarray:
    """(B, P) int tier of every (base, probe) pair: :data:`TIER_SAME`, :data:`TIER_SIMILAR` (the
    probe's class is the base class's nearest), :data:`TIER_DISSIMILAR` (its farthest) or
    :data:`TIER_OTHER`."""
    b, p = np.asarray(base_labels)[:, None], np.asarray(probe_labels)[None, :]
    out = np.full(np.broadcast_shapes(b.shape, p.shape), TIER_OTHER, np.int8)
    out[np.broadcast_to(p == tiers.dissimilar[b], out.shape)] = TIER_DISSIMILAR
    out[np.broadcast_to(p == tiers.similar[b], out.shape)] = TIER_SIMILAR
    out[np.broadcast_to(p == b, out.shape)] = TIER_SAME
    return out


def tier_separation(values: np.ndarray, tiers: np.ndarray, higher: int, lower: int, **kwargs) -> Separation:
    """:func:`separation` of the pairs of tier ``higher`` against those of tier ``lower`` (others
    left out): AUC = P(value of a ``higher`` pair > value of a ``lower`` pair)."""
    values, tiers = np.asarray(values, np.float64), np.asarray(tiers)
    keep = (tiers == higher) | (tiers == lower)
    return separation(np.where(keep, values, np.nan), tiers == higher, **kwargs)
