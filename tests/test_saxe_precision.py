"""saxe-precision: which layers and which neurons change, fine vs coarse tasks."""

import dataclasses

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments.saxe_precision import EXPERIMENT, SaxePrecisionConfig
from jaxdyn.tasks.perceptual import orientation_distance, steepest_flank_offset
from jaxdyn.store import execute


@pytest.fixture(scope="module")
def run():
    return execute(EXPERIMENT, SaxePrecisionConfig.quick())


def test_simulation_matches_theory(run):
    s, ds = run.numbers, run.dataset
    assert s["diverged_members"] == 0 and s["ode_failures"] == []
    assert s["max_rel_deviation"] < 0.01
    assert float(ds["off_manifold_residual"].max()) < 1e-3
    assert s["max_profile_deviation"] < 0.01
    np.testing.assert_allclose(s["change_ratio_dW1_over_dW2_sim"], s["change_ratio_dW1_over_dW2_theory"], atol=5e-3)


def test_precision_decides_which_layers_change(run):
    s = run.numbers
    deltas = np.asarray(s["deltas"])
    ratio = np.asarray(s["change_ratio_dW1_over_dW2_sim"])
    coarse, fine = np.argmax(deltas), np.argmin(deltas)
    assert ratio[coarse] < 0.45 and ratio[fine] > 0.9  # the fine-task limit is 1 (beta / alpha -> sqrt 2)
    assert s["spearman_v_vs_change_ratio"] == pytest.approx(-1.0)
    alpha, beta = np.asarray(s["final_alpha_sim"]), np.asarray(s["final_beta_sim"])
    assert (beta > np.sqrt(2) * alpha).all()


def test_most_informative_neurons_change_most(run):
    s, ds, q = run.numbers, run.dataset, SaxePrecisionConfig.quick()
    deltas = np.asarray(s["deltas"])
    spacing = 180.0 / q.num_neurons
    fine, coarse = int(np.argmin(deltas)), int(np.argmax(deltas))
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
    claims = [c.to_dict() for c in run.claims]
    assert len(claims) == 9
    assert all(c["held"] for c in claims), [c for c in claims if not c["held"]]


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
    ],
)
def test_invalid_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(SaxePrecisionConfig(), **overrides)
