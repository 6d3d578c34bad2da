"""Fits of the training response law (Nakazato Eq. 8) and of prediction curves.

    Delta(x_o, x_h) / (y_o - f(x_o))  ~  e^(-tau) K(x_o, x_h, e)

(the paper writes e^-tau for the power law epoch^-tau). From recorded normalised responses
R[seed, time, probe] with the Hamming distance h of each probe this module gives:

* the response size S(e) = R at h = 0 (the response of x_o on itself), per seed;
* the response kernel K(h, e) = <R(h, e)> / <R(0, e)>, the seed-mean profile normalised by the
  size, and its slope per bit (a straight-line fit over h), with bootstrap intervals over seeds;
* the aging exponent tau of S(e) ~ A e^(-tau) after the initial phase, fitted on the seed-mean
  curve in log-log coordinates, with a bootstrap interval over seeds and per-seed exponents;
* how much of the measured response the NTK explains (1 - SS_res / SS_tot);
* turning points of prediction curves (the minority's turn, splits).

Everything is numpy (host-side analysis of recorded arrays); bootstrap draws use an explicit
``numpy.random.Generator`` seed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.stats


class PowerLawFit(NamedTuple):
    """S(t) = amplitude * t^(-tau) fitted in log-log coordinates.

    Attributes:
        tau: the decay exponent (positive for a decay) of the seed-mean curve.
        amplitude: the prefactor A.
        r2: coefficient of determination of the log-log line.
        ci: (low, high) bootstrap interval of tau over seeds (``level``).
        stderr: bootstrap standard deviation of tau.
        per_seed: (seed,) exponents fitted to each seed's curve (NaN where the curve has
            non-positive values in the window).
        local_early, local_late: exponents fitted on the first and second half (in log t) of
            the window: equal for a pure power law, their gap measures the curvature.
        t_min, t_max: the fit window (inclusive).
        level: confidence level of ``ci``.
    """

    tau: float
    amplitude: float
    r2: float
    ci: tuple[float, float]
    stderr: float
    per_seed: np.ndarray
    local_early: float
    local_late: float
    t_min: float
    t_max: float
    level: float

    def to_dict(self) -> dict[str, Any]:
        finite = self.per_seed[np.isfinite(self.per_seed)]
        return {
            "tau": self.tau, "tau_ci": list(self.ci), "tau_stderr": self.stderr, "amplitude": self.amplitude,
            "r2_loglog": self.r2, "tau_local_early": self.local_early, "tau_local_late": self.local_late,
            "tau_per_seed_mean": float(np.mean(finite)) if finite.size else float("nan"),
            "tau_per_seed_sem": float(scipy.stats.sem(finite)) if finite.size > 1 else float("nan"),
            "fit_window": [self.t_min, self.t_max], "ci_level": self.level,
        }


class LineFit(NamedTuple):
    """y = intercept + slope * x."""

    slope: float
    intercept: float
    r2: float


def line_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> LineFit:
    """Weighted least-squares straight line through (x, y), both (n,). Weights default to 1."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = np.ones_like(x) if w is None else np.asarray(w, np.float64)
    w = w / w.sum()
    xm, ym = np.sum(w * x), np.sum(w * y)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = np.sum(w * (x - xm) * (y - ym)) / sxx
    intercept = ym - slope * xm
    ss_tot = np.sum(w * (y - ym) ** 2)
    ss_res = np.sum(w * (y - intercept - slope * x) ** 2)
    return LineFit(float(slope), float(intercept), float(1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan"))


def _loglog(t: np.ndarray, s: np.ndarray) -> LineFit:
    # Weights 1/t: records are uniform in t, so each decade of t counts equally.
    ok = (s > 0) & np.isfinite(s)
    if ok.sum() < 3:
        return LineFit(float("nan"), float("nan"), float("nan"))
    return line_fit(np.log(t[ok]), np.log(s[ok]), 1.0 / t[ok])


def power_law_fit(t: np.ndarray, sizes: np.ndarray, t_min: float, t_max: float | None = None, *,
                  n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> PowerLawFit:
    """The aging exponent: S(t) ~ A t^(-tau) on t_min <= t <= t_max.

    Args:
        t: (time,) epochs (steps) of the records.
        sizes: (seed, time) response sizes.
        t_min, t_max: the fit window (after the initial phase); t_max default the last record.
        n_boot: bootstrap resamples of the seeds for the interval.
        level: confidence level.
        seed: seed of the bootstrap generator.

    Returns:
        A :class:`PowerLawFit`.
    """
    t = np.asarray(t, np.float64)
    sizes = np.asarray(sizes, np.float64)
    t_max = float(t[-1]) if t_max is None else float(t_max)
    win = (t >= t_min) & (t <= t_max) & (t > 0)
    if win.sum() < 3:
        raise ValueError(f"the fit window [{t_min}, {t_max}] holds {int(win.sum())} records; need >= 3")
    tw, sw = t[win], sizes[:, win]
    fit = _loglog(tw, np.nanmean(sw, 0))
    rng = np.random.default_rng(seed)
    n = sw.shape[0]
    boots = np.array([-_loglog(tw, np.nanmean(sw[rng.integers(0, n, n)], 0)).slope for _ in range(n_boot)])
    boots = boots[np.isfinite(boots)]
    alpha = (1.0 - level) / 2.0
    ci = (float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))) if boots.size else (np.nan, np.nan)
    per_seed = np.array([-_loglog(tw, s).slope for s in sw])
    mid = np.exp(0.5 * (np.log(tw[0]) + np.log(tw[-1])))
    early = _loglog(tw[tw <= mid], np.nanmean(sw[:, tw <= mid], 0))
    late = _loglog(tw[tw >= mid], np.nanmean(sw[:, tw >= mid], 0))
    return PowerLawFit(
        tau=-fit.slope, amplitude=float(np.exp(fit.intercept)), r2=fit.r2, ci=ci,
        stderr=float(np.std(boots)) if boots.size else float("nan"), per_seed=per_seed,
        local_early=-early.slope, local_late=-late.slope, t_min=float(tw[0]), t_max=float(tw[-1]), level=level,
    )


def profile(response: np.ndarray, h: np.ndarray, num_h: int | None = None) -> np.ndarray:
    """Mean response at each Hamming distance.

    Args:
        response: (..., probe) normalised responses.
        h: (probe,) int distance of each probe.
        num_h: number of distances (default max(h) + 1).

    Returns:
        (..., num_h) mean over the probes at each distance (NaN where none).
    """
    h = np.asarray(h)
    num_h = int(h.max()) + 1 if num_h is None else num_h
    out = np.full(response.shape[:-1] + (num_h,), np.nan)
    for k in range(num_h):
        sel = h == k
        if sel.any():
            out[..., k] = np.mean(response[..., sel], axis=-1)
    return out


class KernelFit(NamedTuple):
    """The response kernel at one epoch.

    Attributes:
        kernel: (num_h,) K(h) = <R(h)> / <R(0)>, seed means.
        kernel_ci: (2, num_h) bootstrap interval over seeds.
        slope: slope of K per bit (straight line over h), negative for a decreasing kernel.
        slope_ci: bootstrap interval of the slope.
        r2: linearity, R^2 of the straight line.
        raw_slope: slope of the unnormalised profile <R(h)> per bit.
        size: <R(0)>.
    """

    kernel: np.ndarray
    kernel_ci: np.ndarray
    slope: float
    slope_ci: tuple[float, float]
    r2: float
    raw_slope: float
    size: float

    def to_dict(self) -> dict[str, Any]:
        return {"slope": self.slope, "slope_ci": list(self.slope_ci), "r2_linear": self.r2,
                "raw_slope": self.raw_slope, "size": self.size, "kernel": self.kernel.tolist()}


def kernel_fit(prof: np.ndarray, distances: np.ndarray | None = None, *, n_boot: int = 1000, level: float = 0.95,
               seed: int = 0) -> KernelFit:
    """Normalised kernel and its slope from per-seed profiles.

    Args:
        prof: (seed, num_h) per-seed mean response at each distance (from :func:`profile`).
        distances: (num_h,) the distances (default 0..num_h-1); K is normalised at the first.

    Returns:
        A :class:`KernelFit`.
    """
    prof = np.asarray(prof, np.float64)
    d = np.arange(prof.shape[1], dtype=np.float64) if distances is None else np.asarray(distances, np.float64)

    def kern(p):
        m = np.nanmean(p, 0)
        return m / m[0]

    k = kern(prof)
    fit = line_fit(d, k)
    rng = np.random.default_rng(seed)
    n = prof.shape[0]
    ks = np.array([kern(prof[rng.integers(0, n, n)]) for _ in range(n_boot)])
    slopes = np.array([line_fit(d, kk).slope for kk in ks])
    alpha = (1.0 - level) / 2.0
    return KernelFit(
        kernel=k, kernel_ci=np.nanquantile(ks, [alpha, 1 - alpha], axis=0), slope=fit.slope,
        slope_ci=(float(np.nanquantile(slopes, alpha)), float(np.nanquantile(slopes, 1 - alpha))),
        r2=fit.r2, raw_slope=line_fit(d, np.nanmean(prof, 0)).slope, size=float(np.nanmean(prof[:, 0])),
    )


def explained_fraction(measured: np.ndarray, predicted: np.ndarray) -> float:
    """1 - sum (measured - predicted)^2 / sum (measured - mean)^2 over all entries (NaN-safe)."""
    m, p = np.asarray(measured, np.float64), np.asarray(predicted, np.float64)
    ok = np.isfinite(m) & np.isfinite(p)
    m, p = m[ok], p[ok]
    ss_tot = np.sum((m - m.mean()) ** 2)
    return float(1.0 - np.sum((m - p) ** 2) / ss_tot) if ss_tot > 0 else float("nan")


def relative_error(measured: np.ndarray, predicted: np.ndarray) -> float:
    """||measured - predicted|| / ||measured|| over all entries (NaN-safe)."""
    m, p = np.asarray(measured, np.float64), np.asarray(predicted, np.float64)
    ok = np.isfinite(m) & np.isfinite(p)
    return float(np.linalg.norm(m[ok] - p[ok]) / np.linalg.norm(m[ok]))


def turning_point(t: np.ndarray, curve: np.ndarray, kind: str = "min", *, after: float | None = None,
                  margin: float = 0.0) -> tuple[float, float]:
    """Where a prediction curve turns: its minimum (``kind='min'``) or maximum.

    Args:
        t: (time,) steps.
        curve: (time,) values.
        after: only consider t >= after.
        margin: the turn counts only if the curve moves by more than ``margin`` both before
            (from its start in the window) and after the extremum (to its end); otherwise NaN.

    Returns:
        (t of the extremum or NaN, the depth: the smaller of the two moves).
    """
    t, c = np.asarray(t, np.float64), np.asarray(curve, np.float64)
    sel = np.ones_like(t, bool) if after is None else t >= after
    if sel.sum() < 3 or not np.all(np.isfinite(c[sel])):
        return float("nan"), float("nan")
    ts, cs = t[sel], c[sel]
    sign = 1.0 if kind == "min" else -1.0
    i = int(np.argmin(sign * cs))
    depth = min(sign * (cs[0] - cs[i]), sign * (cs[-1] - cs[i]))
    if i == 0 or i == len(cs) - 1 or depth <= margin:
        return float("nan"), float(depth)
    return float(ts[i]), float(depth)
