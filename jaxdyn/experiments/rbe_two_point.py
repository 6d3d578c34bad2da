"""rbe-two-point: interaction of two training points through their responses (Nakazato Fig. 4).

Training distribution p(x, y) = ((1 - alpha) delta(x1) + alpha delta(x2)) p(y) with alpha = 0.01, so
x2 is almost never trained itself. The two points are at Hamming distance 1 or 12; encodings
unbiased and biased p0/p1 = 1/4; 30 seeds. The normalised self-responses
S1(e) = Delta(x1, x1) / (y - f(x1)) and S2(e) = Delta(x2, x2) / (y - f(x2)) are measured inside the
scan (in output and logit space). The paper: for close points the agings enhance each other; for
distant points the enhancement is "very limited".

The control alpha = 0 (x2 never trained) separates what training at x1 does to x2's response
from what x2's own rare training adds: with alpha = 0 all of x2's aging is driven by x1. Aging is
compared as absolute shares, share = log(S2(0)/S2(e)) / log(S1(0)/S1(e)) (1: x2 ages as much as
the trained x1; 0: not at all), per seed, and the paper's statement is tested on the alpha = 0.01
runs and against the control.

All conditions share their seeds (same initial weights and x1; the same label and point draws
wherever alpha = 0.01 and alpha = 0 pick x1), so they are compared pairwise.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.analysis import response as resp
from jaxdyn.engine import hparam, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.experiments.fields import RBETrainingFields
from jaxdyn.models.rbe_conv import RBEConvNet
from jaxdyn.tasks import rbe
from jaxdyn.tasks.rbe import encoding_name

_FIG4 = ("If the distance between the points is small, the agings are enhanced with each other, but the enhancement is very "
         "limited in the distant case", "Sec. III, Fig. 4")
_FIG4_FAR = ("On the other hand, the interaction effect is very limited if the points are distant enough", "Sec. III, Fig. 4")
LIMITED = 0.5
"""The project's reading of the paper's "very limited" interaction (Fig. 4) for distant points: x2
takes less than this share (half) of x1's aging, each seed's absolute share."""


@dataclasses.dataclass(frozen=True)
class RBETwoPointConfig(RBETrainingFields, Config):
    """Configuration of rbe-two-point (defaults: paper Fig. 4)."""

    seeds: int = param(30, "tests per condition (the paper shows 30)", min=3, max=100_000)
    alpha: float = param(0.01, "probability of drawing x2 at a step (the paper: 0.01)", min=0.0, max=0.5)
    control: bool = param(True, "also run alpha = 0 (x2 never trained): the aging training at x1 drives at x2")
    distances: tuple[int, ...] = param((1, 12), "Hamming distances between x1 and x2", min=0, max=16, max_len=17)
    p1s: tuple[float, ...] = param((0.5, 0.8), "encodings p(y=1): 0.5 unbiased, 0.8 biased p0/p1=1/4", min=0.0, max=1.0, max_len=8)
    epochs: tuple[int, ...] = param((200, 400, 600, 800), "epochs shown in the scatter plots and the numbers; the shares are read at the last", min=0, max_len=32)
    probes_per_distance: int = param(2, "probe strings per Hamming distance around each point", min=1, max=1024)
    n_boot: int = param(1000, "bootstrap resamples of the seeds", min=10, max=100_000)

    @classmethod
    def quick(cls) -> RBETwoPointConfig:
        return cls(seeds=16, num_steps=400, record_every=20, epochs=(200, 400), alpha=0.01, n_boot=200)

    def check(self) -> None:
        super().check()
        for e in self.epochs:
            if e % self.record_every or e > self.num_steps or e == 0:
                raise ConfigError(f"epochs: {e} must be a positive multiple of record_every and <= num_steps")
        if len(set(self.distances)) != len(self.distances):
            raise ConfigError(f"distances: listed twice in {self.distances}")
        if self.control and self.alpha == 0.0:
            raise ConfigError("control: alpha is already 0; set control=false or alpha > 0")

    @property
    def alphas(self) -> tuple[float, ...]:
        return (self.alpha, 0.0) if self.control else (self.alpha,)


def _slug(encoding: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in encoding).strip("-").replace("--", "-")


def _share(sizes: np.ndarray, k: int) -> np.ndarray:
    """log(S2(0)/S2(e_k)) / log(S1(0)/S1(e_k)) per seed, sizes (seed, time, point)."""
    return np.log(sizes[:, 0, 1] / sizes[:, k, 1]) / np.log(sizes[:, 0, 0] / sizes[:, k, 0])


def run(config: RBETwoPointConfig, ctx) -> Result:
    """Trains every (distance, encoding, alpha) condition on the same seeds; compares S1 and S2."""
    model = RBEConvNet(init_scheme=config.init)
    conds = [(d, p1, a) for d in config.distances for p1 in config.p1s for a in config.alphas]
    seed_ids = np.arange(config.seeds)
    datas = [rbe.ensemble_data(rbe.two_points(p1, a, d, probes_per_distance=config.probes_per_distance), seed_ids)
             for d, p1, a in conds]
    keys, data = rbe.condition_members(datas, seed_ids)  # member = c * seeds + s
    loss_fn = config.loss_fn
    n = len(conds) * config.seeds
    result = ctx.train(
        model, rbe.encoder_task(None), optimizer("sgd", learning_rate=hparam("lr")),
        seeds=keys, num_steps=config.num_steps, loss=loss_fn,
        observables={"response": resp.ResponseObservable(model, loss_fn, logit=True)}, record_every=config.record_every,
        hparams={"lr": np.full(n, config.lr, np.float32)}, data=data,
    )
    ctx.stage("analysis")
    nd, ne, na = len(config.distances), len(config.p1s), len(config.alphas)
    shape = (nd, ne, na, config.seeds)
    rec = lambda name: result.records[name].reshape(shape + result.records[name].shape[1:])  # noqa: E731  (d, enc, alpha, seed, time, 2, ...)
    h = np.asarray(data["probe_h"][0])
    prof = resp.profile(rec("response"), h)  # (d, enc, alpha, seed, time, 2, H)
    prof_z = resp.profile(rec("response_logit"), h)
    sizes, sizes_z = prof[..., 0], prof_z[..., 0]  # (d, enc, alpha, seed, time, 2): S1, S2
    diverged = result.diverged_at.reshape(shape) >= 0
    steps = result.record_steps
    last = int(max(config.epochs))
    k_last = int(np.searchsorted(steps, last))

    rows = []
    for i, d in enumerate(config.distances):
        for j, p1 in enumerate(config.p1s):
            for k, a in enumerate(config.alphas):
                ok = ~diverged[i, j, k]
                s1, s2 = sizes[i, j, k, ok, :, 0], sizes[i, j, k, ok, :, 1]
                per_epoch = {}
                for ep in config.epochs:
                    t = int(np.searchsorted(steps, ep))
                    rel = (s2[:, t] - s1[:, t]) / s1[:, t]
                    sh = _share(sizes[i, j, k, ok], t)
                    sh_z = _share(sizes_z[i, j, k, ok], t)
                    per_epoch[int(ep)] = {
                        "S1_mean": float(np.mean(s1[:, t])), "S2_mean": float(np.mean(s2[:, t])),
                        "rel_diff_median": float(np.median(rel)), "abs_rel_diff_median": float(np.median(np.abs(rel))),
                        "share_median": float(np.median(sh)), "share_se": claims.bootstrap_se(sh, n_boot=config.n_boot),
                        "share_quartiles": [float(np.quantile(sh, 0.25)), float(np.quantile(sh, 0.75))],
                        "share_logit_median": float(np.median(sh_z)),
                    }
                rows.append({"distance": int(d), "encoding": encoding_name(p1), "p1": float(p1), "alpha": float(a),
                             "members": int(ok.sum()), "epochs": per_epoch})

    found = []
    shares: dict[str, Any] = {}
    if nd >= 2:
        near, far = min(config.distances), max(config.distances)
        i_near, i_far = config.distances.index(near), config.distances.index(far)
        for j, p1 in enumerate(config.p1s):
            name = encoding_name(p1)
            slug = _slug(name)
            k_main = 0
            ok = ~(diverged[i_near, j].any(0) | diverged[i_far, j].any(0))  # (seed,): every alpha of both distances finite
            sh = {(i, k): _share(sizes[i, j, k], k_last) for i in (i_near, i_far) for k in range(na)}
            rel = lambda i: (sizes[i, j, k_main, :, k_last, 1] - sizes[i, j, k_main, :, k_last, 0]) / sizes[i, j, k_main, :, k_last, 0]  # noqa: E731
            shares[name] = {f"H={config.distances[i]}, alpha={config.alphas[k]:g}": float(np.median(v[ok])) for (i, k), v in sh.items()}
            found.append(claims.per_seed(
                f"{slug}-distance-separates", f"{name}, alpha = {config.alpha:g}: close points age together, distant ones less: each seed's "
                f"|S2 - S1| / S1 at epoch {last}, distance {far} minus distance {near} (same seed: same x1 and weights)",
                np.abs(rel(i_far)) - np.abs(rel(i_near)), ">", 0.0, kind="paper", source=claims.source(*_FIG4), include=ok,
                required_fraction=resp.MAJORITY, threshold_source="a comparison: the difference above 0", reading=resp._MAJORITY_WHY))
            found.append(claims.per_seed(
                f"{slug}-far-stays-younger", f"{name}, alpha = {config.alpha:g}: at distance {far} the rarely trained x2 stays younger than "
                f"x1 (each seed's (S2 - S1) / S1 at epoch {last})", rel(i_far), ">", 0.0, kind="paper", source=claims.source(*_FIG4_FAR),
                include=ok, required_fraction=resp.MAJORITY, threshold_source="a comparison: the difference above 0",
                reading=resp._MAJORITY_WHY))
            found.append(claims.per_seed(
                f"{slug}-share-near-far", f"{name}, alpha = {config.alpha:g}: x2 shares more of x1's aging when close (each seed's share "
                f"log(S2(0)/S2)/log(S1(0)/S1) at epoch {last}, distance {near} minus distance {far}; medians "
                f"{np.median(sh[(i_near, 0)][ok]):.3g} and {np.median(sh[(i_far, 0)][ok]):.3g})",
                sh[(i_near, 0)] - sh[(i_far, 0)], ">", 0.0, kind="paper", source=claims.source(*_FIG4), include=ok,
                required_fraction=resp.MAJORITY, threshold_source="a comparison: the difference above 0", reading=resp._MAJORITY_WHY))
            found.append(claims.per_seed(
                f"{slug}-far-very-limited", f"{name}, alpha = {config.alpha:g}: the interaction at distance {far} is very limited: x2 "
                f"takes less than half of x1's aging (each seed's absolute share at epoch {last})", sh[(i_far, 0)], "<", LIMITED,
                kind="paper", source=claims.source(*_FIG4), include=ok, required_fraction=resp.MAJORITY,
                threshold_source="project's reading of 'very limited': under half of the trained point's aging",
                reading="absolute shares, not the near-far difference. " + resp._MAJORITY_WHY))
            if config.control:
                k0 = config.alphas.index(0.0)
                found.append(claims.per_seed(
                    f"{slug}-far-very-limited-control", f"{name}, control alpha = 0 (x2 never trained): training at x1 alone drives less "
                    f"than half of x1's aging at the point {far} bits away (each seed's absolute share at epoch {last})",
                    sh[(i_far, k0)], "<", LIMITED, kind="paper", source=claims.source(*_FIG4_FAR), include=ok,
                    required_fraction=resp.MAJORITY, threshold_source="project's reading of 'very limited': under half of the trained point's aging",
                    reading="with alpha = 0 every bit of x2's aging is the interaction with x1's training. " + resp._MAJORITY_WHY))
                found.append(claims.per_seed(
                    f"{slug}-near-ages-with-x1-control", f"{name}, control alpha = 0: the untrained point {near} bit away ages with x1, more "
                    f"than the one {far} bits away (each seed's share, near minus far)", sh[(i_near, k0)] - sh[(i_far, k0)], ">", 0.0,
                    kind="paper", source=claims.source(*_FIG4), include=ok, required_fraction=resp.MAJORITY,
                    threshold_source="a comparison: the difference above 0", reading=resp._MAJORITY_WHY))
                for i in (i_near, i_far):
                    own = sh[(i, 0)] - sh[(i, k0)]
                    found.append(claims.per_seed(
                        f"{slug}-own-training-H{config.distances[i]}", f"{name}, distance {config.distances[i]}: x2's own rare training "
                        f"(alpha = {config.alpha:g}) adds little to its aging (each seed's share at alpha = {config.alpha:g} minus at alpha = 0, "
                        f"absolute)", np.abs(own), "<", 0.1, kind="extension", include=ok, required_fraction=resp.MAJORITY,
                        why="separates the aging x1's training drives at x2 from the aging x2's own training adds",
                        threshold_source="project's tolerance: a tenth of x1's aging"))

    numbers = {"seeds": config.seeds, "alphas": list(config.alphas), "conditions": rows, "aging_share_median": shares}
    cond_dims = ("seed", "distance", "encoding", "alpha")
    tr = lambda a: np.moveaxis(a, 3, 0)  # noqa: E731  (d, enc, alpha, seed, ...) -> (seed, d, enc, alpha, ...)
    pts = np.asarray(data["points"]).reshape(shape + (2, rbe.BITS))
    probes = np.asarray(data["probes"]).reshape(shape + np.shape(data["probes"])[1:])
    one = {"units": "1"}
    profile_of = ", averaged over the probes at each Hamming distance h from x_i"
    ds = xr.Dataset(
        {
            "size": ((*cond_dims, "time", "point"), tr(sizes),
                     {"long_name": "S_i: normalised self-response Delta(x_i, x_i) / (y - f(x_i)) after one SGD step at x_i (not applied)", **one}),
            "size_logit": ((*cond_dims, "time", "point"), tr(sizes_z),
                           {"long_name": "logit-space self-response Delta z(x_i) / ((y - f(x_i)) sigma'(z_i)) of the same step", **one}),
            "profile": ((*cond_dims, "time", "point", "hamming"), tr(prof).astype(np.float32),
                        {"long_name": "normalised response Delta f(probe) / (y - f(x_i)) of the step at x_i" + profile_of, **one}),
            "profile_logit": ((*cond_dims, "time", "point", "hamming"), tr(prof_z).astype(np.float32),
                              {"long_name": "logit-space response Delta z(probe) / ((y - f(x_i)) sigma'(z_i)) of the step at x_i" + profile_of,
                               **one}),
            "theta_logit_profile": ((*cond_dims, "time", "point", "hamming"), tr(resp.profile(rec("theta_logit"), h)).astype(np.float32),
                                    {"long_name": "empirical NTK Theta_z(x_i, probe) of the logits" + profile_of, **one}),
            "theta_profile": ((*cond_dims, "time", "point", "hamming"), tr(resp.profile(rec("theta"), h)).astype(np.float32),
                              {"long_name": "empirical NTK Theta_f(x_i, probe) of the sigmoid output" + profile_of, **one}),
            "probe_f": ((*cond_dims, "time", "point", "probe"), tr(rec("probe_f")).astype(np.float32),
                        {"long_name": "output f(probe) before the probe step, probes around x_i", **one}),
            "source": ((*cond_dims, "time", "point", "field"), tr(rec("source")),
                       {"long_name": "[f(x_i), y]: the output at x_i before the probe step and the step's label y ~ p(y)", **one}),
            "points": ((*cond_dims, "point", "bit"), tr(pts).astype(np.int8), {"long_name": "the training strings x1, x2 (bits 0/1)", **one}),
            "probe_bits": ((*cond_dims, "point", "probe", "bit"), tr(probes).astype(np.int8),
                           {"long_name": "probe strings (bits 0/1) around x_i, at Hamming distance probe_hamming from it", **one}),
            "probe_hamming": (("probe",), h, {"long_name": "Hamming distance h of each probe from its point x_i", "units": "bit"}),
            "diverged": (cond_dims, tr(diverged).astype(np.int8), {"long_name": "1 where the member's training diverged (a non-finite "
                                                                                 "update), else 0", **one}),
            "p1": ("encoding", np.asarray(config.p1s), {"long_name": "label probability p(y=1) of the encoding (both points)", **one}),
        },
        coords={"seed": seed_ids, "distance": ("distance", list(config.distances), {"long_name": "Hamming distance between x1 and x2", "units": "bit"}),
                "encoding": ("encoding", [encoding_name(p) for p in config.p1s], {"long_name": "encoding p(y) of the labels"}),
                "alpha": ("alpha", list(config.alphas), {"long_name": "alpha: probability of drawing x2 at a step (0: the control)", **one}),
                "time": ("time", steps, {"long_name": "training epoch e of the records (one SGD step per epoch)", "units": "epoch"}),
                "point": ("point", ["x1", "x2"], {"long_name": "training point: x1 (drawn with 1 - alpha) or x2 (drawn with alpha)"}),
                "hamming": ("hamming", np.arange(prof.shape[-1]), {"long_name": "Hamming distance h from the point x_i", "units": "bit"}),
                "field": ("field", ["f", "y"], {"long_name": "entry of source: f = f(x_i), y = the probe step's label"})},
        attrs={"lr": config.lr, "loss": config.loss, "init": config.init,
               "size": "normalised self-response Delta(x_i, x_i) / (y - f(x_i)) after one SGD step at x_i (not applied)",
               "size_logit": "the same step in logit space: Delta z(x_i) / ((y - f(x_i)) sigma'(z_i))",
               "share": "log(S2(0)/S2(e)) / log(S1(0)/S1(e)) per seed, from size"},
    )
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(config, steps, sizes, diverged, k_last), numbers=numbers)


def _figures(config, steps, sizes, diverged, k_last) -> dict:
    nd, ne = len(config.distances), len(config.p1s)
    fig, axes = plots.figure(ne, nd + 2, width=3.5, height=3.1)
    for j, p1 in enumerate(config.p1s):
        name = encoding_name(p1)
        for i, d in enumerate(config.distances):
            ax = axes[j, i]
            ok = ~diverged[i, j, 0]
            xs, ys = [], []
            for c, ep in enumerate(config.epochs):
                t = int(np.searchsorted(steps, ep))
                s1, s2 = sizes[i, j, 0, ok, t, 0], sizes[i, j, 0, ok, t, 1]
                ax.plot(s1, s2, "o", color=plots.color(c), markerfacecolor="none", label=f"e = {ep}")
                xs.append(s1)
                ys.append(s2)
            (x0, x1), (y0, y1) = plots.fit_limits(ax, np.concatenate(xs), np.concatenate(ys))
            lo, hi = max(x0, y0), min(x1, y1)
            if hi > lo:
                ax.plot([lo, hi], [lo, hi], color="0.5", linewidth=1, linestyle="--")
            ax.set_xlabel("S1: size at x1 (trained)")
            ax.set_ylabel("S2: size at x2")
            ax.set_title(f"{name}, H = {d}, alpha = {config.alpha:g}", fontsize=9)
            ax.legend(loc="upper left", fontsize=7)
        ax = axes[j, nd]
        for i, d in enumerate(config.distances):
            for k, a in enumerate(config.alphas):
                ok = ~diverged[i, j, k]
                diff = sizes[i, j, k, ok, :, 1] - sizes[i, j, k, ok, :, 0]
                m, se = diff.mean(0), diff.std(0) / np.sqrt(max(ok.sum(), 1))
                style = "-" if k == 0 else ":"
                ax.fill_between(steps, m - 2 * se, m + 2 * se, color=plots.color(i), alpha=0.15, linewidth=0)
                ax.plot(steps, m, style, color=plots.color(i), label=f"H = {d}, alpha = {a:g}")
        ax.axhline(0, color="0.5", linewidth=1)
        ax.set_xlabel("epoch e")
        ax.set_ylabel("S2 - S1 (mean, +-2 s.e.)")
        ax.set_title(f"S2 - S1, {name}", fontsize=9)
        ax.legend(loc="best", fontsize=7)
        ax = axes[j, nd + 1]
        labels, values = [], []
        for i, d in enumerate(config.distances):
            for k, a in enumerate(config.alphas):
                ok = ~diverged[i, j, k]
                labels.append(f"H={d}\nalpha={a:g}")
                values.append(_share(sizes[i, j, k, ok], k_last))
        plots.plot_strips(ax, labels, values)
        ax.axhline(LIMITED, color="0.4", linestyle="--", linewidth=1)
        ax.axhline(1.0, color="0.7", linewidth=0.8)
        ax.set_ylabel(f"aging share at epoch {int(steps[k_last])}")
        ax.set_title(f"x2's share of x1's aging, {name}", fontsize=9)
    return {"two_point": Figure(fig, "S2 against S1 per seed at the reported epochs (axes fitted to the data; dashed: S2 = S1), the mean S2 - S1 "
                                     "over epochs for each distance and alpha (dotted: the alpha = 0 control), and each seed's aging share "
                                     "log(S2(0)/S2)/log(S1(0)/S1) (dashed: one half)")}


EXPERIMENT = Experiment(
    name="rbe-two-point",
    work="Nakazato",
    description="two points at Hamming distance 1 and 12, alpha = 0.01 and the alpha = 0 control: absolute shares of x1's aging at x2 (Fig. 4)",
    config=RBETwoPointConfig,
    run=run,
)
"""Registers ``jaxdyn run rbe-two-point``: two trained points at Hamming distance 1 and 12, the share of x1's aging at x2 (Nakazato Fig. 4)."""
