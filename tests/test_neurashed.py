"""The neurashed model: pathways, scores, Algorithm 1, the builder's validation, Theorem 1 graphs."""

import numpy as np
import pytest
import jax.numpy as jnp

from jaxdyn.theory import neurashed as nr

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
    return nr.build(SMALL)


@pytest.fixture(scope="module")
def fig5():
    return nr.figure5()


def test_builder_arrays_and_patterns(small):
    g, p = small.graph, small.patterns
    assert g.widths == (4, 3, 2) and g.num_levels == 3 and g.num_classes == 2
    np.testing.assert_array_equal(np.asarray(g.adjacency[0]), [[1, 1, 0, 0], [0, 1, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_array_equal(np.asarray(g.adjacency[1]), [[1, 1, 0], [0, 1, 1]])
    np.testing.assert_array_equal(np.asarray(g.rule[0]), [nr.RULE_ANY, nr.RULE_AT_LEAST, nr.RULE_ALL])
    np.testing.assert_allclose(np.asarray(p.weight), [0.25, 0.25, 0.5])
    np.testing.assert_array_equal(np.asarray(nr.thresholds(g)[0]), [1, 2, 2])


def test_figure5_pathways_match_the_text(fig5):
    g, p = fig5.graph, fig5.patterns
    first, mid, cls = (np.asarray(t) for t in nr.pathways(g, p.first, p.label))
    fired = [tuple(int(i) + 1 for i in np.flatnonzero(row)) for row in first]
    assert fired[:4] == [(1, 2, 7), (2, 3, 7), (4, 5, 7), (5, 6, 7)]
    assert fired[4:] == [(7, 12, 13), (7, 11, 12), (7, 9, 10), (7, 8, 9)]
    # h1 fires for type a, h3 for type b, the dominant h2 for every class-1 input and never for class 2.
    np.testing.assert_array_equal(mid[:4, :3], [[1, 1, 0], [1, 1, 0], [0, 1, 1], [0, 1, 1]])
    assert not mid[:4, 3:].any() and not mid[4:, :3].any()
    np.testing.assert_array_equal(mid[4:, 3:], mid[:4, :3][:, ::-1])
    np.testing.assert_array_equal(cls.argmax(1), [0] * 4 + [1] * 4)


def test_scores_and_logits_by_hand(small):
    g, p = small.graph, small.patterns
    lam0, lam1 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 0.25, 2.0])
    eta = np.array([[1.0, 3.0, 0.0], [0.0, 2.0, 5.0]])
    params = nr.Amplification(lam=(jnp.asarray(lam0), jnp.asarray(lam1)), eta=jnp.asarray(eta))
    S, Z = nr.scores(g, params, nr.pathways(g, p.first))
    S0, S1, Z = np.asarray(S[0]), np.asarray(S[1]), np.asarray(Z)
    # pattern 1 fires a b c; u (any of a b) and v (2 of b c d) fire, w (all of c d) does not.
    np.testing.assert_allclose(S0[1], [1, 2, 3, 0])
    np.testing.assert_allclose(S1[1], [0.5 * (1 + 2), 0.25 * (2 + 3), 0.0])
    np.testing.assert_allclose(Z[1], [1.0 * 1.5 + 3.0 * 1.25, 2.0 * 1.25])
    # pattern 2 fires c d: v = 0.25 (3 + 4), w = 2 (3 + 4); k1 sees only v, k2 both.
    np.testing.assert_allclose(S1[2], [0.0, 1.75, 14.0])
    np.testing.assert_allclose(Z[2], [3.0 * 1.75, 2.0 * 1.75 + 5.0 * 14.0])
    probs = np.asarray(nr.probabilities(g, params, p.first))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)


def test_one_update_of_algorithm1(small):
    g, p = small.graph, small.patterns
    rules = nr.update_rules(g, nr.multiplicative(2.0), nr.multiplicative(0.5), eta_plus=nr.additive(1.0), eta_minus=nr.additive(-0.25))
    params = nr.Amplification(lam=(jnp.ones(4), jnp.ones(3)), eta=jnp.asarray([[1.0, 1.0, 0.0], [0.0, 1.0, 0.1]]))
    # Batch = patterns 0 and 2: G = {a b c d} u {u v w}; edges k1<-u (pattern 0), k2<-v, k2<-w (pattern 2).
    new = nr.step(g, p, rules, params, jnp.asarray([0, 2]))
    np.testing.assert_allclose(np.asarray(new.lam[0]), [2, 2, 2, 2])
    np.testing.assert_allclose(np.asarray(new.lam[1]), [2, 2, 2])
    # k1<-v is not in G (v does not fire with k1 in one sample): g- = x - 0.25; k2<-w: 0.1 + 1.
    np.testing.assert_allclose(np.asarray(new.eta), [[2.0, 0.75, 0.0], [0.0, 2.0, 1.1]], rtol=1e-6)
    # Batch = pattern 0 only: c, d, v, w decay by half; additive g- is clipped at 0.
    new = nr.step(g, p, rules, params, jnp.asarray([0]))
    np.testing.assert_allclose(np.asarray(new.lam[0]), [2, 2, 0.5, 0.5])
    np.testing.assert_allclose(np.asarray(new.lam[1]), [2, 0.5, 0.5])
    np.testing.assert_allclose(np.asarray(new.eta), [[2.0, 0.75, 0.0], [0.0, 0.75, 0.0]], rtol=1e-6)


def test_training_matches_the_closed_form_of_multiplicative_rules(fig5):
    # With epoch sampling and B = 1, after E epochs node F fired in exactly E * (number of
    # patterns whose pathway holds F) updates, so lambda_F = lambda_F(0) a+^k a-^(T - k).
    g, p = fig5.graph, fig5.patterns
    rules = nr.figure5_rules(g)
    epochs = 5
    res = nr.train(g, p, rules, [3, 7], num_steps=8 * epochs, batch_size=1, sampling="epoch", record_every=8 * epochs)
    table = [np.asarray(t) for t in nr.pathways(g, p.first, p.label)]
    np.testing.assert_array_equal(res.counts[:, -1], epochs)
    for level in range(2):
        k = epochs * table[level].sum(0)
        plus = np.full(g.widths[level], 1.022 ** (11 / 4))
        if level == 0:
            plus[6] = 1.022 ** (3 / 4)
        expect = res.records.lam[level][:, 0] * plus**k * (1.022 ** (-1 / 4)) ** (8 * epochs - k)
        np.testing.assert_allclose(res.params.lam[level], expect, rtol=2e-5)
    # eta of class1 <- h2 fires in every class-1 sample (4 per epoch); class1 <- h1 in 2.
    eta_k = epochs * np.array([[2, 4, 2, 0, 0, 0], [0, 0, 0, 2, 4, 2]])
    expect = res.records.eta[:, 0] * (1.022 ** (11 / 4)) ** eta_k * (1.022 ** (-1 / 4)) ** (8 * epochs - eta_k)
    np.testing.assert_allclose(res.params.eta, expect * np.asarray(g.adjacency[-1]), rtol=2e-5)


def test_members_do_not_depend_on_their_companions():
    # vmap over stacked graphs and seeds: swapping the members' order swaps the results, and
    # per-member batch sizes act per member (one compilation for all of it).
    fams = [nr.theorem1_family(s, m=12, b1=2, b2=2, num_classes=2, num_levels=3) for s in (0, 1)]
    rules = nr.update_rules(fams[0].graph, nr.additive(2.0), nr.identity(), eta_plus=nr.identity(), eta_minus=nr.identity())
    kw = dict(num_steps=12, record_every=4, eta_range=(1.0, 1.0), sampling="epoch")
    g, p = nr.stack([f.graph for f in fams]), nr.stack([f.patterns for f in fams])
    a = nr.train(g, p, rules, [5, 6], batch_size=[1, 2], **kw)
    b = nr.train(nr.stack([fams[1].graph, fams[0].graph]), nr.stack([fams[1].patterns, fams[0].patterns]), rules, [6, 5],
                 batch_size=[2, 1], **kw)
    for x, y in zip(a.params.lam, b.params.lam):
        np.testing.assert_allclose(x, y[::-1], rtol=1e-6)
    np.testing.assert_array_equal(a.counts, b.counts[::-1])
    assert a.records.lam[0].shape == (2, 4, 12)
    # Member 0 saw one class per step, member 1 both classes per step.
    np.testing.assert_array_equal(a.counts[:, -1], [[6, 6], [12, 12]])
    # With B = 2 both classes' nodes get +c at every step; additive rule: lambda = lambda0 + 2 * 12.
    sel = np.asarray(nr.pathways(fams[1].graph, fams[1].patterns.first)[0]).any(0)
    np.testing.assert_allclose(a.params.lam[0][1][sel] - a.records.lam[0][1, 0][sel], 24.0, rtol=1e-5)


def test_theorem1_family_pathways():
    fam = nr.theorem1_family(3, m=40, b1=3, b2=2, num_classes=3, num_levels=4)
    g, p = fam.graph, fam.patterns
    table = [np.asarray(t) for t in nr.pathways(g, p.first, p.label)]
    for level in range(4):
        for j in range(3):
            fired = set(np.flatnonzero(table[level][j]))
            assert fired == set(fam.shared[level]) | set(fam.specific[level, j])
        # Shared nodes fire for every class; a class's own nodes for that class only.
        assert table[level][:, fam.shared[level]].all()
    assert set(np.flatnonzero(np.asarray(g.adjacency[-1])[1])) == set(fam.shared[3]) | set(fam.specific[3, 1])
    with pytest.raises(nr.GraphError, match="m: needs m >= b1 \\+ b2"):
        nr.theorem1_family(0, m=4, b1=3, b2=2, num_classes=2, num_levels=2)


def test_theorem1_expansion_limits():
    counts = np.array([[100, 100]])
    # One level: the ratio is (b1 + b2) / b1 exactly; more levels approach it as t grows.
    np.testing.assert_allclose(nr.theorem1_expansion(counts, c=2.0, b1=2, b2=3, num_levels=1)[0, 1], 2.5)
    r = [nr.theorem1_expansion(counts * t, c=2.0, b1=2, b2=3, num_levels=4)[0, 1] for t in (1, 10, 100)]
    assert r[0] > r[1] > r[2] > 2.5 and r[2] - 2.5 < 1e-3
    # Theorem 2: growing with the number of levels.
    rl = [nr.theorem1_expansion(counts, c=2.0, b1=2, b2=3, num_levels=L)[0, 1] for L in (1, 10, 100, 1000)]
    assert all(a < b for a, b in zip(rl, rl[1:])) and rl[-1] > 10


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
    with pytest.raises(nr.GraphError, match=message):
        nr.build(_edit(**changes))


def test_node_without_dependents_and_bad_rules_rejected():
    desc = _edit()
    desc["edges"] = {k: v for k, v in SMALL["edges"].items() if k != "w"}
    with pytest.raises(nr.GraphError, match="'w' \\(level 1\\) has no dependent nodes"):
        nr.build(desc)
    g = nr.build(SMALL).graph
    with pytest.raises(nr.GraphError, match="plus: .* must satisfy g\\+\\(x\\) > x"):
        nr.update_rules(g, nr.multiplicative(0.9), nr.identity())
    with pytest.raises(nr.GraphError, match="minus: .* 0 <= g-\\(x\\) <= x"):
        nr.update_rules(g, nr.multiplicative(2.0), nr.multiplicative(1.5))
    with pytest.raises(nr.GraphError, match="node \\(3, 0\\): no such node"):
        nr.update_rules(g, nr.multiplicative(2.0), nr.identity(), node_plus={(3, 0): nr.multiplicative(3.0)})
    with pytest.raises(ValueError, match="batch_size: must divide the number of patterns"):
        nr.train(g, nr.build(SMALL).patterns, nr.update_rules(g, nr.multiplicative(2.0), nr.identity()), [0],
                 num_steps=4, batch_size=2, sampling="epoch")
