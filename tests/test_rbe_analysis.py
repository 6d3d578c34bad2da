"""Fits of the response law on synthetic data with known answers (fast, numpy only)."""

import numpy as np
import pytest

from jaxdyn.analysis import response as resp


def test_power_law_fit_recovers_exponent_and_interval():
    rng = np.random.default_rng(0)
    t = np.arange(0, 810, 10.0)
    tau = 0.6
    # Multiplicative noise per seed and time; an initial phase (t < 50) that does not follow the law.
    sizes = 2.0 * np.maximum(t, 1.0) ** (-tau) * np.exp(0.3 * rng.standard_normal((60, t.size)))
    sizes[:, t < 50] *= 3.0
    fit = resp.power_law_fit(t, sizes, 50, n_boot=300)
    assert fit.ci[0] < fit.tau < fit.ci[1]
    assert abs(fit.tau - tau) < 0.05 and fit.ci[1] - fit.ci[0] < 0.1
    assert fit.r2 > 0.95 and fit.t_min == 50 and fit.t_max == 800
    assert abs(fit.local_early - tau) < 0.1 and abs(fit.local_late - tau) < 0.1
    assert abs(np.nanmean(fit.per_seed) - tau) < 0.1
    # A curved (exponential) decay is told apart: the local exponents disagree.
    curved = resp.power_law_fit(t, np.exp(-t / 300.0)[None].repeat(3, 0), 50, n_boot=20)
    assert curved.local_late > 1.5 * curved.local_early
    with pytest.raises(ValueError, match="fit window"):
        resp.power_law_fit(t, sizes, 790)


def test_profile_and_kernel_fit():
    rng = np.random.default_rng(1)
    h = np.repeat(np.arange(17), 4)
    slope = -0.05
    clean = 0.3 * (1 + slope * h)
    response = clean[None] + 0.005 * rng.standard_normal((40, h.size))
    prof = resp.profile(response, h)
    assert prof.shape == (40, 17)
    k = resp.kernel_fit(prof, n_boot=200)
    assert k.kernel[0] == pytest.approx(1.0)
    assert k.slope_ci[0] < k.slope < k.slope_ci[1]
    assert abs(k.slope - slope) < 0.005 and k.r2 > 0.99
    assert k.raw_slope == pytest.approx(0.3 * slope, rel=0.1) and k.size == pytest.approx(0.3, rel=0.02)


def test_explained_fraction_and_turning_point():
    x = np.linspace(0, 1, 50)
    assert resp.explained_fraction(x, x) == 1.0
    assert resp.explained_fraction(x, np.full_like(x, x.mean())) == pytest.approx(0.0)
    assert resp.explained_fraction(x, -x) < 0
    assert resp.relative_error(x, 1.1 * x) == pytest.approx(0.1)
    t = np.arange(100.0)
    curve = (t - 30.0) ** 2
    assert resp.turning_point(t, curve, "min") == (30.0, 900.0)
    assert np.isnan(resp.turning_point(t, -t, "min")[0])  # monotone: no turn
    assert resp.turning_point(t, -curve, "max")[0] == 30.0
    assert np.isnan(resp.turning_point(t, curve, "min", margin=1000.0)[0])
    assert resp.turning_point(t, np.cos(t / 10.0), "max", after=40)[0] == pytest.approx(63.0, abs=1)


def test_per_seed_kernels_and_sigmoid_factor():
    h = np.arange(17.0)
    prof = np.stack([0.4 * (1 - 0.03 * h), 0.2 * (1 + 0.05 * h)])  # one decreasing, one increasing kernel
    slopes, r2 = resp.per_seed_kernels(prof)
    np.testing.assert_allclose(slopes, [-0.03, 0.05], atol=1e-12)
    np.testing.assert_allclose(r2, 1.0)
    np.testing.assert_allclose(resp.sigmoid_factor(np.array([0.5, 0.1])), [1 / 16, 0.09 ** 2])


def test_exponent_drift_tells_a_power_law_from_a_curved_decay():
    rng = np.random.default_rng(2)
    t = np.arange(0, 810, 10.0)
    pure = np.maximum(t, 1.0) ** -0.6 * np.exp(0.05 * rng.standard_normal((40, t.size)))
    d = resp.exponent_drift(t, pure, 50, n_boot=200)
    assert d["value"] < 0.1 and d["upper95"] < 0.2 and abs(d["early"] - 0.6) < 0.05
    curved = np.exp(-t / 300.0) * np.exp(0.05 * rng.standard_normal((40, t.size)))
    assert resp.exponent_drift(t, curved, 50, n_boot=200)["value"] > 0.5
    # The fit-start table and the doubling windows see the same exponent for a pure power law.
    table = resp.fit_start_table(t, pure, n_boot=50)
    assert set(table) == {10, 20, 50, 100} and all(abs(v["tau"] - 0.6) < 0.05 for v in table.values())
    windows = resp.windowed_exponents(t, pure, 50, n_boot=50)
    assert [w["window"] for w in windows] == [[50, 100], [100, 200], [200, 400], [400, 800]]
    assert all(abs(w["tau"] - 0.6) < 0.08 for w in windows)


def test_frozen_ntk_errors_and_horizon():
    # A response that is exactly 2 lr Theta(t) (MSE): the kernel of e0 predicts later responses
    # only while the kernel has not moved: error |Theta(t) / Theta(e0) - 1|.
    lr = 0.1
    t = np.arange(0, 101, 10.0)
    theta = (1.0 + t / 20.0)[None, :, None] ** -0.5 * np.ones((3, 1, 5))  # (seed, time, probe)
    f = np.full((3, t.size), 0.3)
    y = np.ones((3, t.size))
    dl_df = 2 * (f - y)
    response = 2 * lr * theta
    errs = resp.frozen_ntk_errors(response, theta, dl_df, y, f, lr, np.array([0, 5]))
    assert np.isnan(errs[:, 1, :5]).all()
    expected = np.abs(theta[0, 0, 0] / theta[0, :, 0] - 1.0)
    np.testing.assert_allclose(errs[0, 0], expected, atol=1e-12)
    hz = resp.horizon(errs[:, 0], t, 0, 0.1)
    first = t[np.flatnonzero(expected > 0.1)[0]]
    np.testing.assert_array_equal(hz, first)


def test_smooth_log_time_keeps_early_changes_and_averages_late_noise():
    t = np.arange(0, 401, 2.0)
    rng = np.random.default_rng(3)
    curve = np.where(t < 10, 1.0 - t / 10, 0.0) + 0.05 * rng.standard_normal(t.size)
    s = resp.smooth_log_time(t, curve[None], 0.15)[0]
    assert abs(s[0] - curve[0]) < 0.05  # the first records are hardly smoothed
    assert np.std(s[t > 100]) < 0.3 * np.std(curve[t > 100])
    np.testing.assert_allclose(resp.smooth_log_time(t, np.ones((2, t.size))), 1.0)
