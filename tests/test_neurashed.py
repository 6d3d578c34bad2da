"""The neurashed model (pathways, scores, Algorithm 1 as a learner), its tasks (builder, sampler,
graph families) and its closed forms (Theorems 1-2, the appendix's worked example)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.engine import EngineConfigError, observable, train
from jaxdyn.models import neurashed as nm
from jaxdyn.tasks import neurashed as nt
from jaxdyn.theory import neurashed as th

SMALL = {
    "levels": [["a", "b", "c", "d"], ["u", "v", "w"], ["k1", "k2"]],
    "edges": {"u": ["a", "b"], "v": ["b", "c", "d"], "w": ["c", "d"], "k1": ["u", "v"], "k2": ["v", "w"]},
    "rules": {"v": "at_least:2", "w": "all"},
    "pathways": [
        {"label": "k1", "first": ["a", "b"], "fires": ["u"]},
        {"label": "k1", "first": ["a", "b", "c"], "fires": ["u", "v"]},
        {"label": "k2", "first": ["c", "d"], "fires": ["v", "w"], "weight": 2.0},
    ],
}


@pytest.fixture(scope="module")
def small():
    return nt.build(SMALL)


@pytest.fixture(scope="module")
def fig5():
    return nt.figure5()


@observable(dims={"lam_first": ("node1",), "lam_second": ("node2",), "eta": ("cls", "node2"), "fired_first": ("node1",),
                  "class_fired": ("cls",)})
def _lambdas(snap):
    """Observable of the tests: the factors of a three-level graph and the learner's counts."""
    return {"lam_first": snap.params.lam[0], "lam_second": snap.params.lam[1], "eta": snap.params.eta,
            "fired_first": snap.state.fired.lam[0], "class_fired": snap.state.class_fired}


def _state(graph, amp):
    zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(np.shape(a), jnp.int32), amp)
    return nm.NeurashedState(amp=amp, graph=jax.tree_util.tree_map(jnp.asarray, graph), fired=zeros,
                             class_fired=jnp.zeros((graph.num_classes,), jnp.int32))


def test_builder_arrays_and_patterns(small):
    g, p = small.graph, small.patterns
    assert g.widths == (4, 3, 2) and g.num_levels == 3 and g.num_classes == 2
    np.testing.assert_array_equal(np.asarray(g.adjacency[0]), [[1, 1, 0, 0], [0, 1, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_array_equal(np.asarray(g.adjacency[1]), [[1, 1, 0], [0, 1, 1]])
    np.testing.assert_array_equal(np.asarray(g.rule[0]), [nm.RULE_ANY, nm.RULE_AT_LEAST, nm.RULE_ALL])
    np.testing.assert_allclose(np.asarray(p.weight), [0.25, 0.25, 0.5])
    np.testing.assert_array_equal(np.asarray(nm.thresholds(g)[0]), [1, 2, 2])


def test_figure5_pathways_match_the_text(fig5):
    g, p = fig5.graph, fig5.patterns
    first, mid, cls = (np.asarray(t) for t in nm.pathways(g, p.first, p.label))
    fired = [tuple(int(i) + 1 for i in np.flatnonzero(row)) for row in first]
    assert fired[:4] == [(1, 2, 7), (2, 3, 7), (4, 5, 7), (5, 6, 7)]
    assert fired[4:] == [(7, 12, 13), (7, 11, 12), (7, 9, 10), (7, 8, 9)]
    # h1 fires for type a, h3 for type b, the dominant h2 for every class-1 input and never for class 2.
    np.testing.assert_array_equal(mid[:4, :3], [[1, 1, 0], [1, 1, 0], [0, 1, 1], [0, 1, 1]])
    assert not mid[:4, 3:].any() and not mid[4:, :3].any()
    np.testing.assert_array_equal(mid[4:, 3:], mid[:4, :3][:, ::-1])
    np.testing.assert_array_equal(cls.argmax(1), [0] * 4 + [1] * 4)


def test_figures12_pathways_share_as_the_text_says():
    built = nt.figures12()
    table = [np.asarray(t) for t in nm.pathways(built.graph, built.patterns.first)]
    shared = lambda a, b: sum(int((t[a] & t[b]).sum()) for t in table)  # noqa: E731
    one_a, one_b, two, three = range(4)
    # 1a and 1b share most, class 1 and 2 less, class 1 and 3 nothing; distinct at the top level.
    assert shared(one_a, one_b) > shared(one_a, two) > shared(one_a, three) == 0
    assert shared(one_b, two) > 0 and shared(two, three) > 0
    top = table[-1]
    assert (top[one_a] == top[one_b]).all() and not (top[one_a] & top[two]).any()
    np.testing.assert_array_equal(np.asarray(built.patterns.label), [0, 0, 1, 2])


def test_scores_and_logits_by_hand(small):
    g, p = small.graph, small.patterns
    lam0, lam1 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 0.25, 2.0])
    eta = np.array([[1.0, 3.0, 0.0], [0.0, 2.0, 5.0]])
    params = nm.Amplification(lam=(jnp.asarray(lam0), jnp.asarray(lam1)), eta=jnp.asarray(eta))
    S, Z = nm.scores(g, params, nm.pathways(g, p.first))
    S0, S1, Z = np.asarray(S[0]), np.asarray(S[1]), np.asarray(Z)
    # pattern 1 fires a b c; u (any of a b) and v (2 of b c d) fire, w (all of c d) does not.
    np.testing.assert_allclose(S0[1], [1, 2, 3, 0])
    np.testing.assert_allclose(S1[1], [0.5 * (1 + 2), 0.25 * (2 + 3), 0.0])
    np.testing.assert_allclose(Z[1], [1.0 * 1.5 + 3.0 * 1.25, 2.0 * 1.25])
    # pattern 2 fires c d: v = 0.25 (3 + 4), w = 2 (3 + 4); k1 sees only v, k2 both.
    np.testing.assert_allclose(S1[2], [0.0, 1.75, 14.0])
    np.testing.assert_allclose(Z[2], [3.0 * 1.75, 2.0 * 1.75 + 5.0 * 14.0])
    probs = np.asarray(nm.probabilities(g, params, p.first))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)


def test_one_update_of_algorithm1(small):
    g, p = small.graph, small.patterns
    learner = nm.NeurashedLearner(plus=nm.multiplicative(2.0), minus=nm.multiplicative(0.5), eta_plus=nm.additive(1.0),
                                  eta_minus=nm.additive(-0.25))
    params = nm.Amplification(lam=(jnp.ones(4), jnp.ones(3)), eta=jnp.asarray([[1.0, 1.0, 0.0], [0.0, 1.0, 0.1]]))
    state = _state(g, params)
    batch = lambda idx: {"x": jnp.asarray(p.first)[jnp.asarray(idx)], "label": jnp.asarray(p.label)[jnp.asarray(idx)]}  # noqa: E731
    # Batch = patterns 0 and 2: G = {a b c d} u {u v w}; edges k1<-u (pattern 0), k2<-v, k2<-w (pattern 2).
    new = learner.update(state, batch([0, 2]))
    np.testing.assert_allclose(np.asarray(new.amp.lam[0]), [2, 2, 2, 2])
    np.testing.assert_allclose(np.asarray(new.amp.lam[1]), [2, 2, 2])
    # k1<-v is not in G (v does not fire with k1 in one sample): g- = x - 0.25; k2<-w: 0.1 + 1.
    np.testing.assert_allclose(np.asarray(new.amp.eta), [[2.0, 0.75, 0.0], [0.0, 2.0, 1.1]], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(new.class_fired), [1, 1])
    np.testing.assert_array_equal(np.asarray(new.fired.eta), [[1, 0, 0], [0, 1, 1]])
    # Batch = pattern 0 only: c, d, v, w decay by half; additive g- is clipped at 0.
    new = learner.update(state, batch([0]))
    np.testing.assert_allclose(np.asarray(new.amp.lam[0]), [2, 2, 0.5, 0.5])
    np.testing.assert_allclose(np.asarray(new.amp.lam[1]), [2, 0.5, 0.5])
    np.testing.assert_allclose(np.asarray(new.amp.eta), [[2.0, 0.75, 0.0], [0.0, 0.75, 0.0]], rtol=1e-6)
    # Padding rows (label -1) change nothing, whatever their input.
    padded = {"x": jnp.asarray(p.first)[jnp.asarray([0, 2])], "label": jnp.asarray([0, -1])}
    same = learner.update(state, padded)
    for a, b in zip(jax.tree_util.tree_leaves(same), jax.tree_util.tree_leaves(new)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_engine_training_matches_the_closed_form_of_multiplicative_rules(fig5):
    # With epoch sampling and B = 1, after E epochs node F fired in exactly E * (number of
    # patterns whose pathway holds F) updates, so lambda_F = lambda_F(0) a+^k a-^(T - k).
    g, p = fig5.graph, fig5.patterns
    learner = nm.figure5_learner()
    epochs, seeds = 5, [3, 7]
    with jax.enable_x64(True):
        res = train(learner, nt.PatternSampler(max_batch=1), seeds=seeds, num_steps=8 * epochs, observables={"lam": _lambdas},
                    record_every=8 * epochs, data=nt.sampler_data(seeds, 1, num_patterns=8), shared={"graph": g, "patterns": p})
    assert res.records["lam_first"].dtype == np.float64  # x64 on: no float32 overflow of the scores
    table = [np.asarray(t) for t in nm.pathways(g, p.first, p.label)]
    np.testing.assert_array_equal(res.records["class_fired"][:, -1], [[4 * epochs, 4 * epochs]] * 2)
    np.testing.assert_array_equal(res.records["fired_first"][:, -1], np.broadcast_to(epochs * table[0].sum(0), (2, 13)))
    a = 1.022
    for level, name in ((0, "lam_first"), (1, "lam_second")):
        k = epochs * table[level].sum(0)
        plus = np.full(g.widths[level], a ** (11 / 4))
        if level == 0:
            plus[6] = a ** (3 / 4)
        expect = th.multiplicative_lambda(res.records[name][:, 0], k, 8 * epochs, plus, a ** (-1 / 4))
        np.testing.assert_allclose(res.records[name][:, -1], expect, rtol=1e-12)
    # eta of class1 <- h2 fires in every class-1 sample (4 per epoch); class1 <- h1 in 2.
    eta_k = epochs * np.array([[2, 4, 2, 0, 0, 0], [0, 0, 0, 2, 4, 2]])
    expect = th.multiplicative_lambda(res.records["eta"][:, 0], eta_k, 8 * epochs, a ** (11 / 4), a ** (-1 / 4))
    np.testing.assert_allclose(res.records["eta"][:, -1], expect * np.asarray(g.adjacency[-1]), rtol=1e-12)
    # The initial factors are U(0, 0.01) on the edges, drawn per member.
    assert 0 < res.records["lam_first"][:, 0].max() < 0.01 and not np.array_equal(*res.records["lam_first"][:, 0])


def test_members_do_not_depend_on_their_companions():
    # Stacked graphs and per-member batch sizes: swapping the members (seeds with their graphs)
    # swaps the results; one compilation serves every batch size.
    fams = [nt.theorem1_family(s, m=12, b1=2, b2=2, num_classes=2, num_levels=3) for s in (0, 1)]
    learner = nm.theorem1_learner(2.0)

    @observable(dims={"lam0": ("node",), "classes": ("cls",)})
    def obs(snap):
        return {"lam0": snap.params.lam[0], "classes": snap.state.class_fired}

    def run(order, batch_sizes, seeds):
        graphs = nt.stack([fams[i].graph for i in order])
        patterns = nt.stack([fams[i].patterns for i in order])
        data = nt.sampler_data(seeds, batch_sizes, graphs=graphs, patterns=patterns)
        return train(learner, nt.PatternSampler(max_batch=2), seeds=seeds, num_steps=12, observables={"o": obs}, record_every=4,
                     data=data)

    a, b = run([0, 1], [1, 2], [5, 6]), run([1, 0], [2, 1], [6, 5])
    np.testing.assert_array_equal(a.records["lam0"], b.records["lam0"][::-1])
    np.testing.assert_array_equal(a.records["classes"], b.records["classes"][::-1])
    assert a.records["lam0"].shape == (2, 4, 12)
    # Member 0 saw one class per step, member 1 both classes per step.
    np.testing.assert_array_equal(a.records["classes"][:, -1], [[6, 6], [12, 12]])
    # With B = 2 both classes' nodes get +c at every step; additive rule: lambda = lambda0 + 2 * 12.
    sel = np.asarray(nm.pathways(fams[1].graph, fams[1].patterns.first)[0]).any(0)
    np.testing.assert_allclose(a.records["lam0"][1, -1][sel] - a.records["lam0"][1, 0][sel], 24.0, rtol=1e-5)


def test_epoch_and_iid_sampling():
    built = nt.figure5()
    shared = {"graph": built.graph, "patterns": built.patterns}
    data = nt.sampler_data([0], 2, num_patterns=8)
    view = {**shared, **jax.tree_util.tree_map(lambda x: x[0], data)}
    task = nt.PatternSampler(max_batch=4, sampling="epoch")
    # Each epoch of 4 steps (B = 2) visits every type exactly once; padding past B.
    for epoch in range(3):
        idx = np.stack([np.asarray(task.indices(view, jax.random.key(0), jnp.int32(4 * epoch + w))) for w in range(4)])
        assert (idx[:, 2:] == -1).all()
        assert sorted(idx[:, :2].ravel().tolist()) == list(range(8))
    iid = nt.PatternSampler(max_batch=3, sampling="iid")
    counts = np.zeros(8)
    for s in range(400):
        idx = np.asarray(iid.indices(view, jax.random.key(s), jnp.int32(s)))
        counts += np.bincount(idx[:2], minlength=8)
        assert idx[2] == -1
    assert counts.sum() == 800 and counts.min() > 60  # uniform weights: about 100 each
    batch = task.batch(view, jax.random.key(0), jnp.int32(0))
    assert batch["x"].shape == (4, 13) and not np.asarray(batch["x"][2:]).any() and (np.asarray(batch["label"][2:]) == -1).all()


def test_theorem1_family_pathways():
    fam = nt.theorem1_family(3, m=40, b1=3, b2=2, num_classes=3, num_levels=4)
    g, p = fam.graph, fam.patterns
    table = [np.asarray(t) for t in nm.pathways(g, p.first, p.label)]
    for level in range(4):
        for j in range(3):
            fired = set(np.flatnonzero(table[level][j]))
            assert fired == set(fam.shared[level]) | set(fam.specific[level, j])
        # Shared nodes fire for every class; a class's own nodes for that class only.
        assert table[level][:, fam.shared[level]].all()
    assert set(np.flatnonzero(np.asarray(g.adjacency[-1])[1])) == set(fam.shared[3]) | set(fam.specific[3, 1])
    with pytest.raises(nm.GraphError, match="m: needs m >= b1 \\+ b2"):
        nt.theorem1_family(0, m=4, b1=3, b2=2, num_classes=2, num_levels=2)


def test_logits_are_products_of_level_sums_on_the_theorem1_family():
    # eta = 1 and each class's pathway joined level to level: Z_j = prod_l sum_{F in class j} lambda_F.
    fam = nt.theorem1_family(5, m=30, b1=2, b2=3, num_classes=3, num_levels=4)
    rng = np.random.default_rng(0)
    lam = tuple(rng.uniform(0.1, 2.0, 30) for _ in range(4))
    with jax.enable_x64(True):
        amp = nm.Amplification(lam=tuple(jnp.asarray(x) for x in lam), eta=jnp.asarray(np.asarray(fam.graph.adjacency[-1], float)))
        z = np.diagonal(np.asarray(nm.logits(fam.graph, amp, fam.patterns.first)))
    selected = np.stack([np.asarray(t) for t in nm.pathways(fam.graph, fam.patterns.first)])  # (L, K, m)
    np.testing.assert_allclose(z, th.level_sum_logits(lam, selected), rtol=1e-12)
    # Raising a node only class 1 selects moves class 1's logit alone.
    node = next(int(n) for n in fam.specific[2, 1] if n not in fam.specific[2, 0] and n not in fam.specific[2, 2])
    lam2 = list(lam)
    lam2[2] = lam2[2].copy()
    lam2[2][node] *= 3
    moved = th.level_sum_logits(lam2, selected) - th.level_sum_logits(lam, selected)
    assert moved[1] > 0 and moved[0] == 0 == moved[2]


def test_appendix_worked_example_is_reproduced_by_simulation():
    # Additive rules from zero factors: lambda_F = a * (updates firing F); the graph gives the
    # appendix's f_j = a^2 N1 (7 N1 + 5 N2 + 2 N3), ... and its update at C1 (5 a^2 N2, 2 a^2 N3).
    built = nt.appendix_example()
    a = 0.3
    learner = nm.NeurashedLearner(plus=nm.additive(a), minus=nm.identity(), eta_plus=nm.identity(), eta_minus=nm.identity(),
                                  lam_range=(0.0, 0.0), eta_range=(1.0, 1.0))
    weights = np.array([0.5, 0.3, 0.2])  # unequal counts N1, N2, N3
    patterns = built.patterns._replace(weight=weights.astype(np.float32))
    seeds = [0, 1, 2]
    with jax.enable_x64(True):
        res = train(learner, nt.PatternSampler(max_batch=1, sampling="iid"), seeds=seeds, num_steps=60, record_every=60,
                    observables={"state": _state_observable}, data=nt.sampler_data(seeds, 1, sampling="iid"),
                    shared={"graph": built.graph, "patterns": patterns})
        counts = res.records["counts"][:, -1]
        np.testing.assert_allclose(res.records["own_logits"][:, -1], th.appendix_logits(*counts.T, a=a), rtol=1e-12)
        np.testing.assert_allclose(res.records["delta_at_c1"][:, -1], th.appendix_update(*counts.T, a=a), rtol=1e-12)
    assert len({tuple(c) for c in counts}) > 1 and counts.sum(1).tolist() == [60] * 3


@observable(dims={"counts": ("cls",), "own_logits": ("cls",), "delta_at_c1": ("cls",)})
def _state_observable(snap):
    first = jnp.asarray(snap.data["patterns"].first)
    learner = nm.NeurashedLearner(plus=nm.additive(0.3), minus=nm.identity(), eta_plus=nm.identity(), eta_minus=nm.identity(),
                                  lam_range=(0.0, 0.0), eta_range=(1.0, 1.0))
    own = lambda amp: jnp.diagonal(nm.logits(snap.state.graph, amp, first))  # noqa: E731
    after = learner.update(snap.state, {"x": first[:1], "label": jnp.asarray([0])})
    return {"counts": snap.state.class_fired, "own_logits": own(snap.params), "delta_at_c1": own(after.amp) - own(snap.params)}


def test_theorem1_expansion_and_theorem2_regimes():
    counts = np.array([[100, 100]])
    # One level: the ratio is (b1 + b2) / b1 exactly; more levels approach it as t grows.
    np.testing.assert_allclose(th.theorem1_expansion(counts, c=2.0, b1=2, b2=3, num_levels=1)[0, 1], 2.5)
    r = [th.theorem1_expansion(counts * t, c=2.0, b1=2, b2=3, num_levels=4)[0, 1] for t in (1, 10, 100)]
    assert r[0] > r[1] > r[2] > 2.5 and r[2] - 2.5 < 1e-3
    # Equal counts: theorem2_ratio is the same expansion.
    np.testing.assert_allclose(th.theorem2_ratio(100, 4, b1=2, b2=3, num_classes=2), r[0], rtol=1e-12)
    # L / t -> infinity: unbounded; L = 2 t: bounded by the finite limit, approached from below.
    assert th.theorem2_ratio(2, 64, b1=2, b2=3, num_classes=2) > 1e4
    limit = th.theorem2_limit_proportional(2.0, b1=2, b2=3, num_classes=2)
    along = th.theorem2_ratio(np.array([1, 4, 16, 256, 4096]), 2 * np.array([1, 4, 16, 256, 4096]), b1=2, b2=3, num_classes=2)
    assert (np.diff(along) > 0).all() and (along < limit).all() and limit - along[-1] < 1e-3
    assert th.theorem1_limit(2, 3) == 2.5


def _edit(**changes):
    desc = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in SMALL.items()}
    for key, value in changes.items():
        if isinstance(value, dict):
            desc[key].update(value)
        else:
            desc[key] = value
    return desc


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(edges={"u": ["a", "zz"]}), "edges\\['u'\\]: edge to missing node 'zz'"),
        (dict(edges={"k1": ["a"]}), "dependent 'a' is in level 0, not in level 1"),
        (dict(edges={"qq": ["a"]}), "'qq' is not a node"),
        (dict(rules={"v": "at_least:4"}), "'v' \\(level 1\\): rule 'at least 4' needs between 1 and its 3"),
        (dict(rules={"v": "most"}), "rules\\['v'\\]: expected 'any', 'all'"),
        (dict(rules={"k1": "any"}), "only middle-level nodes"),
        (dict(rules={"v": "at_least:3"}), "pattern 1 .*'v' \\(level 1\\) is listed as firing, but its rule 'at least 3' of 3 sees 2"),
        (dict(pathways=[{"label": "k2", "first": ["a"]}]), "pattern 0: its pathway does not reach its class node 'k2'"),
        (dict(pathways=[{"label": "k3", "first": ["a"]}]), "label 'k3' is not a class"),
        (dict(pathways=[{"label": "k1", "first": ["u"]}]), "'u' in 'first' is not a first-level node"),
    ],
)
def test_builder_rejects_inconsistent_graphs(changes, message):
    with pytest.raises(nm.GraphError, match=message):
        nt.build(_edit(**changes))


def test_bad_rules_samplers_and_nodes_rejected():
    desc = _edit()
    desc["edges"] = {k: v for k, v in SMALL["edges"].items() if k != "w"}
    with pytest.raises(nm.GraphError, match="'w' \\(level 1\\) has no dependent nodes"):
        nt.build(desc)
    g = nt.build(SMALL).graph
    with pytest.raises(nm.GraphError, match="plus: .* must satisfy g\\+\\(x\\) > x"):
        nm.NeurashedLearner(plus=nm.multiplicative(0.9), minus=nm.identity())
    with pytest.raises(nm.GraphError, match="minus: .* 0 <= g-\\(x\\) <= x"):
        nm.NeurashedLearner(plus=nm.multiplicative(2.0), minus=nm.multiplicative(1.5))
    with pytest.raises(nm.GraphError, match="node \\(3, 0\\): no such node"):
        nm.NeurashedLearner(plus=nm.multiplicative(2.0), minus=nm.identity(), node_plus={(3, 0): nm.multiplicative(3.0)}).check_graph(g)
    with pytest.raises(ValueError, match="batch_size: must divide the number of input types"):
        nt.sampler_data([0], 2, sampling="epoch", num_patterns=3)
    with pytest.raises(ValueError, match="sampling: must be 'iid' or 'epoch'"):
        nt.PatternSampler(max_batch=1, sampling="random")
    # The sampler needs its data given: the engine says so before compiling.
    with pytest.raises(EngineConfigError, match="data: the task has no init"):
        train(nm.figure5_learner(), nt.PatternSampler(max_batch=1), seeds=[0], num_steps=8)
    # float64 asked for without x64 (a process, or a Ray worker, without the flag) fails loudly.
    built = nt.figure5()
    with pytest.raises(ValueError, match="dtype: 'float64' needs jax.enable_x64"):
        train(nm.figure5_learner(dtype="float64"), nt.PatternSampler(max_batch=1), seeds=[0], num_steps=8,
              data=nt.sampler_data([0], 1, num_patterns=8), shared={"graph": built.graph, "patterns": built.patterns})
    # Learners compare by value (one compilation for equal rule sets).
    assert nm.figure5_learner() == nm.figure5_learner() and hash(nm.figure5_learner()) == hash(nm.figure5_learner())
