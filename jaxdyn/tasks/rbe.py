"""Random bit-string encoders (RBE), Nakazato (arXiv 2204.07291), as engine tasks.

An RBE problem is a training distribution over a finite set of bit strings,

    p(x, y) = sum_i w_i delta(x - x_i) p_i(y),    p_i(y) = (1 - p1_i) delta(y) + p1_i delta(y - 1),

sampled afresh at every step: a point ``x_i`` is drawn with probability ``w_i`` and its label
``y ~ Bernoulli(p1_i)``. ``p1`` in (0, 1) is the paper's noisy ("non-deterministic") encoding,
``p1`` in {0, 1} deterministic. The paper's unbiased encoding is p0 = p1 = 1/2, its biased one
p0/p1 = 1/4 (p1 = 0.8); :func:`p1_from_ratio` converts a ratio p0/p1 to p1.

Every generator here is a pure function of a PRNG key, so ``Task.init`` can be vmapped over the
members of an ensemble. Data dictionaries hold (shapes without the seed axis; ``B`` = bits):

    points  (n, B)   float32 0/1   the training strings x_i
    weight  (n,)     float32       sampling probability w_i (sums to 1)
    p1      (n,)     float32       label probability p_i(y = 1)
    group   (n,)     int32         group index (0 where there are no groups)
    key     (2,)     uint32        a key for whatever a measurement needs (dropout of the probe step)

plus probe sets added by the generators (``probes``, ``probe_h``: strings at Hamming distance
h = 0..B from a point, see :func:`hamming_probes`).

Paper sections: single point (Fig. 1-3, 7), two points with mixing alpha (Fig. 4), groups g0/g1 at
a density ratio (Eq. 9, Fig. 5), nested groups within Hamming radii H1, H2 (Eqs. 12-13, Fig. 6).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
"""A JAX array (alias of ``jax.Array``)."""

BITS = 16
"""The paper's string length s (Nakazato, arXiv 2204.07291): the default number of bits B of the
generators' strings."""


def p1_from_ratio(p0_over_p1: float) -> float:
    """p(y = 1) of an encoding with ratio p0/p1 (1 -> 0.5, 1/4 -> 0.8, 0 -> 1, inf -> 0)."""
    if p0_over_p1 < 0:
        raise ValueError(f"p0_over_p1 must be >= 0, got {p0_over_p1!r}")
    if np.isinf(p0_over_p1):
        return 0.0
    return 1.0 / (1.0 + float(p0_over_p1))


def random_bits(key: Array, n: int, bits: int = BITS) -> Array:
    """Uniformly random bit strings, shape (n, bits), float32 0/1."""
    return jax.random.bernoulli(key, 0.5, (n, bits)).astype(jnp.float32)


def hamming_distance(a: Array, b: Array) -> Array:
    """H(a, b) = sum |a - b| over the last axis; broadcasts. (..., B), (..., B) -> (...)."""
    return jnp.sum(jnp.abs(a - b), axis=-1)


def flip_bits(key: Array, x: Array, h: Array | int) -> Array:
    """``x`` (B,) with exactly ``h`` distinct bits flipped, chosen uniformly (h may be traced).

    Returns (B,) float32, at Hamming distance exactly ``min(h, B)`` from ``x``.
    """
    bits = x.shape[-1]
    # The h positions of lowest rank in a random order: a uniformly random h-subset.
    rank = jnp.argsort(jax.random.permutation(key, bits))
    mask = (rank < h).astype(x.dtype)
    return jnp.abs(x - mask)


def hamming_probes(key: Array, x: Array, per_distance: int) -> tuple[Array, Array]:
    """Probe strings at every Hamming distance h = 0..B from ``x``.

    Args:
        key: PRNG key.
        x: (B,) the reference string.
        per_distance: strings drawn per distance (at h = 0 and h = B every draw is the same
            string: x itself and its complement).

    Returns:
        probes (B + 1, per_distance, B) float32 and h (B + 1,) int32.
    """
    bits = x.shape[-1]
    hs = jnp.arange(bits + 1, dtype=jnp.int32)
    keys = jax.random.split(key, (bits + 1) * per_distance).reshape((bits + 1, per_distance) + key.shape)
    probes = jax.vmap(lambda ks, h: jax.vmap(lambda k: flip_bits(k, x, h))(ks))(keys, hs)
    return probes, hs


def ball_points(key: Array, center: Array, n: int, radius: int) -> Array:
    """``n`` strings within Hamming distance ``radius`` of ``center`` (B,).

    Each point flips k ~ Uniform{0, ..., radius} random bits of the centre, so every pair of
    points is within Hamming distance 2 * radius (the triangle inequality). Returns (n, B).
    """
    k_num, k_pos = jax.random.split(key)
    ks = jax.random.randint(k_num, (n,), 0, radius + 1)
    return jax.vmap(lambda k, h: flip_bits(k, center, h))(jax.random.split(k_pos, n), ks)


def _base(key: Array, points: Array, weight: Array, p1: Array, group: Array) -> dict[str, Array]:
    return {
        "points": points.astype(jnp.float32),
        "weight": weight.astype(jnp.float32),
        "p1": p1.astype(jnp.float32),
        "group": group.astype(jnp.int32),
        "key": jax.random.key_data(key),
    }


def sample(data: Mapping[str, Array], key: Array, batch_size: int = 1) -> dict[str, Array]:
    """One draw of ``batch_size`` iid pairs (x, y) from p(x, y).

    Returns {'x': (batch_size, B), 'y': (batch_size,) float32 0/1, 'index': (batch_size,) int32}.
    """
    k_point, k_label = jax.random.split(key)
    n = data["points"].shape[0]
    index = jax.random.choice(k_point, n, (batch_size,), p=data["weight"])
    y = jax.random.bernoulli(k_label, data["p1"][index]).astype(jnp.float32)
    return {"x": data["points"][index], "y": y, "index": index.astype(jnp.int32)}


@dataclasses.dataclass(frozen=True)
class EncoderTask:
    """An engine task that draws ``batch_size`` pairs from p(x, y) at every step (hashable).

    Attributes:
        init: ``init(key) -> data`` building the dictionary described in the module docstring,
            or None when the engine is given the members' data.
        batch_size: pairs per step (1 in the paper: one training point per epoch).
    """

    init: Callable[[Array], dict] | None = None
    batch_size: int = 1

    def batch(self, data, key, step):
        """``batch_size`` iid pairs from p(x, y) drawn with ``key`` (:func:`sample`): ``x``
        (batch_size, B), ``y`` (batch_size,) float32 0/1, ``index`` (batch_size,) int32; ``step`` is unused."""
        del step
        return sample(data, key, self.batch_size)


def encoder_task(init=None, batch_size: int = 1) -> EncoderTask:
    """An engine task that draws ``batch_size`` pairs from p(x, y) at every step.

    Args:
        init: ``init(key) -> data`` building the dictionary described in the module docstring;
            None when the data are given to the engine (``data=``), which keeps the task
            comparable by value (one compilation for equal tasks).
        batch_size: pairs per step (1 in the paper: one training point per epoch).
    """
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return EncoderTask(init=init, batch_size=int(batch_size))


# ---------------------------------------------------------------------------------------------
# Generators: init(key) -> data
# ---------------------------------------------------------------------------------------------
def single_point(p1: float, *, bits: int = BITS, probes_per_distance: int = 8):
    """One training string x_o with label y ~ Bernoulli(p1) (paper Fig. 1-3, 7).

    Data also holds ``probes`` ((B + 1) * P, B), flattened from :func:`hamming_probes` around x_o,
    ``probe_h`` ((B + 1) * P,) their distances, and ``sources`` (1, B) = x_o, the points whose
    training response is measured.
    """
    _check_p("p1", p1)

    def init(key):
        k_x, k_probe, k_data = jax.random.split(key, 3)
        x_o = random_bits(k_x, 1, bits)
        probes, hs = hamming_probes(k_probe, x_o[0], probes_per_distance)
        data = _base(k_data, x_o, jnp.ones(1), jnp.full(1, p1), jnp.zeros(1))
        data.update(
            sources=x_o,
            probes=probes.reshape(-1, bits),
            probe_h=jnp.repeat(hs, probes_per_distance),
        )
        return data

    return init


def two_points(p1: float, alpha: float, distance: int, *, bits: int = BITS, probes_per_distance: int = 8):
    """Two strings x1, x2 at Hamming distance ``distance``, drawn with probabilities 1 - alpha and
    alpha, both encoded by the same p(y) (paper Fig. 4).

    ``sources`` (2, B) = (x1, x2); ``probes`` are Hamming probes around each source,
    (2, (B + 1) * P, B), with ``probe_h`` ((B + 1) * P,).
    """
    _check_p("p1", p1)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if not 0 <= distance <= bits:
        raise ValueError(f"distance must be in [0, {bits}], got {distance!r}")

    def init(key):
        k_x, k_flip, k_p1, k_p2, k_data = jax.random.split(key, 5)
        x1 = random_bits(k_x, 1, bits)[0]
        x2 = flip_bits(k_flip, x1, distance)
        points = jnp.stack([x1, x2])
        data = _base(k_data, points, jnp.array([1.0 - alpha, alpha]), jnp.full(2, p1), jnp.arange(2))
        probes = []
        for k, x in ((k_p1, x1), (k_p2, x2)):
            pr, hs = hamming_probes(k, x, probes_per_distance)
            probes.append(pr.reshape(-1, bits))
        data.update(sources=points, probes=jnp.stack(probes), probe_h=jnp.repeat(hs, probes_per_distance))
        return data

    return init


def bits_to_int(x: Array) -> Array:
    """Bit strings (..., B) of 0/1 -> their integer codes (...,), int32 (B <= 30)."""
    bits = x.shape[-1]
    return jnp.sum(x.astype(jnp.int32) * (2 ** jnp.arange(bits - 1, -1, -1, dtype=jnp.int32)), axis=-1)


def int_to_bits(codes: Array, bits: int = BITS) -> Array:
    """Integer codes (...,) -> bit strings (..., bits) float32 0/1 (inverse of :func:`bits_to_int`)."""
    shifts = jnp.arange(bits - 1, -1, -1, dtype=jnp.int32)
    return ((jnp.asarray(codes, jnp.int32)[..., None] >> shifts) & 1).astype(jnp.float32)


def distinct_random_bits(key: Array, n: int, bits: int = BITS, exclude: Array | None = None) -> Array:
    """``n`` distinct uniformly random bit strings, none of them in ``exclude`` (m, B).

    Sampling without replacement over all 2^B strings (uniform scores, the excluded set's set
    to -inf, the n largest kept). Returns (n, bits) float32.
    """
    scores = jax.random.uniform(key, (2 ** bits,))
    if exclude is not None and exclude.shape[0]:
        scores = scores.at[bits_to_int(exclude)].set(-jnp.inf)
    _, codes = jax.lax.top_k(scores, n)
    return int_to_bits(codes, bits)


def _ball_masks(bits: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Every flip mask of at most ``radius`` bits, (K, bits) float32, with the log-probability of
    each under "k ~ Uniform{0..radius}, then a uniform k-subset" (the marginal of
    :func:`ball_points`)."""
    import itertools
    import math

    masks, logp = [], []
    for k in range(radius + 1):
        for pos in itertools.combinations(range(bits), k):
            m = np.zeros(bits, np.float32)
            m[list(pos)] = 1.0
            masks.append(m)
            logp.append(-math.log(radius + 1) - math.log(math.comb(bits, k)))
    return np.stack(masks), np.asarray(logp, np.float32)


def distinct_ball_points(key: Array, center: Array, n: int, masks: np.ndarray, logp: np.ndarray,
                         exclude: Array | None = None) -> Array:
    """``n`` distinct strings within the ball ``center XOR masks``, none in ``exclude`` (m, B):
    sampling without replacement with the per-draw probabilities ``exp(logp)`` (Gumbel top-k),
    so the points are spread over the ball as :func:`ball_points` spreads them, without repeats.
    Returns (n, B)."""
    candidates = jnp.abs(center[None, :] - jnp.asarray(masks))
    scores = jnp.asarray(logp) + jax.random.gumbel(key, (masks.shape[0],))
    if exclude is not None and exclude.shape[0]:
        hit = jnp.any(bits_to_int(candidates)[:, None] == bits_to_int(exclude)[None, :], axis=1)
        scores = jnp.where(hit, -jnp.inf, scores)
    _, idx = jax.lax.top_k(scores, n)
    return candidates[idx]


def groups(sizes: Sequence[int], labels: Sequence[float], *, bits: int = BITS):
    """Groups of random strings with deterministic (or noisy) encodings (paper Eq. 9, Fig. 5).

    Args:
        sizes: points per group, e.g. (n, m) for g0 and g1.
        labels: p(y = 1) of each group, e.g. (0, 1).

    Every point is drawn with the same probability 1 / sum(sizes), so the density of group g
    is proportional to its size. The strings are distinct uniform strings (no string twice, so
    none carries two labels).
    """
    sizes, labels = _check_groups(sizes, labels)
    n = int(sum(sizes))
    if n > 2 ** bits:
        raise ValueError(f"sizes: {n} distinct strings do not exist among the 2^{bits} of {bits} bits")
    group = np.repeat(np.arange(len(sizes)), sizes)
    p1 = np.asarray(labels, np.float32)[group]

    def init(key):
        k_x, k_data = jax.random.split(key)
        points = distinct_random_bits(k_x, n, bits)
        return _base(k_data, points, jnp.full(n, 1.0 / n), jnp.asarray(p1), jnp.asarray(group))

    return init


def nested_groups(sizes: Sequence[int], labels: Sequence[float], radius1: int, radius2: int, *,
                  bits: int = BITS):
    """Three hierarchically placed groups g0, g1, g2 (paper Eqs. 12-13, Fig. 6).

    g0 is uniformly random; g1 and g2 lie within pairwise Hamming distance ``radius1`` (H1) of
    each other, and g2 within pairwise distance ``radius2`` (H2). Construction: a centre c1;
    g1 points flip up to floor(H1 / 2) bits of c1; a centre c2 at distance floor(H1 / 2) -
    floor(H2 / 2) from c1; g2 points flip up to floor(H2 / 2) bits of c2. So every g2 point is
    within floor(H1 / 2) of c1 too, and the triangle inequality gives both constraints. Every
    string is distinct (points of a ball are drawn without replacement, with the per-draw
    probabilities of "k ~ Uniform{0..r} flipped bits"; g1 avoids g2's strings and g0 avoids both),
    so no string appears twice and none carries two labels.

    Args:
        sizes: (n0, n1, n2).
        labels: p(y = 1) of each group; the paper encodes g0 and g2 as 0, g1 as 1: (0, 1, 0).
        radius1, radius2: H1 and H2 (paper: 6 and 4), with H2 <= H1.
    """
    sizes, labels = _check_groups(sizes, labels)
    if len(sizes) != 3:
        raise ValueError(f"sizes must give (n0, n1, n2), got {sizes!r}")
    if not 0 <= radius2 <= radius1 <= bits:
        raise ValueError(f"radii must satisfy 0 <= radius2 <= radius1 <= {bits}, got H1={radius1}, H2={radius2}")
    n0, n1, n2 = sizes
    r1, r2 = radius1 // 2, radius2 // 2
    masks1, logp1 = _ball_masks(bits, r1)
    masks2, logp2 = _ball_masks(bits, r2)
    if n2 > len(masks2):
        raise ValueError(f"sizes: g2 needs {n2} distinct strings within {r2} flips of its centre; only {len(masks2)} exist (H2={radius2})")
    if n1 + n2 > len(masks1):
        raise ValueError(f"sizes: g1 and g2 need {n1 + n2} distinct strings within {r1} flips of c1; only {len(masks1)} exist (H1={radius1})")
    group = np.repeat(np.arange(3), sizes)
    p1 = np.asarray(labels, np.float32)[group]
    n = int(sum(sizes))

    def init(key):
        k0, kc1, kc2, k1, k2, k_data = jax.random.split(key, 6)
        c1 = random_bits(kc1, 1, bits)[0]
        c2 = flip_bits(kc2, c1, r1 - r2)
        g2 = distinct_ball_points(k2, c2, n2, masks2, logp2)
        g1 = distinct_ball_points(k1, c1, n1, masks1, logp1, exclude=g2)
        g0 = distinct_random_bits(k0, n0, bits, exclude=jnp.concatenate([g1, g2]))
        points = jnp.concatenate([g0, g1, g2])
        return _base(k_data, points, jnp.full(n, 1.0 / n), jnp.asarray(p1), jnp.asarray(group))

    return init


def duplicate_stats(points: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per task: whether any string appears twice, and whether one string carries two labels.

    Args:
        points: (task, n, B) bit strings; p1: (task, n) their label probabilities.

    Returns:
        (has_duplicate (task,), has_conflict (task,)) bool.
    """
    points, p1 = np.asarray(points), np.asarray(p1)
    dup, conflict = [], []
    for x, y in zip(points, p1):
        codes = [row.tobytes() for row in x.astype(np.uint8)]
        seen: dict = {}
        d = c = False
        for code, label in zip(codes, y):
            if code in seen:
                d = True
                c = c or seen[code] != label
            seen.setdefault(code, label)
        dup.append(d)
        conflict.append(c)
    return np.asarray(dup), np.asarray(conflict)


def encoding_name(p1: float) -> str:
    """'unbiased' (p1 = 1/2), 'biased p0/p1=0.25', 'deterministic y=0' ... for an encoding p(y = 1)."""
    if p1 == 0.5:
        return "unbiased"
    if p1 in (0.0, 1.0):
        return f"deterministic y={int(p1)}"
    return f"biased p0/p1={(1 - p1) / p1:.3g}"


def condition_members(datas: Sequence[Mapping[str, Array]], seeds: Sequence[int]) -> tuple[np.ndarray, dict[str, Array]]:
    """Members of a paired design: every condition trained on the same seeds.

    Args:
        datas: one ensemble data dict per condition, leaves (seed, ...) (from :func:`ensemble_data`).
        seeds: (seed,) the integer seeds shared by every condition.

    Returns:
        (raw keys (condition * seed, 2) uint32, data with leaves (condition * seed, ...)); member
        ``c * len(seeds) + s`` is condition c with seed s's root key, so its initial weights,
        data order and dropout masks are those of seed s in every condition.
    """
    from jaxdyn.engine import member_keys

    keys, _ = member_keys(np.asarray(seeds))
    n = len(datas)
    data = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=0), *datas)
    return np.asarray(jnp.concatenate([keys] * n, axis=0)), data


def single_point_members(p1s: Sequence[float], seeds: Sequence[int], probes_per_distance: int) -> tuple[np.ndarray, dict[str, Array]]:
    """Members of the single-point response experiments (Fig. 1-3, 7): every encoding on the
    same seeds (same x_o, probes and initial weights), member ``e * len(seeds) + s``.

    Returns:
        (raw keys (encoding * seed, 2) uint32, data of :func:`single_point` with ``p1`` set per
        member).
    """
    seeds = np.asarray(seeds)
    one = ensemble_data(single_point(0.5, probes_per_distance=probes_per_distance), seeds)
    keys, data = condition_members([one] * len(p1s), seeds)
    return keys, with_p1(data, np.repeat(np.asarray(p1s, np.float32), len(seeds)))


def split_conditions(a: np.ndarray, num_conditions: int) -> np.ndarray:
    """(condition * seed, ...) member-major arrays -> (seed, condition, ...)."""
    a = np.asarray(a)
    a = a.reshape((num_conditions, a.shape[0] // num_conditions) + a.shape[1:])
    return np.swapaxes(a, 0, 1)


def with_p1(data: Mapping[str, Array], p1: Array) -> dict[str, Array]:
    """A copy of ensemble ``data`` (leaves (seed, ...)) with every point's p1 set per member.

    Args:
        data: ensemble data, ``p1`` of shape (seed, n).
        p1: (seed,) label probability per member.
    """
    out = dict(data)
    out["p1"] = jnp.broadcast_to(jnp.asarray(p1, jnp.float32)[:, None], data["p1"].shape)
    return out


def ensemble_data(init, seeds: Sequence[int], stream: int = 0x7B5E) -> dict[str, Array]:
    """``init`` vmapped over members: leaves (seed, ...); member i's key is fold_in(key(seed_i), stream)."""
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), stream))(jnp.asarray(np.asarray(seeds), jnp.uint32))
    return jax.vmap(init)(keys)


def _check_p(name: str, p: float) -> None:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")


def _check_groups(sizes, labels):
    sizes = tuple(int(s) for s in sizes)
    labels = tuple(float(v) for v in labels)
    if len(sizes) != len(labels) or not sizes:
        raise ValueError(f"sizes and labels must have the same non-zero length, got {sizes!r} and {labels!r}")
    if any(s < 1 for s in sizes):
        raise ValueError(f"every group needs at least one point, got sizes {sizes!r}")
    for v in labels:
        _check_p("labels", v)
    return sizes, labels
