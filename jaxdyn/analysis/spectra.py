"""Weight spectra: empirical spectral densities, Marchenko-Pastur fits, power-law tails, Martin-Mahoney phases.

Martin & Mahoney (JMLR 2021, "Implicit self-regularization in deep neural networks") study the
empirical spectral density (ESD) of each layer's weight correlation matrix and name 5+1 phases
of training: random-like, bleeding-out, bulk+spikes, bulk-decay, heavy-tailed, rank-collapse.
Hanson et al. (2023) discuss their dense-sample net in these terms. Definitions used here:

* Correlation matrix of a layer W with N x M entries, N >= M (transposed if needed):

      X = W^T W / N  (M x M),  Q = N / M >= 1,                                   (ESD)

  the ESD is the distribution of X's M eigenvalues.
* Marchenko-Pastur (MP): for i.i.d. entries of variance sigma^2 the ESD tends to

      rho(lambda) = Q / (2 pi sigma^2 lambda) sqrt((lambda_+ - lambda)(lambda - lambda_-)),
      lambda_+- = sigma^2 (1 +- 1 / sqrt(Q))^2,                                   (MP)

  The largest eigenvalue fluctuates about lambda_+ on the Tracy-Widom scale (Johnstone 2001)
  sigma_TW = sigma^2 (sqrt N + sqrt M)(1 / sqrt N + 1 / sqrt M)^(1/3) / N.
  :func:`fit_mp` fits sigma^2 to the bulk by minimising the Kolmogorov-Smirnov (KS) distance
  between the eigenvalues below lambda_+ + 3 sigma_TW and the MP law (Q is known from the shape).
* Power-law tail: rho(lambda) ~ lambda^(-alpha) for lambda >= x_min, fitted by maximum
  likelihood, alpha = 1 + n / sum_i ln(lambda_i / x_min) over the n tail eigenvalues, with x_min
  chosen among the eigenvalues to minimise the KS distance between the tail and the fitted law
  (Clauset, Shalizi & Newman 2009, as WeightWatcher does), keeping at least ``min_tail``
  eigenvalues in the tail. Standard error (alpha - 1) / sqrt(n).
* Phases, by these rules in order (the thresholds are module constants):

  1. rank-collapse: more than RANK_COLLAPSE_FRACTION of the eigenvalues are below
     RANK_TOL * lambda_max (a finite-size MP law with Q = 1 puts about 1% there).
  2. With the MP fit of the bulk: outliers are eigenvalues above lambda_+ + TW_MARGIN sigma_TW.
     The bulk is MP-like when its KS distance to the fitted law is <= KS_MP.
  3. random-like: MP-like bulk and no outliers.
  4. bulk+spikes: MP-like bulk, at most SPIKE_MAX_FRACTION * M outliers, and the largest
     is >= SPIKE_GAP * lambda_+ (well separated).
  5. bleeding-out: MP-like bulk with outliers otherwise (eigenvalues leaking past the edge).
  6. heavy-tailed: the bulk is not MP-like and the tail exponent alpha <= ALPHA_HEAVY.
  7. bulk-decay: the bulk is not MP-like and alpha > ALPHA_HEAVY (a decaying, weakly heavy
     envelope).

  ``classify(..., noise_outliers=k)`` counts at most k eigenvalues past the edge as noise: the
  rule's outlier count fluctuates for a random matrix too (the fitted sigma^2 moves the edge),
  so a phase resting on a few eigenvalues just past lambda_+ is noise unless more of them are
  out than a null ensemble shows. :func:`null_outliers` draws that null: i.i.d. Gaussian
  matrices of the layer's shape, classified by the same rules.

WeightWatcher's conventions (Martin & Mahoney's tool), where they apply here:

* alpha: the power-law fit above, x_min chosen by KS among the eigenvalues, x_max the largest
  eigenvalue (WeightWatcher's default, no cut); layers with fewer than WW_MIN_EVALS = 10
  eigenvalues are skipped (no alpha, no phase), as WeightWatcher's ``min_evals`` does. Reading
  of alpha: 2-6 "well trained", above 6 random-like / under-trained, below 2 over-trained.
* :func:`ww_metrics`: stable rank sum(lambda) / lambda_max (= ||W||_F^2 / ||W||_2^2 up to the
  1 / N), MP soft rank lambda_+ / lambda_max (lambda_+ of the MP fit of the bulk), spectral norm
  lambda_max.
* Conv2D layers: a (kh, kw, C_in, C_out) kernel is kh * kw matrices (C_in, C_out), one per tap;
  their ESDs are pooled into one (:func:`conv_eigenvalues`), as WeightWatcher's ``pool=True``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import scipy.optimize

RANK_TOL = 1e-4
"""Relative size (of lambda_max) below which :func:`classify` counts an eigenvalue as zero, for
the rank-collapse rule. A project threshold: a finite-size MP law with Q = 1 puts about 1% of
its eigenvalues below it."""
RANK_COLLAPSE_FRACTION = 0.1
"""Fraction of (near-)zero eigenvalues (below ``RANK_TOL * lambda_max``) above which
:func:`classify` calls a layer rank-collapsed, ten times what an MP law with Q = 1 shows. A
project threshold."""
TW_MARGIN = 3.0
"""Margin, in Tracy-Widom scales sigma_TW (Johnstone 2001), past the MP edge lambda_+ beyond which
an eigenvalue is an outlier; also the cut of the bulk :func:`fit_mp` fits. A project threshold."""
KS_MP = 0.05
"""Largest Kolmogorov-Smirnov distance between the bulk and its fitted MP law for the bulk to be
MP-like in :func:`classify` (the random-like, bulk+spikes and bleeding-out phases need it). A
project threshold; the dense-sample experiment also checks its initial spectra against it."""
SPIKE_MAX_FRACTION = 0.05
"""Most outliers, as a fraction of the M eigenvalues, that :func:`classify` reads as a few spikes
(bulk+spikes) rather than bleeding-out. A project threshold."""
SPIKE_GAP = 2.0
"""Least lambda_max / lambda_+ (the largest eigenvalue over the MP edge) for spikes to count as well
separated (bulk+spikes) in :func:`classify`. A project threshold."""
ALPHA_HEAVY = 4.0
"""Largest power-law tail exponent alpha for a non-MP bulk to be heavy-tailed in :func:`classify`
(above it: bulk-decay). A project threshold within WeightWatcher's 2-6 "well trained" band."""

WW_MIN_EVALS = 10
"""WeightWatcher's ``min_evals``: layers with fewer eigenvalues get no alpha and no phase. Kept
as the documented convention; no function here reads it (the dense-sample experiment fits no
alpha for its conv taps and output layer for this reason)."""
WW_ALPHA_UNDER_TRAINED = 6.0
"""WeightWatcher's reading of alpha: above 6, random-like / under-trained (2-6 is "well trained");
the dense-sample ``alpha-well-trained`` claim's threshold."""
WW_ALPHA_OVER_TRAINED = 2.0
"""WeightWatcher's reading of alpha: below 2, over-trained (2-6 is "well trained")."""

PHASES = ("random-like", "bleeding-out", "bulk+spikes", "bulk-decay", "heavy-tailed", "rank-collapse")
"""Martin & Mahoney's 5+1 phases in training order (the names :func:`classify` returns); a
phase's index here is its integer code in the dense-sample experiment's records, whose
``phase-order`` claim reads this order as the sequence of training."""


def correlation_eigenvalues(w: np.ndarray, dtype=np.float32) -> tuple[np.ndarray, float]:
    """Eigenvalues of X = W^T W / N (ESD), with W oriented so N >= M.

    Args:
        w: (a, b) weight matrix (e.g. a flax Dense kernel (in, out)).
        dtype: computation dtype; float32 (default) is 3-5x faster on CPU and its absolute
            error (~1e-7 lambda_max) is far below every threshold used here.

    Returns:
        (eigenvalues (M,) ascending float64, Q = N / M).
    """
    w = np.asarray(w, dtype)
    if w.ndim != 2:
        raise ValueError(f"w: expected a matrix, got shape {w.shape}")
    if w.shape[0] < w.shape[1]:
        w = w.T
    n, m = w.shape
    ev = np.linalg.eigvalsh(w.T @ w / n).astype(np.float64)
    return np.clip(ev, 0.0, None), n / m


def mp_edges(q: float, sigma2: float = 1.0) -> tuple[float, float]:
    """(lambda_-, lambda_+) of the MP law (MP) with ratio Q >= 1 and variance sigma^2."""
    if q < 1:
        raise ValueError(f"q: expected Q = N / M >= 1, got {q}")
    r = 1.0 / math.sqrt(q)
    return sigma2 * (1.0 - r) ** 2, sigma2 * (1.0 + r) ** 2


def mp_density(x: np.ndarray, q: float, sigma2: float = 1.0) -> np.ndarray:
    """The MP density (MP) at ``x`` (0 outside the edges). Shape of ``x``."""
    lo, hi = mp_edges(q, sigma2)
    x = np.asarray(x, np.float64)
    inside = (x > lo) & (x < hi) & (x > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = q / (2 * math.pi * sigma2 * x) * np.sqrt(np.clip((hi - x) * (x - lo), 0.0, None))
    return np.where(inside, d, 0.0)


@lru_cache(maxsize=64)
def _mp_cdf_grid(q: float, points: int = 4001) -> tuple[np.ndarray, np.ndarray]:
    """The MP CDF for sigma^2 = 1 on a grid clustered at both edges (handles sqrt singularities)."""
    lo, hi = mp_edges(q, 1.0)
    s = np.linspace(0.0, 1.0, points)
    x = lo + (hi - lo) * 0.5 * (1.0 - np.cos(math.pi * s))
    # Integrate in s: d lambda / ds removes the edge singularities (including 1/sqrt(lambda) at Q=1).
    dxds = (hi - lo) * 0.5 * math.pi * np.sin(math.pi * s)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.nan_to_num(mp_density(x, q) * dxds)
    c = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(s))])
    return x, c / c[-1]


def mp_cdf(x: np.ndarray, q: float, sigma2: float = 1.0) -> np.ndarray:
    """The MP cumulative distribution at ``x``. Shape of ``x``."""
    gx, gc = _mp_cdf_grid(float(q))
    return np.interp(np.asarray(x, np.float64) / sigma2, gx, gc, left=0.0, right=1.0)


def tracy_widom_scale(n: int, m: int, sigma2: float = 1.0) -> float:
    """sigma_TW: the scale of lambda_max's fluctuation about lambda_+ (Johnstone 2001), for X = W^T W / N."""
    n, m = max(n, m), min(n, m)
    return sigma2 * (math.sqrt(n) + math.sqrt(m)) * (1 / math.sqrt(n) + 1 / math.sqrt(m)) ** (1 / 3) / n


def ks_distance(sorted_x: np.ndarray, cdf: np.ndarray) -> float:
    """KS distance between the empirical CDF of ``sorted_x`` (ascending, n) and model CDF values ``cdf`` (n,)."""
    n = len(sorted_x)
    if n == 0:
        return 1.0
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - cdf), np.max(cdf - (i - 1) / n)))


class MPFit(NamedTuple):
    """An MP fit of a bulk.

    Attributes:
        sigma2: fitted entry variance.
        q: N / M.
        lambda_minus, lambda_plus: the edges (MP).
        tw_scale: sigma_TW.
        ks: KS distance of the bulk (eigenvalues <= lambda_+ + TW_MARGIN sigma_TW) to MP.
        bulk_fraction: fraction of eigenvalues in the bulk.
        num_outliers: eigenvalues above lambda_+ + TW_MARGIN sigma_TW.
    """

    sigma2: float
    q: float
    lambda_minus: float
    lambda_plus: float
    tw_scale: float
    ks: float
    bulk_fraction: float
    num_outliers: int


def _mp_ks(ev: np.ndarray, q: float, n: int, m: int, sigma2: float) -> tuple[float, int]:
    _, hi = mp_edges(q, sigma2)
    cut = hi + TW_MARGIN * tracy_widom_scale(n, m, sigma2)
    k = int(np.searchsorted(ev, cut, side="right"))
    if k < 0.5 * len(ev):
        return 1.0, len(ev) - k
    return ks_distance(ev[:k], mp_cdf(ev[:k], q, sigma2)), len(ev) - k


def fit_mp(eigenvalues: np.ndarray, q: float, num_rows: int | None = None) -> MPFit:
    """Fits sigma^2 of (MP) to the bulk of an ESD (KS minimisation; see the module docstring).

    Args:
        eigenvalues: (M,) eigenvalues of X = W^T W / N.
        q: Q = N / M.
        num_rows: N (default round(Q M)); sets the Tracy-Widom margin.

    Returns:
        :class:`MPFit`. The search starts from sigma^2 = median / MP median (robust to spikes)
        and scans a factor 4 either way on a log grid, then refines with Brent's method.
    """
    ev = np.sort(np.asarray(eigenvalues, np.float64))
    m = len(ev)
    n = int(round(q * m)) if num_rows is None else int(num_rows)
    gx, gc = _mp_cdf_grid(float(q))
    med1 = float(np.interp(0.5, gc, gx))
    s0 = max(float(np.median(ev)) / med1, 1e-300)
    grid = s0 * np.exp(np.linspace(math.log(0.25), math.log(4.0), 81))
    ks = np.array([_mp_ks(ev, q, n, m, s)[0] for s in grid])
    j = int(np.argmin(ks))
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
    res = scipy.optimize.minimize_scalar(lambda ls: _mp_ks(ev, q, n, m, math.exp(ls))[0],
                                         bounds=(math.log(lo), math.log(hi)), method="bounded",
                                         options={"xatol": 1e-4})
    s2 = math.exp(res.x) if res.fun <= ks[j] else grid[j]
    d, n_out = _mp_ks(ev, q, n, m, s2)
    lm, lp = mp_edges(q, s2)
    return MPFit(sigma2=s2, q=q, lambda_minus=lm, lambda_plus=lp, tw_scale=tracy_widom_scale(n, m, s2), ks=d,
                 bulk_fraction=1.0 - n_out / m, num_outliers=n_out)


class PowerLawFit(NamedTuple):
    """A power-law fit of an ESD's tail.

    Attributes:
        alpha: exponent of rho(lambda) ~ lambda^-alpha.
        alpha_se: (alpha - 1) / sqrt(n_tail).
        xmin: the lower end of the tail (an eigenvalue).
        n_tail: eigenvalues >= xmin.
        ks: KS distance of the tail to the fitted law.
    """

    alpha: float
    alpha_se: float
    xmin: float
    n_tail: int
    ks: float


def fit_power_law(eigenvalues: np.ndarray, min_tail: int = 10, xmin: float | None = None) -> PowerLawFit:
    """Fits the tail exponent alpha (maximum likelihood, x_min by KS minimisation).

    Args:
        eigenvalues: (M,) positive values (zeros are ignored).
        min_tail: the fewest eigenvalues a tail may have.
        xmin: fix x_min instead of choosing it.

    Returns:
        :class:`PowerLawFit` (alpha NaN when fewer than ``min_tail`` positive values).
    """
    x = np.sort(np.asarray(eigenvalues, np.float64))
    x = x[x > 0]
    if len(x) < max(min_tail, 2):
        return PowerLawFit(math.nan, math.nan, math.nan, len(x), math.nan)
    logs = np.log(x)

    def fit_at(i):
        tail = logs[i:]
        n = len(tail)
        denom = float(np.sum(tail - logs[i]))
        if denom <= 0:
            return math.inf, 1.0
        a = 1.0 + n / denom
        cdf = 1.0 - np.exp((1.0 - a) * (tail - logs[i]))
        return a, ks_distance(x[i:], cdf)

    if xmin is not None:
        i = int(np.searchsorted(x, xmin, side="left"))
        if len(x) - i < 2:
            raise ValueError(f"xmin: leaves {len(x) - i} values in the tail")
        a, d = fit_at(i)
    else:
        best = None
        for i in range(0, len(x) - min_tail + 1):
            a, d = fit_at(i)
            if np.isfinite(a) and (best is None or d < best[2]):
                best = (i, a, d)
        if best is None:
            return PowerLawFit(math.nan, math.nan, math.nan, 0, math.nan)
        i, a, d = best
    n = len(x) - i
    return PowerLawFit(alpha=a, alpha_se=(a - 1.0) / math.sqrt(n), xmin=float(x[i]), n_tail=n, ks=d)


class Phase(NamedTuple):
    """The Martin-Mahoney phase of one ESD and the numbers the rules used.

    Attributes:
        name: one of :data:`PHASES`.
        mp: the bulk's :class:`MPFit`.
        power_law: the tail's :class:`PowerLawFit`.
        zero_fraction: fraction of eigenvalues below RANK_TOL * lambda_max.
        max_over_edge: lambda_max / lambda_+.
    """

    name: str
    mp: MPFit
    power_law: PowerLawFit
    zero_fraction: float
    max_over_edge: float


def classify(eigenvalues: np.ndarray, q: float, num_rows: int | None = None, min_tail: int = 10,
             noise_outliers: int = 0) -> Phase:
    """The Martin-Mahoney phase of an ESD by the rules of the module docstring.

    Args:
        eigenvalues: (M,) eigenvalues of X = W^T W / N.
        q: N / M.
        num_rows: N (default round(Q M)).
        min_tail: for :func:`fit_power_law`.
        noise_outliers: outlier counts up to this are read as noise (a random-like bulk): the
            largest count a null ensemble of random matrices shows (:func:`null_outliers`).

    Returns:
        :class:`Phase`.
    """
    ev = np.sort(np.asarray(eigenvalues, np.float64))
    m = len(ev)
    zero_fraction = float(np.mean(ev < RANK_TOL * ev[-1])) if ev[-1] > 0 else 1.0
    mp = fit_mp(ev, q, num_rows)
    pl = fit_power_law(ev, min_tail=min_tail)
    over = float(ev[-1] / mp.lambda_plus) if mp.lambda_plus > 0 else math.inf
    if zero_fraction > RANK_COLLAPSE_FRACTION:
        name = "rank-collapse"
    elif mp.ks <= KS_MP:
        if mp.num_outliers <= noise_outliers:
            name = "random-like"
        elif mp.num_outliers <= SPIKE_MAX_FRACTION * m and over >= SPIKE_GAP:
            name = "bulk+spikes"
        else:
            name = "bleeding-out"
    elif np.isfinite(pl.alpha) and pl.alpha <= ALPHA_HEAVY:
        name = "heavy-tailed"
    else:
        name = "bulk-decay"
    return Phase(name=name, mp=mp, power_law=pl, zero_fraction=zero_fraction, max_over_edge=over)


def ww_metrics(eigenvalues: np.ndarray, lambda_plus: float | None = None) -> dict[str, float]:
    """WeightWatcher's rank and norm metrics of an ESD.

    Args:
        eigenvalues: (M,) eigenvalues of X = W^T W / N.
        lambda_plus: the bulk's MP edge (for the soft rank); None leaves it NaN.

    Returns:
        ``{"stable_rank": sum / max, "mp_softrank": lambda_+ / max, "spectral_norm": max,
        "log_norm": log10 sum}``.
    """
    ev = np.clip(np.asarray(eigenvalues, np.float64), 0.0, None)
    top = float(ev.max()) if ev.size else math.nan
    ok = top > 0
    return {"stable_rank": float(ev.sum() / top) if ok else math.nan,
            "mp_softrank": float(lambda_plus / top) if ok and lambda_plus is not None else math.nan,
            "spectral_norm": top,
            "log_norm": float(math.log10(ev.sum())) if ev.sum() > 0 else math.nan}


def conv_eigenvalues(kernel: np.ndarray) -> tuple[np.ndarray, float]:
    """The pooled ESD of a conv kernel (kh, kw, C_in, C_out): the eigenvalues of W_ij^T W_ij / N
    of every tap's (C_in, C_out) matrix (oriented N >= M), concatenated and sorted.

    Returns:
        (eigenvalues (kh * kw * M,) ascending float64, Q = N / M).
    """
    k = np.asarray(kernel)
    if k.ndim != 4:
        raise ValueError(f"kernel: expected (kh, kw, C_in, C_out), got shape {k.shape}")
    evs, q = [], 1.0
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            ev, q = correlation_eigenvalues(k[i, j])
            evs.append(ev)
    return np.sort(np.concatenate(evs)), q


class NullSpectra(NamedTuple):
    """What the phase rules read off i.i.d. Gaussian matrices of one shape (the noise floor).

    Attributes:
        num_outliers: (R,) outliers past lambda_+ + TW_MARGIN sigma_TW of each null matrix.
        max_over_edge: (R,) lambda_max / lambda_+.
        alpha: (R,) tail exponents.
        mp_ks: (R,) KS distances of the bulk to its MP fit.
        phases: (R,) phase names with ``noise_outliers=0``.
    """

    num_outliers: np.ndarray
    max_over_edge: np.ndarray
    alpha: np.ndarray
    mp_ks: np.ndarray
    phases: tuple[str, ...]


def null_outliers(n: int, m: int, num_matrices: int = 8, seed: int = 0) -> NullSpectra:
    """The phase rules on ``num_matrices`` i.i.d. N(0, 1) matrices (n, m) (n >= m): the noise
    floor of the outlier count, lambda_max / lambda_+ and alpha for a random layer of that shape.

    Returns:
        :class:`NullSpectra`.
    """
    n, m = max(n, m), min(n, m)
    rng = np.random.default_rng(seed)
    out, over, alpha, ks, names = [], [], [], [], []
    for _ in range(int(num_matrices)):
        ev, q = correlation_eigenvalues(rng.standard_normal((n, m), dtype=np.float32))
        ph = classify(ev, q, num_rows=n)
        out.append(ph.mp.num_outliers)
        over.append(ph.max_over_edge)
        alpha.append(ph.power_law.alpha)
        ks.append(ph.mp.ks)
        names.append(ph.name)
    return NullSpectra(np.asarray(out), np.asarray(over), np.asarray(alpha), np.asarray(ks), tuple(names))


def esd_histogram(eigenvalues: np.ndarray, bins: int = 60, log: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Density histogram of an ESD (log-spaced bins by default, for heavy tails).

    Returns:
        (centres (bins,), density (bins,)).
    """
    ev = np.asarray(eigenvalues, np.float64)
    ev = ev[ev > 0] if log else ev
    if log:
        edges = np.geomspace(ev.min(), ev.max() * (1 + 1e-9), bins + 1)
    else:
        edges = np.linspace(ev.min(), ev.max() * (1 + 1e-9), bins + 1)
    dens, _ = np.histogram(ev, bins=edges, density=True)
    centres = np.sqrt(edges[1:] * edges[:-1]) if log else 0.5 * (edges[1:] + edges[:-1])
    return centres, dens
