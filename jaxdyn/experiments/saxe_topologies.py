"""saxe-topologies: parallel (shallow) and serial (deep) structure trained from one informativeness profile.

Source: Saxe, "A deep learning theory of perceptual learning dynamics" (two fundamental
topologies). Each seed draws one informativeness profile p_1 .. p_K (distinct values in
[profile_low, profile_high], in a random order), and both topologies train from it by
full-batch gradient descent in the shared engine:

- parallel, y = sum_j w_j x_j: input j carries the stimulus with strength p_j (x = p, one
  stimulus, target c), readout weights start equal at w0. Gradient flow moves each weight along
  its own input, so the closed form (``jaxdyn.theory.saxe.parallel_readout``) gives
  w_j(t) - w0 = p_j e0 (1 - e^{-|p|^2 t}) / |p|^2: the most informative input's weight changes most.
- serial, y = (prod_k w_k) x: a chain of K scalar layers whose initial gains are the profile,
  w_k(0) = p_k, input x = v, target c. The weights are coupled through the product: the chain ODE
  tau dw_l/dt = (c - v prod w) v prod_{k != l} w_k (``jaxdyn.theory.saxe.chain_vector_field``)
  conserves w_l^2 - w_k^2, so every layer's change is sqrt(p_l^2 + q(t)) - p_l with one shared
  q(t) > 0: the least informative layer changes most.

Time in units of tau = 1/lr for both.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.engine import Task, hparam, losses, observable, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.experiments.fields import GradientFlowTime
from jaxdyn.models.deep_linear import DeepLinear, params_from_matrices
from jaxdyn.tasks import full_batch
from jaxdyn.theory import saxe


@dataclasses.dataclass(frozen=True)
class SaxeTopologiesConfig(GradientFlowTime, Config):
    """Configuration of saxe-topologies. Members: one seed per informativeness profile, each trained in both topologies."""

    size: int = param(4, "length K of the profile: parallel inputs and serial layers", min=2, max=32)
    seeds: int = param(8, "profiles drawn (one per seed)", min=1, max=1024)
    profile_low: float = param(0.4, "smallest informativeness value", min=0.0, max=10.0, min_exclusive=True)
    profile_high: float = param(1.2, "largest informativeness value", min=0.0, max=10.0, min_exclusive=True)
    parallel_w0: float = param(0.0, "initial readout weight of every parallel input", min=-10.0, max=10.0)
    c: float = param(1.0, "target output", min=0.0, max=1e3, min_exclusive=True)
    v: float = param(1.0, "input strength of the serial chain", min=0.0, max=1e3, min_exclusive=True)
    lr: float = param(0.01, "gradient-descent learning rate (tau = 1/lr)", min=0.0, max=1.0, min_exclusive=True)
    duration: float = param(20.0, "training time in units of tau", min=0.0, max=1e4, min_exclusive=True)
    tolerance: float = param(2e-2, "largest |simulation - theory| (relative to the largest change) counted as agreement", min=0.0, max=1.0, min_exclusive=True)

    @classmethod
    def quick(cls) -> SaxeTopologiesConfig:
        return cls(size=3, seeds=3, lr=0.02, duration=12.0, record_every=10)

    def check(self) -> None:
        if not self.profile_low < self.profile_high:
            raise ConfigError(f"profile_low: must be below profile_high ({self.profile_high}), got {self.profile_low}")
        self.check_steps(2_000_000)
        if not self.parallel_w0 * self.profile_low * self.size < self.c:
            raise ConfigError(f"parallel_w0: the parallel readout must start below its target (w0 sum(p) < c); got w0 = {self.parallel_w0}")


def informativeness_profiles(config: SaxeTopologiesConfig) -> np.ndarray:
    """(seed, K) profiles: one value drawn uniformly in the middle half of each of K equal strata of
    [profile_low, profile_high] (so sorted neighbours differ by at least half a stratum, far above
    gradient descent's O(lr) error), in a random order per seed (numpy Generator seeded by the
    seed index)."""
    width = (config.profile_high - config.profile_low) / config.size
    out = np.empty((config.seeds, config.size))
    for i in range(config.seeds):
        rng = np.random.default_rng([20150, i])
        values = config.profile_low + width * (np.arange(config.size) + 0.25 + 0.5 * rng.random(config.size))
        out[i] = rng.permutation(values)
    return out


@observable(dims=("unit",), attrs={"long_name": "parallel readout weights w_j", "units": "1"})
def readout_weights(snap):
    """Observable (K,): the weights of a one-layer DeepLinear of widths (K, 1)."""
    return snap.params["layer_0"]["kernel"][:, 0]


@observable(dims=("unit",), attrs={"long_name": "serial layer gains w_k (1 = input layer)", "units": "1"})
def chain_gains(snap):
    """Observable (K,): the scalar gains of a DeepLinear of widths (1,) * (K + 1), input layer first."""
    names = sorted(snap.params, key=lambda k: int(k.split("_")[1]))
    return jnp.stack([snap.params[name]["kernel"][0, 0] for name in names])


def order_margin(key, values) -> np.ndarray:
    """Smallest relative gap of ``values`` taken in increasing order of ``key`` (positive where the
    values increase strictly with the key).

    Args:
        key: (K,) distinct.
        values: (K, ...) per-unit values.

    Returns:
        (...) min over adjacent pairs of (v_{i+1} - v_i) / (|v_i| + |v_{i+1}|).
    """
    order = np.argsort(key)
    v = np.asarray(values, np.float64)[order]
    lo, hi = v[:-1], v[1:]
    return np.min((hi - lo) / np.maximum(np.abs(lo) + np.abs(hi), 1e-30), axis=0)


def run(config: SaxeTopologiesConfig, ctx) -> Result:
    """Trains both topologies from every profile, with their theories beside them."""
    profiles = informativeness_profiles(config)
    n, k = profiles.shape
    lr = {"lr": np.full(n, config.lr, np.float32)}
    # Parallel: y = w . x, one stimulus x = p, target c; weights start at w0.
    w_par0 = np.full((n, k), config.parallel_w0)
    par_data = {"x": profiles[:, None, :].astype(np.float32), "y": np.full((n, 1, 1), config.c, np.float32)}
    par = ctx.train(
        DeepLinear(widths=(k, 1)), Task(init=None, batch=full_batch), optimizer("sgd", learning_rate=hparam("lr")),
        seeds=list(range(n)), num_steps=config.num_steps, loss=losses.half_squared_error_sum,
        observables={"readout": readout_weights}, record_every=config.record_every, hparams=lr,
        init_params=params_from_matrices([w_par0[:, None, :].astype(np.float32)]), data=par_data,
    )
    # Serial: y = (prod_k w_k) x, one stimulus x = v, target c; gains start at the profile.
    ser_data = {"x": np.full((n, 1, 1), config.v, np.float32), "y": np.full((n, 1, 1), config.c, np.float32)}
    ser = ctx.train(
        DeepLinear(widths=(1,) * (k + 1)), Task(init=None, batch=full_batch), optimizer("sgd", learning_rate=hparam("lr")),
        seeds=list(range(n)), num_steps=config.num_steps, loss=losses.half_squared_error_sum,
        observables={"gains": chain_gains}, record_every=config.record_every, hparams=lr,
        init_params=params_from_matrices([profiles[:, l, None, None].astype(np.float32) for l in range(k)]), data=ser_data,
    )
    ctx.stage("theory")
    time = par.record_steps * config.lr
    w_sim = par.records["readout"].astype(np.float64)  # (seed, time, K)
    b_sim = ser.records["gains"].astype(np.float64)
    w_th = saxe.parallel_readout(time, profiles, w_par0, config.c)
    ode = saxe.solve_chain(profiles, np.full(n, config.c), np.full(n, config.v), time, rtol=config.rtol, atol=config.rtol * 1e-2)
    b_th = np.asarray(ode.ys, dtype=np.float64)

    ctx.stage("analysis")
    ode_ok = np.asarray(ode.ok, bool)
    ok = (par.diverged_at < 0) & (ser.diverged_at < 0) & ode_ok
    dw_sim, dw_th = w_sim - w_par0[:, None, :], w_th - w_par0[:, None, :]
    db_sim, db_th = np.abs(b_sim - profiles[:, None, :]), np.abs(b_th - profiles[:, None, :])
    par_dev = np.max(np.abs(w_sim - w_th), axis=(1, 2)) / np.max(np.abs(dw_th), axis=(1, 2))
    ser_dev = np.max(np.abs(b_sim - b_th), axis=(1, 2)) / np.max(db_th, axis=(1, 2))
    # Orderings at every recorded t > 0: parallel changes rise with informativeness, serial fall.
    par_order = np.array([np.min(order_margin(profiles[i], dw_sim[i, 1:].T)) for i in range(n)])
    ser_order = np.array([np.min(order_margin(-profiles[i], db_sim[i, 1:].T)) for i in range(n)])
    par_order_th = np.array([np.min(order_margin(profiles[i], dw_th[i, 1:].T)) for i in range(n)])
    ser_order_th = np.array([np.min(order_margin(-profiles[i], db_th[i, 1:].T)) for i in range(n)])
    # Sanity: dw_j / p_j is one number per time (the shared error integral).
    per_unit = dw_sim[:, 1:] / profiles[:, None, :]
    spread = np.max((per_unit.max(-1) - per_unit.min(-1)) / np.abs(per_unit).max(-1), axis=1)
    q_sim = b_sim**2 - b_sim[..., :1] ** 2
    ser_drift = np.max(np.abs(q_sim - q_sim[:, :1]), axis=(1, 2))
    most_par = np.argmax(np.abs(dw_sim[:, -1]), -1) == np.argmax(profiles, -1)
    most_ser = np.argmax(db_sim[:, -1], -1) == np.argmin(profiles, -1)
    output_par = np.sum(w_sim[:, -1] * profiles, -1)
    output_ser = np.prod(b_sim[:, -1], -1) * config.v

    tol_source = "config.tolerance: gradient descent departs from gradient flow at first order in lr"
    topo = "poster, 'Two fundamental topologies'"
    order_source = "the statement itself: a strict ordering (margins relative to the pair's size)"
    zeros = np.zeros(n)  # every change is 0 at initialisation: no ordering to speak of
    found = [
        claims.per_seed("parallel-most-informative", f"parallel structure: the most informative input's weight changes most, and every "
                        f"weight's change is ordered as its input's informativeness at every recorded t > 0 ({int(most_par[ok].sum())}/"
                        f"{int(ok.sum())} seeds have the largest change on the most informative input; per seed: smallest relative gap "
                        f"between adjacent inputs; theory {np.min(par_order_th[ok]) if ok.any() else float('nan'):.3g} at worst; largest "
                        f"spread of dw_j / p_j {float(np.max(spread[ok])) if ok.any() else float('nan'):.2g})",
                        par_order, ">", 0.0, kind="sanity", include=ok, initial=zeros,
                        why="the poster's parallel statement ('Most informative neuron changes most'), true by construction here: the "
                            "gradient on w_j is the shared error times p_j, so dw_j / p_j is one number (shown apart from the paper's claims)",
                        threshold_source=order_source),
        claims.per_seed("serial-least-informative", f"serial structure: the least informative layer changes most, and every layer's change "
                        f"is ordered against its initial gain at every recorded t > 0 ({int(most_ser[ok].sum())}/{int(ok.sum())} seeds have "
                        f"the largest change in the least informative layer; per seed: smallest relative gap between adjacent layers; theory "
                        f"{np.min(ser_order_th[ok]) if ok.any() else float('nan'):.3g} at worst)",
                        ser_order, ">", 0.0, kind="paper", include=ok, initial=zeros,
                        source=claims.source("Serial/Deep: y = (prod w_k) x. Weights are coupled. Least informative layer changes most", topo),
                        threshold_source=order_source,
                        reading="a layer's informativeness is its initial gain w_k(0) = p_k (how much of the stimulus it passes on)"),
        claims.per_seed("parallel-closed-form", "parallel: gradient descent follows the closed form w(t) = w0 + p e0 (1 - e^{-|p|^2 t}) / |p|^2 "
                        "(per seed: max |w_sim - w_theory| / the largest theory change)", par_dev, "<", config.tolerance, kind="extension",
                        include=ok, why="the parallel case's exact solution beside the simulation", threshold_source=tol_source),
        claims.per_seed("serial-chain-ode", "serial: gradient descent follows the chain ODE tau dw_l/dt = (c - v prod w) v prod_{k != l} w_k "
                        "(per seed: max |w_sim - w_theory| / the largest theory change)", ser_dev, "<", config.tolerance, kind="extension",
                        include=ok, why="the serial case's reduced dynamics beside the simulation (jaxdyn.theory.saxe.solve_chain)",
                        threshold_source=tol_source),
        claims.per_seed("serial-conserved", "serial: w_l^2 - w_1^2 is conserved (per seed: largest drift in simulation)", ser_drift, "<",
                        config.tolerance, kind="extension", include=ok,
                        why="the first integral that makes the least informative layer change most (chain_layer_change)",
                        threshold_source=tol_source),
    ]
    numbers = {
        "seeds": n,
        "diverged_members_parallel": int((par.diverged_at >= 0).sum()),
        "diverged_members_serial": int((ser.diverged_at >= 0).sum()),
        "ode_failures": [int(i) for i in np.flatnonzero(~ode_ok)],
        "num_steps": config.num_steps,
        "max_rel_deviation_parallel": float(np.max(par_dev[ok])) if ok.any() else float("nan"),
        "max_rel_deviation_serial": float(np.max(ser_dev[ok])) if ok.any() else float("nan"),
        "parallel_order_margin": par_order.tolist(),
        "serial_order_margin": ser_order.tolist(),
        "parallel_order_margin_theory": par_order_th.tolist(),
        "serial_order_margin_theory": ser_order_th.tolist(),
        "seeds_largest_change_most_informative_parallel": int(most_par[ok].sum()),
        "parallel_max_spread_dw_over_p": float(np.max(spread[ok])) if ok.any() else float("nan"),
        "seeds_largest_change_least_informative_serial": int(most_ser[ok].sum()),
        "max_final_output_error_parallel": float(np.max(np.abs(output_par - config.c)[ok])) if ok.any() else float("nan"),
        "max_final_output_error_serial": float(np.max(np.abs(output_ser - config.c)[ok])) if ok.any() else float("nan"),
    }

    def described(long_name):  # weights, gains and the profile are dimensionless
        return {"long_name": long_name, "units": "1"}

    ds = xr.Dataset(
        {
            "informativeness": (("seed", "unit"), profiles, described("profile p: parallel input strengths and serial initial gains")),
            "parallel_w_sim": (("seed", "time", "unit"), w_sim, described("parallel readout weights w_j, gradient descent")),
            "parallel_w_theory": (("seed", "time", "unit"), w_th, described(
                "parallel readout weights w_j, closed form w0 + p_j e0 (1 - e^{-|p|^2 t}) / |p|^2, e0 = c - w0 . p")),
            "parallel_w_initial": (("seed", "unit"), w_par0, described("initial parallel readout weights w_j(0) = w0")),
            "parallel_x": (("seed", "unit"), profiles, described("the parallel net's one stimulus x = p")),
            "serial_w_sim": (("seed", "time", "unit"), b_sim, described("serial layer gains w_k (1 = input layer), gradient descent")),
            "serial_w_theory": (("seed", "time", "unit"), b_th, described(
                "serial layer gains w_k (1 = input layer), chain ODE (diffrax) from w_k(0) = p_k")),
            "serial_w_initial": (("seed", "unit"), profiles, described("initial serial layer gains w_k(0) = p_k")),
            "parallel_diverged_at": ("seed", par.diverged_at, {
                "long_name": "first step whose update was non-finite, parallel net (-1: none)", "units": "step"}),
            "serial_diverged_at": ("seed", ser.diverged_at, {
                "long_name": "first step whose update was non-finite, serial net (-1: none)", "units": "step"}),
            "diverged_at": ("seed", np.where(par.diverged_at >= 0, par.diverged_at, ser.diverged_at)),
            "ode_ok": ("seed", ode_ok.astype(np.int8)),
            "ode_message": ("seed", np.asarray(ode.message, dtype=str)),
        },
        coords={"seed": np.arange(n),
                "time": ("time", time, {"long_name": "time t = step * lr of each record", "units": "tau = 1/lr"}),
                "step": ("time", par.record_steps, {"long_name": "gradient-descent step of each record (both nets)", "units": "step"}),
                "unit": ("unit", np.arange(1, k + 1), described("profile entry: parallel input j, serial layer k (1 = input layer)")),
                "c": ("seed", np.full(n, config.c), described("target output c of both nets")),
                "v": ("seed", np.full(n, config.v), described("input strength v of the serial chain (its one stimulus x = v)")),
                "lr": ("seed", np.full(n, config.lr), described("gradient-descent learning rate lr (tau = 1/lr), both nets"))},
        attrs={
            "time_units": "tau = 1/lr (time = step * lr)",
            "parallel": "y = sum_j w_j x_j, one stimulus x = p, target c, loss 1/2 (c - y)^2",
            "serial": "y = (prod_k w_k) x, one stimulus x = v, target c, loss 1/2 (c - y)^2; unit 1 = input layer",
            "record_every": config.record_every,
            "ode_solver": "diffrax Tsit5, PIDController",
            "ode_rtol": config.rtol,
        },
    )
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(config, ds), numbers=numbers)


def _figures(config: SaxeTopologiesConfig, ds: xr.Dataset) -> dict:
    time = ds["time"].values
    p = ds["informativeness"].values
    fig, axes = plots.figure(1, 3, width=3.3, height=3.0)
    m = 0
    rank = np.argsort(np.argsort(p[m]))  # colour by informativeness rank: same colour = same profile value
    for j in range(p.shape[1]):
        col = plots.color(rank[j])
        plots.theory_and_simulation(axes[0, 0], time, ds["parallel_w_theory"].values[m, :, j] - ds["parallel_w_initial"].values[m, j],
                                    ds["parallel_w_sim"].values[m, :, j] - ds["parallel_w_initial"].values[m, j], color=col)
        plots.theory_and_simulation(axes[0, 1], time, np.abs(ds["serial_w_theory"].values[m, :, j] - p[m, j]),
                                    np.abs(ds["serial_w_sim"].values[m, :, j] - p[m, j]), color=col)
    for ax, title in ((axes[0, 0], "parallel: y = sum_j w_j x_j"), (axes[0, 1], "serial: y = (prod_k w_k) x")):
        ax.set_xlabel("time (units of tau)")
        ax.set_title(f"{title}, seed {m}")
    axes[0, 0].set_ylabel("change |w(t) - w(0)|")
    plots.legend_groups(axes[0, 1], [f"p = {p[m, j]:.2f}" for j in np.argsort(p[m])], colors=[plots.color(r) for r in range(p.shape[1])],
                        title="informativeness", loc="lower right", fontsize=6.5)
    plots.legend_theory_simulation(axes[0, 0])
    ax = axes[0, 2]
    for name, k, label in (("parallel", 0, "parallel"), ("serial", 3, "serial")):
        th = np.abs(ds[f"{name}_w_theory"].values[:, -1] - ds[f"{name}_w_initial"].values)
        sim = np.abs(ds[f"{name}_w_sim"].values[:, -1] - ds[f"{name}_w_initial"].values)
        for i in range(p.shape[0]):
            order = np.argsort(p[i])
            ax.plot(p[i, order], th[i, order], color=plots.color(k), linewidth=0.8, alpha=0.7)
        ax.plot(p.ravel(), sim.ravel(), "o", markerfacecolor="none", color=plots.color(k), label=f"{label} (simulation; lines: theory)")
    ax.set_xlabel("informativeness p")
    ax.set_ylabel(f"final change |w(T) - w(0)|, T = {time[-1]:g} tau")
    ax.set_title("same profile, opposite orderings")
    ax.legend(loc="center left", fontsize=6.5)
    return {"topologies": Figure(fig, "left, middle: the change of every weight over time for one profile (colour: informativeness, "
                                      "theory lines, simulation markers); right: final change against informativeness for every seed, "
                                      "parallel rising, serial falling")}


EXPERIMENT = Experiment(
    name="saxe-topologies",
    work="Saxe",
    description="parallel y = sum w_j x_j vs serial y = (prod w_k) x from one informativeness profile: most informative neuron vs least informative layer",
    config=SaxeTopologiesConfig,
    run=run,
)
"""Registers ``jaxdyn run saxe-topologies``: parallel against serial linear topologies from one informativeness profile."""
