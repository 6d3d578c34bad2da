"""Binned mutual information of a representation with the input and the label, in bits.

Shwartz-Ziv & Tishby (arXiv 1703.00810) estimate I(T; X) and I(T; Y) for a layer T by cutting
every unit's activation range into equal bins, reading each sample's vector of bin indices as
one discrete symbol, and counting: with T a deterministic function of X, I(T; X) = H(T).
Two estimators are provided:

- :func:`binned_mutual_information` (and :func:`information_plane` over time): the plug-in
  estimator on samples, optionally with Gaussian noise added to the activations before binning
  (as in the text's Figure 5). Works on any layer of any network: ``t`` (N, d), labels (N,).
- :func:`noisy_binned_information`: for a finite set of input types with known (noise-free)
  representations, as in a neurashed, the same quantity -- noise ``N(0, noise_std^2)`` per unit,
  then binning -- computed from the exact binned conditional distributions p(t | x) (products
  of Gaussian bin masses over units), averaged over Monte Carlo draws of t. It has no plug-in
  bias, which otherwise dominates when noise spreads samples over many joint bins.
- :func:`plugin_binned_information`: the same noisy binned quantity estimated the way
  Shwartz-Ziv & Tishby do, by counting: noisy samples of every type are binned and scikit-learn's
  ``mutual_info_score`` (a maintained plug-in estimator) is applied to the symbols. A second
  estimator beside the exact-law one: it agrees where the joint bins are well sampled and is
  biased upward (about occupied cells / (2 N ln 2) bits) where noise spreads samples over many.
- :func:`knn_information`: no bins at all: the mutual information of the continuous noisy
  representation T = signal(X) + noise with X (and its labels), by Ross (2014)'s nearest-
  neighbour estimator for a discrete and a continuous variable, the estimator scikit-learn's
  ``mutual_info_classif`` applies to one feature at a time, here on the whole vector T (the
  neighbour searches are scikit-learn's). An estimator of another family: what the binned ones
  read as compression, a loss of resolution relative to the layer's range, it sees only where
  representations come within the noise of one another in absolute terms (Saxe et al. 2018).

:func:`longest_stretch_near` reads a plateau from a curve over training: the longest run of
consecutive records within a tolerance of a level (the time a representation spends near it).

Binning: ``num_bins`` equal bins over ``value_range`` (default: the min and max over all
samples and units of the noise-free values, i.e. one range per layer, like Shwartz-Ziv &
Tishby); values outside fall in the edge bins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import scipy.special

LOG2 = np.log(2.0)
"""ln 2: divides a mutual information in nats to give it in bits."""


def bin_edges(values: np.ndarray, num_bins: int, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """(num_bins + 1,) equal-width edges over ``value_range`` or the min/max of ``values`` (any shape).

    A zero-width range (constant values) is widened to +-0.5 so every value lands in one bin.
    """
    if not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"num_bins: expected a positive int, got {num_bins!r}")
    lo, hi = (float(np.min(values)), float(np.max(values))) if value_range is None else map(float, value_range)
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
        raise ValueError(f"value_range: expected finite lo <= hi, got ({lo}, {hi})")
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, num_bins + 1)


def digitize(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index in 0..len(edges)-2 of every value (any shape); outside values go to the edge bins."""
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


def symbols(binned: np.ndarray) -> np.ndarray:
    """One int per row of ``binned`` (N, d): equal rows get equal symbols."""
    binned = np.asarray(binned)
    return np.unique(binned.reshape(binned.shape[0], -1), axis=0, return_inverse=True)[1].ravel()


def entropy(labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Shannon entropy in bits of the discrete variable ``labels`` (N,) (sample weights optional)."""
    _, inverse = np.unique(np.asarray(labels), return_inverse=True)
    w = np.ones(inverse.size) if weights is None else np.asarray(weights, np.float64)
    p = np.bincount(inverse.ravel(), weights=w) / w.sum()
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def discrete_mutual_information(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Plug-in I(A; B) = H(A) + H(B) - H(A, B) in bits, for paired discrete samples (N,) each."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a and b must pair up, got shapes {a.shape} and {b.shape}")
    joint = symbols(np.stack([np.unique(a, return_inverse=True)[1].ravel(), np.unique(b, return_inverse=True)[1].ravel()], 1))
    return max(0.0, entropy(a, weights) + entropy(b, weights) - entropy(joint, weights))


def binned_mutual_information(t: np.ndarray, labels: np.ndarray, *, num_bins: int = 30,
                              value_range: tuple[float, float] | None = None, noise_std: float = 0.0,
                              rng: np.random.Generator | int | None = None) -> float:
    """Shwartz-Ziv & Tishby's binned I(T; labels) in bits (plug-in).

    Args:
        t: (N, d) representations (one row per sample; any trailing shape is flattened).
        labels: (N,) discrete variable: the input's identity for I(T; X), its class for I(T; Y).
        num_bins: equal bins per unit.
        value_range: binning range; default the min/max of the noise-free ``t``.
        noise_std: std of Gaussian noise added to every unit before binning (0: none).
        rng: numpy Generator or seed for the noise.

    Returns:
        I(T; labels) in bits.
    """
    t = np.asarray(t, np.float64).reshape(np.shape(t)[0], -1)
    edges = bin_edges(t, num_bins, value_range)
    if noise_std > 0:
        t = t + noise_std * np.random.default_rng(rng).standard_normal(t.shape)
    return discrete_mutual_information(symbols(digitize(t, edges)), labels)


def information_plane(t: np.ndarray, x_ids: np.ndarray, y: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """I(T; X) and I(T; Y) at every time of a recorded layer.

    Args:
        t: (time, N, d) representations of the same N samples over training.
        x_ids: (N,) input identities (all distinct for a continuous input set).
        y: (N,) labels.
        kwargs: passed to :func:`binned_mutual_information` (range chosen per time when not given).

    Returns:
        (I_TX (time,), I_TY (time,)) in bits.
    """
    ix = np.array([binned_mutual_information(ti, x_ids, **kwargs) for ti in t])
    iy = np.array([binned_mutual_information(ti, y, **kwargs) for ti in t])
    return ix, iy


class TypeInformation(NamedTuple):
    """Result of :func:`noisy_binned_information`: bits and their Monte Carlo standard errors.

    Attributes:
        info: ``{name: I(T; that variable)}`` in bits; ``"x"`` is the input type itself.
        stderr: ``{name: standard error}`` of the Monte Carlo average (0 without noise).
    """

    info: dict
    stderr: dict


def noisy_binned_information(signal: np.ndarray, *, probs: np.ndarray | None = None,
                             variables: Mapping[str, np.ndarray] | None = None, num_bins: int = 30,
                             noise_std: float = 0.0, value_range: tuple[float, float] | None = None,
                             num_samples: int = 256, rng: np.random.Generator | int | None = 0) -> TypeInformation:
    """I(T; X) and I(T; f(X)) for finitely many input types, with T = bin(signal(X) + noise).

    X takes P values with probabilities ``probs``; type p has the noise-free representation
    ``signal[p]`` (d,). Each unit gets independent N(0, noise_std^2) noise and is binned into
    ``num_bins`` equal bins over ``value_range`` (edge bins open-ended), so the binned
    conditional law is p(t | x_p) = prod_u P(bin t_u | signal[p, u]) with Gaussian bin masses.
    Then, exactly,

        I(T; X) = sum_p pi_p E_{t ~ p(.|x_p)} [log p(t|x_p) - log sum_q pi_q p(t|x_q)]

    and for a function V = v(X) the same with p(t|x_p) replaced by p(t | v_p) = sum_{q: v_q=v_p}
    pi_q p(t|x_q) / P(v_p). The expectation over t is a Monte Carlo average over
    ``num_samples`` draws per type (reported standard error); the log-probabilities are exact.
    Without noise the binned T is a function of X and the result is exact.

    Args:
        signal: (P, d) noise-free representation of each input type.
        probs: (P,) type probabilities; default uniform.
        variables: ``{name: (P,) labels}`` of functions of X (e.g. ``{"y": classes}``); "x" is
            always included.
        num_bins, noise_std, value_range: binning and noise as above (range default: min/max
            of ``signal``).
        num_samples: Monte Carlo draws of t per type.
        rng: numpy Generator or seed.

    Returns:
        :class:`TypeInformation` in bits.
    """
    signal = np.asarray(signal, np.float64)
    if signal.ndim != 2:
        raise ValueError(f"signal: expected shape (P, d), got {signal.shape}")
    P = signal.shape[0]
    probs = np.full(P, 1.0 / P) if probs is None else np.asarray(probs, np.float64)
    if probs.shape != (P,) or (probs < 0).any() or not np.isclose(probs.sum(), 1.0):
        raise ValueError(f"probs: expected ({P},) non-negative summing to 1")
    if noise_std < 0 or not np.isfinite(noise_std):
        raise ValueError(f"noise_std: expected a finite number >= 0, got {noise_std}")
    variables = {"x": np.arange(P), **{k: np.asarray(v) for k, v in (variables or {}).items()}}
    for name, v in variables.items():
        if v.shape != (P,):
            raise ValueError(f"variables[{name!r}]: expected shape ({P},), got {v.shape}")
    edges = bin_edges(signal, num_bins, value_range)
    if noise_std == 0:
        sym = symbols(digitize(signal, edges))
        return TypeInformation(info={k: discrete_mutual_information(sym, v, probs) for k, v in variables.items()},
                               stderr={k: 0.0 for k in variables})

    rng = np.random.default_rng(rng)
    inner = edges[1:-1]  # the outer edges are open: the edge bins absorb the tails

    def log_mass(bins, s):
        # log P(bin | s) per unit: bins (..., d) ints, s (..., d) means; tails open.
        lo = np.where(bins == 0, -np.inf, edges[np.clip(bins, 0, num_bins)])
        hi = np.where(bins == num_bins - 1, np.inf, edges[np.clip(bins + 1, 0, num_bins)])
        a, b = (lo - s) / noise_std, (hi - s) / noise_std
        # log(Phi(b) - Phi(a)) computed stably on the side of the smaller tail.
        flip = a > 0
        a2, b2 = np.where(flip, -b, a), np.where(flip, -a, b)
        lb, la = scipy.special.log_ndtr(b2), scipy.special.log_ndtr(a2)
        return lb + np.log1p(-np.exp(np.minimum(la - lb, 0.0)))

    draws = signal[:, None, :] + noise_std * rng.standard_normal((P, num_samples, signal.shape[1]))
    bins = np.clip(np.searchsorted(inner, draws, side="right"), 0, num_bins - 1)  # (P, S, d)
    # log p(t | x_q) for every draw t (from type p) and every type q: (P, S, Q). A unit's bin mass
    # depends only on (type, unit, bin), so the Q x d x num_bins table is computed once and gathered,
    # in blocks of types that keep the (P, S, q, d) gather near 2^22 numbers.
    d = signal.shape[1]
    table = log_mass(np.arange(num_bins)[None, None, :], signal[:, :, None])  # (Q, d, num_bins)
    block = max(1, (1 << 22) // max(1, bins.size))
    units = np.arange(d)
    logp = np.concatenate([table[np.arange(q0, min(P, q0 + block))[:, None], units, bins[:, :, None, :]].sum(-1)
                           for q0 in range(0, P, block)], axis=-1)
    logpi = np.log(np.where(probs > 0, probs, 1e-300))
    log_marginal = scipy.special.logsumexp(logp + logpi, axis=-1)  # (P, S)
    info, stderr = {}, {}
    for name, v in variables.items():
        groups = np.unique(v)
        if len(groups) == P:  # one type per value: p(t | v_p) is p(t | x_p) itself
            log_group = logp[np.arange(P), :, np.arange(P)]
        else:
            log_group = np.empty((P, num_samples))
            for g in groups:
                members = v == g
                pg = probs[members].sum()
                lg = scipy.special.logsumexp(logp[..., members] + logpi[members], axis=-1) - np.log(pg)
                log_group = np.where(members[:, None], lg, log_group)
        terms = (log_group - log_marginal) / LOG2  # (P, S)
        per_type = terms.mean(1)
        info[name] = float(max(0.0, (probs * per_type).sum()))
        stderr[name] = float(np.sqrt((probs**2 * terms.var(1, ddof=1) / num_samples).sum()))
    return TypeInformation(info=info, stderr=stderr)


def plugin_binned_information(signal: np.ndarray, *, variables: Mapping[str, np.ndarray] | None = None, num_bins: int = 30,
                              noise_std: float = 0.0, value_range: tuple[float, float] | None = None,
                              num_samples: int = 256, rng: np.random.Generator | int | None = 0) -> dict:
    """I(T; X) and I(T; f(X)) of T = bin(signal(X) + noise) by the plug-in estimator on samples.

    Every one of the P equally likely input types contributes ``num_samples`` noisy draws of its
    representation ``signal[p]`` (d,); each unit is binned into ``num_bins`` equal bins over
    ``value_range`` (default the min/max of ``signal``, edge bins open), the bin vectors become
    symbols, and ``sklearn.metrics.mutual_info_score`` counts the joint table of symbols and
    labels. The same quantity as :func:`noisy_binned_information`, estimated instead of computed.

    Args:
        signal: (P, d) noise-free representation of each input type.
        variables: ``{name: (P,) labels}`` of functions of X; "x" (the type itself) is included.
        num_bins, noise_std, value_range, num_samples, rng: as in :func:`noisy_binned_information`.

    Returns:
        ``{name: bits}``.
    """
    from sklearn.metrics import mutual_info_score

    signal = np.asarray(signal, np.float64)
    if signal.ndim != 2:
        raise ValueError(f"signal: expected shape (P, d), got {signal.shape}")
    if noise_std < 0 or not np.isfinite(noise_std):
        raise ValueError(f"noise_std: expected a finite number >= 0, got {noise_std}")
    P = signal.shape[0]
    variables = {"x": np.arange(P), **{k: np.asarray(v) for k, v in (variables or {}).items()}}
    edges = bin_edges(signal, num_bins, value_range)
    rng = np.random.default_rng(rng)
    draws = signal[:, None, :] + noise_std * rng.standard_normal((P, num_samples, signal.shape[1]))
    sym = symbols(digitize(draws.reshape(P * num_samples, -1), edges))
    return {name: float(mutual_info_score(np.repeat(v, num_samples), sym) / LOG2) for name, v in variables.items()}


def knn_mutual_information(t: np.ndarray, labels: np.ndarray, *, k: int = 3) -> float:
    """Ross (2014)'s estimate of I(T; L) in bits for continuous samples ``t`` (N, d) and discrete
    ``labels`` (N,): psi(N) + <psi(k)> - <psi(N_l)> - <psi(m)>, where for every sample the
    distance to its k-th nearest neighbour of the same label (Euclidean) is found and m counts
    all samples within it (itself included). Samples whose label occurs once are left out, and
    a negative estimate is returned as 0, as in scikit-learn's one-feature version
    (``sklearn.feature_selection.mutual_info_classif``), which this equals for d = 1."""
    from scipy.spatial import cKDTree

    t = np.asarray(t, np.float64)
    t = t.reshape(len(t), -1)
    labels = np.asarray(labels)
    if labels.shape != (len(t),):
        raise ValueError(f"labels: expected shape ({len(t)},), got {labels.shape}")
    if k < 1:
        raise ValueError(f"k: expected a positive int, got {k}")
    radius, k_used, counts = np.empty(len(t)), np.empty(len(t)), np.empty(len(t))
    for label in np.unique(labels):
        mask = labels == label
        n = int(mask.sum())
        counts[mask] = n
        if n > 1:
            kk = min(k, n - 1)
            # The k-th neighbour other than the sample itself: column kk of the k + 1 nearest (the
            # sample is its own nearest, at distance 0). scipy's KD tree gives scikit-learn's
            # distances and counts without its per-call validation (most of the time here).
            dist = cKDTree(t[mask]).query(t[mask], k=kk + 1)[0]
            radius[mask] = np.nextafter(dist[:, kk], 0)
            k_used[mask] = kk
    keep = counts > 1
    if keep.sum() < 2:
        return 0.0
    t, radius, k_used, counts = t[keep], radius[keep], k_used[keep], counts[keep]
    m = cKDTree(t).query_ball_point(t, radius, return_length=True)
    nats = (scipy.special.digamma(len(t)) + np.mean(scipy.special.digamma(k_used)) - np.mean(scipy.special.digamma(counts))
            - np.mean(scipy.special.digamma(m)))
    return float(max(0.0, nats) / LOG2)


def knn_information(signal: np.ndarray, *, variables: Mapping[str, np.ndarray] | None = None, noise_std: float,
                    num_samples: int = 256, k: int = 3, rng: np.random.Generator | int | None = 0) -> dict:
    """I(T; X) and I(T; f(X)) of the continuous T = signal(X) + N(0, noise_std^2) per unit, by
    :func:`knn_mutual_information` on ``num_samples`` noisy draws of each of the P equally
    likely types (no binning: the estimator of another family beside the binned ones).

    Args:
        signal: (P, d) noise-free representation of each input type.
        variables: ``{name: (P,) labels}`` of functions of X; "x" (the type itself) is included.
        noise_std: the noise's std (> 0: without noise T is discrete and has no density).
        num_samples, rng: draws per type and their generator; k: neighbours.

    Returns:
        ``{name: bits}``.
    """
    signal = np.asarray(signal, np.float64)
    if signal.ndim != 2:
        raise ValueError(f"signal: expected shape (P, d), got {signal.shape}")
    if not (noise_std > 0 and np.isfinite(noise_std)):
        raise ValueError(f"noise_std: expected a finite number > 0 (T needs a density), got {noise_std}")
    P = signal.shape[0]
    variables = {"x": np.arange(P), **{key: np.asarray(v) for key, v in (variables or {}).items()}}
    rng = np.random.default_rng(rng)
    draws = (signal[:, None, :] + noise_std * rng.standard_normal((P, num_samples, signal.shape[1]))).reshape(P * num_samples, -1)
    return {name: knn_mutual_information(draws, np.repeat(v, num_samples), k=k) for name, v in variables.items()}


def longest_stretch_near(values: np.ndarray, steps: np.ndarray, target: float, tolerance: float) -> np.ndarray:
    """The longest run of consecutive records with |value - target| <= tolerance, in steps.

    Args:
        values: (..., time) a quantity over training (e.g. I(T;X) per seed).
        steps: (time,) the step of each record (evenly spaced).
        target, tolerance: the level and how close counts as near it.

    Returns:
        (...,) the run's length in steps: (records in the run - 1) x the record spacing, plus one
        spacing (a single record near the level counts as one interval; none: 0).
    """
    values = np.asarray(values, np.float64)
    near = np.abs(values - target) <= tolerance
    spacing = float(steps[1] - steps[0]) if len(steps) > 1 else 1.0
    flat = near.reshape(-1, near.shape[-1])
    out = np.zeros(flat.shape[0])
    for i, row in enumerate(flat):
        best = run = 0
        for v in row:
            run = run + 1 if v else 0
            best = max(best, run)
        out[i] = best * spacing
    return out.reshape(near.shape[:-1])
