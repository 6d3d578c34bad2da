"""saxe-reduction: gradient descent on the three-layer net vs the alpha/beta ODE; the claims
read the decision layer's change, and fail on broken variants of the science."""

import dataclasses

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError, saxe_reduction
from jaxdyn.experiments.saxe_reduction import EXPERIMENT, SaxeReductionConfig
from jaxdyn.store import execute
from jaxdyn.theory import saxe


@pytest.fixture(scope="module")
def runs():
    quick = SaxeReductionConfig.quick()
    return {lr: execute(EXPERIMENT, dataclasses.replace(quick, lr=lr)) for lr in (0.01, quick.lr)}


def _claims(result):
    return {c.id: c for c in result.claims}


def _analyse(config, ds, **replace):
    """Re-runs the claim analysis on the stored arrays, with some of them replaced (a broken variant)."""
    arrays = dict(deltas=ds["delta_deg"].values, beta0s=ds["beta0"].values, v=ds["v"].values, alpha_sim=ds["alpha_sim"].values,
                  beta_sim=ds["beta_sim"].values, residual=ds["off_manifold_residual"].values, alpha_th=ds["alpha_theory"].values,
                  beta_th=ds["beta_theory"].values, diverged_at=ds["diverged_at"].values, ode_ok=ds["ode_ok"].values.astype(bool),
                  ode_message=[str(m) for m in ds["ode_message"].values])
    arrays.update(replace)
    found, _ = saxe_reduction.analyse(config, **arrays)
    return {c.id: c for c in found}


def test_dataset_layout(runs):
    q = SaxeReductionConfig.quick()
    ds = runs[q.lr].dataset
    members = len(q.deltas) * len(q.beta0s)
    for name in ("alpha_sim", "beta_sim", "alpha_theory", "beta_theory"):
        assert ds[name].dims == ("seed", "time") and ds[name].shape[0] == members
    # Members are selected by condition as the README shows: one member per (beta0, delta) pair.
    assert ds.isel(seed=(ds.beta0 == q.beta0s[1]) & (ds.delta_deg == q.deltas[1])).sizes["seed"] == 1
    assert ds.set_xindex("beta0").sel(beta0=q.beta0s[1]).sizes["seed"] == len(q.deltas)
    # The conditions are coordinates on seed; the initial weights and inputs are stored.
    for name in ("c", "v", "beta0", "delta_deg", "lr"):
        assert name in ds.coords and ds[name].dims == ("seed",)
    np.testing.assert_allclose(ds["W1_initial"].values, np.stack([ds["g_plus"].values, ds["g_minus"].values], -1))
    d = ds["g_plus"].values - ds["g_minus"].values
    np.testing.assert_allclose(ds["W2_initial"].values, ds["beta0"].values[:, None] * d, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ds["time"].values, ds["step"].values * q.lr)
    assert (ds["alpha_sim"].values[:, 0] == 0).all()
    np.testing.assert_allclose(ds["beta_sim"].values[:, 0], ds["beta0"].values, rtol=1e-5, atol=1e-7)


def test_deviation_is_first_order_in_the_learning_rate(runs):
    # Gradient descent is the Euler discretisation of the ODE with step lr, so the global error
    # is proportional to lr: halving lr halves the largest deviation.
    q = SaxeReductionConfig.quick()
    big, small = runs[0.01].numbers["max_abs_deviation"], runs[q.lr].numbers["max_abs_deviation"]
    assert 1.8 < big / small < 2.2, (big, small)
    assert small / q.lr < 2.0


def test_every_claim_holds_at_quick_size_and_follows_the_contract(runs):
    result = runs[SaxeReductionConfig.quick().lr]
    claims = _claims(result)
    assert set(claims) == {"follows-ode", "stays-on-family", "conserved-quantity", "decision-change-exceeds", "ordering-flip", "flip-point",
                           "small-t-asymptote", "large-alpha-limit", "beta-exceeds-sqrt2-alpha", "precision-trend"}
    for c in claims.values():
        assert c.threshold_source and (c.source is not None) == (c.kind == "paper") and np.isfinite(c.value), c.id
    assert claims["beta-exceeds-sqrt2-alpha"].kind == "sanity"
    assert all(c.held for c in claims.values()), [c.to_dict() for c in claims.values() if not c.held]
    # Per-member claims carry their fractions and the value at initialisation (0: nothing has changed).
    change = claims["decision-change-exceeds"]
    assert change.fraction_held == 1.0 and change.initial == 0.0 and change.excluded > 0


def test_the_ordering_of_changes_flips_at_one_over_sqrt2(runs):
    ds, n = runs[SaxeReductionConfig.quick().lr].dataset, runs[SaxeReductionConfig.quick().lr].numbers
    margin = saxe_reduction.change_margin(ds["alpha_sim"].values, ds["beta_sim"].values, ds["beta0"].values)[:, 1:]
    below = ds["beta0"].values < 1 / np.sqrt(2)
    assert (margin[below] > 0).all() and (margin[~below] < 0).all()
    # Reading beta itself (not its change) shows no flip at all: it exceeds sqrt(2) alpha everywhere.
    assert (ds["beta_sim"].values[:, 1:] > np.sqrt(2) * ds["alpha_sim"].values[:, 1:]).all()
    # The interpolated flip point of the simulation is the theory's on the same grid, and near 1/sqrt(2).
    np.testing.assert_allclose(n["change_order_flip_beta0_sim"], n["change_order_flip_beta0_theory_same_grid"], atol=1e-3)
    np.testing.assert_allclose(n["change_order_flip_beta0_sim"], 1 / np.sqrt(2), atol=0.01)


def test_claims_fail_when_alpha_is_read_with_its_sign_flipped(runs):
    result = runs[SaxeReductionConfig.quick().lr]
    broken = _analyse(SaxeReductionConfig.quick(), result.dataset, alpha_sim=-result.dataset["alpha_sim"].values)
    for cid in ("follows-ode", "small-t-asymptote", "large-alpha-limit", "ordering-flip"):
        assert not broken[cid].held, cid
    # The strength claim passes anyway: that is why it is a sanity check, not the poster's claim.
    assert broken["beta-exceeds-sqrt2-alpha"].held


def test_claims_fail_when_beta_is_read_instead_of_its_change(runs):
    result = runs[SaxeReductionConfig.quick().lr]
    ds = result.dataset
    # Analysing with beta0 = 0 everywhere reads beta - 0 = beta as the decision layer's change.
    broken = _analyse(SaxeReductionConfig.quick(), ds, beta0s=np.zeros(ds.sizes["seed"]))
    assert not broken["ordering-flip"].held
    assert not broken["flip-point"].held  # no flip in the strengths: no bracket, NaN


def test_claims_fail_when_a_gradient_term_is_dropped_from_the_theory(runs, monkeypatch):
    q = SaxeReductionConfig.quick()
    ds = runs[q.lr].dataset

    def no_coupling(t, y, args):  # tau d(beta)/dt without its (1 + 2 alpha) factor
        alpha, beta = y
        c, v = args
        error = c - v * beta * (1.0 + 2.0 * alpha)
        return (beta * error, error)

    monkeypatch.setattr(saxe, "alpha_beta_vector_field", no_coupling)
    ode = saxe.solve_alpha_beta(ds["beta0"].values, ds["c"].values, ds["v"].values, ds["time"].values, rtol=q.rtol, atol=q.rtol * 1e-2)
    broken = _analyse(q, ds, alpha_th=np.asarray(ode.ys[0], np.float64), beta_th=np.asarray(ode.ys[1], np.float64))
    assert not broken["follows-ode"].held


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(lr=0.0), "lr: must be > 0"),
        (dict(lr=float("nan")), "lr: expected a finite number"),
        (dict(deltas=(5.0, 120.0)), r"deltas\[1\]: must be <= 90"),
        (dict(beta0s=()), "beta0s: expected between 1"),
        (dict(beta0s=(-0.1,)), r"beta0s\[0\]: must be >= 0"),
        (dict(num_neurons=2.5), "num_neurons: expected an integer"),
        (dict(record_every=True), "record_every: expected an integer"),
        (dict(duration=1e4, lr=1e-3), "duration: .* over 5,000,000 steps"),
    ],
)
def test_invalid_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(SaxeReductionConfig(), **overrides)


def test_zero_beta0_is_accepted():
    assert dataclasses.replace(SaxeReductionConfig.quick(), beta0s=(0.0, 0.5)).beta0s == (0.0, 0.5)
