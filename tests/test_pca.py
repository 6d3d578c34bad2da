"""PCA timeline and class separation on activations with known structure."""

import numpy as np
import pytest

from jaxdyn.analysis import pca


def _known(n=40, variances=(9.0, 4.0, 1.0), d=12, seed=0):
    """Data whose PCs are exactly known: orthogonal centred score columns of given variance, rotated."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, len(variances))) - 0)
    q = q - q.mean(0)  # centre, then re-orthonormalise the centred columns
    q, _ = np.linalg.qr(q)
    scores = q * np.sqrt(np.asarray(variances) * (n - 1))
    basis, _ = np.linalg.qr(rng.standard_normal((d, len(variances))))
    return scores @ basis.T + rng.standard_normal(d), basis


def test_pca_recovers_known_variances_and_directions():
    x, basis = _known()
    p = pca.pca(x)
    np.testing.assert_allclose(p.variance[:3], [9.0, 4.0, 1.0], rtol=1e-10)
    np.testing.assert_allclose(p.variance[3:], 0.0, atol=1e-10)
    assert p.total == pytest.approx(14.0)
    np.testing.assert_allclose(p.explained[:3], np.array([9, 4, 1]) / 14)
    np.testing.assert_allclose(np.abs(np.sum(p.components[:3] * basis.T, 1)), 1.0, atol=1e-10)
    # Scores reproduce the centred data.
    np.testing.assert_allclose(p.scores @ p.components, x - x.mean(0), atol=1e-10)


def test_timeline_tracks_a_growing_component_and_keeps_signs():
    x, _ = _known()
    scale = np.linspace(0.5, 2.0, 7)
    feats = np.stack([((-1) ** t) * s * x for t, s in enumerate(scale)])  # sign flips every epoch
    tl = pca.pca_timeline(feats, num_components=5, dims=2)
    np.testing.assert_allclose(tl.variance[:, 0], 9.0 * scale**2, rtol=1e-10)
    np.testing.assert_allclose(tl.total, 14.0 * scale**2, rtol=1e-10)
    np.testing.assert_allclose(tl.explained[:, 0], 9 / 14, rtol=1e-10)
    # Aligned signs: each epoch's projection is a positive multiple of the previous one.
    for t in range(1, 7):
        ratio = tl.projections[t] / tl.projections[t - 1]
        np.testing.assert_allclose(ratio, scale[t] / scale[t - 1], rtol=1e-8)


def test_silhouette_exact_values():
    # Class 0 at {0, 1}, class 1 at {10, 11}: a = 1 for every point; b = 10.5, 9.5, 9.5, 10.5.
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    s = pca.silhouette_per_class(x, np.array([0, 0, 1, 1]))
    expected = np.mean([(10.5 - 1) / 10.5, (9.5 - 1) / 9.5])
    np.testing.assert_allclose(s, [expected, expected])
    # Interleaved classes: a > b, negative silhouettes.
    s = pca.silhouette_per_class(np.array([[0.0], [10.0], [1.0], [11.0]]), np.array([0, 0, 1, 1]))
    assert (s < 0).all()
    with pytest.raises(ValueError, match="every class needs"):
        pca.silhouette_per_class(x, np.array([0, 1, 1, 1]))


def test_separation_epochs_of_clusters_appearing_at_known_epochs():
    # Five identities; identity k's cluster leaves the common blob at epoch onset[k]; identity 4
    # never moves, so it is separated only once the last other identity has left the blob.
    rng = np.random.default_rng(3)
    onset = np.array([3, 6, 6, 9, 10**6])
    expected = np.array([3, 6, 6, 9, 9])
    n_per, dim, epochs = 15, 20, 14
    labels = np.repeat(np.arange(5), n_per)
    centres = 12.0 * np.eye(dim)[:5]
    feats = []
    for t in range(epochs):
        on = (t >= onset).astype(float)
        feats.append(centres[labels] * on[labels][:, None] + 0.3 * rng.standard_normal((5 * n_per, dim)))
    feats = np.stack(feats)
    times = np.arange(epochs) * 2.0  # records every 2 epochs
    for dims in (None, 4):
        scores = pca.separation_scores(feats, labels, dims=dims)
        assert scores.shape == (epochs, 5)
        sep = pca.first_separation(scores, times, threshold=0.5, persist=2)
        np.testing.assert_array_equal(sep, times[expected])
        # Before the first onset every identity overlaps the others (silhouette near 0).
        assert np.abs(scores[0]).max() < 0.2


def test_first_separation_needs_persistence():
    scores = np.array([[0.1], [0.7], [0.2], [0.6], [0.6], [0.7]])
    t = np.arange(6.0)
    assert pca.first_separation(scores, t, 0.5, persist=1)[0] == 1.0
    assert pca.first_separation(scores, t, 0.5, persist=3)[0] == 3.0
    assert np.isnan(pca.first_separation(scores, t, 0.8, persist=1)[0])


def test_linear_separability_known_cases():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(3), 30)
    # Class 0 sits beyond a plane; classes 1 and 2 are the same blob.
    x = rng.standard_normal((90, 3))
    x[labels == 0, 0] += 12.0
    sep = pca.linear_separability(x, labels)
    assert sep[0] == 1.0
    assert 0.5 <= sep[1] < 0.85 and 0.5 <= sep[2] < 0.85
    # Exact value: 1-D points, class 0 at {0, 2}, rest at {1, 3}: the best cut catches 3 of 4 points.
    s = pca.linear_separability(np.array([[0.0], [2.0], [1.0], [3.0]]), np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(s, [0.75, 0.75])
    # A ring around class 0 is not linearly separable although its silhouette is positive.
    angle = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ring = np.stack([np.cos(angle), np.sin(angle)], 1) * 5
    pts = np.concatenate([0.3 * rng.standard_normal((20, 2)), ring])
    lab = np.array([0] * 20 + [1] * 40)
    assert pca.linear_separability(pts, lab)[0] < 0.8
    assert pca.silhouette_per_class(pts, lab)[0] > 0.5


def test_pca_gram_and_svd_paths_agree():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((10, 30))
    wide, tall = pca.pca(x), pca.pca(x.T)
    np.testing.assert_allclose(wide.variance, np.linalg.svd(x - x.mean(0), compute_uv=False)[:9] ** 2 / 9, rtol=1e-8)
    np.testing.assert_allclose(np.abs(np.sum(wide.components * np.linalg.svd(x - x.mean(0))[2][:9], 1)), 1.0, atol=1e-8)
    np.testing.assert_allclose(wide.scores @ wide.components, x - x.mean(0), atol=1e-10)
    assert tall.variance.shape == (10,)


def test_device_pca_matches_the_host_pca_and_is_deterministic():
    import jax

    rng = np.random.default_rng(5)
    z = rng.standard_normal((300, 6)) @ rng.standard_normal((6, 40)) * np.linspace(3, 0.5, 40)
    h = np.maximum(z @ rng.standard_normal((40, 64)), 0).astype(np.float32)
    f = jax.jit(lambda x: pca.device_pca(x, 5))
    out = f(h)
    ref = pca.pca(h)
    np.testing.assert_allclose(out["variance"], ref.variance[:5], rtol=1e-4)
    assert float(out["total"]) == pytest.approx(ref.total, rel=1e-5)
    for j in range(5):
        assert abs(np.corrcoef(np.asarray(out["scores"])[:, j], ref.scores[:, j])[0, 1]) > 0.9999
    again = f(h)
    np.testing.assert_array_equal(np.asarray(out["scores"]), np.asarray(again["scores"]))
    with pytest.raises(ValueError, match="num_components"):
        pca.device_pca(h, 65)


def test_spike_is_read_on_the_share_not_the_absolute_variance():
    # Activations whose scale grows tenfold over training while their shape stays fixed: the
    # absolute variance of PC1 "spikes" at the end of nothing, its share is constant.
    rng = np.random.default_rng(6)
    base = rng.standard_normal((200, 3)) * [3.0, 1.0, 0.5]
    scales = np.linspace(1, 10, 20)
    feats = np.stack([base * s for s in scales])
    tl = pca.pca_timeline(feats, num_components=3)
    assert pca.spike_ratio(tl.explained[:, 0])[0] == pytest.approx(1.0)
    assert pca.spike_ratio(tl.variance[:, 0][::-1])[0] == pytest.approx(100.0, rel=1e-6)  # what the wrong quantity would say
    # A real spike of the share: PC1 takes 90% of the variance at epoch 10 and 50% at the end.
    share = np.concatenate([np.linspace(0.5, 0.9, 11), np.linspace(0.9, 0.5, 10)[1:]])
    ratio, at = pca.spike_ratio(share)
    assert ratio == pytest.approx(1.8) and at == 10


def test_align_signs_removes_flips():
    rng = np.random.default_rng(7)
    s = rng.standard_normal((1, 50, 2))
    flipped = np.concatenate([s, s * [-1.0, 1.0], s * [-1.0, -1.0]])
    aligned = pca.align_signs(flipped)
    for t in range(3):
        np.testing.assert_allclose(aligned[t], s[0])
