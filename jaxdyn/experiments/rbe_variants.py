"""rbe-variants: the response law across architectures, encodings, initialisations and widths
(Nakazato Fig. 2, 3, 7).

The standard setting (N = 3 conv layers, M = 8 filters, ELU) beside one change at a time: layers 1
and 5, filters 4 and 16, ReLU, dropout 0.2 after each conv layer; each with the unbiased and the
biased encoding, and the deterministic encoding p0 = 1 for the standard net and ReLU (Fig. 7).
Every condition is trained and measured as in rbe-response (``jaxdyn.analysis.response``), in
output and in logit space: the aging exponent of the output-space response, of its logit-space
part (the network's) and of the sigmoid factor (f(1-f))^2 are reported for every condition.

Initialisation: the paper's nets were Keras' (Glorot-uniform kernels, zero biases), the default
here (``init``); the standard net is also run with every initialisation in ``other_inits``
(flax's LeCun-normal by default), and the law's claims are made for each.

Width: the aging exponent rises with M at a fixed learning rate, while the NTK of a standard-
parametrised net grows with its width. The width sweep trains M = 4..64 (unbiased) at the fixed
lr, at lr scaled as 8 / M, and at lr scaled by the measured initial NTK, lr * Theta_8 / Theta_M
(the seed-median self-NTK of f at x_o at initialisation, for the standard width and for M), so
the first step in function space has the standard net's size at every width; M = 8 is unchanged
in every scheme. Under Keras' initialisation the NTK grows more slowly than M (the dense layer's
share grows with M, the convolutions' does not), so 8 / M over-corrects; the NTK-held scheme is
the test of "the rise is the NTK's scale".

Under NTK parametrisation (scheme ``ntk-param``) the NTK tends to a fixed kernel as M grows and
its change during training vanishes (the lazy limit), so the aging of the network's own part,
the logit-space kernel, should vanish with the width at one fixed lr, while the sigmoid factor
(f(1-f))^2 still decays as the output approaches its label. The sweep asks whether it does: the
slope of the logit-space exponent per doubling of M (extension claims). Its lr is the standard
net's at M = 8 scaled by the ratio of the two nets' initial self-NTKs there, so M = 8 starts with
the same first step in function space under both parametrisations (the layers' relative rates
differ, so M = 8 is not the same run).

Results store, for every condition, the per-distance profiles (mean over the probes at each
Hamming distance) of the response, the NTK, their logit-space counterparts and the outputs at the
probes, with the source outputs, labels and loss derivatives; every claim is computed from them.
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
from jaxdyn.models.rbe_conv import RBEConvNet, init_members
from jaxdyn.tasks import rbe
from jaxdyn.theory import kernels

VARIANTS: dict[str, dict[str, Any]] = {
    "standard": {},
    "layers1": {"num_layers": 1},
    "layers5": {"num_layers": 5},
    "filters4": {"features": 4},
    "filters16": {"features": 16},
    "relu": {"activation": "relu"},
    "dropout": {"dropout_rate": 0.2},
}
"""The architectures compared: ``{variant: arguments of :class:`jaxdyn.models.rbe_conv.RBEConvNet`
changed from the standard net}`` (``standard``: N = 3 conv layers, M = 8 filters, ELU; then one
change at a time: 1 or 5 layers, 4 or 16 filters, ReLU, dropout 0.2)."""
WIDTH_LR = ("fixed", "inverse", "ntk", "ntk-param")
"""Learning-rate schemes of the width sweep: ``fixed`` (lr), ``inverse`` (lr * 8 / M), ``ntk``
(lr * Theta_8 / Theta_M, the measured initial self-NTK held at the standard width's), and
``ntk-param``: the NTK-parametrised net (``RBEConvNet(parametrization='ntk')``, the same initial
function) at one fixed lr for every width, lr * Theta_8 / Theta^ntk_8 (the standard and the
NTK-parametrised nets' measured initial self-NTKs at M = 8)."""
NTK_PARAM = "ntk-param"
"""The width-sweep scheme that trains the NTK-parametrised net (a model of its own, so a training call of its own)."""
STANDARD_WIDTH = 8
"""M, the standard net's filters per conv layer: the width every scheme of the width sweep is scaled to."""


@dataclasses.dataclass(frozen=True)
class RBEVariantsConfig(RBETrainingFields, ResponseMeasurementFields, Config):
    """Configuration of rbe-variants."""

    seeds: int = param(100, "ensemble size per condition (the paper averages 100 tests)", min=2, max=100_000)
    variants: tuple[str, ...] = param(tuple(VARIANTS), "architectures: changes of the standard net", choices=tuple(VARIANTS), min_len=0, max_len=len(VARIANTS))
    p1s: tuple[float, ...] = param((0.5, 0.8), "noisy encodings p(y=1) run for every variant (0.5 unbiased, 0.8 biased p0/p1=1/4)", min=0.0, max=1.0, max_len=8)
    deterministic: tuple[str, ...] = param(("standard", "relu"), "variants also run with the deterministic encoding p0 = 1 (Fig. 7)", choices=tuple(VARIANTS), min_len=0, max_len=len(VARIANTS))
    other_inits: tuple[str, ...] = param(("flax",), "initialisations the standard net is also run with, beside init (its encodings as above)", choices=("keras", "flax"), min_len=0, max_len=2)
    widths: tuple[int, ...] = param((4, 8, 16, 32, 64), "filters M of the width sweep (unbiased encoding); empty: no sweep", min=1, max=1024, min_len=0, max_len=16)
    width_lr: tuple[str, ...] = param(WIDTH_LR, "learning rates of the width sweep: fixed (lr), inverse (lr * 8 / M), ntk (lr * Theta_8 / Theta_M, the measured initial NTK held), ntk-param (the NTK-parametrised net at one lr for every M)", choices=WIDTH_LR, min_len=1, max_len=4)
    width_seeds: int = param(40, "ensemble size per width and learning rate", min=2, max=100_000)
    probes_per_distance: int = param(8, "probe strings per Hamming distance", min=1, max=1024)
    early: bool = param(True, "also record epochs 1..record_every-1 every epoch (a short second run per variant) for the aging axes")

    @classmethod
    def quick(cls) -> RBEVariantsConfig:
        return cls(seeds=12, variants=("dropout",), p1s=(0.5,), deterministic=(), other_inits=(), widths=(4, 16), width_lr=("fixed", "ntk", "ntk-param"),
                   width_seeds=12, num_steps=200, epochs=(0, 100, 200), fit_start=20, probes_per_distance=2, n_boot=200,
                   early=False)

    def check(self) -> None:
        super().check()
        if len(set(self.variants)) != len(self.variants):
            raise ConfigError(f"variants: listed twice in {self.variants}")
        for v in self.deterministic:
            if v not in self.variants:
                raise ConfigError(f"deterministic: {v!r} is not among variants {self.variants}")
        if 0.0 in self.p1s or 1.0 in self.p1s:
            raise ConfigError("p1s: list only noisy encodings here; the deterministic one is set by `deterministic`")
        if self.init in self.other_inits:
            raise ConfigError(f"other_inits: {self.init!r} is already init; list only the others")
        if self.other_inits and "standard" not in self.variants:
            raise ConfigError("other_inits: the initialisations are compared on the standard net; add 'standard' to variants")
        if len(set(self.width_lr)) != len(self.width_lr):
            raise ConfigError(f"width_lr: listed twice in {self.width_lr}")
        if len(set(self.widths)) != len(self.widths):
            raise ConfigError(f"widths: listed twice in {self.widths}")
        if not self.variants and not self.widths:
            raise ConfigError("variants: nothing to run; give variants or a width sweep (widths)")


def _train(ctx, config: RBEVariantsConfig, model, p1s, seeds: int, lrs: np.ndarray, *, num_steps: int | None = None,
           record_every: int | None = None) -> dict[str, np.ndarray]:
    """One model: len(p1s) x seeds members on one point each (member c * seeds + s), each with its
    own learning rate ``lrs`` (member,); the response recorded in both spaces."""
    loss = config.loss_fn
    keys, data = rbe.single_point_members(p1s, np.arange(seeds), config.probes_per_distance)
    result = ctx.train(
        model, rbe.encoder_task(None), optimizer("sgd", learning_rate=hparam("lr")), seeds=keys,
        num_steps=config.num_steps if num_steps is None else num_steps, loss=loss,
        observables={"response": resp.ResponseObservable(model, loss, logit=True)},
        record_every=config.record_every if record_every is None else record_every, hparams={"lr": np.asarray(lrs, np.float32)},
        data=data,
    )
    sim = resp.single_point_records(result, len(p1s), loss, np.asarray(data["probe_h"][0]))
    sim["x_o"] = np.asarray(data["sources"][:seeds, 0])
    sim["probes"] = np.asarray(data["probes"][:seeds])
    return sim


def _initial_self_ntk(config: RBEVariantsConfig, features: int, parametrization: str = "standard") -> float:
    """The seed-median self-NTK Theta_f(x_o, x_o) of the width-``features`` net at initialisation,
    on the width sweep's members (the engine's initial weights: its init stream 0 of each key)."""
    model = RBEConvNet(features=features, init_scheme=config.init, parametrization=parametrization)
    keys, data = rbe.single_point_members((0.5,), np.arange(config.width_seeds), config.probes_per_distance)
    params0 = init_members(model, keys, data["sources"][0], stream=0)
    theta_f, _ = resp.point_kernels(model, params0, data["sources"])
    return float(np.median(theta_f[:, 0, 0]))


def _infinite_width_self_ntk(config: RBEVariantsConfig, features: int, x_o: np.ndarray) -> np.ndarray:
    """(seed,) the infinite-width NTK Theta^inf_z(x_o, x_o) of the logits of the NTK-parametrised
    net at width ``features`` (``theory.kernels.from_model``: Keras' variances at that width), at
    each member's x_o ``(seed, L)``: what that member's empirical kernel fluctuates around."""
    model = RBEConvNet(features=features, init_scheme=config.init, parametrization="ntk")
    described = kernels.from_model(model, output="logits", input_shape=x_o.shape[1:])
    return np.asarray(described.kernel_diagonal(np.asarray(x_o, np.float32), get="ntk").ntk, np.float64)


def _conditions(config: RBEVariantsConfig) -> list[dict[str, Any]]:
    """Every (variant, initialisation) model with its encodings."""
    out = []
    for name in config.variants:
        p1s = tuple(config.p1s) + ((0.0,) if name in config.deterministic else ())
        out.append({"variant": name, "init": config.init, "p1s": p1s, "label": name})
    if "standard" in config.variants:
        p1s = tuple(config.p1s) + ((0.0,) if "standard" in config.deterministic else ())
        for init in config.other_inits:
            out.append({"variant": "standard", "init": init, "p1s": p1s, "label": f"standard ({init} init)"})
    return out


def run(config: RBEVariantsConfig, ctx) -> Result:
    """Every variant x encoding (and the standard net under each initialisation) through the same
    simulation and fits; then the width sweep."""
    conds = _conditions(config)
    for c in conds:
        model = RBEConvNet(**VARIANTS[c["variant"]], init_scheme=c["init"])
        lrs = np.full(len(c["p1s"]) * config.seeds, config.lr)
        full = _train(ctx, config, model, c["p1s"], config.seeds, lrs)
        c["x_o"], c["probes"] = full["x_o"], full["probes"]
        c["sim"] = resp.to_profiles(full)
        if config.early and config.record_every > 1:
            c["early"] = resp.to_profiles(_train(ctx, config, model, c["p1s"], config.seeds, lrs,
                                                 num_steps=config.record_every, record_every=1))
    widths = []
    sizes = sorted(set(config.widths) | {STANDARD_WIDTH}) if config.widths else []
    parametrizations = ("standard",) + (("ntk",) if NTK_PARAM in config.width_lr else ())
    theta0 = {(m, p): _initial_self_ntk(config, m, p) for m in sizes for p in parametrizations}
    for m in config.widths:
        scale = {"fixed": 1.0, "inverse": STANDARD_WIDTH / m, "ntk": theta0[STANDARD_WIDTH, "standard"] / theta0[m, "standard"]}
        if NTK_PARAM in config.width_lr:
            scale[NTK_PARAM] = theta0[STANDARD_WIDTH, "standard"] / theta0[STANDARD_WIDTH, "ntk"]
        # Members (scheme, seed): one model, one compiled program, a learning rate per member;
        # the NTK-parametrised net is another model, so another call on the same keys.
        groups = [([k for k in config.width_lr if k != NTK_PARAM], "standard"), ([k for k in config.width_lr if k == NTK_PARAM], "ntk")]
        runs = []
        for schemes, parametrization in groups:
            if schemes:
                model = RBEConvNet(features=m, init_scheme=config.init, parametrization=parametrization)
                lrs = np.concatenate([np.full(config.width_seeds, config.lr * scale[k]) for k in schemes])
                runs.append((schemes, _train(ctx, config, model, (0.5,) * len(schemes), config.width_seeds, lrs)))
        widths.append({"features": m, "sim": resp.to_profiles(_join_schemes(runs, config.width_lr)),
                       "lr": {k: config.lr * scale[k] for k in config.width_lr},
                       "theta0": {k: theta0[m, "ntk" if k == NTK_PARAM else "standard"] for k in config.width_lr}})
        if NTK_PARAM in config.width_lr:
            widths[-1]["theta_logit_infinite"] = _infinite_width_self_ntk(config, m, widths[-1]["sim"]["x_o"])
    ctx.stage("analysis")
    found: list = []
    table = []
    for c in conds:
        c["analysis"] = resp.analyse_encodings(c["sim"], c["p1s"], epochs=config.epochs, fit_start=config.fit_start, lr=config.lr,
                                               loss=config.loss, n_boot=config.n_boot, kernel_ode=False)
        for a in c["analysis"]:
            slug = f"{c['variant']}{'' if c['init'] == config.init else '-' + c['init']}-{_slug(a['encoding'])}"
            found += resp.law_claims(a, f"{c['label']}, {a['encoding']}", slug, fit_start=config.fit_start)
            table.append(_row(c, a))
    found += _comparisons({c["variant"]: c["analysis"] for c in conds if c["init"] == config.init})
    width_rows, width_claims = _width_sweep(config, widths)
    found += width_claims
    numbers = {"seeds": config.seeds, "init": config.init, "table": table, "inits": _init_table(config, conds),
               "width_sweep": width_rows}
    ds = _dataset(config, conds, widths)
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(config, conds, widths, width_rows), numbers=numbers)


def _join_schemes(runs: list, order) -> dict[str, np.ndarray]:
    """The records of training calls on the same keys, ``runs`` = [(schemes, records)], joined
    along the encoding axis (axis 1 of every (seed, encoding, ...) array) in the schemes' ``order``."""
    if len(runs) == 1:
        return runs[0][1]
    names = [k for schemes, _ in runs for k in schemes]
    where = [names.index(k) for k in order]
    shared = ("probe_h", "steps", "x_o", "probes")
    joined = dict(runs[0][1])
    for key in runs[0][1]:
        if key not in shared:
            joined[key] = np.concatenate([sim[key] for _, sim in runs], axis=1)[:, where]
    return joined


def _slug(encoding: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in encoding).strip("-").replace("--", "-")


def _row(c: dict, a: dict) -> dict[str, Any]:
    pl, sat = a["power_law"], a["saturation"]
    return {
        "variant": c["variant"], "init": c["init"], "encoding": a["encoding"], "p1": a["p1"], "members": a["members"],
        "tau": pl["tau"], "tau_ci": pl["tau_ci"], "r2_loglog": pl["r2_loglog"],
        "tau_logit": sat["tau_logit"], "tau_logit_ci": sat["tau_logit_ci"], "tau_sigmoid_factor": sat["tau_sigmoid_factor"],
        "tau_theta_logit": sat["tau_theta_logit"], "theta_logit_growth_median": sat["theta_logit_growth_median"],
        "drift": a["drift"]["value"], "drift_upper95": a["drift"]["upper95"],
        "initial_size": a["kernels"][min(a["kernels"])]["size"],
        "slopes": {e: k["slope"] for e, k in a["kernels"].items()},
        "slope_ci": {e: k["slope_ci"] for e, k in a["kernels"].items()},
        "slopes_logit": sat["kernel_logit_slopes"],
        "min_kernel_r2": min(k["r2_linear"] for k in a["kernels"].values()),
        "min_ntk_explained": min(a["ntk_explained"].values()),
        "fit_starts": {s: v["tau"] for s, v in a["fit_starts"].items()},
    }


def _init_table(config, conds) -> list[dict[str, Any]]:
    """The standard net under every initialisation: tau (both spaces), initial size, slopes."""
    rows = []
    for c in conds:
        if c["variant"] != "standard":
            continue
        for a in c["analysis"]:
            rows.append({"init": c["init"], "encoding": a["encoding"], "tau": a["power_law"]["tau"], "tau_ci": a["power_law"]["tau_ci"],
                         "tau_logit": a["saturation"]["tau_logit"], "initial_size": a["kernels"][min(a["kernels"])]["size"],
                         "slopes": {e: k["slope"] for e, k in a["kernels"].items()}})
    return rows


def _find(results, variant, p1):
    for a in results.get(variant, []):
        if a["p1"] == p1:
            return a
    return None


_ELU = ("The aging, decay in the size of the response, shows clearer power law like behavior with ELU rather than Relu", "Sec. III, Fig. 2")
_DROPOUT = ("We should note the slopes of the response kernels are smaller than the cases without dropout", "Sec. III, Fig. 3")
_DET_TAU = ("In this deterministic case, the aging exponent is larger than non-deterministic ones", "Sec. IV, Fig. 7")
_DET_LAW = ("Especially, the aging of the response size shows a clear power law", "Sec. IV, Fig. 7")
_DET_KERNEL = ("The kernels, in (B) and (D), are not converged, but diverged along the training epochs", "Appendix, Fig. 7")


def _comparisons(results) -> list:
    """The paper's comparisons between variants (Fig. 2, 3, 7), on the analyses by variant."""
    found = []
    std = results.get("standard")
    if std is None:
        return found
    noisy = [a for a in std if 0.0 < a["p1"] < 1.0]
    if "relu" in results:
        gaps = [a["power_law"]["r2_loglog"] - _find(results, "relu", a["p1"])["power_law"]["r2_loglog"] for a in noisy]
        found.append(claims.check("elu-clearer-than-relu", "aging is a clearer power law with ELU than with ReLU (smallest "
                                  "R^2_ELU - R^2_ReLU of the seed-mean log-log fit over noisy encodings)", min(gaps), ">", 0.0,
                                  kind="paper", source=claims.source(*_ELU), threshold_source="a comparison: the difference above 0",
                                  reading="on the seed-mean curves, which the paper's Fig. 2 shows"))
    if "dropout" in results:
        diffs = []
        for a in noisy:
            d = _find(results, "dropout", a["p1"])
            for ep, k in a["fits"]["kernels"].items():
                if ep > 0:
                    diffs.append(abs(d["fits"]["kernels"][ep].slope) - abs(k.slope))
        found.append(claims.check("dropout-smaller-slopes", "dropout 0.2 makes the kernel slopes smaller (largest "
                                  "|slope_dropout| - |slope_standard| of the seed-mean kernels over noisy encodings and epochs > 0, per bit)",
                                  max(diffs), "<", 0.0, kind="paper", source=claims.source(*_DROPOUT),
                                  threshold_source="a comparison: the difference below 0"))
    for variant in ("standard", "relu"):
        det = _find(results, variant, 0.0)
        if det is None:
            continue
        others = [a for a in results[variant] if 0.0 < a["p1"] < 1.0]
        gap = det["power_law"]["tau"] - max(a["power_law"]["tau"] for a in others)
        found.append(claims.check(f"{variant}-deterministic-ages-faster", f"{variant}: the deterministic encoding ages faster, in output "
                                  "space as measured (tau_deterministic - largest noisy tau, seed-mean fits)", gap, ">", 0.0, kind="paper",
                                  source=claims.source(*_DET_TAU), threshold_source="a comparison: the difference above 0"))
        if "saturation" in det:
            gap_z = det["saturation"]["tau_logit"] - max(a["saturation"]["tau_logit"] for a in others)
            found.append(claims.check(f"{variant}-deterministic-ages-faster-logit", f"{variant}: ... and in logit space, the network's part "
                                      f"(tau_z deterministic {det['saturation']['tau_logit']:.3g} minus the largest noisy tau_z; the deterministic "
                                      f"sigmoid factor decays with exponent {det['saturation']['tau_sigmoid_factor']:.3g})", gap_z, ">", 0.0,
                                      kind="paper", source=claims.source(*_DET_TAU), threshold_source="a comparison: the difference above 0",
                                      reading="the aging read on the logit-space response, without the sigmoid's saturation"))
        found.append(claims.check(f"{variant}-deterministic-power-law", f"{variant}: the deterministic aging is a clear power law (log-log R^2 "
                                  "of the seed-mean output-space size)", det["power_law"]["r2_loglog"], ">=", 0.95, kind="paper",
                                  source=claims.source(*_DET_LAW), threshold_source="project's reading of 'clear power law': R^2 >= 0.95"))
        # "The kernels are not converged, but diverged": the slope keeps moving at the end,
        # more than with the noisy encodings, compared over the last two reported epochs; in
        # output space (as measured) and in logit space (is the divergence the sigmoid's?).
        eps = sorted(det["fits"]["kernels"])
        if len(eps) >= 2:
            for space, key in (("output", "kernels"), ("logit", "kernels_logit")):
                if key not in det["fits"]:
                    continue
                move = lambda a: abs(a["fits"][key][eps[-1]].slope - a["fits"][key][eps[-2]].slope)  # noqa: E731
                ratio = move(det) / max(max(move(a) for a in others), 1e-12)
                found.append(claims.check(
                    f"{variant}-deterministic-kernel-diverges{'' if space == 'output' else '-logit'}",
                    f"{variant}: the deterministic kernel does not converge, {space} space (|slope change| of the seed-mean kernel over "
                    f"the last two reported epochs, relative to the noisy encodings'; slopes {[round(det['fits'][key][e].slope, 3) for e in eps]})",
                    ratio, ">", 1.0, kind="paper", source=claims.source(*_DET_KERNEL),
                    threshold_source="moves more than the noisy encodings' kernels",
                    reading=None if space == "output" else "the kernel of the logits: K_f = [sigma'(z_h)/sigma'(z_o)] K_z, so a K_f that "
                    "diverges while K_z converges is the sigmoid's saturation"))
    return found


_WIDTH_TREND_READING = (
    "a trend over widths compares ensembles: each width trains nets of its own (on the same seeds' tasks), and one member's "
    "value at one width is one draw about that width's mean, so the claim is decided on the slope of the seed means against "
    "log2 M, its margin in seed-bootstrap standard errors (the seeds of every width resampled independently), not seed by seed")
"""The reading every width-sweep claim states: why its verdict is on seed means."""


def _slope_se_over_width(x: np.ndarray, samples: list, stats: list, n_boot: int, seed: int) -> float:
    """Seed-bootstrap standard error of the slope against ``x`` of ``stats[w](samples[w])``: the
    seeds (leading axis) of every width's sample resampled independently, at most 300 draws."""
    rng = np.random.default_rng(seed)
    boots = [resp.line_fit(x, np.array([stat(v[rng.integers(0, len(v), len(v))]) for v, stat in zip(samples, stats)])).slope
             for _ in range(min(n_boot, 300))]
    return float(np.std(boots, ddof=1))


def _tau_vs_width(widths: list, rows_by: dict, scheme: str, n_boot: int) -> tuple[float, float, list]:
    """Slope of tau against log2 M for one learning-rate scheme, with a bootstrap standard error
    (seeds resampled within every width independently)."""
    x = np.log2([w["features"] for w in widths])
    rows = [rows_by[(w["features"], scheme)] for w in widths]
    taus = np.array([r["fit"].tau for r in rows])
    stats = [lambda sizes, t=r["t"]: -resp._loglog(t, np.nanmean(sizes, 0)).slope for r in rows]
    return float(resp.line_fit(x, taus).slope), _slope_se_over_width(x, [r["sizes"] for r in rows], stats, n_boot, 7), taus.tolist()


def _width_sweep(config, widths: list) -> tuple[list, list]:
    """tau, its logit-space part and the late response size per width and learning-rate scheme;
    the claims on the width trend."""
    if not widths:
        return [], []
    rows, rows_by = [], {}
    for w in widths:
        sim = w["sim"]
        steps = sim["steps"]
        analysis = resp.analyse_encodings(sim, (0.5,) * len(config.width_lr), epochs=config.epochs, fit_start=config.fit_start,
                                          lr=config.lr, loss=config.loss, n_boot=min(config.n_boot, 300), kernel_ode=False)
        prof = resp.profile(sim["response"], sim["probe_h"])
        for j, scheme in enumerate(config.width_lr):
            a = analysis[j]
            sizes = prof[np.asarray(a["included"]), j, :, 0]
            row = {"features": w["features"], "lr_scheme": scheme, "lr": w["lr"][scheme], "theta_f_initial_median": w["theta0"][scheme],
                   "tau": a["power_law"]["tau"],
                   "tau_ci": a["power_law"]["tau_ci"], "tau_logit": a["saturation"]["tau_logit"],
                   "tau_sigmoid_factor": a["saturation"]["tau_sigmoid_factor"],
                   "tau_theta_logit": a["saturation"]["tau_theta_logit"],
                   "theta_logit_growth_median": a["saturation"]["theta_logit_growth_median"],
                   "initial_size": float(np.mean(sizes[:, 0])),
                   "late_size": float(np.mean(sizes[:, -1])), "late_size_sem": float(np.std(sizes[:, -1], ddof=1) / np.sqrt(len(sizes))),
                   "theta_logit_self_start": float(np.mean(a["per_seed"]["theta_logit_self"][:, 0])),
                   "slopes": {e: k["slope"] for e, k in a["kernels"].items()}}
            by = {"fit": a["fits"]["power_law"], "sizes": sizes, "t": steps[steps >= config.fit_start],
                  "tau_theta_logit": a["per_seed"]["tau_theta_logit"], "theta_logit_growth": a["per_seed"]["theta_logit_growth"]}
            if scheme == NTK_PARAM:
                # Each included member's logit self-kernel at the start and the end against its x_o's
                # infinite-width kernel.
                inf = w["theta_logit_infinite"][np.asarray(a["included"])]
                self_kernel = a["per_seed"]["theta_logit_self"]
                by["gap_to_infinite"] = {"start": np.abs(self_kernel[:, 0] / inf - 1.0), "end": np.abs(self_kernel[:, -1] / inf - 1.0)}
                row["theta_logit_infinite_median"] = float(np.median(w["theta_logit_infinite"]))
                row["gap_to_infinite_start"] = float(np.mean(by["gap_to_infinite"]["start"]))
                row["gap_to_infinite_end"] = float(np.mean(by["gap_to_infinite"]["end"]))
            rows.append(row)
            rows_by[(w["features"], scheme)] = by
            rows_by[(w["features"], scheme)]["sizes"] = sizes[:, steps >= config.fit_start]
    found = []
    if len(widths) < 2:
        return rows, found
    trend = {s: _tau_vs_width(widths, rows_by, s, config.n_boot) for s in config.width_lr}
    ms = [w["features"] for w in widths]
    why = ("under standard parametrisation the NTK grows with the width M, so at a fixed lr a wider net takes larger steps in "
           "function space; the aging exponent's rise with M may be that scale, not the architecture")
    if "fixed" in trend:
        slope, se, taus = trend["fixed"]
        found.append(claims.check("width-tau-rises-fixed-lr", f"at a fixed lr the aging exponent rises with the width (slope of tau "
                                  f"per doubling of M over M = {ms}; taus {[round(t, 3) for t in taus]})", slope, ">", 0.0, kind="extension", reading=_WIDTH_TREND_READING,
                                  why=why, se=se, threshold_source="a rise: slope above 0"))
    held_scheme = "ntk" if "ntk" in trend else ("inverse" if "inverse" in trend else None)
    if "fixed" in trend and held_scheme is not None:
        s_fix, se_fix, _ = trend["fixed"]
        s_h, se_h, taus_h = trend[held_scheme]
        how = "lr * Theta_8 / Theta_M (the measured initial NTK held)" if held_scheme == "ntk" else "lr * 8 / M"
        found.append(claims.check(
            "width-rise-is-ntk-scale", f"with {how} the rise of tau with M is less than half of the rise at fixed lr (slope per "
            f"doubling {s_h:.3g} against {s_fix:.3g}; taus {[round(t, 3) for t in taus_h]}; value: the scaled slope minus half the "
            "fixed one, or the scaled slope itself where tau does not rise at fixed lr)",
            s_h - 0.5 * max(s_fix, 0.0), "<", 0.0, kind="extension", reading=_WIDTH_TREND_READING, why=why,
            se=float(np.hypot(se_h, 0.5 * se_fix)), threshold_source="half the rise measured at fixed lr in the same run "
            "(the NTK-scale reading predicts no rise at all)"))
        found.append(claims.check(
            "width-tau-flat-ntk-held", f"... and what remains is flat: with {how} |slope of tau per doubling of M| is below 0.05",
            abs(s_h), "<", 0.05, kind="extension", reading=_WIDTH_TREND_READING, why=why, se=se_h,
            threshold_source="project's tolerance: under a tenth of the standard exponent (about 0.5) per doubling"))
    if NTK_PARAM in trend:
        found += _ntk_param_claims(widths, rows_by, config.n_boot)
    return rows, found


def _seed_mean_trend(widths: list, per_seed: list, transform, n_boot: int) -> tuple[float, float, list]:
    """Slope against log2 M of ``transform`` of the seed mean of ``per_seed`` (one (seed,) array
    per width), with a seed-bootstrap standard error (seeds resampled within every width)."""
    x = np.log2([w["features"] for w in widths])
    values = [transform(np.nanmean(v)) for v in per_seed]
    se = _slope_se_over_width(x, per_seed, [lambda v: transform(np.nanmean(v))] * len(per_seed), n_boot, 11)
    return float(resp.line_fit(x, np.array(values)).slope), se, values


def _ntk_param_claims(widths: list, rows_by: dict, n_boot: int) -> list:
    """Does the network's aging vanish as the width grows under NTK parametrisation? Two
    readings of the logit-space self-kernel Theta_z(x_o, x_o), each a slope per doubling of M with
    a seed-bootstrap SE: its aging exponent, and how far it moves over training, |Theta_z(end) /
    Theta_z(0) - 1| (lazy training predicts a fall as M^(-1/2): slope -0.5 in log2-log2)."""
    ms = [w["features"] for w in widths]
    why = ("under NTK parametrisation the NTK tends to a fixed kernel as the width grows and its change over training vanishes "
           "(the lazy limit), so the network's part of the aging, the logit-space kernel's decay, should vanish at one lr")
    found = []
    tau = [rows_by[(m, NTK_PARAM)]["tau_theta_logit"] for m in ms]
    slope, se, values = _seed_mean_trend(widths, tau, float, n_boot)
    found.append(claims.check(
        "width-ntk-param-kernel-aging-falls", f"under NTK parametrisation at one lr the aging exponent of the logit-space self-kernel "
        f"Theta_z(x_o, x_o) falls as the width grows (slope of the seed-mean exponent per doubling of M over M = {ms}; exponents "
        f"{[round(v, 3) for v in values]})", slope, "<", 0.0, kind="extension", reading=_WIDTH_TREND_READING, why=why, se=se,
        threshold_source="a fall: slope below 0"))
    moved = [np.abs(rows_by[(m, NTK_PARAM)]["theta_logit_growth"] - 1.0) for m in ms]
    slope, se, values = _seed_mean_trend(widths, moved, lambda v: float(np.log2(v)), n_boot)
    found.append(claims.check(
        "width-ntk-param-kernel-moves-less", f"under NTK parametrisation the logit-space self-kernel moves less over training as the "
        f"width grows (log2 of the seed-mean |Theta_z(end) / Theta_z(0) - 1| against log2 M: slope {slope:.3g}, lazy training "
        f"predicts -0.5; seed means {[round(2 ** v, 3) for v in values]})", slope, "<", 0.0, kind="extension", reading=_WIDTH_TREND_READING, why=why, se=se,
        threshold_source="a fall: slope below 0 (the -0.5 of lazy training is the reading, not the threshold)"))
    gaps = [rows_by[(m, NTK_PARAM)]["gap_to_infinite"]["start"] for m in ms]
    slope, se, values = _seed_mean_trend(widths, gaps, lambda v: float(np.log2(v)), n_boot)
    end = [float(np.mean(rows_by[(m, NTK_PARAM)]["gap_to_infinite"]["end"])) for m in ms]
    found.append(claims.check(
        "width-ntk-param-initial-kernel-tends-to-infinite-width", f"under NTK parametrisation the initial logit-space self-kernel "
        f"Theta_z(x_o, x_o) approaches the infinite-width NTK of the same architecture as the width grows (log2 of the seed-mean "
        f"|Theta_z(0) / Theta^inf_z - 1| against log2 M: slope {slope:.3g}, fluctuations of order M^(-1/2) predict -0.5; seed means "
        f"{[round(2 ** v, 3) for v in values]}; after training {[round(v, 3) for v in end]})", slope, "<", 0.0, kind="extension", reading=_WIDTH_TREND_READING,
        why="the empirical NTK at initialisation is a random kernel whose fluctuations about the infinite-width kernel shrink as the "
            "width grows (Jacot et al. 2018); Theta^inf is theory.kernels' NTK of the NTK-parametrised net at each M's Keras variances",
        se=se, threshold_source="a fall: slope below 0 (the -0.5 of the fluctuations is the reading, not the threshold)"))
    return found


_PROFILE = ", averaged over the probes at each Hamming distance h from x_o"
_RECORDS = {
    "response": "normalised one-step response Delta f(probe) / (y_o - f(x_o)) after one SGD step at x_o with y_o ~ p(y) (not applied "
                "to training)" + _PROFILE,
    "theta": "empirical NTK Theta_f(x_o, probe) of the sigmoid output at the same weights" + _PROFILE,
    "response_logit": "logit-space response Delta z(probe) / ((y_o - f(x_o)) sigma'(z_o)) of the same step" + _PROFILE,
    "theta_logit": "empirical NTK Theta_z(x_o, probe) of the logits" + _PROFILE,
    "probe_f": "output f(probe) before the probe step" + _PROFILE,
    "f_source": "output f(x_o) before the probe step",
    "y_source": "label y_o ~ p(y) (0 or 1) of the probe step",
    "dl_df": "loss derivative dL/df at (f(x_o), y_o) of the probe step",
}
"""``long_name`` of every record stored per condition (and, prefixed ``width_``, per width)."""


def _described(key: str, suffix: str = "") -> dict[str, str]:
    return {"long_name": _RECORDS[key] + suffix, "units": "1"}


def _dataset(config, conds, widths) -> xr.Dataset:
    four = ("seed", "condition", "time", "hamming")
    three = ("seed", "condition", "time")
    stack = lambda key: np.concatenate([c["sim"][key] for c in conds], axis=1)  # noqa: E731
    one = {"units": "1"}
    time_attrs = {"long_name": "training epoch e of the records (one SGD step on x_o per epoch)", "units": "epoch"}
    variables: dict[str, Any] = {}
    coords: dict[str, Any] = {"hamming": ("hamming", np.arange(17), {"long_name": "Hamming distance h from x_o", "units": "bit"}),
                              "bit": ("bit", np.arange(16), {"long_name": "bit position in the 16-bit strings", **one})}
    if conds:
        names, inits, encs, p1s = [], [], [], []
        for c in conds:
            for a in c["analysis"]:
                names.append(c["variant"])
                inits.append(c["init"])
                encs.append(a["encoding"])
                p1s.append(a["p1"])
        variables.update({
            "response": (four, stack("response"), _described("response")), "theta": (four, stack("theta"), _described("theta")),
            "response_logit": (four, stack("response_logit"), _described("response_logit")),
            "theta_logit": (four, stack("theta_logit"), _described("theta_logit")),
            "probe_f": (four, stack("probe_f"), _described("probe_f")),
            "f_source": (three, stack("f_source"), _described("f_source")), "y_source": (three, stack("y_source"), _described("y_source")),
            "dl_df": (three, stack("dl_df"), _described("dl_df")),
            "diverged_at": (("seed", "condition"), stack("diverged_at")),
            "nonfinite_at": (("seed", "condition"), stack("nonfinite_at")),
            "x_o": (("seed", "bit"), conds[0]["x_o"].astype(np.int8),
                    {"long_name": "the training string x_o (bits 0/1), the same in every condition", **one}),
            "probe_bits": (("seed", "probe", "bit"), conds[0]["probes"].astype(np.int8),
                           {"long_name": "probe strings (bits 0/1) around x_o, the same in every condition", **one}),
            "probe_hamming": (("probe",), np.repeat(np.arange(17), config.probes_per_distance),
                              {"long_name": "Hamming distance h of each probe string from x_o", "units": "bit"}),
            "p1": ("condition", np.asarray(p1s), {"long_name": "label probability p(y=1) of the condition's encoding", **one}),
            "tau": ("condition", [a["power_law"]["tau"] for c in conds for a in c["analysis"]],
                    {"long_name": "aging exponent tau of the seed-mean response size S(e) = R(h=0) ~ A e^-tau over epochs fit_start..end "
                                  "(output space, included members)", **one}),
            "tau_low": ("condition", [a["power_law"]["tau_ci"][0] for c in conds for a in c["analysis"]],
                        {"long_name": "lower end of the 95% seed-bootstrap interval of tau", **one}),
            "tau_high": ("condition", [a["power_law"]["tau_ci"][1] for c in conds for a in c["analysis"]],
                         {"long_name": "upper end of the 95% seed-bootstrap interval of tau", **one}),
            "tau_logit": ("condition", [a["saturation"]["tau_logit"] for c in conds for a in c["analysis"]],
                          {"long_name": "aging exponent tau_z of the seed-mean logit-space response size S_z(e) = R_z(h=0) over epochs "
                                        "fit_start..end (included members)", **one}),
            "tau_sigmoid_factor": ("condition", [a["saturation"]["tau_sigmoid_factor"] for c in conds for a in c["analysis"]],
                                   {"long_name": "power-law exponent of the seed-mean sigmoid factor (f(x_o)(1 - f(x_o)))^2 = sigma'(z_o)^2 "
                                                 "over epochs fit_start..end (included members)", **one}),
        })
        coords.update({"seed": np.arange(config.seeds),
                       "condition": ("condition", np.arange(len(names)), {"long_name": "condition index (one variant, initialisation and encoding each)", **one}),
                       "variant": ("condition", names, {"long_name": "architecture: the standard net (N = 3 conv layers, M = 8 filters, ELU) or its one named change"}),
                       "init": ("condition", inits, {"long_name": "weight initialisation of the condition's net"}),
                       "encoding": ("condition", encs, {"long_name": "encoding p(y) of the label of x_o"}),
                       "time": ("time", conds[0]["sim"]["steps"], time_attrs)})
        if all("early" in c for c in conds):
            e4, e3 = ("seed", "condition", "early_time", "hamming"), ("seed", "condition", "early_time")
            early = lambda key: np.concatenate([c["early"][key] for c in conds], axis=1)  # noqa: E731
            again = ", the second run recorded every epoch"
            variables.update({"response_early": (e4, early("response"), _described("response", again)),
                              "response_logit_early": (e4, early("response_logit"), _described("response_logit", again)),
                              "theta_logit_early": (e4, early("theta_logit"), _described("theta_logit", again)),
                              "f_source_early": (e3, early("f_source"), _described("f_source", again))})
            coords["early_time"] = ("early_time", conds[0]["early"]["steps"],
                                    {"long_name": "training epoch of the second run's records (the same members, identical trajectories, "
                                                  "recorded every epoch up to record_every)", "units": "epoch"})
    if widths:
        w4, w3 = ("width_seed", "width", "lr_scheme", "time", "hamming"), ("width_seed", "width", "lr_scheme", "time")
        wstack = lambda key: np.stack([w["sim"][key] for w in widths], axis=1)  # noqa: E731
        sweep = ", width sweep (unbiased encoding)"
        variables.update({
            "width_response": (w4, wstack("response"), _described("response", sweep)),
            "width_theta": (w4, wstack("theta"), _described("theta", sweep)),
            "width_response_logit": (w4, wstack("response_logit"), _described("response_logit", sweep)),
            "width_theta_logit": (w4, wstack("theta_logit"), _described("theta_logit", sweep)),
            "width_probe_f": (w4, wstack("probe_f"), _described("probe_f", sweep)),
            "width_f_source": (w3, wstack("f_source"), _described("f_source", sweep)),
            "width_y_source": (w3, wstack("y_source"), _described("y_source", sweep)),
            "width_dl_df": (w3, wstack("dl_df"), _described("dl_df", sweep)),
            "width_diverged_at": (("width_seed", "width", "lr_scheme"), wstack("diverged_at"),
                                  {"long_name": "first step whose update was non-finite (-1: none)" + sweep, "units": "step"}),
            "width_lr": (("width", "lr_scheme"), np.asarray([[w["lr"][k] for k in config.width_lr] for w in widths]),
                         {"long_name": "learning rate of each width and scheme (Theta_M of the ntk scheme: the seed-median initial "
                                       "self-NTK Theta_f(x_o, x_o) at width M)", **one}),
            **({"width_theta_logit_infinite": (("width_seed", "width"), np.stack([w["theta_logit_infinite"] for w in widths], axis=1),
                                                {"long_name": "infinite-width NTK Theta^inf_z(x_o, x_o) of the logits of the NTK-parametrised "
                                                              "net at width M (theory.kernels, Keras' variances at M), at each member's x_o",
                                                 **one})} if NTK_PARAM in config.width_lr else {}),
            "width_theta_f_initial": (("width", "lr_scheme"), np.asarray([[w["theta0"][k] for k in config.width_lr] for w in widths]),
                                      {"long_name": "seed-median initial self-NTK Theta_f(x_o, x_o) of the scheme's net at width M (the "
                                                    "NTK-parametrised net's for ntk-param), from which the ntk and ntk-param rates are set",
                                       **one}),
        })
        coords.update({"width_seed": ("width_seed", np.arange(config.width_seeds), {"long_name": "ensemble member of the width sweep", **one}),
                       "width": ("width", [w["features"] for w in widths], {"long_name": "filters per conv layer M of the width sweep", **one}),
                       "lr_scheme": ("lr_scheme", list(config.width_lr), {"long_name": "learning-rate scheme of the width sweep: fixed (lr), inverse (lr * 8 / M), ntk (lr * Theta_8 / Theta_M), "
                                                         "ntk-param (the NTK-parametrised net at lr * Theta_8 / Theta^ntk_8 for every M)"}),
                       "time": ("time", widths[0]["sim"]["steps"], time_attrs)})
    return xr.Dataset(
        variables, coords=coords,
        attrs={"lr": config.lr, "loss": config.loss, "init": config.init, "fit_start": config.fit_start, "kernel_size": 3, "padding": "VALID",
               "architecture": "conv kernel size 3 and VALID padding are the project's choices (the paper gives neither)",
               "profiles": "every per-probe record averaged over the probes at each Hamming distance (response, theta, their logit-space "
                           "counterparts, probe_f = outputs at the probes)",
               "width_lr": "fixed: lr; inverse: lr * 8 / M; ntk: lr * Theta_8 / Theta_M; ntk-param: the NTK-parametrised net at lr * "
                           "Theta_8 / Theta^ntk_8 for every M", "time_units": "epochs = SGD steps"},
    )


def _figures(config, conds, widths, width_rows) -> dict:
    figs = {}
    if conds:
        ncols = max(len(c["analysis"]) for c in conds) + 2
        fig, axes = plots.figure(len(conds), ncols, width=3.3, height=2.7)
        for i, c in enumerate(conds):
            sim = resp.join_early(c["early"], c["sim"]) if "early" in c else c["sim"]
            prof = resp.profile(sim["response"], sim["probe_h"])
            for e, a in enumerate(c["analysis"]):
                ok = np.asarray(a["included"])
                plots.plot_aging(axes[i, 0], sim["steps"], prof[ok, e, :, 0], a["power_law"], plots.color(e), label=a["encoding"])
                plots.plot_kernels(axes[i, e + 1], a["fits"]["kernels"])
                axes[i, e + 1].set_title(f"{c['label']}: {a['encoding']}", fontsize=8)
                axes[i, e + 1].legend(loc="best", fontsize=6)
            taus = {a["encoding"]: (a["power_law"]["tau"], a["saturation"]["tau_logit"], a["saturation"]["tau_sigmoid_factor"]) for a in c["analysis"]}
            plots.plot_tau_split(axes[i, ncols - 1], taus)
            axes[i, ncols - 1].set_title(f"{c['label']}: tau split", fontsize=8)
            axes[i, 0].set_title(f"{c['label']}: aging", fontsize=8)
            axes[i, 0].legend(loc="lower left", fontsize=6)
            for j in range(len(c["analysis"]) + 1, ncols - 1):
                axes[i, j].set_axis_off()
        figs["variants"] = Figure(fig, "per condition: aging of the output-space response size per encoding, the response kernels per reported "
                                       "epoch, and the aging exponent split into its logit-space part and the sigmoid factor")
        rows = [(c, a) for c in conds for a in c["analysis"]]
        fig2, ax = plots.figure(1, 1, width=8.0, height=0.3 * len(rows) + 1.6)
        encs = list(dict.fromkeys(a["encoding"] for _, a in rows))
        for y, (_, a) in enumerate(rows):
            pl = a["power_law"]
            col = plots.color(encs.index(a["encoding"]))
            ax[0, 0].errorbar(pl["tau"], y, xerr=[[pl["tau"] - pl["tau_ci"][0]], [pl["tau_ci"][1] - pl["tau"]]], fmt="o", color=col,
                              markerfacecolor="none")
            z = a["saturation"]
            ax[0, 0].errorbar(z["tau_logit"], y + 0.25, xerr=[[z["tau_logit"] - z["tau_logit_ci"][0]], [z["tau_logit_ci"][1] - z["tau_logit"]]],
                              fmt="s", color=col, markersize=3)
        ax[0, 0].set_yticks(range(len(rows)), [f"{c['label']}, {a['encoding']}" for c, a in rows], fontsize=7)
        ax[0, 0].invert_yaxis()
        ax[0, 0].axvline(0, color="0.6", linewidth=0.8)
        ax[0, 0].set_xlabel(f"aging exponent tau (fit from epoch {config.fit_start})\nbars: 95% seed-bootstrap intervals")
        ax[0, 0].set_title("circles: output-space response\nsquares: logit-space response (the network's part)")
        figs["aging_exponents"] = Figure(fig2, "aging exponent of every condition in output space (circles) and logit space (squares) with 95% "
                                               "seed-bootstrap intervals")
    if width_rows:
        fig3, ax3 = plots.figure(1, 3, width=3.8, height=3.2)
        for j, scheme in enumerate(config.width_lr):
            r = [w for w in width_rows if w["lr_scheme"] == scheme]
            ms = [w["features"] for w in r]
            ax3[0, 0].errorbar(ms, [w["tau"] for w in r], yerr=[[w["tau"] - w["tau_ci"][0] for w in r], [w["tau_ci"][1] - w["tau"] for w in r]],
                               fmt="o-", color=plots.color(j), label=f"lr {scheme}")
            ax3[0, 0].plot(ms, [w["tau_theta_logit"] for w in r], "s--", color=plots.color(j), markersize=3)
            ax3[0, 1].errorbar(ms, [w["late_size"] for w in r], yerr=[2 * w["late_size_sem"] for w in r], fmt="o-", color=plots.color(j))
            ax3[0, 1].plot(ms, [w["initial_size"] for w in r], "^:", color=plots.color(j))
            ax3[0, 2].plot(ms, [abs(w["theta_logit_growth_median"] - 1) for w in r], "o-", color=plots.color(j))
        m_all = np.array(sorted({w["features"] for w in width_rows}), float)
        moved = [abs(w["theta_logit_growth_median"] - 1) for w in width_rows if w["features"] == m_all[0]]
        plots.reference_line(ax3[0, 2], m_all, max(moved) * np.sqrt(m_all[0] / m_all), label="M^(-1/2) (lazy training)")
        for a in ax3[0]:
            a.set_xscale("log", base=2)
            a.set_xlabel("filters per layer M")
        ax3[0, 0].set_ylabel("aging exponent")
        ax3[0, 0].set_title("solid: response (output space)\ndashed: self-kernel Theta_z")
        ax3[0, 1].set_yscale("log")
        ax3[0, 1].set_ylabel("response size S (seed mean, +-2 s.e.)")
        ax3[0, 1].set_title(f"response size\n(solid: epoch {config.num_steps}, dotted: epoch 0)")
        ax3[0, 2].set_yscale("log")
        ax3[0, 2].set_ylabel("|Theta_z(end) / Theta_z(0) - 1|")
        ax3[0, 2].set_title("how far the logit-space self-kernel\nmoves over training (seed median)")
        ax3[0, 2].legend(loc="best", fontsize=7)
        fig3.legend(*ax3[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=len(config.width_lr), fontsize=7, frameon=False)
        figs["width_sweep"] = Figure(fig3, "width sweep (unbiased encoding), per learning-rate scheme (fixed lr; lr x 8/M; lr x Theta_8/Theta_M; "
                                           "the NTK-parametrised net at one lr): aging exponents of the response and of the logit-space "
                                           "self-kernel, response sizes at the start and the end, and how far the self-kernel moves over "
                                           "training against the M^(-1/2) of lazy training")
    return figs


EXPERIMENT = Experiment(
    name="rbe-variants",
    work="Nakazato",
    description="depth 1/5, filters 4/16, ReLU, dropout 0.2, deterministic encoding, Keras vs flax initialisation, width sweep (standard and NTK parametrisation): aging in output and logit space",
    config=RBEVariantsConfig,
    run=run,
)
"""Registers ``jaxdyn run rbe-variants``: the response law across architectures, encodings, initialisations and widths (Nakazato Fig. 2, 3, 7)."""
