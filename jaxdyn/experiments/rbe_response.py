"""rbe-response: the training response law on one training point (Nakazato Fig. 1, Eq. 8).

A random 16-bit string x_o is trained with SGD (lr 0.1), one step per epoch, its label drawn at
every step from p(y): unbiased p0 = p1 = 1/2 and biased p0/p1 = 1/4. Inside the engine's scan,
every ``record_every`` steps, one extra SGD step at x_o (label from p(y)) is taken from the current
weights without being applied, and the normalised response Delta(x_o, x) / (y_o - f(x_o)) (Eq. 5)
is read on probe strings at every Hamming distance h = 0..16; the NTK Theta(x_o, x) of the same
weights is recorded beside it. The analysis (``jaxdyn.analysis.response``) gives the size
S(e) = R(h = 0), its power-law exponent tau after the initial phase (Eq. 8, with a bootstrap
interval over seeds), the kernel K(h, e) = R(h) / R(0) at the paper's epochs with its slope per
bit, and how much of the measured response the NTK's first-order prediction explains.

Encodings of one run share their seeds (same initial weights, x_o and probes), so their
comparison is paired. :func:`simulate` and :func:`analyse` are reused by rbe-variants.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from jaxdyn import ntk, plots
from jaxdyn.analysis import response as resp
from jaxdyn.engine import losses, member_keys, train
from jaxdyn.experiments.base import Claim, Config, ConfigError, Experiment, RunResult, param
from jaxdyn.models.rbe_conv import RBEConvNet
from jaxdyn.tasks import rbe

LOSSES = {"mse": losses.mean_squared_error, "bce": losses.binary_cross_entropy}


def encoding_name(p1: float) -> str:
    """'unbiased' (p1 = 1/2), 'biased p0/p1=0.25', 'deterministic y=0' ..."""
    if p1 == 0.5:
        return "unbiased"
    if p1 in (0.0, 1.0):
        return f"deterministic y={int(p1)}"
    return f"biased p0/p1={(1 - p1) / p1:.3g}"


@dataclasses.dataclass(frozen=True)
class RBEResponseConfig(Config):
    """Configuration of rbe-response (defaults: the paper's standard setting, Fig. 1)."""

    seeds: int = param(100, "ensemble size (the paper averages 100 tests)", min=2, max=100_000)
    p1s: tuple[float, ...] = param((0.5, 0.8), "encodings p(y=1): 0.5 unbiased (p0=p1), 0.8 biased (p0/p1=1/4), 0 deterministic (p0=1)", min=0.0, max=1.0, max_len=8)
    num_steps: int = param(800, "training epochs (one SGD step on one point each)", min=1, max=10_000_000)
    record_every: int = param(10, "epochs between response measurements", min=1, max=1_000_000)
    epochs: tuple[int, ...] = param((0, 200, 400, 600, 800), "epochs at which the kernel is reported (multiples of record_every)", min=0, max_len=32)
    fit_start: int = param(50, "first epoch of the power-law fit (after the initial phase)", min=1)
    lr: float = param(0.1, "SGD learning rate", min=0.0, max=10.0, min_exclusive=True)
    loss: str = param("mse", "training loss: mse (the paper's Eq. 5) or bce", choices=tuple(LOSSES))
    num_layers: int = param(3, "conv layers N", min=1, max=6)
    features: int = param(8, "filters per conv layer M", min=1, max=1024)
    activation: str = param("elu", "activation", choices=("elu", "relu"))
    dropout: float = param(0.0, "dropout rate after each conv layer", min=0.0, max=0.95)
    probes_per_distance: int = param(8, "probe strings per Hamming distance", min=1, max=1024)
    n_boot: int = param(1000, "bootstrap resamples of the seeds for intervals", min=10, max=100_000)

    @classmethod
    def quick(cls) -> "RBEResponseConfig":
        return cls(seeds=24, p1s=(0.5, 0.8, 0.0), num_steps=200, record_every=10, epochs=(0, 100, 200), fit_start=20,
                   probes_per_distance=4, n_boot=200)

    def check(self) -> None:
        if self.num_steps % self.record_every:
            raise ConfigError(f"record_every: must divide num_steps ({self.num_steps}), got {self.record_every}")
        for e in self.epochs:
            if e % self.record_every or e > self.num_steps:
                raise ConfigError(f"epochs: {e} must be a multiple of record_every ({self.record_every}) and <= num_steps ({self.num_steps})")
        if self.fit_start + 2 * self.record_every > self.num_steps:
            raise ConfigError(f"fit_start: {self.fit_start} leaves fewer than 3 records before num_steps ({self.num_steps})")
        if len(set(self.p1s)) != len(self.p1s):
            raise ConfigError(f"p1s: encodings must be distinct, got {self.p1s}")

    def model(self) -> RBEConvNet:
        return RBEConvNet(num_layers=self.num_layers, features=self.features, activation=self.activation,
                          dropout_rate=self.dropout)


def simulate(model, p1s: Sequence[float], *, seeds: int, num_steps: int, record_every: int, lr: float,
             probes_per_distance: int, loss: str, progress: bool = False,
             train_options: dict | None = None) -> dict[str, np.ndarray]:
    """Trains seeds x encodings members of ``model`` on one point each; records the response.

    Members (e, s) for encoding e and seed s share seed s's keys and data (paired design).

    Returns:
        ``response`` (seed, encoding, time, probe) normalised responses, ``theta`` the same
        shape (NTK Theta(x_o, probe)), ``f_source``, ``y_source`` (seed, encoding, time),
        ``probe_h`` (probe,), ``steps`` (time,), ``diverged_at`` (seed, encoding), ``dl_df``
        (seed, encoding, time) the loss gradient at the probe step.
    """
    n_enc = len(p1s)
    seed_ids = np.arange(seeds)
    data = rbe.ensemble_data(rbe.single_point(0.5, probes_per_distance=probes_per_distance), seed_ids)
    tile = lambda a: jnp.concatenate([a] * n_enc, axis=0)  # noqa: E731  member = e * seeds + s
    data = rbe.with_p1(jax.tree_util.tree_map(tile, data), np.repeat(np.asarray(p1s, np.float32), seeds))
    keys, _ = member_keys(seed_ids)
    loss_fn = LOSSES[loss]
    result = train(
        model,
        rbe.encoder_task(None),
        lambda h: optax.sgd(h["lr"]),
        seeds=np.asarray(tile(keys)),
        num_steps=num_steps,
        loss=loss_fn,
        observables=ntk.response_observables(model, loss_fn),
        record_every=record_every,
        hparams={"lr": np.full(n_enc * seeds, lr, np.float32)},
        data=data,
        progress=progress,
        **(train_options or {}),  # checkpoints and the memory guard, from the runner
    )

    def split(a):  # (member, ...) -> (seed, encoding, ...)
        a = np.asarray(a).reshape((n_enc, seeds) + np.shape(a)[1:])
        return np.swapaxes(a, 0, 1)

    src = split(result.records["source"][:, :, 0])  # (seed, enc, time, 2)
    f_s, y_s = src[..., 0], src[..., 1]
    g = np.asarray(jax.vmap(jax.grad(lambda o, y: loss_fn(o[None], {"y": y[None]})))(f_s.ravel(), y_s.ravel())).reshape(f_s.shape)
    return {
        "response": split(result.records["response"][:, :, 0]),
        "theta": split(result.records["theta"][:, :, 0]),
        "f_source": f_s,
        "y_source": y_s,
        "dl_df": g,
        "probe_h": np.asarray(data["probe_h"][0]),
        "steps": result.record_steps,
        "diverged_at": split(result.diverged_at),
    }


def ntk_prediction(sim: dict[str, np.ndarray], lr: float) -> np.ndarray:
    """The NTK's first-order normalised response -lr Theta dL/df / (y_o - f(x_o)): like ``response``."""
    factor = -lr * sim["dl_df"] / (sim["y_source"] - sim["f_source"])
    return sim["theta"] * factor[..., None]


def analyse(sim: dict[str, np.ndarray], p1s: Sequence[float], *, epochs: Sequence[int], fit_start: int, lr: float,
            n_boot: int) -> list[dict[str, Any]]:
    """The law's fits per encoding: aging exponent, kernels and slopes, NTK explanation.

    Returns one dict per encoding with ``power_law`` (:class:`PowerLawFit` as dict), ``kernels``
    ({epoch: :class:`KernelFit` as dict}), ``ntk_explained`` ({epoch: fraction}),
    ``ntk_relative_error`` ({epoch: ||R - R_ntk|| / ||R||}) and the raw ``fits`` objects.
    """
    steps = sim["steps"]
    ok = sim["diverged_at"] < 0  # (seed, enc)
    prof = resp.profile(sim["response"], sim["probe_h"])  # (seed, enc, time, H)
    pred = ntk_prediction(sim, lr)
    out = []
    for e, p1 in enumerate(p1s):
        rows = ok[:, e]
        sizes = prof[rows, e, :, 0]
        pl = resp.power_law_fit(steps, sizes, fit_start, n_boot=n_boot, seed=e)
        kernels, explained, rel = {}, {}, {}
        for ep in epochs:
            i = int(np.searchsorted(steps, ep))
            kernels[int(ep)] = resp.kernel_fit(prof[rows, e, i], n_boot=n_boot, seed=100 + e)
            explained[int(ep)] = resp.explained_fraction(sim["response"][rows, e, i], pred[rows, e, i])
            rel[int(ep)] = resp.relative_error(sim["response"][rows, e, i], pred[rows, e, i])
        out.append({
            "encoding": encoding_name(p1), "p1": float(p1), "members": int(rows.sum()),
            "diverged": int((~rows).sum()),
            "power_law": pl.to_dict(), "kernels": {k: v.to_dict() for k, v in kernels.items()},
            "ntk_explained": explained, "ntk_relative_error": rel,
            "fits": {"power_law": pl, "kernels": kernels},
        })
    return out


def law_claims(a: dict[str, Any], label: str) -> list[Claim]:
    """The law's claims for one encoding (Eq. 8): power-law aging, decreasing and linear kernel."""
    pl, ks = a["power_law"], a["fits"]["kernels"]
    worst_upper = max(k.slope_ci[1] for k in ks.values())
    min_r2 = min(k.r2 for k in ks.values())
    curvature = abs(pl["tau_local_late"] - pl["tau_local_early"]) / max(abs(pl["tau"]), 1e-12)
    return [
        Claim(f"{label}: the response size decays as a power law e^-tau after the initial phase (tau; held if its {int(pl['ci_level'] * 100)}% interval is above 0 and log-log R^2 >= 0.95)",
              bool(pl["tau_ci"][0] > 0 and pl["r2_loglog"] >= 0.95), pl["tau"], 0.0),
        Claim(f"{label}: one exponent over the whole window (|tau_late - tau_early| / tau, first vs second half in log e)",
              bool(curvature < 0.25), curvature, 0.25),
        Claim(f"{label}: the kernel decreases with Hamming distance at every reported epoch (largest upper bound of the slope per bit)",
              bool(worst_upper < 0), worst_upper, 0.0),
        Claim(f"{label}: the kernel is almost linear in Hamming distance (smallest R^2 of a line over epochs)",
              bool(min_r2 >= 0.9), min_r2, 0.9),
    ]


def slope_trend_claims(a: dict[str, Any], label: str, expect: str) -> list[Claim]:
    """Kernel slope along training: 'diminish' (unbiased) or 'enhance' (biased), Fig. 1B, D.

    Two claims: from the first to the last reported epoch (bootstrap intervals apart), and
    monotone over every pair of successive reported epochs ("gradually").
    """
    ks = a["fits"]["kernels"]
    eps = sorted(ks)
    first, last = ks[eps[0]], ks[eps[-1]]
    change = abs(last.slope) - abs(first.slope)
    steps = np.diff([abs(ks[e].slope) for e in eps])
    if expect == "diminish":
        held = last.slope_ci[0] > first.slope_ci[1]  # less negative, intervals apart
        worst = float(steps.max())  # largest increase of |slope| between successive epochs
        mono = worst < 0
    else:
        held = last.slope_ci[1] < first.slope_ci[0]
        worst = float(steps.min())
        mono = worst > 0
    word = "diminishes" if expect == "diminish" else "is enhanced"
    return [
        Claim(f"{label}: the kernel slope {word} along training (|slope| at epoch {eps[-1]} minus at epoch {eps[0]}, per bit)",
              bool(held), change, 0.0),
        Claim(f"{label}: ... and gradually: between every pair of successive reported epochs (the least favourable change of |slope|, per bit)",
              bool(mono), worst, 0.0),
    ]


def _dataset(config, sim, analysis, name: str) -> xr.Dataset:
    enc = [a["encoding"] for a in analysis]
    ds = xr.Dataset(
        {
            "response": (("seed", "encoding", "time", "probe"), sim["response"].astype(np.float32)),
            "theta": (("seed", "encoding", "time", "probe"), sim["theta"].astype(np.float32)),
            "f_source": (("seed", "encoding", "time"), sim["f_source"]),
            "y_source": (("seed", "encoding", "time"), sim["y_source"]),
            "dl_df": (("seed", "encoding", "time"), sim["dl_df"]),
            "diverged_at": (("seed", "encoding"), sim["diverged_at"]),
            "p1": ("encoding", np.asarray([a["p1"] for a in analysis])),
            "tau": ("encoding", np.asarray([a["power_law"]["tau"] for a in analysis])),
            "tau_low": ("encoding", np.asarray([a["power_law"]["tau_ci"][0] for a in analysis])),
            "tau_high": ("encoding", np.asarray([a["power_law"]["tau_ci"][1] for a in analysis])),
        },
        coords={"seed": np.arange(sim["response"].shape[0]), "encoding": enc, "time": sim["steps"],
                "probe": np.arange(sim["response"].shape[-1]), "hamming": ("probe", sim["probe_h"])},
        attrs={"experiment": name, "lr": config.lr, "loss": config.loss, "record_every": config.record_every,
               "fit_start": config.fit_start,
               "response": "Delta(x_o, probe) / (y_o - f(x_o)) after one SGD step at x_o with y_o ~ p(y) (not applied to training)",
               "theta": "empirical NTK Theta(x_o, probe) of the sigmoid output at the same weights",
               "time_units": "epochs = SGD steps, one training point each"},
    )
    return ds


def run(config: RBEResponseConfig, progress: bool = False, **train_options) -> RunResult:
    """Trains, fits the law for each encoding, and compares with the NTK."""
    sim = simulate(config.model(), config.p1s, seeds=config.seeds, num_steps=config.num_steps,
                   record_every=config.record_every, lr=config.lr, probes_per_distance=config.probes_per_distance,
                   loss=config.loss, progress=progress, train_options=train_options)
    analysis = analyse(sim, config.p1s, epochs=config.epochs, fit_start=config.fit_start, lr=config.lr, n_boot=config.n_boot)
    claims = []
    for a in analysis:
        claims += law_claims(a, a["encoding"])
        if a["p1"] == 0.5:
            claims += slope_trend_claims(a, a["encoding"], "diminish")
        elif 0.0 < a["p1"] < 1.0:
            claims += slope_trend_claims(a, a["encoding"], "enhance")
        worst = min(a["ntk_explained"].values())
        claims.append(Claim(f"{a['encoding']}: the NTK (Eq. 4-5) explains the measured response at every reported epoch (smallest fraction of variance explained)",
                            bool(worst >= 0.9), worst, 0.9))
    summary = {
        "experiment": "rbe-response",
        "seeds": config.seeds,
        "encodings": [{k: v for k, v in a.items() if k != "fits"} for a in analysis],
        "paper": {
            "aging": "after the initial phase the size shows a power-law-like decay e^-tau (Fig. 1A, C); no value of tau is given",
            "kernel": "almost linear in the Hamming distance; slope diminishes along training when unbiased, is enhanced when biased p0/p1 = 1/4 (Fig. 1B, D)",
        },
        "claims": [c.to_dict() for c in claims],
    }
    ds = _dataset(config, sim, analysis, "rbe-response")
    return RunResult(dataset=ds, summary=summary, figures=figures(config, sim, analysis))


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------
def plot_aging(ax, steps, sizes, pl: dict, color: str, label: str | None = None):
    """Response size on log-log axes (seed mean, band: 10-90% of seeds) with the fitted power law."""
    t = steps[1:]
    s = sizes[:, 1:]
    mean = np.nanmean(s, 0)
    ax.fill_between(t, np.nanquantile(s, 0.1, 0), np.nanquantile(s, 0.9, 0), color=color, alpha=0.15, linewidth=0)
    every = max(1, len(t) // 40)
    ax.plot(t[::every], mean[::every], "o", color=color, markerfacecolor="none", label=label)
    lo, hi = pl["fit_window"]
    tt = np.geomspace(lo, hi, 50)
    ax.plot(tt, pl["amplitude"] * tt ** (-pl["tau"]), color=color,
            label=f"fit: tau = {pl['tau']:.2f} [{pl['tau_ci'][0]:.2f}, {pl['tau_ci'][1]:.2f}]")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("epoch e")
    ax.set_ylabel("response size S(e) = R(h=0)")


def plot_kernels(ax, a: dict, bits: int = 16):
    """K(h, e) = R(h) / R(0) per reported epoch, with bootstrap bands and fitted lines."""
    h = np.arange(bits + 1)
    for j, (ep, k) in enumerate(sorted(a["fits"]["kernels"].items())):
        col = plots.color(j)
        ax.fill_between(h, k.kernel_ci[0], k.kernel_ci[1], color=col, alpha=0.2, linewidth=0)
        ax.plot(h, k.kernel, "o", color=col, markerfacecolor="none")
        line = resp.line_fit(h, k.kernel)
        ax.plot(h, line.intercept + line.slope * h, color=col, linewidth=1, label=f"e = {ep}: slope {k.slope:.3f}/bit")
    ax.axhline(0, color="0.6", linewidth=0.8)
    ax.set_xlabel("Hamming distance h from x_o")
    ax.set_ylabel("kernel K(h) = R(h) / R(0)")
    ax.legend(loc="best")


def figures(config, sim, analysis) -> dict:
    steps = sim["steps"]
    prof = resp.profile(sim["response"], sim["probe_h"])
    n = len(analysis)
    fig, axes = plots.figure(n, 2, width=4.2, height=3.0)
    for e, a in enumerate(analysis):
        ok = sim["diverged_at"][:, e] < 0
        plot_aging(axes[e, 0], steps, prof[ok, e, :, 0], a["power_law"], plots.color(e), label="simulation (seed mean)")
        axes[e, 0].set_title(f"({chr(65 + 2 * e)}) aging, {a['encoding']}")
        axes[e, 0].legend(loc="lower left")
        plot_kernels(axes[e, 1], a)
        axes[e, 1].set_title(f"({chr(66 + 2 * e)}) response kernel, {a['encoding']}")

    pred = resp.profile(ntk_prediction(sim, config.lr), sim["probe_h"])
    fig2, ax2 = plots.figure(1, n, width=4.2, height=3.2)
    h = np.arange(prof.shape[-1])
    for e, a in enumerate(analysis):
        ok = sim["diverged_at"][:, e] < 0
        for j, ep in enumerate(sorted(a["kernels"])):
            i = int(np.searchsorted(steps, ep))
            plots.theory_and_simulation(ax2[0, e], h, np.nanmean(pred[ok, e, i], 0), np.nanmean(prof[ok, e, i], 0),
                                        color=plots.color(j), label=None, every=1)
            ax2[0, e].plot([], [], color=plots.color(j), label=f"e = {ep}: {100 * a['ntk_explained'][ep]:.1f}% explained")
        ax2[0, e].set_yscale("symlog", linthresh=1e-2)
        ax2[0, e].set_xlabel("Hamming distance h from x_o")
        ax2[0, e].set_ylabel("normalised response R(h)")
        ax2[0, e].set_title(f"{a['encoding']}\nNTK prediction (lines), measured (markers)")
        ax2[0, e].legend(loc="lower left", fontsize=7)
    return {"response_law": fig, "ntk_vs_response": fig2}


EXPERIMENTS = [
    Experiment(
        name="rbe-response",
        work="Nakazato",
        description="response vs Hamming distance over epochs; power-law aging fit with CI over seeds; kernel slopes; NTK prediction",
        config=RBEResponseConfig,
        run=run,
    )
]
