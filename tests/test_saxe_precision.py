"""saxe-precision: which layers and which neurons change; the change ratio against c/v over decades."""

import dataclasses

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments.saxe_precision import EXPERIMENT, SaxePrecisionConfig, power_law_slope
from jaxdyn.store import execute
from jaxdyn.tasks.perceptual import orientation_distance, steepest_flank_offset
from jaxdyn.theory import saxe


@pytest.fixture(scope="module")
def run():
    return execute(EXPERIMENT, SaxePrecisionConfig.quick())


def test_dataset_holds_conditions_initial_weights_and_inputs(run):
    ds, q = run.dataset, SaxePrecisionConfig.quick()
    assert ds.sizes["seed"] == len(q.deltas) + len(q.coarse_targets)
    for name in ("c", "v", "c_over_v", "delta_deg", "beta0", "lr", "sweep"):
        assert name in ds.coords and ds[name].dims == ("seed",)
    np.testing.assert_allclose(ds["W1_initial"].values, np.stack([ds["g_plus"].values, ds["g_minus"].values], -1))
    np.testing.assert_allclose(ds["y"].values[:, 0, 0], ds["c"].values, rtol=1e-6)
    assert "units" in ds["dW1_sim"].attrs


def test_simulation_matches_theory(run):
    s, ds = run.numbers, run.dataset
    assert s["diverged_members"] == 0 and s["ode_failures"] == []
    assert s["max_rel_deviation"] < 0.01
    assert float(ds["off_manifold_residual"].max()) < 1e-3
    assert s["max_profile_deviation"] < 0.01
    np.testing.assert_allclose(s["change_ratio_dW1_over_dW2_sim"], s["change_ratio_dW1_over_dW2_theory"], atol=5e-3)


def test_the_change_ratio_vanishes_as_c_over_v_goes_to_zero(run):
    s = run.numbers
    cv, ratio = np.asarray(s["c_over_v"]), np.asarray(s["change_ratio_dW1_over_dW2_sim"])
    assert s["c_over_v_decades"] >= 2
    order = np.argsort(cv)
    assert (np.diff(ratio[order]) > 0).all()  # one monotone curve over both sweeps
    assert ratio[order[0]] < 0.02 and ratio[order[-1]] > 0.9  # toward 0 for coarse, toward 1 for fine
    # The lowest decade vanishes linearly: ratio ~ c / (sqrt(2) v) for beta0 = 0.
    assert 0.9 < s["coarse_limit_loglog_slope_sim"] < 1.1
    np.testing.assert_allclose(ratio[order[0]], cv[order[0]] / np.sqrt(2), rtol=0.05)
    # Both sweeps lie on the fixed point's ratio, a function of c/v alone.
    np.testing.assert_allclose(ratio, s["change_ratio_dW1_over_dW2_fixed_point"], atol=5e-3)


def test_the_vanishing_claim_can_fail():
    # With a decision layer that starts strong (beta0 = 0.1) the lower layer keeps a share as c/v -> 0
    # (the ratio floors at beta0 / sqrt(2)): the fitted power on the lowest decade falls below the
    # claim's threshold 1/2, so the claim tests the limit, not merely a falling ratio.
    cv = np.array([0.011, 0.033, 0.11])
    for beta0, below in ((0.1, True), (0.0, False)):
        ratio = saxe.change_ratio(*saxe.final_alpha_beta(cv, beta0), beta0)
        assert (power_law_slope(cv, ratio) < 0.5) == below


def test_most_informative_neurons_change_most(run):
    s, ds, q = run.numbers, run.dataset, SaxePrecisionConfig.quick()
    deltas = np.asarray(s["deltas"])
    sweep = ds["sweep"].values
    spacing = 180.0 / q.num_neurons
    by_delta = np.flatnonzero(sweep == "delta")
    fine, coarse = by_delta[np.argmin(deltas[by_delta])], by_delta[np.argmax(deltas[by_delta])]
    most = np.asarray(s["most_changed_preferred_deg"])
    # Fine task: the flank, about 19.3 deg (kappa = 2) from the reference orientation.
    assert abs(orientation_distance(most[fine], q.theta0) - steepest_flank_offset(q.kappa)) <= spacing
    # Coarse task: a stimulus orientation (tuning peak), theta0 +- 45.
    assert min(orientation_distance(most[coarse], q.theta0 + 45), orientation_distance(most[coarse], q.theta0 - 45)) <= spacing / 2
    # Neurons tuned to the reference (equal response to both stimuli) do not change.
    ref = int(np.argmin(orientation_distance(ds["preferred_deg"].values, q.theta0)))
    change = ds["neuron_change_sim"].values[:, -1]
    assert (change[:, ref] < 1e-3 * change.max(1)).all()
    assert s["min_profile_vs_informativeness_r"] > 0.9999


def test_claims(run):
    claims = {c.id: c for c in run.claims}
    assert set(claims) == {"follows-ode", "coarse-limit-vanishes", "ratio-rises-with-c-over-v", "fine-changes-both", "ratio-matches",
                           "ratio-fixed-point", "profile-matches", "fine-flank", "coarse-peak", "profile-informativeness"}
    assert claims["profile-matches"].kind == claims["profile-informativeness"].kind == "sanity"
    assert all(c.held for c in claims.values()), [c.to_dict() for c in claims.values() if not c.held]


def test_flank_offset_formula():
    # The steepest point of exp(kappa (cos 2x - 1)) by brute force.
    x = np.linspace(0, 90, 900_001)
    for kappa in (0.5, 2.0, 8.0):
        slope = np.abs(np.gradient(np.exp(kappa * (np.cos(np.deg2rad(2 * x)) - 1)), x))
        assert steepest_flank_offset(kappa) == pytest.approx(x[np.argmax(slope)], abs=1e-3)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(deltas=(5.0,)), "deltas: expected between 2"),
        (dict(deltas=(5.0, 5.0)), "deltas: values must be distinct"),
        (dict(deltas=(5.0, 95.0)), r"deltas\[1\]: must be <= 90"),
        (dict(c=0.0), "c: must be > 0"),
        (dict(num_neurons=3), "num_neurons: must be >= 4"),
        (dict(deltas=(60.0, 90.0), coarse_targets=()), "coarse_targets: c/v must span at least two decades"),
        (dict(coarse_targets=(0.01, 0.3, 1.0)), "coarse_targets: the c/v -> 0 trend needs at least 3 members"),
        (dict(beta0=1.0, coarse_targets=(0.01, 0.03, 0.1)), "beta0: 1.0 starts some member"),
    ],
)
def test_invalid_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(SaxePrecisionConfig(), **overrides)
