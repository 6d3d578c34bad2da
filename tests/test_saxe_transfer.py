"""saxe-transfer: training at one position; transfer through pooling overlap."""

import dataclasses

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments.saxe_transfer import EXPERIMENT, SaxeTransferConfig
from jaxdyn.store import execute
from jaxdyn.tasks.perceptual import pooling_profiles


@pytest.fixture(scope="module")
def run():
    return execute(EXPERIMENT, SaxeTransferConfig.quick())


def test_trained_and_untrained_positions_follow_the_theory(run):
    s, ds, q = run.numbers, run.dataset, SaxeTransferConfig.quick()
    assert s["diverged_members"] == 0 and s["ode_failures"] == []
    assert s["max_rel_deviation_trained"] < 0.01
    assert s["max_rel_deviation_untrained_beta"] < 0.01
    assert s["max_margin_deviation_over_c"] < 0.01
    # No input reaches an untrained position: its input layer is exactly unchanged.
    a = q.trained_position
    untrained = np.arange(q.num_positions) != a
    assert float(ds["input_change_sim"].values[:, :, untrained].max()) == 0.0
    assert float(ds["input_change_sim"].values[:, -1, a].min()) > 0.05
    # The decision strength transfers by exactly the overlap c_a . c_p (< 1).
    assert s["max_transfer_factor_deviation"] < 1e-4
    factor = np.asarray(s["final_transfer_factor_sim"])
    np.testing.assert_allclose(factor, ds["overlap"].values, atol=1e-4)
    assert (ds["overlap"].values[:, untrained] < 1).all()


def test_coarse_tasks_transfer_better(run):
    ds = run.dataset
    gain = ds["margin_gain_transfer_sim"].values
    coarse = ds["delta_deg"].values == ds["delta_deg"].values.max()
    for w in np.unique(ds["pool_width"].values):
        mc = np.flatnonzero(coarse & (ds["pool_width"].values == w))[0]
        mf = np.flatnonzero(~coarse & (ds["pool_width"].values == w))[0]
        assert (gain[mc, 1:] > gain[mf, 1:]).all()
    np.testing.assert_allclose(gain, ds["margin_gain_transfer_theory"].values, atol=2e-3)


def test_claims(run):
    claims = {c.id: c for c in run.claims}
    assert len(claims) == 6
    assert all(c.held for c in claims.values()), [c.to_dict() for c in claims.values() if not c.held]
    # What holds by construction is shown apart from the poster's claims.
    assert claims["transfer-factor"].kind == claims["untrained-input-unchanged"].kind == "sanity"
    assert {c.kind for cid, c in claims.items() if cid not in ("transfer-factor", "untrained-input-unchanged")} == {"paper"}


def test_dataset_holds_conditions_and_initial_weights(run):
    ds, q = run.dataset, SaxeTransferConfig.quick()
    for name in ("pool_width", "delta_deg", "v", "c", "lr", "beta0"):
        assert name in ds.coords and ds[name].dims == ("seed",)
    np.testing.assert_allclose(ds["W1_initial"].values, np.broadcast_to(
        np.stack([ds["g_plus"].values, ds["g_minus"].values], -1)[:, None], ds["W1_initial"].shape))
    np.testing.assert_allclose(np.swapaxes(ds["pooling_stage"].values, 1, 2), ds["pooling_profile"].values, rtol=1e-6)
    # beta_p(0) = (W2 c_p) . d / |d|^2 from the stored initial weights.
    d = ds["g_plus"].values - ds["g_minus"].values
    w2c = np.einsum("snk,skp->snp", ds["W2_initial"].values, ds["pooling_stage"].values)
    np.testing.assert_allclose(np.einsum("snp,sn->sp", w2c, d) / np.sum(d * d, -1)[:, None], ds["beta_init"].values, rtol=1e-5, atol=1e-7)
    assert ds["x"].shape[1:] == (2, q.num_positions, 2)


def test_pooling_profiles():
    c = pooling_profiles(5, 1.0)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0)
    overlap = c @ c[0]
    assert overlap[0] == pytest.approx(1.0) and (np.diff(overlap) < 0).all()
    # Wider pooling, more overlap.
    assert (pooling_profiles(5, 3.0) @ pooling_profiles(5, 3.0)[0] > overlap - 1e-12).all()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(trained_position=5), "trained_position: must be below num_positions"),
        (dict(pool_widths=(0.0,)), r"pool_widths\[0\]: must be > 0"),
        (dict(pool_widths=(1.0, 1.0)), "pool_widths: values must be distinct"),
        (dict(num_positions=1), "num_positions: must be >= 2"),
    ],
)
def test_invalid_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(SaxeTransferConfig(), **overrides)
