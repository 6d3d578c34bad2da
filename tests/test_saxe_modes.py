"""saxe-modes: closed-form sigmoidal mode dynamics vs simulation, and learning time over depth."""

import dataclasses

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments.saxe_modes import EXPERIMENT, SaxeModesConfig
from jaxdyn.store import execute


@pytest.fixture(scope="module")
def run():
    return execute(EXPERIMENT, SaxeModesConfig.quick())


def test_dataset_layout(run):
    ds, q = run.dataset, SaxeModesConfig.quick()
    assert ds["u_sim"].dims == ("seed", "time", "mode") and ds["u_sim"].shape[0] == q.seeds
    np.testing.assert_allclose(ds["s"].values, q.strengths)
    assert ds["depth_learning_steps"].dims == ("depth", "init", "replica")
    np.testing.assert_allclose(ds["depth_lr"].values, q.lr0 / np.asarray(q.depths))
    # Small random init: every mode starts near zero and ends at its strength.
    assert np.abs(ds["u_sim"].values[:, 0]).max() < 0.01
    learnt = np.asarray(q.strengths) >= 1.0  # the weakest mode is still rising at the end of the quick run
    np.testing.assert_allclose(ds["u_sim"].values[:, -1, learnt], np.broadcast_to(np.asarray(q.strengths)[learnt], (q.seeds, learnt.sum())), rtol=0.02)


def test_modes_follow_the_closed_form(run):
    s = run.numbers
    assert s["diverged_members_part1"] == 0
    # Each mode follows u(t) with u0 its growing component off the stronger modes; the residual
    # is the O(lr s) Euler error of gradient descent.
    assert s["max_rel_deviation_closed_form"] < 0.05
    assert s["max_rel_error_learning_time"] < 0.03
    # Without removing the stronger modes' directions (the cross terms) the weak modes are late.
    assert s["max_rel_deviation_closed_form_own_u0"] > 2 * s["max_rel_deviation_closed_form"]
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
    claims = [c.to_dict() for c in run.claims]
    assert len(claims) == 8
    for c in claims:
        assert c["kind"] in ("paper", "extension", "sanity") and isinstance(c["held"], bool)
    assert all(c["held"] for c in claims), [c for c in claims if not c["held"]]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(strengths=(1.0, 1.0)), "strengths: values must be distinct"),
        (dict(strengths=(1.0, -1.0)), r"strengths\[1\]: must be > 0"),
        (dict(hidden=2, strengths=(3.0, 2.0, 1.0)), "hidden: must be at least"),
        (dict(depths=(2, 1)), r"depths\[1\]: must be >= 2"),
        (dict(u0_frac=1.5), "u0_frac: must be <= 1"),
    ],
)
def test_invalid_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(SaxeModesConfig(), **overrides)
