"""rbe-meanfield: 20 points in two groups, the network beside kernel and mean-field theory (Nakazato Fig. 5).

Twenty distinct random strings are split into g0 (encoded 0) and g1 (encoded 1) at density ratios
rho0/rho1 = 1/3, 2/3, 3, 3/2; each step trains one pair drawn uniformly (Eq. 9). The paper: all
predictions first move to the majority's label, then the minority turns to its own (Eq. 11: the
dynamics is set by the ratio of densities). Beside the network's predictions this experiment
integrates, with diffrax, theories built from the NTK measured on the 20 points
(``jaxdyn.theory.meanfield``):

* ``kernel``: the linearised kernel dynamics df/dt = -lr sum_j w_j Theta_ij dL/df_j (Eq. 10) with
  the initial NTK held fixed;
* ``meanfield``: the project's two-group extension of Eq. 11, whose coefficients are the group
  averages of the same kernel (self term, within-group and cross terms);
* ``literal``: Eq. 11 as written, one right-hand side for every point: it cannot split the groups;
* ``aging``, ``aging_blocks``: the group mean field with the kernel scaled by the fitted decay of
  its trace, and with every block coefficient measured along training (the NTK on the points is
  recorded every ``kernel_every`` epochs in the same compiled scan).

Every theory is computed in output space (the NTK of f = sigmoid output, as Eq. 10 reads) and in
logit space (the NTK of the logits, keeping the sigmoid's saturation); the kernel's aging is
reported in both spaces with the sigmoid factor. Turns are read on curves smoothed in log time,
per seed (the claims) and on the seed mean.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.analysis import response as resp
from jaxdyn.engine import Record, hparam, observables, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.experiments.fields import RBETrainingFields
from jaxdyn.models.rbe_conv import RBEConvNet, init_members
from jaxdyn.tasks import rbe
from jaxdyn.theory import meanfield
from jaxdyn.theory.meanfield import THEORY_NOTES

_TURN = ("In the first, all of them go to to the majority side and then the minorities turn its direction into the other side", "Sec. III, Fig. 5")
_EQ10 = ("The short term learning dynamics of the prediction can be written in the following", "Sec. III, Eq. 10")
_EQ11 = ("The loss of majority decreases in the first and the other one decreases later", "Sec. III, Eq. 11")
_RATIO = ("In other words, the dynamics is determined just along the ratio, rho0/rho1", "Sec. III, Fig. 5")


@dataclasses.dataclass(frozen=True)
class RBEMeanfieldConfig(RBETrainingFields, Config):
    """Configuration of rbe-meanfield (defaults: paper Fig. 5)."""

    seeds: int = param(20, "tests per ratio (the paper averages 20)", min=2, max=100_000)
    num_points: int = param(20, "training strings (the paper: 20)", min=2, max=4096)
    ratios: tuple[float, ...] = param((1 / 3, 2 / 3, 3.0, 1.5), "density ratios rho0/rho1 (group sizes n0 = N r / (1 + r))", min=0.0, max=1e3, min_exclusive=True, max_len=16)
    num_steps: int = param(400, "training epochs (one pair per step)", min=1, max=10_000_000)
    record_every: int = param(2, "epochs between records", min=1, max=1_000_000)
    kernel_every: int = param(10, "epochs between NTK measurements on the training points (a multiple of record_every)", min=1, max=1_000_000)
    spaces: tuple[str, ...] = param(meanfield.SPACES, "theory spaces: output (NTK of f, Eq. 10 as written) and/or logit (NTK of the logits)", choices=meanfield.SPACES, max_len=2)
    tolerance: float = param(0.1, "|theory - simulation| of a group mean counted as parting", min=0.0, max=1.0, min_exclusive=True)
    turn_margin: float = param(0.02, "smallest excursion (both ways) that counts as a turn", min=0.0, max=1.0)
    smooth: float = param(0.15, "width of the log-time smoothing of the curves whose turns are read (natural-log units; 0: none)", min=0.0, max=2.0)
    linearised: bool = param(True, "also train each member's first-order Taylor model around its initial weights (in every listed space) "
                                   "on the same pairs, beside the network")
    infinite_width: bool = param(True, "also integrate Eq. 10 with the infinite-width NTK of the same architecture on each member's "
                                       "points (in logit space, when spaces lists it: the NTK of the logits)")
    kernel_order: int = param(20, "Gauss-Hermite order of the infinite-width ELU kernel (the quadrature error moves the 20-point "
                                  "kernel's smallest eigenvalues, of a largest about 250, down to -0.14 at order 8 and -0.008 at 20)", min=4, max=64)

    @classmethod
    def quick(cls) -> RBEMeanfieldConfig:
        return cls(seeds=12, ratios=(1 / 3, 3.0), num_steps=200, record_every=2, kernel_every=10, spaces=("output", "logit"))

    @property
    def space(self) -> str:
        """The space whose theory curves are drawn: the first listed."""
        return self.spaces[0]

    def group_sizes(self) -> list[tuple[int, int]]:
        """(n0, n1) group sizes for each density ratio r: n0 = N r / (1 + r), n1 = N - n0."""
        return [(round(self.num_points * r / (1 + r)), self.num_points - round(self.num_points * r / (1 + r))) for r in self.ratios]

    def check(self) -> None:
        super().check()
        if len(set(self.spaces)) != len(self.spaces):
            raise ConfigError(f"spaces: listed twice in {self.spaces}")
        if self.kernel_every % self.record_every or self.num_steps % self.kernel_every:
            raise ConfigError(f"kernel_every: must be a multiple of record_every ({self.record_every}) and divide num_steps ({self.num_steps}), got {self.kernel_every}")
        for r, (n0, n1) in zip(self.ratios, self.group_sizes()):
            exact = self.num_points * r / (1 + r)
            if abs(exact - n0) > 0.05 or n0 < 1 or n1 < 1:
                raise ConfigError(f"ratios: {r:g} does not split {self.num_points} points into whole non-empty groups (n0 = {exact:.3g})")


def simulate_groups(ctx, config, inits) -> dict[str, np.ndarray]:
    """Trains ``len(inits)`` conditions x ``seeds`` members on group tasks (member c * seeds + s,
    every condition on the same seeds' keys); records the predictions on the points every
    ``record_every`` epochs and the NTK of f and of the logits on them every ``kernel_every``.

    Returns:
        ``f`` (member, time, n), ``steps`` (time,), ``kernel_steps`` (K,), ``kernel_output``,
        ``kernel_logit`` (member, K, n, n), ``points`` (member, n, B), ``group``, ``p1``,
        ``weight`` (member, n), ``diverged_at`` (member,); with ``config.linearised``,
        ``f_linearised_<space>`` (member, time, n) the Taylor model's predictions.
    """
    model = RBEConvNet(init_scheme=config.init)
    seed_ids = np.arange(config.seeds)
    keys, data = rbe.condition_members([rbe.ensemble_data(init, seed_ids) for init in inits], seed_ids)
    # Initial weights drawn here (not by the engine), as the landed code did, so the kernel at step 0 is theirs.
    params0 = init_members(model, keys, data["points"][0])
    result = ctx.train(
        model, rbe.encoder_task(None), optimizer("sgd", learning_rate=hparam("lr")), seeds=keys, num_steps=config.num_steps,
        loss=config.loss_fn,
        record=(Record({"f": observables.predictions("points")}, every=config.record_every, dim="time"),
                Record({"kernels": resp.PointKernels(model)}, every=config.kernel_every, dim="kernel_time")),
        hparams={"lr": np.full(len(keys), config.lr, np.float32)}, init_params=params0, data=data,
    )
    linearised = {}
    for space in config.spaces if config.linearised else ():
        lin = ctx.train(config.linearised_learner(model, space), rbe.encoder_task(None), seeds=keys, num_steps=config.num_steps,
                        record=Record({"f": observables.predictions("points")}, every=config.record_every, dim="time"),
                        hparams={"lr": np.full(len(keys), config.lr, np.float32)}, init_params=params0, data=data)
        linearised[f"f_linearised_{space}"] = lin.records["f"].astype(np.float64)
    return {
        **linearised,
        "f": result.records["f"].astype(np.float64), "steps": result.times["time"].astype(np.float64),
        "kernel_steps": result.times["kernel_time"].astype(np.float64),
        "kernel_output": result.records["kernel_output"].astype(np.float64), "kernel_logit": result.records["kernel_logit"].astype(np.float64),
        "points": np.asarray(data["points"]), "group": np.asarray(data["group"]), "p1": np.asarray(data["p1"], np.float64),
        "weight": np.asarray(data["weight"], np.float64), "diverged_at": np.asarray(result.diverged_at),
    }


def kernel_aging(sim: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The aging of the kernel on the training points, per member: the trace of the NTK of f and
    of the logits over its initial value, and the mean sigmoid factor (f(1-f))^2 of the points,
    each fitted by (1 + t/t0)^-tau (``jaxdyn.theory.meanfield.fit_decay``).

    Returns ``{"tau_output", "tau_logit", "tau_sigmoid_factor", "end_over_start_output",
    "end_over_start_logit", "end_over_start_sigmoid_factor"}``, each (member,).
    """
    kt = sim["kernel_steps"]
    out = {}
    for space in ("output", "logit"):
        tr = np.mean(np.diagonal(sim[f"kernel_{space}"], axis1=-2, axis2=-1), -1)  # (member, K)
        ratio = tr / tr[:, :1]
        out[f"tau_{space}"] = meanfield.fit_decay(kt, ratio)[1]
        out[f"end_over_start_{space}"] = ratio[:, -1]
    idx = np.searchsorted(sim["steps"], kt)
    sig = np.mean(resp.sigmoid_factor(sim["f"][:, idx]), -1)
    ratio = sig / sig[:, :1]
    out["tau_sigmoid_factor"] = meanfield.fit_decay(kt, ratio)[1]
    out["end_over_start_sigmoid_factor"] = ratio[:, -1]
    return out


KERNEL_AGING = {
    "tau_output": "exponent tau of (1 + t/t0)^-tau fitted to the mean self-NTK <Theta_f(x_i, x_i)> of the training points over its initial value",
    "tau_logit": "exponent tau of (1 + t/t0)^-tau fitted to the mean self-NTK <Theta_z(x_i, x_i)> of the logits over its initial value",
    "tau_sigmoid_factor": "exponent tau of (1 + t/t0)^-tau fitted to the points' mean sigmoid factor (f(1-f))^2 over its initial value",
    "end_over_start_output": "mean self-NTK <Theta_f(x_i, x_i)> of the training points at the last kernel measurement over its initial value",
    "end_over_start_logit": "mean self-NTK <Theta_z(x_i, x_i)> of the logits at the last kernel measurement over its initial value",
    "end_over_start_sigmoid_factor": "the points' mean sigmoid factor (f(1-f))^2 at the last kernel measurement over its initial value",
}
"""``{key of :func:`kernel_aging`: long_name}`` of the dataset's ``kernel_<key>`` variables."""


def theories(config, sim, spaces, num_groups: int) -> tuple[dict, dict, dict, np.ndarray | None]:
    """Every theory of :data:`THEORIES` in every space, from the kernels recorded in ``sim``; beside
    them the Taylor model's group means (``linearised``, every space it was trained in) and Eq. 10
    with the infinite-width NTK (``kernel_infinite``, logit space). Returns group_theories' three
    dictionaries and the (member, n, n) infinite-width NTKs (None without them)."""
    k0 = {"output": sim["kernel_output"][:, 0], "logit": sim["kernel_logit"][:, 0]}
    ks = {"output": sim["kernel_output"], "logit": sim["kernel_logit"]}
    theory, ok, decays = meanfield.group_theories(sim["f"][:, 0], sim["group"], sim["p1"], sim["weight"], {sp: k0[sp] for sp in spaces},
                                                  sim["steps"], lr=config.lr, loss=config.loss, num_groups=num_groups,
                                                  kernels_by_space={sp: ks[sp] for sp in spaces}, kernel_times=sim["kernel_steps"])
    theta_inf = None
    if config.infinite_width and "logit" in spaces:
        theta_inf = resp.infinite_width_point_kernels(RBEConvNet(init_scheme=config.init), sim["points"], order=config.kernel_order)
    resp.add_wide_and_linearised(theory, ok, sim, theta_inf, lr=config.lr, loss=config.loss, num_groups=num_groups)
    return theory, ok, decays, theta_inf


def _wide_and_linearised_claims(config, i, label, slug, th_seed, theory, rs, g_sim_r, ok, margin_src) -> list:
    """Extension claims of ratio ``i`` on the Taylor model and the infinite-width kernel ODE:
    whether each shows the minority's turn, and whether the network stays within ``tolerance`` of
    its Taylor model (the lazy reading of Eq. 10 over the whole run)."""
    found = []
    why_turn = ("Eq. 10 is the network's short-term dynamics; whether the turn survives with the kernel frozen at the network's own "
                "initial weights (the Taylor model, trained on the same pairs) or replaced by the infinite-width kernel says whether "
                "the turn needs more than the initial kernel")
    for name, space in (("linearised", config.space), ("kernel_infinite", "logit")):
        if f"{name}_{space}" not in th_seed:
            continue
        found.append(claims.per_seed(
            f"{slug}-{name.replace('_', '-')}-turns", f"{label}: {THEORY_NOTES[name]} ({space} space) shows the minority's turn (each seed's "
            "excursion)", np.nan_to_num(th_seed[f"{name}_{space}"][:, 1], nan=0.0), ">", config.turn_margin, kind="extension", why=why_turn,
            include=ok, required_fraction=resp.MAJORITY, threshold_source=margin_src))
    if "linearised" in theory[config.space]:
        dev = np.abs(rs(theory[config.space]["linearised"])[i] - g_sim_r[i]).max(axis=(1, 2))  # (seed,)
        found.append(claims.per_seed(
            f"{slug}-network-stays-linearised", f"{label}: the network's group means stay within {config.tolerance:g} of its Taylor "
            f"model's ({config.space} space) over the whole run (each seed's largest |difference|)", dev, "<", config.tolerance,
            kind="extension", why="the lazy-training reading of Eq. 10: the NTK frozen at initialisation for the whole run, not only at "
            "short times", include=ok, required_fraction=resp.MAJORITY,
            threshold_source="config.tolerance: the |theory - simulation| of a group mean counted as parting"))
    return found


def _turn(steps, curve, kind, margin, smooth):
    c = resp.smooth_log_time(steps, curve, smooth) if smooth > 0 else curve
    return resp.turning_point(steps, c, kind, margin=margin)


def run(config: RBEMeanfieldConfig, ctx) -> Result:
    """Trains every ratio on the same seeds; integrates every theory from each member's NTK."""
    sizes = config.group_sizes()
    sim = simulate_groups(ctx, config, [rbe.groups(s, (0.0, 1.0)) for s in sizes])
    ctx.stage("theory")
    theory, ok_theory, decays, theta_inf = theories(config, sim, config.spaces, 2)
    ctx.stage("analysis")
    f_sim, group, steps = sim["f"], sim["group"], sim["steps"]
    n_members = f_sim.shape[0]
    g_sim = np.stack([meanfield.group_means(f_sim[m], group[m]) for m in range(n_members)])  # (member, time, 2)
    shape = (len(sizes), config.seeds)
    rs = lambda a: a.reshape(shape + a.shape[1:])  # noqa: E731
    g_sim_r = rs(g_sim)
    diverged = rs(sim["diverged_at"]) >= 0
    aging = {k: rs(v) for k, v in kernel_aging(sim).items()}

    rows, found = [], []
    depth_by_ratio = {}
    margin_src = "config.turn_margin: the smallest excursion counted as a turn"
    for i, (r, (n0, n1)) in enumerate(zip(config.ratios, sizes)):
        ok = ~diverged[i]
        minority = 1 if n0 > n1 else 0  # g1 (label 1) is the minority when g0 is larger
        kind = "min" if minority == 1 else "max"
        sim_mean = g_sim_r[i, ok].mean(0)  # (time, 2)
        t_sim, depth_sim = _turn(steps, sim_mean[:, minority], kind, config.turn_margin, config.smooth)
        per_seed = np.array([_turn(steps, g_sim_r[i, s, :, minority], kind, config.turn_margin, config.smooth) for s in range(config.seeds)])
        depth_by_ratio[r] = per_seed[:, 1]
        row: dict[str, Any] = {
            "ratio": float(r), "n0": n0, "n1": n1, "minority": f"g{minority}", "members": int(ok.sum()),
            "simulation": {"turn_epoch_of_mean": t_sim, "turn_depth_of_mean": depth_sim,
                           "fraction_of_seeds_turning": float(np.mean(np.isfinite(per_seed[ok, 0]))),
                           "median_turn_epoch_per_seed": float(np.nanmedian(per_seed[ok, 0])) if np.isfinite(per_seed[ok, 0]).any() else float("nan"),
                           "final_group_means": sim_mean[-1].tolist()},
            "theories": {},
            "kernel_aging": {k: float(np.median(v[i, ok])) for k, v in aging.items()},
        }
        th_seed: dict[str, np.ndarray] = {}
        for space in config.spaces:
            for name in theory[space]:
                curves = rs(theory[space][name])[i]  # (seed, time, 2)
                th = curves[ok].mean(0)
                t_th, depth_th = resp.turning_point(steps, th[:, minority], kind, margin=config.turn_margin)
                th_seed[f"{name}_{space}"] = np.array([resp.turning_point(steps, curves[s, :, minority], kind, margin=config.turn_margin)
                                                       for s in range(config.seeds)])
                dev = np.abs(th - sim_mean).max(-1)  # (time,)
                part = np.flatnonzero(dev > config.tolerance)
                row["theories"][f"{name}_{space}"] = {
                    "turn_epoch": t_th, "turn_depth": depth_th, "turn_epoch_minus_simulation": t_th - t_sim,
                    "fraction_of_seeds_turning": float(np.mean(np.isfinite(th_seed[f"{name}_{space}"][ok, 0]))),
                    "max_abs_deviation": float(dev.max()), "mean_abs_deviation": float(dev.mean()),
                    "parting_epoch": float(steps[part[0]]) if part.size else None,
                    "final_group_means": th[-1].tolist(), "solver_ok": bool(rs(ok_theory[space][name])[i].all()),
                }
        rows.append(row)
        label = f"rho0/rho1 = {r:.3g}"
        slug = f"ratio-{r:.3g}".replace(".", "_")
        found.append(claims.per_seed(
            f"{slug}-minority-turns", f"{label}: majority first, then the minority turns (each seed's excursion of the minority's "
            "group-mean prediction towards the majority label and back, smoothed in log time)", per_seed[:, 1], ">", config.turn_margin,
            kind="paper", source=claims.source(*_TURN), include=ok, required_fraction=resp.MAJORITY, threshold_source=margin_src,
            reading=resp._MAJORITY_WHY))
        sp = config.space
        for name, kind_c, src, why in (("kernel", "paper", _EQ10, None), ("literal", "paper", _EQ11, None),
                                       ("meanfield", "extension", None, "the project's two-group extension of Eq. 11 (self, within-group and "
                                        "cross terms): Eq. 11 as written has one right-hand side for every point and cannot split groups")):
            d = th_seed[f"{name}_{sp}"][:, 1]
            found.append(claims.per_seed(
                f"{slug}-{name}-turns", f"{label}: the {name} theory ({THEORY_NOTES[name]}; {sp} space, from each seed's NTK) shows the "
                "same turn (each seed's excursion)", np.nan_to_num(d, nan=0.0), ">", config.turn_margin, kind=kind_c,
                source=None if src is None else claims.source(*src), why=why, include=ok, required_fraction=resp.MAJORITY,
                threshold_source=margin_src, reading=None if name != "literal" else
                "Eq. 11 read literally: f_0 and f_1 the group means, rho_b the densities W_b, one kernel constant; every point has the same "
                "right-hand side. " + resp._MAJORITY_WHY))
        t_mf = th_seed[f"meanfield_{sp}"][:, 0]
        rel = np.abs(t_mf - per_seed[:, 0]) / per_seed[:, 0]
        found.append(claims.per_seed(
            f"{slug}-meanfield-timing", f"{label}: the mean field ({sp} space) times the minority's turn within 50% (each seed's "
            f"|t_theory - t_sim| / t_sim, both smoothed; seed-mean turns t_sim = {t_sim:g}, t_meanfield = {row['theories'][f'meanfield_{sp}']['turn_epoch']:g})",
            rel, "<", 0.5, kind="extension", why="the paper shows the turn in both, not its timing", include=ok & np.isfinite(rel),
            required_fraction=resp.MAJORITY, threshold_source="project's tolerance",
            excluded_reason="seeds without a turn in the network or in the mean field"))
        found += _wide_and_linearised_claims(config, i, label, slug, th_seed, theory, rs, g_sim_r, ok, margin_src)
    # "The dynamics is determined just along the ratio": the minority's excursion grows with imbalance.
    imb = {r: round(abs(np.log(r)), 6) for r in config.ratios}
    if len(set(imb.values())) >= 2:
        lo_r = [r for r in config.ratios if imb[r] == min(imb.values())]
        hi_r = [r for r in config.ratios if imb[r] == max(imb.values())]
        gap = np.min([depth_by_ratio[r] for r in hi_r], 0) - np.max([depth_by_ratio[r] for r in lo_r], 0)
        found.append(claims.per_seed(
            "imbalance-deepens-turn", "the more unbalanced the densities, the further the minority is first carried to the majority's "
            f"label (each seed's smallest excursion at ratios {[round(r, 3) for r in hi_r]} minus its largest at {[round(r, 3) for r in lo_r]}; "
            "same seed: same weights, overlapping points)", gap, ">", 0.0, kind="paper", source=claims.source(*_RATIO),
            required_fraction=resp.MAJORITY, threshold_source="a comparison: the difference above 0", reading=resp._MAJORITY_WHY))

    sw = lambda a: np.swapaxes(rs(a), 0, 1)  # noqa: E731  (member, ...) -> (seed, ratio, ...)
    wide = {}
    if theta_inf is not None:
        # How far each member's logit NTK at initialisation is from the infinite-width one.
        frob = lambda a: np.sqrt(np.sum(a ** 2, axis=(-2, -1)))  # noqa: E731
        distance = frob(sim["kernel_logit"][:, 0] - theta_inf) / frob(theta_inf)  # (member,)
        wide = {"theta_infinite": (("seed", "ratio", "point", "point2"), sw(theta_inf).astype(np.float32),
                                   {"long_name": "infinite-width NTK Theta_inf(x_i, x_j) of the logits of the same architecture and "
                                                 f"initialisation on the member's points (Gauss-Hermite order {config.kernel_order} for ELU)",
                                    "units": "1"}),
                "ntk_distance_infinite": (("seed", "ratio"), sw(distance),
                                          {"long_name": "||Theta_z(0) - Theta_inf||_F / ||Theta_inf||_F: the member's logit NTK on its points "
                                                        "at initialisation against the infinite-width one", "units": "1"})}
    numbers = {"seeds": config.seeds, "init": config.init, "ratios": rows, "theories": THEORY_NOTES,
               **({"ntk_distance_infinite_median": float(np.median(wide["ntk_distance_infinite"][1]))} if wide else {}),
               "decay_fit": {sp: {k: float(np.median(v)) for k, v in d.items()} for sp, d in decays.items()}}
    one = {"units": "1"}
    ds = xr.Dataset(
        {
            "f": (("seed", "ratio", "time", "point"), sw(f_sim).astype(np.float32),
                  {"long_name": "the network's prediction f(x_i) (sigmoid output) on every training point", **one}),
            "point_group": (("seed", "ratio", "point"), sw(group), {"long_name": "group of each training point (0: g0, label 0; 1: g1, label 1)", **one}),
            "points": (("seed", "ratio", "point", "bit"), sw(sim["points"]).astype(np.int8), {"long_name": "the training strings (bits 0/1)", **one}),
            "group_mean": (("seed", "ratio", "time", "group"), np.swapaxes(g_sim_r, 0, 1),
                           {"long_name": "the network's group-mean prediction <f>_g over the group's points", **one}),
            **{f"{name}_{space}": (("seed", "ratio", "time", "group"), sw(theory[space][name]),
                                   {"long_name": f"group-mean prediction f of {name} ({THEORY_NOTES[name]}), {space} space", **one})
               for space in config.spaces for name in theory[space]},
            "theta_output": (("seed", "ratio", "kernel_time", "point", "point2"), sw(sim["kernel_output"]).astype(np.float32),
                             {"long_name": "empirical NTK Theta_f(x_i, x_j) of the sigmoid output on the training points", **one}),
            "theta_logit": (("seed", "ratio", "kernel_time", "point", "point2"), sw(sim["kernel_logit"]).astype(np.float32),
                            {"long_name": "empirical NTK Theta_z(x_i, x_j) of the logits on the training points", **one}),
            **{f"kernel_{k}": (("seed", "ratio"), np.swapaxes(v, 0, 1), {"long_name": KERNEL_AGING[k], **one}) for k, v in aging.items()},
            **wide,
            "diverged": (("seed", "ratio"), np.swapaxes(diverged, 0, 1).astype(np.int8),
                         {"long_name": "1 where the member's training diverged (a non-finite update), else 0", **one}),
        },
        coords={"seed": np.arange(config.seeds), "ratio": ("ratio", list(config.ratios), {"long_name": "density ratio rho0/rho1 of g0 to g1", **one}),
                "time": ("time", steps, {"long_name": "training epoch e of the records (one SGD step on one pair per epoch)", "units": "epoch"}),
                "kernel_time": ("kernel_time", sim["kernel_steps"], {"long_name": "training epoch of the NTK measurements", "units": "epoch"}),
                "point": ("point", np.arange(config.num_points), {"long_name": "training point index (g0's points first)", **one}),
                "point2": ("point2", np.arange(config.num_points), {"long_name": "training point index (the NTK's second argument)", **one}),
                "group": ("group", ["g0", "g1"], {"long_name": "group (g0: label 0, g1: label 1)"}),
                "bit": ("bit", np.arange(rbe.BITS), {"long_name": "bit position in the 16-bit strings", **one})},
        attrs={"lr": config.lr, "loss": config.loss, "init": config.init, "smooth": config.smooth,
               "theories": "; ".join(f"{k}: {v}" for k, v in THEORY_NOTES.items()) + "; each in output and logit space",
               "time_units": "epochs = SGD steps, one pair each"},
    )
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(config, steps, g_sim_r, rs(f_sim), rs(group), theory, rs, diverged),
                  numbers=numbers)


def _figures(config, steps, g_sim_r, f_sim_r, group_r, theory, rs, diverged) -> dict:
    n = len(config.ratios)
    figs = {}
    for space in config.spaces:
        fig, axes = plots.figure(1, n, width=3.8, height=3.4)
        for i, r in enumerate(config.ratios):
            ok = ~diverged[i]
            # As in the paper: light lines are each point's prediction averaged over the seeds (point p
            # of a member is a different string in each seed, but always in the same group).
            ths = {name: rs(theory[space][name])[i, ok].mean(0) for name in theory[space]}
            plots.plot_groups(axes[0, i], steps, f_sim_r[i, ok].mean(0), group_r[i, 0], g_sim_r[i, ok].mean(0), ths, log_markers=True)
            axes[0, i].set_xscale("symlog", linthresh=10)
            axes[0, i].set_xlim(0, steps[-1])
            axes[0, i].set_title(f"({chr(65 + i)}) rho0/rho1 = {r:.3g}")
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", fontsize=6, ncol=2 * n, frameon=False)
        fig.suptitle(f"{config.num_points} points, g0 -> 0, g1 -> 1; markers: seed-mean simulation; lines: theories from each seed's NTK "
                     f"({space} space)", fontsize=8)
        figs[f"meanfield_{space}"] = Figure(fig, f"group-mean predictions per density ratio on a log time axis: seed-mean simulation (markers), "
                                                 f"kernel ODE (solid), mean-field extension (dashed), literal Eq. 11, the aging mean fields, the "
                                                 f"members' Taylor models and (logit space) the infinite-width kernel ODE (other line styles, "
                                                 f"named in the legend), {space} space")
    return figs


EXPERIMENT = Experiment(
    name="rbe-meanfield",
    work="Nakazato",
    description="20 points at density ratios 1/3, 2/3, 3, 3/2: network vs kernel ODE, the two-group mean-field extension, literal Eq. 11, aging mean fields, the Taylor model and the infinite-width kernel ODE",
    config=RBEMeanfieldConfig,
    run=run,
)
