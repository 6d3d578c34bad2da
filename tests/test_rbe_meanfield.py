"""rbe-meanfield on its quick preset: majority first, minority's turn; theory beside the network."""

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.store import execute
from jaxdyn.experiments import rbe_meanfield as M


@pytest.fixture(scope="module")
def run():
    return execute(M.EXPERIMENT, M.RBEMeanfieldConfig.quick())


def test_layout_and_initial_kernel(run):
    cfg = M.RBEMeanfieldConfig.quick()
    ds = run.dataset
    assert ds["group_mean"].dims == ("seed", "ratio", "time", "group")
    assert ds["group_mean"].shape == (cfg.seeds, 2, cfg.num_steps // cfg.record_every + 1, 2)
    theta = ds["theta_output_start"].values
    # An NTK on the training points: symmetric, positive diagonal; group sizes follow the ratio.
    np.testing.assert_allclose(theta, np.swapaxes(theta, -1, -2), rtol=1e-4, atol=1e-6)
    assert (np.diagonal(theta, axis1=-2, axis2=-1) > 0).all()
    groups = ds["point_group"].values[0]
    assert (groups[0] == 0).sum() == 5 and (groups[1] == 0).sum() == 15
    # Theory and simulation start from the same group means.
    for name in ("kernel_output", "meanfield_output"):
        np.testing.assert_allclose(ds[name].values[:, :, 0], ds["group_mean"].values[:, :, 0], atol=1e-5)


def test_majority_first_then_minority_turns(run):
    for row in run.numbers["ratios"]:
        sim = row["simulation"]
        # Measured on this preset: excursions 0.21 (ratio 1/3) and 0.14 (ratio 3), turns at 12-26 epochs.
        assert sim["turn_depth_of_mean"] > 0.07 and 0 < sim["turn_epoch_of_mean"] < 100, row
        assert sim["fraction_of_seeds_turning"] > 0.7
        # The minority ends on its own side: g1 -> 1 when g0 is the majority and vice versa.
        final = sim["final_group_means"]
        assert final[1] > 0.55 and final[0] < 0.45
        for name, th in row["theories"].items():
            assert th["solver_ok"]
            assert th["turn_depth"] > 0.05, (name, th)
            # Theory from the initial NTK tracks the seed-mean network within 0.2 everywhere.
            assert th["max_abs_deviation"] < 0.2
            assert abs(th["turn_epoch_minus_simulation"]) < 30


def test_config_errors():
    with pytest.raises(ConfigError, match="ratios"):
        M.RBEMeanfieldConfig(ratios=(0.7,))
    with pytest.raises(ConfigError, match="spaces"):
        M.RBEMeanfieldConfig(spaces=("output", "output"))
