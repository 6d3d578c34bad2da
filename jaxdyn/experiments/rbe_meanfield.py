"""rbe-meanfield: 20 points in two groups, the network beside kernel and mean-field theory (Nakazato Fig. 5).

Twenty random strings are split into g0 (encoded 0) and g1 (encoded 1) at density ratios
rho0/rho1 = 1/3, 2/3, 3, 3/2; each step trains one pair drawn uniformly (Eq. 9). The paper: all
predictions first move to the majority's label, then the minority turns to its own (Eq. 11: the
dynamics is set by the ratio of densities). Beside the network's predictions this experiment
integrates, with diffrax, two theories built from the NTK measured on the 20 points at the start:

(a) the linearised kernel dynamics df/dt = -lr sum_j w_j Theta_ij dL/df_j (Eq. 10, fixed kernel);
(b) the two-group mean field (Eq. 11) whose coefficients are the group averages of the same kernel
    (self term <Theta_ii>, within-group and cross terms), see ``jaxdyn.theory.meanfield``.

Both are computed in output space (the NTK of f = sigmoid output, as Eq. 10 reads) and in logit
space (the NTK of the logits, keeping the sigmoid's saturation). Reported: the minority's turning
epoch (simulation and each theory), the distance between theory and the seed-mean simulation, and
when it first exceeds a tolerance (where theory and network part), and how much the kernel aged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.analysis import response as resp
from jaxdyn.engine import hparam, observables, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.experiments.fields import RBETrainingFields
from jaxdyn.models.rbe_conv import RBEConvNet, init_members
from jaxdyn.tasks import rbe
from jaxdyn.theory import meanfield
from jaxdyn.theory.meanfield import THEORIES


@dataclasses.dataclass(frozen=True)
class RBEMeanfieldConfig(RBETrainingFields, Config):
    """Configuration of rbe-meanfield (defaults: paper Fig. 5)."""

    seeds: int = param(20, "tests per ratio (the paper averages 20)", min=2, max=100_000)
    num_points: int = param(20, "training strings (the paper: 20)", min=2, max=4096)
    ratios: tuple[float, ...] = param((1 / 3, 2 / 3, 3.0, 1.5), "density ratios rho0/rho1 (group sizes n0 = N r / (1 + r))", min=0.0, max=1e3, min_exclusive=True, max_len=16)
    num_steps: int = param(400, "training epochs (one pair per step)", min=1, max=10_000_000)
    record_every: int = param(2, "epochs between records", min=1, max=1_000_000)
    spaces: tuple[str, ...] = param(meanfield.SPACES, "theory spaces: output (NTK of f, Eq. 10 as written) and/or logit (NTK of the logits)", choices=meanfield.SPACES, max_len=2)
    tolerance: float = param(0.1, "|theory - simulation| of a group mean counted as parting", min=0.0, max=1.0, min_exclusive=True)
    turn_margin: float = param(0.02, "smallest excursion (both ways) that counts as a turn", min=0.0, max=1.0)

    @classmethod
    def quick(cls) -> "RBEMeanfieldConfig":
        return cls(seeds=12, ratios=(1 / 3, 3.0), num_steps=200, record_every=2, spaces=("output",))

    @property
    def space(self) -> str:
        """The space whose theory curves are drawn and used in the claims: the first listed."""
        return self.spaces[0]

    def group_sizes(self) -> list[tuple[int, int]]:
        return [(round(self.num_points * r / (1 + r)), self.num_points - round(self.num_points * r / (1 + r))) for r in self.ratios]

    def check(self) -> None:
        super().check()
        if len(set(self.spaces)) != len(self.spaces):
            raise ConfigError(f"spaces: listed twice in {self.spaces}")
        for r, (n0, n1) in zip(self.ratios, self.group_sizes()):
            exact = self.num_points * r / (1 + r)
            if abs(exact - n0) > 0.05 or n0 < 1 or n1 < 1:
                raise ConfigError(f"ratios: {r:g} does not split {self.num_points} points into whole non-empty groups (n0 = {exact:.3g})")


def simulate_groups(ctx, inits, *, seeds: int, num_steps: int, record_every: int, lr: float, loss) -> dict[str, np.ndarray]:
    """Trains ``len(inits)`` conditions x ``seeds`` members on group tasks; NTKs at start and end.

    Args:
        inits: task generators (``jaxdyn.tasks.rbe.groups``), one per condition, all with the same
            number of points. Condition c, seed s is member c * seeds + s; every condition uses the
            same seeds' keys.

    Returns:
        ``f`` (member, time, n) predictions on the training points, ``steps`` (time,), ``group``,
        ``p1``, ``weight`` (member, n), ``theta_f0``, ``theta_z0`` (member, n, n) the NTK of the output
        and of the logits at the start, ``theta_f1``, ``theta_z1`` at the end, ``diverged_at`` (member,).
    """
    model = RBEConvNet()
    seed_ids = np.arange(seeds)
    keys, data = rbe.condition_members([rbe.ensemble_data(init, seed_ids) for init in inits], seed_ids)
    # Initial weights made here (not by the engine) so that the theory's kernel is measured on them.
    params0 = init_members(model, keys, data["points"][0])
    theta_f0, theta_z0 = resp.point_kernels(model, params0, data["points"])
    result = ctx.train(
        model, rbe.encoder_task(None), optimizer("sgd", learning_rate=hparam("lr")), seeds=keys, num_steps=num_steps,
        loss=loss, observables={"f": observables.predictions("points")}, record_every=record_every,
        hparams={"lr": np.full(len(keys), lr, np.float32)}, init_params=params0, data=data,
    )
    theta_f1, theta_z1 = resp.point_kernels(model, result.params, data["points"])
    return {
        "f": result.records["f"].astype(np.float64), "steps": result.record_steps.astype(np.float64),
        "group": np.asarray(data["group"]), "p1": np.asarray(data["p1"], np.float64),
        "weight": np.asarray(data["weight"], np.float64), "theta_f0": theta_f0, "theta_z0": theta_z0,
        "theta_f1": theta_f1, "theta_z1": theta_z1, "diverged_at": np.asarray(result.diverged_at),
    }


def run(config: RBEMeanfieldConfig, ctx) -> Result:
    """Trains every ratio on the same seeds; integrates both theories from each member's initial NTK."""
    sizes = config.group_sizes()
    seed_ids = np.arange(config.seeds)
    sim = simulate_groups(ctx, [rbe.groups(s, (0.0, 1.0)) for s in sizes], seeds=config.seeds,
                          num_steps=config.num_steps, record_every=config.record_every, lr=config.lr, loss=config.loss_fn)
    ctx.stage("theory")
    thetas = {"output": sim["theta_f0"], "logit": sim["theta_z0"]}
    theory, ok_theory = meanfield.group_theories(sim["f"][:, 0], sim["group"], sim["p1"], sim["weight"],
                                                 {sp: thetas[sp] for sp in config.spaces}, sim["steps"], lr=config.lr,
                                                 loss=config.loss, num_groups=2)
    ctx.stage("analysis")
    f_sim, group, steps = sim["f"], sim["group"], sim["steps"]
    theta_f0, theta_z0, theta_f1, theta_z1 = (sim[k] for k in ("theta_f0", "theta_z0", "theta_f1", "theta_z1"))
    n_members = f_sim.shape[0]
    g_sim = np.stack([meanfield.group_means(f_sim[m], group[m]) for m in range(n_members)])  # (member, time, 2)
    shape = (len(sizes), config.seeds)
    rs = lambda a: a.reshape(shape + a.shape[1:])  # noqa: E731
    g_sim_r = rs(g_sim)
    diverged = rs(sim["diverged_at"]) >= 0

    rows, found = [], []
    for i, (r, (n0, n1)) in enumerate(zip(config.ratios, sizes)):
        ok = ~diverged[i]
        minority = 1 if n0 > n1 else 0  # g1 (label 1) is the minority when g0 is larger
        kind = "min" if minority == 1 else "max"
        sim_mean = g_sim_r[i, ok].mean(0)  # (time, 2)
        t_sim, depth_sim = resp.turning_point(steps, sim_mean[:, minority], kind, margin=config.turn_margin)
        per_seed = [resp.turning_point(steps, g_sim_r[i, s, :, minority], kind, margin=config.turn_margin) for s in np.flatnonzero(ok)]
        seed_turns = np.array([t for t, _ in per_seed])
        row: dict[str, Any] = {
            "ratio": float(r), "n0": n0, "n1": n1, "minority": f"g{minority}", "members": int(ok.sum()),
            "simulation": {"turn_epoch_of_mean": t_sim, "turn_depth_of_mean": depth_sim,
                           "fraction_of_seeds_turning": float(np.mean(np.isfinite(seed_turns))),
                           "median_turn_epoch_per_seed": float(np.nanmedian(seed_turns)) if np.isfinite(seed_turns).any() else float("nan"),
                           "final_group_means": sim_mean[-1].tolist()},
            "theories": {},
        }
        for space in config.spaces:
            for name in THEORIES:
                th = rs(theory[space][name])[i, ok].mean(0)
                t_th, depth_th = resp.turning_point(steps, th[:, minority], kind, margin=config.turn_margin)
                dev = np.abs(th - sim_mean).max(-1)  # (time,)
                part = np.flatnonzero(dev > config.tolerance)
                row["theories"][f"{name}_{space}"] = {
                    "turn_epoch": t_th, "turn_depth": depth_th,
                    "turn_epoch_minus_simulation": t_th - t_sim,
                    "max_abs_deviation": float(dev.max()),
                    "mean_abs_deviation": float(dev.mean()),
                    "parting_epoch": float(steps[part[0]]) if part.size else None,
                    "final_group_means": th[-1].tolist(),
                    "solver_ok": bool(rs(ok_theory[space][name])[i].all()),
                }
        # How much the kernel aged between the start and the end: mean diagonal, end / start.
        row["kernel_diag_end_over_start"] = {  # the aging of the kernel on the training points
            "output": float(np.mean(np.diagonal(rs(theta_f1)[i, ok], axis1=-2, axis2=-1)) / np.mean(np.diagonal(rs(theta_f0)[i, ok], axis1=-2, axis2=-1))),
            "logit": float(np.mean(np.diagonal(rs(theta_z1)[i, ok], axis1=-2, axis2=-1)) / np.mean(np.diagonal(rs(theta_z0)[i, ok], axis1=-2, axis2=-1))),
        }
        rows.append(row)
        label = f"rho0/rho1 = {r:.3g}"
        slug = f"ratio-{r:.3g}".replace(".", "_")
        found.append(claims.check(f"{slug}-minority-turns", f"{label}: majority first, then the minority turns (excursion of the minority's seed-mean prediction towards the majority label, both ways)",
                                  depth_sim, ">", config.turn_margin, kind="paper", source=claims.source(*_TURN),
                                  threshold_source="config.turn_margin: the smallest excursion counted as a turn"))
        mf = row["theories"][f"meanfield_{config.space}"]
        found.append(claims.check(f"{slug}-meanfield-turns", f"{label}: the mean field ({config.space} space) shows the same turn (its excursion)",
                                  mf["turn_depth"], ">", config.turn_margin, kind="paper", source=claims.source(*_EQ11),
                                  threshold_source="config.turn_margin: the smallest excursion counted as a turn"))
        if np.isfinite(t_sim) and np.isfinite(mf["turn_epoch"]):
            rel = abs(mf["turn_epoch"] - t_sim) / t_sim
            found.append(claims.check(f"{slug}-meanfield-timing", f"{label}: the mean field ({config.space} space) times the minority's turn within 50% (|t_theory - t_sim| / t_sim; t_sim = {t_sim:g}, t_theory = {mf['turn_epoch']:g})",
                                      rel, "<", 0.5, kind="extension", why="the paper shows the turn in both, not its timing",
                                      threshold_source="project's tolerance"))
    # "The dynamics is determined just along the ratio": the minority's excursion grows with imbalance.
    by_ratio = {row["ratio"]: row["simulation"]["turn_depth_of_mean"] for row in rows}
    imbalance = sorted(by_ratio, key=lambda r: abs(np.log(r)))
    if len({round(abs(np.log(r)), 6) for r in by_ratio}) >= 2:
        lo = [by_ratio[r] for r in imbalance if abs(np.log(r)) == abs(np.log(imbalance[0]))]
        hi = [by_ratio[r] for r in imbalance if abs(np.log(r)) == abs(np.log(imbalance[-1]))]
        gap = float(np.min(hi) - np.max(lo))
        found.append(claims.check("imbalance-deepens-turn", "the more unbalanced the densities, the further the minority is first carried to the majority's label (smallest excursion at the largest imbalance minus largest at the smallest)",
                                  gap, ">", 0.0, kind="paper", source=claims.source(*_RATIO), threshold_source="a comparison: the difference above 0"))

    numbers = {"seeds": config.seeds, "ratios": rows}
    ds = xr.Dataset(
        {
            "f": (("seed", "ratio", "time", "point"), np.swapaxes(rs(f_sim), 0, 1).astype(np.float32)),
            "point_group": (("seed", "ratio", "point"), np.swapaxes(rs(group), 0, 1)),
            "group_mean": (("seed", "ratio", "time", "group"), np.swapaxes(g_sim_r, 0, 1)),
            **{f"{name}_{space}": (("seed", "ratio", "time", "group"), np.swapaxes(rs(theory[space][name]), 0, 1))
               for space in config.spaces for name in THEORIES},
            "theta_output_start": (("seed", "ratio", "point", "point2"), np.swapaxes(rs(theta_f0), 0, 1)),
            "theta_logit_start": (("seed", "ratio", "point", "point2"), np.swapaxes(rs(theta_z0), 0, 1)),
            "theta_output_end": (("seed", "ratio", "point", "point2"), np.swapaxes(rs(theta_f1), 0, 1)),
            "diverged": (("seed", "ratio"), np.swapaxes(diverged, 0, 1).astype(np.int8)),
        },
        coords={"seed": seed_ids, "ratio": list(config.ratios), "time": steps, "point": np.arange(config.num_points),
                "point2": np.arange(config.num_points), "group": ["g0", "g1"]},
        attrs={"lr": config.lr, "loss": config.loss,
               "theories": "kernel: Eq. 10 with the initial NTK; meanfield: Eq. 11 with its group averages; each in output and logit space",
               "time_units": "epochs = SGD steps, one pair each"},
    )
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(config, steps, g_sim_r, rs(f_sim), rs(group), theory, rs, diverged), numbers=numbers)


_TURN = ("In the first, all of them go to to the majority side and then the minorities turn its direction into the other side", "Sec. III, Fig. 5")
_EQ11 = ("We can simplify it with the mean-field approximation under the sparse condition", "Sec. III, Eq. 11")
_RATIO = ("In other words, the dynamics is determined just along the ratio, rho0/rho1", "Sec. III, Fig. 5")


def _figures(config, steps, g_sim_r, f_sim_r, group_r, theory, rs, diverged) -> dict:
    n = len(config.ratios)
    fig, axes = plots.figure(1, n, width=3.4, height=3.0)
    for i, r in enumerate(config.ratios):
        ok = ~diverged[i]
        # As in the paper: light lines are each point's prediction averaged over the seeds (point p
        # of a member is a different string in each seed, but always in the same group).
        ths = {name: rs(theory[config.space][name])[i, ok].mean(0) for name in THEORIES}
        plots.plot_groups(axes[0, i], steps, f_sim_r[i, ok].mean(0), group_r[i, 0], g_sim_r[i, ok].mean(0), ths)
        axes[0, i].set_title(f"({chr(65 + i)}) rho0/rho1 = {r:.3g}")
    axes[0, 0].legend(loc="best", fontsize=6)
    fig.suptitle(f"{config.num_points} points, g0 -> 0, g1 -> 1. Markers: seed-mean simulation; lines: kernel (Eq. 10, solid) and\n"
                 f"mean field (Eq. 11, dashed) from the initial NTK, {config.space} space; light: each point's seed mean", fontsize=8)
    return {"meanfield": Figure(fig, "group-mean predictions per density ratio: seed-mean simulation (markers), kernel ODE (solid) and two-group mean field (dashed)")}


EXPERIMENT = Experiment(
    name="rbe-meanfield",
    work="Nakazato",
    description="20 points at density ratios 1/3, 2/3, 3, 3/2: network vs linearised kernel and two-group mean-field ODEs (diffrax)",
    config=RBEMeanfieldConfig,
    run=run,
)
