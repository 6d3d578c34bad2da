"""neurashed-ib: the information bottleneck in Su's Figure 5 neurashed, with the settings it hangs on.

Source: Su, "Envisioning Future Deep Learning Theories" (arXiv 2112.09741), section 3 and the
appendix. The Figure 5 graph (:func:`jaxdyn.tasks.neurashed.figure5`; its reading of the figure
is documented there) is trained by Algorithm 1 (:func:`jaxdyn.models.neurashed.figure5_learner`)
through the engine, with the appendix's constants: initial lambda (and eta) ~ U(0, 0.01),
g- = 1.022^(-1/4) x, g+ = 1.022^(11/4) x, except the 7th first-level node, g+ = 1.022^(3/4) x.
Each level's representation of an input is the vector of its node scores S_F. As in
Shwartz-Ziv & Tishby, Gaussian noise is added to every score and the level is binned
(``num_bins`` equal bins over the level's range at that time); I(T; X) with the input type (8
types, uniform) and I(T; Y) with the label (2 classes) are computed from the exact binned
conditional laws (:func:`jaxdyn.analysis.information.noisy_binned_information`), by scikit-learn's
plug-in ``mutual_info_score`` on noisy binned samples
(:func:`jaxdyn.analysis.information.plugin_binned_information`), and by an estimator of another
family, without bins: Ross (2014)'s nearest-neighbour estimator on the continuous noisy scores
(:func:`jaxdyn.analysis.information.knn_information`), with the noise in absolute units
(``noise_std``, as the binned readings add it) and, as a second reading, with the noise of one
bin width (the level's range / ``num_bins`` at that time), the resolution the binned readings
have. The binned estimators lose a type when its scores come within one bin of another's,
relative to the level's range; the absolute-noise kNN reading only when they come within the
noise in absolute units (Saxe et al. 2018's point on binned information-plane estimates).

What the text says (appendix, Figure 5): in the early phase the second level tells the two types
of each class apart (h1 for one, h3 for the other), so I(T2; X) "tends to log2 4 = 2"; late,
lambda_h1 and lambda_h3 "become negligible compared with that of the 2nd node", the types merge
and I(T2; X) "tends to log2 2 = 1"; "the discussion on the first level is similar". The claims
read this as: level 2 spends a phase near 2 bits (the plateau: the longest run of records within
``plateau_band`` of 2 bits lasts at least ``plateau_min`` iterations), then ends within
``tolerance`` of 1 bit keeping the label (I(T2; Y) near 1 bit); level 1 "similar": it rises to at
least 2 bits, then ends near 1 bit with the label.

Mechanism, reported beside the bits: which node's factor dominates each level. At batch 1 the
shared first-level node x7 fires in every update (rate 3/4 log a per step against at most 1/2 for
the others), so it dwarfs the others: level 1 keeps one readable node, common to all inputs, and
ends with 0 bits about the input and the label (a collapse, not a compression). Level 2 falls to
1 bit once lambda_h1 / lambda_h2 is below a bin and h2's score is the same for both types (x7
swamps its inputs). At batch 2 the type-specific first-level nodes outgrow x7 (level 1 compresses
as the text says) but h2's score keeps telling the types apart, so level 2 stays at 2 bits.

Sensitivity table (``numbers["sensitivity"]``): one setting changed at a time from the default
(bins 30, noise 0.01, batch 1, h2 depending on x1..x7): bins, noise, the estimator (the plug-in
beside the exact laws), batch size (trained), and the reading of the level-1 to level-2 edges (which first-level nodes h2 depends on: all of
x1..x7, the centres x2 x5 x7, or the ends x1 x3 x4 x6 x7; trained). For each: the fraction of seeds
whose level 2 shows the plateau near 2 bits then the fall to 1 bit with the label, and whose
level 1 behaves similarly. Nothing is tuned: the defaults are the landed ones.

Choices where the text is open (see also ``figure5_description``):

- noise std 0.01, the top of the initial amplification range, in absolute units for both
  levels; the binning range is the level's noise-free min-max at each time.
- one pass over the 8 input types per epoch in random order (epoch sampling).
- eta follows the same g+ and g- as lambda; it does not enter the levels' information.
- float64: scores grow like 1.022^(2t) and overflow float32 within 2000 steps, so training runs
  inside ``jax.enable_x64(True)``; the engine compiles a separate program for it (the x64 flag
  is part of JAX's trace context) and checkpoints the float64 state, so a resumed run is bitwise
  the uninterrupted one.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.analysis.information import knn_information, longest_stretch_near, noisy_binned_information, plugin_binned_information
from jaxdyn.engine import observable
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.experiments.fields import NeurashedRulesFields
from jaxdyn.models import neurashed as nm
from jaxdyn.tasks import neurashed as nt
from jaxdyn.theory import neurashed as th

NUM_TYPES = 8
"""The input types of the Figure 5 graph (2 classes x 4 types, uniform): I(T; X) is about them,
and with epoch sampling every batch size must divide it."""
EDGE_READINGS = {"all": (1, 2, 3, 4, 5, 6, 7), "centres": (2, 5, 7), "ends": (1, 3, 4, 6, 7)}
"""Readings of Figure 5's level-1 to level-2 edges: ``{name: first-level dependents of h2
(1-based)}``. ``all`` is the default ``h2_dependents``; ``sensitivity_edges`` names the others
trained for the sensitivity table."""
APPENDIX = "appendix, 'Experimental details' (Figure 5, right panel)"
"""Where the paper's claims of this experiment stand in Su (arXiv 2112.09741): the place given
with every quote (:func:`jaxdyn.claims.source`)."""


@dataclasses.dataclass(frozen=True)
class NeurashedIBConfig(NeurashedRulesFields, Config):
    """Configuration of neurashed-ib."""

    seeds: int = param(8, "number of seeds (initial factors and mini-batch orders)", min=1, max=4096)
    num_steps: int = param(2000, "iterations of Algorithm 1", min=1, max=20_000)
    record_every: int = param(20, "iterations between measurements of the information", min=1, max=20_000)
    batch_size: int = param(1, "mini-batch size B of the default setting (must divide 8 with epoch sampling)", min=1, max=1024)
    sampling: str = param("epoch", "mini-batches: 'epoch' (each input type once per epoch) or 'iid' (with replacement)", choices=("epoch", "iid"))
    noise_std: float = param(0.01, "std of the Gaussian noise added to every score before binning (absolute units)", min=0.0, max=1e3)
    num_bins: int = param(30, "equal bins per node over the level's range", min=2, max=10_000)
    num_noise_samples: int = param(128, "Monte Carlo draws of the noisy binned representation per input type", min=8, max=100_000)
    h2_dependents: tuple[int, ...] = param((1, 2, 3, 4, 5, 6, 7), "first-level dependents of the dominant node h2 in the default setting (1-based, must include 7)", min=1, max=7, max_len=7)
    tolerance: float = param(0.1, "largest distance in bits from the text's end values (log2 2 = 1 bit of I(T;X) and of I(T;Y))", min=0.0, max=1.0, min_exclusive=True)
    plateau_band: float = param(0.25, "a record is 'near 2 bits' when |I(T2;X) - 2| is at most this", min=0.0, max=1.0, min_exclusive=True)
    plateau_min: int = param(100, "the phase near 2 bits must last at least this many iterations (5% of the default run)", min=1, max=20_000)
    knn_neighbours: int = param(3, "k of the nearest-neighbour estimator (Ross 2014; scikit-learn's default)", min=1, max=100)
    sensitivity_bins: tuple[int, ...] = param((10, 100), "sensitivity table: other bin counts (analysis of the default run)", min=2, max=10_000, min_len=0)
    sensitivity_noise: tuple[float, ...] = param((0.001, 0.1), "sensitivity table: other noise stds (analysis of the default run)", min=0.0, max=1e3, min_len=0)
    sensitivity_batch: tuple[int, ...] = param((2, 4, 8), "sensitivity table: other batch sizes (trained)", min=1, max=1024, min_len=0)
    sensitivity_edges: tuple[str, ...] = param(("centres", "ends"), "sensitivity table: other readings of h2's dependents (trained)", choices=tuple(EDGE_READINGS), min_len=0)

    @classmethod
    def quick(cls) -> NeurashedIBConfig:
        return cls(seeds=3, num_steps=2000, record_every=40, num_noise_samples=48, sensitivity_batch=(2, 8),
                   sensitivity_edges=("centres",))

    def check(self) -> None:
        if self.num_steps % self.record_every:
            raise ConfigError(f"record_every: must divide num_steps ({self.num_steps}), got {self.record_every}")
        for name, values in (("batch_size", (self.batch_size,)), ("sensitivity_batch", self.sensitivity_batch)):
            for b in values:
                if self.sampling == "epoch" and NUM_TYPES % b:
                    raise ConfigError(f"{name}: must divide the 8 input types with sampling='epoch', got {b}")
        if 7 not in self.h2_dependents:
            raise ConfigError("h2_dependents: must include the shared node 7 (h2 fires on two or more dependents)")
        if len(set(self.h2_dependents)) != len(self.h2_dependents):
            raise ConfigError("h2_dependents: listed twice")


@observable(dims={"scores_level1": ("input_type", "node1"), "scores_level2": ("input_type", "node2"),
                  "lambda_level1": ("node1",), "lambda_level2": ("node2",)},
            attrs={"scores_level1": {"long_name": "first-level scores S_F of the 8 input types", "units": "1"},
                   "scores_level2": {"long_name": "second-level scores S_F of the 8 input types", "units": "1"},
                   "lambda_level1": {"long_name": "first-level amplification factors lambda_F", "units": "1"},
                   "lambda_level2": {"long_name": "second-level amplification factors lambda_F", "units": "1"}})
def level_scores(snap):
    """Observable: the scores of levels 1 and 2 (the text's numbering) for the 8 input types, and
    both levels' amplification factors."""
    graph, patterns = snap.state.graph, snap.data["patterns"]
    s, _ = nm.scores(graph, snap.params, nm.pathways(graph, patterns.first))
    return {"scores_level1": s[0], "scores_level2": s[1], "lambda_level1": snap.params.lam[0], "lambda_level2": snap.params.lam[1]}


def _train_settings(config: NeurashedIBConfig) -> list[tuple[str, int, tuple[int, ...]]]:
    """(name, batch size, h2 dependents) of every trained setting; the default first."""
    out = [("default", config.batch_size, tuple(config.h2_dependents))]
    out += [(f"batch={b}", b, tuple(config.h2_dependents)) for b in config.sensitivity_batch if b != config.batch_size]
    out += [(f"edges={e}", config.batch_size, EDGE_READINGS[e]) for e in config.sensitivity_edges
            if EDGE_READINGS[e] != tuple(config.h2_dependents)]
    return out


def _information(scores, labels, *, num_bins, noise_std, num_samples, seed=0):
    """(seed, time, level, [x, y]) bits and their Monte Carlo standard errors, exact binned laws."""
    n_seed, n_time = scores[0].shape[:2]
    info = np.zeros((n_seed, n_time, 2, 2))
    stderr = np.zeros_like(info)
    rng = np.random.default_rng(seed)
    for s in range(n_seed):
        for t in range(n_time):
            for level in range(2):
                r = noisy_binned_information(scores[level][s, t], variables={"y": labels}, num_bins=num_bins,
                                             noise_std=noise_std, num_samples=num_samples, rng=rng)
                info[s, t, level] = r.info["x"], r.info["y"]
                stderr[s, t, level] = r.stderr["x"], r.stderr["y"]
    return info, stderr


def _plugin(scores, labels, *, num_bins, noise_std, num_samples, seed=1):
    """(seed, time, level, [x, y]) bits by scikit-learn's plug-in estimator on noisy samples."""
    n_seed, n_time = scores[0].shape[:2]
    out = np.zeros((n_seed, n_time, 2, 2))
    rng = np.random.default_rng(seed)
    for s in range(n_seed):
        for t in range(n_time):
            for level in range(2):
                r = plugin_binned_information(scores[level][s, t], variables={"y": labels}, num_bins=num_bins,
                                              noise_std=noise_std, num_samples=num_samples, rng=rng)
                out[s, t, level] = r["x"], r["y"]
    return out


KNN_NOISE = ("absolute", "one bin")
"""The kNN estimator's noise readings: ``noise_std`` in absolute units, and one bin width (the
level's noise-free range at that time / ``num_bins``)."""


def _knn(scores, labels, *, noise_std, num_bins, num_samples, k, seed=2):
    """(seed, time, level, knn_noise, [x, y]) bits by the nearest-neighbour estimator on the
    continuous noisy scores, for each reading of :data:`KNN_NOISE`."""
    n_seed, n_time = scores[0].shape[:2]
    out = np.zeros((n_seed, n_time, 2, len(KNN_NOISE), 2))
    rng = np.random.default_rng(seed)
    for s in range(n_seed):
        for t in range(n_time):
            for level in range(2):
                signal = scores[level][s, t]
                one_bin = float(np.ptp(signal)) / num_bins
                for j, sigma in enumerate((noise_std, one_bin)):
                    if sigma > 0:  # a level whose scores are all equal has no range: T is constant, 0 bits
                        r = knn_information(signal, variables={"y": labels}, noise_std=sigma, num_samples=num_samples, k=k, rng=rng)
                        out[s, t, level, j] = r["x"], r["y"]
    return out


def _verdicts(info, steps, config: NeurashedIBConfig) -> dict[str, np.ndarray]:
    """Per seed: the text's statements on one run's information, (seed,) each."""
    ix1, iy1, ix2, iy2 = info[:, :, 0, 0], info[:, :, 0, 1], info[:, :, 1, 0], info[:, :, 1, 1]
    tol = config.tolerance
    plateau = longest_stretch_near(ix2, steps, 2.0, config.plateau_band)
    level2_falls = (np.abs(ix2[:, -1] - 1.0) <= tol) & (iy2[:, -1] >= 1.0 - tol)
    level1_rises = ix1.max(1) >= 2.0 - tol
    level1_falls = (np.abs(ix1[:, -1] - 1.0) <= tol) & (iy1[:, -1] >= 1.0 - tol)
    level2 = (plateau >= config.plateau_min) & level2_falls
    return {"plateau_iterations": plateau, "level2_peak": ix2.max(1), "level2_final_x": ix2[:, -1], "level2_final_y": iy2[:, -1],
            "level1_peak": ix1.max(1), "level1_final_x": ix1[:, -1], "level1_final_y": iy1[:, -1],
            "level2_as_text": level2, "level1_as_text": level1_rises & level1_falls, "both_as_text": level2 & level1_rises & level1_falls}


def _mechanism(lam1, lam2, s2, config: NeurashedIBConfig, batch_size: int) -> dict[str, np.ndarray]:
    """Per seed at the end of training: the ratios of amplification factors that decide each level.

    lam1 (seed, 13), lam2 (seed, 6), s2 (seed, 8, 6) second-level scores. Returns log10 ratios:
    ``x7_lead``: log10(lambda_x7 / max other class-1 first-level lambda) (> 0: x7 dominates);
    ``h1_vs_h2``, ``h3_vs_h2``: log10(lambda_h1 / lambda_h2), log10(lambda_h3 / lambda_h2);
    ``h2_type_contrast``: log10 |S_h2(type a) - S_h2(type b)| / S_h2 (class 1, types (1,2,7),
    (4,5,7)): how differently h2 scores the two types; and the analytic per-step log-growth
    rates (in log a) of x7 and of the fastest other first-level node.
    """
    with np.errstate(divide="ignore"):
        x7_lead = np.log10(lam1[:, 6]) - np.log10(lam1[:, :6].max(1))
        h1 = np.log10(lam2[:, 0]) - np.log10(lam2[:, 1])
        h3 = np.log10(lam2[:, 2]) - np.log10(lam2[:, 1])
        contrast = np.log10(np.abs(s2[:, 0, 1] - s2[:, 2, 1])) - np.log10(np.maximum(s2[:, 0, 1], s2[:, 2, 1]))
    # Under epoch sampling a node fired by n of the 8 types is in a batch of B with probability
    # 1 - C(8 - n, B) / C(8, B); its log-factor grows by p * plus + (1 - p) * minus per step.
    p7 = th.firing_probability(np.array([8]), NUM_TYPES, batch_size, config.sampling)[0]
    p_other = th.firing_probability(np.array([2]), NUM_TYPES, batch_size, config.sampling)[0]
    rate = lambda p, plus: p * plus + (1 - p) * (-1 / 4)  # noqa: E731
    return {"x7_lead_log10": x7_lead, "h1_vs_h2_log10": h1, "h3_vs_h2_log10": h3, "h2_type_contrast_log10": contrast,
            "rate_x7": np.full(len(lam1), rate(p7, 3 / 4)), "rate_best_other": np.full(len(lam1), rate(p_other, 11 / 4))}


def run(config: NeurashedIBConfig, ctx) -> Result:
    """Trains the Figure 5 neurashed in every trained setting, measures each level's information
    over time with two estimators and every analysis setting, and reads the text's statements."""
    settings = _train_settings(config)
    try:
        builts = [nt.figure5(dep) for _, _, dep in settings]
    except nm.GraphError as exc:
        raise ConfigError(f"h2_dependents: {exc}") from None
    S, n_set = config.seeds, len(settings)
    patterns = builts[0].patterns
    # Members: setting-major (member k * S + s is seed s of setting k); graphs and batch sizes per member.
    seeds = list(range(n_set * S))
    graphs = nt.stack([b.graph for b in builts for _ in range(S)])
    batch_sizes = np.repeat([b for _, b, _ in settings], S)
    data = nt.sampler_data(seeds, batch_sizes, sampling=config.sampling, num_patterns=NUM_TYPES, graphs=graphs)
    learner = nm.figure5_learner(config.base, config.init_high, dtype="float64")
    with jax.enable_x64(True):
        res = ctx.train(learner, nt.PatternSampler(max_batch=int(batch_sizes.max()), sampling=config.sampling), seeds=seeds,
                        num_steps=config.num_steps, observables={"scores": level_scores}, record_every=config.record_every,
                        data=data, shared={"patterns": patterns})
    ctx.stage("analysis")
    per = lambda name: np.asarray(res.records[name]).reshape(n_set, S, *res.records[name].shape[1:])  # noqa: E731
    scores1, scores2, lam1, lam2 = per("scores_level1"), per("scores_level2"), per("lambda_level1"), per("lambda_level2")
    labels = np.asarray(patterns.label)
    steps = res.times["time"]
    diverged = np.asarray(res.diverged_at).reshape(n_set, S)

    # Analysis settings: every trained setting at the default estimator, then bins and noise on the default run.
    analyses = [(name, k, config.num_bins, config.noise_std) for k, (name, _, _) in enumerate(settings)]
    analyses += [(f"bins={b}", 0, b, config.noise_std) for b in config.sensitivity_bins if b != config.num_bins]
    analyses += [(f"noise={n:g}", 0, config.num_bins, n) for n in config.sensitivity_noise if n != config.noise_std]
    infos, errs, verdicts = [], [], []
    for _, k, bins, noise in analyses:
        info, err = _information((scores1[k], scores2[k]), labels, num_bins=bins, noise_std=noise, num_samples=config.num_noise_samples)
        infos.append(info), errs.append(err), verdicts.append(_verdicts(info, steps, config))
    plug = _plugin((scores1[0], scores2[0]), labels, num_bins=config.num_bins, noise_std=config.noise_std,
                   num_samples=config.num_noise_samples)
    knn = _knn((scores1[0], scores2[0]), labels, noise_std=config.noise_std, num_bins=config.num_bins,
               num_samples=config.num_noise_samples, k=config.knn_neighbours)
    # The other estimators on the default run, each read the same way: (seed, time, level, [x, y]).
    estimators = {"estimator=plug-in": plug, "estimator=kNN": knn[..., 0, :], "estimator=kNN, noise one bin": knn[..., 1, :]}
    mech = [_mechanism(lam1[k][:, -1], lam2[k][:, -1], scores2[k][:, -1], config, b) for k, (_, b, _) in enumerate(settings)]
    mech0 = [_mechanism(lam1[k][:, 0], lam2[k][:, 0], scores2[k][:, 0], config, b) for k, (_, b, _) in enumerate(settings)]

    found = _claims(config, infos[0], estimators, verdicts, mech[0], mech0[0], analyses, diverged[0] < 0, steps)
    sensitivity = []
    for (name, k, bins, noise), v in zip(analyses, verdicts):
        m = mech[k]
        sensitivity.append({
            "setting": name, "batch_size": int(settings[k][1]), "h2_dependents": list(settings[k][2]), "num_bins": bins, "noise_std": noise,
            "level2_plateau_iterations_median": float(np.median(v["plateau_iterations"])),
            "level2_peak_median": float(np.median(v["level2_peak"])),
            "level2_final_I_TX_median": float(np.median(v["level2_final_x"])), "level2_final_I_TY_median": float(np.median(v["level2_final_y"])),
            "level1_peak_median": float(np.median(v["level1_peak"])),
            "level1_final_I_TX_median": float(np.median(v["level1_final_x"])), "level1_final_I_TY_median": float(np.median(v["level1_final_y"])),
            "level2_rises_to_2_then_falls_to_1_fraction": float(v["level2_as_text"].mean()),
            "level1_similar_fraction": float(v["level1_as_text"].mean()),
            "both_levels_as_text_fraction": float(v["both_as_text"].mean()),
            "x7_lead_log10_median": float(np.median(m["x7_lead_log10"])), "h1_vs_h2_log10_median": float(np.median(m["h1_vs_h2_log10"])),
            "h2_type_contrast_log10_median": float(np.median(m["h2_type_contrast_log10"])),
            "growth_rate_x7_vs_best_other": [float(m["rate_x7"][0]), float(m["rate_best_other"][0])],
        })
    # The other estimators read the same way, default setting; the kNN readings have no bins, and
    # the second one's noise is a bin width, not noise_std (None in the table: "-").
    own = {"estimator=plug-in": {}, "estimator=kNN": {"num_bins": None}, "estimator=kNN, noise one bin": {"num_bins": None, "noise_std": None}}
    for name, other in estimators.items():
        vp = _verdicts(other, steps, config)
        sensitivity.append({**sensitivity[0], "setting": name, **own[name],
                            "level2_plateau_iterations_median": float(np.median(vp["plateau_iterations"])),
                            "level2_peak_median": float(np.median(vp["level2_peak"])),
                            "level2_final_I_TX_median": float(np.median(vp["level2_final_x"])),
                            "level2_final_I_TY_median": float(np.median(vp["level2_final_y"])),
                            "level1_peak_median": float(np.median(vp["level1_peak"])),
                            "level1_final_I_TX_median": float(np.median(vp["level1_final_x"])),
                            "level1_final_I_TY_median": float(np.median(vp["level1_final_y"])),
                            "level2_rises_to_2_then_falls_to_1_fraction": float(vp["level2_as_text"].mean()),
                            "level1_similar_fraction": float(vp["level1_as_text"].mean()),
                            "both_levels_as_text_fraction": float(vp["both_as_text"].mean())})
    numbers = {
        "seeds": S,
        "per_level": _per_level(infos[0], verdicts[0], mech[0], config),
        "sensitivity": sensitivity,
        "sensitivity_text": _table_text(sensitivity),
        "settings_reproducing_both_levels": [r["setting"] for r in sensitivity if r["both_levels_as_text_fraction"] >= 1.0],
        "plugin_minus_exact_final_bits_max": float(np.abs(plug[:, -1] - infos[0][:, -1]).max()),
        "max_monte_carlo_stderr_bits": float(errs[0].max()),
        "level2_I_TX_peak_step_median": float(np.median(steps[infos[0][:, :, 1, 0].argmax(1)])),
    }
    ds = _dataset(config, settings, analyses, infos, errs, plug, knn, scores1, scores2, lam1, lam2, diverged, steps, builts, labels, patterns)
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(ds, sensitivity), numbers=numbers)


def _per_level(info, v, m, config) -> dict:
    """Per level: what the text expects beside what was measured (medians over seeds) and the mechanism."""
    q = lambda x: [float(np.percentile(x, 25)), float(np.median(x)), float(np.percentile(x, 75))]  # noqa: E731
    return {
        "level2": {"expected": "I(T;X): a phase near log2 4 = 2 bits, then log2 2 = 1 bit; I(T;Y): 1 bit",
                   "plateau_iterations_q25_median_q75": q(v["plateau_iterations"]), "peak_I_TX": q(v["level2_peak"]),
                   "final_I_TX": q(v["level2_final_x"]), "final_I_TY": q(v["level2_final_y"]),
                   "mechanism_log10_lambda_h1_over_h2": q(m["h1_vs_h2_log10"]), "mechanism_log10_lambda_h3_over_h2": q(m["h3_vs_h2_log10"]),
                   "mechanism_log10_h2_score_contrast_of_the_two_types": q(m["h2_type_contrast_log10"]),
                   "one_bin_log10": float(np.log10(1.0 / config.num_bins))},
        "level1": {"expected": "similar to level 2 (the text omits it): rises, then about 1 bit holding the label",
                   "peak_I_TX": q(v["level1_peak"]), "final_I_TX": q(v["level1_final_x"]), "final_I_TY": q(v["level1_final_y"]),
                   "mechanism_log10_lambda_x7_over_best_other": q(m["x7_lead_log10"]),
                   "mechanism_growth_rate_per_step_in_log_a": {"x7": float(m["rate_x7"][0]), "best_other": float(m["rate_best_other"][0])}},
    }


def _claims(config, info, estimators, verdicts, mech, mech0, analyses, include, steps) -> list:
    v = verdicts[0]
    plug = estimators["estimator=plug-in"]
    tol, one_bin = config.tolerance, np.log10(1.0 / config.num_bins)
    ix2 = info[:, :, 1, 0]
    found = [
        claims.per_seed("level2-plateau-near-2-bits", f"fitting: the second level's I(T;X) spends a phase near log2 4 = 2 bits "
                        f"(longest run of records within {config.plateau_band} bits of 2, in iterations)", v["plateau_iterations"], ">=",
                        config.plateau_min, kind="paper", initial=np.zeros(config.seeds), include=include,
                        source=claims.source("Hence, the mutual information between the second level and the input tends to log2 4 = 2", APPENDIX),
                        threshold_source="config.plateau_min: a phase lasting 5% of the default run (the project's reading of 'tends to')",
                        reading="'tends to 2' in the early phase read as a stretch of time near 2 bits, not a single peak "
                                "(the peak depends on the bins)"),
        claims.per_seed("level2-compresses-to-1-bit", "compression: the second level's I(T;X) ends within tolerance of log2 2 = 1 bit "
                        "(|final - 1|)", np.abs(v["level2_final_x"] - 1.0), "<=", tol, kind="paper", initial=np.abs(ix2[:, 0] - 1.0),
                        include=include, source=claims.source("As a consequence, the mutual information tends to log2 2 = 1", APPENDIX),
                        threshold_source="config.tolerance"),
        claims.per_seed("level2-keeps-label", "the second level keeps the label: final I(T2;Y) near 1 bit", v["level2_final_y"], ">=",
                        1 - tol, kind="paper", initial=info[:, 0, 1, 1], include=include,
                        source=claims.source("the networks compress all irrelevant information from the input", "section 3, 'Information bottleneck'"),
                        threshold_source="log2 2 minus config.tolerance"),
        claims.per_seed("level2-h1-negligible", "the mechanism: lambda_h1 becomes negligible beside lambda_h2 (log10 of their ratio "
                        "at the end, against one bin of the level's range)", mech["h1_vs_h2_log10"], "<", one_bin, kind="paper",
                        initial=mech0["h1_vs_h2_log10"], include=include,
                        source=claims.source("the amplification factors of the 1st and 3rd nodes become negligible compared with that of the 2nd node", APPENDIX),
                        threshold_source="log10(1/num_bins): below one bin width the binned level cannot read h1"),
        claims.per_seed("level1-rises", "the first level fits: its I(T1;X) rises to at least 2 bits (peak)", v["level1_peak"], ">=",
                        2 - tol, kind="paper", initial=info[:, 0, 0, 0], include=include,
                        source=claims.source("The discussion on the first level is similar and thus is omitted", APPENDIX),
                        threshold_source="log2 4 minus config.tolerance, as for the second level",
                        reading="'similar' read as the second level's statements applied to the first"),
        claims.per_seed("level1-ends-at-1-bit", "the first level compresses like the second: its I(T1;X) ends within tolerance of 1 bit "
                        "(|final - 1|)", np.abs(v["level1_final_x"] - 1.0), "<=", tol, kind="paper",
                        initial=np.abs(info[:, 0, 0, 0] - 1.0), include=include,
                        source=claims.source("The discussion on the first level is similar and thus is omitted", APPENDIX),
                        threshold_source="config.tolerance", reading="'similar': ends holding the class, 1 bit, as level 2 does"),
        claims.per_seed("level1-keeps-label", "the first level keeps the label: final I(T1;Y) near 1 bit (a level that loses it has "
                        "collapsed, not compressed)", v["level1_final_y"], ">=", 1 - tol, kind="paper", initial=info[:, 0, 0, 1], include=include,
                        source=claims.source("The discussion on the first level is similar and thus is omitted", APPENDIX),
                        threshold_source="log2 2 minus config.tolerance", reading="'similar': like level 2, the label is kept"),
        claims.per_seed("level1-x7-dominates", f"at batch {config.batch_size} the shared node x7 dwarfs every other first-level node "
                        "(log10 lambda_x7 / largest other lambda of class 1, end)", mech["x7_lead_log10"], ">", -one_bin,
                        kind="extension", initial=mech0["x7_lead_log10"], include=include,
                        threshold_source="log10(num_bins): the others fall below one bin of the level's range",
                        why="the mechanism behind level 1's end state: x7 fires in every update (3/4 log a per step against 1/2 "
                            "for the best other node at batch 1)"),
        claims.per_seed("estimators-agree-at-the-end", "a second estimator (scikit-learn's plug-in mutual_info_score on noisy "
                        "samples) agrees with the exact binned laws at the end of training (largest |difference| over levels and "
                        "I(T;X), I(T;Y), bits)", np.abs(plug[:, -1] - info[:, -1]).reshape(config.seeds, -1).max(1), "<=", tol,
                        kind="sanity", include=include, threshold_source="config.tolerance",
                        why="the same quantity estimated by counting: checks the exact-law computation (the plug-in's upward bias "
                            "is small once the level's noise no longer spreads samples over many bins)"),
    ]
    compression = claims.source("As a consequence, the mutual information tends to log2 2 = 1", APPENDIX)
    for slug, name, noise in (("knn", "estimator=kNN", f"noise {config.noise_std:g} in absolute units, as the binned readings add it"),
                              ("knn-bin-noise", "estimator=kNN, noise one bin", "noise of one bin width, the level's range / num_bins, "
                                                                                 "the binned readings' resolution")):
        ix2_other = estimators[name][:, :, 1, 0]
        found.append(claims.per_seed(
            f"{slug}-level2-compresses", f"level 2's compression to 1 bit does not hang on the bins: with the nearest-neighbour "
            f"estimator on the continuous noisy scores ({noise}) its I(T;X) also ends within tolerance of 1 bit (|final - 1|)",
            np.abs(ix2_other[:, -1] - 1.0), "<=", tol, kind="extension", initial=np.abs(ix2_other[:, 0] - 1.0), include=include,
            threshold_source="config.tolerance, as for the binned claim", source=compression,
            why="the issue of binned information-plane estimates (Saxe et al. 2018): compression read from bins may be a loss of "
                "resolution relative to the layer's range, not of information; an estimator of another family tests it"))
    both = [name for (name, _, _, _), vv in zip(analyses, verdicts) if vv["both_as_text"].mean() >= 1.0]
    both += [name for name, other in estimators.items() if _verdicts(other, steps, config)["both_as_text"].mean() >= 1.0]
    found.append(claims.check(
        "some-setting-reproduces-both-levels", "some setting of the sensitivity table reproduces the text on both levels for every "
        f"seed (level 2: phase near 2 bits, then 1 bit with the label; level 1 similar); settings that do: {both or 'none'}",
        float(len(both)), ">=", 1.0, kind="paper",
        source=claims.source("The discussion on the first level is similar and thus is omitted", APPENDIX),
        threshold_source="at least one of the settings tried (none was tuned)",
        reading="the text describes one run; if no setting (bins, noise, batch, edges) gives both levels' behaviour the "
                "statement is not reproduced"))
    return found


def _table_text(rows) -> str:
    head = (f"{'setting':<30}{'B':>3}{'bins':>6}{'noise':>7}  {'plateau':>8}{'peak2':>7}{'end2 X/Y':>11}{'peak1':>7}{'end1 X/Y':>11}"
            f"{'L2 text':>9}{'L1 sim.':>9}{'x7 lead':>9}{'h1/h2':>8}")
    lines = [head]
    dash = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    for r in rows:
        lines.append(f"{r['setting']:<30}{r['batch_size']:>3}{dash(r['num_bins'], 'd'):>6}{dash(r['noise_std'], 'g'):>7}  "
                     f"{r['level2_plateau_iterations_median']:>8.0f}"
                     f"{r['level2_peak_median']:>7.2f}{r['level2_final_I_TX_median']:>6.2f}/{r['level2_final_I_TY_median']:<4.2f}"
                     f"{r['level1_peak_median']:>7.2f}{r['level1_final_I_TX_median']:>6.2f}/{r['level1_final_I_TY_median']:<4.2f}"
                     f"{r['level2_rises_to_2_then_falls_to_1_fraction']:>9.2f}{r['level1_similar_fraction']:>9.2f}"
                     f"{r['x7_lead_log10_median']:>9.1f}{r['h1_vs_h2_log10_median']:>8.1f}")
    lines.append("plateau: median iterations near 2 bits (level 2); end X/Y: final I(T;X)/I(T;Y) medians; 'L2 text', 'L1 sim.': "
                 "fraction of seeds showing the text's level-2 behaviour and level 1 behaving similarly; x7 lead, h1/h2: log10 "
                 "factor ratios at the end")
    return "\n".join(lines)


def _dataset(config, settings, analyses, infos, errs, plug, knn, scores1, scores2, lam1, lam2, diverged, steps, builts, labels, patterns):
    sw = lambda a: np.swapaxes(a, 0, 1)  # (setting, seed, ...) -> (seed, setting, ...)  # noqa: E731
    info, err = np.stack(infos, 1), np.stack(errs, 1)  # (seed, analysis, time, level, 2)
    adj = np.stack([np.asarray(b.graph.adjacency[0]) for b in builts])  # (train_setting, node2, node1)
    info_of = ("of the level's representation T (its scores S_F plus N(0, noise_std^2) noise per node, binned in num_bins "
               "equal bins over the level's noise-free min-max at that time; num_bins, noise_std of the setting)")
    return xr.Dataset(
        {
            "I_TX": (("seed", "setting", "time", "level"), info[..., 0],
                     {"units": "bit", "long_name": f"I(T;X), exact binned laws: mutual information {info_of} with the input type X "
                                                   "(8 uniform types), Monte Carlo over noise draws"}),
            "I_TY": (("seed", "setting", "time", "level"), info[..., 1],
                     {"units": "bit", "long_name": f"I(T;Y), exact binned laws: mutual information {info_of} with the label Y "
                                                   "(2 classes), Monte Carlo over noise draws"}),
            "I_TX_stderr": (("seed", "setting", "time", "level"), err[..., 0],
                            {"units": "bit", "long_name": "Monte Carlo standard error of I_TX (num_noise_samples noise draws per "
                                                          "input type; 0 without noise)"}),
            "I_TY_stderr": (("seed", "setting", "time", "level"), err[..., 1],
                            {"units": "bit", "long_name": "Monte Carlo standard error of I_TY (num_noise_samples noise draws per "
                                                          "input type; 0 without noise)"}),
            "I_TX_plugin": (("seed", "time", "level"), plug[..., 0],
                            {"units": "bit", "long_name": "I(T;X), sklearn plug-in mutual_info_score on num_noise_samples noisy "
                                                          "binned samples per input type, default setting"}),
            "I_TY_plugin": (("seed", "time", "level"), plug[..., 1],
                            {"units": "bit", "long_name": "I(T;Y), sklearn plug-in mutual_info_score on num_noise_samples noisy "
                                                          "binned samples per input type, default setting"}),
            "I_TX_knn": (("seed", "time", "level", "knn_noise"), knn[..., 0],
                         {"units": "bit", "long_name": "I(T;X), nearest-neighbour estimator (Ross 2014, k = knn_neighbours) on "
                                                       "num_noise_samples draws per input type of the continuous scores plus noise "
                                                       "(no binning), default setting"}),
            "I_TY_knn": (("seed", "time", "level", "knn_noise"), knn[..., 1],
                         {"units": "bit", "long_name": "I(T;Y), nearest-neighbour estimator (Ross 2014, k = knn_neighbours) on "
                                                       "num_noise_samples draws per input type of the continuous scores plus noise "
                                                       "(no binning), default setting"}),
            "scores_level1": (("seed", "train_setting", "time", "input_type", "node1"), sw(scores1),
                              {"units": "1", "long_name": "first-level scores S_F = lambda_F (0 where F does not fire) of each "
                                                          "input type, noise-free"}),
            "scores_level2": (("seed", "train_setting", "time", "input_type", "node2"), sw(scores2),
                              {"units": "1", "long_name": "second-level scores S_F = lambda_F * sum of its dependents' S_f (0 where "
                                                          "F does not fire) of each input type, noise-free"}),
            "lambda_level1": (("seed", "train_setting", "time", "node1"), sw(lam1),
                              {"units": "1", "long_name": "first-level amplification factors lambda_F"}),
            "lambda_level2": (("seed", "train_setting", "time", "node2"), sw(lam2),
                              {"units": "1", "long_name": "second-level amplification factors lambda_F"}),
            "diverged_at": (("seed", "train_setting"), sw(diverged)),
            "edges_level1_to_level2": (("train_setting", "node2", "node1"), adj.astype(np.int8),
                                       {"units": "1", "long_name": "1 where second-level node node2 depends on first-level node "
                                                                   "node1 (edge of the trained setting's graph), else 0"}),
            "label": ("input_type", labels, {"units": "1", "long_name": "class Y of each input type (0: class1, 1: class2)"}),
            "first_level_pattern": (("input_type", "node1"), np.asarray(patterns.first).astype(np.int8),
                                    {"units": "1", "long_name": "1 where the first-level node fires for the input type, else 0"}),
            "setting_train_index": ("setting", np.array([k for _, k, _, _ in analyses]),
                                    {"units": "1", "long_name": "index along train_setting of the run each analysis setting reads"}),
            "setting_num_bins": ("setting", np.array([b for _, _, b, _ in analyses]),
                                 {"units": "1", "long_name": "equal bins per node over the level's range in each analysis setting"}),
            "setting_noise_std": ("setting", np.array([n for _, _, _, n in analyses], np.float64),
                                  {"units": "1", "long_name": "std of the Gaussian noise added to every score S_F before binning "
                                                              "in each analysis setting (absolute units of S_F)"}),
            "train_setting_batch_size": ("train_setting", np.array([b for _, b, _ in settings]),
                                         {"units": "1", "long_name": "mini-batch size B of each trained setting"}),
        },
        coords={"seed": np.arange(config.seeds),
                "setting": ("setting", [a[0] for a in analyses],
                            {"long_name": "analysis setting: every trained setting at the default bins and noise, then other bin "
                                          "counts and noise stds on the default run"}),
                "train_setting": ("train_setting", [s[0] for s in settings],
                                  {"long_name": "trained setting: default, another batch size, or another reading of h2's "
                                                "first-level dependents"}),
                "time": ("time", steps, {"units": "iteration", "long_name": "iterations of Algorithm 1 done at the record"}),
                "level": ("level", [1, 2], {"units": "1", "long_name": "level whose scores form T, in the text's numbering (1: "
                                                                        "first level x1..x13, 2: second level h1..h6)"}),
                "knn_noise": ("knn_noise", list(KNN_NOISE), {"long_name": "noise of the nearest-neighbour reading: noise_std in absolute "
                                                                       "units, or one bin width (the level's noise-free range / num_bins)"}),
                "node1": ("node1", list(builts[0].names[0]), {"long_name": "first-level node"}),
                "node2": ("node2", list(builts[0].names[1]), {"long_name": "second-level node"})},
        attrs={
            "time_units": "iterations of Algorithm 1",
            "g_plus": f"{config.base}^(11/4) x (7th first-level node {config.base}^(3/4) x)",
            "g_minus": f"{config.base}^(-1/4) x",
            "init": f"U(0, {config.init_high})",
            "sampling": config.sampling,
            "binning": "equal bins over the level's noise-free min-max at each time; noise N(0, noise_std^2) per node",
            "num_noise_samples": config.num_noise_samples,
            "plateau_band_bits": config.plateau_band, "plateau_min_iterations": config.plateau_min, "tolerance_bits": config.tolerance,
        },
    )


def _figures(ds: xr.Dataset, sensitivity) -> dict:
    steps = ds["time"].values
    d = ds.sel(setting="default")
    fig, axes = plots.figure(1, 3, width=4.2, height=3.6)
    ax = axes[0, 0]
    for k, level in enumerate(ds["level"].values):
        ix = np.median(d["I_TX"].sel(level=level).values, 0)
        iy = np.median(d["I_TY"].sel(level=level).values, 0)
        ax.plot(ix, iy, "-", color=plots.color(k), linewidth=0.8, alpha=0.6)
        sc = ax.scatter(ix, iy, c=steps, cmap="viridis", s=14, marker="o" if k else "s", zorder=3, label=f"level {level}")
    fig.colorbar(sc, ax=ax, label="iteration")
    for bits in (1.0, 2.0):
        ax.axvline(bits, color="0.5", linestyle="--", linewidth=0.8)
    ax.set_xlabel("I(T; X) (bits)")
    ax.set_ylabel("I(T; Y) (bits)")
    ax.set_title("information plane, median over seeds\n(squares: level 1, circles: level 2)")
    for j, (name, label) in enumerate((("I_TX", "I(T; X)"), ("I_TY", "I(T; Y)"))):
        ax = axes[0, j + 1]
        for k, level in enumerate(ds["level"].values):
            plots.median_band(ax, steps, d[name].sel(level=level).values, color=plots.color(k), markersize=3,
                              label=f"level {level} (exact laws)")
            ax.plot(steps, np.median(ds[f"{name}_plugin"].sel(level=level).values, 0), "-", color=plots.color(k), linewidth=0.8,
                    label=f"level {level} (sklearn plug-in)")
            ax.plot(steps, np.median(ds[f"{name}_knn"].sel(level=level, knn_noise="absolute").values, 0), ":", color=plots.color(k),
                    linewidth=1.2, label=f"level {level} (kNN, no bins)")
        if name == "I_TX":
            ax.axhline(2.0, color="0.3", linewidth=1, label="text: log2 4 (fitting)")
            ax.axhline(1.0, color="0.3", linewidth=1, linestyle="--", label="text: log2 2 = 1 bit (compressed I(T;X); the label)")
        else:
            ax.axhline(1.0, color="0.3", linewidth=1, linestyle="--")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{label} (bits)")
        ax.set_title(f"{label}, default setting")
        ax.set_ylim(-0.05, 3.1 if name == "I_TX" else 1.15)
    # One legend below the panels: inside, it would cover the curves, which span the axes.
    fig.legend(*axes[0, 1].get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=7, frameon=False)
    names = list(ds["setting"].values)
    fig2, axes2 = plots.figure(2, 2, width=4.2, height=2.8, sharex=True)
    for j, level in enumerate((2, 1)):
        for i, (name, label) in enumerate((("I_TX", "I(T;X)"), ("I_TY", "I(T;Y)"))):
            ax = axes2[i, j]
            for k, setting in enumerate(names):
                v = np.median(ds[name].sel(setting=setting, level=level).values, 0)
                # More settings than palette colours: the line style tells the repeats apart.
                ax.plot(steps, v, color=plots.color(k), linestyle=plots.group_linestyle(k // len(plots.PALETTE)), linewidth=1.0,
                        label=setting)
            ax.set_title(f"level {level}: {label} (median over seeds)")
            ax.set_ylabel("bits")
            if i == 1:
                ax.set_xlabel("iteration")
    fig2.legend(*axes2[0, 0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    return {"information_plane": Figure(fig, "information plane of both levels and I(T;X), I(T;Y) over training at the default "
                                             "setting with the text's limits; markers: median of the exact binned laws, band: their min-max over seeds, "
                                             "lines: median of the sklearn plug-in, dotted: median of the nearest-neighbour estimator on the continuous "
                                             "noisy scores (absolute noise, no bins)"),
            "sensitivity": Figure(fig2, "the sensitivity table's settings (bins, noise, batch size, edges of h2): both levels' "
                                        "information over training, median over seeds")}


EXPERIMENT = Experiment(
    name="neurashed-ib",
    work="Su",
    description="Figure 5 neurashed with the appendix constants: I(T;X) and I(T;Y) of each level over training, binned and nearest-neighbour estimators, a sensitivity table",
    config=NeurashedIBConfig,
    run=run,
)
"""Registers ``jaxdyn run neurashed-ib``: the information bottleneck of Su's Figure 5 neurashed with the appendix constants."""
