"""saxe-reduction: a three-layer linear network by gradient descent beside the alpha/beta ODE.

Source: Saxe, "A deep learning theory of perceptual learning dynamics" (exact reduction to two
variables). Every member of the ensemble is one condition (an orientation difference, which sets
the task constant v, and an initial decision strength beta0). Each is trained with full-batch
gradient descent by the shared engine, alpha(t) and beta(t) are read from its weights by
projection on d, and the ODE (``jaxdyn.theory.saxe``) is integrated with diffrax on the same
time grid (time in units of tau = 1/lr).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.stats
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.engine import Task, hparam, losses, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.models.deep_linear import DeepLinear, params_from_matrices
from jaxdyn.tasks import full_batch
from jaxdyn.tasks.perceptual import discrimination_task
from jaxdyn.theory import saxe


@dataclasses.dataclass(frozen=True)
class SaxeReductionConfig(Config):
    """Configuration of saxe-reduction. Members are all (delta, beta0) pairs."""

    num_neurons: int = param(64, "hidden (tuning-curve) neurons N", min=2, max=100_000)
    deltas: tuple[float, ...] = param((5.0, 10.0, 20.0, 45.0, 90.0), "orientation differences in degrees (task precisions; small is fine)", min=0.0, max=90.0, min_exclusive=True, max_len=64)
    beta0s: tuple[float, ...] = param((0.1, 0.5, 1.0), "initial decision-layer strengths beta0", min=0.0, max=100.0, min_exclusive=True, max_len=64)
    c: float = param(1.0, "target size: the stimuli map to +c and -c", min=0.0, max=1e3, min_exclusive=True)
    kappa: float = param(2.0, "von Mises concentration of the tuning curves", min=0.0, max=1e3, min_exclusive=True)
    theta0: float = param(45.0, "reference orientation the two stimuli straddle (deg)", min=0.0, max=180.0)
    lr: float = param(0.002, "gradient-descent learning rate (tau = 1/lr)", min=0.0, max=1.0, min_exclusive=True)
    duration: float = param(10.0, "training time in units of tau (steps = duration / lr)", min=0.0, max=1e4, min_exclusive=True)
    record_every: int = param(10, "steps between records", min=1, max=1_000_000)
    rtol: float = param(1e-7, "relative tolerance of the ODE solver", min=0.0, max=1e-2, min_exclusive=True)
    tolerance: float = param(1e-2, "largest |simulation - theory| counted as agreement", min=0.0, max=1.0, min_exclusive=True)

    @classmethod
    def quick(cls) -> "SaxeReductionConfig":
        # lr 0.005 keeps the first-order distance (about 1.1 x lr here) inside the 1e-2 tolerance.
        return cls(num_neurons=16, deltas=(10.0, 45.0), beta0s=(0.2, 1.0), lr=0.005, duration=4.0, record_every=5)

    @property
    def num_steps(self) -> int:
        """Steps, rounded to a whole number of records."""
        return self.record_every * max(1, round(self.duration / (self.lr * self.record_every)))

    def check(self) -> None:
        if self.duration / self.lr > 5_000_000:
            raise ConfigError(f"duration: {self.duration} / lr {self.lr} asks for over 5,000,000 steps; raise lr or shorten duration")
        for delta in self.deltas:  # cheap numpy: the stimuli must exist before anything compiles
            try:
                task = discrimination_task(self.num_neurons, delta, theta0_deg=self.theta0, kappa=self.kappa, c=self.c)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            if not task.v > 1e-12:
                raise ConfigError(f"deltas: {delta} deg gives identical population responses (v = {task.v:.3g}) with "
                                  f"{self.num_neurons} neurons and kappa={self.kappa}; the task is undefined")


def _conditions(config: SaxeReductionConfig):
    """Per-member task constants and initial weights, seed axis first."""
    deltas, beta0s = np.meshgrid(np.asarray(config.deltas), np.asarray(config.beta0s), indexing="ij")
    deltas, beta0s = deltas.ravel(), beta0s.ravel()
    tasks = [discrimination_task(config.num_neurons, d, theta0_deg=config.theta0, kappa=config.kappa, c=config.c) for d in deltas]
    g_plus = np.stack([t.g_plus for t in tasks])
    g_minus = np.stack([t.g_minus for t in tasks])
    v = np.array([t.v for t in tasks])
    # W1 = [g+ g-] (N x 2), W2 = beta0 d^T (1 x N): math layout (out, in).
    w1 = np.stack([g_plus, g_minus], axis=-1)
    w2 = (beta0s[:, None] * (g_plus - g_minus))[:, None, :]
    params = params_from_matrices([w1.astype(np.float32), w2.astype(np.float32)])
    data = {
        "x": np.broadcast_to(np.eye(2, dtype=np.float32), (len(deltas), 2, 2)).copy(),
        "y": np.stack([t.y for t in tasks]).astype(np.float32),
        "g_plus": g_plus.astype(np.float32),
        "g_minus": g_minus.astype(np.float32),
    }
    return deltas, beta0s, v, params, data


def run(config: SaxeReductionConfig, ctx) -> Result:
    """Trains every condition, integrates the ODE, and measures the distance between them."""
    deltas, beta0s, v, init_params, data = _conditions(config)
    num_members = len(deltas)
    result = ctx.train(
        # The initial weights are the condition (tuning curves, beta0), given per member below,
        # and so is the data; neither the model's nor the task's initialiser is used.
        DeepLinear(widths=(2, config.num_neurons, 1)),
        Task(init=None, batch=full_batch),
        optimizer("sgd", learning_rate=hparam("lr")),
        seeds=list(range(num_members)),
        num_steps=config.num_steps,
        loss=losses.half_squared_error_sum,
        observables={"alpha_beta": saxe.alpha_beta_observable},
        record_every=config.record_every,
        hparams={"lr": np.full(num_members, config.lr, np.float32)},
        init_params=init_params,
        data=data,
    )
    ctx.stage("theory")
    rec = result.records["alpha_beta"].astype(np.float64)  # (seed, time, 3)
    alpha_sim, beta_sim, residual = rec[..., 0], rec[..., 1], rec[..., 2]
    time = result.record_steps * config.lr

    ode = saxe.solve_alpha_beta(beta0s, np.full(num_members, config.c), v, time, rtol=config.rtol, atol=config.rtol * 1e-2)
    alpha_th, beta_th = (np.asarray(y, dtype=np.float64) for y in ode.ys)

    # Members that diverged, or whose ODE failed to integrate, are left out of every comparison
    # (and counted in "skipped_members"); their raw arrays stay in the dataset.
    ode_ok = np.asarray(ode.ok, dtype=bool)
    ok = (result.diverged_at < 0) & ode_ok
    dev_alpha = np.abs(alpha_sim - alpha_th)
    dev_beta = np.abs(beta_sim - beta_th)
    max_dev = float(np.max(np.maximum(dev_alpha, dev_beta)[ok])) if ok.any() else float("nan")
    q_sim = saxe.conserved_quantity(alpha_sim, beta_sim)
    q_th = saxe.conserved_quantity(alpha_th, beta_th)
    drift_sim = float(np.max(np.abs(q_sim - q_sim[:, :1])[ok])) if ok.any() else float("nan")
    drift_th = float(np.max(np.abs(q_th - q_th[:, :1])[ode_ok])) if ode_ok.any() else float("nan")
    margin = beta_sim[:, 1:] - np.sqrt(2.0) * alpha_sim[:, 1:]
    min_margin = float(np.min(margin[ok])) if ok.any() else float("nan")
    max_residual = float(np.max(residual[ok])) if ok.any() else float("nan")
    output = saxe.fixed_point_output(alpha_sim[:, -1], beta_sim[:, -1], v)
    # Precision: the input layer's change relative to the decision layer's, alpha / beta at the
    # end, should fall as the task gets coarser (larger v). Rank correlation within each beta0.
    share = alpha_sim[:, -1] / beta_sim[:, -1]
    rhos = [
        float(scipy.stats.spearmanr(v[g], share[g]).statistic)
        for g in (np.flatnonzero((beta0s == b) & ok) for b in np.unique(beta0s))
        if len(g) >= 2
    ]
    rho = max(rhos) if rhos else float("nan")

    tol_source = "config.tolerance: gradient descent at rate lr departs from gradient flow at first order in lr (about 1.1 lr here)"
    reduction = claims.source("Here we give an exact reduction to two variables: W1(t) = [g+ g-] + alpha(t) [d -d], W2(t) = beta(t) d",
                              "poster, panel 'Exact reduction to two variables'")
    found = [
        claims.check("follows-ode", "gradient descent follows the alpha/beta ODE: max |sim - theory| over members and times",
                     max_dev, "<", config.tolerance, kind="paper", source=reduction, threshold_source=tol_source),
        claims.check("stays-on-family", "the weights stay on the two-parameter family W1 = [g+ g-] + alpha [d -d], W2 = beta d^T "
                     "(largest residual norm)", max_residual, "<", 1e-4, kind="paper", source=reduction,
                     threshold_source="float32 rounding accumulated over the run (the residual is 0 in exact arithmetic)"),
        claims.check("conserved-quantity", "(1+2 alpha)^2/2 - beta^2 is conserved (largest drift in simulation)", drift_sim, "<",
                     config.tolerance, kind="extension", threshold_source=tol_source,
                     why="a first integral of the poster's ODE (its time derivative vanishes); the simulation keeps it only to O(lr)"),
        claims.check("beta-exceeds-sqrt2-alpha", "the decision layer changes more: beta > sqrt(2) alpha at every t > 0 "
                     "(smallest beta - sqrt(2) alpha)", min_margin, ">", 0.0, kind="paper",
                     source=claims.source("Higher layers change more: beta > sqrt(2) alpha for all t", "poster, 'Dynamics of learning'"),
                     threshold_source="the statement itself (a strict inequality)"),
        claims.check("precision-trend", "coarse tasks change mostly the decision layer, fine tasks both: final alpha/beta falls "
                     "with v (largest Spearman rho over beta0 groups)", rho, "<", 0.0, kind="paper",
                     source=claims.source("Low precision tasks change only higher layer; High precision tasks change both layers",
                                          "poster, 'Dynamics of learning'"),
                     threshold_source="a falling trend: rank correlation below 0"),
    ]
    numbers = {
        "members": num_members,
        "diverged_members": int((result.diverged_at >= 0).sum()),
        "num_steps": config.num_steps,
        "max_abs_deviation": max_dev,
        "max_abs_deviation_alpha": float(np.max(dev_alpha[ok])) if ok.any() else float("nan"),
        "max_abs_deviation_beta": float(np.max(dev_beta[ok])) if ok.any() else float("nan"),
        "max_conserved_drift_simulation": drift_sim,
        "max_conserved_drift_theory": drift_th,
        "min_beta_minus_sqrt2_alpha": min_margin,
        "beta_gt_sqrt2_alpha_held": bool(min_margin > 0.0),
        "max_off_manifold_residual": max_residual,
        "max_final_output_error": float(np.max(np.abs(output - config.c)[ok])) if ok.any() else float("nan"),
        "spearman_v_vs_alpha_over_beta": rho,
        "final_alpha_over_beta": share.tolist(),
        "ode_failures": [int(i) for i in np.flatnonzero(~ode_ok)],
        "ode_failure_reasons": {str(i): ode.message[i] for i in np.flatnonzero(~ode_ok)},
    }

    member = np.arange(num_members)
    ds = xr.Dataset(
        {
            "alpha_sim": (("seed", "time"), alpha_sim),
            "beta_sim": (("seed", "time"), beta_sim),
            "alpha_theory": (("seed", "time"), alpha_th),
            "beta_theory": (("seed", "time"), beta_th),
            "off_manifold_residual": (("seed", "time"), residual),
            "conserved_sim": (("seed", "time"), q_sim),
            "c": ("seed", np.full(num_members, config.c)),
            "v": ("seed", v),
            "beta0": ("seed", beta0s),
            "delta_deg": ("seed", deltas),
            "lr": ("seed", np.full(num_members, config.lr)),
            "diverged_at": ("seed", result.diverged_at),
            "ode_ok": ("seed", ode_ok.astype(np.int8)),
            "ode_message": ("seed", np.asarray(ode.message, dtype=str)),
            "g_plus": (("seed", "neuron"), data["g_plus"]),
            "g_minus": (("seed", "neuron"), data["g_minus"]),
            "W1_final": (("seed", "neuron", "stimulus"), np.swapaxes(result.params["layer_0"]["kernel"], 1, 2)),
            "W2_final": (("seed", "neuron"), result.params["layer_1"]["kernel"][:, :, 0]),
        },
        coords={"seed": member, "time": time, "step": ("time", result.record_steps)},
        attrs={
            "time_units": "tau = 1/lr (time = step * lr)",
            "num_neurons": config.num_neurons,
            "kappa": config.kappa,
            "theta0_deg": config.theta0,
            "record_every": config.record_every,
            "ode_solver": "diffrax Tsit5, PIDController",
            "ode_rtol": config.rtol,
            "loss": "1/2 sum_mu (y_mu - W2 W1 x_mu)^2, full batch",
        },
    )
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(config, ds), numbers=numbers)


def _figures(config: SaxeReductionConfig, ds: xr.Dataset) -> dict:
    deltas = list(dict.fromkeys(ds["delta_deg"].values.tolist()))
    beta0s = list(dict.fromkeys(ds["beta0"].values.tolist()))
    time = ds["time"].values
    fig, axes = plots.figure(2, len(deltas), width=2.6, height=2.3, sharex=True)
    for j, delta in enumerate(deltas):
        members = np.flatnonzero(ds["delta_deg"].values == delta)
        v = float(ds["v"].values[members[0]])
        for m in members:
            k = beta0s.index(float(ds["beta0"].values[m]))
            col = plots.color(k)
            plots.theory_and_simulation(axes[0, j], time, ds["alpha_theory"].values[m], ds["alpha_sim"].values[m], color=col)
            plots.theory_and_simulation(axes[1, j], time, ds["beta_theory"].values[m], ds["beta_sim"].values[m], color=col,
                                        label=None)
        axes[0, j].set_title(f"delta = {delta:g} deg (v = {v:.3g})")
        axes[1, j].set_xlabel("time (units of tau = 1/lr)")
    axes[0, 0].set_ylabel("alpha (input-layer change)")
    axes[1, 0].set_ylabel("beta (decision-layer strength)")
    plots.legend_theory_simulation(axes[0, 0])
    for k, b0 in enumerate(beta0s):
        axes[1, 0].plot([], [], color=plots.color(k), label=f"beta0 = {b0:g}")
    axes[1, 0].legend(loc="best")

    fig2, ax = plots.figure(1, 2, width=3.8, height=3.0)
    dev = np.maximum(np.abs(ds["alpha_sim"] - ds["alpha_theory"]), np.abs(ds["beta_sim"] - ds["beta_theory"])).values
    for m in range(dev.shape[0]):
        ax[0, 0].plot(time, dev[m], color=plots.color(deltas.index(float(ds["delta_deg"].values[m]))), alpha=0.8)
    ax[0, 0].axhline(config.tolerance, color="0.4", linestyle="--", linewidth=1)
    ax[0, 0].set_yscale("log")
    ax[0, 0].set_xlabel("time (units of tau)")
    ax[0, 0].set_ylabel("|simulation - theory| (max over alpha, beta)")
    ax[0, 0].set_title(f"distance to theory, lr = {config.lr:g}\n(dashed: tolerance)")
    margin = ds["beta_sim"].values - np.sqrt(2) * ds["alpha_sim"].values
    for m in range(margin.shape[0]):
        ax[0, 1].plot(time, margin[m], color=plots.color(deltas.index(float(ds["delta_deg"].values[m]))), alpha=0.8)
    ax[0, 1].axhline(0.0, color="0.4", linestyle="--", linewidth=1)
    ax[0, 1].set_xlabel("time (units of tau)")
    ax[0, 1].set_ylabel("beta - sqrt(2) alpha (simulation)")
    ax[0, 1].set_title("decision layer changes more\n(claim: stays above 0)")
    for k, delta in enumerate(deltas):
        ax[0, 1].plot([], [], color=plots.color(k), label=f"{delta:g} deg")
    ax[0, 1].legend(loc="lower right", ncol=2, title="orientation difference")
    return {"alpha_beta": Figure(fig, "alpha(t) (top) and beta(t) (bottom) per orientation difference: ODE as lines, gradient descent as markers, one colour per beta0"),
            "deviation": Figure(fig2, "left: |simulation - theory| over time per member with the tolerance dashed; right: beta - sqrt(2) alpha per member")}


EXPERIMENT = Experiment(
    name="saxe-reduction",
    work="Saxe",
    description="three-layer linear net by gradient descent vs the alpha/beta ODE; conserved (1+2a)^2/2 - b^2; beta > sqrt(2) alpha",
    config=SaxeReductionConfig,
    run=run,
)
