"""saxe-transfer: training at one position, testing at others (pooling-based invariance).

Source: Saxe, "A deep learning theory of perceptual learning dynamics" (transfer to untrained
stimuli; dynamics of transfer after restricted-position training). The input layer is
replicated at P positions: copy p maps the stimulus shown there to tuning-curve responses,
W1^(p) (N x 2), all starting at [g+ g-]. A fixed pooling stage sums the copies into K pooled
copies of every neuron with Gaussian profiles c_p (unit K-vectors,
``jaxdyn.tasks.perceptual.pooling_profiles``), and one decision layer W2 (N x K) reads them:

    y = sum_{i,k} W2[i, k] sum_p c_p[k] (W1^(p) x_p)_i.

Position p's effective decision vector is W2 c_p. W2 starts at beta0 d ubar^T with
ubar = sum_p c_p / |sum_p c_p|, so beta_p(0) = beta0 ubar . c_p. Training (full-batch gradient
descent, shared engine) uses the two stimuli at position a only.

Theory (``jaxdyn.theory.saxe.transferred_beta``): the trained position follows the alpha/beta ODE
from beta_a(0); an untrained position p keeps its input layer (no input there, no gradient) and
its decision strength moves by the overlap: beta_p(t) = beta_p(0) + (c_a . c_p)(beta_a(t) -
beta_a(0)). Margins (half the output difference between the stimuli): trained
v beta_a (1 + 2 alpha_a), untrained v beta_p. The sweep covers pooling widths (overlaps) and a
coarse and a fine task (coarse tasks transfer better: more of their learning is in W2).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.engine import Task, losses
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.tasks import full_batch
from jaxdyn.tasks.perceptual import discrimination_task, pooling_profiles, position_stimuli
from jaxdyn.theory import saxe


class PooledDiscriminator(nn.Module):
    """Input layer replicated at P positions, fixed pooling, one linear decision layer.

    Params: ``input`` (P, N, 2) = W1^(p) per position (math layout, out x in); ``pool`` (K, P)
    with column p = c_p (held fixed by the optimizer); ``decision`` (N, K) = W2.
    Input x: (B, P, 2), the stimulus one-hot at its position. Output: (B, 1).
    """

    num_positions: int
    num_neurons: int
    num_pool: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train
        w_in = self.param("input", nn.initializers.zeros, (self.num_positions, self.num_neurons, 2))
        pool = self.param("pool", nn.initializers.zeros, (self.num_pool, self.num_positions))
        w_dec = self.param("decision", nn.initializers.zeros, (self.num_neurons, self.num_pool))
        h = jnp.einsum("pis,bps->bpi", w_in, x)
        z = jnp.einsum("kp,bpi->bik", pool, h)
        return jnp.einsum("ik,bik->b", w_dec, z)[:, None]


def frozen_pooling_sgd(h):
    """SGD on the input and decision layers; the pooling stage is fixed (zero updates)."""
    return optax.multi_transform(
        {"sgd": optax.sgd(h["lr"]), "frozen": optax.set_to_zero()},
        {"input": "sgd", "pool": "frozen", "decision": "sgd"},
    )


@dataclasses.dataclass(frozen=True)
class SaxeTransferConfig(Config):
    """Configuration of saxe-transfer. Members are all (pooling width, delta) pairs."""

    num_neurons: int = param(32, "tuning-curve neurons N per position", min=2, max=100_000)
    num_positions: int = param(5, "stimulus positions P", min=2, max=64)
    num_pool: int = param(5, "pooling units K", min=1, max=1024)
    trained_position: int = param(0, "the position trained on (0 .. P-1)", min=0, max=63)
    pool_widths: tuple[float, ...] = param((0.5, 1.0, 2.0, 4.0), "pooling widths in units of the position spacing (larger = more overlap)", min=0.0, max=1e3, min_exclusive=True, max_len=32)
    deltas: tuple[float, ...] = param((90.0, 5.0), "orientation differences (deg): a coarse and a fine task", min=0.0, max=90.0, min_exclusive=True, max_len=16)
    beta0: float = param(0.1, "initial decision strength scale (beta_p(0) = beta0 ubar . c_p)", min=0.0, max=100.0)
    c: float = param(0.5, "target size: the stimuli map to +c and -c", min=0.0, max=1e3, min_exclusive=True)
    kappa: float = param(2.0, "von Mises concentration of the tuning curves", min=0.0, max=1e3, min_exclusive=True)
    theta0: float = param(45.0, "reference orientation (deg)", min=0.0, max=180.0)
    lr: float = param(0.005, "gradient-descent learning rate (tau = 1/lr)", min=0.0, max=1.0, min_exclusive=True)
    duration: float = param(10.0, "training time in units of tau", min=0.0, max=1e4, min_exclusive=True)
    record_every: int = param(10, "steps between records", min=1, max=1_000_000)
    rtol: float = param(1e-7, "relative tolerance of the ODE solver", min=0.0, max=1e-2, min_exclusive=True)
    tolerance: float = param(2e-2, "largest |simulation - theory| counted as agreement (see the claims)", min=0.0, max=1.0, min_exclusive=True)

    @classmethod
    def quick(cls) -> SaxeTransferConfig:
        return cls(num_neurons=16, num_positions=3, num_pool=3, pool_widths=(0.7, 2.0), deltas=(90.0, 8.0), lr=0.01, duration=8.0)

    @property
    def num_steps(self) -> int:
        return self.record_every * max(1, round(self.duration / (self.lr * self.record_every)))

    def check(self) -> None:
        if self.trained_position >= self.num_positions:
            raise ConfigError(f"trained_position: must be below num_positions ({self.num_positions}), got {self.trained_position}")
        if len(set(self.pool_widths)) != len(self.pool_widths):
            raise ConfigError(f"pool_widths: values must be distinct, got {self.pool_widths}")
        if len(set(self.deltas)) != len(self.deltas):
            raise ConfigError(f"deltas: values must be distinct, got {self.deltas}")
        if self.duration / self.lr > 5_000_000:
            raise ConfigError(f"duration: {self.duration} / lr {self.lr} asks for over 5,000,000 steps; raise lr or shorten duration")


def position_readout(snap):
    """Observable (4, P): per position p, the margin (y(+) - y(-)) / 2, the input-layer change
    ||W1^(p) - [g+ g-]||, alpha_p = (W1^(p)[:, 0] - g+) . d / |d|^2 and beta_p = (W2 c_p) . d / |d|^2."""
    g_plus, g_minus = snap.data["g_plus"], snap.data["g_minus"]
    d = g_plus - g_minus
    dd = d @ d
    probe = snap.data["probe"]  # (P * 2, P, 2): stimulus + then - at each position
    out = snap.apply(snap.params, probe)[:, 0].reshape(-1, 2)
    margin = (out[:, 0] - out[:, 1]) / 2.0
    w_in = snap.params["input"]  # (P, N, 2)
    w0 = jnp.stack([g_plus, g_minus], axis=-1)
    change = jnp.sqrt(jnp.sum((w_in - w0[None]) ** 2, axis=(1, 2)))
    alpha = (w_in[:, :, 0] - g_plus[None]) @ d / dd
    beta = d @ (snap.params["decision"] @ snap.params["pool"]) / dd
    return jnp.stack([margin, change, alpha, beta])


def run(config: SaxeTransferConfig, ctx) -> Result:
    """Trains at one position, integrates the reduced dynamics, and compares every position."""
    widths, deltas = np.meshgrid(np.asarray(config.pool_widths), np.asarray(config.deltas), indexing="ij")
    widths, deltas = widths.ravel(), deltas.ravel()
    num_members = len(widths)
    P, N, K, a = config.num_positions, config.num_neurons, config.num_pool, config.trained_position
    tasks = [discrimination_task(N, dl, theta0_deg=config.theta0, kappa=config.kappa, c=config.c) for dl in deltas]
    profiles = np.stack([pooling_profiles(P, w, num_pool=K) for w in widths])  # (member, P, K)
    overlap = np.einsum("mk,mpk->mp", profiles[:, a], profiles)  # c_a . c_p
    ubar = profiles.sum(1)
    ubar /= np.linalg.norm(ubar, axis=1, keepdims=True)
    beta_init = config.beta0 * np.einsum("mk,mpk->mp", ubar, profiles)  # beta_p(0)
    g_plus = np.stack([t.g_plus for t in tasks])
    g_minus = np.stack([t.g_minus for t in tasks])
    d = g_plus - g_minus
    v = np.array([t.v for t in tasks])
    stimuli = position_stimuli(P)  # (P, 2, P, 2)
    init_params = {
        "input": np.broadcast_to(np.stack([g_plus, g_minus], -1)[:, None], (num_members, P, N, 2)).astype(np.float32).copy(),
        "pool": np.swapaxes(profiles, 1, 2).astype(np.float32),  # (member, K, P)
        "decision": (config.beta0 * d[:, :, None] * ubar[:, None, :]).astype(np.float32),  # (member, N, K)
    }
    data = {
        "x": np.broadcast_to(stimuli[a], (num_members, 2, P, 2)).astype(np.float32).copy(),
        "y": np.broadcast_to(np.array([[config.c], [-config.c]]), (num_members, 2, 1)).astype(np.float32).copy(),
        "probe": np.broadcast_to(stimuli.reshape(P * 2, P, 2), (num_members, P * 2, P, 2)).astype(np.float32).copy(),
        "g_plus": g_plus.astype(np.float32),
        "g_minus": g_minus.astype(np.float32),
    }
    result = ctx.train(
        PooledDiscriminator(num_positions=P, num_neurons=N, num_pool=K),
        Task(init=None, batch=full_batch),
        frozen_pooling_sgd,  # a module-level function of the member's hparams: hashable, compiled once
        seeds=list(range(num_members)),
        num_steps=config.num_steps,
        loss=losses.half_squared_error_sum,
        observables={"positions": position_readout},
        record_every=config.record_every,
        hparams={"lr": np.full(num_members, config.lr, np.float32)},
        init_params=init_params,
        data=data,
    )
    ctx.stage("theory")
    rec = result.records["positions"].astype(np.float64)  # (member, time, 4, P)
    time = result.record_steps * config.lr
    ode = saxe.solve_alpha_beta(beta_init[:, a], np.full(num_members, config.c), v, time, rtol=config.rtol, atol=config.rtol * 1e-2)
    alpha_a, beta_a = (np.asarray(y, dtype=np.float64) for y in ode.ys)  # (member, time)
    beta_th = np.asarray(saxe.transferred_beta(beta_a[:, :, None], beta_init[:, None, a:a + 1], beta_init[:, None, :], overlap[:, None, :]), dtype=np.float64)
    alpha_th = np.zeros_like(beta_th)
    alpha_th[:, :, a] = alpha_a
    margin_th = v[:, None, None] * beta_th * (1.0 + 2.0 * alpha_th)
    change_th = 2.0 * np.sqrt(v)[:, None, None] * np.abs(alpha_th)  # ||alpha [d, -d]|| = 2 sqrt(v) |alpha|
    ctx.stage("analysis")
    dataset, found, numbers = _analyse(config, dict(
        widths=widths, deltas=deltas, v=v, overlap=overlap, beta_init=beta_init, time=time,
        margin_sim=rec[:, :, 0], change_sim=rec[:, :, 1], alpha_sim=rec[:, :, 2], beta_sim=rec[:, :, 3],
        margin_th=margin_th, change_th=change_th, alpha_th=alpha_th, beta_th=beta_th,
        diverged_at=result.diverged_at, ode_ok=np.asarray(ode.ok), profiles=profiles, init_params=init_params, data=data,
    ))
    ctx.stage("figures")
    return Result(dataset=dataset, claims=found, figures=_figures(config, dataset), numbers=numbers)


def _analyse(config: SaxeTransferConfig, r: dict):
    a = config.trained_position
    widths, deltas, v, overlap, time = r["widths"], r["deltas"], r["v"], r["overlap"], r["time"]
    num_members, P = overlap.shape
    ok = (r["diverged_at"] < 0) & r["ode_ok"]
    untrained = np.arange(P) != a

    def worst(x):
        return float(np.max(x[ok])) if ok.any() else float("nan")

    scale = np.maximum(np.abs(r["beta_th"][:, -1, a]), 1.0)
    dev_trained = np.maximum(np.abs(r["alpha_sim"][:, :, a] - r["alpha_th"][:, :, a]), np.abs(r["beta_sim"][:, :, a] - r["beta_th"][:, :, a])).max(1) / scale
    dev_beta_untrained = np.abs(r["beta_sim"][:, :, untrained] - r["beta_th"][:, :, untrained]).max((1, 2)) / scale
    dev_margin = np.abs(r["margin_sim"] - r["margin_th"]).max((1, 2)) / config.c
    max_untrained_change = worst(r["change_sim"][:, :, untrained].max((1, 2)))
    # The transfer factor dbeta_p / dbeta_a, once the trained change is under way, vs c_a . c_p.
    dbeta = r["beta_sim"] - r["beta_sim"][:, :1]
    started = dbeta[:, :, a] > 1e-2 * np.abs(dbeta[:, -1:, a])
    factor = dbeta / np.where(started, dbeta[:, :, a], np.nan)[:, :, None]
    factor_dev = np.nanmax(np.abs(factor[:, :, untrained] - overlap[:, None, untrained]), axis=(1, 2))
    final_factor = dbeta[:, -1] / dbeta[:, -1, a:a + 1]
    # Transfer of the margin gain: (m_p(T) - m_p(0)) / (m_a(T) - m_a(0)), coarse vs fine.
    gain_sim = (r["margin_sim"][:, -1] - r["margin_sim"][:, 0]) / (r["margin_sim"][:, -1, a] - r["margin_sim"][:, 0, a])[:, None]
    gain_th = (r["margin_th"][:, -1] - r["margin_th"][:, 0]) / (r["margin_th"][:, -1, a] - r["margin_th"][:, 0, a])[:, None]
    coarse_d, fine_d = float(np.max(deltas)), float(np.min(deltas))
    comparisons, better = 0, 0
    min_advantage = np.inf
    if coarse_d != fine_d:
        for w in np.unique(widths):
            mc = np.flatnonzero((widths == w) & (deltas == coarse_d))[0]
            mf = np.flatnonzero((widths == w) & (deltas == fine_d))[0]
            if not (ok[mc] and ok[mf]):
                continue
            for p in np.flatnonzero(untrained & (overlap[mc] > 0.05)):
                comparisons += 1
                better += int(gain_sim[mc, p] > gain_sim[mf, p])
                min_advantage = min(min_advantage, float(gain_sim[mc, p] - gain_sim[mf, p]))
    min_advantage = float(min_advantage) if comparisons else float("nan")

    tol = config.tolerance
    tol_source = "config.tolerance: gradient descent departs from gradient flow at first order in lr"
    same = claims.source("Restricted training at one location has identical reduced dynamics", "poster, 'Dynamics of transfer after restricted-position training'")
    transfers = claims.source("Decision layer strength transfers, reduced by a constant factor c_a^T c_b < 1",
                              "poster, 'Dynamics of transfer after restricted-position training'")
    found = [
        claims.check("trained-follows-ode", "the trained position follows the alpha/beta ODE (max |sim - theory| over alpha, beta, times / max(1, beta_final))",
                     worst(dev_trained), "<", tol, kind="paper", source=same, threshold_source=tol_source),
        claims.check("untrained-beta", "untrained positions: the decision strength follows beta_p(0) + (c_a . c_p)(beta_a(t) - beta_a(0)) "
                     "(max |sim - theory| / max(1, beta_a final))", worst(dev_beta_untrained), "<", tol, kind="paper", source=transfers,
                     threshold_source=tol_source),
        claims.check("transfer-factor", "the transfer factor dbeta_p / dbeta_a equals the pooling overlap c_a . c_p at every time (largest |factor - overlap|)",
                     worst(factor_dev), "<", tol, kind="sanity", why="W2 moves only along (.) c_a^T, so the factor is the overlap by construction",
                     threshold_source=tol_source),
        claims.check("untrained-input-unchanged", "the input layer at untrained positions does not change (largest ||W1^(p)(t) - W1^(p)(0)||)",
                     max_untrained_change, "<", 1e-6, kind="sanity", why="the poster's 'Input layer strength does not transfer', true by construction: no input reaches an untrained "
                         "position, so its gradient is exactly 0",
                     threshold_source="exact zero up to float32 rounding"),
        claims.check("margins-match", "decision margins at every position, trained and untrained, match the theory (max |sim - theory| / c)",
                     worst(dev_margin), "<", tol, kind="paper", source=transfers, threshold_source=tol_source),
        claims.check("coarse-transfers-better", f"coarse tasks transfer better: margin-gain transfer of delta = {coarse_d:g} deg exceeds delta = {fine_d:g} "
                     f"deg at every untrained position with overlap > 0.05 ({better}/{comparisons}; smallest advantage)",
                     min_advantage, ">", 0.0, kind="paper",
                     source=claims.source("coarse tasks transfer better than precision tasks (Ahissar & Hochstein, 1997)", "poster, 'Conclusions: Synthesis'"),
                     threshold_source="the statement itself (a strict advantage)"),
    ]
    numbers = {
        "members": num_members,
        "diverged_members": int((r["diverged_at"] >= 0).sum()),
        "ode_failures": [int(i) for i in np.flatnonzero(~r["ode_ok"])],
        "num_steps": config.num_steps,
        "max_abs_deviation": float(max(worst(np.abs(r["margin_sim"] - r["margin_th"]).max((1, 2))), worst(np.abs(r["beta_sim"] - r["beta_th"]).max((1, 2))))),
        "max_rel_deviation_trained": worst(dev_trained),
        "max_rel_deviation_untrained_beta": worst(dev_beta_untrained),
        "max_transfer_factor_deviation": worst(factor_dev),
        "max_untrained_input_change": max_untrained_change,
        "max_margin_deviation_over_c": worst(dev_margin),
        "overlap": overlap.tolist(),
        "final_transfer_factor_sim": final_factor.tolist(),
        "margin_gain_transfer_sim": gain_sim.tolist(),
        "margin_gain_transfer_theory": gain_th.tolist(),
        "coarse_transfers_better": f"{better}/{comparisons}",
    }
    def described(long_name):  # margins, strengths, overlaps and weights are dimensionless
        return {"long_name": long_name, "units": "1"}

    ds = xr.Dataset(
        {
            "margin_sim": (("seed", "time", "position"), r["margin_sim"], described(
                "decision margin (y(+) - y(-)) / 2 of the two stimuli shown at position p, gradient descent")),
            "margin_theory": (("seed", "time", "position"), r["margin_th"], described(
                "decision margin v beta_p (1 + 2 alpha_p) at position p (alpha_p = 0 where untrained), reduced theory")),
            "beta_sim": (("seed", "time", "position"), r["beta_sim"], described(
                "decision strength beta_p = (W2 c_p) . d / |d|^2 at position p, gradient descent")),
            "beta_theory": (("seed", "time", "position"), r["beta_th"], described(
                "decision strength beta_p(0) + (c_a . c_p)(beta_a(t) - beta_a(0)), beta_a from the alpha/beta ODE (= beta_a at p = a)")),
            "alpha_sim": (("seed", "time", "position"), r["alpha_sim"], described(
                "input-layer change alpha_p = (W1^(p)[:, 0] - g+) . d / |d|^2 at position p, gradient descent")),
            "alpha_theory": (("seed", "time", "position"), r["alpha_th"], described(
                "input-layer change alpha_p: the alpha/beta ODE at the trained position, 0 at untrained positions")),
            "input_change_sim": (("seed", "time", "position"), r["change_sim"], described(
                "input-layer change ||W1^(p)(t) - [g+ g-]||_F at position p, gradient descent")),
            "input_change_theory": (("seed", "time", "position"), r["change_th"], described(
                "input-layer change ||alpha_p [d, -d]||_F = 2 sqrt(v) |alpha_p| at position p, reduced theory")),
            "overlap": (("seed", "position"), overlap, described("pooling overlap c_a . c_p of position p with the trained position a")),
            "beta_init": (("seed", "position"), r["beta_init"], described("initial decision strength beta_p(0) = beta0 ubar . c_p")),
            "pooling_profile": (("seed", "position", "pool"), r["profiles"], described(
                "Gaussian pooling profile c_p of position p over the pooling units (unit vector)")),
            "margin_gain_transfer_sim": (("seed", "position"), gain_sim, described(
                "margin-gain transfer (m_p(T) - m_p(0)) / (m_a(T) - m_a(0)), gradient descent (1 at the trained position)")),
            "margin_gain_transfer_theory": (("seed", "position"), gain_th, described(
                "margin-gain transfer (m_p(T) - m_p(0)) / (m_a(T) - m_a(0)), reduced theory (1 at the trained position)")),
            "W1_initial": (("seed", "position", "neuron", "stimulus"), r["init_params"]["input"],
                           described("initial input layer W1^(p)(0) = [g+ g-] per position (math layout, out x in)")),
            "pooling_stage": (("seed", "pool", "position"), r["init_params"]["pool"], described("fixed pooling stage, column p = c_p")),
            "W2_initial": (("seed", "neuron", "pool"), r["init_params"]["decision"], described(
                "initial decision layer W2(0) = beta0 d ubar^T (neuron x pooling unit)")),
            "x": (("seed", "stimulus", "position", "input"), r["data"]["x"], described(
                "training inputs: the two stimuli (one-hot) at the trained position")),
            "y": (("seed", "stimulus", "output"), r["data"]["y"], described("targets y: +c for the + stimulus, -c for the -")),
            "g_plus": (("seed", "neuron"), r["data"]["g_plus"], described(
                "tuning-curve responses g+ to the + stimulus (von Mises, population scaled to unit norm)")),
            "g_minus": (("seed", "neuron"), r["data"]["g_minus"], described(
                "tuning-curve responses g- to the - stimulus (von Mises, same scale as g+)")),
            "diverged_at": ("seed", r["diverged_at"]),
            "ode_ok": ("seed", r["ode_ok"].astype(np.int8)),
        },
        coords={"seed": np.arange(num_members),
                "time": ("time", time, {"long_name": "time t = step * lr of each record", "units": "tau = 1/lr"}),
                "step": ("time", np.round(time / config.lr).astype(np.int64), {"long_name": "gradient-descent step of each record", "units": "step"}),
                # The per-member conditions, as coordinates on seed.
                "pool_width": ("seed", widths, described("Gaussian pooling width, in units of the position spacing")),
                "delta_deg": ("seed", deltas, {"long_name": "orientation difference delta between the two stimuli", "units": "deg"}),
                "v": ("seed", v, described("task constant v = d . g+, d = g+ - g- (smaller for finer tasks)")),
                "c": ("seed", np.full(num_members, config.c), described("target size c (the stimuli map to +c and -c)")),
                "lr": ("seed", np.full(num_members, config.lr), described("gradient-descent learning rate lr (tau = 1/lr)")),
                "beta0": ("seed", np.full(num_members, config.beta0), described(
                    "initial decision strength scale beta0 (beta_p(0) = beta0 ubar . c_p)")),
                "position": ("position", np.arange(P), described("stimulus position p (its input-layer copy W1^(p))")),
                "pool": ("pool", np.arange(r["profiles"].shape[-1]), described("pooling unit k"))},
        attrs={
            "time_units": "tau = 1/lr (time = step * lr)",
            "trained_position": a,
            "num_neurons": config.num_neurons,
            "kappa": config.kappa,
            "theta0_deg": config.theta0,
            "beta0": config.beta0,
            "margin": "(y(stimulus +) - y(stimulus -)) / 2 at each position",
            "loss": "1/2 sum over the two stimuli at the trained position of (y - target)^2",
        },
    )
    return ds, found, numbers


def _figures(config: SaxeTransferConfig, ds: xr.Dataset) -> dict:
    a = config.trained_position
    time = ds["time"].values
    widths = list(dict.fromkeys(ds["pool_width"].values.tolist()))
    deltas = list(dict.fromkeys(ds["delta_deg"].values.tolist()))
    P = ds.sizes["position"]
    w_show = widths[len(widths) // 2]
    fig, axes = plots.figure(1, len(deltas) + 2, width=3.1, height=2.8)
    for j, delta in enumerate(deltas):
        ax = axes[0, j]
        m = int(np.flatnonzero((ds["pool_width"].values == w_show) & (ds["delta_deg"].values == delta))[0])
        for p in range(P):
            label = f"p = {p}" + (" (trained)" if p == a else f", c_a.c_p = {ds['overlap'].values[m, p]:.2f}")
            plots.theory_and_simulation(ax, time, ds["margin_theory"].values[m, :, p], ds["margin_sim"].values[m, :, p], color=plots.color(p))
            ax.plot([], [], color=plots.color(p), label=label)
        ax.set_title(f"delta = {delta:g} deg, pooling width {w_show:g}")
        ax.set_xlabel("time (units of tau)")
        ax.set_ylabel("decision margin")
        ax.legend(loc="best", fontsize=6)
    ax = axes[0, len(deltas)]
    untrained = np.arange(P) != a
    for j, delta in enumerate(deltas):
        members = np.flatnonzero(ds["delta_deg"].values == delta)
        ov = ds["overlap"].values[members][:, untrained].ravel()
        ax.plot(ov, ds["margin_gain_transfer_sim"].values[members][:, untrained].ravel(), "o", markerfacecolor="none", color=plots.color(3 * j), label=f"margin gain, delta = {delta:g} (simulation)")
        order = np.argsort(ov)
        ax.plot(ov[order], ds["margin_gain_transfer_theory"].values[members][:, untrained].ravel()[order], color=plots.color(3 * j), linewidth=1, label=f"margin gain, delta = {delta:g} (theory)")
    members = np.arange(ds.sizes["seed"])
    dbeta = (ds["beta_sim"].values[:, -1] - ds["beta_sim"].values[:, 0])
    factor = dbeta / dbeta[:, a:a + 1]
    ax.plot(ds["overlap"].values[members][:, untrained].ravel(), factor[:, untrained].ravel(), "x", color="0.3", label="dbeta_p / dbeta_a (simulation)")
    ax.plot([0, 1], [0, 1], color="0.3", linewidth=1, linestyle="--", label="c_a . c_p (theory)")
    ax.set_xlabel("pooling overlap c_a . c_p")
    ax.set_ylabel("transfer to the untrained position")
    ax.set_title("transfer vs overlap")
    ax.legend(loc="upper left", fontsize=6)
    ax = axes[0, len(deltas) + 1]
    m = int(np.flatnonzero((ds["pool_width"].values == w_show) & (ds["delta_deg"].values == min(deltas)))[0])
    for p in range(P):
        plots.theory_and_simulation(ax, time, ds["input_change_theory"].values[m, :, p], ds["input_change_sim"].values[m, :, p], color=plots.color(p))
    ax.set_xlabel("time (units of tau)")
    ax.set_ylabel("||W1^(p)(t) - W1^(p)(0)||")
    ax.set_title(f"input-layer change per position\n(delta = {min(deltas):g} deg, trained p = {a})")
    plots.legend_theory_simulation(ax)
    return {"transfer": Figure(fig, "decision margins per position (theory lines, simulation markers) for each task; transfer against "
                                    "pooling overlap; input-layer change per position")}


EXPERIMENT = Experiment(
    name="saxe-transfer",
    work="Saxe",
    description="pooling over positions: train at one position, margins and input-layer change at untrained positions vs the reduced dynamics",
    config=SaxeTransferConfig,
    run=run,
)
"""Registers ``jaxdyn run saxe-transfer``: transfer across positions of a pooling net trained at one position, against the reduced dynamics."""
