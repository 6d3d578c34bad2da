"""rbe-two-point on its quick preset: absolute aging shares, with the alpha = 0 control."""

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments import rbe_two_point as T
from jaxdyn.store import execute


@pytest.fixture(scope="module")
def run():
    return execute(T.EXPERIMENT, T.RBETwoPointConfig.quick())


def test_layout(run):
    cfg = T.RBETwoPointConfig.quick()
    ds = run.dataset
    assert ds["size"].dims == ("seed", "distance", "encoding", "alpha", "time", "point")
    assert ds["size"].shape == (cfg.seeds, 2, 2, 2, cfg.num_steps // cfg.record_every + 1, 2)
    assert list(ds["alpha"].values) == [0.01, 0.0]
    # Same seeds in every condition: the initial sizes at x1 agree across distances and alphas.
    s0 = ds["size"].values[:, :, 0, :, 0, 0]
    np.testing.assert_allclose(s0, np.broadcast_to(s0[:, :1, :1], s0.shape), rtol=1e-5)
    # The stored strings are at the stated distances, and the probes around each point too.
    pts = ds["points"].values
    np.testing.assert_array_equal(np.abs(pts[..., 0, :] - pts[..., 1, :]).sum(-1)[:, 0], 1)
    np.testing.assert_array_equal(np.abs(pts[..., 0, :] - pts[..., 1, :]).sum(-1)[:, 1], 12)
    h = np.abs(ds["probe_bits"].values - pts[..., None, :]).sum(-1)
    np.testing.assert_array_equal(h, np.broadcast_to(ds["probe_hamming"].values, h.shape))


def test_shares_and_the_control(run):
    shares = run.numbers["aging_share_median"]
    for name, s in shares.items():
        # The near point ages almost as much as the trained x1, in both the paper's runs and the control.
        assert s["H=1, alpha=0.01"] > 0.8 and s["H=1, alpha=0"] > 0.8, name
        assert s["H=1, alpha=0.01"] > s["H=12, alpha=0.01"]
        # x2's own training (1% of steps) adds little: the control's share is close.
        assert abs(s["H=12, alpha=0.01"] - s["H=12, alpha=0"]) < 0.15
        # ... and the far point still takes a sizeable part of x1's aging (measured 0.42-0.84 here).
        assert s["H=12, alpha=0"] > 0.2
    ids = {c.id: c for c in run.claims}
    for slug in ("unbiased", "biased-p0-p1-0-25"):
        for suffix in ("distance-separates", "far-stays-younger", "share-near-far", "far-very-limited", "far-very-limited-control",
                       "near-ages-with-x1-control", "own-training-H1", "own-training-H12"):
            c = ids[f"{slug}-{suffix}"]
            assert c.per_seed is not None and len(c.per_seed) == T.RBETwoPointConfig.quick().seeds
    assert not ids["unbiased-far-very-limited"].held and not ids["unbiased-far-very-limited-control"].held


def test_config_errors():
    with pytest.raises(ConfigError, match="distances"):
        T.RBETwoPointConfig(distances=(1, 17))
    with pytest.raises(ConfigError, match="alpha"):
        T.RBETwoPointConfig(alpha=0.9)
    with pytest.raises(ConfigError, match="control"):
        T.RBETwoPointConfig(alpha=0.0)
