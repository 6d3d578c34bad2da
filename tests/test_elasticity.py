"""Local elasticity and the kernelized similarity against exact answers and the NTK."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn import ntk
from jaxdyn.analysis import elasticity as el
from jaxdyn.engine import losses
from jaxdyn.models import DeepLinear, RBEConvNet


def _bce_logits(z, batch):
    return jnp.mean(jax.nn.softplus(z) - batch["y"] * z)


def test_linear_model_closed_form():
    # z = W x, softmax cross-entropy: one step at x moves z(x') by -lr (x'.x) g, so
    # LE(x, x') = |x'.x| / |x|^2 and the kernelized similarity is x'.x = the NTK, at any lr.
    model = DeepLinear(widths=(6, 3))
    params = model.init(jax.random.key(0), jnp.zeros((1, 6)))["params"]
    f = ntk.apply_fn(model)
    rng = np.random.default_rng(0)
    bases, probes = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(5, 6)).astype(np.float32)
    labels = np.array([0, 1, 2, 1], np.int32)
    m = el.pair_measures(f, params, losses.softmax_cross_entropy, bases, labels, probes, lr=0.3)
    dots = bases @ probes.T
    np.testing.assert_allclose(m["le"], np.abs(dots) / (bases**2).sum(1)[:, None], rtol=2e-5)
    np.testing.assert_allclose(m["kernel"], dots, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(m["ntk"], dots, rtol=2e-4, atol=1e-5)


def test_kernelized_similarity_tends_to_the_ntk():
    # A nonlinear net: S_ker(lr) = S_ntk + O(lr), so the error shrinks in proportion to lr.
    with jax.enable_x64(True):
        model = RBEConvNet(num_layers=2, features=4, return_logits=True)
        x = jax.random.bernoulli(jax.random.key(1), 0.5, (8, 16)).astype(jnp.float64)
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(2), x)["params"])
        f = ntk.apply_fn(model)
        bases, probes, labels = x[:4], x[4:], jnp.array([1.0, 0.0, 1.0, 0.0])  # equal counts: one compilation
        errs = []
        for lr in (0.02, 0.005):
            m = el.pair_measures(f, params, _bce_logits, bases, labels, probes, lr=lr)
            errs.append(np.abs(m["kernel"] - m["ntk"]).max() / np.abs(m["ntk"]).max())
        assert errs[1] < 0.05, errs
        assert 3.0 < errs[0] / errs[1] < 5.0, errs  # first order in lr
        # The base's own change: LE(x, x) = 1 by definition.
        ch = el.step_changes(f, params, _bce_logits, bases, labels, bases, lr=0.05)
        np.testing.assert_allclose(np.diagonal(np.asarray(el.local_elasticity(ch))), 1.0, rtol=1e-9)


def test_separation_auc():
    same = np.array([[True, False, False], [False, True, False]])
    values = np.array([[3.0, 1.0, 2.0], [0.5, 4.0, 0.2]])
    s = el.separation(values, same, num_bootstrap=50)
    assert s.auc == pytest.approx(1.0)
    assert s.median_same == pytest.approx(3.5) and s.median_other == pytest.approx(0.75)
    assert el.auc(np.array([1.0, 2.0]), np.array([1.5, 3.0])) == pytest.approx(0.25)
    assert el.auc(np.ones(3), np.ones(4)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both be \\(B, P\\)"):
        el.separation(values, same[:1])


def test_similarity_tiers_from_class_means_and_tier_auc():
    # Three classes with input means at 0, 1 and 5: class 0's nearest is 1 (similar), farthest 2.
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    x = np.array([0.0, 1.0, 5.0])[y][:, None] + 0.01 * rng.normal(size=(60, 1))
    tiers = el.similarity_tiers(x, y)
    np.testing.assert_array_equal(tiers.similar, [1, 0, 1])
    np.testing.assert_array_equal(tiers.dissimilar, [2, 2, 0])
    pt = el.pair_tiers(tiers, np.array([0, 2]), np.array([0, 1, 2]))
    np.testing.assert_array_equal(pt, [[el.TIER_SAME, el.TIER_SIMILAR, el.TIER_DISSIMILAR], [el.TIER_DISSIMILAR, el.TIER_SIMILAR, el.TIER_SAME]])
    # Values ordered by tier give AUC 1 between any two tiers; reversed, 0.
    values = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    assert el.tier_separation(values, pt, el.TIER_SAME, el.TIER_SIMILAR, num_bootstrap=20).auc == 1.0
    assert el.tier_separation(values, pt, el.TIER_SIMILAR, el.TIER_DISSIMILAR, num_bootstrap=20).auc == 1.0
    assert el.tier_separation(-values, pt, el.TIER_SAME, el.TIER_DISSIMILAR, num_bootstrap=20).auc == 0.0
    with pytest.raises(ValueError, match="at least three classes"):
        el.similarity_tiers(x[:40], y[:40])
