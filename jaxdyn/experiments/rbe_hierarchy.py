"""rbe-hierarchy: iterated splitting of the input space with nested groups (Nakazato Fig. 6, Eqs. 12-13).

Three groups of 16-bit strings: g0 anywhere, g1 and g2 within pairwise Hamming distance H1 = 6 of
each other, g2 within H2 = 4; g0 and g2 are encoded 0, g1 is encoded 1; 20 seeds. The paper: the
majority label 0 pulls every prediction down first; then g1 turns up and carries g2 with it (g1 is
the local majority); finally g2 is released and falls back to 0: the space is split, and the newly
split class is split again. The group sizes are not given in the paper; the default (16, 5, 3)
makes 0 the global majority (19 of 24) and g1 the local majority (5 of 8). With (10, 7, 3) the
local cluster dominates from the start and the first phase (all falling) is not seen (measured:
g1's excursion 0.0, below the 0.02 margin), so the scenario depends on the global majority being
strong enough against the cluster's own coupling.

The split epochs are detected from the seed-mean curves: t1 = the minimum of g1 (its turn up),
t2 = the maximum of g2 after t1 (its release). Per seed the same detection gives a distribution.
The kernel (Eq. 10) and three-group mean field (Eq. 11) from the initial NTK are overlaid.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr

from jaxdyn import plots
from jaxdyn.analysis import response as resp
from jaxdyn.experiments.base import Claim, Config, ConfigError, Experiment, RunResult, param
from jaxdyn.experiments.rbe_meanfield import THEORIES, _group_means, integrate_theories, plot_groups, simulate_groups
from jaxdyn.experiments.rbe_response import LOSSES
from jaxdyn.models.rbe_conv import RBEConvNet
from jaxdyn.tasks import rbe
from jaxdyn.theory import meanfield


@dataclasses.dataclass(frozen=True)
class RBEHierarchyConfig(Config):
    """Configuration of rbe-hierarchy (defaults: paper Fig. 6)."""

    seeds: int = param(20, "tests (the paper: 20)", min=2, max=100_000)
    sizes: tuple[int, ...] = param((16, 5, 3), "points in g0, g1, g2 (not given in the paper)", min=1, max=4096, min_len=3, max_len=3)
    radius1: int = param(6, "H1: pairwise Hamming bound of g1 and g2 together", min=0, max=16)
    radius2: int = param(4, "H2: pairwise Hamming bound within g2", min=0, max=16)
    num_steps: int = param(1000, "training epochs (one pair per step)", min=1, max=10_000_000)
    record_every: int = param(5, "epochs between records", min=1, max=1_000_000)
    lr: float = param(0.1, "SGD learning rate", min=0.0, max=10.0, min_exclusive=True)
    loss: str = param("mse", "training loss", choices=tuple(LOSSES))
    space: str = param("output", "space of the theory curves (output: NTK of f; logit: NTK of the logits)", choices=meanfield.SPACES)
    turn_margin: float = param(0.02, "smallest excursion (both ways) that counts as a turn", min=0.0, max=1.0)

    @classmethod
    def quick(cls) -> "RBEHierarchyConfig":
        return cls(seeds=12, num_steps=400, record_every=4)

    def check(self) -> None:
        if self.num_steps % self.record_every:
            raise ConfigError(f"record_every: must divide num_steps ({self.num_steps}), got {self.record_every}")
        if self.radius2 > self.radius1:
            raise ConfigError(f"radius2: H2 = {self.radius2} must not exceed H1 = {self.radius1}")
        n0, n1, n2 = self.sizes
        if not n0 + n2 > n1 > n2:
            raise ConfigError(f"sizes: the paper's scenario needs label 0 the global majority (n0 + n2 > n1) and g1 the local one (n1 > n2); got {self.sizes}")


def run(config: RBEHierarchyConfig, progress: bool = False, **train_options) -> RunResult:
    """Trains the nested groups, detects the two splits, overlays kernel and mean-field theory."""
    init = rbe.nested_groups(config.sizes, (0.0, 1.0, 0.0), config.radius1, config.radius2)
    sim = simulate_groups(RBEConvNet(), [init], seeds=config.seeds, num_steps=config.num_steps,
                          record_every=config.record_every, lr=config.lr, loss=config.loss, progress=progress,
                          train_options=train_options)
    theory, ok_theory = integrate_theories(sim, lr=config.lr, loss=config.loss, num_groups=3, spaces=(config.space,))
    steps, group = sim["steps"], sim["group"]
    ok = sim["diverged_at"] < 0
    g_sim = np.stack([_group_means(sim["f"][m], group[m], 3) for m in range(config.seeds)])  # (seed, time, 3)
    mean = g_sim[ok].mean(0)

    def splits(curves):
        """(time, 3) -> (t1, depth1, t2, depth2): g1's turn up, then g2's release after it."""
        t1, d1 = resp.turning_point(steps, curves[:, 1], "min", margin=config.turn_margin)
        if not np.isfinite(t1):
            return t1, d1, float("nan"), float("nan")
        t2, d2 = resp.turning_point(steps, curves[:, 2], "max", after=t1, margin=config.turn_margin)
        return t1, d1, t2, d2

    t1, d1, t2, d2 = splits(mean)
    per_seed = np.array([splits(g_sim[s]) for s in np.flatnonzero(ok)])
    ths = {name: theory[config.space][name][ok].mean(0) for name in THEORIES}
    th_splits = {name: splits(c) for name, c in ths.items()}
    # g2 follows g1 between the splits: both rise from t1 until g2's release.
    co_rise = float("nan")
    if np.isfinite(t1) and np.isfinite(t2):
        i1, i2 = int(np.searchsorted(steps, t1)), int(np.searchsorted(steps, t2))
        co_rise = float(mean[i2, 2] - mean[i1, 2])
    final = mean[-1]

    claims = [
        Claim(f"all groups first fall towards the majority label 0, then g1 turns up (g1's excursion; epoch of the first split t1 = {t1:g})",
              bool(np.isfinite(t1)), d1, config.turn_margin),
        Claim(f"g2 is carried up with g1 after the first split (rise of g2's mean from t1 to its maximum; held if > {config.turn_margin})",
              bool(np.isfinite(co_rise) and co_rise > config.turn_margin), co_rise, config.turn_margin),
        Claim(f"g2 is then released and falls back towards 0: the second split (g2's excursion after t1; epoch t2 = {t2:g})",
              bool(np.isfinite(t2)), d2, config.turn_margin),
        Claim("in the end each group sits on its own side of 1/2 (smallest margin: g1 - 1/2, 1/2 - g0, 1/2 - g2)",
              bool(min(final[1] - 0.5, 0.5 - final[0], 0.5 - final[2]) > 0), float(min(final[1] - 0.5, 0.5 - final[0], 0.5 - final[2])), 0.0),
    ]
    summary: dict[str, Any] = {
        "experiment": "rbe-hierarchy",
        "seeds": config.seeds,
        "sizes": list(config.sizes),
        "simulation": {
            "t1_first_split": t1, "depth1": d1, "t2_second_split": t2, "depth2": d2, "g2_rise_between_splits": co_rise,
            "per_seed_fraction_with_both_splits": float(np.mean(np.isfinite(per_seed[:, 0]) & np.isfinite(per_seed[:, 2]))),
            "per_seed_median_t1": float(np.nanmedian(per_seed[:, 0])) if np.isfinite(per_seed[:, 0]).any() else float("nan"),
            "per_seed_median_t2": float(np.nanmedian(per_seed[:, 2])) if np.isfinite(per_seed[:, 2]).any() else float("nan"),
            "final_group_means": final.tolist(),
        },
        "theories": {f"{name}_{config.space}": {"t1": s[0], "depth1": s[1], "t2": s[2], "depth2": s[3],
                                                "max_abs_deviation": float(np.abs(ths[name] - mean).max()),
                                                "solver_ok": bool(ok_theory[config.space][name].all())}
                     for name, s in th_splits.items()},
        "paper": "Fig. 6: all curves decrease first; g1 turns and g2 follows it; later g2 is released: the input space is split, then split again",
        "claims": [c.to_dict() for c in claims],
    }
    ds = xr.Dataset(
        {
            "f": (("seed", "time", "point"), sim["f"].astype(np.float32)),
            "point_group": (("seed", "point"), group),
            "group_mean": (("seed", "time", "group"), g_sim),
            **{f"{name}_{config.space}": (("seed", "time", "group"), theory[config.space][name]) for name in THEORIES},
            "theta_output_start": (("seed", "point", "point2"), sim["theta_f0"]),
            "diverged_at": ("seed", sim["diverged_at"]),
        },
        coords={"seed": np.arange(config.seeds), "time": steps, "point": np.arange(sum(config.sizes)),
                "point2": np.arange(sum(config.sizes)), "group": ["g0", "g1", "g2"]},
        attrs={"experiment": "rbe-hierarchy", "lr": config.lr, "loss": config.loss, "H1": config.radius1, "H2": config.radius2,
               "labels": "g0 -> 0, g1 -> 1, g2 -> 0", "time_units": "epochs = SGD steps, one pair each"},
    )
    fig, axes = plots.figure(1, 2, width=4.2, height=3.2)
    colors = {0: plots.color(3), 1: plots.color(2), 2: plots.color(0)}  # the paper: g0 red, g1 green, g2 blue
    plot_groups(axes[0, 0], steps, sim["f"][ok].mean(0), group[0] if ok.all() else group[ok][0], mean, ths, colors=colors, log_markers=True)
    for t, lab in ((t1, "t1"), (t2, "t2")):
        if np.isfinite(t):
            axes[0, 0].axvline(t, color="0.5", linestyle=":", linewidth=1)
            axes[0, 0].text(t, 0.97, f" {lab}", fontsize=7, color="0.3")
    axes[0, 0].set_title("group means (markers) and theory (lines)")
    axes[0, 0].legend(loc="best", fontsize=6)
    axes[0, 0].set_xscale("symlog", linthresh=10)
    axes[0, 0].set_xlim(0, steps[-1])
    for s in range(g_sim.shape[0]):
        for a in range(3):
            axes[0, 1].plot(steps, g_sim[s, :, a], color=colors[a], alpha=0.25, linewidth=0.7)
    for a in range(3):
        axes[0, 1].plot(steps, mean[:, a], color=colors[a], linewidth=2, label=f"g{a} (mean of {int(ok.sum())} seeds)")
    axes[0, 1].set_xscale("symlog", linthresh=10)
    axes[0, 1].set_xlim(0, steps[-1])
    axes[0, 1].set_xlabel("epoch e")
    axes[0, 1].set_ylabel("group-mean prediction")
    axes[0, 1].set_title("per seed (light) and mean (bold)")
    axes[0, 1].legend(loc="best", fontsize=6)
    return RunResult(dataset=ds, summary=summary, figures={"hierarchy": fig})


EXPERIMENTS = [
    Experiment(
        name="rbe-hierarchy",
        work="Nakazato",
        description="three nested groups (H1 = 6, H2 = 4): the iterated splitting and the epochs of each split (Fig. 6)",
        config=RBEHierarchyConfig,
        run=run,
    )
]
