"""The logistic learning decomposition on curves with known components."""

import math
import warnings

import numpy as np
import pytest

from jaxdyn.analysis import lld

T = np.arange(61.0)
TRUE = dict(baseline=0.2, onset=[22.0, 30.0], rate=[0.8, 0.25], amplitude=[0.35, 0.43])


def two_logistics(t=T):
    return lld.lld_curve(t, TRUE["baseline"], TRUE["onset"], TRUE["rate"], TRUE["amplitude"])


def test_logistic_component():
    np.testing.assert_allclose(lld.logistic(np.array([5.0]), 5.0, 2.0, 0.6), [0.3])
    np.testing.assert_allclose(lld.logistic(np.array([5.0 + math.log(3) / 2]), 5.0, 2.0, 1.0), [0.75])
    assert np.isfinite(lld.logistic(np.array([-1e6, 1e6]), 0.0, 10.0, 1.0)).all()


@pytest.fixture(scope="module")
def exact():
    return lld.fit_lld_models(T, two_logistics(), (1, 2, 3))


def test_exact_sum_of_two_logistics_is_recovered(exact):
    f = exact.fits[2]
    assert f.success and f.r2 > 1 - 1e-10
    np.testing.assert_allclose(f.onset, TRUE["onset"], rtol=1e-5)
    np.testing.assert_allclose(f.rate, TRUE["rate"], rtol=1e-4)
    np.testing.assert_allclose(f.amplitude, TRUE["amplitude"], rtol=1e-4)
    assert abs(f.baseline - TRUE["baseline"]) < 1e-5
    np.testing.assert_allclose(f.components(T).sum(0) + f.baseline, two_logistics(), atol=1e-6)
    # One logistic cannot represent it: a clear systematic residual.
    f1 = exact.fits[1]
    assert f1.success and 0.95 < f1.r2 < 0.999
    # The third component of K=3 is redundant: zero amplitude or a duplicate, hence an
    # undetermined onset/rate with an infinite standard error.
    f3 = exact.fits[3]
    assert f3.r2 > 1 - 1e-8
    assert np.isinf(np.concatenate([f3.onset_se, f3.rate_se, f3.amplitude_se])).any()


def test_information_criteria_formula():
    aic, aicc, bic = lld.information_criteria(2.0, 50, 4)
    ll = 50 * math.log(2.0 / 50)
    assert aic == pytest.approx(ll + 8)
    assert aicc == pytest.approx(ll + 8 + 2 * 4 * 5 / 45)
    assert bic == pytest.approx(ll + 4 * math.log(50))


def test_model_choice_with_noise():
    rng = np.random.default_rng(0)
    noisy2 = two_logistics() + 0.005 * rng.standard_normal(T.size)
    assert lld.fit_lld_models(T, noisy2, (1, 2, 3)).best == 2
    one = lld.lld_curve(T, 0.2, [25.0], [0.3], [0.75]) + 0.005 * rng.standard_normal(T.size)
    res = lld.fit_lld_models(T, one, (1, 2, 3), criterion="bic")
    assert res.best == 1
    assert res.fits[1].r2 > 0.999 and abs(res.fits[1].onset[0] - 25.0) < 0.3


def test_standard_errors_match_the_spread_over_noise():
    # The Jacobian error of the onset should match its actual scatter over noise realisations.
    rng = np.random.default_rng(1)
    onsets, ses = [], []
    for _ in range(12):
        y = two_logistics() + 0.01 * rng.standard_normal(T.size)
        f = lld.fit_lld(T, y, 2, num_starts=4)
        onsets.append(f.onset[0])
        ses.append(f.onset_se[0])
    ratio = np.std(onsets, ddof=1) / np.mean(ses)
    assert 0.5 < ratio < 2.0, ratio


def test_decreasing_curve_and_fixed_baseline():
    loss = lld.lld_curve(T, 1.6, [20.0], [0.4], [-1.5])
    f = lld.fit_lld(T, loss, 1, direction="decreasing")
    assert f.success and f.amplitude[0] == pytest.approx(-1.5, rel=1e-4) and f.onset[0] == pytest.approx(20.0, rel=1e-4)
    f = lld.fit_lld(T, two_logistics(), 2, baseline=0.2)
    assert f.num_params == 6 and f.baseline == 0.2 and f.baseline_se == 0.0
    np.testing.assert_allclose(f.onset, TRUE["onset"], rtol=1e-4)
    # With a wrong fixed floor the fit is worse, not silently equal.
    assert lld.fit_lld(T, two_logistics(), 2, baseline=0.0).r2 < f.r2 - 1e-4


def test_fits_report_failure_instead_of_raising():
    f = lld.fit_lld(T[:5], two_logistics()[:5], 2)
    assert not f.success and "cannot determine" in f.message and np.isnan(f.onset).all()
    y = two_logistics().copy()
    y[3] = np.nan
    f = lld.fit_lld(T, y, 1)
    assert not f.success and "non-finite" in f.message
    res = lld.fit_lld_models(T[:5], two_logistics()[:5], (1, 2))
    assert res.best == 1  # only the fit that could be made is chosen
    with pytest.raises(ValueError, match="direction"):
        lld.fit_lld(T, y, 1, direction="up")


def test_across_seeds_spread():
    onsets = np.array([20.0, 22.0, 24.0])
    curves = np.stack([lld.lld_curve(T, 0.2, [o, o + 8], [0.8, 0.25], [0.35, 0.43]) for o in onsets])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = lld.across_seeds(T, curves, ks=(1, 2))
    assert summary.r2.shape == (3, 2) and (summary.best == 2).all()
    mean, sd = summary.mean_std(2)
    np.testing.assert_allclose(mean[:, 0], [22.0, 30.0], atol=1e-3)
    np.testing.assert_allclose(sd[:, 0], [2.0, 2.0], atol=1e-3)
    np.testing.assert_allclose(mean[:, 1], [0.8, 0.25], rtol=1e-3)


# ---------------------------------------------------------------------------------------------
# Autocorrelated residuals: AR(1) errors, the paper's parameter count, the sampling-noise ceiling
# ---------------------------------------------------------------------------------------------
def _ar1_noise(n, phi, scale, rng):
    e = np.zeros(n)
    e[0] = scale * rng.standard_normal() / math.sqrt(1 - phi**2)
    for i in range(1, n):
        e[i] = phi * e[i - 1] + scale * rng.standard_normal()
    return e


def test_ar1_log_likelihood_is_the_exact_gaussian_one():
    import scipy.stats

    rng = np.random.default_rng(3)
    y = lld.lld_curve(T, 0.2, [25.0], [0.3], [0.75]) + _ar1_noise(T.size, 0.7, 0.01, rng)
    f = lld.fit_lld(T, y, 1, errors="ar1", num_starts=6)
    assert f.success and 0.3 < f.phi < 0.95
    e = y - f.fitted
    # Profile sigma^2 at its MLE for this phi, then the exact multivariate normal density.
    phi = f.phi
    white = np.concatenate([[math.sqrt(1 - phi**2) * e[0]], e[1:] - phi * e[:-1]])
    s2 = np.sum(white**2) / T.size
    lags = np.abs(np.subtract.outer(np.arange(T.size), np.arange(T.size)))
    cov = s2 / (1 - phi**2) * phi**lags
    assert f.log_likelihood == pytest.approx(scipy.stats.multivariate_normal(np.zeros(T.size), cov).logpdf(e), rel=1e-6)


def test_ar1_criterion_stops_rewarding_components_for_autocorrelated_noise():
    # One logistic plus strongly autocorrelated noise (lag-1 0.85): with i.i.d. errors BIC adds
    # components to chase the wiggles; with AR(1) errors it keeps one far more often.
    rng = np.random.default_rng(0)
    picks = {"iid": [], "ar1": []}
    for _ in range(5):
        y = lld.lld_curve(T, 0.2, [25.0], [0.3], [0.75]) + _ar1_noise(T.size, 0.85, 0.006, rng)
        for errors in picks:
            picks[errors].append(lld.fit_lld_models(T, y, (1, 2, 3), errors=errors, num_starts=8).best)
    ones = {k: sum(p == 1 for p in v) for k, v in picks.items()}
    assert ones["ar1"] >= 3 and ones["ar1"] > ones["iid"], picks
    # A true two-logistic curve with mildly correlated noise still needs two.
    y = two_logistics() + _ar1_noise(T.size, 0.3, 0.006, rng)
    assert lld.fit_lld_models(T, y, (1, 2, 3), errors="ar1", num_starts=8).best == 2


def test_parameter_count_of_further_components():
    y = two_logistics() + 0.005 * np.random.default_rng(2).standard_normal(T.size)
    own = lld.fit_lld(T, y, 2, num_starts=6)
    paper = lld.fit_lld(T, y, 2, num_starts=6, extra_per_component=2)
    assert (own.num_params, paper.num_params) == (7, 6)  # 3 + 3 (+ baseline) vs 3 + 2 (+ baseline)
    assert own.bic - paper.bic == pytest.approx(math.log(T.size))
    assert own.sse == pytest.approx(paper.sse)  # the same fit, only the count differs
    with pytest.raises(ValueError, match="extra_per_component"):
        lld.fit_lld(T, y, 2, extra_per_component=0)
    with pytest.raises(ValueError, match="errors"):
        lld.fit_lld(T, y, 2, errors="ar2")


def test_sampling_noise_ceiling_and_lag1_autocorrelation():
    p = np.array([0.2, 0.5, 0.9, 0.9])
    y = np.array([0.2, 0.5, 0.9, 0.9])
    sst = np.sum((y - y.mean()) ** 2)
    assert lld.sampling_noise_ceiling(y, p, 100) == pytest.approx(1 - np.sum(p * (1 - p)) / 100 / sst)
    assert lld.sampling_noise_ceiling(y, p, 10**9) == pytest.approx(1.0)
    assert lld.lag1_autocorrelation(np.array([1.0, -1.0, 1.0, -1.0])) == pytest.approx(-0.75)
    assert math.isnan(lld.lag1_autocorrelation(np.ones(5)))
