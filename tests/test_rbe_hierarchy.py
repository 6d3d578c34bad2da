"""rbe-hierarchy on its quick preset: the iterated splitting of nested groups."""

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.store import execute
from jaxdyn.experiments import rbe_hierarchy as H


@pytest.fixture(scope="module")
def run():
    return execute(H.EXPERIMENT, H.RBEHierarchyConfig.quick())


def test_geometry_and_layout(run):
    ds = run.dataset
    cfg = H.RBEHierarchyConfig.quick()
    assert ds["group_mean"].dims == ("seed", "time", "group") and ds["group_mean"].shape[0] == cfg.seeds
    np.testing.assert_array_equal(ds["point_group"].values[0], np.repeat([0, 1, 2], cfg.sizes))


def test_two_splits_in_order(run):
    sim = run.numbers["simulation"]
    # Measured on this preset: t1 = 20, t2 = 120, excursions 0.15 each.
    assert 0 < sim["t1_first_split"] < sim["t2_second_split"], sim
    assert sim["depth1"] > 0.07 and sim["depth2"] > 0.07 and sim["g2_rise_between_splits"] > 0.07
    g0, g1, g2 = sim["final_group_means"]
    assert g1 > 0.6 and g0 < 0.3 and g2 < 0.4
    assert sim["per_seed_fraction_with_both_splits"] > 0.6
    assert all(c.held for c in run.claims), [c.to_dict() for c in run.claims if not c.held]
    # The first split is seen by the theories from the initial NTK too (the second only weakly).
    for th in run.numbers["theories"].values():
        assert th["solver_ok"] and 0 < th["t1"] < 60 and th["depth1"] > 0.05


def test_config_errors():
    with pytest.raises(ConfigError, match="sizes"):
        H.RBEHierarchyConfig(sizes=(3, 7, 3))
    with pytest.raises(ConfigError, match="radius2"):
        H.RBEHierarchyConfig(radius1=4, radius2=6)
