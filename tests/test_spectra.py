"""Weight spectra on matrices with known spectra: MP, spikes, bleeding-out, power laws, rank collapse."""

import math

import numpy as np
import pytest
import scipy.integrate

from jaxdyn.analysis import spectra as sp

N, M = 600, 300


def _orth(rng, n, m):
    return np.linalg.qr(rng.standard_normal((n, m)))[0]


def test_mp_law_normalisation_mean_and_cdf():
    for q in (1.0, 1.17, 4.0):
        lo, hi = sp.mp_edges(q, 2.0)
        mass = scipy.integrate.quad(lambda x: sp.mp_density(x, q, 2.0), lo, hi, limit=200)[0]
        mean = scipy.integrate.quad(lambda x: x * sp.mp_density(x, q, 2.0), lo, hi, limit=200)[0]
        assert mass == pytest.approx(1.0, abs=2e-3)
        assert mean == pytest.approx(2.0, rel=2e-3)  # E[lambda] = sigma^2
        assert sp.mp_cdf(hi, q, 2.0) == pytest.approx(1.0)
        mid = 0.5 * (lo + hi)
        ref = scipy.integrate.quad(lambda x: sp.mp_density(x, q, 2.0), lo, mid, limit=200)[0]
        assert sp.mp_cdf(mid, q, 2.0) == pytest.approx(ref, abs=2e-3)
    assert sp.mp_edges(4.0) == pytest.approx((0.25, 2.25))


def test_random_matrix_is_random_like_with_the_right_variance():
    rng = np.random.default_rng(0)
    w = 0.5 * rng.standard_normal((M, N))  # transposed on purpose: N >= M is found automatically
    ev, q = sp.correlation_eigenvalues(w)
    assert ev.shape == (M,) and q == pytest.approx(2.0)
    ph = sp.classify(ev, q)
    assert ph.name == "random-like"
    assert ph.mp.sigma2 == pytest.approx(0.25, rel=0.02)
    assert ph.mp.ks < sp.KS_MP and ph.mp.num_outliers == 0
    assert ph.max_over_edge == pytest.approx(1.0, abs=0.05)
    assert ph.power_law.alpha > sp.ALPHA_HEAVY  # an MP edge is no heavy tail


def test_tracy_widom_scale_matches_the_fluctuation_of_the_top_eigenvalue():
    # lambda_max - lambda_+ is TW1 distributed in units of sigma_TW: mean -1.21, std 1.27.
    rng = np.random.default_rng(1)
    n, m = 400, 100
    tops = np.array([sp.correlation_eigenvalues(rng.standard_normal((n, m)), dtype=np.float64)[0][-1] for _ in range(40)])
    z = (tops - sp.mp_edges(n / m)[1]) / sp.tracy_widom_scale(n, m)
    assert -2.2 < z.mean() < -0.3, z.mean()
    assert 0.7 < z.std(ddof=1) < 2.0, z.std(ddof=1)


def test_spikes_and_bleeding_out():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((N, M))
    u, v = _orth(rng, N, 3), _orth(rng, M, 3)
    spiked = w + u @ np.diag([160.0, 120.0, 90.0]) @ v.T
    ph = sp.classify(*sp.correlation_eigenvalues(spiked))
    assert ph.name == "bulk+spikes" and ph.mp.num_outliers == 3 and ph.max_over_edge > sp.SPIKE_GAP
    assert ph.mp.sigma2 == pytest.approx(1.0, rel=0.03)
    # A few eigenvalues just past the edge, none far out: bleeding-out.
    ev, q = sp.correlation_eigenvalues(w)
    edge = sp.mp_edges(q)[1]
    bleed = np.sort(np.concatenate([ev[:-6], edge * np.linspace(1.15, 1.5, 6)]))
    ph = sp.classify(bleed, q, num_rows=N)
    assert ph.name == "bleeding-out" and ph.mp.num_outliers == 6


@pytest.mark.parametrize("alpha,phase", [(2.5, "heavy-tailed"), (6.0, "bulk-decay")])
def test_power_law_tails(alpha, phase):
    rng = np.random.default_rng(3)
    lam = (1.0 - rng.random(M)) ** (-1.0 / (alpha - 1.0))  # Pareto density ~ lambda^-alpha, x_min = 1
    w = _orth(rng, N, M) @ np.diag(np.sqrt(lam * N)) @ _orth(rng, M, M).T
    ev, q = sp.correlation_eigenvalues(w, dtype=np.float64)
    np.testing.assert_allclose(ev, np.sort(lam), rtol=1e-8)  # X = W^T W / N has exactly these eigenvalues
    fit = sp.fit_power_law(ev)
    assert abs(fit.alpha - alpha) < 3 * fit.alpha_se + 0.1, fit
    assert sp.classify(ev, q).name == phase


def test_power_law_mle_with_fixed_xmin():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    fit = sp.fit_power_law(x, min_tail=2, xmin=1.0)
    assert fit.alpha == pytest.approx(1 + 4 / (math.log(2) + math.log(4) + math.log(8)))
    assert fit.n_tail == 4 and fit.alpha_se == pytest.approx((fit.alpha - 1) / 2)


def test_rank_collapse():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((N, 60)) @ rng.standard_normal((60, M))
    ph = sp.classify(*sp.correlation_eigenvalues(w))
    assert ph.name == "rank-collapse" and ph.zero_fraction == pytest.approx(0.8, abs=0.01)


def test_histogram_is_a_density():
    ev = np.random.default_rng(5).gamma(2.0, size=500)
    for log in (True, False):
        c, d = sp.esd_histogram(ev, bins=30, log=log)
        edges_width = np.diff(np.geomspace(ev.min(), ev.max() * (1 + 1e-9), 31)) if log else np.diff(np.linspace(ev.min(), ev.max() * (1 + 1e-9), 31))
        assert np.sum(d * edges_width) == pytest.approx(1.0)


def test_weightwatcher_metrics_known_answers():
    ev = np.array([1.0, 1.0, 2.0, 4.0])
    m = sp.ww_metrics(ev, lambda_plus=2.0)
    assert m["stable_rank"] == pytest.approx(2.0) and m["mp_softrank"] == pytest.approx(0.5)
    assert m["spectral_norm"] == 4.0 and m["log_norm"] == pytest.approx(np.log10(8.0))
    assert np.isnan(sp.ww_metrics(ev)["mp_softrank"])


def test_conv_eigenvalues_pool_every_tap():
    rng = np.random.default_rng(0)
    k = rng.standard_normal((3, 3, 4, 2))
    ev, q = sp.conv_eigenvalues(k)
    assert ev.shape == (18,) and q == 2.0
    want = np.sort(np.concatenate([np.linalg.eigvalsh(k[i, j].T @ k[i, j] / 4) for i in range(3) for j in range(3)]))
    np.testing.assert_allclose(ev, want, rtol=1e-5)
    with pytest.raises(ValueError, match="kernel"):
        sp.conv_eigenvalues(k[0])


def test_noise_outliers_keep_a_random_matrix_random_like_and_null_is_random():
    # The rule's outlier count is a statistic with its own noise: reading a count up to the
    # null's maximum as noise turns a marginal "bleeding-out" back into random-like, while a
    # real spike (a rank-one signal far past the edge) is still a spike.
    null = sp.null_outliers(400, 200, num_matrices=4, seed=1)
    assert set(null.phases) == {"random-like"} and (null.max_over_edge < 1.1).all()
    rng = np.random.default_rng(2)
    w = rng.standard_normal((400, 200))
    ev, q = sp.correlation_eigenvalues(w)
    edge = sp.mp_edges(q)[1]
    marginal = np.sort(np.concatenate([ev[:-1], [edge * 1.08]]))
    assert sp.classify(marginal, q, num_rows=400).name in ("bleeding-out", "bulk+spikes")
    assert sp.classify(marginal, q, num_rows=400, noise_outliers=1).name == "random-like"
    spiked = np.sort(np.concatenate([ev[:-2], [edge * 4.0, edge * 6.0]]))  # two eigenvalues far past the edge
    assert sp.classify(spiked, q, num_rows=400, noise_outliers=1).name == "bulk+spikes"
