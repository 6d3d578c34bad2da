"""rbe-images: the training response law on real images (Nakazato, appendix Fig. 8-9).

The paper trains "the same type of convolutional network", with 2-D convolutions, on one randomly
drawn MNIST image whose label is drawn at every epoch from p(y) with p0/p1 = 1/5, 20 times, and
shows the aging of the response size (Fig. 8) and, after 500 epochs, the response on 1000 other
images against their mean pixel distance <|x_i - x_j|> (Fig. 9: "not so clear linear one but
monotonically decreasing", with some isolated responses). By default the images are the 8x8
digits that ship with scikit-learn (no download); ``--set mnist_root=DIR`` reads a local MNIST
from its idx files (``jaxdyn.tasks.digits.load_mnist_images``) and runs the paper's protocol
(1000 probes, the kernel read after 500 epochs). The net is :class:`RBEConvNet2D` (3 layers of 8
filters, ELU, 3x3 and VALID: the kernel size and padding are the project's choices, the paper
gives neither). The response is measured inside the engine's scan as in rbe-response, in output
and logit space (the aging split into the network's part and the sigmoid factor).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.stats
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.analysis import response as resp
from jaxdyn.engine import hparam, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.experiments.fields import RBETrainingFields, ResponseMeasurementFields
from jaxdyn.models.rbe_conv import RBEConvNet2D
from jaxdyn.tasks import digits, rbe


@dataclasses.dataclass(frozen=True)
class RBEImagesConfig(RBETrainingFields, ResponseMeasurementFields, Config):
    """Configuration of rbe-images (defaults: the paper's MNIST test, on scikit-learn's digits)."""

    seeds: int = param(20, "tests (the paper: 20)", min=3, max=100_000)
    p0_over_p1: float = param(0.2, "encoding ratio p0/p1 (the paper: 1/5)", min=0.0, max=1e3)
    num_steps: int = param(500, "training epochs (the paper reads the kernel after 500)", min=1, max=10_000_000)
    epochs: tuple[int, ...] = param((100, 500), "epochs at which the kernel is reported", min=0, max_len=32)
    num_probes: int = param(0, "other images the response is read on; 0: 500 of the 8x8 digits, or the paper's 1000 of MNIST", min=0, max=59_999)
    distance_bins: int = param(10, "bins of the image distance for the kernel profile", min=3, max=100)
    mnist_root: str = param("", "folder holding MNIST's idx files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]); empty: scikit-learn's 8x8 digits")
    mnist_split: str = param("train", "MNIST split read from mnist_root", choices=("train", "t10k"))
    early: bool = param(True, "also record epochs 1..record_every-1 every epoch (a short second run of the same members) for the aging axis")

    @classmethod
    def quick(cls) -> RBEImagesConfig:
        return cls(seeds=10, num_steps=200, record_every=10, epochs=(100, 200), fit_start=20, num_probes=100, n_boot=200)

    def check(self) -> None:
        super().check()
        from pathlib import Path

        if self.mnist_root and not Path(self.mnist_root).is_dir():
            raise ConfigError(f"mnist_root: {self.mnist_root} is not a directory")
        if not self.mnist_root and self.num_probes > 1796:
            raise ConfigError(f"num_probes: the 8x8 digits have 1797 images, so at most 1796 probes; got {self.num_probes}")

    @property
    def probes(self) -> int:
        """The number of probe images: ``num_probes``, or 500 (digits) / 1000 (MNIST) when 0."""
        return self.num_probes or (1000 if self.mnist_root else 500)

    def images(self) -> tuple[np.ndarray, str]:
        """The image set and its description; raises ConfigError naming the file on a bad MNIST."""
        if not self.mnist_root:
            return digits.load_digits_images()[0], "scikit-learn digits, 8x8, scaled to [0, 1]"
        try:
            images, _ = digits.load_mnist_images(str(self.mnist_root), self.mnist_split)
        except ValueError as exc:
            raise ConfigError(f"mnist_root: {exc}") from None
        if self.probes >= images.shape[0]:
            raise ConfigError(f"num_probes: {self.probes} probes need more than the {images.shape[0]} images in {self.mnist_root}")
        return images, f"MNIST {self.mnist_split} from {self.mnist_root}, 28x28, scaled to [0, 1]"


def distance_profile(kernel: np.ndarray, distance: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of ``kernel`` (..., P) in distance bins ``edges`` (B + 1,) -> (..., B), NaN where empty."""
    out = np.full(kernel.shape[:-1] + (len(edges) - 1,), np.nan)
    for b in range(len(edges) - 1):
        sel = (distance >= edges[b]) & (distance < edges[b + 1]) if b < len(edges) - 2 else (distance >= edges[b]) & (distance <= edges[b + 1])
        count = sel.sum(-1)
        total = np.where(sel, kernel, 0.0).sum(-1)
        out[..., b] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def run(config: RBEImagesConfig, ctx) -> Result:
    """Trains one image per seed; fits the aging; the response against image distance."""
    p1 = 1.0 / (1.0 + config.p0_over_p1)
    images, description = config.images()
    model = RBEConvNet2D(init_scheme=config.init)
    seed_ids = np.arange(config.seeds)
    keys, data = rbe.condition_members([rbe.ensemble_data(digits.single_image(p1, config.probes, images), seed_ids)], seed_ids)
    loss_fn = config.loss_fn

    def simulate(num_steps: int, record_every: int):
        return ctx.train(
            model, rbe.encoder_task(None), optimizer("sgd", learning_rate=hparam("lr")), seeds=keys, num_steps=num_steps,
            loss=loss_fn, observables={"response": resp.ResponseObservable(model, loss_fn, logit=True)}, record_every=record_every,
            hparams={"lr": np.full(config.seeds, config.lr, np.float32)}, data=data,
        )

    result = simulate(config.num_steps, config.record_every)
    # The same members recorded every epoch up to the first record, so the aging axis starts at
    # epoch 1 (identical trajectories: the same keys and data).
    early = simulate(config.record_every, 1) if config.early and config.record_every > 1 else None
    ctx.stage("analysis")
    steps = result.record_steps
    response = result.records["response"][:, :, 0].astype(np.float64)  # (seed, time, P + 1); probe 0 = x_o
    theta = result.records["theta"][:, :, 0].astype(np.float64)
    response_z = result.records["response_logit"][:, :, 0].astype(np.float64)
    theta_z = result.records["theta_logit"][:, :, 0].astype(np.float64)
    probe_f = result.records["probe_f"][:, :, 0].astype(np.float64)
    src = result.records["source"][:, :, 0].astype(np.float64)
    f_s, y_s = src[..., 0], src[..., 1]
    g = resp.loss_derivative(loss_fn, f_s, y_s)
    pred = resp.ntk_prediction(theta, g, y_s, f_s, config.lr)
    distance = np.asarray(data["probe_distance"], np.float64)  # (seed, P + 1)
    # The rule of rbe-response: a member that diverged, recorded a non-finite value or whose
    # f(x_o) saturated to 0 or 1 in float32 (normalised responses undefined) is left out of every
    # claim, counted in each with its reason.
    flags = {"diverged_at": result.diverged_at[:, None], "nonfinite_at": result.nonfinite_at[:, None], "f_source": f_s[:, None],
             "steps": steps}
    exclusions = resp.member_exclusions(flags)
    ok, why = exclusions.included[:, 0], exclusions.reason[:, 0]
    left_out_reasons = "; ".join(resp.reason_kinds(why[~ok]))

    pl = resp.power_law_fit(steps, response[ok][:, :, 0], config.fit_start, n_boot=config.n_boot)
    pl_z = resp.power_law_fit(steps, response_z[ok][:, :, 0], config.fit_start, n_boot=config.n_boot, seed=1)
    pl_sig = resp.power_law_fit(steps, resp.sigmoid_factor(f_s[ok]), config.fit_start, n_boot=config.n_boot, seed=2)
    pl_thz = resp.power_law_fit(steps, theta_z[ok][:, :, 0], config.fit_start, n_boot=config.n_boot, seed=3)
    kernel = response / response[:, :, :1]  # K = R(x) / R(x_o)
    # Equal-count bins over all seeds' probes (near images are rare: uniform bins would be sparse).
    # (The distances are the images' own, so every member's count, used or left out.)
    edges = np.quantile(distance[:, 1:], np.linspace(0.0, 1.0, config.distance_bins + 1))
    centres = 0.5 * (edges[1:] + edges[:-1])
    per_epoch = {}
    rng = np.random.default_rng(0)
    for ep in config.epochs:
        i = int(np.searchsorted(steps, ep))
        k, d = kernel[ok, i, 1:], distance[ok, 1:]
        # Rank correlation within each seed (seeds differ in their overall level), then its mean
        # over seeds with a bootstrap interval.
        rhos = np.array([scipy.stats.spearmanr(d[s], k[s]).statistic for s in range(k.shape[0])])
        kz = response_z[ok, i, 1:] / response_z[ok, i, :1]
        rhos_z = np.array([scipy.stats.spearmanr(d[s], kz[s]).statistic for s in range(kz.shape[0])])
        boots = [np.mean(rhos[rng.integers(0, rhos.size, rhos.size)]) for _ in range(config.n_boot)] if rhos.size else [np.nan]
        prof = distance_profile(k, d, edges)  # (seed, bins)
        prof_mean = np.nanmean(prof, 0)
        valid = np.isfinite(prof_mean)
        line = resp.line_fit(centres[valid], prof_mean[valid])
        per_epoch[int(ep)] = {
            "spearman_pooled": float(scipy.stats.spearmanr(d.ravel(), k.ravel()).statistic),
            "spearman_per_seed_mean": float(rhos.mean()), "spearman_ci": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
            "spearman_per_seed_median": float(np.median(rhos)), "fraction_of_seeds_decreasing": float(np.mean(rhos < 0)),
            "profile_bins": centres.tolist(), "profile": prof_mean.tolist(),
            "profile_monotone_violations": int(np.sum(np.diff(prof_mean[valid]) > 0)),
            "slope_per_unit_distance": line.slope, "r2_linear": line.r2,
            # "Isolated responses": probes that respond more than x_o itself (K > 1).
            "fraction_above_self": float(np.mean(k > 1.0)),
            "ntk_explained": resp.explained_fraction(response[ok, i], pred[ok, i]),
            "spearman_logit_per_seed_median": float(np.median(rhos_z)),
            "rho_per_seed": rhos, "rho_logit_per_seed": rhos_z,
            "monotone_violations_per_seed": np.array([int(np.sum(np.diff(p[np.isfinite(p)]) > 0)) for p in prof]),
        }
    last = per_epoch[max(per_epoch)]
    law = claims.source("We can confirm both the power law decay and the distance dependent response kernel", "Sec. IV, Figs. 8-9")
    mono = claims.source("The kernel is not so clear linear one but monotonically decreasing one", "Sec. IV, Fig. 9")
    maj = dict(required_fraction=resp.MAJORITY, reading=resp._MAJORITY_WHY)
    same_step = _same_step(f_s[ok], y_s[ok], response[ok][:, :, 0], response_z[ok][:, :, 0])
    found = [
        claims.per_seed("aging", f"the response size decays as a power law on real images (each seed's exponent tau of S(e) over epochs "
                        f"{config.fit_start}..end, output space as measured)", pl.per_seed, ">", 0.0, kind="paper", source=law,
                        threshold_source="a decay: an exponent above 0", **maj),
        claims.check("aging-loglog-r2", "... a straight log-log line (R^2 of the seed-mean curve over the fit window)", pl.r2, ">=", 0.95,
                     kind="paper", source=law, threshold_source="project's reading of 'power law': R^2 >= 0.95",
                     reading="on the seed-mean curve, as the paper's Fig. 8 shows its tests together"),
        claims.per_seed("aging-logit", f"the aging belongs to the network: the logit-space response decays as a power law (each seed's "
                        f"exponent; seed-mean fits: output space {pl.tau:.3g}, logit space {pl_z.tau:.3g}, sigmoid factor {pl_sig.tau:.3g}; "
                        f"per seed tau_f - tau_z - tau_sigma has median {np.median(pl.per_seed - pl_z.per_seed - pl_sig.per_seed):.2g})", pl_z.per_seed,
                        ">", 0.0, kind="paper", source=law, threshold_source="a decay: an exponent above 0",
                        required_fraction=resp.MAJORITY, reading="read on the logit-space response, without the sigmoid's saturation. " + resp._MAJORITY_WHY),
        claims.per_seed("kernel-decreases", f"the response decreases with image distance at epoch {max(per_epoch)} (each seed's Spearman rho "
                        "between distance and K = R/R(x_o))", last["rho_per_seed"], "<", 0.0, kind="paper", source=mono,
                        threshold_source="a decreasing relation: rho below 0", initial=per_epoch[min(per_epoch)]["rho_per_seed"], **maj),
        claims.per_seed("kernel-decreases-logit", f"... and in logit space at epoch {max(per_epoch)} (each seed's Spearman rho of K_z = R_z/R_z(x_o))",
                        last["rho_logit_per_seed"], "<", 0.0, kind="paper", source=mono, threshold_source="a decreasing relation: rho below 0",
                        required_fraction=resp.MAJORITY, reading="the kernel without the sigmoid's ratio sigma'(z_x)/sigma'(z_o). " + resp._MAJORITY_WHY),
        claims.per_seed("kernel-monotone", f"... monotonically: each seed's binned kernel K = R/R(x_o) never increases from bin to bin over "
                        f"{config.distance_bins} equal-count distance bins (number of increases; seed mean: {last['profile_monotone_violations']})",
                        last["monotone_violations_per_seed"], "<=", 0, kind="paper", source=mono,
                        threshold_source="monotone: no increase between bins", **maj),
        claims.check("ntk-explains", "the NTK (Eq. 4-5) explains the measured response at every reported epoch (smallest fraction of variance explained)",
                     min(v["ntk_explained"] for v in per_epoch.values()), ">=", 0.9, kind="sanity",
                     why="one SGD step against its own first-order expansion: true at small lr by construction",
                     threshold_source="project's tolerance"),
        claims.per_seed("one-step-two-spaces", "the output- and logit-space responses are readings of one step: sigma(z_o + Delta z_o) - f_o = "
                        "Delta f_o (each seed's largest absolute mismatch)", same_step, "<", 1e-5, kind="sanity",
                        why="true by construction when both spaces read the same SGD step: a check of the observable",
                        threshold_source="float32 rounding of f (project's tolerance)"),
    ]
    found = claims.leaving_out(found, ok, left_out_reasons)
    numbers = {
        "seeds": config.seeds,
        "left_out": int((~ok).sum()),
        "p1": p1,
        "init": config.init,
        "images": description,
        "num_probes": config.probes,
        "power_law": pl.to_dict(),
        "saturation": {"tau_output": pl.tau, "tau_logit": pl_z.tau, "tau_sigmoid_factor": pl_sig.tau, "tau_theta_logit": pl_thz.tau,
                       "tau_logit_ci": list(pl_z.ci), "theta_logit_growth_median": float(np.median(theta_z[ok, -1, 0] / theta_z[ok, 0, 0]))},
        "kernel": {ep: {k: v for k, v in row.items() if not isinstance(v, np.ndarray)} for ep, row in per_epoch.items()},
    }
    one = {"units": "1"}
    ds = xr.Dataset(
        {
            "response": (("seed", "time", "probe"), response.astype(np.float32),
                         {"long_name": "normalised response Delta f(probe) / (y_o - f(x_o)) after one SGD step at x_o with y_o ~ p(y) "
                                       "(not applied to training)", **one}),
            "theta": (("seed", "time", "probe"), theta.astype(np.float32),
                      {"long_name": "empirical NTK Theta_f(x_o, probe) of the sigmoid output at the same weights", **one}),
            "response_logit": (("seed", "time", "probe"), response_z.astype(np.float32),
                               {"long_name": "logit-space response Delta z(probe) / ((y_o - f(x_o)) sigma'(z_o)) of the same step", **one}),
            "theta_logit": (("seed", "time", "probe"), theta_z.astype(np.float32),
                            {"long_name": "empirical NTK Theta_z(x_o, probe) of the logits", **one}),
            "probe_f": (("seed", "time", "probe"), probe_f.astype(np.float32), {"long_name": "output f(probe) before the probe step", **one}),
            "f_source": (("seed", "time"), f_s, {"long_name": "output f(x_o) before the probe step", **one}),
            "y_source": (("seed", "time"), y_s, {"long_name": "label y_o ~ p(y) (0 or 1) of the probe step", **one}),
            "probe_distance": (("seed", "probe"), distance,
                               {"long_name": "image distance <|x_o - x|> of the probe: mean absolute pixel difference, pixels in [0, 1]", **one}),
            "probe_index": (("seed", "probe"), np.asarray(data["probe_index"]),
                            {"long_name": "index of the probe image in the image set named in attrs 'images' (probe 0: x_o)", **one}),
            "x_o": (("seed", "row", "column"), np.asarray(data["sources"][:, 0], np.float32),
                    {"long_name": "the training image x_o (pixels in [0, 1])", **one}),
            "diverged_at": ("seed", result.diverged_at),
            "nonfinite_at": ("seed", result.nonfinite_at),
            "excluded_reason": ("seed", exclusions.dataset_reason[:, 0]),
            **({} if early is None else {"response_source_early": (("seed", "early_time"), early.records["response"][:, :, 0, 0].astype(np.float32),
                                                                   {"long_name": "normalised response at x_o itself (probe 0), the second run "
                                                                                 "recorded every epoch up to record_every", **one})}),
        },
        coords={"seed": seed_ids,
                "time": ("time", steps, {"long_name": "training epoch e of the records (one SGD step on x_o per epoch)", "units": "epoch"}),
                "probe": ("probe", np.arange(response.shape[-1]),
                          {"long_name": "probe index (0: the training image x_o itself, then the other images)", **one}),
                **({} if early is None else {"early_time": ("early_time", early.record_steps,
                                                            {"long_name": "training epoch of the second run's records", "units": "epoch"})})},
        attrs={"p1": p1, "lr": config.lr, "loss": config.loss, "init": config.init, "fit_start": config.fit_start, "images": description,
               "probe_images": "the probes are images probe_index of the set named in 'images' (the training image x_o is stored)",
               "architecture": "3x3 kernels and VALID padding are the project's choices (the paper gives neither)",
               "probe_0": "the training image itself", "distance": "mean |x_o - x| over pixels, images in [0, 1]"},
    )
    fig, axes = plots.figure(1, 2, width=4.2, height=3.2)
    t_plot, size_plot = steps, response[:, :, 0]
    if early is not None:  # epochs 1..record_every-1 from the second run, then the long run's records
        k = config.record_every
        t_plot = np.concatenate([steps[:1], early.record_steps[1:k], steps[1:]])
        size_plot = np.concatenate([size_plot[:, :1], early.records["response"][:, 1:k, 0, 0], size_plot[:, 1:]], axis=1)
    for s in np.flatnonzero(ok):
        axes[0, 0].plot(t_plot[1:], size_plot[s, 1:], color=plots.color(s), alpha=0.3, linewidth=0.8)
    plots.plot_aging(axes[0, 0], t_plot, size_plot[ok], pl.to_dict(), "0.1", label="seed mean")
    axes[0, 0].set_title(f"(Fig. 8) aging, {'MNIST' if config.mnist_root else '8x8 digits'}, p0/p1 = {config.p0_over_p1:g}")
    axes[0, 0].legend(loc="lower left")
    i = int(np.searchsorted(steps, max(per_epoch)))
    for s in np.flatnonzero(ok):
        axes[0, 1].plot(distance[s, 1:], response[s, i, 1:], ".", color=plots.color(s), markersize=2, alpha=0.5)
    prof_r = np.nanmean(distance_profile(response[ok, i, 1:], distance[ok, 1:], edges), 0)
    axes[0, 1].plot(centres, prof_r, "-", color="0.1", label="binned mean")
    axes[0, 1].set_xlabel("image distance <|x_o - x|>")
    axes[0, 1].set_ylabel("normalised response Delta/(y_o - f(x_o))")
    axes[0, 1].set_title(f"(Fig. 9) response vs distance, epoch {max(per_epoch)}")
    axes[0, 1].legend(loc="best")
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures={"images": Figure(fig, "aging of the response size on the images (left, per seed and seed mean with the fit) and the response against image distance at the last reported epoch (right)")},
                  numbers=numbers)


def _same_step(f_s, y_s, r_f, r_z) -> np.ndarray:
    """Per seed: max over records of |sigma(z_o + Delta z_o) - f_o - Delta f_o| (the two spaces' readings of one step)."""
    gap = y_s - f_s
    d_f, d_z = r_f * gap, r_z * gap * f_s * (1 - f_s)
    z = np.log(f_s) - np.log1p(-f_s)
    return np.max(np.abs(1.0 / (1.0 + np.exp(-(z + d_z))) - f_s - d_f), axis=1)


EXPERIMENT = Experiment(
    name="rbe-images",
    work="Nakazato",
    description="the response law on real images (scikit-learn's 8x8 digits, or a local MNIST) with a 2-D conv net, p0/p1 = 1/5: aging in both spaces, response vs image distance",
    config=RBEImagesConfig,
    run=run,
)
"""Registers ``jaxdyn run rbe-images``: Nakazato's response law on real images (8x8 digits or MNIST) with a 2-D conv net."""
