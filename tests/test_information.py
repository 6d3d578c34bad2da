"""Binned mutual information against exact answers."""

import numpy as np
import pytest
import scipy.stats

from jaxdyn.analysis import information as inf


def _bsc_capacity(sigma):
    # X uniform on {0, 1}, T = X + N(0, sigma^2) binned at 1/2: a binary symmetric channel.
    p = scipy.stats.norm.sf(0.5 / sigma)
    return 1.0 + p * np.log2(p) + (1 - p) * np.log2(1 - p)


def test_entropy_and_discrete_information():
    x = np.repeat(np.arange(8), 5)
    assert inf.entropy(x) == pytest.approx(3.0)
    assert inf.discrete_mutual_information(x, x) == pytest.approx(3.0)
    assert inf.discrete_mutual_information(x, x % 4) == pytest.approx(2.0)
    assert inf.discrete_mutual_information(x, np.zeros_like(x)) == pytest.approx(0.0)
    # Independent: every (a, b) pair equally often.
    a, b = np.meshgrid(np.arange(4), np.arange(3))
    assert inf.discrete_mutual_information(a.ravel(), b.ravel()) == pytest.approx(0.0, abs=1e-12)
    # Weights: a type with weight 0 does not count.
    assert inf.entropy(np.arange(3), weights=np.array([0.5, 0.5, 0.0])) == pytest.approx(1.0)


def test_noise_free_binning_counts_distinct_patterns():
    x = np.arange(8)
    y = x // 4
    t = np.stack([x % 4, np.zeros(8)], 1).astype(float)  # 4 distinct rows, independent of y
    assert inf.binned_mutual_information(t, x, num_bins=4) == pytest.approx(2.0)
    assert inf.binned_mutual_information(t, y, num_bins=4) == pytest.approx(0.0)
    # Values closer than a bin width merge: 30 bins over [0, 1], 0.001 apart.
    t2 = np.array([[0.0], [0.001], [1.0], [1.0]])
    assert inf.binned_mutual_information(t2, np.arange(4), num_bins=30) == pytest.approx(1.0)
    r = inf.noisy_binned_information(np.eye(8), variables={"y": y}, noise_std=0.0)
    assert r.info["x"] == pytest.approx(3.0) and r.info["y"] == pytest.approx(1.0)


@pytest.mark.parametrize("sigma", [0.25, 0.6])
def test_noisy_information_matches_the_binary_symmetric_channel(sigma):
    exact = _bsc_capacity(sigma)
    r = inf.noisy_binned_information(np.array([[0.0], [1.0]]), num_bins=2, noise_std=sigma, num_samples=20000, rng=1)
    assert abs(r.info["x"] - exact) < 4 * r.stderr["x"] + 1e-3, (r.info, exact)
    # The plug-in estimator on samples agrees too (its bias is ~ cells / N, tiny here).
    x = np.random.default_rng(0).integers(0, 2, 200_000)
    plug = inf.binned_mutual_information(x[:, None].astype(float), x, num_bins=2, noise_std=sigma, rng=2)
    assert abs(plug - exact) < 0.01, (plug, exact)


def test_noise_hides_small_signals_and_independent_units_add():
    tiny = inf.noisy_binned_information(1e-4 * np.eye(8), noise_std=0.1, num_samples=256)
    assert tiny.info["x"] < 0.01
    # Two independent BSC units carrying two independent bits: I = 2 * capacity.
    sig = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    r = inf.noisy_binned_information(sig, variables={"first": np.array([0, 0, 1, 1])}, num_bins=2, noise_std=0.4,
                                     num_samples=20000, rng=3)
    cap = _bsc_capacity(0.4)
    assert abs(r.info["x"] - 2 * cap) < 4 * r.stderr["x"] + 2e-3
    assert abs(r.info["first"] - cap) < 4 * r.stderr["first"] + 2e-3


def test_information_plane_and_errors():
    t = np.stack([np.zeros((8, 1)), np.arange(8.0)[:, None]])
    ix, iy = inf.information_plane(t, np.arange(8), np.arange(8) % 2, num_bins=8)
    np.testing.assert_allclose(ix, [0.0, 3.0])
    np.testing.assert_allclose(iy, [0.0, 1.0])
    with pytest.raises(ValueError, match="num_bins"):
        inf.bin_edges(np.zeros(3), 0)
    with pytest.raises(ValueError, match="signal: expected shape"):
        inf.noisy_binned_information(np.zeros(3))
    with pytest.raises(ValueError, match="noise_std"):
        inf.noisy_binned_information(np.zeros((2, 1)), noise_std=-1.0)


def test_plugin_estimator_agrees_with_the_exact_laws():
    # Two well separated types per unit (noise << bin width): both give the exact 2 bits; with
    # noise comparable to the bins the plug-in is biased upward but stays near the exact value.
    sig = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    exact = inf.noisy_binned_information(sig, variables={"first": np.array([0, 0, 1, 1])}, num_bins=2, noise_std=0.01,
                                         num_samples=2000, rng=0)
    plug = inf.plugin_binned_information(sig, variables={"first": np.array([0, 0, 1, 1])}, num_bins=2, noise_std=0.01,
                                         num_samples=2000, rng=0)
    assert plug["x"] == pytest.approx(exact.info["x"], abs=1e-3) == pytest.approx(2.0, abs=1e-3)
    assert plug["first"] == pytest.approx(1.0, abs=1e-3)
    noisy_exact = inf.noisy_binned_information(sig, num_bins=2, noise_std=0.4, num_samples=20000, rng=1).info["x"]
    noisy_plug = inf.plugin_binned_information(sig, num_bins=2, noise_std=0.4, num_samples=20000, rng=1)["x"]
    assert 0 <= noisy_plug - noisy_exact < 0.01
    with pytest.raises(ValueError, match="signal: expected shape"):
        inf.plugin_binned_information(np.zeros(3))


def test_longest_stretch_near_a_level():
    steps = np.arange(0, 100, 10)
    values = np.array([[0, 1.9, 2.1, 2.0, 0.5, 2.0, 2.0, 1.0, 1.0, 1.0], [0] * 10], float)
    np.testing.assert_array_equal(inf.longest_stretch_near(values, steps, 2.0, 0.15), [30.0, 0.0])
    assert inf.longest_stretch_near(values[0], steps, 1.0, 0.01) == 30.0


def test_knn_estimator_is_sklearns_in_one_dimension_and_tracks_the_exact_information():
    from scipy.special import logsumexp
    from sklearn.feature_selection import mutual_info_classif

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    t = rng.standard_normal(600) + 0.7 * labels
    # d = 1: the same estimator as scikit-learn's (which rescales the feature and adds 1e-10 noise).
    ours = inf.knn_mutual_information(t[:, None], labels)
    sk = mutual_info_classif(t[:, None], labels, discrete_features=False, n_neighbors=3, random_state=0)[0] / np.log(2)
    assert ours == pytest.approx(sk, abs=1e-6)
    # d = 2: two types one noise std apart; the exact I(T; X) of the Gaussian mixture by Monte Carlo.
    mu = np.array([[0.0, 0.0], [1.0, 0.0]])
    x = rng.integers(0, 2, 100_000)
    draws = mu[x] + rng.standard_normal((100_000, 2))
    logp = -0.5 * ((draws[:, None, :] - mu[None]) ** 2).sum(-1)
    exact = np.mean(logp[np.arange(len(x)), x] - logsumexp(logp, axis=1) + np.log(2)) / np.log(2)
    est = inf.knn_information(mu, noise_std=1.0, num_samples=2000, rng=1)["x"]
    assert abs(est - exact) < 0.05 and 0.1 < exact < 0.25
    # Types far apart in absolute units are all told apart, however small their difference relative
    # to the range (no bins); identical types carry nothing.
    far = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]) * 1e9 + np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.0], [0.0, 0.0]])
    got = inf.knn_information(far, variables={"y": np.array([0, 0, 1, 1])}, noise_std=0.01, num_samples=128)
    assert got["x"] == pytest.approx(2.0, abs=0.02) and got["y"] == pytest.approx(1.0, abs=0.02)
    assert inf.knn_information(np.zeros((4, 3)), noise_std=0.01, num_samples=128)["x"] < 0.02
    with pytest.raises(ValueError, match="noise_std"):
        inf.knn_information(mu, noise_std=0.0)
