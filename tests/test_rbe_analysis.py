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
