"""The logistic learning decomposition (LLD) of a learning curve (Hanson, Yadav & Hanson 2023).

The paper fits the accuracy-over-epochs curve of a deep net with a sum of logistic components,

    y(t) = b + sum_{k=1..K} A_k / (1 + exp(-r_k (t - t0_k)))                      (LLD)

each with an onset t0_k, a rate r_k and an amplitude A_k, over a floor b; it reports that one
logistic explains about 94% of the variance and two about 99%. This module fits (LLD) for
K = 1, 2, 3 by nonlinear least squares (``scipy.optimize.least_squares``, trust-region
reflective, with bounds) from many deterministic starts, and reports per K

* the variance explained R^2 = 1 - SSE / SST, SST = sum_t (y_t - mean y)^2;
* the information criteria with Gaussian errors of unknown variance,
  AIC = n ln(SSE / n) + 2 p, BIC = n ln(SSE / n) + p ln n, p = 3 K + 1 (+ AICc);
* each parameter's standard error from the Jacobian at the optimum,
  cov = SSE / (n - p) (J^T J)^+;
* the lag-1 autocorrelation of the residuals.

Correlated errors. A learning curve's residuals about a smooth fit are not independent (the
same network, one epoch apart: lag-1 autocorrelations of 0.45-0.87 are typical), and an
information criterion with i.i.d. errors then rewards every extra component. With
``errors='ar1'`` the errors are modelled as a stationary AR(1) process, e_t = phi e_{t-1} + u_t,
u_t ~ N(0, s^2), and (LLD) and phi are fitted jointly by exact maximum likelihood: with the
Prais-Winsten residuals r_1 = sqrt(1 - phi^2) e_1, r_t = e_t - phi e_{t-1} and S = sum r_t^2,
the profile log-likelihood is

    ln L = -n/2 (ln(2 pi S / n) + 1) + 1/2 ln(1 - phi^2),                        (AR1)

maximised by least squares on r_t (1 - phi^2)^(-1/(2n)). The criteria use -2 ln L (constants
dropped, as for i.i.d. errors) and count phi as one more parameter. R^2 is always that of the
mean curve, 1 - sum e_t^2 / SST.

Parameter counts. ``extra_per_component`` sets how many parameters each component after the
first adds in the criteria (default 3: onset, rate, amplitude). Hanson et al. count the second
logistic as "2 more parameters"; ``extra_per_component=2`` reproduces that count.

and :func:`across_seeds` gives the parameters' mean and spread over an ensemble. Components
are ordered by onset, which removes the label-switching symmetry of the sum.

Fits never fail silently: every :class:`LogisticFit` carries ``success`` and a ``message``;
a curve no start could fit yields ``success=False`` (with NaN parameters) and a warning.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.optimize


def logistic(t: np.ndarray, onset: float, rate: float, amplitude: float) -> np.ndarray:
    """One LLD component, A / (1 + exp(-r (t - t0))), evaluated stably. Shape of ``t``."""
    z = np.clip(rate * (np.asarray(t, np.float64) - onset), -700.0, 700.0)
    return amplitude * 0.5 * (1.0 + np.tanh(0.5 * z))


def lld_curve(t: np.ndarray, baseline: float, onset: Sequence[float], rate: Sequence[float],
              amplitude: Sequence[float]) -> np.ndarray:
    """The sum (LLD): baseline + sum_k logistic(t; t0_k, r_k, A_k). Shape of ``t``."""
    y = np.full(np.shape(t), float(baseline))
    for t0, r, a in zip(onset, rate, amplitude):
        y = y + logistic(t, t0, r, a)
    return y


class LogisticFit(NamedTuple):
    """A fit of (LLD) with K components.

    Attributes:
        num_components: K.
        baseline: b (the fixed value when it was not fitted).
        onset, rate, amplitude: (K,) parameters, ordered by onset.
        baseline_se: standard error of b (0 when fixed).
        onset_se, rate_se, amplitude_se: (K,) standard errors (inf where not identifiable).
        r2: variance explained, 1 - SSE / SST (NaN for a constant curve, SST = 0).
        sse: residual sum of squares.
        n: number of points.
        num_params: parameters counted by the criteria: 3 for the first component and
            ``extra_per_component`` for each other (+ 1 if b was fitted, + 1 for phi).
        aic, aicc, bic: information criteria (lower is better).
        fitted: (n,) the fitted curve at the data's times.
        success: whether a fit was found.
        message: what happened (the optimizer's status, or why it failed).
        starts: number of starts tried.
        errors: ``'iid'`` or ``'ar1'`` (the error model of the fit and of the criteria).
        phi: the fitted AR(1) coefficient (0 for i.i.d. errors).
        residual_autocorrelation: lag-1 autocorrelation of the residuals y - fitted.
        log_likelihood: the maximised Gaussian log-likelihood (constants included).
    """

    num_components: int
    baseline: float
    onset: np.ndarray
    rate: np.ndarray
    amplitude: np.ndarray
    baseline_se: float
    onset_se: np.ndarray
    rate_se: np.ndarray
    amplitude_se: np.ndarray
    r2: float
    sse: float
    n: int
    num_params: int
    aic: float
    aicc: float
    bic: float
    fitted: np.ndarray
    success: bool
    message: str
    starts: int
    errors: str = "iid"
    phi: float = 0.0
    residual_autocorrelation: float = math.nan
    log_likelihood: float = math.nan

    def components(self, t: np.ndarray) -> np.ndarray:
        """(K, len(t)) each logistic component (without the baseline) at times ``t``."""
        return np.stack([logistic(t, a, b, c) for a, b, c in zip(self.onset, self.rate, self.amplitude)]) \
            if self.num_components else np.zeros((0, len(t)))

    def curve(self, t: np.ndarray) -> np.ndarray:
        """(len(t),) the fitted (LLD) curve at times ``t``."""
        return lld_curve(t, self.baseline, self.onset, self.rate, self.amplitude)


def information_criteria(sse: float, n: int, p: int, log_det: float = 0.0) -> tuple[float, float, float]:
    """(AIC, AICc, BIC) of a least-squares fit with Gaussian errors of unknown variance.

    AIC = n ln(SSE/n) + 2p, AICc = AIC + 2p(p+1)/(n-p-1) (inf when n <= p + 1),
    BIC = n ln(SSE/n) + p ln n. SSE is floored at 1e-300 so an exact fit stays finite. For
    AR(1) errors pass the Prais-Winsten S as ``sse`` and ``log_det = ln(1 - phi^2)``: the
    deviance is then n ln(S/n) - ln(1 - phi^2) (see (AR1)).
    """
    ll = n * math.log(max(sse, 1e-300) / n) - log_det
    aic = ll + 2 * p
    aicc = aic + 2 * p * (p + 1) / (n - p - 1) if n > p + 1 else math.inf
    return aic, aicc, ll + p * math.log(n)


def lag1_autocorrelation(residuals: np.ndarray) -> float:
    """Lag-1 autocorrelation sum e_t e_{t-1} / sum e_t^2 of (n,) residuals (centred first); NaN
    when they are all equal."""
    e = np.asarray(residuals, np.float64)
    e = e - e.mean()
    denom = float(np.sum(e**2))
    return float(np.sum(e[1:] * e[:-1]) / denom) if denom > 0 and e.size > 1 else math.nan


def sampling_noise_ceiling(y: np.ndarray, p: np.ndarray, num_examples: int) -> float:
    """The largest R^2 a fit of an accuracy curve can reach when each point is the accuracy of
    ``num_examples`` test examples: 1 - sum_t p_t (1 - p_t) / n / SST, with p_t the true
    accuracy (e.g. the fitted curve, clipped to [0, 1]) and SST that of the observed ``y``.

    Reading: binomial sampling of each epoch's accuracy, independent across epochs (the same test
    set is used at every epoch, so the errors are in fact correlated; the ceiling is what the
    variance of that noise alone leaves unexplained).

    Args:
        y: (n,) observed accuracies.
        p: (n,) true (fitted) accuracies.
        num_examples: test examples per point.
    """
    y = np.asarray(y, np.float64)
    p = np.clip(np.asarray(p, np.float64), 0.0, 1.0)
    sst = float(np.sum((y - y.mean()) ** 2))
    if sst <= 0 or num_examples < 1:
        return math.nan
    return 1.0 - float(np.sum(p * (1.0 - p))) / num_examples / sst


def _failed(k: int, n: int, p: int, message: str, starts: int, baseline: float, errors: str = "iid") -> LogisticFit:
    nan = np.full(k, np.nan)
    return LogisticFit(k, baseline, nan, nan.copy(), nan.copy(), math.nan, nan.copy(), nan.copy(), nan.copy(),
                       math.nan, math.nan, n, p, math.nan, math.nan, math.nan, np.full(n, np.nan), False, message,
                       starts, errors, math.nan, math.nan, math.nan)


def _starts(t: np.ndarray, y: np.ndarray, k: int, span: float, sign: float, num_starts: int,
            rng: np.random.Generator) -> list[np.ndarray]:
    """Initial (onset, log rate, amplitude) per component, from the curve's own crossings."""
    rise = sign * (y - y[0])
    total = max(float(np.max(rise)), 1e-12)
    # Times at which the (cumulative-max) rise crosses fractions of its total: candidate onsets.
    cum = np.maximum.accumulate(rise) / total
    fracs = np.linspace(0.1, 0.9, 9)
    onsets = sorted({float(np.interp(f, cum + 1e-12 * np.arange(len(cum)), t)) for f in fracs})
    onsets += [float(t[0] + q * span) for q in (0.1, 0.5, 0.9)]
    rates = [2.0 / span, 10.0 / span, 50.0 / span]
    combos = []
    for ons in itertools.combinations(sorted(set(np.round(onsets, 12))), k):
        for r in rates:
            combos.append((ons, r))
    rng.shuffle(combos)
    combos = combos[: max(num_starts - 1, 1)]
    # The deterministic first start: onsets spread over the rise, mid rate.
    first = (tuple(float(np.interp(f, cum + 1e-12 * np.arange(len(cum)), t)) for f in np.linspace(0.2, 0.8, k)),
             10.0 / span)
    out = []
    for ons, r in [first] + combos:
        x = []
        for t0 in ons:
            x += [t0, math.log(r), sign * total / k]
        out.append(np.asarray(x))
    return out


def fit_lld(t: np.ndarray, y: np.ndarray, num_components: int, *, baseline: float | None = None,
            direction: str = "increasing", errors: str = "iid", extra_per_component: int = 3,
            num_starts: int = 24, seed: int = 0) -> LogisticFit:
    """Fits (LLD) with ``num_components`` logistics to one curve.

    Args:
        t: (n,) times (epochs).
        y: (n,) the curve (accuracy, or loss with ``direction='decreasing'``).
        num_components: K >= 0 (K = 0 fits the constant b).
        baseline: fix b to this value (e.g. chance accuracy 1/classes); None fits it.
        direction: ``'increasing'`` (amplitudes >= 0), ``'decreasing'`` (<= 0) or ``'free'``.
        num_starts: starts tried (onset combinations at the curve's crossing times, and rates
            2, 10, 50 per time span; deterministic given ``seed``); the lowest SSE wins.
        seed: for the order in which starts are sampled.
        errors: ``'iid'`` (least squares) or ``'ar1'`` (AR(1) errors fitted jointly, see the
            module docstring; the curve's points must be equally spaced in t).
        extra_per_component: parameters each component after the first adds in the criteria
            (3, or 2 as Hanson et al. count); the fit itself is the same.

    Returns:
        :class:`LogisticFit`. The rate is fitted in log space (so r > 0); onsets are bounded to
        the data range widened by one span on each side; amplitudes to the observed range
        times 3; phi to (-0.99, 0.99).
    """
    t = np.asarray(t, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    k = int(num_components)
    if t.shape != y.shape or t.size < 2:
        raise ValueError(f"t and y: expected two 1-D arrays of the same length >= 2, got {t.shape} and {y.shape}")
    if k < 0:
        raise ValueError(f"num_components: expected >= 0, got {num_components!r}")
    if direction not in ("increasing", "decreasing", "free"):
        raise ValueError(f"direction: expected increasing, decreasing or free, got {direction!r}")
    if errors not in ("iid", "ar1"):
        raise ValueError(f"errors: expected iid or ar1, got {errors!r}")
    if isinstance(extra_per_component, bool) or not isinstance(extra_per_component, (int, np.integer)) or extra_per_component < 1:
        raise ValueError(f"extra_per_component: expected a positive int, got {extra_per_component!r}")
    if errors == "ar1" and t.size >= 3 and not np.allclose(np.diff(t), np.diff(t)[0]):
        raise ValueError("t: AR(1) errors need equally spaced times")
    ar1 = errors == "ar1"
    fit_b = baseline is None
    p = 3 * k + int(fit_b) + int(ar1)  # parameters fitted
    # Parameters counted by the criteria: the first component's 3, then extra_per_component each.
    p_counted = (3 + extra_per_component * (k - 1) if k else 0) + int(fit_b) + int(ar1)
    n = t.size
    b_fixed = math.nan if fit_b else float(baseline)
    ok = np.isfinite(t) & np.isfinite(y)
    if not ok.all():
        return _failed(k, n, p_counted, f"{int((~ok).sum())} non-finite points in the curve", 0, b_fixed, errors)
    if n <= p:
        return _failed(k, n, p_counted, f"{n} points cannot determine {p} parameters", 0, b_fixed, errors)
    span = float(t.max() - t.min()) or 1.0
    yr = float(y.max() - y.min()) or 1.0
    sign = -1.0 if direction == "decreasing" else 1.0
    sst = float(np.sum((y - y.mean()) ** 2))

    n_mean = 3 * k + int(fit_b)  # parameters of the mean curve; phi (ar1) is last

    def unpack(x):
        b = x[0] if fit_b else b_fixed
        c = x[int(fit_b):n_mean].reshape(k, 3)
        return b, c[:, 0], np.exp(c[:, 1]), c[:, 2]

    def raw(x):
        b, t0, r, a = unpack(x)
        return lld_curve(t, b, t0, r, a) - y

    def mean_jac(x):
        _, t0, r, a = unpack(x)
        cols = [np.ones((n, 1))] if fit_b else []
        for j in range(k):
            z = np.clip(r[j] * (t - t0[j]), -700.0, 700.0)
            sig = 0.5 * (1.0 + np.tanh(0.5 * z))
            d = sig * (1.0 - sig)
            # d/d onset, d/d log rate, d/d amplitude of A sigma(r (t - t0)).
            cols.append(np.stack([-a[j] * r[j] * d, a[j] * d * r[j] * (t - t0[j]), sig], -1))
        return np.concatenate(cols, -1) if cols else np.zeros((n, 0))

    def prais_winsten(e, phi):
        """The whitened residuals of AR(1) errors, scaled so their squared sum is the deviance."""
        w = np.concatenate([[math.sqrt(1.0 - phi**2) * e[0]], e[1:] - phi * e[:-1]])
        return w * (1.0 - phi**2) ** (-0.5 / n)

    def resid(x):
        e = raw(x)
        return prais_winsten(e, x[-1]) if ar1 else e

    def jac(x):
        jm = mean_jac(x)
        if not ar1:
            return jm
        phi, e = x[-1], raw(x)
        c = (1.0 - phi**2) ** (-0.5 / n)
        jw = np.concatenate([math.sqrt(1.0 - phi**2) * jm[:1], jm[1:] - phi * jm[:-1]]) * c
        w = prais_winsten(e, phi)
        # d w / d phi: the product rule over the whitening and the scale factor.
        dwhite = np.concatenate([[-phi / math.sqrt(1.0 - phi**2) * e[0]], -e[:-1]]) * c
        dscale = w * (phi / (n * (1.0 - phi**2)))
        return np.concatenate([jw, (dwhite + dscale)[:, None]], -1)

    lo_a, hi_a = {"increasing": (0.0, 3 * yr), "decreasing": (-3 * yr, 0.0), "free": (-3 * yr, 3 * yr)}[direction]
    lo = ([y.min() - 2 * yr] if fit_b else []) + [t.min() - span, math.log(1e-3 / span), lo_a] * k
    hi = ([y.max() + 2 * yr] if fit_b else []) + [t.max() + span, math.log(1e3 / span), hi_a] * k
    if ar1:
        lo, hi = lo + [-0.99], hi + [0.99]
    lo, hi = np.asarray(lo), np.asarray(hi)
    if k == 0:
        starts = [np.array([y.mean()])] if fit_b else [np.zeros(0)]
    else:
        starts = [np.concatenate([[y[0]] if fit_b else [], s])
                  for s in _starts(t, y, k, span, sign, num_starts, np.random.default_rng(seed))]
    if ar1:
        starts = [np.concatenate([x0, [0.0]]) for x0 in starts]
    best, messages = None, set()
    for x0 in starts:
        x0 = np.clip(x0, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
        if x0.size == 0:  # K = 0 with a fixed baseline: nothing to fit
            best = scipy.optimize.OptimizeResult(x=x0, fun=resid(x0), jac=np.zeros((n, 0)), status=1,
                                                 message="nothing to fit")
            break
        try:
            res = scipy.optimize.least_squares(resid, x0, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac",
                                               max_nfev=1000)
        except (ValueError, np.linalg.LinAlgError) as err:  # a start the optimizer rejects
            messages.add(f"{type(err).__name__}: {err}")
            continue
        if not np.all(np.isfinite(res.fun)):
            messages.add("non-finite residuals")
            continue
        messages.add(res.message)
        if best is None or np.sum(res.fun**2) < np.sum(best.fun**2):
            best = res
    if best is None:
        msg = f"no start converged ({len(starts)} tried): " + "; ".join(sorted(messages))
        warnings.warn(f"fit_lld K={k}: {msg}", RuntimeWarning, stacklevel=2)
        return _failed(k, n, p_counted, msg, len(starts), b_fixed, errors)

    b, t0, r, a = unpack(best.x)
    e = raw(best.x)
    sse = float(np.sum(e**2))  # of the mean curve: R^2 is always about it
    phi = float(best.x[-1]) if ar1 else 0.0
    whitened = float(np.sum(best.fun**2)) * (1.0 - phi**2) ** (1.0 / n) if ar1 else sse  # S of (AR1)
    log_det = math.log(1.0 - phi**2) if ar1 else 0.0
    # Standard errors in the natural parameters: chain rule through r = exp(log r).
    jac = np.asarray(best.jac, np.float64)
    scale = np.ones(p)
    if k:
        scale[int(fit_b) + 1:n_mean:3] = r
    jac_nat = jac / scale
    dof = max(n - p, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = np.linalg.pinv(jac_nat.T @ jac_nat) * (float(np.sum(best.fun**2)) / dof)
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    # Parameters the data cannot determine (singular J^T J) get an infinite error.
    if p:
        _, sv, vt = np.linalg.svd(jac_nat, full_matrices=True)
        sv = np.concatenate([sv, np.zeros(p - sv.size)])
        null = vt[sv < 1e-10 * max(sv.max(), 1e-300)]
        if null.size:
            se = np.where(np.abs(null).max(0) > 1e-6, np.inf, se)
    b_se = float(se[0]) if fit_b else 0.0
    cse = se[int(fit_b):n_mean].reshape(k, 3) if k else np.zeros((0, 3))
    order = np.argsort(t0, kind="stable")
    aic, aicc, bic = information_criteria(whitened, n, p_counted, log_det)
    log_likelihood = -0.5 * n * (math.log(2 * math.pi * max(whitened, 1e-300) / n) + 1.0) + 0.5 * log_det
    return LogisticFit(
        num_components=k, baseline=float(b), onset=t0[order], rate=r[order], amplitude=a[order],
        baseline_se=b_se, onset_se=cse[order, 0], rate_se=cse[order, 1], amplitude_se=cse[order, 2],
        r2=1.0 - sse / sst if sst > 0 else math.nan, sse=sse, n=n, num_params=p_counted,
        aic=aic, aicc=aicc, bic=bic, fitted=y + e, success=bool(best.status > 0),
        message=str(best.message), starts=len(starts), errors=errors, phi=phi,
        residual_autocorrelation=lag1_autocorrelation(e), log_likelihood=log_likelihood,
    )


class LLDResult(NamedTuple):
    """Fits of one curve for several K, and the model chosen.

    Attributes:
        fits: ``{K: LogisticFit}``.
        criterion: ``'bic'``, ``'aic'`` or ``'aicc'``.
        best: the K with the lowest criterion among successful fits (-1 if none).
    """

    fits: dict[int, LogisticFit]
    criterion: str
    best: int

    @property
    def r2(self) -> dict[int, float]:
        """``{K: variance explained}``."""
        return {k: f.r2 for k, f in self.fits.items()}


def fit_lld_models(t: np.ndarray, y: np.ndarray, ks: Sequence[int] = (1, 2, 3), *, criterion: str = "bic",
                   **kwargs) -> LLDResult:
    """Fits (LLD) for each K in ``ks`` and picks one by an information criterion.

    Args:
        t, y: (n,) the curve.
        ks: the numbers of components to try.
        criterion: ``'bic'`` (default: penalises the 3 extra parameters of each component by
            ln n each), ``'aic'`` or ``'aicc'``.
        **kwargs: passed to :func:`fit_lld`.

    Returns:
        :class:`LLDResult`.
    """
    if criterion not in ("bic", "aic", "aicc"):
        raise ValueError(f"criterion: expected bic, aic or aicc, got {criterion!r}")
    fits = {int(k): fit_lld(t, y, int(k), **kwargs) for k in ks}
    scores = {k: getattr(f, criterion) for k, f in fits.items() if f.success and np.isfinite(getattr(f, criterion))}
    best = min(scores, key=scores.get) if scores else -1
    return LLDResult(fits=fits, criterion=criterion, best=best)


class SeedSummary(NamedTuple):
    """LLD over an ensemble: per-seed fits and the spread of their numbers.

    Attributes:
        results: one :class:`LLDResult` per seed.
        r2: (seed, len(ks)) variance explained.
        best: (seed,) chosen K per seed.
        ks: the K tried.
        params: ``{K: (seed, K, 3)}`` onset, rate, amplitude of each component (NaN where the
            fit failed).
        baseline: ``{K: (seed,)}``.
    """

    results: list[LLDResult]
    r2: np.ndarray
    best: np.ndarray
    ks: tuple[int, ...]
    params: dict[int, np.ndarray]
    baseline: dict[int, np.ndarray]

    def mean_std(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std over seeds) of the (K, 3) parameters of the K-component fits (NaN-aware)."""
        p = self.params[k]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(p, 0), np.nanstd(p, 0, ddof=1) if p.shape[0] > 1 else np.zeros(p.shape[1:])


def across_seeds(t: np.ndarray, curves: np.ndarray, ks: Sequence[int] = (1, 2, 3), **kwargs) -> SeedSummary:
    """Fits every seed's curve; the spread over seeds is the parameters' uncertainty.

    Args:
        t: (n,) times.
        curves: (seed, n) curves.
        ks, **kwargs: as :func:`fit_lld_models`.

    Returns:
        :class:`SeedSummary`.
    """
    curves = np.atleast_2d(np.asarray(curves, np.float64))
    ks = tuple(int(k) for k in ks)
    results = [fit_lld_models(t, c, ks, **kwargs) for c in curves]
    r2 = np.array([[r.fits[k].r2 for k in ks] for r in results])
    params = {k: np.stack([np.stack([r.fits[k].onset, r.fits[k].rate, r.fits[k].amplitude], -1) for r in results])
              for k in ks}
    baseline = {k: np.array([r.fits[k].baseline for r in results]) for k in ks}
    return SeedSummary(results=results, r2=r2, best=np.array([r.best for r in results]), ks=ks, params=params,
                       baseline=baseline)
