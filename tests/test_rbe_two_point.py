"""rbe-two-point on its quick preset: close points age together, distant ones hardly interact."""

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.store import execute
from jaxdyn.experiments import rbe_two_point as T


@pytest.fixture(scope="module")
def run():
    return execute(T.EXPERIMENT, T.RBETwoPointConfig.quick())


def test_layout(run):
    cfg = T.RBETwoPointConfig.quick()
    ds = run.dataset
    assert ds["size"].dims == ("seed", "distance", "encoding", "time", "point")
    assert ds["size"].shape == (cfg.seeds, 2, 2, cfg.num_steps // cfg.record_every + 1, 2)
    # Same seeds in every condition: the initial sizes at x1 agree across distances (same x1, weights).
    s0 = ds["size"].values[:, :, 0, 0, 0]
    np.testing.assert_allclose(s0[:, 0], s0[:, 1], rtol=1e-5)


def test_interaction_depends_on_distance(run):
    # Measured on this preset: median |S2 - S1| / S1 at epoch 400 is 0.22 (H = 1) vs 0.84 (H = 12)
    # unbiased, 0.16 vs 1.19 biased; a response that ignored x1's training (no interaction) or a
    # swapped pair of sources would not separate them.
    for row in run.numbers["conditions"]:
        last = row["epochs"][max(row["epochs"])]
        if row["distance"] == 1:
            assert last["abs_rel_diff_median"] < 0.4, row
        else:
            assert last["rel_diff_median"] > 0.5, row
    assert all(c.held for c in run.claims), [c.to_dict() for c in run.claims if not c.held]
    shares = run.numbers["aging_share_median"]
    for s in shares.values():
        assert s["near"] > 0.8 and s["near"] > s["far"]


def test_config_errors():
    with pytest.raises(ConfigError, match="distances"):
        T.RBETwoPointConfig(distances=(1, 17))
    with pytest.raises(ConfigError, match="alpha"):
        T.RBETwoPointConfig(alpha=0.9)
