"""rbe-response: the training response law on one training point (Nakazato Fig. 1, Eq. 8).

A random 16-bit string x_o is trained with SGD (lr 0.1), one step per epoch, its label drawn at
every step from p(y): unbiased p0 = p1 = 1/2, biased p0/p1 = 1/4 and deterministic p0 = 1 (Fig. 7).
Inside the engine's scan, every ``record_every`` steps, one extra SGD step at x_o (label from p(y))
is taken from the current weights without being applied, and the normalised response
Delta(x_o, x) / (y_o - f(x_o)) (Eq. 5) is read on probe strings at every Hamming distance
h = 0..16, beside the NTK Theta(x_o, x) of the same weights (``jaxdyn.analysis.response``).

The output passes through a sigmoid, so the output-space response is the logit-space one times
(f(1-f))^2 (``sigma'(z)^2``): the same step is read in logit space too, and every aging exponent is
reported for the output-space response (as the paper measured it), the logit-space response (the
network's kernel), the sigmoid factor, and the self-NTK of the logits. The aging claims are made in
both spaces; the one in logit space is the part that belongs to the network.

Reported per encoding: the size S(e) = R(h = 0), its power-law exponent tau after the initial
phase (per seed and on the seed mean, with seed-bootstrap intervals), the exponent's drift and its
sensitivity to the fit start (10, 20, 50, 100) and on doubling windows; the kernel
K(h, e) = R(h) / R(0) at the paper's epochs with its slope per bit (per seed and on the seed mean,
each epoch with its interval); the NTK's one-step explanation (a sanity check), how long the NTK of
one epoch keeps predicting the response (the frozen NTK), and how well the kernel ODE started from
the network at each reported epoch predicts its outputs over the next window.

A second, short training call of the same members (same keys: identical trajectories) records
epochs 1..record_every - 1 every epoch, so the aging axes start at epoch 1.

Encodings of one run share their seeds (same initial weights, x_o and probes), so their
comparison is paired.
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
from jaxdyn.experiments.fields import RBETrainingFields, ResponseMeasurementFields
from jaxdyn.models.rbe_conv import RBEConvNet
from jaxdyn.tasks import rbe


@dataclasses.dataclass(frozen=True)
class RBEResponseConfig(RBETrainingFields, ResponseMeasurementFields, Config):
    """Configuration of rbe-response (defaults: the paper's standard setting, Fig. 1 and Fig. 7)."""

    seeds: int = param(100, "ensemble size (the paper averages 100 tests)", min=2, max=100_000)
    p1s: tuple[float, ...] = param((0.5, 0.8, 0.0), "encodings p(y=1): 0.5 unbiased (p0=p1), 0.8 biased (p0/p1=1/4), 0 deterministic (p0=1)", min=0.0, max=1.0, max_len=8)
    num_layers: int = param(3, "conv layers N", min=1, max=6)
    features: int = param(8, "filters per conv layer M", min=1, max=1024)
    activation: str = param("elu", "activation", choices=("elu", "relu"))
    dropout: float = param(0.0, "dropout rate after each conv layer", min=0.0, max=0.95)
    probes_per_distance: int = param(8, "probe strings per Hamming distance", min=1, max=1024)
    early: bool = param(True, "also record epochs 1..record_every-1 every epoch (a short second run of the same members) for the aging axes")
    infinite_width: bool = param(True, "also compute the infinite-width NTKs of the same architecture (the net's and the linear net's) "
                                       "from each x_o to its probes, and compare the measured kernels with them")
    kernel_order: int = param(20, "Gauss-Hermite order of the infinite-width ELU kernel", min=4, max=64)

    @classmethod
    def quick(cls) -> RBEResponseConfig:
        return cls(seeds=24, p1s=(0.5, 0.8, 0.0), num_steps=200, record_every=10, epochs=(0, 100, 200), fit_start=20,
                   probes_per_distance=4, n_boot=200, kernel_order=8)

    def check(self) -> None:
        super().check()
        if len(set(self.p1s)) != len(self.p1s):
            raise ConfigError(f"p1s: encodings must be distinct, got {self.p1s}")
        if len(self.epochs) < 2 or list(self.epochs) != sorted(set(self.epochs)):
            raise ConfigError(f"epochs: give at least two increasing epochs, got {self.epochs}")
        if len(set(np.diff(self.epochs))) != 1:
            raise ConfigError(f"epochs: must be evenly spaced (the kernel-ODE windows run from one to the next), got {self.epochs}")

    def model(self) -> RBEConvNet:
        """The RBE net this configuration trains."""
        return RBEConvNet(num_layers=self.num_layers, features=self.features, activation=self.activation,
                          dropout_rate=self.dropout, init_scheme=self.init)


def simulate(ctx, config: RBEResponseConfig, *, num_steps: int | None = None, record_every: int | None = None) -> dict[str, np.ndarray]:
    """Trains seeds x encodings members of the config's model on one point each and records the
    response in both spaces (arrays: :func:`jaxdyn.analysis.response.single_point_records`, plus
    ``x_o`` (seed, bit) and ``probes`` (seed, probe, bit))."""
    model, loss = config.model(), config.loss_fn
    keys, data = rbe.single_point_members(config.p1s, np.arange(config.seeds), config.probes_per_distance)
    result = ctx.train(
        model,
        rbe.encoder_task(None),
        optimizer("sgd", learning_rate=hparam("lr")),
        seeds=keys,
        num_steps=config.num_steps if num_steps is None else num_steps,
        loss=loss,
        observables={"response": resp.ResponseObservable(model, loss, logit=True)},
        record_every=config.record_every if record_every is None else record_every,
        hparams={"lr": np.full(len(keys), config.lr, np.float32)},
        data=data,
    )
    sim = resp.single_point_records(result, len(config.p1s), loss, np.asarray(data["probe_h"][0]))
    sim["x_o"] = np.asarray(data["sources"][: config.seeds, 0])
    sim["probes"] = np.asarray(data["probes"][: config.seeds])
    return sim


_SLOPE = ("If the training is non-biased, p(0)=p(1), the kernel slope is gradually diminished along the training. "
          "On the contrary, the slope is enhanced in the case of biased training, p(0)/p(1)=1/4", "Sec. III, Fig. 1B and D")


def slope_trend_claims(a: dict[str, Any], label: str, slug: str, expect: str) -> list:
    """Kernel slope along training: 'diminish' (unbiased) or 'enhance' (biased), Fig. 1B, D.

    Two claims: from the first to the last reported epoch, seed by seed; and "gradually": the
    seed-mean kernel's |slope| changes in the stated direction between every pair of successive
    reported epochs, decided on the least favourable change with its paired seed bootstrap.
    """
    ps = a["per_seed"]
    eps = sorted(ps["slopes"])
    first, last = np.abs(ps["slopes"][eps[0]]), np.abs(ps["slopes"][eps[-1]])
    sign = -1.0 if expect == "diminish" else 1.0
    changes = a["slope_changes"]
    worst = max(changes, key=lambda c: -sign * c["change"])
    word = "diminishes" if expect == "diminish" else "is enhanced"
    src = claims.source(*_SLOPE)
    table = ", ".join(f"{k['slope']:+.3f}" for _, k in sorted(a["kernels"].items()))
    return [
        claims.per_seed(f"{slug}-slope-trend", f"{label}: the kernel slope {word} along training (each seed's |slope| at epoch "
                        f"{eps[-1]} minus at epoch {eps[0]}, per bit)", last - first, "<" if expect == "diminish" else ">", 0.0,
                        kind="paper", source=src, required_fraction=resp.MAJORITY, initial=first,
                        threshold_source="a change in the stated direction", reading=resp._MAJORITY_WHY),
        claims.check(f"{slug}-slope-gradual", f"{label}: ... and gradually: the seed-mean kernel's |slope| changes in the stated "
                     f"direction between every pair of successive reported epochs (slopes per bit {table} at epochs {eps}; the least "
                     f"favourable change, {worst['from']} -> {worst['to']})", worst["change"],
                     "<" if expect == "diminish" else ">", 0.0, kind="paper", source=src, se=worst["se"],
                     threshold_source="a monotone change: every successive change in the stated direction",
                     reading="on the seed-mean kernel, as the paper's Fig. 1 kernels average its tests; margin from a paired seed bootstrap"),
    ]


_INFINITE_LINEAR = ("The shape of response kernel is very similar with NTK of infinite linear network, but it shows some dependence "
                    "on the dynamics", "Sec. V")


def infinite_width_claims(sim: dict[str, np.ndarray], analysis: list[dict[str, Any]], infinite: dict[str, np.ndarray]) -> list:
    """The measured response kernels against the infinite-width NTKs of the same architecture:
    Sec. V's "very similar with NTK of infinite linear network" per encoding, and which
    infinite-width network the kernel at initialisation is closer to."""
    found = []
    src = claims.source(*_INFINITE_LINEAR)
    steps = np.asarray(sim["steps"])
    for e, a in enumerate(analysis):
        epochs = sorted(a["kernels"])
        rows = np.asarray(a["included"])  # the members the encoding's analysis kept
        idx = [int(np.searchsorted(steps, ep)) for ep in epochs]
        prof = resp.profile(sim["response"][rows, e][:, idx], sim["probe_h"])  # (seed, epoch, h)
        measured = prof / prof[..., :1]
        sim_lin = resp.kernel_similarity(measured, infinite["kernel_linear"][rows][:, None])  # (seed, epoch)
        table = ", ".join(f"{ep}: {np.nanmedian(sim_lin[:, j]):.3g}" for j, ep in enumerate(epochs))
        found += claims.leaving_out([claims.per_seed(
            f"{_slug(a['encoding'])}-kernel-like-infinite-linear",
            f"{a['encoding']}: the response kernel K(h) = R(h)/R(0) has the shape of the NTK of the infinite linear network (same "
            f"convolutions without activations, same initialisation, from each seed's x_o to its probes): each seed's smallest share "
            f"of K's variation over h that the linear NTK's kernel reproduces as it is, over the reported epochs (medians by epoch: "
            f"{table})", np.nanmin(sim_lin, 1), ">=", 0.9, kind="paper", source=src, required_fraction=resp.MAJORITY,
            initial=sim_lin[:, 0], threshold_source="project's reading of 'very similar', as of 'almost linear': the share >= 0.9",
            reading="the shape is compared without a fit (1 - sum (K - K_lin)^2 / sum (K - mean K)^2 over h); 'infinite linear "
                    "network' is read as the paper's own convolutional architecture with its activations removed, at infinite "
                    "width; output space, as the paper measured. " + resp._MAJORITY_WHY)], rows, "; ".join(a["left_out_reasons"]))
    # At initialisation the encodings share their weights, x_o and probes: one comparison.
    z0 = resp.profile(sim["theta_logit"][:, 0, 0], sim["probe_h"])
    k0 = z0 / z0[:, :1]
    d_net = np.sqrt(np.nanmean((k0 - infinite["kernel_network"]) ** 2, 1))
    d_lin = np.sqrt(np.nanmean((k0 - infinite["kernel_linear"]) ** 2, 1))
    theta0 = np.asarray(sim["theta_logit"][:, 0, 0], np.float64)
    rel = np.linalg.norm(theta0 - infinite["theta_network"], axis=1) / np.linalg.norm(infinite["theta_network"], axis=1)
    found.append(claims.per_seed(
        "ntk-init-closer-to-infinite-network",
        "at initialisation each seed's logit NTK kernel K_z(h) is closer (RMS over h) to the infinite-width NTK of its own "
        f"architecture (with its activation) than to the infinite linear network's (median distances {np.median(d_net):.3g} vs "
        f"{np.median(d_lin):.3g}; the raw Theta_z(x_o, probe) is at median relative distance {np.median(rel):.3g} from the "
        "infinite-width one at this width)", d_net - d_lin, "<", 0.0, kind="extension",
        why="the infinite-width kernel is a theory of the finite net only if the net's kernel at initialisation is nearer to it than "
            "to a simpler network's; at 8 filters per layer this can fail",
        threshold_source="closer: a negative difference of distances"))
    return found


def encoding_claims(a: dict[str, Any], *, fit_start: int) -> list:
    """Every claim of one encoding."""
    slug = _slug(a["encoding"])
    found = resp.law_claims(a, a["encoding"], slug, fit_start=fit_start)
    if a["p1"] == 0.5:
        found += claims.leaving_out(slope_trend_claims(a, a["encoding"], slug, "diminish"), a["included"], "; ".join(a["left_out_reasons"]))
    elif 0.0 < a["p1"] < 1.0 and abs((1 - a["p1"]) / a["p1"] - 0.25) < 1e-6:
        found += claims.leaving_out(slope_trend_claims(a, a["encoding"], slug, "enhance"), a["included"], "; ".join(a["left_out_reasons"]))
    return found


def _numbers_of(a: dict[str, Any]) -> dict[str, Any]:
    """The JSON part of an encoding's analysis (no per-seed arrays or fit objects)."""
    return {k: v for k, v in a.items() if k not in ("fits", "per_seed", "included")}


def _dataset(config, sim, early, analysis) -> xr.Dataset:
    enc = [a["encoding"] for a in analysis]
    four = ("seed", "encoding", "time", "probe")
    three = ("seed", "encoding", "time")
    one = {"units": "1"}
    text = {
        "response": "Delta f(probe) / (y_o - f(x_o)) after one SGD step at x_o with y_o ~ p(y) (not applied to training)",
        "response_logit": "Delta z(probe) / ((y_o - f(x_o)) sigma'(z_o)) of the same step, z the logit",
        "theta": "empirical NTK Theta_f(x_o, probe) of the sigmoid output at the same weights",
        "theta_logit": "empirical NTK Theta_z(x_o, probe) of the logits",
        "probe_f": "output f(probe) = sigmoid(z) at the same weights, before the probe step",
        "f_source": "output f(x_o) before the probe step",
    }
    variables = {
        "response": (four, sim["response"].astype(np.float32), {"long_name": "normalised response " + text["response"], **one}),
        "theta": (four, sim["theta"].astype(np.float32), {"long_name": text["theta"], **one}),
        "response_logit": (four, sim["response_logit"].astype(np.float32), {"long_name": "logit-space response " + text["response_logit"], **one}),
        "theta_logit": (four, sim["theta_logit"].astype(np.float32), {"long_name": text["theta_logit"], **one}),
        "probe_f": (four, sim["probe_f"].astype(np.float32), {"long_name": text["probe_f"], **one}),
        "f_source": (three, sim["f_source"], {"long_name": text["f_source"], **one}),
        "y_source": (three, sim["y_source"], {"long_name": "label y_o ~ p(y) (0 or 1) of the probe step", **one}),
        "dl_df": (three, sim["dl_df"], {"long_name": "loss derivative dL/df at (f(x_o), y_o) of the probe step", **one}),
        "diverged_at": (("seed", "encoding"), sim["diverged_at"]),
        "nonfinite_at": (("seed", "encoding"), sim["nonfinite_at"]),
        "excluded_reason": (("seed", "encoding"), resp.member_exclusions(sim).dataset_reason),
        "x_o": (("seed", "bit"), sim["x_o"].astype(np.int8), {"long_name": "the training string x_o (bits 0/1), shared by every encoding", **one}),
        "probe_bits": (("seed", "probe", "bit"), sim["probes"].astype(np.int8),
                       {"long_name": "probe strings (bits 0/1), each at Hamming distance `hamming` from x_o", **one}),
        "p1": ("encoding", np.asarray([a["p1"] for a in analysis]), {"long_name": "label probability p(y=1) of the encoding", **one}),
        "tau": ("encoding", np.asarray([a["power_law"]["tau"] for a in analysis]),
                {"long_name": "aging exponent tau of the seed-mean response size S(e) = R(h=0) ~ A e^-tau over epochs fit_start..end "
                              "(output space, included members)", **one}),
        "tau_low": ("encoding", np.asarray([a["power_law"]["tau_ci"][0] for a in analysis]),
                    {"long_name": "lower end of the 95% seed-bootstrap interval of tau", **one}),
        "tau_high": ("encoding", np.asarray([a["power_law"]["tau_ci"][1] for a in analysis]),
                     {"long_name": "upper end of the 95% seed-bootstrap interval of tau", **one}),
        "tau_logit": ("encoding", np.asarray([a["saturation"]["tau_logit"] for a in analysis]),
                      {"long_name": "aging exponent tau_z of the seed-mean logit-space response size S_z(e) = R_z(h=0) over epochs "
                                    "fit_start..end (included members)", **one}),
        "tau_sigmoid_factor": ("encoding", np.asarray([a["saturation"]["tau_sigmoid_factor"] for a in analysis]),
                               {"long_name": "power-law exponent of the seed-mean sigmoid factor (f(x_o)(1 - f(x_o)))^2 = sigma'(z_o)^2 over "
                                             "epochs fit_start..end (included members)", **one}),
    }
    coords = {"seed": np.arange(sim["response"].shape[0]),
              "encoding": ("encoding", enc, {"long_name": "encoding p(y) of the label of x_o"}),
              "time": ("time", sim["steps"], {"long_name": "training epoch e of the records (one SGD step on x_o per epoch)", "units": "epoch"}),
              "probe": ("probe", np.arange(sim["response"].shape[-1]),
                        {"long_name": "probe index (probes_per_distance probes at each Hamming distance from x_o)", **one}),
              "hamming": ("probe", sim["probe_h"], {"long_name": "Hamming distance h of the probe from x_o", "units": "bit"})}
    if early is not None:
        e4, e3 = ("seed", "encoding", "early_time", "probe"), ("seed", "encoding", "early_time")
        again = ", the second run recorded every epoch"
        variables.update({
            "response_early": (e4, early["response"].astype(np.float32), {"long_name": "normalised response " + text["response"] + again, **one}),
            "response_logit_early": (e4, early["response_logit"].astype(np.float32),
                                     {"long_name": "logit-space response " + text["response_logit"] + again, **one}),
            "theta_logit_early": (e4, early["theta_logit"].astype(np.float32), {"long_name": text["theta_logit"] + again, **one}),
            "f_source_early": (e3, early["f_source"], {"long_name": text["f_source"] + again, **one}),
        })
        coords["early_time"] = ("early_time", early["steps"],
                                {"long_name": "training epoch of the second run's records (the same members, identical trajectories, "
                                              "recorded every epoch up to record_every)", "units": "epoch"})
    return xr.Dataset(
        variables, coords=coords,
        attrs={"lr": config.lr, "loss": config.loss, "init": config.init, "record_every": config.record_every,
               "fit_start": config.fit_start, "kernel_size": 3, "padding": "VALID",
               "architecture": "conv kernel size 3 and VALID padding are the project's choices (the paper gives neither)",
               **{k: text[k] for k in ("response", "response_logit", "theta", "theta_logit")},
               "time_units": "epochs = SGD steps, one training point each",
               "early_time": "a second run of the same members recorded every epoch up to record_every"},
    )


def run(config: RBEResponseConfig, ctx) -> Result:
    """Trains, fits the law for each encoding in both spaces, and tests the NTK's predictions."""
    sim = simulate(ctx, config)
    early = simulate(ctx, config, num_steps=config.record_every, record_every=1) if config.early and config.record_every > 1 else None
    ctx.stage("analysis")
    analysis = resp.analyse_encodings(sim, config.p1s, epochs=config.epochs, fit_start=config.fit_start, lr=config.lr,
                                      loss=config.loss, n_boot=config.n_boot)
    found = []
    for a in analysis:
        found += encoding_claims(a, fit_start=config.fit_start)
    infinite = None
    if config.infinite_width:
        ctx.stage("theory")
        infinite = resp.infinite_width_profiles(config.model(), sim["x_o"], sim["probes"], sim["probe_h"], order=config.kernel_order)
        found += infinite_width_claims(sim, analysis, infinite)
    numbers = {"seeds": config.seeds, "init": config.init, "encodings": [_numbers_of(a) for a in analysis]}
    if infinite is not None:
        numbers["infinite_width"] = {k: np.nanmean(v, 0).tolist() for k, v in infinite.items() if k.startswith("kernel_")}
    ds = _dataset(config, sim, early, analysis)
    if infinite is not None:
        for name in ("network", "linear"):
            ds[f"theta_infinite_{name}"] = (("seed", "probe"), infinite[f"theta_{name}"].astype(np.float32), {
                "long_name": f"infinite-width NTK Theta_inf(x_o, probe) of the logits, same architecture and initialisation"
                             f"{'' if name == 'network' else ', without activations (the infinite linear network)'}", "units": "1"})
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=figures(config, sim, early, analysis, infinite), numbers=numbers)


def _slug(encoding: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in encoding).strip("-").replace("--", "-")


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------
def figures(config, sim, early, analysis, infinite=None) -> dict:
    """The run's figures, ``{stem: Figure}``: responses over epochs, aging, kernels."""
    joined = resp.join_early(early, sim) if early is not None else sim
    steps = joined["steps"]
    prof = resp.profile(joined["response"], joined["probe_h"])
    prof_z = resp.profile(joined["response_logit"], joined["probe_h"])
    n = len(analysis)
    fig, axes = plots.figure(n, 4, width=3.9, height=3.1)
    for e, a in enumerate(analysis):
        ok = np.asarray(a["included"])
        plots.plot_aging(axes[e, 0], steps, prof[ok, e, :, 0], a["power_law"], plots.color(e), label="simulation (seed mean)")
        axes[e, 0].set_title(f"({chr(65 + 4 * e)}) aging, {a['encoding']}", fontsize=9)
        axes[e, 0].legend(loc="lower left", fontsize=7)
        plots.plot_kernels(axes[e, 1], a["fits"]["kernels"])
        if infinite is not None:
            axes[e, 1].plot(np.arange(infinite["kernel_linear"].shape[1]), np.nanmean(infinite["kernel_linear"], 0), color="k", ls="--",
                            lw=1, label="NTK of the infinite linear network")
            axes[e, 1].legend(loc="best", fontsize=6)
        axes[e, 1].set_title(f"({chr(66 + 4 * e)}) kernel, {a['encoding']}", fontsize=9)
        sig = resp.sigmoid_factor(joined["f_source"][ok, e])
        h0 = joined["probe_h"] == 0
        thz = joined["theta_logit"][ok, e][..., h0].mean(-1)
        plots.plot_saturation_split(axes[e, 2], steps, {"output-space response S_f": prof[ok, e, :, 0],
                                                        "logit-space response S_z": prof_z[ok, e, :, 0],
                                                        "sigmoid factor (f(1-f))^2": sig,
                                                        "self-NTK of the logits": thz},
                                    {"output-space response S_f": a["saturation"]["tau_output"],
                                     "logit-space response S_z": a["saturation"]["tau_logit"],
                                     "sigmoid factor (f(1-f))^2": a["saturation"]["tau_sigmoid_factor"],
                                     "self-NTK of the logits": a["saturation"]["tau_theta_logit"]})
        axes[e, 2].set_title(f"({chr(67 + 4 * e)}) logit part vs sigmoid factor")
        plots.plot_kernels(axes[e, 3], a["fits"]["kernels_logit"])
        axes[e, 3].set_ylabel("logit kernel K_z(h) = R_z(h) / R_z(0)")
        axes[e, 3].set_title(f"({chr(68 + 4 * e)}) logit-space kernel")

    pred = resp.profile(resp.ntk_prediction(sim["theta"], sim["dl_df"], sim["y_source"], sim["f_source"], config.lr), sim["probe_h"])
    prof_s = resp.profile(sim["response"], sim["probe_h"])
    fig2, ax2 = plots.figure(2, n, width=4.4, height=3.3)
    h = np.arange(prof_s.shape[-1])
    for e, a in enumerate(analysis):
        ok = np.asarray(a["included"])
        for j, ep in enumerate(sorted(a["kernels"])):
            i = int(np.searchsorted(sim["steps"], ep))
            plots.theory_and_simulation(ax2[0, e], h, np.nanmean(pred[ok, e, i], 0), np.nanmean(prof_s[ok, e, i], 0),
                                        color=plots.color(j), label=None, every=1)
            ax2[0, e].plot([], [], color=plots.color(j), label=f"e = {ep}: {100 * a['ntk_explained'][ep]:.1f}%")
        ax2[0, e].set_yscale("symlog", linthresh=1e-2)
        ax2[0, e].set_xlabel("Hamming distance h from x_o")
        ax2[0, e].set_ylabel("normalised response R(h)")
        ax2[0, e].set_title(f"{a['encoding']}:\none step (markers) vs its NTK (lines)", fontsize=9)
        ax2[0, e].legend(loc="lower left", fontsize=7)
        plots.plot_frozen_ntk(ax2[1, e], sim["steps"], a["per_seed"]["frozen_errors"], a["frozen_ntk"])
        ax2[1, e].set_title(f"{a['encoding']}:\nthe NTK frozen at e0 against later responses", fontsize=9)

    fig3, ax3 = plots.figure(1, n, width=4.0, height=3.1)
    for e, a in enumerate(analysis):
        plots.plot_exponent_sensitivity(ax3[0, e], a["fit_starts"], a["windows"], a["power_law"])
        ax3[0, e].set_title(f"{a['encoding']}:\ntau by fit start and window", fontsize=9)
    return {"response_law": Figure(fig, "per encoding: aging of the response size (log-log, from epoch 1, fitted power law), the response kernel per "
                                        "reported epoch, the output-space size split into its logit-space part and the sigmoid factor, and the logit-space kernel"),
            "ntk_vs_response": Figure(fig2, "top: seed-mean response profile (markers) against the NTK's first-order prediction (lines); bottom: "
                                            "relative error of the NTK frozen at each reported epoch against later responses (median and 25-75% of seeds)"),
            "exponent_sensitivity": Figure(fig3, "aging exponent by fit start (markers with 95% intervals) and on doubling windows (bars), per encoding")}


EXPERIMENT = Experiment(
    name="rbe-response",
    work="Nakazato",
    description="response vs Hamming distance over epochs; power-law aging in output and logit space; kernel slopes; the NTK's predictions",
    config=RBEResponseConfig,
    run=run,
)
