"""rbe-two-point: interaction of two training points through their responses (Nakazato Fig. 4).

Training distribution p(x, y) = ((1 - alpha) delta(x1) + alpha delta(x2)) p(y) with alpha = 0.01, so
x2 is almost never trained itself: whatever ages its response comes from training at x1. The two
points are at Hamming distance 1 or 12; encodings unbiased and biased p0/p1 = 1/4; 30 seeds. The
normalised self-responses S1(e) = Delta(x1, x1) / (y - f(x1)) and S2(e) = Delta(x2, x2) / (y - f(x2))
are measured inside the scan. The paper: for close points the agings enhance each other (S2 follows
S1); for distant points the interaction is very limited (x2 stays young, S2 > S1).

All conditions share their seeds (same initial weights and x1), so they are compared pairwise.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.stats
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.analysis import response as resp
from jaxdyn.engine import hparam, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.experiments.fields import RBETrainingFields
from jaxdyn.models.rbe_conv import RBEConvNet
from jaxdyn.tasks import rbe
from jaxdyn.tasks.rbe import encoding_name


@dataclasses.dataclass(frozen=True)
class RBETwoPointConfig(RBETrainingFields, Config):
    """Configuration of rbe-two-point (defaults: paper Fig. 4)."""

    seeds: int = param(30, "tests per condition (the paper shows 30)", min=3, max=100_000)
    alpha: float = param(0.01, "probability of drawing x2 at a step", min=0.0, max=0.5)
    distances: tuple[int, ...] = param((1, 12), "Hamming distances between x1 and x2", min=0, max=16, max_len=17)
    p1s: tuple[float, ...] = param((0.5, 0.8), "encodings p(y=1): 0.5 unbiased, 0.8 biased p0/p1=1/4", min=0.0, max=1.0, max_len=8)
    epochs: tuple[int, ...] = param((200, 400, 600, 800), "epochs shown in the scatter plots and the summary", min=0, max_len=32)
    probes_per_distance: int = param(2, "probe strings per Hamming distance around each point", min=1, max=1024)

    @classmethod
    def quick(cls) -> "RBETwoPointConfig":
        return cls(seeds=16, num_steps=400, record_every=20, epochs=(200, 400), alpha=0.01)

    def check(self) -> None:
        super().check()
        for e in self.epochs:
            if e % self.record_every or e > self.num_steps:
                raise ConfigError(f"epochs: {e} must be a multiple of record_every and <= num_steps")
        if len(set(self.distances)) != len(self.distances):
            raise ConfigError(f"distances: listed twice in {self.distances}")


def run(config: RBETwoPointConfig, ctx) -> Result:
    """Trains every (distance, encoding) condition on the same seeds; compares S1 and S2."""
    model = RBEConvNet()
    conds = [(d, p1) for d in config.distances for p1 in config.p1s]
    seed_ids = np.arange(config.seeds)
    datas = [rbe.ensemble_data(rbe.two_points(p1, config.alpha, d, probes_per_distance=config.probes_per_distance), seed_ids)
             for d, p1 in conds]
    keys, data = rbe.condition_members(datas, seed_ids)  # member = c * seeds + s
    loss_fn = config.loss_fn
    n = len(conds) * config.seeds
    result = ctx.train(
        model, rbe.encoder_task(None), optimizer("sgd", learning_rate=hparam("lr")),
        seeds=keys, num_steps=config.num_steps, loss=loss_fn,
        observables={"response": resp.ResponseObservable(model, loss_fn, ntk_output=False)}, record_every=config.record_every,
        hparams={"lr": np.full(n, config.lr, np.float32)}, data=data,
    )
    ctx.stage("analysis")
    shape = (len(config.distances), len(config.p1s), config.seeds)
    r = result.records["response"].reshape(shape + result.records["response"].shape[1:])  # (d, enc, seed, time, 2, P)
    h = np.asarray(data["probe_h"][0])
    prof = resp.profile(r, h)  # (d, enc, seed, time, 2, H)
    sizes = prof[..., 0]  # (d, enc, seed, time, 2): S1, S2
    diverged = result.diverged_at.reshape(shape) >= 0
    steps = result.record_steps

    rows, found = [], []
    for i, d in enumerate(config.distances):
        for j, p1 in enumerate(config.p1s):
            ok = ~diverged[i, j]
            s1, s2 = sizes[i, j, ok, :, 0], sizes[i, j, ok, :, 1]
            per_epoch = {}
            for ep in config.epochs:
                k = int(np.searchsorted(steps, ep))
                rel = (s2[:, k] - s1[:, k]) / s1[:, k]
                per_epoch[int(ep)] = {
                    "S1_mean": float(np.mean(s1[:, k])), "S2_mean": float(np.mean(s2[:, k])),
                    "diff_mean": float(np.mean(s2[:, k] - s1[:, k])), "diff_sem": float(scipy.stats.sem(s2[:, k] - s1[:, k])),
                    "rel_diff_median": float(np.median(rel)), "abs_rel_diff_median": float(np.median(np.abs(rel))),
                }
            rows.append({"distance": int(d), "encoding": encoding_name(p1), "p1": float(p1), "members": int(ok.sum()),
                         "epochs": per_epoch})

    last = int(max(config.epochs))
    k_last = int(np.searchsorted(steps, last))
    shares: dict[str, Any] = {}
    if len(config.distances) >= 2:
        near, far = min(config.distances), max(config.distances)
        i_near, i_far = config.distances.index(near), config.distances.index(far)
        for j, p1 in enumerate(config.p1s):
            name = encoding_name(p1)
            ok = ~(diverged[i_near, j] | diverged[i_far, j])
            rel = lambda i: (sizes[i, j, ok, k_last, 1] - sizes[i, j, ok, k_last, 0]) / sizes[i, j, ok, k_last, 0]  # noqa: E731
            rn, rf = rel(i_near), rel(i_far)
            # Paired over seeds (same x1 and initial weights): Wilcoxon signed-rank test on |rel diff|.
            p = float(scipy.stats.wilcoxon(np.abs(rf), np.abs(rn), alternative="greater").pvalue)
            slug = _slug(name)
            found.append(claims.check(
                f"{slug}-distance-separates", f"{name}: close points age together, distant ones hardly interact: median |S2 - S1| / S1 at epoch {last}, distance {far} minus distance {near} (paired Wilcoxon p = {p:.2g})",
                float(np.median(np.abs(rf)) - np.median(np.abs(rn))), ">", 0.0, kind="paper", source=claims.source(*_FIG4),
                threshold_source="a comparison: the difference above 0"))
            p_far = float(scipy.stats.wilcoxon(rf, alternative="greater").pvalue)
            found.append(claims.check(
                f"{slug}-far-stays-younger", f"{name}: at distance {far} the rarely trained x2 stays younger than x1 (median (S2 - S1) / S1 at epoch {last}; Wilcoxon p = {p_far:.2g})",
                float(np.median(rf)), ">", 0.0, kind="paper", source=claims.source(*_FIG4_FAR),
                threshold_source="a comparison: the difference above 0"))
            # The share of x1's aging that x2 takes part in: log(S2(0)/S2(e)) / log(S1(0)/S1(e)),
            # 1 when x2 ages as much as the trained x1, 0 when it does not age at all.
            share = lambda i: np.log(sizes[i, j, ok, 0, 1] / sizes[i, j, ok, k_last, 1]) / np.log(sizes[i, j, ok, 0, 0] / sizes[i, j, ok, k_last, 0])  # noqa: E731
            sn, sf = share(i_near), share(i_far)
            p_share = float(scipy.stats.wilcoxon(sn, sf, alternative="greater").pvalue)
            shares[name] = {"near": float(np.median(sn)), "far": float(np.median(sf)), "p": p_share}
            found.append(claims.check(
                f"{slug}-share-near-far", f"{name}: x2 shares more of x1's aging when close (median share log(S2(0)/S2)/log(S1(0)/S1) at epoch {last}, distance {near} minus distance {far}; paired Wilcoxon p = {p_share:.2g})",
                float(np.median(sn) - np.median(sf)), ">", 0.0, kind="paper", source=claims.source(*_FIG4),
                threshold_source="a comparison: the difference above 0"))

    numbers = {"seeds": config.seeds, "alpha": config.alpha, "conditions": rows, "aging_share_median": shares}
    ds = xr.Dataset(
        {
            "size": (("seed", "distance", "encoding", "time", "point"), np.transpose(sizes, (2, 0, 1, 3, 4))),
            "profile": (("seed", "distance", "encoding", "time", "point", "hamming"), np.transpose(prof, (2, 0, 1, 3, 4, 5)).astype(np.float32)),
            "diverged": (("seed", "distance", "encoding"), np.transpose(diverged, (2, 0, 1)).astype(np.int8)),
            "p1": ("encoding", np.asarray(config.p1s)),
        },
        coords={"seed": seed_ids, "distance": list(config.distances), "encoding": [encoding_name(p) for p in config.p1s],
                "time": steps, "point": ["x1", "x2"], "hamming": np.arange(prof.shape[-1])},
        attrs={"alpha": config.alpha, "lr": config.lr, "loss": config.loss,
               "size": "normalised self-response Delta(x_i, x_i) / (y - f(x_i)) after one SGD step at x_i (not applied)"},
    )
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(config, steps, sizes, diverged), numbers=numbers)


def _slug(encoding: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in encoding).strip("-").replace("--", "-")


_FIG4 = ("If the distance between the points is small, the agings are enhanced with each other, but the enhancement is very "
         "limited in the distant case", "Sec. III, Fig. 4")
_FIG4_FAR = ("On the other hand, the interaction effect is very limited if the points are distant enough", "Sec. III, Fig. 4")


def _figures(config, steps, sizes, diverged) -> dict:
    nd, ne = len(config.distances), len(config.p1s)
    fig, axes = plots.figure(ne, nd + 1, width=3.6, height=3.0)
    for j, p1 in enumerate(config.p1s):
        for i, d in enumerate(config.distances):
            ax = axes[j, i]
            ok = ~diverged[i, j]
            top = 0.0
            for c, ep in enumerate(config.epochs):
                k = int(np.searchsorted(steps, ep))
                s1, s2 = sizes[i, j, ok, k, 0], sizes[i, j, ok, k, 1]
                ax.plot(s1, s2, "o", color=plots.color(c), markerfacecolor="none", label=f"e = {ep}")
                top = max(top, s1.max(), s2.max())
            ax.plot([0, top], [0, top], color="0.5", linewidth=1, linestyle="--")
            ax.set_xlabel("S1 = size at x1 (trained)")
            ax.set_ylabel("S2 = size at x2 (alpha)")
            ax.set_title(f"{encoding_name(p1)}, H(x1, x2) = {d}")
            ax.legend(loc="upper left")
        ax = axes[j, nd]
        for i, d in enumerate(config.distances):
            ok = ~diverged[i, j]
            diff = sizes[i, j, ok, :, 1] - sizes[i, j, ok, :, 0]
            m, se = diff.mean(0), diff.std(0) / np.sqrt(max(ok.sum(), 1))
            ax.fill_between(steps, m - 2 * se, m + 2 * se, color=plots.color(i), alpha=0.2, linewidth=0)
            ax.plot(steps, m, "o", color=plots.color(i), markerfacecolor="none", markevery=max(1, len(steps) // 25), label=f"H = {d}")
        ax.axhline(0, color="0.5", linewidth=1)
        ax.set_xlabel("epoch e")
        ax.set_ylabel("S2 - S1 (mean, +-2 s.e.)")
        ax.set_title(f"S2 - S1, {encoding_name(p1)}")
        ax.legend(loc="best")
    return {"two_point": Figure(fig, "S2 against S1 per seed at the reported epochs (scatter, per distance and encoding) and the mean S2 - S1 over epochs")}


EXPERIMENT = Experiment(
    name="rbe-two-point",
    work="Nakazato",
    description="two points at Hamming distance 1 and 12, alpha = 0.01: difference of their normalised response sizes (Fig. 4)",
    config=RBETwoPointConfig,
    run=run,
)
