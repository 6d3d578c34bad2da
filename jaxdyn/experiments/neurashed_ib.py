"""neurashed-ib: the information bottleneck in Su's Figure 5 neurashed.

Source: Su, "Envisioning Future Deep Learning Theories" (arXiv 2112.09741), section 3 and the
appendix. The Figure 5 graph (:func:`jaxdyn.tasks.neurashed.figure5`; its reading of the figure
is documented there) is trained by Algorithm 1 (:func:`jaxdyn.models.neurashed.figure5_learner`)
through the engine, with the appendix's constants: initial lambda (and eta) ~ U(0, 0.01),
g- = 1.022^(-1/4) x, g+ = 1.022^(11/4) x, except the 7th first-level node, g+ = 1.022^(3/4) x.
Each level's representation of an input is the vector of its node scores S_F. As in
Shwartz-Ziv & Tishby, Gaussian noise is added to every score and the level is binned
(``num_bins`` equal bins over the level's range at that time); I(T; X) with the input type (8
types, uniform) and I(T; Y) with the label (2 classes) are computed from the exact binned
conditional laws (:func:`jaxdyn.analysis.information.noisy_binned_information`).

The text's statements for the second level: it first learns to tell the two types of each
class apart (h1 fires for one, h3 for the other), so I(T2; X) rises toward log2 4 = 2 bits;
later lambda_h1 and lambda_h3 become negligible beside lambda_h2 and the types merge: I(T2; X)
falls toward log2 2 = 1 bit, while I(T2; Y) stays at 1 bit.

Choices where the text is open (see also ``figure5_description``):

- noise std 0.01, the top of the initial amplification range, in absolute units for both
  levels: an untrained level is buried in the noise, so training must lift it out (the rising
  "fitting" phase); the binning range is the level's noise-free min-max at each time, so a
  node whose score is below one bin width of the dominant node's is unreadable (compression).
- batch size 1 and one pass over the 8 input types per epoch in random order.
- eta follows the same g+ and g- as lambda; it does not enter the levels' information.
- float64: scores grow like 1.022^(2t) and overflow float32 within 2000 steps, so training runs
  inside ``jax.enable_x64(True)``; the engine compiles a separate program for it (the x64 flag
  is part of JAX's trace context), and its checkpoints hold the float64 state.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.analysis.information import noisy_binned_information
from jaxdyn.engine import observable
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.models import neurashed as nm
from jaxdyn.tasks import neurashed as nt

NUM_TYPES = 8


@dataclasses.dataclass(frozen=True)
class NeurashedIBConfig(Config):
    """Configuration of neurashed-ib."""

    seeds: int = param(8, "number of seeds (initial factors and mini-batch orders)", min=1, max=4096)
    num_steps: int = param(2000, "iterations of Algorithm 1", min=1, max=20_000)
    record_every: int = param(20, "iterations between measurements of the information", min=1, max=20_000)
    batch_size: int = param(1, "mini-batch size B (must divide 8 with epoch sampling)", min=1, max=1024)
    sampling: str = param("epoch", "mini-batches: 'epoch' (each input type once per epoch) or 'iid' (with replacement)", choices=("epoch", "iid"))
    base: float = param(1.022, "the appendix's base a of g+ = a^(11/4) x, g- = a^(-1/4) x (7th node: a^(3/4) x)", min=1.0, max=2.0, min_exclusive=True)
    init_high: float = param(0.01, "initial lambda and eta ~ U(0, init_high)", min=0.0, max=1.0, min_exclusive=True)
    noise_std: float = param(0.01, "std of the Gaussian noise added to every score before binning (absolute units)", min=0.0, max=1e3)
    num_bins: int = param(30, "equal bins per node over the level's range", min=2, max=10_000)
    num_noise_samples: int = param(128, "Monte Carlo draws of the noisy binned representation per input type", min=8, max=100_000)
    h2_dependents: tuple[int, ...] = param((1, 2, 3, 4, 5, 6, 7), "first-level dependents of the dominant node h2 (1-based, must include 7)", min=1, max=7, max_len=7)
    tolerance: float = param(0.1, "largest distance in bits from the text's limits (log2 4 at the peak, log2 2 at the end)", min=0.0, max=1.0, min_exclusive=True)

    @classmethod
    def quick(cls) -> "NeurashedIBConfig":
        return cls(seeds=3, num_steps=2000, record_every=40, num_noise_samples=48)

    def check(self) -> None:
        if self.num_steps % self.record_every:
            raise ConfigError(f"record_every: must divide num_steps ({self.num_steps}), got {self.record_every}")
        if self.sampling == "epoch" and NUM_TYPES % self.batch_size:
            raise ConfigError(f"batch_size: must divide the 8 input types with sampling='epoch', got {self.batch_size}")
        if 7 not in self.h2_dependents:
            raise ConfigError("h2_dependents: must include the shared node 7 (h2 fires on two or more dependents)")
        if len(set(self.h2_dependents)) != len(self.h2_dependents):
            raise ConfigError("h2_dependents: listed twice")


@observable(dims={"scores_level1": ("input_type", "node1"), "scores_level2": ("input_type", "node2")},
            attrs={"scores_level1": {"long_name": "first-level scores S_F of the 8 input types"},
                   "scores_level2": {"long_name": "second-level scores S_F of the 8 input types"}})
def level_scores(snap):
    """Observable: the scores of levels 1 and 2 (the text's numbering) for the 8 input types."""
    graph, patterns = snap.data["graph"], snap.data["patterns"]
    s, _ = nm.scores(graph, snap.params, nm.pathways(graph, patterns.first))
    return {"scores_level1": s[0], "scores_level2": s[1]}


def run(config: NeurashedIBConfig, ctx) -> Result:
    """Trains the Figure 5 neurashed over seeds and measures each level's information over time."""
    try:
        built = nt.figure5(config.h2_dependents)
    except nm.GraphError as exc:
        raise ConfigError(f"h2_dependents: {exc}") from None
    graph, patterns = built.graph, built.patterns
    seeds = list(range(config.seeds))
    learner = nm.figure5_learner(config.base, config.init_high)
    data = nt.sampler_data(seeds, config.batch_size, sampling=config.sampling, num_patterns=NUM_TYPES)
    with jax.enable_x64(True):
        res = ctx.train(learner, nt.PatternSampler(max_batch=config.batch_size, sampling=config.sampling), seeds=seeds,
                        num_steps=config.num_steps, observables={"scores": level_scores}, record_every=config.record_every,
                        data=data, shared={"graph": graph, "patterns": patterns})
    ctx.stage("analysis")
    scores = [np.asarray(res.records["scores_level1"]), np.asarray(res.records["scores_level2"])]  # (seed, time, 8, n_l)
    labels = np.asarray(patterns.label)
    steps = res.times["time"]
    num_times = len(steps)
    info = np.zeros((config.seeds, num_times, 2, 2))  # (seed, time, level, [x, y])
    stderr = np.zeros_like(info)
    rng = np.random.default_rng(0)
    for s in range(config.seeds):
        for t in range(num_times):
            for level in range(2):
                r = noisy_binned_information(scores[level][s, t], variables={"y": labels}, num_bins=config.num_bins,
                                             noise_std=config.noise_std, num_samples=config.num_noise_samples, rng=rng)
                info[s, t, level] = r.info["x"], r.info["y"]
                stderr[s, t, level] = r.stderr["x"], r.stderr["y"]

    ix2, iy2 = info[:, :, 1, 0], info[:, :, 1, 1]
    ix1 = info[:, :, 0, 0]
    peak2 = ix2.max(1)
    peak_step = steps[ix2.argmax(1)]
    init2, final2, final_y2 = ix2[:, 0], ix2[:, -1], iy2[:, -1]
    peak1, final1 = ix1.max(1), ix1[:, -1]
    tol = config.tolerance
    appendix = "appendix, 'Experimental details' (Figure 5, right panel)"
    include = res.diverged_at < 0
    found = [
        claims.per_seed("level2-fits", "fitting: the second level's I(T;X) rises from ~0 bits (noise) to about log2 4 = 2 bits "
                        "(peak over training)", peak2, ">=", 2 - tol, kind="paper", initial=init2, include=include,
                        source=claims.source("the mutual information between the second level and the input tends to log2 4 = 2", appendix),
                        threshold_source="log2 4 minus config.tolerance"),
        claims.per_seed("level2-compresses", "compression: the second level's I(T;X) ends within tolerance of log2 2 = 1 bit "
                        "(|final - 1|)", np.abs(final2 - 1.0), "<=", tol, kind="paper", initial=np.abs(init2 - 1.0), include=include,
                        source=claims.source("As a consequence, the mutual information tends to log2 2 = 1", appendix),
                        threshold_source="config.tolerance"),
        claims.per_seed("level2-keeps-label", "the second level keeps the label: final I(T;Y) near 1 bit", final_y2, ">=", 1 - tol,
                        kind="paper", initial=iy2[:, 0], include=include,
                        source=claims.source("the networks compress all irrelevant information from the input", "section 3, 'Information bottleneck'"),
                        threshold_source="log2 2 minus config.tolerance"),
        claims.per_seed("level1-fits-then-compresses", "the first level also fits then compresses (peak minus final I(T1;X), bits)",
                        peak1 - final1, ">=", 0.5, kind="paper", initial=np.zeros(config.seeds), include=include,
                        source=claims.source("The discussion on the first level is similar and thus is omitted", appendix),
                        threshold_source="half a bit: the project's size of a visible drop"),
    ]
    numbers = {
        "seeds": config.seeds,
        "level2_I_TX_initial_mean": float(init2.mean()),
        "level2_I_TX_peak_mean": float(peak2.mean()),
        "level2_I_TX_peak_per_seed": peak2.tolist(),
        "level2_I_TX_peak_step_mean": float(peak_step.mean()),
        "level2_I_TX_final_mean": float(final2.mean()),
        "level2_I_TX_final_per_seed": final2.tolist(),
        "level2_I_TY_final_mean": float(final_y2.mean()),
        "level1_I_TX_initial_mean": float(ix1[:, 0].mean()),
        "level1_I_TX_peak_mean": float(peak1.mean()),
        "level1_I_TX_final_mean": float(final1.mean()),
        "level1_I_TY_final_mean": float(info[:, -1, 0, 1].mean()),
        "max_monte_carlo_stderr_bits": float(stderr.max()),
    }
    ds = xr.Dataset(
        {
            "I_TX": (("seed", "time", "level"), info[..., 0]),
            "I_TY": (("seed", "time", "level"), info[..., 1]),
            "I_TX_stderr": (("seed", "time", "level"), stderr[..., 0]),
            "I_TY_stderr": (("seed", "time", "level"), stderr[..., 1]),
            "scores_level1": (("seed", "time", "input_type", "node1"), scores[0]),
            "scores_level2": (("seed", "time", "input_type", "node2"), scores[1]),
            "lambda_level2_final": (("seed", "node2"), np.asarray(res.params.lam[1])),
            "lambda_level1_final": (("seed", "node1"), np.asarray(res.params.lam[0])),
            "label": ("input_type", labels),
            "first_level_pattern": (("input_type", "node1"), np.asarray(patterns.first).astype(np.int8)),
            "diverged_at": ("seed", res.diverged_at),
        },
        coords={"seed": np.arange(config.seeds), "time": steps, "level": [1, 2],
                "node1": list(built.names[0]), "node2": list(built.names[1])},
        attrs={
            "time_units": "iterations of Algorithm 1",
            "g_plus": f"{config.base}^(11/4) x (7th first-level node {config.base}^(3/4) x)",
            "g_minus": f"{config.base}^(-1/4) x",
            "init": f"U(0, {config.init_high})",
            "noise_std": config.noise_std,
            "num_bins": config.num_bins,
            "batch_size": config.batch_size,
            "sampling": config.sampling,
            "h2_dependents": list(config.h2_dependents),
            "binning": "equal bins over the level's noise-free min-max at each time; noise N(0, noise_std^2) per node",
        },
    )
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(ds), numbers=numbers)


def _figures(ds: xr.Dataset) -> dict:
    steps = ds["time"].values
    fig, axes = plots.figure(1, 3, width=4.0, height=3.4)
    ax = axes[0, 0]
    for k, level in enumerate(ds["level"].values):
        ix = ds["I_TX"].sel(level=level).values.mean(0)
        iy = ds["I_TY"].sel(level=level).values.mean(0)
        ax.plot(ix, iy, "-", color=plots.color(k), linewidth=0.8, alpha=0.6)
        sc = ax.scatter(ix, iy, c=steps, cmap="viridis", s=14, marker="o" if k else "s", zorder=3, label=f"level {level}")
    fig.colorbar(sc, ax=ax, label="iteration")
    for bits in (1.0, 2.0):
        ax.axvline(bits, color="0.5", linestyle="--", linewidth=0.8)
    ax.set_xlabel("I(T; X) (bits)")
    ax.set_ylabel("I(T; Y) (bits)")
    ax.set_title("information plane, mean over seeds\n(squares: level 1, circles: level 2)")
    for j, (name, label) in enumerate((("I_TX", "I(T; X)"), ("I_TY", "I(T; Y)"))):
        ax = axes[0, j + 1]
        for k, level in enumerate(ds["level"].values):
            v = ds[name].sel(level=level).values
            ax.fill_between(steps, v.min(0), v.max(0), color=plots.color(k), alpha=0.2, linewidth=0)
            ax.plot(steps, v.mean(0), "o", color=plots.color(k), markerfacecolor="none", markersize=3, label=f"level {level}")
        if name == "I_TX":
            ax.axhline(2.0, color="0.3", linewidth=1, label="text: log2 4 (fitting)")
            ax.axhline(1.0, color="0.3", linewidth=1, linestyle="--", label="text: log2 2 (compressed)")
        else:
            ax.axhline(1.0, color="0.3", linewidth=1, label="log2 2 (text)")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{label} (bits)")
        ax.set_title(f"{label}; band: min-max over seeds")
        ax.legend(loc="upper right" if name == "I_TX" else "lower right", fontsize=7)
        ax.set_ylim(-0.05, 3.1 if name == "I_TX" else 1.15)
    return {"information_plane": Figure(fig, "information plane of both levels (mean over seeds, colour: iteration) and "
                                             "I(T;X), I(T;Y) over training with the text's limits")}


EXPERIMENT = Experiment(
    name="neurashed-ib",
    work="Su",
    description="Figure 5 neurashed with the appendix constants: I(T;X) and I(T;Y) of each level over training (fitting, then compression)",
    config=NeurashedIBConfig,
    run=run,
)
