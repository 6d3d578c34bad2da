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

The measurement itself is :class:`ResponseObservable`, an engine observable (a frozen dataclass,
hashable, so the training program compiles once) that computes the one-step response, the
source's output and label, and the NTK of every source from one setup. Everything else is numpy
(host-side analysis of recorded arrays); bootstrap draws use an explicit
``numpy.random.Generator`` seed.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from jaxdyn import ntk


@dataclasses.dataclass(frozen=True)
class ResponseObservable:
    """Engine observable: the normalised one-step training response of every source point.

    For each source x_s (``data[sources]``, (S, ...)) one SGD step on (x_s, y_s) is taken from the
    current parameters (not applied to the training run) and Delta(x_s, probe) / (y_s - f(x_s))
    (Nakazato Eq. 5) is read on ``data[probes]``: (P, ...) shared by every source, or (S, P, ...)
    one probe set per source. The label y_s ~ Bernoulli(p1_s) is drawn from the source's encoding
    (``data['p1'][s]``) with a key derived from ``data['key']`` and the step, so the measurement
    sees the training distribution's labels; the dropout mask of the step (models with dropout)
    comes from the same key. Every record comes from one setup (one label draw, one set of keys).

    Attributes:
        model: the flax model being trained (hashable).
        loss: the training loss in engine form (a module-level function).
        lr: learning rate of the probe step; None: the member's ``hparams['lr']``.
        sources, probes: keys of the member's data.
        ntk_output: also record ``theta``, the NTK Theta(x_s, probe) of the same f.
        output: model method giving f (e.g. ``'logits'``); None: the model's output.

    Returns (when called on a :class:`~jaxdyn.engine.Snapshot`):
        ``{'response': (S, P), 'source': (S, 2) [f(x_s), y_s], 'theta': (S, P)}``.
    """

    model: Any
    loss: Callable
    lr: float | None = None
    sources: str = "sources"
    probes: str = "probes"
    ntk_output: bool = True
    output: str | None = None

    @property
    def dims(self) -> dict[str, tuple[str, ...]]:
        return {"response": ("source", "probe"), "source": ("source", "field"), "theta": ("source", "probe")}

    @property
    def attrs(self) -> dict[str, dict[str, str]]:
        return {
            "response": {"long_name": "normalised one-step response Delta(x_s, probe) / (y_s - f(x_s))"},
            "source": {"long_name": "[f(x_s), y_s]: the source's output and the label of the probe step"},
            "theta": {"long_name": "empirical NTK Theta(x_s, probe) of f"},
        }

    def __call__(self, snap) -> dict[str, jax.Array]:
        f = ntk.apply_fn(self.model, method=self.output)
        f_train = ntk.apply_fn(self.model, method=self.output, train=True)
        data = snap.data
        xs = data[self.sources]
        n_src = xs.shape[0]
        pr = data[self.probes]
        pr = jnp.broadcast_to(pr, (n_src,) + pr.shape) if pr.ndim == xs.ndim else pr
        base = jax.random.fold_in(jax.random.wrap_key_data(data["key"]), snap.step)
        keys = jax.random.split(base, 2 * n_src).reshape((n_src, 2) + base.shape)
        p1 = data["p1"][:n_src]
        f_s = f(snap.params, xs)
        y = jax.vmap(lambda k, p: jax.random.bernoulli(k[0], p))(keys, p1).astype(f_s.dtype)
        rate = snap.hparams["lr"] if self.lr is None else self.lr

        def one(x_s, y_s, k, probe_set):
            batch = {"x": x_s[None], "y": jnp.reshape(y_s, (1,))}
            return ntk.normalised_response(f, snap.params, self.loss, batch, probe_set, rate, f_train=f_train, key=k[1])

        out = {"response": jax.vmap(one)(xs, y, keys, pr), "source": jnp.stack([f_s, y], axis=-1)}
        if self.ntk_output:
            out["theta"] = jax.vmap(lambda x_s, probe_set: ntk.ntk(f, snap.params, x_s[None], probe_set, batch_size=None)[0])(xs, pr)
        return out


@functools.partial(jax.jit, static_argnums=0)
def _point_kernels(model, params, x):
    f_out, f_logit = ntk.apply_fn(model), ntk.apply_fn(model, method="logits")
    one = lambda p, xx: (ntk.ntk(f_out, p, xx, batch_size=None), ntk.ntk(f_logit, p, xx, batch_size=None))  # noqa: E731
    return jax.vmap(one)(params, x)


def point_kernels(model, params, x) -> tuple[np.ndarray, np.ndarray]:
    """The NTK of the output f and of the logits z on every member's points.

    Args:
        model: a flax model with a ``logits`` method (:class:`~jaxdyn.models.rbe_conv.RBEConvNet`).
        params: parameters with leaves (member, ...).
        x: (member, n, ...) the points.

    Returns:
        (Theta_f, Theta_z), each (member, n, n) float64.
    """
    theta_f, theta_z = _point_kernels(model, params, jnp.asarray(x))
    return np.asarray(theta_f, np.float64), np.asarray(theta_z, np.float64)


def loss_derivative(loss: Callable, f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dL/df of the engine loss ``loss`` for one output, at recorded outputs ``f`` and labels ``y``
    (any shape, the same for both): the loss gradient of the probe step."""
    f = jnp.asarray(f)
    y = jnp.asarray(y)
    g = jax.vmap(jax.grad(lambda o, t: loss(o[None], {"y": t[None]})))(f.ravel(), y.ravel())
    return np.asarray(g).reshape(f.shape)


def single_point_records(result, num_encodings: int, loss: Callable, probe_h: np.ndarray) -> dict[str, np.ndarray]:
    """The records of a single-point response run (members encoding-major, as
    :func:`jaxdyn.tasks.rbe.single_point_members` lays them out) by seed and encoding.

    Args:
        result: the engine's ``EnsembleResult`` with a :class:`ResponseObservable` recorded.
        num_encodings: encodings E (members are E x seeds).
        loss: the training loss (for dL/df of the probe step).
        probe_h: (probe,) Hamming distance of every probe from x_o.

    Returns:
        ``response``, ``theta`` (seed, encoding, time, probe); ``f_source``, ``y_source``,
        ``dl_df`` (seed, encoding, time); ``probe_h`` (probe,); ``steps`` (time,);
        ``diverged_at`` (seed, encoding).
    """
    from jaxdyn.tasks.rbe import split_conditions

    split = lambda a: split_conditions(a, num_encodings)  # noqa: E731
    src = split(result.records["source"][:, :, 0])  # (seed, enc, time, 2)
    f_s, y_s = src[..., 0], src[..., 1]
    return {
        "response": split(result.records["response"][:, :, 0]),
        "theta": split(result.records["theta"][:, :, 0]),
        "f_source": f_s,
        "y_source": y_s,
        "dl_df": loss_derivative(loss, f_s, y_s),
        "probe_h": np.asarray(probe_h),
        "steps": result.record_steps,
        "diverged_at": split(result.diverged_at),
    }


def ntk_prediction(theta: np.ndarray, dl_df: np.ndarray, y_source: np.ndarray, f_source: np.ndarray, lr: float) -> np.ndarray:
    """The NTK's first-order normalised response -lr Theta dL/df / (y_o - f(x_o)).

    Args:
        theta: (..., probe) NTK Theta(x_o, probe); dl_df, y_source, f_source: (...) at the probe step.

    Returns:
        (..., probe), comparable with the recorded normalised response.
    """
    factor = -lr * dl_df / (y_source - f_source)
    return theta * factor[..., None]


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


# ---------------------------------------------------------------------------------------------
# The law per encoding, and its claims (rbe-response, rbe-variants)
# ---------------------------------------------------------------------------------------------
def analyse_encodings(sim: dict[str, np.ndarray], p1s, *, epochs, fit_start: int, lr: float, n_boot: int) -> list[dict[str, Any]]:
    """The law's fits per encoding: aging exponent, kernels and slopes, NTK explanation.

    Args:
        sim: from :func:`single_point_records`.
        p1s: (encoding,) p(y=1) of each encoding.
        epochs: epochs at which the kernel is reported.
        fit_start: first epoch of the power-law fit.

    Returns one dict per encoding with ``power_law`` (:class:`PowerLawFit` as dict), ``kernels``
    ({epoch: :class:`KernelFit` as dict}), ``ntk_explained`` ({epoch: fraction}),
    ``ntk_relative_error`` ({epoch: ||R - R_ntk|| / ||R||}) and the raw ``fits`` objects.
    """
    from jaxdyn.tasks.rbe import encoding_name

    steps = sim["steps"]
    ok = sim["diverged_at"] < 0  # (seed, enc)
    prof = profile(sim["response"], sim["probe_h"])  # (seed, enc, time, H)
    pred = ntk_prediction(sim["theta"], sim["dl_df"], sim["y_source"], sim["f_source"], lr)
    out = []
    for e, p1 in enumerate(p1s):
        rows = ok[:, e]
        sizes = prof[rows, e, :, 0]
        pl = power_law_fit(steps, sizes, fit_start, n_boot=n_boot, seed=e)
        kernels, explained, rel = {}, {}, {}
        for ep in epochs:
            i = int(np.searchsorted(steps, ep))
            kernels[int(ep)] = kernel_fit(prof[rows, e, i], n_boot=n_boot, seed=100 + e)
            explained[int(ep)] = explained_fraction(sim["response"][rows, e, i], pred[rows, e, i])
            rel[int(ep)] = relative_error(sim["response"][rows, e, i], pred[rows, e, i])
        out.append({
            "encoding": encoding_name(p1), "p1": float(p1), "members": int(rows.sum()),
            "diverged": int((~rows).sum()),
            "power_law": pl.to_dict(), "kernels": {k: v.to_dict() for k, v in kernels.items()},
            "ntk_explained": explained, "ntk_relative_error": rel,
            "fits": {"power_law": pl, "kernels": kernels},
        })
    return out


_AGING = ("After the initial training phase, the size shows the power law like decay", "Sec. III, Fig. 1A and C, Eq. 8")
_LINEAR = ("The kernel is almost linear against the Hamming distance between the training input, x_o, and the affected one",
           "Sec. III, Fig. 1B and D, Eq. 8")


def law_claims(a: dict[str, Any], label: str, slug: str) -> list:
    """The law's claims for one encoding (Eq. 8): power-law aging, one exponent, decreasing and
    linear kernel. ``label`` names the condition in statements, ``slug`` in claim ids."""
    from jaxdyn import claims

    pl, ks = a["power_law"], a["fits"]["kernels"]
    worst_upper = max(k.slope_ci[1] for k in ks.values())
    min_r2 = min(k.r2 for k in ks.values())
    curvature = abs(pl["tau_local_late"] - pl["tau_local_early"]) / max(abs(pl["tau"]), 1e-12)
    aging = claims.source(*_AGING)
    return [
        claims.check(f"{slug}-aging", f"{label}: the response size decays as a power law e^-tau after the initial phase "
                     f"(tau of the seed-mean curve, lower end of its {int(pl['ci_level'] * 100)}% seed-bootstrap interval)",
                     pl["tau_ci"][0], ">", 0.0, kind="paper", source=aging, se=pl["tau_stderr"],
                     threshold_source="a decay: an exponent above 0"),
        claims.check(f"{slug}-loglog-r2", f"{label}: the decay is a power law (R^2 of the log-log line over the fit window)",
                     pl["r2_loglog"], ">=", 0.95, kind="paper", source=aging,
                     threshold_source="project's reading of 'power law like': a straight log-log line, R^2 >= 0.95"),
        claims.check(f"{slug}-one-exponent", f"{label}: one exponent over the whole window (|tau_late - tau_early| / tau, "
                     "first vs second half in log e)", curvature, "<", 0.25, kind="extension",
                     why="a power law has one exponent at every scale; a drifting local exponent means another form",
                     threshold_source="project's tolerance on the drift of the local exponent"),
        claims.check(f"{slug}-kernel-decreases", f"{label}: the kernel decreases with Hamming distance at every reported epoch "
                     "(largest upper bound of the slope per bit)", worst_upper, "<", 0.0, kind="paper", source=claims.source(*_LINEAR),
                     threshold_source="a decreasing kernel: slope below 0"),
        claims.check(f"{slug}-kernel-linear", f"{label}: the kernel is almost linear in Hamming distance (smallest R^2 of a line over epochs)",
                     min_r2, ">=", 0.9, kind="paper", source=claims.source(*_LINEAR),
                     threshold_source="project's reading of 'almost linear': R^2 >= 0.9"),
    ]
