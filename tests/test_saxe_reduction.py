"""saxe-reduction: gradient descent on the three-layer net vs the alpha/beta ODE."""

import dataclasses

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments.saxe_reduction import EXPERIMENT, SaxeReductionConfig
from jaxdyn.store import execute


@pytest.fixture(scope="module")
def runs():
    quick = SaxeReductionConfig.quick()
    return {lr: execute(EXPERIMENT, dataclasses.replace(quick, lr=lr)) for lr in (0.02, 0.01)}


def test_dataset_layout(runs):
    ds = runs[0.01].dataset
    members = len(SaxeReductionConfig.quick().deltas) * len(SaxeReductionConfig.quick().beta0s)
    for name in ("alpha_sim", "beta_sim", "alpha_theory", "beta_theory"):
        assert ds[name].dims == ("seed", "time")
        assert ds[name].shape[0] == members
    for name in ("c", "v", "beta0", "lr"):
        assert ds[name].dims == ("seed",)
    # time is in units of tau: step * lr.
    np.testing.assert_allclose(ds["time"].values, ds["step"].values * 0.01)
    assert (ds["alpha_sim"].values[:, 0] == 0).all()
    np.testing.assert_allclose(ds["beta_sim"].values[:, 0], ds["beta0"].values, rtol=1e-6)


def test_deviation_is_first_order_in_the_learning_rate(runs):
    # Gradient descent is the Euler discretisation of the ODE with step lr, so the global error
    # is proportional to lr: halving lr halves the largest deviation.
    big, small = runs[0.02].numbers["max_abs_deviation"], runs[0.01].numbers["max_abs_deviation"]
    assert 1.8 < big / small < 2.2, (big, small)
    # And the constant is of order one in units of lr (the dynamics' scale is O(1) here).
    assert small / 0.01 < 2.0


def test_reduction_conservation_and_ordering(runs):
    s = runs[0.01].numbers
    assert s["diverged_members"] == 0 and s["ode_failures"] == []
    # The weights never leave the two-parameter family (float32 rounding only).
    assert s["max_off_manifold_residual"] < 1e-4
    # The ODE conserves (1+2a)^2/2 - b^2 to solver tolerance; GD to first order in lr.
    assert s["max_conserved_drift_theory"] < 1e-4
    assert s["max_conserved_drift_simulation"] < 2.0 * 0.01
    assert runs[0.02].numbers["max_conserved_drift_simulation"] > 1.5 * s["max_conserved_drift_simulation"]
    assert s["beta_gt_sqrt2_alpha_held"] and s["min_beta_minus_sqrt2_alpha"] > 0
    # Training converges: the output reaches the target c.
    assert s["max_final_output_error"] < 1e-2


def test_claims_follow_the_contract(runs):
    claims = {c.id: c for c in runs[0.01].claims}
    assert set(claims) == {"follows-ode", "stays-on-family", "conserved-quantity", "beta-exceeds-sqrt2-alpha", "precision-trend"}
    for c in claims.values():
        assert c.kind in ("paper", "extension", "sanity") and c.threshold_source
        assert (c.source is not None) == (c.kind == "paper")
        assert np.isfinite(c.value)


def test_default_run_meets_the_tolerance():
    # The CLI's default size (15 conditions, 5000 steps at lr = 0.002): every claim holds.
    result = execute(EXPERIMENT, SaxeReductionConfig())
    assert result.numbers["max_abs_deviation"] < 1e-2
    assert all(c.held for c in result.claims), [c.to_dict() for c in result.claims]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(lr=0.0), "lr: must be > 0"),
        (dict(lr=float("nan")), "lr: expected a finite number"),
        (dict(deltas=(5.0, 120.0)), r"deltas\[1\]: must be <= 90"),
        (dict(beta0s=()), "beta0s: expected between 1"),
        (dict(num_neurons=2.5), "num_neurons: expected an integer"),
        (dict(record_every=True), "record_every: expected an integer"),
        (dict(duration=1e4, lr=1e-3), "duration: .* over 5,000,000 steps"),
    ],
)
def test_invalid_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(SaxeReductionConfig(), **overrides)
