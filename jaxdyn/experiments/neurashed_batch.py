"""neurashed-batch: implicit regularization -- small batches learn sparser feature pathways.

Source: Su (arXiv 2112.09741), section 3, "Implicit regularization", Figures 3 and 4. With a
small batch, nodes that fire in many samples (features common to a class) fire in most updates
and grow; features peculiar to some samples fire rarely and shrink, so the learned pathway is
sparse. With a large batch, nearly every node of the class fires in every update and all grow
together: a dense pathway.

The same graphs are trained by Algorithm 1 (:class:`jaxdyn.models.neurashed.NeurashedLearner`,
through the engine) with batch sizes ``batch_sizes`` (epoch sampling: each of the 8 input types
once per epoch; B = 8 is full-batch gradient descent), with the appendix's multiplicative rules
g+ = 1.022^(11/4) x, g- = 1.022^(-1/4) x from lambda ~ U(0, 0.01). Graphs:

- ``figure5``: the Figure 5 graph (with the 7th node's slower g+), seeds differ in the initial
  factors and the batch order;
- ``family``: random graphs of :func:`jaxdyn.tasks.neurashed.pathway_family_description`
  (2 classes x 4 sample types; per level one shared node, 2 class cores and a pool of 6
  peculiar nodes per class of which each type fires 2), one draw per seed.

Sparsity of a class's learned pathway at one level: take the amplification factors of the
nodes in the union of the class's pathways, normalise them to a distribution p, and report the
effective fraction exp(H(p)) / n (1: all equal, dense; 1/n: one node holds everything). The
summary averages it over classes and levels, per graph and seed. Also the share of lambda mass on
the class's core (nodes firing for every sample of the class).

Theory line: with multiplicative rules, log lambda_F(t) = log lambda_F(0) + k_F log a+ +
(t - k_F) log a-, where k_F counts the updates whose batch fired F. Its expectation under epoch
sampling is t P(F in a batch of B of the 8 types) = t (1 - C(8 - n_F, B) / C(8, B)) with n_F
the types firing F (:func:`jaxdyn.theory.neurashed.expected_lambda`); this predicts the
effective fraction from lambda(0) (exact for B = 1 and B = 8 at epoch ends, where k_F is
deterministic).

Comparisons at equal iterations (every B runs ``num_steps``) and at equal samples (B runs
``num_steps * max(B) / B``). Every batch size starts from the same initial factors per seed
(paired comparison), drawn from ``key(17)`` split per seed; members of all batch sizes share
one compilation per regime (the batch size is per-member data). float64 (x64 locally).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.engine import Record
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.models import neurashed as nm
from jaxdyn.tasks import neurashed as nt
from jaxdyn.theory import neurashed as th

NUM_TYPES = 8
GRAPHS = ("figure5", "family")


@dataclasses.dataclass(frozen=True)
class NeurashedBatchConfig(Config):
    """Configuration of neurashed-batch."""

    seeds: int = param(8, "seeds per graph (initial factors, batch orders; one random family graph per seed)", min=1, max=4096)
    batch_sizes: tuple[int, ...] = param((1, 2, 4, 8), "batch sizes B compared (divisors of the 8 input types; 8 = full batch)", choices=(1, 2, 4, 8), min_len=2)
    num_steps: int = param(400, "iterations at equal iterations (a multiple of 8)", min=8, max=20_000)
    base: float = param(1.022, "base a of g+ = a^(11/4) x, g- = a^(-1/4) x", min=1.0, max=2.0, min_exclusive=True)
    init_high: float = param(0.01, "initial lambda ~ U(0, init_high)", min=0.0, max=1.0, min_exclusive=True)
    family_pool: int = param(6, "family graphs: peculiar-node pool per class and level", min=2, max=64)
    family_peculiar: int = param(2, "family graphs: peculiar nodes fired by each sample type", min=1, max=64)

    @classmethod
    def quick(cls) -> "NeurashedBatchConfig":
        return cls(seeds=4, batch_sizes=(1, 8), num_steps=200)

    def check(self) -> None:
        if self.num_steps % NUM_TYPES:
            raise ConfigError(f"num_steps: must be a multiple of the 8 input types (whole epochs), got {self.num_steps}")
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise ConfigError("batch_sizes: listed twice")
        if self.family_peculiar > self.family_pool:
            raise ConfigError(f"family_peculiar: must be <= family_pool ({self.family_pool}), got {self.family_peculiar}")
        if self.num_steps * max(self.batch_sizes) // min(self.batch_sizes) * self.base_rate_bound() > 650:
            raise ConfigError(f"num_steps: {self.num_steps} x {max(self.batch_sizes) // min(self.batch_sizes)} steps at equal samples would overflow float64 amplification factors; lower num_steps")

    def base_rate_bound(self) -> float:
        return (11 / 4) * math.log(self.base)


@dataclasses.dataclass(frozen=True)
class LambdaLevels:
    """Observable: the amplification factors of every level, ``{"lambda_level{l}": (n_l,)}``
    (the text's 1-based levels), and how many updates fired each node, ``{"fired_level{l}"}``."""

    num_levels: int

    @property
    def dims(self):
        return {f"{kind}_level{l + 1}": (f"node_level{l + 1}",) for l in range(self.num_levels) for kind in ("lambda", "fired")}

    def __call__(self, snap):
        out = {f"lambda_level{l + 1}": lam for l, lam in enumerate(snap.params.lam)}
        out.update({f"fired_level{l + 1}": k for l, k in enumerate(snap.state.fired.lam)})
        return out


def _graphs(config: NeurashedBatchConfig):
    """The Figure 5 graph (shared by seeds) and one family graph per seed (stacked)."""
    fig5 = nt.figure5()
    fams = [nt.build(nt.pathway_family_description(1000 + s, pool=config.family_pool, peculiar=config.family_peculiar))
            for s in range(config.seeds)]
    return {
        "figure5": (fig5.graph, fig5.patterns, nm.figure5_learner(config.base, config.init_high), False),
        "family": (nt.stack([f.graph for f in fams]), nt.stack([f.patterns for f in fams]),
                   nm.NeurashedLearner(plus=nm.multiplicative(config.base ** (11 / 4)), minus=nm.multiplicative(config.base ** (-1 / 4)),
                                       lam_range=(0.0, config.init_high), eta_range=(0.0, config.init_high)),
                   True),
    }


def effective_fraction(lam: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """exp(entropy) / n of lambda restricted to ``mask``; lam (..., n), mask (n,) -> (...)."""
    w = np.where(mask, lam, 0.0)
    p = w / w.sum(-1, keepdims=True)
    h = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(-1)
    return np.exp(h) / mask.sum()


def _sparsity(lam: tuple, union, core) -> tuple[np.ndarray, np.ndarray]:
    """Mean over classes and levels of the effective fraction and the core share. lam[l]: (seed, n_l)."""
    eff, share = [], []
    for l, lam_l in enumerate(lam):
        for k in range(union[l].shape[-2]):
            u, c = union[l][..., k, :], core[l][..., k, :]
            if u.ndim == 1:
                eff.append(effective_fraction(lam_l, u))
                share.append((lam_l * c).sum(-1) / (lam_l * u).sum(-1))
            else:  # per-seed graphs
                eff.append(np.array([effective_fraction(lam_l[s], u[s]) for s in range(u.shape[0])]))
                share.append((lam_l * c).sum(-1) / (lam_l * u).sum(-1))
    return np.mean(eff, 0), np.mean(share, 0)


def _tile(tree, reps: int):
    """Repeats a per-seed tree (leading axis S) ``reps`` times: member b * S + s is seed s."""
    return jax.tree_util.tree_map(lambda x: np.concatenate([np.asarray(x)] * reps, 0), tree)


def run(config: NeurashedBatchConfig, ctx) -> Result:
    """Trains both graph kinds at every batch size (equal iterations and equal samples)."""
    S, bs_list = config.seeds, list(config.batch_sizes)
    nb, bmax = len(bs_list), max(config.batch_sizes)
    eff, share, lam_examples, diverged = {}, {}, {}, []
    task = nt.PatternSampler(max_batch=bmax, sampling="epoch")
    with jax.enable_x64(True):
        graphs = _graphs(config)
        for gname, (graph, patterns, learner, stacked) in graphs.items():
            one = nt.unstack(graph, 0) if stacked else graph
            levels = one.num_levels - 1
            keys = jax.random.split(jax.random.key(17), S)
            if stacked:
                table = [np.asarray(jax.vmap(lambda g, p, l=l: nm.pathways(g, p.first)[l])(graph, patterns)) for l in range(levels)]
                masks = [nt.class_pathway_masks(nt.unstack(graph, s), nt.unstack(patterns, s)) for s in range(S)]
                union = tuple(np.stack([m[0][l] for m in masks]) for l in range(levels))
                core = tuple(np.stack([m[1][l] for m in masks]) for l in range(levels))
                init = jax.vmap(lambda g, k: nm.init_amplification(g, k, lam_range=learner.lam_range, eta_range=learner.eta_range,
                                                                   dtype=jnp.float64))(graph, keys)
            else:
                table = [np.asarray(t) for t in nm.pathways(graph, patterns.first)[:levels]]
                union, core = nt.class_pathway_masks(graph, patterns)
                init = jax.vmap(lambda k: nm.init_amplification(graph, k, lam_range=learner.lam_range, eta_range=learner.eta_range,
                                                                dtype=jnp.float64))(keys)
            init = jax.tree_util.tree_map(np.asarray, init)
            rules = learner.rules_for(one, np.float64)
            plus = tuple(np.asarray(a) for a in rules.plus_scale.lam)
            minus = float(np.asarray(rules.minus_scale.lam[0]).ravel()[0])
            n_f = tuple(t.sum(-2) for t in table)  # (seed?, n_l): input types firing each node
            lam0 = tuple(np.asarray(x) for x in init.lam)
            record = LambdaLevels(levels)

            def members(batch, n_rep):
                seeds = list(range(n_rep * S))
                per = dict(graphs=_tile(graph, n_rep), patterns=_tile(patterns, n_rep)) if stacked else {}
                data = nt.sampler_data(seeds, batch, sampling="epoch", num_patterns=NUM_TYPES, **per)
                shared = {} if stacked else {"graph": graph, "patterns": patterns}
                return seeds, data, shared or None

            # Equal iterations: all batch sizes as members of one run.
            seeds, data, shared = members(np.repeat(bs_list, S), nb)
            res = ctx.train(learner, task, seeds=seeds, num_steps=config.num_steps, record=Record({"lam": record}, every=config.num_steps),
                            init_params=_tile(init, nb), data=data, shared=shared)
            diverged.append(res.diverged_at)
            lam_iter = [tuple(np.asarray(res.params.lam[l])[i * S:(i + 1) * S] for l in range(levels)) for i in range(nb)]
            # Equal samples: B runs num_steps * bmax / B, chunked by num_steps (one compilation for all B).
            lam_samp = []
            for b in bs_list:
                steps = config.num_steps * bmax // b
                seeds, data, shared = members(b, 1)
                r = ctx.train(learner, task, seeds=seeds, num_steps=steps, record=Record({"lam": record}, every=config.num_steps),
                              init_params=init, data=data, shared=shared, chunk_steps=config.num_steps)
                diverged.append(r.diverged_at)
                lam_samp.append(tuple(np.asarray(x) for x in r.params.lam))
            for regime, finals in (("iterations", lam_iter), ("samples", lam_samp)):
                sims, theos, shares = [], [], []
                for i, b in enumerate(bs_list):
                    steps = config.num_steps if regime == "iterations" else config.num_steps * bmax // b
                    e, sh = _sparsity(finals[i], union, core)
                    expected = tuple(th.expected_lambda(l0, n, num_types=NUM_TYPES, batch_size=b, steps=steps, plus=p, minus=minus,
                                                        sampling="epoch") for l0, n, p in zip(lam0, n_f, plus))
                    theos.append(_sparsity(expected, union, core)[0])
                    sims.append(e), shares.append(sh)
                    if regime == "iterations":
                        lam_examples[(gname, b)] = (lam0, finals[i])
                eff[(gname, regime)] = (np.stack(sims), np.stack(theos))
                share[(gname, regime)] = np.stack(shares)

    ctx.stage("analysis")
    bs = np.asarray(config.batch_sizes)
    i_small, i_large = int(np.argmin(bs)), int(np.argmax(bs))
    found, numbers = [], {"seeds": config.seeds}
    quote = claims.source("the feature pathways learned using small batches are sparser, suggesting a form of compression",
                          "section 3, 'Implicit regularization', Figures 3 and 4")
    for gname in GRAPHS:
        for regime in ("iterations", "samples"):
            sim, th_ = eff[(gname, regime)]
            diff = sim[i_large] - sim[i_small]  # (seed,)
            key = f"{gname}_{regime}"
            numbers[key] = {
                "batch_sizes": bs.tolist(),
                "effective_fraction_mean": sim.mean(1).tolist(),
                "effective_fraction_theory_mean": th_.mean(1).tolist(),
                "max_abs_theory_minus_simulation": float(np.abs(th_ - sim).max()),
                "core_share_mean": share[(gname, regime)].mean(1).tolist(),
                "seeds_sparser_with_small_batch": float((diff > 0).mean()),
            }
            found.append(claims.per_seed(
                f"{gname}-{regime}-small-batch-sparser",
                f"{gname} graph, equal {regime}: batch {bs[i_small]} learns sparser pathways than batch {bs[i_large]} "
                "(effective fraction of lambda within each class's pathway, large minus small batch)",
                diff, ">", 0.0, kind="paper", source=quote, threshold_source="0: equally sparse",
                initial=np.zeros(S)))
    data_vars = {}
    for (gname, regime), (sim, th_) in eff.items():
        data_vars[f"effective_fraction_{gname}_{regime}"] = (("batch_size", "seed"), sim)
        data_vars[f"effective_fraction_theory_{gname}_{regime}"] = (("batch_size", "seed"), th_)
        data_vars[f"core_share_{gname}_{regime}"] = (("batch_size", "seed"), share[(gname, regime)])
    for b in config.batch_sizes:
        lam0, lamf = lam_examples[("figure5", b)]
        for l in range(2):
            data_vars[f"figure5_lambda_final_B{b}_level{l + 1}"] = (("seed", f"node_level{l + 1}"), lamf[l])
    ds = xr.Dataset(
        data_vars,
        coords={"batch_size": bs, "seed": np.arange(config.seeds)},
        attrs={
            "rules": f"g+ = {config.base}^(11/4) x, g- = {config.base}^(-1/4) x (Figure 5: 7th node {config.base}^(3/4) x)",
            "sampling": "epoch (each of the 8 input types once per epoch)",
            "num_steps_equal_iterations": config.num_steps,
            "num_steps_equal_samples": f"num_steps * {bmax} / B",
            "init": f"U(0, {config.init_high})",
            "sparsity": "effective fraction exp(H(p))/n of lambda within each class's pathway nodes, mean over classes and levels",
        },
    )
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(ds, config, lam_examples), numbers=numbers)


def _figures(ds, config, lam_examples) -> dict:
    bs = ds["batch_size"].values
    fig, axes = plots.figure(1, 3, width=3.9, height=3.3)
    for j, regime in enumerate(("iterations", "samples")):
        ax = axes[0, j]
        for k, gname in enumerate(GRAPHS):
            sim = ds[f"effective_fraction_{gname}_{regime}"].values
            th_ = ds[f"effective_fraction_theory_{gname}_{regime}"].values
            ax.plot(bs, th_.mean(1), "-", color=plots.color(k), label=f"{gname} (theory, mean count)")
            ax.fill_between(bs, sim.min(1), sim.max(1), color=plots.color(k), alpha=0.2, linewidth=0)
            ax.plot(bs, sim.mean(1), "o", color=plots.color(k), markerfacecolor="none", label=f"{gname} (simulation)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(bs, [str(b) for b in bs])
        ax.set_xlabel("batch size B")
        ax.set_ylabel("effective fraction of pathway nodes\n(1 = dense, small = sparse)")
        ax.set_title(f"equal {regime}" + (f" ({config.num_steps} steps)" if regime == "iterations" else f" ({config.num_steps}x{max(bs)}/B steps)"))
        ax.legend(loc="upper left", fontsize=7)
    ax = axes[0, 2]
    names = ["x1", "x2", "x3", "x4", "x5", "x6", "x7", "h1", "h2", "h3"]
    width = 0.8 / 2
    for k, b in enumerate((min(bs), max(bs))):
        lam0, lamf = lam_examples[("figure5", int(b))]
        v = np.concatenate([lamf[0][0, :7] / lamf[0][0, :7].sum(), lamf[1][0, :3] / lamf[1][0, :3].sum()])
        ax.bar(np.arange(10) + (k - 0.5) * width, v, width, color=plots.color(k), label=f"B = {b}")
    ax.set_xticks(np.arange(10), names)
    ax.set_ylabel("share of lambda within its level")
    ax.set_title("Figure 5 graph, seed 0:\nlearned class-1 pathway (equal iterations)")
    ax.legend(loc="upper left")
    ax.set_ylim(0, 1.15)
    return {"sparsity_vs_batch": Figure(fig, "effective fraction of pathway nodes vs batch size at equal iterations and equal "
                                             "samples (markers: simulation, band: seeds, lines: mean-count theory); right: "
                                             "learned class-1 pathway of the Figure 5 graph")}


EXPERIMENT = Experiment(
    name="neurashed-batch",
    work="Su",
    description="implicit regularization: small batches learn sparser neurashed pathways than large batches (Figures 3-4)",
    config=NeurashedBatchConfig,
    run=run,
)
