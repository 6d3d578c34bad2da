"""neurashed-elasticity: local elasticity in neurashed, Theorems 1 and 2 against simulation.

Source: Su (arXiv 2112.09741), appendix, "Analyses for local elasticity". Graphs of the
Theorem 1 family (:func:`jaxdyn.tasks.neurashed.theorem1_family`: m nodes per level, b1 nodes
shared by all classes and b2 nodes per class at each of L levels, each class's selected nodes
joined level to level) are trained by Algorithm 1 (:func:`jaxdyn.models.neurashed.theorem1_learner`, through the
engine) with g+(x) = x + c (c > 1), g-(x) = x, one
input per class, batch size 1 and every class once per epoch ("each class has the same number
of training examples"). eta is held at 1, so Z_j is the product over levels of the class's
amplification sums, the form of the text's expansion. After t epochs, one more update at class
j changes the logits; the theorem concerns

    ratio = Delta Z_j(x_j) / Delta Z_j'(x_j')   ->   (b1 + b2) / b1 > 1     (Theorem 1)

as t -> infinity with m large, and ratio -> infinity when L grows fast enough (Theorem 2). The
in-scan observable applies the extra update at every class from the current state (without
keeping it) and records Delta Z of every class's own logit on its own input, so one training
run gives the ratio at every epoch.

Theory lines: the limit (b1 + b2)/b1 and the leading-order expansion
``(c(t+1)b2 + c(Kt+1)b1)^L - (ctb2 + cKtb1)^L`` over its class-j' counterpart
(:func:`jaxdyn.theory.neurashed.theorem1_expansion`, with the actual counts). Distances are
relative: |simulation / theory - 1|. Finite m enters through classes that draw the same
"class-specific" node (probability ~ b2^2 / m per level), which makes the classes overlap more.

Sweeps: m (at the first (b1, b2) and L), (b1, b2) pairs (at the largest m), and L (Theorem 2,
at the largest m). Theorem 2 needs L to grow "sufficiently quickly", which is a joint regime in
(t, L): with L / t -> infinity (t fixed at ``theorem2_epoch`` while L grows) the expansion's ratio
grows without bound, about exp(L b2 / (t (b2 + K b1))); along L = r t it tends to the finite
(e^(r(b1+b2)/s) - 1) / (e^(r b1/s) - 1), s = b2 + K b1
(:func:`jaxdyn.theory.neurashed.theorem2_limit_proportional`). Both are read from the same runs
(the pairs (t = L / r, L) of the sweep) and claimed: the first as the paper's, the second as the
project's reading. At t = 100 the ratio at L = 32 is near 2.68, not the Theorem 1 limit 2.5:
L / t = 0.32 there.

The agreement of the simulation with the expansion is an identity of the model on this family
(eta = 1 makes Z_j the product over levels of the class's pathway sums of lambda; the engine
records both sides), so it is a sanity claim. The appendix's worked three-class example (f_1 =
a^2 N1 (7 N1 + 5 N2 + 2 N3), ..., and the changes after an update at C1) is simulated on a graph
reconstructed from those formulas (:func:`jaxdyn.tasks.neurashed.appendix_example`) beside them. float64 throughout (Z grows like (c t b)^L): training runs inside
``jax.enable_x64(True)``.
"""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.models import neurashed as nm
from jaxdyn.tasks import neurashed as nt
from jaxdyn.theory import neurashed as th


@dataclasses.dataclass(frozen=True)
class NeurashedElasticityConfig(Config):
    """Configuration of neurashed-elasticity."""

    seeds: int = param(8, "random graphs (and initial factors) per condition", min=1, max=1024)
    num_classes: int = param(2, "classes K", min=2, max=16)
    ms: tuple[int, ...] = param((10, 30, 100, 300), "nodes per level m (Theorem 1: m large)", min=2, max=2000)
    b_pairs: tuple[int, ...] = param((2, 3, 3, 1, 1, 4), "(b1, b2) pairs, flattened: shared and class-specific nodes per level", min=1, max=100)
    num_levels: int = param(3, "levels L with amplification factors, for the m and (b1, b2) sweeps", min=1, max=64)
    levels_sweep: tuple[int, ...] = param((1, 2, 4, 8, 16, 32), "L values for Theorem 2", min=1, max=64)
    epochs: int = param(100, "training epochs t (each class once per epoch); the ratio is read at every epoch", min=1, max=10_000)
    theorem2_epoch: int = param(2, "epoch t at which the L sweep is read (Theorem 2 needs L large against t)", min=1, max=10_000)
    c: float = param(2.0, "the additive g+(x) = x + c (c > 1)", min=1.0, max=1e3, min_exclusive=True)
    init_high: float = param(0.01, "initial lambda ~ U(0, init_high)", min=0.0, max=1.0)
    tolerance: float = param(0.02, "largest relative distance |ratio / limit - 1| counted as reaching the limit", min=0.0, max=1.0, min_exclusive=True)
    proportional_ratio: float = param(2.0, "Theorem 2's second regime: L = r t (L proportional to t), read at the pairs (t = L / r, L) of the L sweep", min=0.0, max=64.0, min_exclusive=True)
    appendix_a: float = param(0.5, "the appendix's worked example: additive g+(x) = x + a from zero factors", min=0.0, max=100.0, min_exclusive=True)
    appendix_steps: int = param(120, "the appendix's worked example: updates (batch 1, classes drawn i.i.d.)", min=1, max=100_000)

    @classmethod
    def quick(cls) -> NeurashedElasticityConfig:
        return cls(seeds=4, ms=(10, 100), b_pairs=(2, 3, 1, 4), levels_sweep=(1, 4, 16), epochs=40)

    def check(self) -> None:
        if len(self.b_pairs) % 2:
            raise ConfigError(f"b_pairs: expected (b1, b2) pairs flattened, got an odd count {len(self.b_pairs)}")
        for b1, b2 in self.pairs:
            if b1 + b2 > min(self.ms):
                raise ConfigError(f"ms: every m must be >= b1 + b2 = {b1 + b2}, got {min(self.ms)}")
        if len(set(self.ms)) != len(self.ms) or list(self.ms) != sorted(self.ms):
            raise ConfigError("ms: expected distinct increasing values")
        if list(self.levels_sweep) != sorted(set(self.levels_sweep)):
            raise ConfigError("levels_sweep: expected distinct increasing values")
        if self.theorem2_epoch > self.epochs:
            raise ConfigError(f"theorem2_epoch: must be <= epochs ({self.epochs}), got {self.theorem2_epoch}")

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return [(self.b_pairs[i], self.b_pairs[i + 1]) for i in range(0, len(self.b_pairs), 2)]


@dataclasses.dataclass(frozen=True)
class DeltaLogits:
    """Observable: the change of every class's own logit after one more update at each class.

    Returns ``{"delta_logits": (K, K), "class_counts": (K,)}``: row j is one extra update of
    ``learner`` at input type j (of class j; not kept), column j' the change of Z_j' on class
    j''s input; the counts are the updates each class has had so far.
    """

    learner: nm.NeurashedLearner
    dims = {"delta_logits": ("update_class", "other_class"), "class_counts": ("class",), "own_logits": ("class",),
            "level_sum_product": ("class",)}

    def __call__(self, snap):
        state, patterns = snap.state, snap.data["patterns"]
        first = jnp.asarray(patterns.first)
        own = lambda amp: jnp.diagonal(nm.logits(state.graph, amp, first))  # noqa: E731
        z0 = own(state.amp)

        def after(j):
            batch = {"x": first[j][None], "label": jnp.asarray(patterns.label)[j][None]}
            return own(self.learner.update(state, batch).amp) - z0

        # prod over levels of the class's pathway sums: what Z_j must equal on the Theorem 1 family (eta = 1).
        fires = nm.pathways(state.graph, first)
        sums = jnp.stack([f.astype(lam.dtype) @ lam for f, lam in zip(fires, state.amp.lam)])  # (L, K)
        return {"delta_logits": jax.vmap(after)(jnp.arange(first.shape[0])), "class_counts": state.class_fired,
                "own_logits": z0, "level_sum_product": jnp.prod(sums, 0)}


@dataclasses.dataclass(frozen=True)
class AppendixExample:
    """Observable of the appendix's worked example: ``{"counts": (3,), "own_logits": (3,),
    "delta_at_c1": (3,)}``, the updates per class so far, f_j on class j's input, and the change of
    each f_j after one more update at C1 (not kept)."""

    learner: nm.NeurashedLearner
    dims = {"counts": ("class",), "own_logits": ("class",), "delta_at_c1": ("class",)}

    def __call__(self, snap):
        first = jnp.asarray(snap.data["patterns"].first)
        own = lambda amp: jnp.diagonal(nm.logits(snap.state.graph, amp, first))  # noqa: E731
        after = self.learner.update(snap.state, {"x": first[:1], "label": jnp.zeros((1,), jnp.int32)})
        return {"counts": snap.state.class_fired, "own_logits": own(snap.params), "delta_at_c1": own(after.amp) - own(snap.params)}


def _condition(config, ctx, m, b1, b2, L):
    """Trains ``seeds`` random graphs of one condition.

    Returns:
        (ratios (seed, epoch, K, K), counts (seed, epoch, K), overlap (seed,) bool: two classes
        drew a common "class-specific" node at some level, the finite-m effect).
    """
    K = config.num_classes
    fams = [nt.theorem1_family(10_000 * m + 100 * L + s, m=m, b1=b1, b2=b2, num_classes=K, num_levels=L) for s in range(config.seeds)]
    learner = nm.theorem1_learner(config.c, config.init_high, dtype="float64")
    seeds = list(range(config.seeds))
    data = nt.sampler_data(seeds, 1, sampling="epoch", graphs=nt.stack([f.graph for f in fams]),
                           patterns=nt.stack([f.patterns for f in fams]))
    res = ctx.train(learner, nt.PatternSampler(max_batch=1, sampling="epoch"), seeds=seeds, num_steps=K * config.epochs,
                    observables={"elasticity": DeltaLogits(learner)}, record_every=K, data=data)
    d = np.asarray(res.records["delta_logits"])  # (seed, epoch, j, j')
    own = np.diagonal(d, axis1=-2, axis2=-1)[..., :, None]  # Delta Z_j(x_j) after the update at j
    # ratio[j, j'] = Delta Z_j(x_j) / Delta Z_j'(x_j'), both after the update at class j.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = own / np.where(np.eye(K, dtype=bool), np.nan, d)
    overlap = np.array([any(len(set(f.specific[l, a]) & set(f.specific[l, b])) > 0
                            for l in range(L) for a in range(K) for b in range(a + 1, K)) for f in fams])
    z, prod = np.asarray(res.records["own_logits"]), np.asarray(res.records["level_sum_product"])
    identity = np.max(np.abs(z - prod) / np.abs(z), axis=(1, 2))  # (seed,) Z vs the product of level sums
    return ratio, np.asarray(res.records["class_counts"]), overlap, identity, res.diverged_at


def _appendix(config, ctx):
    """The appendix's worked three-class example by simulation: counts (seed, time, 3), f_j and
    the change after an update at C1, each (seed, time, 3), and the formulas at the same counts."""
    built = nt.appendix_example()
    learner = nm.NeurashedLearner(plus=nm.additive(config.appendix_a), minus=nm.identity(), eta_plus=nm.identity(),
                                  eta_minus=nm.identity(), lam_range=(0.0, 0.0), eta_range=(1.0, 1.0), dtype="float64")
    seeds = list(range(config.seeds))
    every = max(1, config.appendix_steps // 20) if config.appendix_steps % max(1, config.appendix_steps // 20) == 0 else 1
    res = ctx.train(learner, nt.PatternSampler(max_batch=1, sampling="iid"), seeds=seeds, num_steps=config.appendix_steps,
                    observables={"appendix": AppendixExample(learner)}, record_every=every,
                    data=nt.sampler_data(seeds, 1, sampling="iid"), shared={"graph": built.graph, "patterns": built.patterns})
    counts = np.asarray(res.records["counts"])
    n1, n2, n3 = counts[..., 0], counts[..., 1], counts[..., 2]
    return {"counts": counts, "own_logits": np.asarray(res.records["own_logits"]), "delta_at_c1": np.asarray(res.records["delta_at_c1"]),
            "formula_logits": th.appendix_logits(n1, n2, n3, a=config.appendix_a),
            "formula_delta_at_c1": th.appendix_update(n1, n2, n3, a=config.appendix_a), "steps": res.times["time"]}


def _off_diagonal_mean(r):
    K = r.shape[-1]
    mask = ~np.eye(K, dtype=bool)
    return r[..., mask].mean(-1)


def _expansion(config, counts, b1, b2, L):
    """(seed, epoch) expansion ratio averaged over (j, j'), from the actual counts per class."""
    K = config.num_classes
    out = np.stack([th.theorem1_expansion(counts, c=config.c, b1=b1, b2=b2, num_levels=L, cls=j) for j in range(K)], -2)
    with warnings.catch_warnings():  # epoch 0: no update yet, all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(out.reshape(*out.shape[:-2], -1), -1)


def run(config: NeurashedElasticityConfig, ctx) -> Result:
    """Runs the m, (b1, b2) and L sweeps and compares with the limit and the expansion."""
    K = config.num_classes
    (b1_0, b2_0), L0, m_big = config.pairs[0], config.num_levels, max(config.ms)
    results = {}
    with jax.enable_x64(True):
        for m in config.ms:
            results[("m", m, b1_0, b2_0, L0)] = _condition(config, ctx, m, b1_0, b2_0, L0)
        for b1, b2 in config.pairs[1:]:
            results[("b", m_big, b1, b2, L0)] = _condition(config, ctx, m_big, b1, b2, L0)
        for L in config.levels_sweep:
            key = ("m", m_big, b1_0, b2_0, L) if L == L0 else ("L", m_big, b1_0, b2_0, L)
            if key not in results:
                results[key] = _condition(config, ctx, m_big, b1_0, b2_0, L)
        appendix = _appendix(config, ctx)
    ctx.stage("analysis")
    epochs = np.arange(config.epochs + 1)
    t_idx = np.arange(1, config.epochs + 1)  # skip epoch 0 (initial factors only)
    T, T2 = config.epochs, config.theorem2_epoch

    def key_of(m, b1, b2, L):
        for kind in ("m", "b", "L"):
            if (kind, m, b1, b2, L) in results:
                return (kind, m, b1, b2, L)
        raise KeyError((m, b1, b2, L))

    def summary_of(key):
        """(seed, epoch) simulated ratio (mean over class pairs), expansion, the limit, overlaps."""
        _, m, b1, b2, L = key
        ratio, counts, overlap = results[key][:3]
        return _off_diagonal_mean(ratio), _expansion(config, counts, b1, b2, L), (b1 + b2) / b1, overlap

    def row(key, epoch):
        sim, theory, limit, overlap = summary_of(key)
        per_seed = np.abs(sim[:, epoch] / limit - 1)
        return {"ratio_mean": float(sim[:, epoch].mean()), "ratio_median": float(np.median(sim[:, epoch])),
                "ratio_std": float(sim[:, epoch].std()), "limit": limit, "expansion_mean": float(np.nanmean(theory[:, epoch])),
                "relative_distance_to_limit_median": float(np.median(per_seed)),
                "relative_distance_to_limit_mean": float(per_seed.mean()),
                "relative_distance_to_expansion_median": float(np.median(np.abs(sim[:, epoch] / theory[:, epoch] - 1))),
                "relative_distance_to_expansion_max_disjoint": float(np.abs(sim[~overlap, epoch] / theory[~overlap, epoch] - 1).max()) if (~overlap).any() else float("nan"),
                "graphs_with_overlapping_class_nodes": int(overlap.sum())}

    m_rows = [{"m": int(m), "b1": b1_0, "b2": b2_0, "L": L0, **row(key_of(m, b1_0, b2_0, L0), T)} for m in config.ms]
    pair_rows = [{"m": m_big, "b1": b1, "b2": b2, "L": L0, **row(key_of(m_big, b1, b2, L0), T)} for b1, b2 in config.pairs]
    L_rows = [{"m": m_big, "b1": b1_0, "b2": b2_0, "L": L, "epoch": T2, **row(key_of(m_big, b1_0, b2_0, L), T2)} for L in config.levels_sweep]
    L_rows_final = [{"m": m_big, "b1": b1_0, "b2": b2_0, "L": L, "epoch": T, **row(key_of(m_big, b1_0, b2_0, L), T)} for L in config.levels_sweep]
    sim_big, theory_big, limit0, _ = summary_of(key_of(m_big, b1_0, b2_0, L0))
    dist_t = np.median(np.abs(sim_big[:, t_idx] / limit0 - 1), axis=0)  # (epoch,) median over seeds
    m_dist = np.array([r["relative_distance_to_limit_median"] for r in m_rows])
    all_ratios = np.concatenate([_off_diagonal_mean(results[k][0])[:, t_idx].ravel() for k in results])

    tol = config.tolerance
    worst_expansion = max(r["relative_distance_to_expansion_median"] for r in L_rows + L_rows_final)
    disjoint = [r["relative_distance_to_expansion_max_disjoint"] for r in L_rows + L_rows_final + m_rows + pair_rows]
    worst_disjoint = float(np.nanmax(disjoint)) if np.isfinite(disjoint).any() else float("nan")
    n_disjoint = sum(int((~results[k][2]).sum()) for k in results)
    identity_err = np.max(np.stack([results[k][3] for k in results]), 0)  # (seed,) over every condition
    n_graphs = sum(len(results[k][2]) for k in results)
    S = config.seeds
    include = np.all(np.stack([results[k][4] < 0 for k in results]), 0)  # (seed,) no member of that index diverged
    # Per seed index (a different random graph in every condition): the smallest ratio anywhere.
    min_ratio = np.min(np.stack([np.nanmin(_off_diagonal_mean(results[k][0])[:, t_idx], 1) for k in results]), 0)
    pair_dist = np.max(np.stack([np.abs(summary_of(key_of(m_big, b1, b2, L0))[0][:, T] / th.theorem1_limit(b1, b2) - 1)
                                 for b1, b2 in config.pairs]), 0)  # (seed,) worst pair at m_big, t = T
    rho_seed = np.array([scipy.stats.spearmanr(t_idx, np.abs(sim_big[s, t_idx] / limit0 - 1)).statistic if len(t_idx) > 2 else np.nan
                         for s in range(S)])
    se_m = float(np.hypot(*[claims.bootstrap_se(np.abs(summary_of(key_of(m, b1_0, b2_0, L0))[0][:, T] / limit0 - 1))
                            for m in (config.ms[0], config.ms[-1])]))
    # Theorem 2, regime A (L / t -> infinity): t fixed at theorem2_epoch, L growing.
    Ls = list(config.levels_sweep)
    ratio_L = np.stack([summary_of(key_of(m_big, b1_0, b2_0, L))[0][:, T2] for L in Ls], 1)  # (seed, L)
    growth = np.min(np.diff(ratio_L, axis=1), 1) if len(Ls) > 1 else np.full(S, np.nan)
    # Regime B (L = r t): the pairs (t = L / r, L) of the sweep with an integer t in 1..T.
    r = config.proportional_ratio
    pairs_B = [(L, int(round(L / r))) for L in Ls if abs(L / r - round(L / r)) < 1e-9 and 1 <= round(L / r) <= T]
    limit_B = th.theorem2_limit_proportional(r, b1=b1_0, b2=b2_0, num_classes=K)
    ratio_B = np.stack([summary_of(key_of(m_big, b1_0, b2_0, L))[0][:, t] for L, t in pairs_B], 1) if pairs_B else np.full((S, 0), np.nan)
    expansion_B = [float(th.theorem2_ratio(t, L, b1=b1_0, b2=b2_0, num_classes=K)) for L, t in pairs_B]
    expansion_A = [float(th.theorem2_ratio(T2, L, b1=b1_0, b2=b2_0, num_classes=K)) for L in Ls]
    # The appendix's worked example.
    app = appendix
    app_err = np.max(np.abs(app["own_logits"] - app["formula_logits"]) / np.maximum(np.abs(app["formula_logits"]), 1e-300), axis=(1, 2))
    app_derr = np.max(np.abs(app["delta_at_c1"] - app["formula_delta_at_c1"]) / np.abs(app["formula_delta_at_c1"]).max(), axis=(1, 2))
    d_end = app["delta_at_c1"][:, -1]  # (seed, 3)
    thm1 = claims.source("a backpropagation at Class j gives Delta Z_j / Delta Z_j' -> (b1 + b2) / b1 > 1", "appendix, Theorem 1")
    thm1_regime = claims.source("In the regime where the number of iterations tends to infinity and m is sufficiently large",
                                "appendix, Theorem 1")
    thm2 = claims.source("if the number L of layers grow sufficiently quickly, then we have Delta Z_j / Delta Z_j' -> infinity",
                         "appendix, Theorem 2")
    found = [
        claims.per_seed("update-moves-own-class-most", "local elasticity: an update at class j moves class j's logit more than another "
                        "class's (smallest Delta Z_j / Delta Z_j' over every condition and epoch >= 1, per seed index)", min_ratio, ">", 1.0,
                        kind="paper", source=thm1, threshold_source="the theorem's '> 1'", include=include),
        claims.per_seed("theorem1-limit", f"Theorem 1: at m = {m_big}, t = {T} epochs, the ratio reaches (b1 + b2)/b1 for every "
                        "(b1, b2) (largest |ratio / limit - 1| over the pairs, per graph)", pair_dist, "<=", tol, kind="paper",
                        source=thm1, threshold_source="config.tolerance", include=include,
                        reading=f"m = {m_big} read as 'sufficiently large'; graphs whose classes drew a common class-specific node "
                                "(finite m) count like any other"),
        claims.check("theorem1-m-large", "Theorem 1: the distance to the limit shrinks as m grows (median over graphs of "
                     "|ratio/limit - 1| at the smallest m minus at the largest, final epoch)", float(m_dist[0] - m_dist[-1]), ">", 0.0,
                     kind="paper", source=thm1_regime, threshold_source="0: no change with m", se=se_m,
                     reading="a population statement (the chance that classes share a node falls with m), so on medians over graphs"),
        claims.per_seed("theorem1-t-large", f"Theorem 1: the distance to the limit shrinks with the number of iterations (Spearman "
                        f"rho of |ratio/limit - 1| vs epoch, per graph at m = {m_big})", rho_seed, "<", 0.0, kind="paper",
                        source=thm1_regime, threshold_source="0: no trend", include=include),
        claims.per_seed("theorem2-L-over-t-to-infinity", f"Theorem 2 with L / t -> infinity: at t = {T2} epochs the ratio grows with "
                        f"every step of L over {Ls} (smallest increase of the ratio between consecutive L)", growth, ">", 0.0,
                        kind="paper", source=thm2, threshold_source="0: not growing", include=include,
                        reading="'L grows sufficiently quickly' read as L / t -> infinity: t held fixed while L grows; the ratio "
                                f"at the largest L is {float(np.median(ratio_L[:, -1])):.3g} against the Theorem 1 limit {limit0:g}"),
        claims.per_seed("theorem2-L-proportional-to-t-bounded", f"L proportional to t is not enough: along L = {r:g} t (pairs (t, L) = "
                        f"{[(t, L) for L, t in pairs_B]}) the ratio stays below its finite limit (e^(r(b1+b2)/s) - 1)/(e^(r b1/s) - 1) = "
                        f"{limit_B:.4g}, s = b2 + K b1 (largest ratio over the pairs, over that limit)",
                        np.nanmax(ratio_B, 1) / limit_B if pairs_B else np.full(S, np.nan), "<=", 1.0 + tol, kind="extension",
                        threshold_source="the expansion's limit along L = r t, plus config.tolerance", include=include,
                        why="the theorem needs L to outgrow t; along L = r t the expansion tends to a finite value, so the joint "
                            "regime decides whether the ratio diverges"),
        claims.per_seed("expansion-is-the-product-of-level-sums", "the logits the engine computes by (2.1) equal the product over "
                        "levels of each class's pathway sums of lambda (largest relative difference over conditions and epochs)",
                        identity_err, "<=", 1e-12, kind="sanity", threshold_source="float64 rounding",
                        why="an identity of the model on this family with eta = 1: Z_j = prod_l sum_{F in class j} lambda_F, which "
                            "the expansion evaluates at lambda = c x counts; agreement with the expansion is a check of this identity"),
        claims.check("expansion-disjoint-graphs", f"the text's expansion matches the ratio on graphs whose classes drew disjoint "
                     f"class-specific nodes ({n_disjoint} of {n_graphs} graphs): largest relative error over every condition at "
                     f"t = {T} (L sweep also at t = {T2})", worst_disjoint, "<=", tol, kind="sanity", threshold_source="config.tolerance",
                     why="with disjoint class nodes the expansion is the level-sum identity at lambda = c x counts plus the initial "
                         "factors (U(0, 0.01) against c t): true by construction up to those"),
        claims.per_seed("appendix-example-logits", "the appendix's worked example: simulated f_j on each class's input equal a^2 N1 "
                        "(7N1 + 5N2 + 2N3), a^2 N2 (5N1 + 7N2 + 2N3), 2a^2 N3 (N1 + N2 + N3) + a N3 f' at the simulated counts "
                        "(largest relative error over time)", app_err, "<=", 1e-12, kind="sanity", threshold_source="float64 rounding",
                        why="the graph (tasks.neurashed.appendix_example) is reconstructed from these formulas, which the text gives "
                            "without the graph; the simulation checks that Algorithm 1 and (2.1) produce them"),
        claims.per_seed("appendix-example-update", "the appendix's update at C1: the changes of f_1, f_2, f_3 equal 7a^2 N1 + a^2 "
                        "(7N1 + 5N2 + 2N3 + 7), 5 a^2 N2 and 2 a^2 N3 (largest error over time, relative to the largest change)",
                        app_derr, "<=", 1e-12, kind="sanity", threshold_source="float64 rounding",
                        why="the text's algebra on its own model, checked by one extra update of the learner"),
        claims.per_seed("appendix-example-ordering", "the appendix's ordering: an update at C1 moves C2's logit (5 a^2 N2) more than "
                        "C3's (2 a^2 N3) at the end of training (classes drawn with equal probability; Delta f_2 / Delta f_3)",
                        d_end[:, 1] / d_end[:, 2], ">", 1.0, kind="paper", threshold_source="the text's inequality",
                        source=claims.source("Note that in generally 5a^2 N2 > 2a^2 N3 unless N3 is really large", "appendix, after Theorem 2"),
                        reading="checked at the simulated counts of i.i.d. class draws (N2 and N3 of the same size)"),
    ]
    numbers = {
        "seeds": config.seeds,
        "num_classes": K,
        "epochs": T,
        "c": config.c,
        "theorem1_over_m": m_rows,
        "theorem1_over_b": pair_rows,
        "theorem1_median_distance_vs_epoch_at_largest_m": {str(e): float(dist_t[e - 1]) for e in sorted({1, min(10, T), T})},
        "theorem2_over_L": L_rows,
        "theorem2_over_L_final_epoch": L_rows_final,
        "theorem2_regime_L_over_t_to_infinity": {"t": T2, "L": Ls, "ratio_median": np.median(ratio_L, 0).tolist(), "expansion": expansion_A},
        "theorem2_regime_L_proportional_to_t": {"r": r, "pairs_t_L": [(t, L) for L, t in pairs_B],
                                                 "ratio_median": np.median(ratio_B, 0).tolist() if pairs_B else [],
                                                 "expansion": expansion_B, "finite_limit": limit_B},
        "smallest_ratio": float(all_ratios.min()),
        "expansion_largest_median_error_over_L_all_graphs": float(worst_expansion),
        "expansion_largest_error_disjoint_graphs": worst_disjoint,
        "level_sum_identity_largest_relative_error": float(identity_err.max()),
        "appendix_example": {"a": config.appendix_a, "counts_end_median": np.median(app["counts"][:, -1], 0).tolist(),
                             "delta_at_c1_end_median": np.median(d_end, 0).tolist(),
                             "largest_relative_error_logits": float(app_err.max()), "largest_relative_error_update": float(app_derr.max())},
    }

    data_vars = {}
    for key, (ratio, counts, overlap, identity, diverged_at) in results.items():
        kind, m, b1, b2, L = key
        name = f"m{m}_b{b1}-{b2}_L{L}"
        cond = f"condition m = {m} nodes per level, b1 = {b1}, b2 = {b2}, L = {L} ({config.seeds} random graphs)"
        data_vars[f"ratio_{name}"] = (("seed", "epoch", "update_class", "other_class"), ratio,
                                      {"units": "1", "long_name": f"Delta Z_j(x_j) / Delta Z_j'(x_j') after one more update at class j "
                                                                  f"(j: update_class, j': other_class; NaN at j' = j), {cond}"})
        data_vars[f"expansion_{name}"] = (("seed", "epoch"), _expansion(config, counts, b1, b2, L),
                                          {"units": "1", "long_name": "the text's leading-order expansion of Delta Z_j / Delta Z_j' at "
                                                                      "the simulated class counts, mean over class pairs (j, j' != j); "
                                                                      f"NaN at epoch 0; {cond}"})
        data_vars[f"counts_{name}"] = (("seed", "epoch", "class"), counts,
                                       {"units": "1", "long_name": f"updates so far whose batch held the class's input (batch 1: updates at the class), {cond}"})
        data_vars[f"overlap_{name}"] = ("seed", overlap.astype(np.int8),
                                        {"units": "1", "long_name": "1 where two classes drew a common class-specific node at some "
                                                                    f"level (the finite-m effect), else 0; {cond}"})
        data_vars[f"level_sum_identity_error_{name}"] = (
            "seed", identity,
            {"units": "1", "long_name": "largest relative difference |Z_j - prod_l sum_{F in class j} lambda_F| / |Z_j| over epochs "
                                       f"and classes (Z_j: class j's logit on its own input by (2.1)), {cond}"})
        data_vars[f"diverged_at_{name}"] = ("seed", diverged_at,
                                            {"units": "step", "long_name": f"first step whose update was non-finite (-1: none), {cond}"})
    runs = np.stack([np.asarray(results[k][4]) for k in results])  # (condition, seed): first non-finite step or -1
    data_vars["diverged_at"] = ("seed", np.where(include, -1, np.where(runs >= 0, runs, np.iinfo(np.int32).max).min(0)).astype(np.int32),
                                {"units": "step", "long_name": "the earliest first non-finite update over every condition's run of this "
                                                               "seed index (each condition's in diverged_at_<condition>); -1: none"})
    appendix_text = {
        "counts": "updates so far at each class C1, C2, C3 (N1, N2, N3)",
        "own_logits": "simulated f_j: class Cj's logit on its own input",
        "delta_at_c1": "simulated change of each f_j (on its own input) after one more update at C1 (not kept)",
        "formula_logits": "the text's f_1 = a^2 N1 (7N1 + 5N2 + 2N3), f_2 = a^2 N2 (5N1 + 7N2 + 2N3), f_3 = 2a^2 N3 (N1 + N2 + N3) "
                          "+ a N3 f' (f' = 5 a N3, class 3's own first-level nodes) at the simulated counts",
        "formula_delta_at_c1": "the text's changes after an update at C1, 7a^2 N1 + a^2 (7N1 + 5N2 + 2N3 + 7), 5a^2 N2, 2a^2 N3, "
                               "at the simulated counts",
    }
    for key in ("counts", "own_logits", "delta_at_c1", "formula_logits", "formula_delta_at_c1"):
        data_vars[f"appendix_{key}"] = (("seed", "appendix_step", "class3"), appendix[key],
                                        {"units": "1", "long_name": f"appendix's worked example: {appendix_text[key]}"})
    ds = xr.Dataset(
        data_vars, coords={"seed": np.arange(config.seeds),
                           "epoch": ("epoch", epochs, {"units": "epoch", "long_name": "epochs t done at the record (each class "
                                                                                     "updated once per epoch, batch size 1)"}),
                           "appendix_step": ("appendix_step", appendix["steps"],
                                             {"units": "step", "long_name": "updates of Algorithm 1 done at the record, the "
                                                                            "appendix's worked example"})},
        attrs={"g_plus": f"x + {config.c}", "g_minus": "x", "eta": "held at 1",
               "init": f"U(0, {config.init_high})", "batch_size": 1, "sampling": "epoch: every class once per epoch",
               "num_classes": K, "ratio": "Delta Z_j(x_j) / Delta Z_j'(x_j') after one update at class j",
               "ms": list(config.ms), "b_pairs": list(config.b_pairs), "levels_sweep": list(config.levels_sweep),
               "proportional_ratio": r, "appendix_a": config.appendix_a,
               "appendix_rules": "g+ = x + a, g- = x, factors from 0, eta = 1, batch 1, classes drawn i.i.d. uniformly"},
    )
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(config, summary_of, key_of, m_big, b1_0, b2_0, L0), numbers=numbers)


def _figures(config, summary_of, key_of, m_big, b1_0, b2_0, L0) -> dict:
    fig, axes = plots.figure(1, 3, width=4.0, height=3.4)
    epochs = np.arange(config.epochs + 1)
    every = sorted(set((np.geomspace(1, config.epochs, 16).astype(int) - 1).tolist()))  # log-spaced markers
    ax = axes[0, 0]
    for k, m in enumerate(config.ms):
        sim, theory, limit, _ = summary_of(key_of(m, b1_0, b2_0, L0))
        ax.fill_between(epochs[1:], np.percentile(sim[:, 1:], 25, 0), np.percentile(sim[:, 1:], 75, 0), color=plots.color(k), alpha=0.15, linewidth=0)
        ax.plot(epochs[1:], np.median(sim[:, 1:], 0), "o", color=plots.color(k), markerfacecolor="none", markevery=every, label=f"m = {m}")
    ax.plot(epochs[1:], np.nanmean(theory[:, 1:], 0), "-", color="0.2", label="expansion (m -> inf)")
    ax.axhline(limit, color="0.2", linestyle="--", linewidth=1, label=f"limit (b1+b2)/b1 = {limit:g}")
    ax.set_xscale("log")
    ax.set_xlabel("epochs t")
    ax.set_ylabel("Delta Z_j / Delta Z_j'")
    ax.set_title(f"Theorem 1 over m (b1={b1_0}, b2={b2_0}, L={L0})\no: median over graphs, band: quartiles")
    ax.legend(loc="best", fontsize=7)
    ax = axes[0, 1]
    for k, (b1, b2) in enumerate(config.pairs):
        sim, theory, limit, _ = summary_of(key_of(m_big, b1, b2, L0))
        ax.plot(epochs[1:], np.median(sim[:, 1:], 0), "o", color=plots.color(k), markerfacecolor="none", markevery=every)
        ax.plot(epochs[1:], np.nanmean(theory[:, 1:], 0), "-", color=plots.color(k), label=f"b1={b1}, b2={b2}")
        ax.axhline(limit, color=plots.color(k), linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("epochs t")
    ax.set_ylabel("Delta Z_j / Delta Z_j'")
    ax.set_title(f"Theorem 1 over (b1, b2), m = {m_big}\nline: expansion, dashed: limit, o: median")
    ax.legend(loc="best", fontsize=7)
    ax = axes[0, 2]
    for k, epoch in enumerate(sorted({config.theorem2_epoch, config.epochs})):
        sims, ths = [], []
        for L in config.levels_sweep:
            sim, theory, limit, _ = summary_of(key_of(m_big, b1_0, b2_0, L))
            sims.append(sim[:, epoch]), ths.append(np.nanmean(theory[:, epoch]))
        sims = np.array(sims)
        ax.plot(config.levels_sweep, ths, "-", color=plots.color(k), label=f"expansion, t = {epoch}")
        ax.fill_between(config.levels_sweep, sims.min(1), sims.max(1), color=plots.color(k), alpha=0.2, linewidth=0)
        ax.plot(config.levels_sweep, np.median(sims, 1), "o", color=plots.color(k), markerfacecolor="none", label=f"simulation, t = {epoch}")
    ax.axhline((b1_0 + b2_0) / b1_0, color="0.3", linestyle="--", linewidth=1, label="Theorem 1 limit")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("levels L")
    ax.set_ylabel("Delta Z_j / Delta Z_j'")
    ax.set_title(f"Theorem 2: growth with depth\n(m = {m_big}; band: min-max over graphs)")
    ax.legend(loc="upper left", fontsize=7)
    return {"elasticity_ratio": Figure(fig, "Delta Z_j / Delta Z_j' over training: over m (left), over (b1, b2) (middle), over "
                                            "depth L (right); markers: simulation, lines: the text's expansion, dashed: limits")}


EXPERIMENT = Experiment(
    name="neurashed-elasticity",
    work="Su",
    description="Theorems 1-2: Delta Z_j / Delta Z_j' after an update at class j vs (b1+b2)/b1 over m, b1, b2, t, and its growth with depth L",
    config=NeurashedElasticityConfig,
    run=run,
)
"""Registers ``jaxdyn run neurashed-elasticity``: Su's Theorems 1-2, the local elasticity of a neurashed over m, b1, b2, t and depth L."""
