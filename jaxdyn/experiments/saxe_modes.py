"""saxe-modes: exact sigmoidal mode dynamics of deep linear networks, and their depth dependence.

Source: Saxe, McClelland & Ganguli (2014, arXiv 1312.6120). A task with K input-output modes,
whitened inputs (x = the n one-hot vectors, Sigma_xx = I) and targets y = Sigma_yx x with
Sigma_yx = U diag(s) V^T (random orthogonal U, V per member). Mode k's strength in the network is
u_k(t) = u_k^T W_tot(t) v_k.

Part 1, three-layer nets (two weight layers), two kinds of members trained in one call:

- aligned, balanced members (the 2014 paper's exact case): W1 = Q diag(sqrt(u0)) V^T,
  W2 = U diag(sqrt(u0)) Q^T with orthonormal hidden directions Q, every mode starting at
  u0_k = frac s_k. Each mode then follows u(t) = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0) exactly
  (up to gradient descent's O(lr)), compared without corrections; its learning time to s/2 is
  (tau/2s) ln((1 - frac)/frac): proportional to 1/s at one frac, and linear in ln(1/u0) with slope
  tau/2s over the sweep of frac.
- small random members (an extension): the closed form is compared with the project's effective
  u0, the mode's growing component p0 = |a + b|^2 / 4 (a = W1 v_k, b = W2^T u_k) off the stronger
  modes' directions (``jaxdyn.theory.saxe.effective_mode_components``), with each mode's own u0,
  and with the exact single-mode solution from (p0, m0) (``mode_strength_unaligned``).

Part 2, depth: learning time in steps (first step with ||W_tot - Sigma_yx||_F <= criterion
||Sigma_yx||_F) against depth D, with the learning rate lr0 / D (the stable step of gradient
descent shrinks as 1/D, since the curvature at the solution grows as D s^{2 - 2/D}), for three
initialisations: random orthogonal layers; balanced mode-aligned layers with u_k(0) = u0_frac s_k
(u0 = O(1), independent of depth), whose theory is tau du/dt = D u^{2-2/D} (s - u); and small
random Gaussian layers (per-layer gain ``random_gain``, so u0 shrinks like gain^D).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import scipy.stats
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.engine import Task, hparam, losses, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.models.deep_linear import DeepLinear, params_from_matrices
from jaxdyn.tasks import full_batch
from jaxdyn.tasks.perceptual import mode_task
from jaxdyn.theory import saxe

INITS = ("orthogonal", "balanced", "small_random")
"""The initialisations of part 2 (learning time over depth), in the order of the ``init`` axis:
random orthogonal layers, balanced mode-aligned layers, small random Gaussian layers."""
PART1_INITS = ("small_random", "aligned")
"""The two kinds of part-1 members (three-layer nets), in the order they are made: small random
initialisations, then aligned balanced ones (the labels of their ``start`` coordinate)."""


@dataclasses.dataclass(frozen=True)
class SaxeModesConfig(Config):
    """Configuration of saxe-modes."""

    strengths: tuple[float, ...] = param((3.0, 2.0, 1.0, 0.5), "mode strengths s_k (distinct, positive); input and output dims = their number", min=0.0, max=100.0, min_exclusive=True, max_len=32)
    hidden: int = param(16, "hidden width of the three-layer nets (part 1)", min=1, max=4096)
    seeds: int = param(6, "small random initialisations (part 1); also seeds per (depth, init) in part 2 = max(1, seeds // 2)", min=1, max=256)
    init_scale: float = param(0.01, "part 1: std of every initial weight entry (small random)", min=0.0, max=1.0, min_exclusive=True)
    aligned_u0_fracs: tuple[float, ...] = param((1e-4, 1e-3, 1e-2), "part 1, aligned balanced members: every mode starts at u0 = frac s (a sweep of u0; at least 2 values)", min=0.0, max=0.5, min_exclusive=True, min_len=2, max_len=16)
    aligned_seeds: int = param(2, "part 1: aligned balanced members per frac (each with its own U, V and hidden directions)", min=1, max=256)
    lr: float = param(0.01, "part 1: learning rate (tau = 1/lr)", min=0.0, max=1.0, min_exclusive=True)
    duration: float = param(12.0, "part 1: training time in units of tau", min=0.0, max=1e4, min_exclusive=True)
    record_every: int = param(5, "steps between records (both parts)", min=1, max=1_000_000)
    depths: tuple[int, ...] = param((2, 3, 4, 6, 8), "part 2: numbers of weight layers D (2 = the three-layer net)", min=2, max=32, max_len=16)
    depth_hidden: int = param(16, "part 2: hidden width of the deep nets", min=1, max=4096)
    lr0: float = param(0.05, "part 2: learning rate at depth D is lr0 / D", min=0.0, max=10.0, min_exclusive=True)
    depth_steps: int = param(8000, "part 2: steps per depth", min=1, max=10_000_000)
    u0_frac: float = param(0.5, "part 2, balanced init: u_k(0) = u0_frac s_k (u0 = O(1))", min=0.0, max=1.0, min_exclusive=True)
    random_gain: float = param(0.5, "part 2, small random init: entries N(0, gain^2 / n), a per-layer gain of about gain", min=0.0, max=10.0, min_exclusive=True)
    criterion: float = param(0.1, "part 2: learnt when ||W_tot - Sigma_yx||_F <= criterion ||Sigma_yx||_F", min=0.0, max=1.0, min_exclusive=True)
    tolerance: float = param(0.05, "largest distance counted as agreement (relative, see the claims)", min=0.0, max=1.0, min_exclusive=True)
    flat_ratio: float = param(1.5, "part 2: 'flat' if max/min learning time over depth <= this; 'grows' if >= 2x this", min=1.0, max=100.0)

    @classmethod
    def quick(cls) -> SaxeModesConfig:
        return cls(strengths=(2.0, 1.0, 0.5), hidden=8, seeds=4, aligned_u0_fracs=(1e-3, 1e-2), aligned_seeds=1, lr=0.01, duration=9.0,
                   depths=(2, 5), depth_steps=2000, record_every=10)

    @property
    def num_steps(self) -> int:
        return self.record_every * max(1, round(self.duration / (self.lr * self.record_every)))

    @property
    def depth_num_steps(self) -> int:
        return self.record_every * max(1, round(self.depth_steps / self.record_every))

    def check(self) -> None:
        if len(set(self.strengths)) != len(self.strengths):
            raise ConfigError(f"strengths: values must be distinct (one mode each), got {self.strengths}")
        if len(set(self.aligned_u0_fracs)) != len(self.aligned_u0_fracs):
            raise ConfigError(f"aligned_u0_fracs: values must be distinct, got {self.aligned_u0_fracs}")
        if len(set(self.depths)) != len(self.depths):
            raise ConfigError(f"depths: values must be distinct, got {self.depths}")
        if self.hidden < len(self.strengths):
            raise ConfigError(f"hidden: must be at least the number of modes ({len(self.strengths)}), got {self.hidden}")
        if self.duration / self.lr > 2_000_000:
            raise ConfigError(f"duration: {self.duration} / lr {self.lr} asks for over 2,000,000 steps; raise lr or shorten duration")
        # The weakest mode from the smallest u0 must reach s/2 within the run, or its learning time is undefined.
        slowest = float(np.log((1.0 - min(self.aligned_u0_fracs)) / min(self.aligned_u0_fracs)) / (2.0 * min(self.strengths)))
        if not slowest < self.duration:
            raise ConfigError(f"duration: the weakest mode from u0 = {min(self.aligned_u0_fracs):g} s needs {slowest:.3g} tau to reach s/2; "
                              f"train longer than {self.duration:g} or raise the smallest aligned_u0_fracs")


@dataclasses.dataclass(frozen=True)
class ModeObservable:
    """Observable (4, K): mode strengths diag(U^T W_tot V), for three-layer nets the mode
    components p_k, m_k (zeros otherwise), and the relative error ||W_tot - Sigma_yx|| / ||Sigma_yx||
    broadcast over modes. A frozen dataclass, so equal observables share one compiled program.

    Attributes:
        three_layer: whether the net has two weight layers (then p, m are computed).
    """

    three_layer: bool

    def __call__(self, snap):
        three_layer = self.three_layer
        names = sorted(snap.params, key=lambda k: int(k.split("_")[1]))
        mats = [snap.params[n]["kernel"].T for n in names]
        total = mats[0]
        for w in mats[1:]:
            total = w @ total
        u_basis, v_basis, target = snap.data["U"], snap.data["V"], snap.data["sigma_yx"]
        strengths = jnp.sum(u_basis * (total @ v_basis), axis=0)
        rel_error = jnp.linalg.norm(total - target) / jnp.linalg.norm(target)
        if three_layer:
            p, m = saxe.mode_components((mats[0] @ v_basis).T, (mats[1].T @ u_basis).T)
        else:
            p = m = jnp.zeros_like(strengths)
        return jnp.stack([strengths, p, m, jnp.full_like(strengths, rel_error)])


def _data(task_list):
    n = task_list[0].x.shape[0]
    return {
        "x": np.stack([t.x for t in task_list]).astype(np.float32),
        "y": np.stack([t.y for t in task_list]).astype(np.float32),
        "U": np.stack([t.U for t in task_list]).astype(np.float32),
        "V": np.stack([t.V for t in task_list]).astype(np.float32),
        "sigma_yx": np.stack([t.sigma_yx for t in task_list]).astype(np.float32),
    }, n


def _train(ctx, widths, weights, data, lr, num_steps, record_every, three_layer):
    num_members = weights[0].shape[0]
    return ctx.train(
        DeepLinear(widths=widths),
        Task(init=None, batch=full_batch),
        optimizer("sgd", learning_rate=hparam("lr")),
        seeds=list(range(num_members)),
        num_steps=num_steps,
        loss=losses.half_squared_error_sum,
        observables={"modes": ModeObservable(three_layer)},
        record_every=record_every,
        hparams={"lr": np.full(num_members, lr, np.float32)},
        init_params=params_from_matrices(weights),
        data=data,
    )


def first_crossing(time: np.ndarray, values: np.ndarray, level, above: bool) -> np.ndarray:
    """First time each row crosses ``level`` (upward if ``above``), linearly interpolated.

    Args:
        time: (T,).
        values: (..., T).
        level: broadcastable to values[..., 0].

    Returns:
        (...,) times; NaN where the row never crosses; time[0] where it starts past the level.
    """
    values = np.asarray(values, dtype=np.float64)
    level = np.broadcast_to(np.asarray(level, dtype=np.float64), values.shape[:-1])
    flat, lev = values.reshape(-1, values.shape[-1]), level.reshape(-1)
    out = np.full(flat.shape[0], np.nan)
    for i, (row, target) in enumerate(zip(flat, lev)):
        past = row >= target if above else row <= target
        if not past.any():
            continue
        k = int(np.argmax(past))
        if k == 0:
            out[i] = time[0]
            continue
        y0, y1 = row[k - 1], row[k]
        out[i] = time[k - 1] + (target - y0) / (y1 - y0) * (time[k] - time[k - 1])
    return out.reshape(values.shape[:-1])


def _part1_members(config: SaxeModesConfig):
    """The part-1 members: ``seeds`` small random ones, then the aligned balanced ones per frac.

    Returns:
        (init (member,), u0_frac (member,) NaN for random, tasks, W1 (member, hidden, n), W2 (member, n, hidden)).
    """
    s = np.asarray(config.strengths)
    k = len(s)
    tasks = [mode_task(s, seed=1000 + i) for i in range(config.seeds)]
    n = tasks[0].x.shape[0]
    rng = np.random.default_rng(0)
    w1 = list(rng.standard_normal((config.seeds, config.hidden, n)) * config.init_scale)
    w2 = list(rng.standard_normal((config.seeds, n, config.hidden)) * config.init_scale)
    inits, fracs = ["small_random"] * config.seeds, [np.nan] * config.seeds
    for i, frac in enumerate(config.aligned_u0_fracs):
        for j in range(config.aligned_seeds):
            member = i * config.aligned_seeds + j
            task = mode_task(s, seed=2000 + member)
            q = _semi_orthogonal(np.random.default_rng([2000, member]), config.hidden, k)  # hidden directions
            root = np.sqrt(frac * s)  # balanced: a_k = b_k = sqrt(u0_k) q_k, so u_k(0) = u0_k
            w1.append(q @ np.diag(root) @ task.V.T)
            w2.append(task.U @ np.diag(root) @ q.T)
            tasks.append(task)
            inits.append("aligned")
            fracs.append(frac)
    return np.array(inits), np.array(fracs), tasks, np.stack(w1), np.stack(w2)


def _part1(config: SaxeModesConfig, ctx):
    s = np.asarray(config.strengths)
    inits, fracs, tasks, w1, w2 = _part1_members(config)
    data, n = _data(tasks)
    result = _train(ctx, (n, config.hidden, n), [w1.astype(np.float32), w2.astype(np.float32)], data, config.lr, config.num_steps, config.record_every, True)
    rec = result.records["modes"].astype(np.float64)  # (seed, time, 4, K)
    time = result.record_steps * config.lr
    u_sim = rec[:, :, 0]
    # Initial mode components: own (p0, m0), and effective ones with the stronger modes'
    # growing directions projected out (the cross terms' effect, see effective_mode_components).
    # Aligned balanced members have p0 = u0, m0 = 0 either way (their hidden directions are orthogonal).
    w1_32, w2_32 = w1.astype(np.float32).astype(np.float64), w2.astype(np.float32).astype(np.float64)  # what was trained
    a = np.einsum("shn,snk->skh", w1_32, data["V"].astype(np.float64))
    b = np.einsum("snh,snk->skh", w2_32, data["U"].astype(np.float64))
    p_own, m_own = (np.asarray(x, dtype=np.float64) for x in saxe.mode_components(a, b))
    eff = [saxe.effective_mode_components(a[i], b[i], s) for i in range(len(inits))]
    p0, m0 = np.stack([e[0] for e in eff]), np.stack([e[1] for e in eff])  # (seed, K)
    t = time[None, :, None]
    u_closed = np.asarray(saxe.mode_strength(t, s[None, None, :], p0[:, None, :]))
    u_own = np.asarray(saxe.mode_strength(t, s[None, None, :], p_own[:, None, :]))
    u_exact = np.asarray(saxe.mode_strength_unaligned(t, s[None, None, :], p0[:, None, :], m0[:, None, :]))
    uf = s / 2.0
    t_learn_sim = first_crossing(time, np.moveaxis(u_sim, 1, -1), uf[None, :], above=True)  # (seed, K)
    t_learn_th = np.asarray(saxe.mode_learning_time(s[None, :], p0, uf[None, :]))
    t_learn_own = np.asarray(saxe.mode_learning_time(s[None, :], p_own, uf[None, :]))
    return dict(time=time, u_sim=u_sim, u_closed=u_closed, u_own=u_own, u_exact=u_exact, p0=p0, m0=m0, p_own=p_own, m_own=m_own,
                p_sim=rec[:, :, 1], m_sim=rec[:, :, 2], u0_sim=u_sim[:, 0], t_learn_sim=t_learn_sim, t_learn_th=t_learn_th, t_learn_own=t_learn_own,
                diverged_at=result.diverged_at, s=s, inits=inits, fracs=fracs, w1=w1_32, w2=w2_32, data=data,
                task_seeds=np.array([1000 + i for i in range(config.seeds)] + [2000 + m for m in range(len(inits) - config.seeds)]))


def _semi_orthogonal(rng, rows: int, cols: int) -> np.ndarray:
    """A random (rows, cols) matrix with orthonormal columns (rows >= cols) or rows."""
    q = scipy.stats.ortho_group.rvs(max(rows, cols), random_state=rng)
    return q[:rows, :cols]


def _depth_weights(init: str, widths: tuple[int, ...], s: np.ndarray, task, config: SaxeModesConfig, rng) -> list[np.ndarray]:
    """Math-layout weights W_1..W_D (W_l of shape (widths[l+1], widths[l])) of one member of part 2."""
    depth = len(widths) - 1
    shapes = [(widths[l + 1], widths[l]) for l in range(depth)]
    if init == "orthogonal":
        return [_semi_orthogonal(rng, *shape) for shape in shapes]
    if init == "small_random":
        # Entries N(0, gain^2 / fan_out): every layer has a forward gain |W r| of about gain.
        return [rng.standard_normal(shape) * config.random_gain / np.sqrt(shape[0]) for shape in shapes]
    # Balanced and mode-aligned: W_l = Q_l diag(b) Q_{l-1}^T with orthonormal columns Q_l (K modes),
    # Q_0 = V, Q_D = U, and b = (u0_frac s)^{1/D}, so u_k(0) = u0_frac s_k at every depth.
    k = len(s)
    gains = (config.u0_frac * s) ** (1.0 / depth)
    bases = [task.V] + [_semi_orthogonal(rng, widths[l], k) for l in range(1, depth)] + [task.U]
    return [bases[l + 1] @ np.diag(gains) @ bases[l].T for l in range(depth)]


def _part2(config: SaxeModesConfig, ctx):
    s = np.asarray(config.strengths)
    per = max(1, config.seeds // 2)
    rows = []
    for depth in config.depths:
        lr = config.lr0 / depth
        tasks, inits, mats = [], [], []
        for i, init in enumerate(INITS):
            for j in range(per):
                rng = np.random.default_rng([depth, i, j])
                task = mode_task(s, seed=int(rng.integers(2**31)))
                n = task.x.shape[0]
                widths = (n,) + (config.depth_hidden,) * (depth - 1) + (n,)
                tasks.append(task)
                inits.append(init)
                mats.append(_depth_weights(init, widths, s, task, config, rng))
        data, n = _data(tasks)
        weights = [np.stack([m[l] for m in mats]).astype(np.float32) for l in range(depth)]
        result = _train(ctx, widths, weights, data, lr, config.depth_num_steps, config.record_every, False)
        rec = result.records["modes"].astype(np.float64)
        steps = result.record_steps.astype(np.float64)
        rel_error = rec[:, :, 3, 0]
        t_sim = first_crossing(steps, rel_error, config.criterion, above=False)
        # Theory for balanced aligned members: every mode on tau du/dt = D u^{2-2/D} (s - u).
        ts = steps * lr
        sol = saxe.solve_batch(saxe.balanced_chain_vector_field, config.u0_frac * s, (s, np.full(len(s), float(depth))), ts, rtol=1e-8, atol=1e-10)
        u_th = np.asarray(sol.ys, dtype=np.float64)  # (K, time)
        err_th = np.sqrt(np.sum((s[:, None] - u_th) ** 2, 0)) / np.linalg.norm(s)
        t_th = float(first_crossing(steps, err_th, config.criterion, above=False))
        # Reference for small random init: the same chain, mode-aligned, every layer at the
        # random init's per-layer gain (u0 = gain^D); it ignores the misalignment of random layers.
        sol_r = saxe.solve_batch(saxe.balanced_chain_vector_field, np.full(len(s), config.random_gain**depth), (s, np.full(len(s), float(depth))), ts, rtol=1e-8, atol=1e-12)
        u_r = np.asarray(sol_r.ys, dtype=np.float64)
        err_r = np.sqrt(np.sum((s[:, None] - u_r) ** 2, 0)) / np.linalg.norm(s)
        t_ref = float(first_crossing(steps, err_r, config.criterion, above=False))
        rows.append(dict(depth=depth, inits=np.array(inits), steps=steps, rel_error=rel_error, t_sim=t_sim, t_th=t_th, err_th=err_th, t_ref=t_ref,
                         u_sim=rec[:, :, 0], diverged_at=result.diverged_at, ode_ok=bool(np.all(sol.ok)) and bool(np.all(sol_r.ok)),
                         weights=weights, U=data["U"], V=data["V"]))
    return rows


def run(config: SaxeModesConfig, ctx) -> Result:
    """Part 1 (three-layer mode trajectories vs the closed form) and part 2 (learning time vs depth)."""
    p1 = _part1(config, ctx)
    p2 = _part2(config, ctx)
    ctx.stage("analysis")
    dataset, found, numbers = _analyse(config, p1, p2)
    ctx.stage("figures")
    return Result(dataset=dataset, claims=found, figures=_figures(config, dataset), numbers=numbers)


def _slope(x, y) -> float:
    """Least-squares slope of y against x over the finite entries; NaN with fewer than 2."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    return float(np.polyfit(x[keep], y[keep], 1)[0]) if keep.sum() >= 2 else float("nan")


def _analyse(config: SaxeModesConfig, p1: dict, p2: list):
    s = p1["s"]
    ok = p1["diverged_at"] < 0
    random_, aligned = ok & (p1["inits"] == "small_random"), ok & (p1["inits"] == "aligned")

    def worst(x, mask):
        return float(np.nanmax(x[mask])) if mask.any() else float("nan")

    dev_closed = np.max(np.abs(p1["u_sim"] - p1["u_closed"]), axis=1) / s  # (seed, K)
    dev_own = np.max(np.abs(p1["u_sim"] - p1["u_own"]), axis=1) / s
    dev_exact = np.max(np.abs(p1["u_sim"] - p1["u_exact"]), axis=1) / s
    rel_time = np.abs(p1["t_learn_sim"] - p1["t_learn_th"]) / p1["t_learn_th"]
    rel_time_own = np.abs(p1["t_learn_sim"] - p1["t_learn_own"]) / p1["t_learn_own"]
    max_dev_closed, max_dev_own, max_dev_exact = worst(dev_closed, random_), worst(dev_own, random_), worst(dev_exact, random_)
    max_rel_time, max_rel_time_own = worst(rel_time, random_), worst(rel_time_own, random_)
    # Stronger modes are learned first (random members): the smallest relative gap of learning
    # times taken in order of decreasing strength.
    order = np.argsort(-s)
    t_ord = p1["t_learn_sim"][:, order]
    first_gap = np.min(np.diff(t_ord, axis=1) / (t_ord[:, 1:] + t_ord[:, :-1]), axis=1)

    # Aligned balanced members: the closed form without corrections, and the learning-time scalings.
    aligned_dev = np.max(dev_closed, axis=1)  # (seed,)
    aligned_time_dev = np.max(rel_time, axis=1)
    slope_s = np.array([_slope(np.log(s), np.log(p1["t_learn_sim"][m])) for m in range(len(ok))])  # d ln t / d ln s
    slope_s_th = np.array([_slope(np.log(s), np.log(p1["t_learn_th"][m])) for m in range(len(ok))])
    fracs = np.asarray(config.aligned_u0_fracs)
    replicas = np.arange(config.aligned_seeds)
    # Replica j of every frac: the members i * aligned_seeds + j after the random ones.
    index = config.seeds + np.arange(len(fracs))[:, None] * config.aligned_seeds + replicas[None, :]  # (frac, replica)
    log_u0 = np.log(1.0 / (fracs[:, None] * s[None, :]))  # (frac, K)
    u0_slope = np.full((len(replicas), len(s)), np.nan)  # 2 s d t / d ln(1/u0), per replica and mode
    u0_slope_th = np.full((len(replicas), len(s)), np.nan)
    for j in replicas:
        members = index[:, j]
        for k in range(len(s)):
            u0_slope[j, k] = 2.0 * s[k] * _slope(log_u0[:, k], p1["t_learn_sim"][members, k])
            u0_slope_th[j, k] = 2.0 * s[k] * _slope(log_u0[:, k], p1["t_learn_th"][members, k])
    u0_slope_dev = np.max(np.abs(u0_slope - 1.0), axis=1)  # (replica,)
    replica_ok = np.all(ok[index], axis=0)

    depths = np.array([r["depth"] for r in p2])
    budget = float(config.depth_num_steps)
    t_by_init = {init: np.stack([r["t_sim"][r["inits"] == init] for r in p2]) for init in INITS}  # (depth, replica)
    never = {init: int(np.isnan(t).sum()) for init, t in t_by_init.items()}
    # Members not learnt within the budget count as the budget: a lower bound on their time.
    bound = {init: np.where(np.isnan(t), budget, t) for init, t in t_by_init.items()}
    mean_steps = {init: np.mean(t, 1) for init, t in bound.items()}
    ratio = {init: float(np.max(m) / np.min(m)) for init, m in mean_steps.items()}
    t_theory_balanced = np.array([r["t_th"] for r in p2])
    t_reference_random = np.array([r["t_ref"] for r in p2])
    bal_rel = float(np.nanmax(np.abs(t_by_init["balanced"] - t_theory_balanced[:, None]) / t_theory_balanced[:, None]))
    ratio_theory = float(np.max(t_theory_balanced) / np.min(t_theory_balanced))
    growth_random = float(mean_steps["small_random"][-1] / mean_steps["small_random"][0])

    tol, flat = config.tolerance, config.flat_ratio
    tol_source = "config.tolerance: gradient descent departs from gradient flow at first order in lr"
    closed = claims.source("u(t) = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0); t = (tau / 2s) ln(u_f (s - u0) / (u0 (s - u_f)))",
                           "Saxe, McClelland & Ganguli 2014, the exact solution of the three-layer mode dynamics from decoupled, balanced initial conditions")
    plateaus = claims.source("long plateaus followed by rapid transitions to lower error solutions", "Saxe, McClelland & Ganguli 2014, abstract")
    depth_free = claims.source("We further exhibit a new class of random orthogonal initial conditions on weights that, like unsupervised "
                               "pre-training, enjoys depth independent learning times", "Saxe, McClelland & Ganguli 2014, abstract")
    special = claims.source("for a special class of initial conditions on the weights, very deep networks incur only a finite, depth "
                            "independent, delay in learning speed relative to shallow networks", "Saxe, McClelland & Ganguli 2014, abstract")
    gaussian = claims.source("unsupervised pretraining can find this special class of initial conditions, while scaled random Gaussian "
                             "initializations cannot", "Saxe, McClelland & Ganguli 2014, abstract")
    ext = "extension (small random initialisation, not the paper's exact case): "
    n_al = int(aligned.sum())
    found = [
        claims.per_seed("aligned-closed-form", f"aligned, balanced three-layer members with small u0 (u0 = frac s, frac in "
                        f"{', '.join(f'{f:g}' for f in fracs)}): every mode follows u(t) = s e^{{2st}}/(e^{{2st}} - 1 + s/u0) with its own "
                        f"u0, no corrections (per member: max |u_sim - u_theory| / s over modes and times; {n_al} members)",
                        aligned_dev, "<", tol, kind="paper", source=closed, include=aligned, threshold_source=tol_source),
        claims.per_seed("aligned-learning-time", "aligned, balanced members: every mode's time to s/2 matches (tau/2s) ln(u_f (s - u0) / "
                        "(u0 (s - u_f))) (per member: largest relative error over modes)", aligned_time_dev, "<", tol, kind="paper",
                        source=closed, include=aligned, threshold_source=tol_source),
        claims.per_seed("aligned-time-inverse-s", "learning time proportional to 1/s: at one u0/s the log-log slope of the time to s/2 "
                        f"against s is -1 (per member: |slope + 1|; theory {np.nanmax(np.abs(slope_s_th[aligned] + 1.0)) if aligned.any() else float('nan'):.2g} at worst)",
                        np.abs(slope_s + 1.0), "<", tol, kind="paper", source=closed, include=aligned, threshold_source=tol_source,
                        reading="with u0 = frac s the closed form gives t = (tau/2s) ln((1 - frac)/frac) exactly, so t s is one number per frac"),
        claims.per_seed("aligned-time-log-u0", "learning time proportional to ln(1/u0): over the sweep of u0 the time to s/2 rises linearly "
                        "in ln(1/u0) with slope tau/2s (per replica: largest |2 s slope - 1| over modes; theory "
                        f"{np.nanmax(np.abs(u0_slope_th - 1.0)):.2g} at worst)", u0_slope_dev, "<", tol, kind="paper", source=closed,
                        include=replica_ok, threshold_source=tol_source,
                        reading="t = (tau/2s)(ln(1/u0) + ln s + ln(1 - frac)): the slope in ln(1/u0) is tau/2s up to the O(frac) curvature"),
        claims.per_seed("stronger-first", "stronger modes are learned first, from small random initialisation (per seed: smallest relative "
                        "gap of the times to s/2 taken from the strongest mode down)", first_gap, ">", 0.0, kind="paper", source=plateaus,
                        include=random_, threshold_source="a strict ordering",
                        reading="each mode's plateau ends at its own time, earlier the stronger the mode (t ~ (tau/s) ln(s/u0))"),
        claims.check("random-closed-form-effective-u0", ext + "every mode follows the closed form with u0 = its growing component off the "
                     "stronger modes, the project's effective u0 (max |u_sim - u_theory| / s over modes, seeds, times)", max_dev_closed, "<", tol,
                     kind="extension", why="the closed form carried to random starts needs a u0 the paper does not define there",
                     threshold_source=tol_source),
        claims.check("random-learning-time-effective-u0", ext + "every mode's time to s/2 matches the closed form with the effective u0 "
                     "(largest relative error)", max_rel_time, "<", tol, kind="extension",
                     why="the learning time carried to random starts with the project's effective u0", threshold_source=tol_source),
        claims.check("random-closed-form-own-u0", ext + "every mode follows the closed form with its own u0 = |a + b|^2 / 4 (max |u_sim - "
                     "u_theory| / s)", max_dev_own, "<", tol, kind="extension",
                     why="the straightforward reading of the closed form on random starts, kept to show what the effective u0 corrects",
                     threshold_source=tol_source),
        claims.check("random-unaligned-exact", ext + "the exact single-mode solution from the unaligned start (p0, m0) follows the simulation "
                     "(max |u_sim - u_theory| / s)", max_dev_exact, "<", tol, kind="extension",
                     why="the project's single-mode solution from unaligned starts", threshold_source=tol_source),
        claims.check("balanced-depth-theory", "balanced mode-aligned init (u0 = O(1)): learning time in steps at lr0/D matches the chain theory "
                     "tau du/dt = D u^{2-2/D}(s-u) at every depth (largest relative error)", bal_rel, "<", tol, kind="extension",
                     why="the balanced deep chain's mode equation beside the simulation", threshold_source=tol_source),
        claims.check("balanced-flat-over-depth", f"balanced init, u0 = O(1): learning time in steps stays flat over depth {depths.min()}-{depths.max()} "
                     f"(max/min of the mean over depths, simulation; theory {ratio_theory:.3g}; {never['balanced']} not learnt)",
                     ratio["balanced"] if never["balanced"] == 0 else float("nan"), "<=", flat, kind="paper", source=special,
                     threshold_source="config.flat_ratio", reading="'depth independent' read in steps at the stable learning rate lr0/D"),
        claims.check("orthogonal-flat-over-depth", f"random orthogonal init: learning time in steps stays flat over depth {depths.min()}-{depths.max()} "
                     f"(max/min of the mean over depths; {never['orthogonal']} not learnt)",
                     ratio["orthogonal"] if never["orthogonal"] == 0 else float("nan"), "<=", flat, kind="paper", source=depth_free,
                     threshold_source="config.flat_ratio", reading="'depth independent' read in steps at the stable learning rate lr0/D"),
        claims.check("small-random-grows-with-depth", f"small random init: learning time in steps grows with depth (mean at D = {depths[-1]} over mean at "
                     f"D = {depths[0]}; {never['small_random']} members not learnt in {int(budget)} steps count as {int(budget)})",
                     growth_random, ">=", 2 * flat, kind="paper", source=gaussian, threshold_source="2 x config.flat_ratio",
                     reading="scaled random Gaussian starts miss the special class, read as a learning time that grows with depth"),
    ]
    numbers = {
        "diverged_members_part1": int((~ok).sum()),
        "diverged_members_part2": int(sum((r["diverged_at"] >= 0).sum() for r in p2)),
        "ode_failures_part2": [int(d) for d, r in zip(depths, p2) if not r["ode_ok"]],
        "max_rel_deviation_aligned": worst(aligned_dev, aligned),
        "max_rel_error_learning_time_aligned": worst(aligned_time_dev, aligned),
        "aligned_loglog_slope_time_vs_s": slope_s[aligned].tolist(),
        "aligned_2s_slope_time_vs_log_inv_u0": u0_slope.tolist(),
        "max_rel_deviation_closed_form": max_dev_closed,
        "max_rel_deviation_closed_form_own_u0": max_dev_own,
        "max_rel_deviation_unaligned_exact": max_dev_exact,
        "max_rel_error_learning_time": max_rel_time,
        "max_rel_error_learning_time_own_u0": max_rel_time_own,
        "max_rel_deviation_by_mode": np.max(dev_closed[random_], 0).tolist() if random_.any() else [],
        "learning_time_sim_mean_by_mode": np.nanmean(p1["t_learn_sim"][random_], 0).tolist(),
        "learning_time_theory_mean_by_mode": np.nanmean(p1["t_learn_th"][random_], 0).tolist(),
        "u0_effective_mean_by_mode": np.mean(p1["p0"][random_], 0).tolist(),
        "depths": depths.tolist(),
        "learning_steps_by_depth": {init: m.tolist() for init, m in mean_steps.items()},
        "learning_steps_theory_balanced": t_theory_balanced.tolist(),
        "learning_steps_reference_small_random_aligned": t_reference_random.tolist(),
        "learning_steps_ratio_max_min": ratio,
        "learning_steps_ratio_theory_balanced": ratio_theory,
        "members_not_learnt_within_budget": never,
        "depth_step_budget": int(budget),
        "max_rel_error_balanced_learning_time": bal_rel,
    }

    per = t_by_init["orthogonal"].shape[1]
    max_len = max(len(r["steps"]) for r in p2)
    max_depth = int(depths.max())
    width = max(max(w.shape[1], w.shape[2]) for r in p2 for w in r["weights"])
    rel_error = np.full((len(p2), len(INITS), per, max_len), np.nan)
    err_th = np.full((len(p2), max_len), np.nan)
    steps = np.full((len(p2), max_len), np.nan)
    w_init = np.full((len(p2), len(INITS), per, max_depth, width, width), np.nan, dtype=np.float32)
    n_in, n_modes = p2[0]["V"].shape[1], p2[0]["V"].shape[2]
    depth_u = np.full((len(p2), len(INITS), per, p2[0]["U"].shape[1], n_modes), np.nan, dtype=np.float32)
    depth_v = np.full((len(p2), len(INITS), per, n_in, n_modes), np.nan, dtype=np.float32)
    for i, r in enumerate(p2):
        T = len(r["steps"])
        steps[i, :T] = r["steps"]
        err_th[i, :T] = r["err_th"]
        for j, init in enumerate(INITS):
            members = np.flatnonzero(r["inits"] == init)
            rel_error[i, j, :, :T] = r["rel_error"][members]
            depth_u[i, j] = r["U"][members]
            depth_v[i, j] = r["V"][members]
            for l, w in enumerate(r["weights"]):
                w_init[i, j, :, l, :w.shape[1], :w.shape[2]] = w[members]
    data = p1["data"]
    one, tau = "1", "tau = 1/lr"  # strengths, weights and singular vectors are dimensionless; part-1 times in units of tau

    def described(long_name, units=one):
        return {"long_name": long_name, "units": units}

    a_b = "a_k = W1 V[:, k], b_k = W2^T U[:, k]"
    ds = xr.Dataset(
        {
            "u_sim": (("seed", "time", "mode"), p1["u_sim"], described(
                "strength u_k = U[:, k]^T W2 W1 V[:, k] of mode k, three-layer net by gradient descent")),
            "u_theory": (("seed", "time", "mode"), p1["u_closed"], described(
                "mode strength, closed form s / (1 - (1 - s/u0) e^{-2st}) with the effective u0 (= own u0 for aligned members)")),
            "u_theory_own_u0": (("seed", "time", "mode"), p1["u_own"], described(
                f"mode strength, closed form with the mode's own u0 = |a_k + b_k|^2 / 4 at t = 0 ({a_b})")),
            "u_theory_unaligned": (("seed", "time", "mode"), p1["u_exact"], described(
                "mode strength, exact single-mode solution from the effective (p0, m0) (mode_strength_unaligned; no cross terms)")),
            "p_sim": (("seed", "time", "mode"), p1["p_sim"], described(f"growing component p_k = |a_k + b_k|^2 / 4 ({a_b}), gradient descent")),
            "m_sim": (("seed", "time", "mode"), p1["m_sim"], described(f"decaying component m_k = |a_k - b_k|^2 / 4 ({a_b}), gradient descent")),
            "u0_effective": (("seed", "mode"), p1["p0"], described(
                "effective u0: initial |P_k (a_k + b_k)|^2 / 4, P_k the projector off the stronger modes' initial a_j + b_j")),
            "m0_effective": (("seed", "mode"), p1["m0"], described(
                "effective m0: initial |P_k (a_k - b_k)|^2 / 4, P_k the projector off the stronger modes' initial a_j + b_j")),
            "u0_own": (("seed", "mode"), p1["p_own"], described(f"the mode's own u0: initial growing component |a_k + b_k|^2 / 4 ({a_b})")),
            "u0_measured": (("seed", "mode"), p1["u0_sim"], described("initial mode strength u_k(0) = U[:, k]^T W2 W1 V[:, k] (first record)")),
            "learning_time_sim": (("seed", "mode"), p1["t_learn_sim"], described(
                "first time u_k reaches s_k / 2 (linear interpolation between records), gradient descent; NaN if never", tau)),
            "learning_time_theory": (("seed", "mode"), p1["t_learn_th"], described(
                "time to s_k / 2, closed form (tau / 2s) ln(u_f (s - u0) / (u0 (s - u_f))) with the effective u0, u_f = s / 2", tau)),
            "W1_initial": (("seed", "hidden", "input"), p1["w1"], described("initial input layer W1 of the three-layer net (math layout, out x in)")),
            "W2_initial": (("seed", "output", "hidden"), p1["w2"], described("initial output layer W2 of the three-layer net (math layout, out x in)")),
            "U": (("seed", "output", "mode"), data["U"], described("output singular vectors U[:, k] of Sigma_yx (orthonormal columns)")),
            "V": (("seed", "input", "mode"), data["V"], described("input singular vectors V[:, k] of Sigma_yx (orthonormal columns)")),
            "x": (("seed", "sample", "input"), data["x"], described("whitened inputs (one-hot, Sigma_xx = I)")),
            "sigma_yx": (("seed", "output", "input"), data["sigma_yx"], described(
                "input-output correlation Sigma_yx = U diag(s) V^T (targets y = Sigma_yx x)")),
            "s": ("mode", s, described("mode strengths s_k, the singular values of Sigma_yx")),
            "diverged_at": ("seed", p1["diverged_at"]),
            "depth_learning_steps": (("depth", "init", "replica"), np.stack([t_by_init[i] for i in INITS], 1), described(
                "part 2: first step with ||W_tot - Sigma_yx||_F <= criterion ||Sigma_yx||_F (interpolated between records), "
                "gradient descent at lr0 / D; NaN if not within the budget", "step")),
            "depth_learning_steps_theory_balanced": ("depth", t_theory_balanced, described(
                "part 2: the same criterion step for the balanced chain theory tau du/dt = D u^{2-2/D} (s - u) from u0 = u0_frac s",
                "step")),
            "depth_learning_steps_reference_small_random": ("depth", t_reference_random, described(
                "part 2: the same criterion step for the balanced aligned chain from u0 = random_gain^D (reference for small random init)",
                "step")),
            "depth_rel_error": (("depth", "init", "replica", "record"), rel_error, described(
                "part 2: relative error ||W_tot - Sigma_yx||_F / ||Sigma_yx||_F per record, gradient descent; NaN past a depth's records")),
            "depth_rel_error_theory_balanced": (("depth", "record"), err_th, described(
                "part 2: relative error |s - u| / |s| of the balanced chain theory per record; NaN past a depth's records")),
            "depth_steps": (("depth", "record"), steps, described("part 2: gradient-descent step of each record; NaN past a depth's records", "step")),
            "depth_lr": ("depth", config.lr0 / depths, described("part 2: gradient-descent learning rate lr0 / D")),
            "depth_W_initial": (("depth", "init", "replica", "layer", "row", "col"), w_init,
                                described("initial W_l (math layout, out x in), NaN beyond the member's depth and widths")),
            "depth_U": (("depth", "init", "replica", "output", "mode"), depth_u, described(
                "part 2: output singular vectors U[:, k] of each member's Sigma_yx")),
            "depth_V": (("depth", "init", "replica", "input", "mode"), depth_v, described(
                "part 2: input singular vectors V[:, k] of each member's Sigma_yx")),
        },
        coords={"seed": np.arange(len(ok)),
                "time": ("time", p1["time"], described("part 1: time t = step * lr of each record", tau)),
                "mode": ("mode", np.arange(len(s)), described("mode k (the order of config.strengths)")),
                "depth": ("depth", depths, described("part 2: number of weight layers D")),
                "init": ("init", list(INITS), {"long_name": "part 2 initialisation: random orthogonal, balanced mode-aligned (u0 = u0_frac s), "
                                                            "small random Gaussian (per-layer gain random_gain)"}),
                "replica": ("replica", np.arange(per), described("part 2: member within a (depth, init)")),
                # The part-1 conditions, as coordinates on seed.
                "start": ("seed", p1["inits"], {"long_name": "part 1 initialisation: small_random (N(0, init_scale^2) entries) or aligned "
                                                             "(balanced, decoupled)"}),
                "u0_frac": ("seed", p1["fracs"], described("part 1, aligned members: u0_k = u0_frac s_k at t = 0 (NaN for small random)")),
                "task_seed": ("seed", p1["task_seeds"], described("seed of the member's random U, V (jaxdyn.tasks.perceptual.mode_task)")),
                "lr": ("seed", np.full(len(ok), config.lr), described("part 1: gradient-descent learning rate lr (tau = 1/lr)"))},
        attrs={
            "time_units": "part 1: tau = 1/lr (time = step * lr); part 2: steps",
            "lr_part1": config.lr,
            "lr0_part2": config.lr0,
            "init_scale": config.init_scale,
            "hidden": config.hidden,
            "depth_hidden": config.depth_hidden,
            "u0_frac": config.u0_frac,
            "random_gain": config.random_gain,
            "criterion": config.criterion,
            "depth_step_budget": int(budget),
            "not_learnt": "depth_learning_steps is NaN where the relative error never reached the criterion",
            "loss": "1/2 sum_mu |y_mu - W_tot x_mu|^2, x_mu one-hot (whitened), y = U diag(s) V^T x",
            "start": "part 1: small_random (N(0, init_scale^2) entries) or aligned (balanced, decoupled, u0 = u0_frac s)",
        },
    )
    return ds, found, numbers


def _figures(config: SaxeModesConfig, ds: xr.Dataset) -> dict:
    s = ds["s"].values
    time = ds["time"].values
    start = ds["start"].values
    random_members, aligned_members = np.flatnonzero(start == "small_random"), np.flatnonzero(start == "aligned")
    fig, axes = plots.figure(1, 3, width=3.5, height=3.1)
    ax = axes[0, 0]
    m = int(random_members[0])
    for k in range(len(s)):
        plots.theory_and_simulation(ax, time, ds["u_theory"].values[m, :, k], ds["u_sim"].values[m, :, k], color=plots.color(k))
    ax.set_xlabel("time (units of tau)")
    ax.set_ylabel("mode strength u(t)")
    ax.set_title("extension: small random init, seed 0\n(closed form with the effective u0)")
    first = plots.legend_groups(ax, [f"s = {x:g}" for x in s], colors=[plots.color(k) for k in range(len(s))], loc="upper left", fontsize=6.5)
    ax.add_artist(first)
    plots.legend_groups(ax, ["theory", "simulation"], linestyles=["-", "none"], markers=[None, "o"], loc="center right", fontsize=6.5)
    ax = axes[0, 1]
    for k in range(len(s)):
        ax.plot(ds["learning_time_theory"].values[random_members, k], ds["learning_time_sim"].values[random_members, k], "o",
                markerfacecolor="none", color=plots.color(k))
    lim = np.nanmax(ds["learning_time_sim"].values[random_members]) * 1.1
    ax.plot([0, lim], [0, lim], color="0.4", linewidth=1)
    ax.set_xlabel("closed form with the effective u0 (tau)")
    ax.set_ylabel("time to s/2, simulation (tau)")
    ax.set_title("extension: learning time per mode\nand seed, small random init")
    ax = axes[0, 2]
    depths = ds["depth"].values
    for j, init in enumerate(INITS):
        t = ds["depth_learning_steps"].values[:, j]
        ax.plot(np.repeat(depths, t.shape[1]), t.ravel(), "o", markerfacecolor="none", color=plots.color(j), label=f"{init} (simulation)")
    ax.plot(depths, ds["depth_learning_steps_theory_balanced"].values, color=plots.color(1), label="balanced (theory)")
    ax.plot(depths, ds["depth_learning_steps_reference_small_random"].values, color=plots.color(2), linestyle="--",
            label=f"aligned chain at gain {config.random_gain:g} (reference)")
    ax.set_yscale("log")
    ax.set_xlabel("depth D (weight layers)")
    ax.set_ylabel(f"steps to relative error {config.criterion:g}\n(lr = {config.lr0:g} / D)")
    ax.set_title("learning time vs depth")
    ax.legend(loc="upper left", fontsize=6.5)

    # The exact case: aligned, balanced members from small u0.
    fig2, axes2 = plots.figure(1, 3, width=3.5, height=3.1)
    fracs = list(dict.fromkeys(ds["u0_frac"].values[aligned_members].tolist()))
    ax = axes2[0, 0]
    for frac in fracs:
        m = int(aligned_members[ds["u0_frac"].values[aligned_members] == frac][0])
        for k in range(len(s)):
            plots.theory_and_simulation(ax, time, ds["u_theory"].values[m, :, k] / s[k], ds["u_sim"].values[m, :, k] / s[k],
                                        color=plots.color(k), every=max(1, len(time) // 15))
    ax.set_xlabel("time (units of tau)")
    ax.set_ylabel("u(t) / s")
    ax.set_title(f"aligned, balanced: u0 = frac s\n(frac = {', '.join(f'{f:g}' for f in fracs)}; smaller: later)")
    first = plots.legend_groups(ax, [f"s = {x:g}" for x in s], colors=[plots.color(k) for k in range(len(s))], loc="center right", fontsize=6.5)
    ax.add_artist(first)
    plots.legend_groups(ax, ["theory", "simulation"], linestyles=["-", "none"], markers=[None, "o"], loc="lower right", fontsize=6.5)
    ax = axes2[0, 1]
    grid = np.geomspace(s.min() / 1.2, s.max() * 1.2, 50)
    for i, frac in enumerate(fracs):
        members = aligned_members[ds["u0_frac"].values[aligned_members] == frac]
        for m in members:
            ax.plot(s, ds["learning_time_sim"].values[m], "o", markerfacecolor="none", color=plots.color(i + 4))
        ax.plot(grid, np.log((1 - frac) / frac) / (2 * grid), color=plots.color(i + 4), label=f"frac = {frac:g}: (tau/2s) ln((1-frac)/frac)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mode strength s")
    ax.set_ylabel("time to s/2 (tau)")
    ax.set_title("time to s/2 against s\n(slope -1 on log axes)")
    ax.legend(loc="lower left", fontsize=6)
    ax = axes2[0, 2]
    u0 = ds["u0_frac"].values[aligned_members, None] * s[None, :]
    for k in range(len(s)):
        x = np.log(1.0 / u0[:, k])
        ax.plot(x, ds["learning_time_sim"].values[aligned_members, k], "o", markerfacecolor="none", color=plots.color(k))
        xs = np.linspace(x.min(), x.max(), 20)
        ax.plot(xs, np.log((s[k] - np.exp(-xs)) / np.exp(-xs)) / (2 * s[k]), color=plots.color(k), label=f"s = {s[k]:g}: slope 1/2s")
    ax.set_xlabel("ln(1 / u0)")
    ax.set_ylabel("time to s/2 (tau)")
    ax.set_title("time to s/2 against ln(1/u0)\n(slope 1/2s)")
    ax.legend(loc="upper left", fontsize=6.5)
    return {"modes": Figure(fig, "extension, small random init: mode strengths u_k(t) of seed 0 (closed form with the effective u0 as lines, "
                                 "gradient descent as markers) and learning times per mode and seed; right: steps to the criterion "
                                 "against depth per initialisation"),
            "aligned": Figure(fig2, "the closed form where it is exact (aligned, balanced, small u0 = frac s): u_k(t)/s_k (theory lines, "
                                    "simulation markers); time to s/2 against s (slope -1) and against ln(1/u0) (slope 1/2s)")}


EXPERIMENT = Experiment(
    name="saxe-modes",
    work="Saxe 2014",
    description="closed-form sigmoidal mode strength u(t) and learning time vs simulation; learning time over depth (orthogonal, balanced, small random)",
    config=SaxeModesConfig,
    run=run,
)
"""Registers ``jaxdyn run saxe-modes``: Saxe et al. 2014's exact sigmoidal mode dynamics of deep linear nets and their learning time over depth."""
