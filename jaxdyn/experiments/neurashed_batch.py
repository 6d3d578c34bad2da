"""neurashed-batch: implicit regularization -- small batches learn sparser feature pathways.

Source: Su (arXiv 2112.09741), section 3, "Implicit regularization", Figures 3 and 4. With a
small batch, nodes that fire in many samples (features common to a class) fire in most updates
and grow; features peculiar to some samples fire rarely and shrink, so the learned pathway is
sparse. With a large batch, nearly every node of the class fires in every update and all grow
together: a dense pathway.

The same graphs are trained by Algorithm 1 (:class:`jaxdyn.models.neurashed.NeurashedLearner`,
through the engine) with batch sizes ``batch_sizes`` 1, 2, 4, 8, 16, with the appendix's
multiplicative rules g+ = 1.022^(11/4) x, g- = 1.022^(-1/4) x from lambda ~ U(0, 0.01).
Mini-batches are drawn i.i.d. with replacement from the 8 input types (``sampling="iid"``): with
epoch sampling B = 8 is the full batch, every node fires in every step and B = 16 does not
exist; with replacement the chance that a node fires in a step, 1 - (1 - n_F/8)^B, rises
smoothly with B, so the trend over B is defined. ``sampling="epoch"`` (B dividing 8) is the
landed protocol. Graphs:

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
(t - k_F) log a-, where k_F counts the updates whose batch fired F (the learner counts it). Its
expectation is t P(F in a batch) with P = 1 - (1 - n_F/8)^B under i.i.d. sampling and
1 - C(8 - n_F, B) / C(8, B) under epoch sampling, n_F the types firing F
(:func:`jaxdyn.theory.neurashed.expected_lambda`): the mean-count line. With the counted k_F the
closed form is exact (a sanity check of the learner).

The claims are the trend over every batch size, per seed: the Spearman correlation between B
and the effective fraction (a paired comparison: every B starts from the seed's factors) must be
positive, on both graphs, at equal iterations and at equal samples; numbers give the median and
a seed-bootstrap 95% interval at every B. Beyond the paper: neural collapse, which the text
links to small-batch training -- the within-class variability of the top-level scores,
NC1 = tr(Sigma_W) / tr(Sigma_B) (:func:`jaxdyn.analysis.collapse.within_class_variability`), over
training at every B. results.nc stores every family graph (edges, firing rules, patterns) and
the factors at the start and at the end of every run.

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
import scipy.stats
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn.analysis.collapse import within_class_variability
from jaxdyn.engine import Record
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.experiments.fields import NeurashedRulesFields
from jaxdyn.models import neurashed as nm
from jaxdyn.tasks import neurashed as nt
from jaxdyn.theory import neurashed as th

NUM_TYPES = 8
"""The input types (sample patterns) of both graphs: 2 classes x 4 types, uniform. ``num_steps``
must be a multiple of it, and with epoch sampling every batch size must divide it."""
GRAPHS = ("figure5", "family")
"""The graphs every batch size is trained on, in report order: ``figure5`` (Su's Figure 5 graph) and
``family`` (a random graph of :func:`jaxdyn.tasks.neurashed.pathway_family_description` per seed)."""


@dataclasses.dataclass(frozen=True)
class NeurashedBatchConfig(NeurashedRulesFields, Config):
    """Configuration of neurashed-batch."""

    seeds: int = param(8, "seeds per graph (initial factors, batch orders; one random family graph per seed)", min=1, max=4096)
    batch_sizes: tuple[int, ...] = param((1, 2, 4, 8, 16), "batch sizes B compared (with epoch sampling: divisors of the 8 input types)", min=1, max=256, min_len=2)
    sampling: str = param("iid", "mini-batches: 'iid' (B types with replacement) or 'epoch' (each type once per epoch; B divides 8)", choices=("iid", "epoch"))
    num_steps: int = param(400, "iterations at equal iterations (a multiple of 8)", min=8, max=20_000)
    record_every: int = param(20, "iterations between records of the top-level scores (equal iterations)", min=1, max=20_000)
    family_pool: int = param(6, "family graphs: peculiar-node pool per class and level", min=2, max=64)
    family_peculiar: int = param(2, "family graphs: peculiar nodes fired by each sample type", min=1, max=64)

    @classmethod
    def quick(cls) -> NeurashedBatchConfig:
        return cls(seeds=4, batch_sizes=(1, 4, 16), num_steps=200)

    def check(self) -> None:
        if self.num_steps % NUM_TYPES:
            raise ConfigError(f"num_steps: must be a multiple of the 8 input types (whole epochs), got {self.num_steps}")
        if self.num_steps % self.record_every:
            raise ConfigError(f"record_every: must divide num_steps ({self.num_steps}), got {self.record_every}")
        if self.sampling == "epoch" and any(NUM_TYPES % b for b in self.batch_sizes):
            raise ConfigError(f"batch_sizes: must divide the 8 input types with sampling='epoch', got {list(self.batch_sizes)}")
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise ConfigError("batch_sizes: listed twice")
        if self.family_peculiar > self.family_pool:
            raise ConfigError(f"family_peculiar: must be <= family_pool ({self.family_pool}), got {self.family_peculiar}")
        if self.num_steps * max(self.batch_sizes) // min(self.batch_sizes) * self.base_rate_bound() > 650:
            raise ConfigError(f"num_steps: {self.num_steps} x {max(self.batch_sizes) // min(self.batch_sizes)} steps at equal samples would overflow float64 amplification factors; lower num_steps")

    def base_rate_bound(self) -> float:
        """ln g+ = (11/4) ln ``base``: the largest growth of a log amplification factor in one update.
        :meth:`check` bounds the longest run's steps times it (650, under float64's ln max of
        about 709) so the factors stay finite."""
        return (11 / 4) * math.log(self.base)


@dataclasses.dataclass(frozen=True)
class LambdaLevels:
    """Observable: the amplification factors of every level, ``{"lambda_level{l}": (n_l,)}``
    (the text's 1-based levels), and how many updates fired each node, ``{"fired_level{l}"}``."""

    num_levels: int

    @property
    def dims(self):
        out = {f"{kind}_level{l + 1}": (f"node_level{l + 1}",) for l in range(self.num_levels) for kind in ("lambda", "fired")}
        out["top_scores"] = ("input_type", "node_top")
        return out

    def __call__(self, snap):
        out = {f"lambda_level{l + 1}": lam for l, lam in enumerate(snap.params.lam)}
        out.update({f"fired_level{l + 1}": k for l, k in enumerate(snap.state.fired.lam)})
        graph = snap.state.graph
        s, _ = nm.scores(graph, snap.params, nm.pathways(graph, snap.data["patterns"].first))
        out["top_scores"] = s[-1]  # the top level with factors: the 'high-level features'
        return out


def _graphs(config: NeurashedBatchConfig):
    """The Figure 5 graph (shared by seeds) and one family graph per seed (stacked)."""
    fig5 = nt.figure5()
    fams = [nt.build(nt.pathway_family_description(1000 + s, pool=config.family_pool, peculiar=config.family_peculiar))
            for s in range(config.seeds)]
    return {
        "figure5": (fig5.graph, fig5.patterns, nm.figure5_learner(config.base, config.init_high, dtype="float64"), False),
        "family": (nt.stack([f.graph for f in fams]), nt.stack([f.patterns for f in fams]),
                   nm.NeurashedLearner(plus=nm.multiplicative(config.base ** (11 / 4)), minus=nm.multiplicative(config.base ** (-1 / 4)),
                                       lam_range=(0.0, config.init_high), eta_range=(0.0, config.init_high), dtype="float64"),
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


def _interval(values: np.ndarray) -> list[float]:
    """[median, low, high]: the median over seeds and a 95% seed-bootstrap interval of it."""
    v = np.asarray(values, np.float64)
    rng = np.random.default_rng(0)
    boots = np.median(v[rng.integers(0, v.size, (2000, v.size))], axis=1) if v.size > 1 else v
    return [float(np.median(v)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]


def run(config: NeurashedBatchConfig, ctx) -> Result:
    """Trains both graph kinds at every batch size (equal iterations and equal samples)."""
    S, bs_list = config.seeds, list(config.batch_sizes)
    nb, bmax = len(bs_list), max(config.batch_sizes)
    eff, share, exact, nc1, stored, diverged = {}, {}, {}, {}, {}, []
    task = nt.PatternSampler(max_batch=bmax, sampling=config.sampling)
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
                data = nt.sampler_data(seeds, batch, sampling=config.sampling, num_patterns=NUM_TYPES, **per)
                shared = {} if stacked else {"graph": graph, "patterns": patterns}
                return seeds, data, shared or None

            # Equal iterations: all batch sizes as members of one run, the top-level scores over training.
            seeds, data, shared = members(np.repeat(bs_list, S), nb)
            res = ctx.train(learner, task, seeds=seeds, num_steps=config.num_steps, record=Record({"lam": record}, every=config.record_every),
                            init_params=_tile(init, nb), data=data, shared=shared)
            diverged.append(res.diverged_at)
            split = lambda name: np.asarray(res.records[name]).reshape(nb, S, *res.records[name].shape[1:])  # noqa: E731
            lam_iter = [tuple(split(f"lambda_level{l + 1}")[i][:, -1] for l in range(levels)) for i in range(nb)]
            fired_iter = [tuple(split(f"fired_level{l + 1}")[i][:, -1] for l in range(levels)) for i in range(nb)]
            top = split("top_scores")  # (B, seed, time, 8, n_top)
            labels = np.asarray(patterns.label)[0] if stacked else np.asarray(patterns.label)
            nc1[gname] = within_class_variability(top, labels)  # (B, seed, time)
            stored[gname] = {"top_scores": top, "lam_final": lam_iter, "lam0": lam0}
            # Equal samples: B runs num_steps * bmax / B, chunked by num_steps (one compilation for all B).
            lam_samp, fired_samp = [], []
            for b in bs_list:
                steps = config.num_steps * bmax // b
                seeds, data, shared = members(b, 1)
                r = ctx.train(learner, task, seeds=seeds, num_steps=steps, record=Record({"lam": record}, every=config.num_steps),
                              init_params=init, data=data, shared=shared, chunk_steps=config.num_steps)
                diverged.append(r.diverged_at)
                lam_samp.append(tuple(np.asarray(x) for x in r.params.lam))
                fired_samp.append(tuple(np.asarray(r.records[f"fired_level{l + 1}"])[:, -1] for l in range(levels)))
            stored[gname]["lam_final_samples"] = lam_samp
            for regime, finals, counts in (("iterations", lam_iter, fired_iter), ("samples", lam_samp, fired_samp)):
                sims, theos, shares, errs = [], [], [], []
                for i, b in enumerate(bs_list):
                    steps = config.num_steps if regime == "iterations" else config.num_steps * bmax // b
                    e, sh = _sparsity(finals[i], union, core)
                    expected = tuple(th.expected_lambda(l0, n, num_types=NUM_TYPES, batch_size=b, steps=steps, plus=p, minus=minus,
                                                        sampling=config.sampling) for l0, n, p in zip(lam0, n_f, plus))
                    counted = tuple(th.multiplicative_lambda(l0, k, steps, p, minus) for l0, k, p in zip(lam0, counts[i], plus))
                    errs.append(max(float(np.max(np.abs(c / f - 1))) for c, f in zip(counted, finals[i])))
                    theos.append(_sparsity(expected, union, core)[0])
                    sims.append(e), shares.append(sh)
                eff[(gname, regime)] = (np.stack(sims), np.stack(theos))
                share[(gname, regime)] = np.stack(shares)
                exact[(gname, regime)] = max(errs)

    ctx.stage("analysis")
    bs = np.asarray(config.batch_sizes)
    found, numbers = [], {"seeds": config.seeds, "sampling": config.sampling}
    quote = claims.source("the feature pathways learned using small batches are sparser, suggesting a form of compression",
                          "section 3, 'Implicit regularization', Figures 3 and 4")
    include = np.all(np.concatenate([np.asarray(d).reshape(-1, S) < 0 for d in diverged], 0), 0)  # (seed,) no run of it diverged
    for gname in GRAPHS:
        for regime in ("iterations", "samples"):
            sim, th_ = eff[(gname, regime)]
            rho = np.array([scipy.stats.spearmanr(bs, sim[:, s]).statistic for s in range(S)])  # (seed,)
            key = f"{gname}_{regime}"
            numbers[key] = {
                "batch_sizes": bs.tolist(),
                "effective_fraction_median_low_high": [_interval(sim[i]) for i in range(len(bs))],
                "effective_fraction_theory_mean_count_median": np.median(th_, 1).tolist(),
                "max_abs_mean_count_theory_minus_simulation": float(np.abs(th_ - sim).max()),
                "counted_closed_form_max_relative_error": exact[(gname, regime)],
                "core_share_median": np.median(share[(gname, regime)], 1).tolist(),
                "spearman_batch_vs_effective_fraction_per_seed": rho.tolist(),
            }
            found.append(claims.per_seed(
                f"{gname}-{regime}-sparser-with-smaller-batches",
                f"{gname} graph, equal {regime}: the learned pathways are sparser the smaller the batch, over B = {bs.tolist()} "
                "(Spearman correlation of B with the effective fraction of lambda within each class's pathway, per seed)",
                rho, ">", 0.0, kind="paper", source=quote, threshold_source="0: no trend with the batch size", include=include,
                initial=np.zeros(S), reading="'small vs large batch' read as a monotone trend over the batch sizes, decided per seed "
                                             "on paired runs (same initial factors); the value at initialisation is 0 (all B start equal)"))
            found.append(claims.per_seed(
                f"{gname}-{regime}-counted-closed-form", f"{gname} graph, equal {regime}: lambda_F = lambda_F(0) a+^k_F a-^(t - k_F) "
                "with the learner's counts k_F (largest relative error over nodes and batch sizes)",
                np.full(S, exact[(gname, regime)]), "<=", 1e-9, kind="sanity", threshold_source="float64 rounding over t products",
                why="multiplicative rules make each factor a function of its firing count: checks the learner's update and counts"))
        n = nc1[gname]  # (B, seed, time)
        small, large = int(np.argmin(bs)), int(np.argmax(bs))
        numbers[f"{gname}_neural_collapse"] = {
            "batch_sizes": bs.tolist(), "nc1_initial_median": np.median(n[:, :, 0], 1).tolist(),
            "nc1_final_median_low_high": [_interval(n[i, :, -1]) for i in range(len(bs))]}
        with np.errstate(divide="ignore", invalid="ignore"):
            found.append(claims.per_seed(
                f"{gname}-collapse-small-vs-large-batch", f"{gname} graph, beyond the paper: the top-level scores of one class's "
                f"samples collapse more with batch {bs[small]} than with batch {bs[large]} (log10 of NC1 = tr Sigma_W / tr Sigma_B "
                "at the end, large minus small batch)", np.log10(n[large, :, -1]) - np.log10(n[small, :, -1]), ">", 0.0,
                kind="extension", threshold_source="0: as much collapse at both batch sizes", include=include,
                initial=np.log10(n[large, :, 0]) - np.log10(n[small, :, 0]),
                why="the text says small-batch training implies 'vanishing variability in their high-level features' and links it "
                    "to neural collapse (Papyan et al. 2020); NC1's trace ratio measures it scale-free"))
            found.append(claims.per_seed(
                f"{gname}-collapse-over-training", f"{gname} graph: at batch {bs[small]} the within-class variability of the "
                "top-level scores falls during training (log10 NC1, end minus start)", np.log10(n[small, :, -1]) - np.log10(n[small, :, 0]),
                "<", 0.0, kind="extension", threshold_source="0: no change", include=include, initial=np.zeros(S),
                why="neural collapse is a trend over training, not a property of the initial factors"))
    numbers["sparsity_table"] = _table(numbers, bs)

    data_vars = {}
    graph_text = {"figure5": "the Figure 5 graph", "family": "the seed's family graph"}
    regime_text = {"iterations": f"at equal iterations (every B runs {config.num_steps} steps)",
                   "samples": f"at equal samples (B runs {config.num_steps} x {bmax} / B steps)"}
    for (gname, regime), (sim, th_) in eff.items():
        where = f"{graph_text[gname]}, end of training {regime_text[regime]}"
        data_vars[f"effective_fraction_{gname}_{regime}"] = (
            ("batch_size", "seed"), sim,
            {"units": "1", "long_name": f"effective fraction exp(H(p))/n of the learned lambda within each class's pathway nodes "
                                       f"(p: lambda normalised over them, n: their count), mean over classes and levels; {where}"})
        data_vars[f"effective_fraction_theory_{gname}_{regime}"] = (
            ("batch_size", "seed"), th_,
            {"units": "1", "long_name": "effective fraction exp(H(p))/n, mean over classes and levels, of the mean-count theory's "
                                       "lambda_F(0) a+^E[k_F] a-^(t - E[k_F]), E[k_F] = t P(F in a batch), from the seed's initial "
                                       f"factors; {where}"})
        data_vars[f"core_share_{gname}_{regime}"] = (
            ("batch_size", "seed"), share[(gname, regime)],
            {"units": "1", "long_name": "share of the lambda mass of each class's pathway nodes on the class's core (nodes firing for "
                                       f"every input type of the class), mean over classes and levels; {where}"})
    for gname, st in stored.items():
        data_vars[f"nc1_{gname}"] = (("batch_size", "seed", "time"), nc1[gname],
                                     {"units": "1", "long_name": f"NC1 = tr(Sigma_W) / tr(Sigma_B) of the top level's scores S_F over the "
                                                                 f"8 input types (2 classes), {graph_text[gname]}, equal iterations "
                                                                 "(NaN where the class means coincide)"})
        data_vars[f"top_scores_{gname}"] = (("batch_size", "seed", "time", "input_type", f"node_top_{gname}"), st["top_scores"],
                                            {"units": "1", "long_name": f"scores S_F of the top level with amplification factors (below "
                                                                        f"the class nodes) for each input type, {graph_text[gname]}, "
                                                                        "equal iterations"})
        for l in range(len(st["lam0"])):
            node = f"node_{gname}_level{l + 1}"
            data_vars[f"lambda_initial_{gname}_level{l + 1}"] = (
                ("seed", node), st["lam0"][l],
                {"units": "1", "long_name": f"initial amplification factors lambda_F of level {l + 1}, {graph_text[gname]} "
                                           f"(U(0, {config.init_high}), the same for every batch size)"})
            data_vars[f"lambda_final_{gname}_level{l + 1}"] = (
                ("batch_size", "seed", node), np.stack([x[l] for x in st["lam_final"]]),
                {"units": "1", "long_name": f"amplification factors lambda_F of level {l + 1}, {graph_text[gname]}, end of training "
                                           f"{regime_text['iterations']}"})
            data_vars[f"lambda_final_equal_samples_{gname}_level{l + 1}"] = (
                ("batch_size", "seed", node), np.stack([x[l] for x in st["lam_final_samples"]]),
                {"units": "1", "long_name": f"amplification factors lambda_F of level {l + 1}, {graph_text[gname]}, end of training "
                                           f"{regime_text['samples']}"})
    fam_graph, fam_patterns = graphs["family"][0], graphs["family"][1]
    for l, a in enumerate(fam_graph.adjacency):
        top = l + 1 == len(fam_graph.adjacency)
        data_vars[f"family_edges_{l + 1}_to_{l}"] = (
            ("seed", f"node_family_level{l + 2}" if not top else "class", f"node_family_level{l + 1}"), np.asarray(a).astype(np.int8),
            {"units": "1", "long_name": "family graph of the seed: 1 where the "
                                       + ("class node" if top else f"level-{l + 2} node") + f" depends on the level-{l + 1} node, else 0"})
    for l, (code, k) in enumerate(zip(fam_graph.rule, fam_graph.rule_k)):
        data_vars[f"family_rule_level{l + 2}"] = (
            ("seed", f"node_family_level{l + 2}"), np.asarray(code),
            {"units": "1", "long_name": f"family graph of the seed: firing-rule code of each level-{l + 2} node (0: any dependent "
                                       "fires, 1: all, 2: at least k)"})
        data_vars[f"family_rule_k_level{l + 2}"] = (
            ("seed", f"node_family_level{l + 2}"), np.asarray(k),
            {"units": "1", "long_name": f"family graph of the seed: the k of 'at least k' of each level-{l + 2} node (read only where "
                                       "the rule code is 2)"})
    data_vars["family_first_level_pattern"] = (
        ("seed", "input_type", "node_family_level1"), np.asarray(fam_patterns.first).astype(np.int8),
        {"units": "1", "long_name": "family graph of the seed: 1 where the first-level node fires for the input type, else 0"})
    data_vars["family_label"] = (("seed", "input_type"), np.asarray(fam_patterns.label),
                                 {"units": "1", "long_name": "family graph of the seed: class of each input type"})
    runs = np.concatenate([np.asarray(d).reshape(-1, S) for d in diverged], 0)  # (run, seed): first non-finite step or -1
    data_vars["diverged_at"] = ("seed", np.where(include, -1, np.where(runs >= 0, runs, np.iinfo(np.int32).max).min(0)).astype(np.int32),
                                {"units": "step", "long_name": "the earliest first non-finite update over every run of this seed (any "
                                                               "graph, batch size or regime); -1: none"})
    ds = xr.Dataset(
        data_vars,
        coords={"batch_size": ("batch_size", bs, {"units": "1", "long_name": "mini-batch size B"}), "seed": np.arange(config.seeds),
                "time": ("time", np.arange(0, config.num_steps + 1, config.record_every),
                         {"units": "iteration", "long_name": "iterations of Algorithm 1 done at the record (equal-iterations runs)"})},
        attrs={
            "rules": f"g+ = {config.base}^(11/4) x, g- = {config.base}^(-1/4) x (Figure 5: 7th node {config.base}^(3/4) x)",
            "sampling": config.sampling,
            "num_steps_equal_iterations": config.num_steps,
            "num_steps_equal_samples": f"num_steps * {bmax} / B",
            "init": f"U(0, {config.init_high}), the same per seed for every batch size (key(17) split per seed)",
            "sparsity": "effective fraction exp(H(p))/n of lambda within each class's pathway nodes, mean over classes and levels",
            "nc1": "tr(Sigma_W)/tr(Sigma_B) of the top level's scores over the 8 input types (2 classes)",
            "family_graphs": "pathway_family_description(1000 + seed, pool, peculiar): edges, rules and patterns stored per seed",
        },
    )
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=_figures(ds, config), numbers=numbers)


def _table(numbers, bs) -> str:
    lines = [f"{'graph, regime':<22}" + "".join(f"{'B=' + str(b):>22}" for b in bs) + f"{'rho>0':>7}"]
    for gname in GRAPHS:
        for regime in ("iterations", "samples"):
            row = numbers[f"{gname}_{regime}"]
            cells = "".join(f"{m:>8.3f} [{lo:.3f},{hi:.3f}]" for m, lo, hi in row["effective_fraction_median_low_high"])
            frac = float(np.mean(np.asarray(row["spearman_batch_vs_effective_fraction_per_seed"]) > 0))
            lines.append(f"{gname + ', ' + regime:<22}{cells}{frac:>7.2f}")
    lines.append("effective fraction of lambda within each class's pathway: median over seeds [95% seed-bootstrap interval]; "
                 "rho>0: fraction of seeds whose Spearman(B, fraction) is positive")
    return "\n".join(lines)


def _figures(ds, config) -> dict:
    bs = ds["batch_size"].values
    fig, axes = plots.figure(1, 4, width=3.9, height=3.3)
    for j, regime in enumerate(("iterations", "samples")):
        ax = axes[0, j]
        for k, gname in enumerate(GRAPHS):
            sim = ds[f"effective_fraction_{gname}_{regime}"].values
            th_ = ds[f"effective_fraction_theory_{gname}_{regime}"].values
            ax.plot(bs, np.median(th_, 1), "-", color=plots.color(k), label=f"{gname} (theory, mean count)")
            ax.fill_between(bs, sim.min(1), sim.max(1), color=plots.color(k), alpha=0.2, linewidth=0)
            ax.plot(bs, np.median(sim, 1), "o", color=plots.color(k), markerfacecolor="none", label=f"{gname} (simulation)")
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
        l1 = ds["lambda_final_figure5_level1"].sel(batch_size=b).values[0, :7]
        l2 = ds["lambda_final_figure5_level2"].sel(batch_size=b).values[0, :3]
        ax.bar(np.arange(10) + (k - 0.5) * width, np.concatenate([l1 / l1.sum(), l2 / l2.sum()]), width, color=plots.color(k), label=f"B = {b}")
    ax.set_xticks(np.arange(10), names)
    ax.set_ylabel("share of lambda within its level")
    ax.set_title("class-1 pathway learned\n(Figure 5 graph, seed 0, equal iter.)")
    ax.legend(loc="upper left")
    ax.set_ylim(0, 1.15)
    ax = axes[0, 3]
    t = ds["time"].values
    for k, b in enumerate(bs):
        for g, style in zip(GRAPHS, ("-", "--")):
            ax.plot(t, np.nanmedian(ds[f"nc1_{g}"].sel(batch_size=b).values, 0), style, color=plots.color(k),
                    label=f"B = {b}" if g == "figure5" else None)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("NC1 = tr Sigma_W / tr Sigma_B (top level)")
    ax.set_title("neural collapse (seed median)\nsolid: Figure 5 graph, dashed: family")
    ax.legend(loc="lower left", fontsize=7)
    return {"sparsity_vs_batch": Figure(fig, "effective fraction of pathway nodes vs batch size at equal iterations and equal "
                                             "samples (markers: median simulation, band: seeds, lines: mean-count theory); the "
                                             "learned class-1 pathway of the Figure 5 graph; within-class variability of the "
                                             "top-level scores over training")}


EXPERIMENT = Experiment(
    name="neurashed-batch",
    work="Su",
    description="implicit regularization: learned neurashed pathways sparser the smaller the batch (B = 1..16, Figures 3-4); neural collapse",
    config=NeurashedBatchConfig,
    run=run,
)
"""Registers ``jaxdyn run neurashed-batch``: Su's implicit regularization, sparser neurashed pathways the smaller the batch (Figures 3-4)."""
