"""saxe-modes: the 2014 closed form where it is exact (aligned, balanced, small u0), the random-init
extension, and learning time over depth."""

import dataclasses

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments.saxe_modes import EXPERIMENT, SaxeModesConfig
from jaxdyn.store import execute
from jaxdyn.theory import saxe


@pytest.fixture(scope="module")
def run():
    return execute(EXPERIMENT, SaxeModesConfig.quick())


def test_dataset_layout(run):
    ds, q = run.dataset, SaxeModesConfig.quick()
    n_aligned = len(q.aligned_u0_fracs) * q.aligned_seeds
    assert ds["u_sim"].dims == ("seed", "time", "mode") and ds.sizes["seed"] == q.seeds + n_aligned
    assert list(ds["start"].values) == ["small_random"] * q.seeds + ["aligned"] * n_aligned
    np.testing.assert_allclose(ds["s"].values, q.strengths)
    # What recomputing the claims needs: initial weights, the task's U, S, V and inputs.
    w_tot0 = np.einsum("soh,shi->soi", ds["W2_initial"].values, ds["W1_initial"].values)
    u0 = np.einsum("sok,soi,sik->sk", ds["U"].values, w_tot0, ds["V"].values)
    np.testing.assert_allclose(u0, ds["u0_measured"].values, atol=1e-6)
    np.testing.assert_allclose(ds["sigma_yx"].values, np.einsum("sok,k,sik->soi", ds["U"].values, ds["s"].values, ds["V"].values), atol=1e-6)
    np.testing.assert_allclose(ds["x"].values, np.broadcast_to(np.eye(len(q.strengths)), ds["x"].shape))
    assert ds["depth_learning_steps"].dims == ("depth", "init", "replica")
    assert ds["depth_W_initial"].dims == ("depth", "init", "replica", "layer", "row", "col")
    np.testing.assert_allclose(ds["depth_lr"].values, q.lr0 / np.asarray(q.depths))


def test_aligned_members_start_where_the_closed_form_is_exact(run):
    ds = run.dataset
    aligned = ds["start"].values == "aligned"
    s = ds["s"].values
    u0 = ds["u0_frac"].values[aligned, None] * s
    np.testing.assert_allclose(ds["u0_measured"].values[aligned], u0, rtol=1e-4)
    np.testing.assert_allclose(ds["u0_effective"].values[aligned], u0, rtol=1e-4)  # balanced: p0 = u0
    assert np.abs(ds["m0_effective"].values[aligned]).max() < 1e-6 * u0.max()  # and m0 = 0
    dev = np.max(np.abs(ds["u_sim"].values[aligned] - ds["u_theory"].values[aligned]), axis=1) / s
    assert dev.max() < 0.02
    # A wrong u0 (the fraction instead of frac * s) misses the closed form by far.
    wrong = np.asarray(saxe.mode_strength(ds["time"].values[None, :, None], s, ds["u0_frac"].values[aligned, None, None]))
    assert (np.max(np.abs(ds["u_sim"].values[aligned] - wrong), axis=(1, 2)) / s.max() > 0.1).all()


def test_learning_time_scalings(run):
    ds, n = run.dataset, run.numbers
    aligned = ds["start"].values == "aligned"
    s = ds["s"].values
    t = ds["learning_time_sim"].values[aligned]
    # t s is one number per frac (t proportional to 1/s) ...
    ts = t * s
    assert (ts.std(axis=1) / ts.mean(axis=1) < 0.02).all()
    np.testing.assert_allclose(n["aligned_loglog_slope_time_vs_s"], -1.0, atol=0.02)
    # ... and 2 s dt/d ln(1/u0) = 1 over the sweep of u0.
    np.testing.assert_allclose(n["aligned_2s_slope_time_vs_log_inv_u0"], 1.0, atol=0.03)


def test_random_init_is_reported_as_an_extension(run):
    s, claims = run.numbers, {c.id: c for c in run.claims}
    assert s["diverged_members_part1"] == 0
    # Each mode follows u(t) with u0 its growing component off the stronger modes; with its own u0
    # the weak modes are late (that reading is reported, not held).
    assert s["max_rel_deviation_closed_form"] < 0.05
    assert s["max_rel_deviation_closed_form_own_u0"] > 2 * s["max_rel_deviation_closed_form"]
    assert not claims["random-closed-form-own-u0"].held
    for cid in ("random-closed-form-effective-u0", "random-learning-time-effective-u0", "random-closed-form-own-u0", "random-unaligned-exact"):
        assert claims[cid].kind == "extension" and claims[cid].statement.startswith("extension")
    t = np.asarray(s["learning_time_sim_mean_by_mode"])
    assert (np.diff(t) > 0).all()  # strengths are given strongest first


def test_depth_dependence(run):
    s = run.numbers
    assert s["diverged_members_part2"] == 0 and s["ode_failures_part2"] == []
    assert s["max_rel_error_balanced_learning_time"] < 0.05
    ratio = s["learning_steps_ratio_max_min"]
    assert ratio["balanced"] < 1.5 and ratio["orthogonal"] < 1.5
    steps = np.asarray(s["learning_steps_by_depth"]["small_random"])
    assert (np.diff(steps) > 0).all() and steps[-1] > 5 * steps[0]


def test_claims(run):
    claims = {c.id: c for c in run.claims}
    paper = {cid for cid, c in claims.items() if c.kind == "paper"}
    assert {"aligned-closed-form", "aligned-learning-time", "aligned-time-inverse-s", "aligned-time-log-u0", "stronger-first"} <= paper
    for c in claims.values():
        assert c.threshold_source and (c.source is not None) == (c.kind == "paper")
    assert all(c.held for cid, c in claims.items() if cid != "random-closed-form-own-u0"), [c.to_dict() for c in claims.values() if not c.held]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(strengths=(1.0, 1.0)), "strengths: values must be distinct"),
        (dict(strengths=(1.0, -1.0)), r"strengths\[1\]: must be > 0"),
        (dict(hidden=2, strengths=(3.0, 2.0, 1.0)), "hidden: must be at least"),
        (dict(depths=(2, 1)), r"depths\[1\]: must be >= 2"),
        (dict(u0_frac=1.5), "u0_frac: must be <= 1"),
        (dict(aligned_u0_fracs=(1e-3,)), "aligned_u0_fracs: expected between 2"),
        (dict(aligned_u0_fracs=(1e-8, 1e-3)), "duration: the weakest mode from u0 = 1e-08 s"),
    ],
)
def test_invalid_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(SaxeModesConfig(), **overrides)
