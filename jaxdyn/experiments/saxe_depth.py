"""saxe-depth: which layer of a deep linear chain changes most, and first (reverse hierarchy).

Source: Saxe, "A deep learning theory of perceptual learning dynamics" (deeper networks: reverse
hierarchy of learning). A chain y = W_D ... W_1 x (D = 3 to 8 weight layers, width n) learns
one input-output mode: a stimulus x = v xhat mapped to c yhat. Mode-aligned members start at
W_l = b_l(0) r_l r_{l-1}^T with three profiles of initial gains:

- ``poor_top``: poorly tuned higher layers, b_D(0) < ... < b_1(0) (the poster's case);
- ``poor_bottom``: the reverse order;
- ``balanced``: every b_l(0) equal (their geometric mean).

The poster's claim: with poorly tuned higher layers, Delta_D(t) > ... > Delta_1(t) for all
t > 0. Theory: the scalar chain tau db_l/dt = (c - v prod b) v prod_{k != l} b_k
(``jaxdyn.theory.saxe.chain_vector_field``), integrated with diffrax. Simulation: every member
trained by the shared engine with full-batch gradient descent; the per-layer gain b_l(t) is read
from the weights along the forward path, and the per-layer change is ||W_l(t) - W_l(0)||_F.

Members from small random (not mode-aligned) initialisation test how far the reduced theory
still holds: their theory is the same chain ODE started at the gains measured along the initial
forward path (r_0 = xhat, b_l = |W_l r_{l-1}|, r_l = W_l r_{l-1} / b_l, b_D = yhat . W_D r_{D-1}),
which makes prod_l b_l(0) the initial output exactly but ignores the misalignment of the
layers' backward directions.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.engine import Task, hparam, losses, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.models.deep_linear import DeepLinear, params_from_matrices
from jaxdyn.tasks import full_batch
from jaxdyn.theory import saxe

PROFILES = ("poor_top", "poor_bottom", "balanced")
"""The initial-gain profiles of the mode-aligned members (module docstring): ``poor_top``
(b_D(0) < ... < b_1(0), the poster's case), ``poor_bottom`` (the reverse), ``balanced`` (all equal)."""
RANDOM = "small_random"
"""The ``profile`` label of the small-random-initialisation (not mode-aligned) members."""


@dataclasses.dataclass(frozen=True)
class SaxeDepthConfig(Config):
    """Configuration of saxe-depth. Members: depths x (profiles x seeds + random_seeds)."""

    depths: tuple[int, ...] = param((3, 5, 8), "numbers of weight layers D", min=2, max=16, max_len=8)
    width: int = param(8, "width n of every layer (input, hidden, output)", min=2, max=1024)
    seeds: int = param(2, "mode-aligned members per (depth, profile); each draws its own hidden directions", min=1, max=256)
    gain_high: float = param(1.0, "largest initial gain b_l(0) of the ordered profiles", min=0.0, max=10.0, min_exclusive=True)
    gain_low: float = param(0.2, "smallest initial gain b_l(0) of the ordered profiles", min=0.0, max=10.0, min_exclusive=True)
    random_seeds: int = param(4, "small-random-initialisation members per depth (0 for none)", min=0, max=256)
    random_scale: float = param(0.6, "small random init: entries N(0, scale^2 / n), a per-layer gain of about scale", min=0.0, max=10.0, min_exclusive=True)
    c: float = param(1.0, "target size: x = v xhat maps to c yhat", min=0.0, max=1e3, min_exclusive=True)
    v: float = param(1.5, "input strength |x|", min=0.0, max=1e3, min_exclusive=True)
    lr: float = param(0.01, "gradient-descent learning rate (tau = 1/lr)", min=0.0, max=1.0, min_exclusive=True)
    duration: float = param(10.0, "training time in units of tau", min=0.0, max=1e4, min_exclusive=True)
    record_every: int = param(5, "steps between records", min=1, max=1_000_000)
    rtol: float = param(1e-7, "relative tolerance of the ODE solver", min=0.0, max=1e-2, min_exclusive=True)
    tolerance: float = param(2e-2, "largest |simulation - theory| of the gains counted as agreement (aligned members)", min=0.0, max=1.0, min_exclusive=True)
    random_tolerance: float = param(0.1, "largest relative distance counted as agreement for random-init members", min=0.0, max=10.0, min_exclusive=True)

    @classmethod
    def quick(cls) -> SaxeDepthConfig:
        return cls(depths=(3, 5), seeds=1, random_seeds=2, lr=0.02, duration=12.0, record_every=5)

    @property
    def num_steps(self) -> int:
        return self.record_every * max(1, round(self.duration / (self.lr * self.record_every)))

    def check(self) -> None:
        if not self.gain_low < self.gain_high:
            raise ConfigError(f"gain_low: must be below gain_high ({self.gain_high}) so the profiles are ordered, got {self.gain_low}")
        if len(set(self.depths)) != len(self.depths):
            raise ConfigError(f"depths: values must be distinct, got {self.depths}")
        if self.duration / self.lr > 2_000_000:
            raise ConfigError(f"duration: {self.duration} / lr {self.lr} asks for over 2,000,000 steps; raise lr or shorten duration")


def profile_gains(profile: str, depth: int, gain_high: float, gain_low: float) -> np.ndarray:
    """(D,) initial gains b_1(0), ..., b_D(0) of a profile (layer 1 = input layer)."""
    ordered = np.linspace(gain_high, gain_low, depth)
    if profile == "poor_top":
        return ordered
    if profile == "poor_bottom":
        return ordered[::-1].copy()
    if profile == "balanced":
        return np.full(depth, np.exp(np.mean(np.log(ordered))))
    raise ValueError(f"profile: must be one of {PROFILES}, got {profile!r}")


def _unit(rng, n):
    x = rng.standard_normal(n)
    return x / np.linalg.norm(x)


def _members(config: SaxeDepthConfig, depth: int, index: int):
    """Initial weights and data of every member of one depth, seed axis first.

    Returns (profiles (member,), weights [W_l (member, n, n)], data dict).
    """
    n = config.width
    profiles, mats, xhats, yhats = [], [], [], []
    member = 0
    for profile in PROFILES:
        for _ in range(config.seeds):
            rng = np.random.default_rng([index, depth, member])
            dirs = [_unit(rng, n) for _ in range(depth + 1)]  # r_0 = xhat, ..., r_D = yhat
            gains = profile_gains(profile, depth, config.gain_high, config.gain_low)
            mats.append([gains[l] * np.outer(dirs[l + 1], dirs[l]) for l in range(depth)])
            xhats.append(dirs[0])
            yhats.append(dirs[-1])
            profiles.append(profile)
            member += 1
    for _ in range(config.random_seeds):
        rng = np.random.default_rng([index, depth, member])
        mats.append([rng.standard_normal((n, n)) * config.random_scale / np.sqrt(n) for _ in range(depth)])
        xhats.append(_unit(rng, n))
        yhats.append(_unit(rng, n))
        profiles.append(RANDOM)
        member += 1
    weights = [np.stack([m[l] for m in mats]).astype(np.float32) for l in range(depth)]
    xhat, yhat = np.stack(xhats), np.stack(yhats)
    data = {
        "x": (config.v * xhat)[:, None, :].astype(np.float32),
        "y": (config.c * yhat)[:, None, :].astype(np.float32),
        "xhat": xhat.astype(np.float32),
        "yhat": yhat.astype(np.float32),
        "w0": [w.copy() for w in weights],
    }
    return np.array(profiles), weights, data


def chain_observable(snap):
    """Observable (3, D): per layer, the gain along the forward path, ||W_l - W_l(0)||_F, and the
    drift of the layer-wise conserved matrix ||C_l(t) - C_l(0)||_F (0 for the top layer).

    Gains: r_0 = xhat; b_l = |W_l r_{l-1}|, r_l = W_l r_{l-1} / b_l for l < D; b_D = yhat . W_D r_{D-1}.
    For mode-aligned weights W_l = b_l r_l r_{l-1}^T (b_l > 0) these are the chain's gains, and
    prod_l b_l = yhat . W_tot xhat for any weights. C_l = W_{l+1}^T W_{l+1} - W_l W_l^T is
    conserved by gradient flow from any initialisation (its trace along the aligned family is
    b_{l+1}^2 - b_l^2, the chain's conserved quantity).
    """
    names = sorted(snap.params, key=lambda k: int(k.split("_")[1]))
    mats = [snap.params[name]["kernel"].T for name in names]
    w0 = snap.data["w0"]
    r = snap.data["xhat"]
    gains, changes, drifts = [], [], []
    for l, w in enumerate(mats):
        h = w @ r
        if l < len(mats) - 1:
            g = jnp.linalg.norm(h)
            r = h / g
            conserved = mats[l + 1].T @ mats[l + 1] - w @ w.T
            conserved0 = w0[l + 1].T @ w0[l + 1] - w0[l] @ w0[l].T
            drifts.append(jnp.linalg.norm(conserved - conserved0))
        else:
            g = snap.data["yhat"] @ h
            drifts.append(jnp.zeros(()))
        gains.append(g)
        changes.append(jnp.linalg.norm(w - w0[l]))
    return jnp.stack([jnp.stack(gains), jnp.stack(changes), jnp.stack(drifts)])


def half_change_time(time: np.ndarray, change: np.ndarray) -> np.ndarray:
    """First time each trajectory reaches half of its final value (linear interpolation).

    Args:
        time: (T,) times.
        change: (..., T) non-negative changes starting at 0.

    Returns:
        (...,) times (NaN where the final change is 0).
    """
    change = np.asarray(change, dtype=np.float64)
    flat = change.reshape(-1, change.shape[-1])
    out = np.full(flat.shape[0], np.nan)
    for i, row in enumerate(flat):
        target = 0.5 * row[-1]
        if not target > 0:
            continue
        k = int(np.argmax(row >= target))
        if k == 0:
            out[i] = time[0]
            continue
        t0, t1, y0, y1 = time[k - 1], time[k], row[k - 1], row[k]
        out[i] = t0 + (target - y0) / (y1 - y0) * (t1 - t0) if y1 > y0 else t1
    return out.reshape(change.shape[:-1])


def _order_margin(b0: np.ndarray, values: np.ndarray, larger_first: bool) -> np.ndarray:
    """Smallest relative gap between layers taken in order of initial gain.

    Layers sorted by increasing b0; for ``larger_first`` the claim is values decrease along
    that order (least-tuned changes most), else they increase (least-tuned is earliest).

    Args:
        b0: (D,) initial gains, all distinct.
        values: (D, ...) per-layer values (e.g. changes over time).

    Returns:
        (...) the smallest (v_i - v_{i+1}) / (|v_i| + |v_{i+1}|) (sign flipped when not
        ``larger_first``): positive where the claimed order holds strictly.
    """
    order = np.argsort(b0)
    v = values[order]
    a, b = v[:-1], v[1:]
    gap = (a - b) if larger_first else (b - a)
    return np.min(gap / np.maximum(np.abs(a) + np.abs(b), 1e-30), axis=0)


def run(config: SaxeDepthConfig, ctx) -> Result:
    """Trains every depth's members, integrates the chain ODE, and compares them."""
    max_depth = max(config.depths)
    rows = []  # one dict per depth, later concatenated over members
    for index, depth in enumerate(config.depths):
        profiles, weights, data = _members(config, depth, index)
        num_members = len(profiles)
        result = ctx.train(
            DeepLinear(widths=(config.width,) * (depth + 1)),
            Task(init=None, batch=full_batch),
            optimizer("sgd", learning_rate=hparam("lr")),
            seeds=list(range(num_members)),
            num_steps=config.num_steps,
            loss=losses.half_squared_error_sum,
            observables={"chain": chain_observable},
            record_every=config.record_every,
            hparams={"lr": np.full(num_members, config.lr, np.float32)},
            init_params=params_from_matrices(weights),
            data=data,
        )
        rec = result.records["chain"].astype(np.float64)  # (member, time, 3, D)
        time = result.record_steps * config.lr
        gains_sim, change_sim = rec[:, :, 0, :], rec[:, :, 1, :]
        b0 = gains_sim[:, 0, :]
        ode = saxe.solve_chain(b0, np.full(num_members, config.c), np.full(num_members, config.v), time, rtol=config.rtol, atol=config.rtol * 1e-2)
        gains_th = np.asarray(ode.ys, dtype=np.float64)  # (member, time, D)
        change_th = np.abs(gains_th - gains_th[:, :1, :])
        pad = lambda a, fill=np.nan: np.concatenate([a, np.full(a.shape[:-1] + (max_depth - depth,), fill)], axis=-1)  # noqa: E731
        w_init = np.full((num_members, max_depth, config.width, config.width), np.nan, np.float32)
        w_init[:, :depth] = np.stack(weights, axis=1)
        rows.append(dict(
            depth=np.full(num_members, depth), profile=profiles, time=time, diverged_at=result.diverged_at,
            ode_ok=np.asarray(ode.ok), b0=pad(b0), w_init=w_init, xhat=data["xhat"], yhat=data["yhat"],
            gains_sim=pad(gains_sim), gains_theory=pad(gains_th), change_sim=pad(change_sim), change_theory=pad(change_th),
            output_sim=np.prod(gains_sim, -1) * config.v, output_theory=np.prod(gains_th, -1) * config.v,
            matrix_drift=pad(rec[:, :, 2, :]),
        ))
    ctx.stage("analysis")
    cat = {k: np.concatenate([r[k] for r in rows]) for k in rows[0] if k != "time"}
    time = rows[0]["time"]
    dataset, found, numbers = _analyse(config, time, cat)
    ctx.stage("figures")
    return Result(dataset=dataset, claims=found, figures=_figures(config, dataset), numbers=numbers)


def _analyse(config: SaxeDepthConfig, time: np.ndarray, cat: dict):
    depth, profile = cat["depth"], cat["profile"]
    num_members = len(depth)
    ok = (cat["diverged_at"] < 0) & cat["ode_ok"]
    aligned = ok & (profile != RANDOM)
    ordered = ok & np.isin(profile, ("poor_top", "poor_bottom"))
    random_ = ok & (profile == RANDOM)
    balanced = ok & (profile == "balanced")
    layer_ok = ~np.isnan(cat["b0"])  # (member, layer)

    def masked_max(values, mask):
        return float(np.nanmax(values[mask])) if mask.any() else float("nan")

    # Distance of the gains and the conserved quantities, per member.
    dev_gain = np.nanmax(np.abs(cat["gains_sim"] - cat["gains_theory"]), axis=(1, 2))  # (member,)
    q_sim = cat["gains_sim"] ** 2 - cat["gains_sim"][..., :1] ** 2
    drift = np.nanmax(np.abs(q_sim - q_sim[:, :1]), axis=(1, 2))

    # Half-change times, per member and layer.
    t_half_sim = half_change_time(time, np.moveaxis(np.nan_to_num(cat["change_sim"]), 1, -1))  # (member, layer)
    t_half_th = half_change_time(time, np.moveaxis(np.nan_to_num(cat["change_theory"]), 1, -1))
    t_half_sim[~layer_ok], t_half_th[~layer_ok] = np.nan, np.nan
    final_sim, final_th = cat["change_sim"][:, -1], cat["change_theory"][:, -1]
    # Relative to the member's largest theory change (a layer's own change can be ~0).
    rel_final = np.nanmax(np.abs(final_sim - final_th) / np.nanmax(np.abs(final_th), axis=1, keepdims=True), axis=1)
    rel_half = np.nanmax(np.abs(t_half_sim - t_half_th) / t_half_th, axis=1)  # (member,) the half-time error

    # The reverse hierarchy in every ordered member: size at every t > 0, and timing.
    size_margin = np.full(num_members, np.nan)
    size_margin_th = np.full(num_members, np.nan)
    adjacent_time_gap = np.full(num_members, np.nan)  # smallest relative gap of half-times, adjacent layers
    extreme_time_gap = np.full(num_members, np.nan)  # least- against best-tuned layer
    extreme_time_gap_th = np.full(num_members, np.nan)
    for m in np.flatnonzero(ordered):
        d = int(depth[m])
        b0 = cat["b0"][m, :d]
        size_margin[m] = np.min(_order_margin(b0, cat["change_sim"][m, 1:, :d].T, larger_first=True))
        size_margin_th[m] = np.min(_order_margin(b0, cat["change_theory"][m, 1:, :d].T, larger_first=True))
        adjacent_time_gap[m] = _order_margin(b0, t_half_sim[m, :d], larger_first=False)
        lo, hi = int(np.argmin(b0)), int(np.argmax(b0))
        extreme_time_gap[m] = (t_half_sim[m, hi] - t_half_sim[m, lo]) / (t_half_sim[m, hi] + t_half_sim[m, lo])
        extreme_time_gap_th[m] = (t_half_th[m, hi] - t_half_th[m, lo]) / (t_half_th[m, hi] + t_half_th[m, lo])
    # A gap of relative size g between two half-times is resolved when it exceeds the two times'
    # errors added, i.e. when g > the member's relative half-time error.
    extreme_resolved = extreme_time_gap - rel_half
    adjacent_resolved = adjacent_time_gap - rel_half
    n_ordered = int(ordered.sum())
    adjacent_supported = int(np.sum(adjacent_resolved[ordered] > 0))

    spread = (np.nanmax(final_sim, 1) - np.nanmin(final_sim, 1)) / np.nanmean(final_sim, 1)

    # Random initialisation: how far the chain theory (from the measured path gains) holds.
    out_dev = np.max(np.abs(cat["output_sim"] - cat["output_theory"]), axis=1) / config.c
    matrix_drift = np.nanmax(cat["matrix_drift"], axis=(1, 2))
    # The reverse hierarchy's coarse form: the layer least tuned along the mode (smallest
    # |b_l(0)|; at random init the top, whose projection yhat . W_D r is ~ scale / sqrt(n))
    # changes most: relative gap between its final change and the largest other layer's.
    least_tuned_gap = np.full(num_members, np.nan)
    for m in np.flatnonzero(random_):
        d = int(depth[m])
        least = int(np.argmin(np.abs(cat["b0"][m, :d])))
        others = np.delete(final_sim[m, :d], least)
        least_tuned_gap[m] = (final_sim[m, least] - others.max()) / (final_sim[m, least] + others.max())
    output_final = cat["output_sim"][:, -1]

    tol, rtol_r = config.tolerance, config.random_tolerance
    tol_source = "config.tolerance: gradient descent departs from gradient flow at first order in lr"
    rtol_source = "config.random_tolerance: the chain ODE neglects the misaligned backward directions of random layers"
    chain_why = ("the scalar chain ODE is the poster's layer-wise gradient equations restricted to mode-aligned "
                 "layers (derived in jaxdyn.theory.saxe); the poster states its consequence, not the ODE")
    random_why = "how far the aligned reduction carries to unaligned starts (extension; not the poster's setting)"
    hierarchy = claims.source("Poorly tuned higher layers: b_Nl(0) < ... < b_2(0) < b_1(0) Implies: Delta_Nl(t) > ... > Delta_2(t) > Delta_1(t), for all t > 0",
                              "poster, 'Deeper networks: Reverse hierarchy of learning'")
    zeros = np.zeros(num_members)
    found = [
        claims.per_seed("follows-chain-ode", "gradient descent on mode-aligned chains follows the chain ODE tau db_l/dt = (c - v prod b) v prod_{k!=l} b_k "
                        "(per member: max |b_sim - b_theory| over layers and times)", dev_gain, "<", tol, kind="extension", why=chain_why,
                        include=aligned, threshold_source=tol_source, excluded_reason="small random members (their claims are below), or not finite"),
        claims.per_seed("chain-conserved", "b_l^2 - b_1^2 is conserved (per aligned member: largest drift in simulation)", drift, "<", tol,
                        kind="extension", why="a first integral of the chain ODE; the simulation keeps it only to O(lr)", include=aligned,
                        threshold_source=tol_source),
        claims.per_seed("final-change-matches", "per-layer size of change ||W_l(T) - W_l(0)|| matches the theory (per aligned member: largest "
                        "error relative to its largest change)", rel_final, "<", tol, kind="extension", why=chain_why, include=aligned,
                        threshold_source=tol_source),
        claims.per_seed("half-time-matches", "per-layer time to half of the final change matches the theory (per aligned member: largest relative error)",
                        rel_half, "<", tol, kind="extension", why=chain_why, include=aligned, threshold_source=tol_source),
        claims.per_seed("reverse-hierarchy-size", f"reverse hierarchy of size: in every ordered member the less-tuned layer changes more at every "
                        f"t > 0 (per member: smallest relative gap between adjacent layers over t > 0; theory "
                        f"{masked_max(-size_margin_th, ordered) * -1.0:.3g} at worst)", size_margin, ">", 0.0, kind="paper", source=hierarchy,
                        include=ordered, initial=zeros, threshold_source="the statement itself (a strict ordering)",
                        reading="Delta_l = ||W_l(t) - W_l(0)||_F; the poster's case is poor_top (b decreasing upward), poor_bottom is its mirror "
                                "(the least-tuned layer is the input layer)",
                        excluded_reason="balanced and small random members have no strict order of initial gains"),
        claims.per_seed("reverse-hierarchy-timing", "reverse hierarchy of timing: the least-tuned layer reaches half its change before the "
                        "best-tuned layer, resolved beyond the simulation's error (per member: relative gap of the two half-change times "
                        "minus the member's largest relative half-time error; "
                        f"adjacent layers are resolved in {adjacent_supported}/{n_ordered} members only, so no claim is made for them)",
                        extreme_resolved, ">", 0.0, kind="extension", include=ordered,
                        why="the timing half of the reverse hierarchy (Ahissar & Hochstein), read as half-change times; claimed only where "
                            "the gap exceeds gradient descent's own half-time error",
                        threshold_source="a gap g between two times is resolved when g exceeds their relative errors added, i.e. the "
                                         "member's relative half-time error"),
        claims.per_seed("balanced-equal", "balanced chains change every layer by the same amount (per member: (max - min) / mean of final changes)",
                        spread, "<", tol, kind="sanity", why="equal initial gains stay equal under the chain's symmetric equations",
                        include=balanced, threshold_source=tol_source),
        claims.per_seed("random-matrix-conserved", "small random init: the matrix form of the conservation law, W_{l+1}^T W_{l+1} - W_l W_l^T, "
                        "still holds (per member: largest drift ||C_l(t) - C_l(0)||_F)", matrix_drift, "<", tol, kind="extension",
                        why="a first integral of gradient flow from any initialisation", include=random_, threshold_source=tol_source),
        claims.per_seed("random-output", "small random init: the chain theory from the measured path gains predicts the output v prod b(t) "
                        "(per member: largest |sim - theory| / c)", out_dev, "<", rtol_r, kind="extension", why=random_why, include=random_,
                        threshold_source=rtol_source),
        claims.per_seed("random-final-change", "small random init: the chain theory predicts each layer's final change (per member: largest "
                        "error relative to its largest change)", rel_final, "<", rtol_r, kind="extension", why=random_why, include=random_,
                        threshold_source=rtol_source),
        claims.per_seed("random-half-time", "small random init: the chain theory predicts each layer's half-change time (per member: largest "
                        "relative error)", rel_half, "<", rtol_r, kind="extension", why=random_why, include=random_, threshold_source=rtol_source),
        claims.per_seed("random-least-tuned-most", "small random init: the layer least tuned along the mode (smallest |b_l(0)|) changes most "
                        "(per member: relative gap between its final change and the largest other layer's)", least_tuned_gap, ">", 0.0,
                        kind="extension", why="the coarse form of the reverse hierarchy from unaligned starts", include=random_,
                        threshold_source="a strict ordering"),
    ]
    numbers = {
        "members": num_members,
        "diverged_members": int((cat["diverged_at"] >= 0).sum()),
        "ode_failures": [int(i) for i in np.flatnonzero(~cat["ode_ok"])],
        "num_steps": config.num_steps,
        "max_abs_deviation": masked_max(dev_gain, aligned),
        "max_conserved_drift_simulation": masked_max(drift, aligned),
        "max_rel_error_final_change_aligned": masked_max(rel_final, aligned),
        "max_rel_error_half_time_aligned": masked_max(rel_half, aligned),
        "ordered_members": n_ordered,
        "reverse_hierarchy_size_members_held": int(np.sum(size_margin[ordered] > 0)),
        "min_size_order_margin_simulation": masked_max(-size_margin, ordered) * -1.0,
        "min_size_order_margin_theory": masked_max(-size_margin_th, ordered) * -1.0,
        "min_adjacent_timing_gap_simulation": masked_max(-adjacent_time_gap, ordered) * -1.0,
        "adjacent_timing_resolved_members": adjacent_supported,
        "min_extreme_timing_gap_simulation": masked_max(-extreme_time_gap, ordered) * -1.0,
        "min_extreme_timing_gap_theory": masked_max(-extreme_time_gap_th, ordered) * -1.0,
        "max_balanced_spread": masked_max(spread, balanced),
        "random_max_matrix_conservation_drift": masked_max(matrix_drift, random_),
        "max_matrix_conservation_drift_all": masked_max(matrix_drift, ok),
        "random_max_output_deviation": masked_max(out_dev, random_),
        "random_max_rel_error_final_change": masked_max(rel_final, random_),
        "random_max_rel_error_half_time": masked_max(rel_half, random_),
        "random_members_least_tuned_changes_most": int(np.sum(least_tuned_gap[random_] > 0)),
        "random_members": int(random_.sum()),
        "max_final_output_error": masked_max(np.abs(output_final - config.c), ok),
    }
    max_depth = cat["b0"].shape[1]
    one, tau = "1", "tau = 1/lr"  # gains, weights and their changes are dimensionless; times in units of tau
    beyond = "NaN beyond the member's depth"
    ordered_only = "NaN but for ordered (poor_top, poor_bottom) members that neither diverged nor failed the ODE"
    ds = xr.Dataset(
        {
            "gains_sim": (("seed", "time", "layer"), cat["gains_sim"], {
                "long_name": f"per-layer gain b_l along the forward path (b_l = |W_l r_(l-1)|, b_D = yhat . W_D r_(D-1)), "
                             f"gradient descent; {beyond}", "units": one}),
            "gains_theory": (("seed", "time", "layer"), cat["gains_theory"], {
                "long_name": f"per-layer gain b_l, chain ODE (diffrax) from the measured b_l(0); {beyond}", "units": one}),
            "change_sim": (("seed", "time", "layer"), cat["change_sim"], {
                "long_name": f"per-layer change Delta_l = ||W_l(t) - W_l(0)||_F, gradient descent; {beyond}", "units": one}),
            "change_theory": (("seed", "time", "layer"), cat["change_theory"], {
                "long_name": f"per-layer change Delta_l = |b_l(t) - b_l(0)|, chain ODE; {beyond}", "units": one}),
            "output_sim": (("seed", "time"), cat["output_sim"], {
                "long_name": "output along the mode v prod_l b_l (= yhat . W_D...W_1 x), gradient descent", "units": one}),
            "output_theory": (("seed", "time"), cat["output_theory"], {
                "long_name": "output along the mode v prod_l b_l, chain ODE", "units": one}),
            "conserved_matrix_drift": (("seed", "time", "layer"), cat["matrix_drift"], {
                "long_name": f"drift ||C_l(t) - C_l(0)||_F of C_l = W_(l+1)^T W_(l+1) - W_l W_l^T, gradient descent "
                             f"(0 for the top layer; {beyond})", "units": one}),
            "half_time_sim": (("seed", "layer"), t_half_sim, {
                "long_name": f"first time layer l reaches half its final change Delta_l(T) (linear interpolation), gradient descent; {beyond}",
                "units": tau}),
            "half_time_theory": (("seed", "layer"), t_half_th, {
                "long_name": f"first time layer l reaches half its final change Delta_l(T) (linear interpolation), chain ODE; {beyond}",
                "units": tau}),
            "b0": (("seed", "layer"), cat["b0"], {
                "long_name": f"initial per-layer gain b_l(0), read from the initial weights along the forward path; {beyond}", "units": one}),
            "W_initial": (("seed", "layer", "row", "col"), cat["w_init"], {
                "long_name": "initial W_l (math layout, out x in); NaN beyond the member's depth", "units": one}),
            "xhat": (("seed", "unit"), cat["xhat"], {"long_name": "input direction: the stimulus is x = v xhat", "units": one}),
            "yhat": (("seed", "unit"), cat["yhat"], {"long_name": "target direction: the target is c yhat", "units": one}),
            "diverged_at": ("seed", cat["diverged_at"]),
            "ode_ok": ("seed", cat["ode_ok"].astype(np.int8)),
            "size_order_margin": ("seed", size_margin, {
                "long_name": "smallest relative gap (Delta_i - Delta_j) / (|Delta_i| + |Delta_j|) of layers adjacent in b_l(0) (i less "
                             f"tuned) over t > 0, gradient descent (> 0: the less-tuned layer changes more); {ordered_only}", "units": one}),
            "timing_order_margin": ("seed", adjacent_time_gap, {
                "long_name": "smallest relative gap (t_j - t_i) / (t_i + t_j) of half-change times of layers adjacent in b_l(0) (i less "
                             f"tuned), gradient descent (> 0: the less-tuned layer is earlier); {ordered_only}", "units": one}),
            "timing_extreme_gap": ("seed", extreme_time_gap, {
                "long_name": "relative gap (t_best - t_least) / (t_best + t_least) of the half-change times of the best- and least-tuned "
                             f"layers (largest, smallest b_l(0)), gradient descent; {ordered_only}", "units": one}),
        },
        coords={"seed": np.arange(num_members),
                "time": ("time", time, {"long_name": "time t = step * lr of each record", "units": tau}),
                "step": ("time", np.round(time / config.lr).astype(np.int64), {"long_name": "gradient-descent step of each record", "units": "step"}),
                "layer": ("layer", np.arange(1, max_depth + 1), {"long_name": "weight layer l (1 = input layer, D = top layer)", "units": one}),
                # The per-member conditions, as coordinates on seed.
                "depth": ("seed", depth, {"long_name": "number of weight layers D of the member's chain", "units": one}),
                "profile": ("seed", profile.astype(str), {
                    "long_name": "initial gains: poor_top (b_D(0) < ... < b_1(0)), poor_bottom (reverse), balanced (all equal), "
                                 "small_random (random init, not mode-aligned)"}),
                "c": ("seed", np.full(num_members, config.c), {"long_name": "target size c (the target is c yhat)", "units": one}),
                "v": ("seed", np.full(num_members, config.v), {"long_name": "input strength v = |x| (the stimulus is x = v xhat)", "units": one}),
                "lr": ("seed", np.full(num_members, config.lr), {"long_name": "gradient-descent learning rate lr (tau = 1/lr)", "units": one})},
        attrs={
            "time_units": "tau = 1/lr (time = step * lr)",
            "layer_numbering": "1 = input layer, D = top (decision) layer; NaN beyond a member's depth",
            "width": config.width,
            "gain_high": config.gain_high,
            "gain_low": config.gain_low,
            "random_scale": config.random_scale,
            "record_every": config.record_every,
            "ode_solver": "diffrax Tsit5, PIDController",
            "ode_rtol": config.rtol,
            "loss": "1/2 |c yhat - W_D...W_1 (v xhat)|^2, one stimulus",
        },
    )
    return ds, found, numbers


def _figures(config: SaxeDepthConfig, ds: xr.Dataset) -> dict:
    depths = list(dict.fromkeys(ds["depth"].values.tolist()))
    time = ds["time"].values
    profiles = list(PROFILES) + ([RANDOM] if (ds["profile"].values == RANDOM).any() else [])
    titles = {"poor_top": "poorly tuned higher layers", "poor_bottom": "poorly tuned lower layers",
              "balanced": "balanced", RANDOM: "small random init"}
    fig, axes = plots.figure(len(profiles), len(depths) + 1, width=2.7, height=2.3)
    for i, prof in enumerate(profiles):
        for j, d in enumerate(depths):
            members = np.flatnonzero((ds["profile"].values == prof) & (ds["depth"].values == d))
            ax = axes[i, j]
            if len(members) == 0:
                ax.axis("off")
                continue
            m = members[0]
            for l in range(d):
                col = plots.color(l)
                plots.theory_and_simulation(ax, time, ds["change_theory"].values[m, :, l], ds["change_sim"].values[m, :, l], color=col)
            ax.set_title(f"D = {d}, {titles[prof]}", fontsize=8)
            if i == len(profiles) - 1:
                ax.set_xlabel("time (units of tau)")
            if j == 0:
                ax.set_ylabel("||W_l(t) - W_l(0)||")
        # Bars of final change by layer (depth = the largest), theory and simulation.
        ax = axes[i, -1]
        d = depths[-1]
        members = np.flatnonzero((ds["profile"].values == prof) & (ds["depth"].values == d))
        if len(members):
            m = members[0]
            layers = np.arange(1, d + 1)
            ax.bar(layers - 0.2, ds["change_theory"].values[m, -1, :d], width=0.4, color="0.6", label="theory")
            ax.bar(layers + 0.2, ds["change_sim"].values[m, -1, :d], width=0.4, color=plots.color(i), label="simulation")
            ax.plot(layers, ds["b0"].values[m, :d], "k.", label="b_l(0)")
            ax.set_xticks(layers)
            ax.set_title(f"final change by layer, D = {d}", fontsize=8)
            ax.set_xlabel("layer (1 = input)")
            if i == 0:
                ax.legend(loc="best")
    plots.legend_theory_simulation(axes[0, 0])
    for l in range(max(depths)):
        axes[-1, 0].plot([], [], color=plots.color(l), label=f"layer {l + 1}")
    axes[-1, 0].legend(loc="best", ncol=2, fontsize=6)

    fig2, ax = plots.figure(1, 2, width=3.6, height=3.0)
    for k, prof in enumerate(profiles):
        members = np.flatnonzero(ds["profile"].values == prof)
        th = ds["half_time_theory"].values[members].ravel()
        sim = ds["half_time_sim"].values[members].ravel()
        ax[0, 0].plot(th, sim, "o" if prof == RANDOM else ".", markerfacecolor="none" if prof == RANDOM else None, color=plots.color(k), zorder=3 if prof != RANDOM else 2)
    lim = np.nanmax(ds["half_time_sim"].values) * 1.05
    ax[0, 0].plot([0, lim], [0, lim], color="0.4", linewidth=1)
    ax[0, 0].set_xlabel("half-change time, theory (tau)")
    ax[0, 0].set_ylabel("half-change time, simulation (tau)")
    ax[0, 0].set_title("timing of change per layer")
    for k, prof in enumerate(profiles):
        members = np.flatnonzero(ds["profile"].values == prof)
        th = ds["change_theory"].values[members, -1].ravel()
        sim = ds["change_sim"].values[members, -1].ravel()
        ax[0, 1].plot(th, sim, "o" if prof == RANDOM else ".", markerfacecolor="none" if prof == RANDOM else None, color=plots.color(k), label=titles[prof], zorder=3 if prof != RANDOM else 2)
    lim = np.nanmax(ds["change_sim"].values[:, -1]) * 1.05
    ax[0, 1].plot([0, lim], [0, lim], color="0.4", linewidth=1)
    ax[0, 1].set_xlabel("final change, theory")
    ax[0, 1].set_ylabel("final change, simulation")
    ax[0, 1].set_title("size of change per layer")
    ax[0, 1].legend(loc="lower right", fontsize=7)
    return {"layer_changes": Figure(fig, "per-layer change ||W_l(t) - W_l(0)|| per depth and initial-gain profile (theory lines, "
                                          "simulation markers); right: final change by layer at the largest depth"),
            "theory_vs_simulation": Figure(fig2, "half-change time and final change per layer and member, simulation against theory")}


EXPERIMENT = Experiment(
    name="saxe-depth",
    work="Saxe",
    description="deep chains: size and timing of change per layer vs the reduced chain ODE; reverse hierarchy; small random init",
    config=SaxeDepthConfig,
    run=run,
)
"""Registers ``jaxdyn run saxe-depth``: which layer of a deep linear chain changes most, and first, against the reduced chain ODE (reverse hierarchy)."""
