"""saxe-topologies: parallel vs serial structure trained from one informativeness profile."""

import dataclasses

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments.saxe_topologies import EXPERIMENT, SaxeTopologiesConfig, informativeness_profiles, order_margin
from jaxdyn.store import execute
from jaxdyn.theory import saxe


@pytest.fixture(scope="module")
def run():
    return execute(EXPERIMENT, SaxeTopologiesConfig.quick())


def test_both_topologies_start_from_the_same_profile(run):
    ds, q = run.dataset, SaxeTopologiesConfig.quick()
    p = informativeness_profiles(q)
    np.testing.assert_allclose(ds["informativeness"].values, p)
    np.testing.assert_allclose(ds["serial_w_initial"].values, p)
    np.testing.assert_allclose(ds["serial_w_sim"].values[:, 0], p, rtol=1e-6)
    np.testing.assert_allclose(ds["parallel_w_sim"].values[:, 0], q.parallel_w0, atol=1e-7)
    # Distinct values, sorted neighbours at least half a stratum apart.
    gaps = np.diff(np.sort(p, axis=1), axis=1)
    assert (gaps >= 0.5 * (q.profile_high - q.profile_low) / q.size - 1e-12).all()


def test_theory_beside_simulation(run):
    s = run.numbers
    assert s["diverged_members_parallel"] == s["diverged_members_serial"] == 0 and s["ode_failures"] == []
    lr = SaxeTopologiesConfig.quick().lr
    assert s["max_rel_deviation_parallel"] < lr and s["max_rel_deviation_serial"] < lr
    assert s["max_final_output_error_parallel"] < 1e-3 and s["max_final_output_error_serial"] < 1e-3


def test_opposite_orderings_from_one_profile(run):
    ds = run.dataset
    p = ds["informativeness"].values
    dw = np.abs(ds["parallel_w_sim"].values[:, -1] - ds["parallel_w_initial"].values)
    db = np.abs(ds["serial_w_sim"].values[:, -1] - p)
    for i in range(p.shape[0]):
        assert np.argmax(dw[i]) == np.argmax(p[i]) and np.argmax(db[i]) == np.argmin(p[i])
        assert order_margin(p[i], dw[i]) > 0 and order_margin(-p[i], db[i]) > 0
        # Reading the serial layers' strengths instead of their changes gives the parallel order,
        # so the claim reads changes.
        assert order_margin(p[i], ds["serial_w_sim"].values[i, -1]) > 0
    # Serial closed form: every layer's change is sqrt(p^2 + q) - p with one shared q (gradient
    # descent keeps the first integral to O(lr)).
    q = ds["serial_w_sim"].values[:, -1, 0] ** 2 - p[:, 0] ** 2
    np.testing.assert_allclose(db, np.asarray(saxe.chain_layer_change(p, q)), rtol=0.5 * SaxeTopologiesConfig.quick().lr)


def test_claims(run):
    claims = {c.id: c for c in run.claims}
    assert set(claims) == {"parallel-most-informative", "serial-least-informative", "parallel-closed-form", "serial-chain-ode", "serial-conserved"}
    assert claims["serial-least-informative"].kind == "paper" and claims["parallel-most-informative"].kind == "sanity"
    assert all(c.held for c in claims.values()), [c.to_dict() for c in claims.values() if not c.held]
    assert claims["serial-least-informative"].fraction_held == 1.0 and claims["serial-least-informative"].initial == 0.0


def test_serial_claim_fails_without_the_coupling(run):
    # With independent layers (each rate without the product of the others) every layer moves at
    # the same rate and the ordering claim's per-seed value is not positive.
    ds = run.dataset
    p = ds["informativeness"].values
    t = ds["time"].values
    c, v = float(ds["c"].values[0]), float(ds["v"].values[0])
    b = p.copy()
    dt = t[1] - t[0]
    for _ in range(len(t) - 1):
        b = b + dt * (c - v * np.prod(b, -1, keepdims=True)) * v
    assert all(order_margin(-p[i], np.abs(b[i] - p[i])) <= 1e-9 for i in range(p.shape[0]))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(profile_low=1.0, profile_high=0.5), "profile_low: must be below profile_high"),
        (dict(size=1), "size: must be >= 2"),
        (dict(parallel_w0=1.0), "parallel_w0: the parallel readout must start below its target"),
        (dict(duration=1e4, lr=1e-3), "duration: .* over 2,000,000 steps"),
    ],
)
def test_invalid_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(SaxeTopologiesConfig(), **overrides)
