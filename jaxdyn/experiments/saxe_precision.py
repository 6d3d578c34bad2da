"""saxe-precision: what task precision changes, across layers and within the input layer.

Source: Saxe, "A deep learning theory of perceptual learning dynamics" (task precision; within
layer: most informative neuron changes most). The three-layer net of saxe-reduction (one-hot
stimuli, input layer initialised to von Mises tuning curves [g+ g-], decision layer beta0 d^T)
is trained on a sweep of orientation differences delta from coarse (90 deg) to fine (1 deg);
the finer the task, the smaller v = d . g+.

(a) Across layers. Final alpha and beta against v, simulation vs the alpha/beta ODE, and the
sizes of change ||dW1|| = 2 sqrt(v) alpha, ||dW2|| = sqrt(2v) (beta - beta0)
(``jaxdyn.theory.saxe.layer_changes``). The poster's claim: low-precision (coarse) tasks change
mostly the decision layer, high-precision (fine) tasks change both; the ratio
||dW1|| / ||dW2|| = sqrt(2) alpha / (beta - beta0) tends to 1 for fine tasks (beta / alpha ->
sqrt(2)) and to 0 as c / v -> 0.

(b) Within the input layer. The change of neuron i, ||dW1[i, :]||, against its preferred
orientation, simulation vs the theory sqrt(2) alpha |g+_i - g-_i|
(``jaxdyn.theory.saxe.input_change_profile``). The most changed neuron sits on the flank of the
tuning curve (at ``steepest_flank_offset(kappa)`` from the stimuli) for fine tasks and at the
stimulus orientations (peaks) for coarse ones.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import scipy.stats
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.engine import Task, hparam, losses, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.models.deep_linear import DeepLinear, params_from_matrices
from jaxdyn.tasks import full_batch
from jaxdyn.tasks.perceptual import discrimination_task, orientation_distance, steepest_flank_offset
from jaxdyn.theory import saxe


@dataclasses.dataclass(frozen=True)
class SaxePrecisionConfig(Config):
    """Configuration of saxe-precision. Members are the orientation differences."""

    num_neurons: int = param(64, "hidden (tuning-curve) neurons N", min=4, max=100_000)
    deltas: tuple[float, ...] = param((1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 90.0), "orientation differences in degrees, fine to coarse (at least 2)", min=0.0, max=90.0, min_exclusive=True, min_len=2, max_len=64)
    beta0: float = param(0.1, "initial decision-layer strength", min=0.0, max=100.0, min_exclusive=True)
    c: float = param(0.5, "target size: the stimuli map to +c and -c", min=0.0, max=1e3, min_exclusive=True)
    kappa: float = param(2.0, "von Mises concentration of the tuning curves", min=0.0, max=1e3, min_exclusive=True)
    theta0: float = param(45.0, "reference orientation the two stimuli straddle (deg)", min=0.0, max=180.0)
    lr: float = param(0.005, "gradient-descent learning rate (tau = 1/lr)", min=0.0, max=1.0, min_exclusive=True)
    duration: float = param(12.0, "training time in units of tau", min=0.0, max=1e4, min_exclusive=True)
    record_every: int = param(10, "steps between records", min=1, max=1_000_000)
    rtol: float = param(1e-7, "relative tolerance of the ODE solver", min=0.0, max=1e-2, min_exclusive=True)
    tolerance: float = param(2e-2, "largest |simulation - theory| (relative, see the claims) counted as agreement", min=0.0, max=1.0, min_exclusive=True)
    coarse_ratio: float = param(0.5, "coarse task changes mostly the decision layer: ||dW1|| / ||dW2|| below this", min=0.0, max=1.0, min_exclusive=True)
    fine_ratio: float = param(0.8, "fine task changes both layers: ||dW1|| / ||dW2|| above this", min=0.0, max=1.0, min_exclusive=True)

    @classmethod
    def quick(cls) -> "SaxePrecisionConfig":
        return cls(num_neurons=36, deltas=(2.0, 10.0, 90.0), lr=0.01, duration=10.0, record_every=10)

    @property
    def num_steps(self) -> int:
        return self.record_every * max(1, round(self.duration / (self.lr * self.record_every)))

    def check(self) -> None:
        if len(set(self.deltas)) != len(self.deltas):
            raise ConfigError(f"deltas: values must be distinct, got {self.deltas}")
        if self.duration / self.lr > 5_000_000:
            raise ConfigError(f"duration: {self.duration} / lr {self.lr} asks for over 5,000,000 steps; raise lr or shorten duration")


def input_neuron_changes(snap):
    """Observable: (N,) ||W1[i, :] - W1(0)[i, :]|| for every input-layer (tuning-curve) neuron."""
    w1 = snap.params["layer_0"]["kernel"].T  # (N, 2)
    w1_0 = jnp.stack([snap.data["g_plus"], snap.data["g_minus"]], axis=-1)
    return jnp.linalg.norm(w1 - w1_0, axis=-1)


def run(config: SaxePrecisionConfig, ctx) -> Result:
    """Trains every precision, integrates the alpha/beta ODE, and compares layers and neurons."""
    deltas = np.asarray(config.deltas, dtype=np.float64)
    num_members = len(deltas)
    tasks = [discrimination_task(config.num_neurons, d, theta0_deg=config.theta0, kappa=config.kappa, c=config.c) for d in deltas]
    g_plus = np.stack([t.g_plus for t in tasks])
    g_minus = np.stack([t.g_minus for t in tasks])
    d = g_plus - g_minus
    v = np.array([t.v for t in tasks])
    w1 = np.stack([g_plus, g_minus], axis=-1)
    w2 = (config.beta0 * d)[:, None, :]
    data = {
        "x": np.broadcast_to(np.eye(2, dtype=np.float32), (num_members, 2, 2)).copy(),
        "y": np.stack([t.y for t in tasks]).astype(np.float32),
        "g_plus": g_plus.astype(np.float32),
        "g_minus": g_minus.astype(np.float32),
    }
    result = ctx.train(
        DeepLinear(widths=(2, config.num_neurons, 1)),
        Task(init=None, batch=full_batch),
        optimizer("sgd", learning_rate=hparam("lr")),
        seeds=list(range(num_members)),
        num_steps=config.num_steps,
        loss=losses.half_squared_error_sum,
        observables={"alpha_beta": saxe.alpha_beta_observable, "neuron_change": input_neuron_changes},
        record_every=config.record_every,
        hparams={"lr": np.full(num_members, config.lr, np.float32)},
        init_params=params_from_matrices([w1.astype(np.float32), w2.astype(np.float32)]),
        data=data,
    )
    ctx.stage("theory")
    rec = result.records["alpha_beta"].astype(np.float64)
    alpha_sim, beta_sim = rec[..., 0], rec[..., 1]
    profile_sim = result.records["neuron_change"].astype(np.float64)  # (member, time, N)
    time = result.record_steps * config.lr
    ode = saxe.solve_alpha_beta(np.full(num_members, config.beta0), np.full(num_members, config.c), v, time, rtol=config.rtol, atol=config.rtol * 1e-2)
    alpha_th, beta_th = (np.asarray(y, dtype=np.float64) for y in ode.ys)
    profile_th = np.asarray(saxe.input_change_profile(d[:, None, :], alpha_th), dtype=np.float64)  # (member, time, N)
    ctx.stage("analysis")
    dataset, found, numbers = _analyse(config, dict(
        deltas=deltas, v=v, d=d, g_plus=g_plus, g_minus=g_minus, preferred=tasks[0].preferred, time=time,
        alpha_sim=alpha_sim, beta_sim=beta_sim, alpha_th=alpha_th, beta_th=beta_th, residual=rec[..., 2],
        profile_sim=profile_sim, profile_th=profile_th, diverged_at=result.diverged_at, ode_ok=np.asarray(ode.ok),
    ))
    ctx.stage("figures")
    return Result(dataset=dataset, claims=found, figures=_figures(config, dataset), numbers=numbers)


def _analyse(config: SaxePrecisionConfig, r: dict):
    deltas, v, time = r["deltas"], r["v"], r["time"]
    num_members = len(deltas)
    ok = (r["diverged_at"] < 0) & r["ode_ok"]

    def worst(x):
        return float(np.max(x[ok])) if ok.any() else float("nan")

    dev_ab = np.maximum(np.abs(r["alpha_sim"] - r["alpha_th"]), np.abs(r["beta_sim"] - r["beta_th"]))
    # Relative to the size of the final state: fine tasks end with alpha, beta >> 1.
    scale = np.maximum(np.abs(r["beta_th"][:, -1]), 1.0)
    max_dev = worst(np.max(dev_ab, 1) / scale)

    # (a) across layers.
    dw1_sim, dw2_sim = (np.asarray(x, dtype=np.float64) for x in saxe.layer_changes(r["alpha_sim"][:, -1], r["beta_sim"][:, -1], config.beta0, v))
    dw1_th, dw2_th = (np.asarray(x, dtype=np.float64) for x in saxe.layer_changes(r["alpha_th"][:, -1], r["beta_th"][:, -1], config.beta0, v))
    ratio_sim, ratio_th = dw1_sim / dw2_sim, dw1_th / dw2_th
    coarse, fine = int(np.argmax(deltas)), int(np.argmin(deltas))
    rho = float(scipy.stats.spearmanr(v[ok], ratio_sim[ok]).statistic) if ok.sum() >= 2 else float("nan")
    max_ratio_dev = worst(np.abs(ratio_sim - ratio_th))

    # (b) within the input layer.
    peak_th = r["profile_th"][:, -1].max(-1)
    profile_dev = worst(np.max(np.abs(r["profile_sim"] - r["profile_th"]), axis=(1, 2)) / peak_th)
    pref = r["preferred"]
    most_changed = pref[np.argmax(r["profile_sim"][:, -1], -1)]  # (member,) preferred orientation, deg
    most_changed_th = pref[np.argmax(r["profile_th"][:, -1], -1)]
    stimuli = np.stack([config.theta0 + deltas / 2, config.theta0 - deltas / 2], -1)
    offset_stimulus = np.min(orientation_distance(most_changed[:, None], stimuli), -1)  # from the nearest stimulus
    flank = steepest_flank_offset(config.kappa)
    spacing = 180.0 / config.num_neurons
    # Fine: the most changed neuron sits the flank offset away from the (nearly coincident) stimuli.
    fine_flank_err = abs(float(orientation_distance(most_changed[fine], config.theta0)) - flank)
    fine_tol = spacing + deltas[fine] / 2
    coarse_peak_err = float(offset_stimulus[coarse])
    # Every profile: correlation of the simulated change with |g+ - g-| (the informativeness).
    corr = np.array([np.corrcoef(r["profile_sim"][m, -1], np.abs(r["d"][m]))[0, 1] for m in range(num_members)])
    min_corr = float(np.min(corr[ok])) if ok.any() else float("nan")

    tol = config.tolerance
    tol_source = "config.tolerance: gradient descent departs from gradient flow at first order in lr"
    precision = claims.source("Low precision tasks change only higher layer; High precision tasks change both layers", "poster, 'Dynamics of learning'")
    within = claims.source("Within layer: most informative neuron changes most; Task precision determines most informative neuron",
                           "poster, 'Dynamics of learning'")
    reduction = claims.source("Here we give an exact reduction to two variables", "poster, panel 'Exact reduction to two variables'")
    found = [
        claims.check("follows-ode", "gradient descent follows the alpha/beta ODE at every precision (max |sim - theory| / max(1, beta_final))",
                     max_dev, "<", tol, kind="paper", source=reduction, threshold_source=tol_source),
        claims.check("coarse-changes-decision-layer", f"low precision (delta = {deltas[coarse]:g} deg) changes mostly the decision layer: ||dW1|| / ||dW2|| "
                     f"(simulation; theory {ratio_th[coarse]:.3g})", float(ratio_sim[coarse]) if ok[coarse] else float("nan"), "<", config.coarse_ratio,
                     kind="paper", source=precision, threshold_source="config.coarse_ratio"),
        claims.check("fine-changes-both", f"high precision (delta = {deltas[fine]:g} deg) changes both layers: ||dW1|| / ||dW2|| (simulation; theory "
                     f"{ratio_th[fine]:.3g}; limit 1)", float(ratio_sim[fine]) if ok[fine] else float("nan"), ">", config.fine_ratio,
                     kind="paper", source=precision, threshold_source="config.fine_ratio"),
        claims.check("share-grows-with-precision", "the finer the task, the larger the input layer's share: Spearman rho of v vs ||dW1|| / ||dW2|| (simulation)",
                     rho, "<", -0.99, kind="paper", source=precision, threshold_source="a monotone falling trend"),
        claims.check("ratio-matches", "across layers, simulation matches theory: largest |ratio_sim - ratio_theory|", max_ratio_dev, "<", tol,
                     kind="extension", why="the reduction's layer changes beside the simulation's", threshold_source=tol_source),
        claims.check("profile-matches", "within the input layer, each neuron changes by sqrt(2) alpha |g+_i - g-_i| (largest |sim - theory| over neurons "
                     "and times / the largest theory change)", profile_dev, "<", tol, kind="sanity",
                     why="W1 - W1(0) = alpha [d, -d] by construction of the reduction", threshold_source=tol_source),
        claims.check("fine-flank", f"fine task: the most changed neuron is on the flank, {flank:.3g} deg from the stimuli (|offset - flank| in deg, "
                     f"allowed: spacing + delta/2 = {fine_tol:.3g})", fine_flank_err if ok[fine] else float("nan"), "<=", fine_tol,
                     kind="paper", source=within, threshold_source="one neuron spacing plus half the orientation difference"),
        claims.check("coarse-peak", f"coarse task: the most changed neuron is at a stimulus orientation, the tuning peak (distance in deg, allowed: "
                     f"one spacing {spacing:.3g})", coarse_peak_err if ok[coarse] else float("nan"), "<=", spacing, kind="paper", source=within,
                     threshold_source="one neuron spacing"),
        claims.check("profile-informativeness", "every task: the change profile follows the informativeness |g+_i - g-_i| (smallest Pearson r)",
                     min_corr, ">", 0.999, kind="sanity", why="the within-layer profile is proportional to |g+ - g-| by construction",
                     threshold_source="proportional up to float32 rounding"),
    ]
    numbers = {
        "members": num_members,
        "diverged_members": int((r["diverged_at"] >= 0).sum()),
        "ode_failures": [int(i) for i in np.flatnonzero(~r["ode_ok"])],
        "num_steps": config.num_steps,
        "max_abs_deviation": worst(np.max(dev_ab, 1)),
        "max_rel_deviation": max_dev,
        "deltas": deltas.tolist(),
        "v": v.tolist(),
        "final_alpha_sim": r["alpha_sim"][:, -1].tolist(),
        "final_beta_sim": r["beta_sim"][:, -1].tolist(),
        "final_alpha_theory": r["alpha_th"][:, -1].tolist(),
        "final_beta_theory": r["beta_th"][:, -1].tolist(),
        "change_ratio_dW1_over_dW2_sim": ratio_sim.tolist(),
        "change_ratio_dW1_over_dW2_theory": ratio_th.tolist(),
        "spearman_v_vs_change_ratio": rho,
        "max_profile_deviation": profile_dev,
        "most_changed_preferred_deg": most_changed.tolist(),
        "most_changed_preferred_deg_theory": most_changed_th.tolist(),
        "most_changed_offset_from_nearest_stimulus_deg": offset_stimulus.tolist(),
        "flank_offset_deg": flank,
        "min_profile_vs_informativeness_r": min_corr,
    }
    ds = xr.Dataset(
        {
            "alpha_sim": (("seed", "time"), r["alpha_sim"]),
            "beta_sim": (("seed", "time"), r["beta_sim"]),
            "alpha_theory": (("seed", "time"), r["alpha_th"]),
            "beta_theory": (("seed", "time"), r["beta_th"]),
            "off_manifold_residual": (("seed", "time"), r["residual"]),
            "neuron_change_sim": (("seed", "time", "neuron"), r["profile_sim"]),
            "neuron_change_theory": (("seed", "time", "neuron"), r["profile_th"]),
            "g_plus": (("seed", "neuron"), r["g_plus"]),
            "g_minus": (("seed", "neuron"), r["g_minus"]),
            "dW1_sim": ("seed", dw1_sim),
            "dW2_sim": ("seed", dw2_sim),
            "dW1_theory": ("seed", dw1_th),
            "dW2_theory": ("seed", dw2_th),
            "delta_deg": ("seed", deltas),
            "v": ("seed", v),
            "c": ("seed", np.full(num_members, config.c)),
            "beta0": ("seed", np.full(num_members, config.beta0)),
            "lr": ("seed", np.full(num_members, config.lr)),
            "diverged_at": ("seed", r["diverged_at"]),
            "ode_ok": ("seed", r["ode_ok"].astype(np.int8)),
        },
        coords={"seed": np.arange(num_members), "time": time, "step": ("time", np.round(time / config.lr).astype(np.int64)),
                "neuron": np.arange(config.num_neurons), "preferred_deg": ("neuron", r["preferred"])},
        attrs={
            "time_units": "tau = 1/lr (time = step * lr)",
            "kappa": config.kappa,
            "theta0_deg": config.theta0,
            "flank_offset_deg": flank,
            "record_every": config.record_every,
            "ode_solver": "diffrax Tsit5, PIDController",
            "loss": "1/2 sum_mu (y_mu - W2 W1 x_mu)^2, full batch",
        },
    )
    return ds, found, numbers


def _figures(config: SaxePrecisionConfig, ds: xr.Dataset) -> dict:
    v = ds["v"].values
    order = np.argsort(v)
    fig, axes = plots.figure(1, 3, width=3.3, height=2.9)
    ax = axes[0, 0]
    for k, (name, label) in enumerate((("alpha", "alpha (input layer)"), ("beta", "beta (decision layer)"))):
        ax.plot(v[order], ds[f"{name}_theory"].values[order, -1], color=plots.color(k), label=f"{label}, theory")
        ax.plot(v[order], ds[f"{name}_sim"].values[order, -1], "o", markerfacecolor="none", color=plots.color(k), label=f"{label}, simulation")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("v = d . g+ (small = fine task)")
    ax.set_ylabel("final size of change")
    ax.set_title("across layers")
    ax.legend(loc="lower left", fontsize=6.5)
    ax = axes[0, 1]
    ax.plot(v[order], (ds["dW1_theory"] / ds["dW2_theory"]).values[order], color=plots.color(2), label="theory")
    ax.plot(v[order], (ds["dW1_sim"] / ds["dW2_sim"]).values[order], "o", markerfacecolor="none", color=plots.color(2), label="simulation")
    ax.axhline(1.0, color="0.6", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("v = d . g+ (small = fine task)")
    ax.set_ylabel("||dW1|| / ||dW2||")
    ax.set_title("input layer's change relative\nto the decision layer's")
    ax.legend(loc="best")
    for j, delta in enumerate(ds["delta_deg"].values):
        ax.annotate(f"{delta:g}°", (v[j], float(ds["dW1_sim"].values[j] / ds["dW2_sim"].values[j])), fontsize=6, xytext=(2, 4), textcoords="offset points")
    ax = axes[0, 2]
    pref = ds["preferred_deg"].values
    deltas = ds["delta_deg"].values
    # Finest, an intermediate (closest to 30 deg) and coarsest task: fine profiles share one shape.
    show = [int(np.argmin(deltas)), int(np.argmin(np.abs(deltas - 30.0))), int(np.argmax(deltas))]
    for k, m in enumerate(dict.fromkeys(show)):
        th = ds["neuron_change_theory"].values[m, -1]
        sim = ds["neuron_change_sim"].values[m, -1]
        scale = th.max()
        ax.plot(pref, th / scale, color=plots.color(k + 3), label=f"delta = {deltas[m]:g} deg")
        ax.plot(pref, sim / scale, "o", markerfacecolor="none", color=plots.color(k + 3), markersize=2.5)
        for sgn in (1, -1):
            ax.axvline(config.theta0 + sgn * deltas[m] / 2, color=plots.color(k + 3), linestyle=":", linewidth=0.8)
    ax.set_xlabel("preferred orientation (deg)")
    ax.set_ylabel("||dW1[i, :]|| / max (theory)")
    ax.set_title("within the input layer\n(dotted: stimulus orientations)")
    ax.legend(loc="upper right", fontsize=7)
    return {"precision": Figure(fig, "left: final alpha and beta against v; middle: ||dW1|| / ||dW2|| against v; right: per-neuron "
                                     "input-layer change against preferred orientation (theory lines, simulation markers)")}


EXPERIMENT = Experiment(
    name="saxe-precision",
    work="Saxe",
    description="task precision: final alpha, beta vs v (which layers change); within-layer change vs preferred orientation",
    config=SaxePrecisionConfig,
    run=run,
)
