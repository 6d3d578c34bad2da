"""saxe-depth: deep chains by gradient descent vs the scalar chain ODE; the reverse hierarchy."""

import dataclasses

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments.saxe_depth import EXPERIMENT, SaxeDepthConfig, profile_gains
from jaxdyn.store import execute


@pytest.fixture(scope="module")
def run():
    return execute(EXPERIMENT, SaxeDepthConfig.quick())


def test_dataset_layout_and_initial_gains(run):
    ds, q = run.dataset, SaxeDepthConfig.quick()
    members = len(q.depths) * (3 * q.seeds + q.random_seeds)
    assert ds["gains_sim"].dims == ("seed", "time", "layer") and ds.sizes["seed"] == members
    assert ds.sizes["layer"] == max(q.depths)
    for m in range(members):
        d = int(ds["depth"][m])
        assert np.isnan(ds["b0"].values[m, d:]).all() and np.isfinite(ds["b0"].values[m, :d]).all()
        prof = str(ds["profile"].values[m])
        if prof != "small_random":
            # The path gains read from the weights at step 0 are the profile's gains.
            np.testing.assert_allclose(ds["b0"].values[m, :d], profile_gains(prof, d, q.gain_high, q.gain_low), rtol=1e-5)
    np.testing.assert_allclose(ds["time"].values, ds["step"].values * q.lr)
    assert (ds["change_sim"].values[:, 0][np.isfinite(ds["change_sim"].values[:, 0])] == 0).all()
    # Initial weights and the stimulus are stored: the initial output v yhat . W_D ... W_1 xhat is prod b0.
    for name in ("depth", "profile", "c", "v", "lr"):
        assert name in ds.coords
    for m in range(members):
        d = int(ds["depth"][m])
        out = ds["xhat"].values[m]
        for l in range(d):
            out = ds["W_initial"].values[m, l] @ out
        np.testing.assert_allclose(ds["yhat"].values[m] @ out, np.prod(ds["b0"].values[m, :d]), rtol=1e-4, atol=1e-6)


def test_gradient_descent_follows_the_chain_ode(run):
    s = run.numbers
    assert s["diverged_members"] == 0 and s["ode_failures"] == []
    # Gradient descent is the Euler step of the flow: deviation O(lr) with an O(1) constant.
    lr = SaxeDepthConfig.quick().lr
    assert s["max_abs_deviation"] < 0.5 * lr
    assert s["max_conserved_drift_simulation"] < 0.5 * lr
    assert s["max_rel_error_final_change_aligned"] < 0.02
    assert s["max_rel_error_half_time_aligned"] < 0.03
    assert s["max_final_output_error"] < 1e-3


def test_reverse_hierarchy_in_every_ordered_member(run):
    s, ds = run.numbers, run.dataset
    assert s["ordered_members"] == 2 * len(SaxeDepthConfig.quick().depths)
    assert s["reverse_hierarchy_size_members_held"] == s["ordered_members"]
    assert s["min_size_order_margin_simulation"] > 0.02
    for m in range(ds.sizes["seed"]):
        d, prof = int(ds["depth"][m]), str(ds["profile"].values[m])
        final = ds["change_sim"].values[m, -1, :d]
        half = ds["half_time_sim"].values[m, :d]
        if prof == "poor_top":  # the top (least tuned) changes most and first
            assert np.argmax(final) == d - 1 and np.argmin(half) == d - 1
            assert (np.diff(final) > 0).all()
            # Reading the gains instead of their changes gives the opposite order: the claim reads changes.
            assert (np.diff(ds["gains_sim"].values[m, -1, :d]) < 0).all()
        elif prof == "poor_bottom":
            assert np.argmax(final) == 0 and np.argmin(half) == 0
            assert (np.diff(final) < 0).all()
    assert s["max_balanced_spread"] < 1e-4


def test_timing_is_claimed_only_where_the_margin_resolves_it(run):
    s, ds, claims = run.numbers, run.dataset, {c.id: c for c in run.claims}
    ordered = np.isin(ds["profile"].values, ("poor_top", "poor_bottom"))
    err = np.nanmax(np.abs(ds["half_time_sim"].values - ds["half_time_theory"].values) / ds["half_time_theory"].values, axis=1)
    # The least- against best-tuned gap exceeds the member's half-time error in every ordered member ...
    assert (ds["timing_extreme_gap"].values[ordered] > err[ordered]).all()
    timing = claims["reverse-hierarchy-timing"]
    assert timing.held and timing.fraction_held == 1.0
    # ... while the adjacent gaps are not resolved everywhere (they are reported, not claimed).
    assert s["adjacent_timing_resolved_members"] < s["ordered_members"]


def test_claims_and_random_init_report(run):
    s = run.numbers
    claims = {c.id: c for c in run.claims}
    assert len(claims) == 12
    for c in claims.values():
        assert c.kind in ("paper", "extension", "sanity") and c.threshold_source and np.isfinite(c.value)
    assert claims["reverse-hierarchy-size"].kind == "paper" and claims["balanced-equal"].kind == "sanity"
    for cid in ("follows-chain-ode", "chain-conserved", "final-change-matches", "half-time-matches", "reverse-hierarchy-size",
                "reverse-hierarchy-timing", "balanced-equal", "random-matrix-conserved"):
        assert claims[cid].held, claims[cid].to_dict()
    # The matrix conservation law holds from any init; the scalar chain from the measured path
    # gains is reported with its distance (it ignores the misaligned backward directions).
    assert s["random_max_matrix_conservation_drift"] < 0.5 * SaxeDepthConfig.quick().lr
    assert s["random_members"] == 2 * SaxeDepthConfig.quick().random_seeds
    for cid in ("random-output", "random-final-change", "random-half-time"):
        c = claims[cid]
        assert c.held == (c.fraction_held == 1.0) and c.per_seed is not None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(gain_low=1.0, gain_high=1.0), "gain_low: must be below gain_high"),
        (dict(depths=(3, 3)), "depths: values must be distinct"),
        (dict(depths=(1, 3)), r"depths\[0\]: must be >= 2"),
        (dict(lr=0.0), "lr: must be > 0"),
        (dict(duration=1e4, lr=1e-3), "duration: .* over 2,000,000 steps"),
        (dict(seeds=0), "seeds: must be >= 1"),
    ],
)
def test_invalid_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(SaxeDepthConfig(), **overrides)
