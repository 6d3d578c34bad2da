"""saxe-precision: what task precision changes, across layers and within the input layer.

Source: Saxe, "A deep learning theory of perceptual learning dynamics" (task precision; within
layer: most informative neuron changes most). The three-layer net of saxe-reduction (one-hot
stimuli, input layer initialised to von Mises tuning curves [g+ g-], decision layer beta0 d^T,
by default beta0 = 0: the poster's W2 = beta d is the decision layer's change) is trained on
two sweeps: orientation differences delta from coarse (90 deg) to fine (1 deg) at one target c
(the finer the task, the smaller v = d . g+), and targets c on the coarsest task. Together they
sweep c/v over several decades.

(a) Across layers. The end state of the alpha/beta flow depends on c/v and beta0 only
(``jaxdyn.theory.saxe.final_alpha_beta``), and so does the ratio of the layers' changes
||dW1|| / ||dW2|| = sqrt(2) alpha / (beta - beta0) (Frobenius norms,
``jaxdyn.theory.saxe.layer_changes``). "Low precision tasks change only the higher layer" is
the limit c/v -> 0 of that ratio (it vanishes like c / (sqrt(2) v) for beta0 = 0); "high
precision tasks change both layers" is its approach to 1 as c/v grows. Simulation beside the
ODE at the same times and beside the fixed point.

(b) Within the input layer (the delta sweep). The change of neuron i, ||dW1[i, :]||, against
its preferred orientation, simulation vs the theory sqrt(2) alpha |g+_i - g-_i|
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
from jaxdyn.experiments.fields import GradientFlowTime, TuningCurveTask
from jaxdyn.models.deep_linear import DeepLinear, params_from_matrices
from jaxdyn.tasks import full_batch
from jaxdyn.tasks.perceptual import discrimination_task, orientation_distance, steepest_flank_offset
from jaxdyn.theory import saxe

SWEEPS = ("delta", "target")
"""The two sweeps, in member order: ``delta`` (orientation differences at target c) then
``target`` (targets c on the coarsest task); together they sweep c/v."""


@dataclasses.dataclass(frozen=True)
class SaxePrecisionConfig(GradientFlowTime, TuningCurveTask, Config):
    """Configuration of saxe-precision. Members: the deltas at target c, then the coarse task at each target."""

    num_neurons: int = param(64, "hidden (tuning-curve) neurons N", min=4, max=100_000)
    deltas: tuple[float, ...] = param((1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 90.0), "orientation differences in degrees, fine to coarse (at least 2)", min=0.0, max=90.0, min_exclusive=True, min_len=2, max_len=64)
    c: float = param(0.5, "target size of the delta sweep: the stimuli map to +c and -c", min=0.0, max=1e3, min_exclusive=True)
    coarse_targets: tuple[float, ...] = param((0.01, 0.03, 0.1, 0.3, 1.0, 3.0), "targets c of the c/v sweep on the coarsest task (the largest delta)", min=0.0, max=1e3, min_exclusive=True, min_len=0, max_len=64)
    beta0: float = param(0.0, "initial decision-layer strength (0: the poster's start, W2 = beta d is the change)", min=0.0, max=100.0)
    lr: float = param(0.005, "gradient-descent learning rate (tau = 1/lr)", min=0.0, max=1.0, min_exclusive=True)
    duration: float = param(12.0, "training time in units of tau", min=0.0, max=1e4, min_exclusive=True)
    tolerance: float = param(2e-2, "largest |simulation - theory| (relative, see the claims) counted as agreement", min=0.0, max=1.0, min_exclusive=True)
    fine_ratio: float = param(0.8, "high precision changes both layers: ||dW1|| / ||dW2|| at the largest c/v above this (the limit is 1)", min=0.0, max=1.0, min_exclusive=True)
    limit_decade: float = param(10.0, "the c/v -> 0 trend is read on the members within this factor of the smallest c/v", min=1.0, max=1e3, min_exclusive=True)
    converged: float = param(1e-3, "members whose final output misses c by more than this (relative) are left out of the fixed-point comparison", min=0.0, max=1.0, min_exclusive=True)

    @classmethod
    def quick(cls) -> SaxePrecisionConfig:
        return cls(num_neurons=36, deltas=(2.0, 10.0, 90.0), coarse_targets=(0.01, 0.03, 0.1), lr=0.01, duration=10.0, record_every=10)

    def check(self) -> None:
        if len(set(self.deltas)) != len(self.deltas):
            raise ConfigError(f"deltas: values must be distinct, got {self.deltas}")
        if len(set(self.coarse_targets)) != len(self.coarse_targets):
            raise ConfigError(f"coarse_targets: values must be distinct, got {self.coarse_targets}")
        self.check_steps(5_000_000)
        v = self.task_constants(self.deltas)
        c, v_m = member_targets(self, v)
        if not np.all(self.beta0 * v_m < c):
            raise ConfigError(f"beta0: {self.beta0} starts some member at an output v beta0 >= c (past its target); use beta0 < {np.min(c / v_m):.3g}")
        ratio = c / v_m
        if not ratio.max() >= 100.0 * ratio.min():
            raise ConfigError(f"coarse_targets: c/v must span at least two decades over the members (now {ratio.min():.3g} to "
                              f"{ratio.max():.3g}); add smaller targets or finer deltas")
        if int(np.sum(ratio <= self.limit_decade * ratio.min() * (1 + 1e-9))) < 3:
            raise ConfigError(f"coarse_targets: the c/v -> 0 trend needs at least 3 members within a factor limit_decade = {self.limit_decade:g} "
                              f"of the smallest c/v ({ratio.min():.3g}); add targets there")


def member_targets(config: SaxePrecisionConfig, v_deltas: np.ndarray):
    """(c, v) per member: the delta sweep at config.c, then the coarsest task at each coarse target.

    Args:
        v_deltas: (len(deltas),) task constants of config.deltas.

    Returns:
        (c, v), each (member,).
    """
    coarse = int(np.argmax(config.deltas))
    c = np.concatenate([np.full(len(config.deltas), config.c), np.asarray(config.coarse_targets, dtype=np.float64)])
    v = np.concatenate([np.asarray(v_deltas, dtype=np.float64), np.full(len(config.coarse_targets), v_deltas[coarse])])
    return c, v


def input_neuron_changes(snap):
    """Observable: (N,) ||W1[i, :] - W1(0)[i, :]|| for every input-layer (tuning-curve) neuron."""
    w1 = snap.params["layer_0"]["kernel"].T  # (N, 2)
    w1_0 = jnp.stack([snap.data["g_plus"], snap.data["g_minus"]], axis=-1)
    return jnp.linalg.norm(w1 - w1_0, axis=-1)


def run(config: SaxePrecisionConfig, ctx) -> Result:
    """Trains both sweeps, integrates the alpha/beta ODE, and compares layers and neurons."""
    coarse_delta = float(max(config.deltas))
    deltas = np.concatenate([np.asarray(config.deltas, dtype=np.float64), np.full(len(config.coarse_targets), coarse_delta)])
    sweep = np.array(["delta"] * len(config.deltas) + ["target"] * len(config.coarse_targets))
    num_members = len(deltas)
    tasks = [discrimination_task(config.num_neurons, d, theta0_deg=config.theta0, kappa=config.kappa) for d in deltas]
    g_plus = np.stack([t.g_plus for t in tasks])
    g_minus = np.stack([t.g_minus for t in tasks])
    d = g_plus - g_minus
    c, v = member_targets(config, np.array([t.v for t in tasks[:len(config.deltas)]]))
    w1 = np.stack([g_plus, g_minus], axis=-1)
    w2 = (config.beta0 * d)[:, None, :]
    data = {
        "x": np.broadcast_to(np.eye(2, dtype=np.float32), (num_members, 2, 2)).copy(),
        "y": np.stack([[[cm], [-cm]] for cm in c]).astype(np.float32),
        "g_plus": g_plus.astype(np.float32),
        "g_minus": g_minus.astype(np.float32),
    }
    init_params = params_from_matrices([w1.astype(np.float32), w2.astype(np.float32)])
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
        init_params=init_params,
        data=data,
    )
    ctx.stage("theory")
    rec = result.records["alpha_beta"].astype(np.float64)
    alpha_sim, beta_sim = rec[..., 0], rec[..., 1]
    profile_sim = result.records["neuron_change"].astype(np.float64)  # (member, time, N)
    time = result.record_steps * config.lr
    ode = saxe.solve_alpha_beta(np.full(num_members, config.beta0), c, v, time, rtol=config.rtol, atol=config.rtol * 1e-2)
    alpha_th, beta_th = (np.asarray(y, dtype=np.float64) for y in ode.ys)
    profile_th = np.asarray(saxe.input_change_profile(d[:, None, :], alpha_th), dtype=np.float64)  # (member, time, N)
    ctx.stage("analysis")
    dataset, found, numbers = _analyse(config, dict(
        deltas=deltas, sweep=sweep, c=c, v=v, d=d, g_plus=g_plus, g_minus=g_minus, preferred=tasks[0].preferred, time=time,
        alpha_sim=alpha_sim, beta_sim=beta_sim, alpha_th=alpha_th, beta_th=beta_th, residual=rec[..., 2],
        profile_sim=profile_sim, profile_th=profile_th, diverged_at=result.diverged_at, ode_ok=np.asarray(ode.ok),
        x=data["x"], y=data["y"], w1_init=w1, w2_init=w2[:, 0, :],
        w1_final=np.swapaxes(result.params["layer_0"]["kernel"], 1, 2), w2_final=result.params["layer_1"]["kernel"][:, :, 0],
    ))
    ctx.stage("figures")
    return Result(dataset=dataset, claims=found, figures=_figures(config, dataset), numbers=numbers)


def power_law_slope(x, y) -> float:
    """Least-squares slope of log y against log x (positive entries only); NaN with fewer than 2."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def _analyse(config: SaxePrecisionConfig, r: dict):
    deltas, sweep, c, v, time = r["deltas"], r["sweep"], r["c"], r["v"], r["time"]
    num_members = len(deltas)
    ok = (r["diverged_at"] < 0) & r["ode_ok"]
    by_delta = sweep == "delta"

    def worst(x, mask=ok):
        return float(np.max(x[mask])) if mask.any() else float("nan")

    dev_ab = np.maximum(np.abs(r["alpha_sim"] - r["alpha_th"]), np.abs(r["beta_sim"] - r["beta_th"]))
    # Relative to the size of the final state: fine tasks end with alpha, beta >> 1.
    scale = np.maximum(np.abs(r["beta_th"][:, -1]), 1.0)
    max_dev = worst(np.max(dev_ab, 1) / scale)

    # (a) across layers, against c/v.
    c_over_v = c / v
    dw1_sim, dw2_sim = (np.asarray(x, dtype=np.float64) for x in saxe.layer_changes(r["alpha_sim"][:, -1], r["beta_sim"][:, -1], config.beta0, v))
    dw1_th, dw2_th = (np.asarray(x, dtype=np.float64) for x in saxe.layer_changes(r["alpha_th"][:, -1], r["beta_th"][:, -1], config.beta0, v))
    ratio_sim, ratio_th = dw1_sim / dw2_sim, dw1_th / dw2_th
    alpha_inf, beta_inf = saxe.final_alpha_beta(c_over_v, config.beta0)
    ratio_inf = saxe.change_ratio(alpha_inf, beta_inf, config.beta0)
    output = saxe.fixed_point_output(r["alpha_sim"][:, -1], r["beta_sim"][:, -1], v)
    converged = ok & (np.abs(output - c) <= config.converged * c)
    max_ratio_dev = worst(np.abs(ratio_sim - ratio_th))
    max_fixed_dev = worst(np.abs(ratio_sim - ratio_inf), converged)
    rho = float(scipy.stats.spearmanr(c_over_v[ok], ratio_sim[ok]).statistic) if ok.sum() >= 2 else float("nan")
    low = ok & (c_over_v <= config.limit_decade * c_over_v[ok].min() * (1 + 1e-9)) if ok.any() else ok
    slope_sim = power_law_slope(c_over_v[low], ratio_sim[low])
    slope_th = power_law_slope(c_over_v[low], ratio_th[low])
    smallest, largest = (int(np.argmin(np.where(ok, c_over_v, np.inf))), int(np.argmax(np.where(ok, c_over_v, -np.inf)))) if ok.any() else (0, 0)

    # (b) within the input layer, on the delta sweep.
    peak_th = r["profile_th"][:, -1].max(-1)
    profile_dev = worst(np.max(np.abs(r["profile_sim"] - r["profile_th"]), axis=(1, 2)) / peak_th, ok & by_delta)
    pref = r["preferred"]
    most_changed = pref[np.argmax(r["profile_sim"][:, -1], -1)]  # (member,) preferred orientation, deg
    most_changed_th = pref[np.argmax(r["profile_th"][:, -1], -1)]
    stimuli = np.stack([config.theta0 + deltas / 2, config.theta0 - deltas / 2], -1)
    offset_stimulus = np.min(orientation_distance(most_changed[:, None], stimuli), -1)  # from the nearest stimulus
    flank = steepest_flank_offset(config.kappa)
    spacing = 180.0 / config.num_neurons
    fine = int(np.argmin(np.where(by_delta, deltas, np.inf)))
    coarse = int(np.argmax(np.where(by_delta, deltas, -np.inf)))
    # Fine: the most changed neuron sits the flank offset away from the (nearly coincident) stimuli.
    fine_flank_err = abs(float(orientation_distance(most_changed[fine], config.theta0)) - flank)
    fine_tol = spacing + deltas[fine] / 2
    coarse_peak_err = float(offset_stimulus[coarse])
    # Every profile: correlation of the simulated change with |g+ - g-| (the informativeness).
    corr = np.array([np.corrcoef(r["profile_sim"][m, -1], np.abs(r["d"][m]))[0, 1] for m in range(num_members)])
    min_corr = worst(corr * -1.0, ok & by_delta) * -1.0

    found = _claims(config, dict(
        max_dev=max_dev, slope_sim=slope_sim, slope_th=slope_th, n_low=int(low.sum()), rho=rho, ratio_sim=ratio_sim, ratio_th=ratio_th,
        ratio_inf=ratio_inf, c_over_v=c_over_v, smallest=smallest, largest=largest, ok=ok, max_ratio_dev=max_ratio_dev,
        max_fixed_dev=max_fixed_dev, n_converged=int(converged.sum()), profile_dev=profile_dev, flank=flank, fine_tol=fine_tol,
        fine_flank_err=fine_flank_err, coarse_peak_err=coarse_peak_err, spacing=spacing, min_corr=min_corr, fine=fine,
        coarse=coarse, deltas=deltas,
    ))
    numbers = {
        "members": num_members,
        "diverged_members": int((r["diverged_at"] >= 0).sum()),
        "ode_failures": [int(i) for i in np.flatnonzero(~r["ode_ok"])],
        "num_steps": config.num_steps,
        "max_abs_deviation": worst(np.max(dev_ab, 1)),
        "max_rel_deviation": max_dev,
        "deltas": deltas.tolist(),
        "c": c.tolist(),
        "v": v.tolist(),
        "c_over_v": c_over_v.tolist(),
        "c_over_v_decades": float(np.log10(c_over_v.max() / c_over_v.min())),
        "final_alpha_sim": r["alpha_sim"][:, -1].tolist(),
        "final_beta_sim": r["beta_sim"][:, -1].tolist(),
        "final_alpha_theory": r["alpha_th"][:, -1].tolist(),
        "final_beta_theory": r["beta_th"][:, -1].tolist(),
        "change_ratio_dW1_over_dW2_sim": ratio_sim.tolist(),
        "change_ratio_dW1_over_dW2_theory": ratio_th.tolist(),
        "change_ratio_dW1_over_dW2_fixed_point": np.asarray(ratio_inf).tolist(),
        "coarse_limit_loglog_slope_sim": slope_sim,
        "coarse_limit_loglog_slope_theory": slope_th,
        "spearman_c_over_v_vs_change_ratio": rho,
        "converged_members": int(converged.sum()),
        "max_fixed_point_ratio_deviation": max_fixed_dev,
        "max_profile_deviation": profile_dev,
        "most_changed_preferred_deg": most_changed.tolist(),
        "most_changed_preferred_deg_theory": most_changed_th.tolist(),
        "most_changed_offset_from_nearest_stimulus_deg": offset_stimulus.tolist(),
        "flank_offset_deg": flank,
        "min_profile_vs_informativeness_r": min_corr,
    }
    one = "1"  # alpha, beta, the tuning curves (|g+| = |g-| = 1) and the weights are dimensionless
    frobenius = "Frobenius norm, tuning-curve units |g+| = |g-| = 1"

    def described(long_name):
        return {"long_name": long_name, "units": one}

    ds = xr.Dataset(
        {
            "alpha_sim": (("seed", "time"), r["alpha_sim"], described(
                "input-layer change alpha, W1 = [g+ g-] + alpha [d -d], gradient descent (projection on d)")),
            "beta_sim": (("seed", "time"), r["beta_sim"], described(
                "decision-layer strength beta along d, W2 = beta d^T, gradient descent (projection on d)")),
            "alpha_theory": (("seed", "time"), r["alpha_th"], described(
                "input-layer change alpha, the alpha/beta ODE (diffrax) on the same time grid")),
            "beta_theory": (("seed", "time"), r["beta_th"], described(
                "decision-layer strength beta along d, the alpha/beta ODE (diffrax) on the same time grid")),
            "off_manifold_residual": (("seed", "time"), r["residual"], described(
                "weights off the two-parameter family, ||W1 - [g+ g-] - alpha [d -d]|| + ||W2 - beta d^T||, gradient descent")),
            "neuron_change_sim": (("seed", "time", "neuron"), r["profile_sim"], described(
                "change of each input-layer neuron ||W1[i, :] - W1(0)[i, :]||, gradient descent")),
            "neuron_change_theory": (("seed", "time", "neuron"), r["profile_th"], described(
                "change of each input-layer neuron sqrt(2) |alpha| |g+_i - g-_i|, alpha from the ODE")),
            "g_plus": (("seed", "neuron"), r["g_plus"], described(
                "tuning-curve responses g+ to the + stimulus (von Mises, population scaled to unit norm)")),
            "g_minus": (("seed", "neuron"), r["g_minus"], described(
                "tuning-curve responses g- to the - stimulus (von Mises, same scale as g+)")),
            "W1_initial": (("seed", "neuron", "stimulus"), r["w1_init"], described(
                "initial input layer W1(0) = [g+ g-] (math layout, neuron x stimulus)")),
            "W2_initial": (("seed", "neuron"), r["w2_init"], described("initial decision layer W2(0) = beta0 d^T (one output)")),
            "W1_final": (("seed", "neuron", "stimulus"), np.asarray(r["w1_final"]), described(
                "input layer W1 after the last step (math layout, neuron x stimulus)")),
            "W2_final": (("seed", "neuron"), np.asarray(r["w2_final"]), described("decision layer W2 after the last step (one output)")),
            "x": (("seed", "stimulus", "input"), r["x"], described("one-hot inputs x of the two stimuli (+, -)")),
            "y": (("seed", "stimulus", "output"), r["y"], described("targets y: +c for the + stimulus, -c for the - (c per member)")),
            "dW1_sim": ("seed", dw1_sim, described(f"input layer's change ||dW1|| = 2 sqrt(v) |alpha| at the last record, gradient-descent alpha ({frobenius})")),
            "dW2_sim": ("seed", dw2_sim, described(
                f"decision layer's change ||dW2|| = sqrt(2 v) |beta - beta0| at the last record, gradient-descent beta ({frobenius})")),
            "dW1_theory": ("seed", dw1_th, described(f"input layer's change ||dW1|| = 2 sqrt(v) |alpha| at the last record, ODE alpha ({frobenius})")),
            "dW2_theory": ("seed", dw2_th, described(
                f"decision layer's change ||dW2|| = sqrt(2 v) |beta - beta0| at the last record, ODE beta ({frobenius})")),
            "change_ratio_fixed_point": ("seed", np.asarray(ratio_inf), described(
                "||dW1|| / ||dW2|| = sqrt(2) alpha / (beta - beta0) at the flow's fixed point for the member's c/v and beta0")),
            "diverged_at": ("seed", r["diverged_at"]),
            "ode_ok": ("seed", r["ode_ok"].astype(np.int8)),
        },
        coords={"seed": np.arange(num_members),
                "time": ("time", time, {"long_name": "time t = step * lr of each record", "units": "tau = 1/lr"}),
                "step": ("time", np.round(time / config.lr).astype(np.int64), {"long_name": "gradient-descent step of each record", "units": "step"}),
                "neuron": ("neuron", np.arange(config.num_neurons), described("input-layer (tuning-curve) neuron i")),
                "preferred_deg": ("neuron", r["preferred"], {"long_name": "preferred orientation phi_i of neuron i", "units": "deg"}),
                # The per-member conditions, as coordinates on seed.
                "delta_deg": ("seed", deltas, {"long_name": "orientation difference delta between the two stimuli", "units": "deg"}),
                "c": ("seed", c, described("target size c (the stimuli map to +c and -c)")),
                "v": ("seed", v, described("task constant v = d . g+, d = g+ - g- (smaller for finer tasks)")),
                "c_over_v": ("seed", c_over_v, described("target size over task constant, c / v")),
                "beta0": ("seed", np.full(num_members, config.beta0), described("initial decision-layer strength beta0 (W2(0) = beta0 d^T)")),
                "lr": ("seed", np.full(num_members, config.lr), described("gradient-descent learning rate lr (tau = 1/lr)")),
                "sweep": ("seed", sweep, {"long_name": "the member's sweep: delta (orientation differences at target c) or target "
                                                       "(the coarsest task at each coarse target)"})},
        attrs={
            "time_units": "tau = 1/lr (time = step * lr)",
            "kappa": config.kappa,
            "theta0_deg": config.theta0,
            "flank_offset_deg": flank,
            "record_every": config.record_every,
            "ode_solver": "diffrax Tsit5, PIDController",
            "loss": "1/2 sum_mu (y_mu - W2 W1 x_mu)^2, full batch",
            "sweeps": "delta: the orientation differences at target c; target: the coarsest task at each coarse target",
        },
    )
    return ds, found, numbers


def _claims(config: SaxePrecisionConfig, r: dict) -> list:
    """The claims of saxe-precision from the analysed values ``r`` (see ``_analyse``)."""
    tol_source = "config.tolerance: gradient descent departs from gradient flow at first order in lr"
    precision = claims.source("Low precision tasks change only higher layer; High precision tasks change both layers", "poster, 'Dynamics of learning'")
    within = claims.source("Within layer: most informative neuron changes most; Task precision determines most informative neuron",
                           "poster, 'Dynamics of learning'")
    reduction = claims.source("Here we give an exact reduction to two variables", "poster, panel 'Exact reduction to two variables'")
    cv, ok = r["c_over_v"], r["ok"]
    s, l = r["smallest"], r["largest"]
    fine, coarse, deltas = r["fine"], r["coarse"], r["deltas"]
    return [
        claims.check("follows-ode", "gradient descent follows the alpha/beta ODE at every precision and target (max |sim - theory| / max(1, beta_final))",
                     r["max_dev"], "<", config.tolerance, kind="paper", source=reduction, threshold_source=tol_source),
        claims.check("coarse-limit-vanishes", f"low precision tasks change only the higher layer: as c/v -> 0 the change ratio ||dW1|| / ||dW2|| "
                     f"vanishes, ratio ~ (c/v)^p over the lowest decade ({r['n_low']} members, c/v from {cv[s]:.3g}; ratio there "
                     f"{r['ratio_sim'][s]:.3g}, theory {r['ratio_th'][s]:.3g}): fitted power p (simulation; theory {r['slope_th']:.3g})",
                     r["slope_sim"], ">", 0.5, kind="paper", source=precision,
                     threshold_source="halfway between a floor (p = 0: the lower layer keeps a share) and the linear vanishing the "
                                      "first integral gives for beta0 = 0 (p = 1)",
                     reading="'only the higher layer' is the limit c/v -> 0 of the ratio of the layers' Frobenius changes; a trend "
                             "toward 0 is read as a positive power law on the lowest decade of the sweep"),
        claims.check("ratio-rises-with-c-over-v", "the finer the task relative to its target, the larger the input layer's share: Spearman rho "
                     "of c/v against ||dW1|| / ||dW2|| over every member of both sweeps (simulation)",
                     r["rho"], ">", 0.99, kind="paper", source=precision, threshold_source="a monotone rising trend"),
        claims.check("fine-changes-both", f"high precision tasks change both layers: ||dW1|| / ||dW2|| at the largest c/v ({cv[l]:.3g}) "
                     f"(simulation; theory {r['ratio_th'][l]:.3g}; limit 1)", float(r["ratio_sim"][l]) if ok.any() else float("nan"), ">",
                     config.fine_ratio, kind="paper", source=precision, threshold_source="config.fine_ratio",
                     reading="'both layers' is the limit c/v -> infinity, where the ratio tends to 1 (beta/alpha -> sqrt(2))"),
        claims.check("ratio-matches", "across layers, simulation matches the ODE at the same time: largest |ratio_sim - ratio_theory|",
                     r["max_ratio_dev"], "<", config.tolerance, kind="extension", why="the reduction's layer changes beside the simulation's",
                     threshold_source=tol_source),
        claims.check("ratio-fixed-point", f"the final change ratio depends on c/v alone: the {r['n_converged']} converged members of both sweeps "
                     "lie on the fixed point's ratio (largest |ratio_sim - ratio_fixed_point|)", r["max_fixed_dev"], "<", config.tolerance,
                     kind="extension", why="the first integral and v beta (1 + 2 alpha) = c fix the end state by c/v and beta0 "
                                           "(jaxdyn.theory.saxe.final_alpha_beta), so a target sweep and a precision sweep are one sweep",
                     threshold_source=tol_source),
        claims.check("profile-matches", "within the input layer, each neuron changes by sqrt(2) alpha |g+_i - g-_i| (largest |sim - theory| over neurons "
                     "and times / the largest theory change, delta sweep)", r["profile_dev"], "<", config.tolerance, kind="sanity",
                     why="W1 - W1(0) = alpha [d, -d] on the reduction's family, so the profile is |d| by construction", threshold_source=tol_source),
        claims.check("fine-flank", f"fine task (delta = {deltas[fine]:g} deg): the most changed neuron is on the flank, {r['flank']:.3g} deg from the "
                     f"stimuli (|offset - flank| in deg, allowed: spacing + delta/2 = {r['fine_tol']:.3g})",
                     r["fine_flank_err"] if ok[fine] else float("nan"), "<=", r["fine_tol"], kind="paper", source=within,
                     threshold_source="one neuron spacing plus half the orientation difference"),
        claims.check("coarse-peak", f"coarse task (delta = {deltas[coarse]:g} deg): the most changed neuron is at a stimulus orientation, the tuning "
                     f"peak (distance in deg, allowed: one spacing {r['spacing']:.3g})", r["coarse_peak_err"] if ok[coarse] else float("nan"),
                     "<=", r["spacing"], kind="paper", source=within, threshold_source="one neuron spacing"),
        claims.check("profile-informativeness", "every task: the change profile follows the informativeness |g+_i - g-_i| (smallest Pearson r, delta sweep)",
                     r["min_corr"], ">", 0.999, kind="sanity", why="the within-layer profile is proportional to |g+ - g-| by construction",
                     threshold_source="proportional up to float32 rounding"),
    ]


def _figures(config: SaxePrecisionConfig, ds: xr.Dataset) -> dict:
    cv = ds["c_over_v"].values
    sweep = ds["sweep"].values
    fig, axes = plots.figure(1, 3, width=3.5, height=3.1)
    ax = axes[0, 0]
    markers = {"delta": "o", "target": "s"}
    for k, name in enumerate(("dW1", "dW2")):  # legend below: input layer, decision layer
        for sw in SWEEPS:
            members = np.flatnonzero(sweep == sw)
            order = members[np.argsort(cv[members])]
            ax.plot(cv[order], ds[f"{name}_theory"].values[order], color=plots.color(k), linestyle=plots.group_linestyle(SWEEPS.index(sw)))
            ax.plot(cv[order], ds[f"{name}_sim"].values[order], markers[sw], markerfacecolor="none", color=plots.color(k))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("c / v (small = coarse task or small target)")
    ax.set_ylabel("final ||W(T) - W(0)||_F\n(tuning-curve units, |g+| = 1)")
    ax.set_title("size of change per layer")
    first = plots.legend_groups(ax, ["input layer", "decision layer"], colors=[plots.color(0), plots.color(1)], loc="upper left", fontsize=6.5)
    ax.add_artist(first)
    plots.legend_groups(ax, ["delta sweep (theory, sim)", "target sweep (theory, sim)"], linestyles=["-", "--"], markers=["o", "s"],
                        loc="lower right", fontsize=6.5)
    ax = axes[0, 1]
    grid = np.geomspace(cv.min() / 1.5, cv.max() * 1.5, 300)
    a_inf, b_inf = saxe.final_alpha_beta(grid, config.beta0)
    ax.plot(grid, saxe.change_ratio(a_inf, b_inf, config.beta0), color=plots.color(2), label="fixed point of the ODE")
    plots.reference_line(ax, grid, grid / np.sqrt(2.0), label="c / (sqrt(2) v): the c/v -> 0 law")
    plots.reference_line(ax, grid, np.ones_like(grid), label="1: the c/v -> infinity limit", linestyle=":")
    for sw in SWEEPS:
        members = np.flatnonzero(sweep == sw)
        ratio = ds["dW1_sim"].values[members] / ds["dW2_sim"].values[members]
        ax.plot(cv[members], ratio, markers[sw], markerfacecolor="none", color=plots.color(2), label=f"simulation, {sw} sweep")
        ax.plot(cv[members], (ds["dW1_theory"] / ds["dW2_theory"]).values[members], "x", color="0.2", markersize=4,
                label="ODE at the same time" if sw == SWEEPS[0] else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(min(0.5 * grid.min() / np.sqrt(2.0), 0.5), 2.0)
    ax.set_xlabel("c / v (small = coarse task or small target)")
    ax.set_ylabel("||dW1|| / ||dW2|| (dimensionless)")
    ax.set_title("input layer's change relative\nto the decision layer's")
    ax.legend(loc="lower right", fontsize=6)
    ax = axes[0, 2]
    pref = ds["preferred_deg"].values
    deltas = ds["delta_deg"].values
    by_delta = np.flatnonzero(sweep == "delta")
    # Finest, an intermediate (closest to 30 deg) and coarsest task of the delta sweep.
    show = [by_delta[int(np.argmin(deltas[by_delta]))], by_delta[int(np.argmin(np.abs(deltas[by_delta] - 30.0)))],
            by_delta[int(np.argmax(deltas[by_delta]))]]
    for k, m in enumerate(dict.fromkeys(show)):
        th = ds["neuron_change_theory"].values[m, -1]
        sim = ds["neuron_change_sim"].values[m, -1]
        scale = th.max()
        ax.plot(pref, th / scale, color=plots.color(k + 3), label=f"delta = {deltas[m]:g} deg")
        ax.plot(pref, sim / scale, "o", markerfacecolor="none", color=plots.color(k + 3), markersize=2.5)
        for sgn in (1, -1):
            ax.axvline(config.theta0 + sgn * deltas[m] / 2, color=plots.color(k + 3), linestyle=":", linewidth=0.8)
    ax.set_xlabel("preferred orientation (deg)")
    ax.set_ylabel("||dW1[i, :]|| / its largest value (theory)")
    ax.set_title("within the input layer\n(dotted: stimulus orientations)")
    ax.legend(loc="upper right", fontsize=7)
    return {"precision": Figure(fig, "left: the final Frobenius change of each layer against c/v (theory lines, simulation markers; "
                                     "circles: the delta sweep, squares: the target sweep); middle: their ratio against c/v with the "
                                     "fixed point, the c/v -> 0 law and the limit 1; right: per-neuron input-layer change against "
                                     "preferred orientation")}


EXPERIMENT = Experiment(
    name="saxe-precision",
    work="Saxe",
    description="task precision: the layers' change ratio against c/v over decades (which layers change); within-layer change vs preferred orientation",
    config=SaxePrecisionConfig,
    run=run,
)
"""Registers ``jaxdyn run saxe-precision``: what task precision changes, across the layers (c/v over decades) and within the input layer."""
