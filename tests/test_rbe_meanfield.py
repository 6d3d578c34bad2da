"""rbe-meanfield on its quick preset: majority first, minority's turn; every theory beside the network."""

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments import rbe_meanfield as M
from jaxdyn.store import execute
from jaxdyn.tasks import rbe
from jaxdyn.theory import meanfield


@pytest.fixture(scope="module")
def run():
    return execute(M.EXPERIMENT, M.RBEMeanfieldConfig.quick())


def test_layout_and_recorded_kernels(run):
    cfg = M.RBEMeanfieldConfig.quick()
    ds = run.dataset
    assert ds["group_mean"].dims == ("seed", "ratio", "time", "group")
    assert ds["group_mean"].shape == (cfg.seeds, 2, cfg.num_steps // cfg.record_every + 1, 2)
    np.testing.assert_array_equal(ds["kernel_time"].values, np.arange(0, cfg.num_steps + 1, cfg.kernel_every))
    for name in ("theta_output", "theta_logit"):
        theta = ds[name].values  # (seed, ratio, kernel_time, n, n): an NTK: symmetric, positive diagonal
        np.testing.assert_allclose(theta, np.swapaxes(theta, -1, -2), rtol=1e-3, atol=1e-5)
        assert (np.diagonal(theta, axis1=-2, axis2=-1) > 0).all()
    # The output-space kernel is the logit one times sigma'(z_i) sigma'(z_j) (at epoch 0, f from the records).
    f = ds["f"].values[:, :, 0].astype(np.float64)
    s = f * (1 - f)
    np.testing.assert_allclose(ds["theta_output"].values[:, :, 0], ds["theta_logit"].values[:, :, 0] * s[..., :, None] * s[..., None, :],
                               rtol=2e-3)
    groups = ds["point_group"].values[0]
    assert (groups[0] == 0).sum() == 5 and (groups[1] == 0).sum() == 15
    dup, _ = rbe.duplicate_stats(ds["points"].values.reshape(-1, cfg.num_points, 16), np.zeros((2 * cfg.seeds, cfg.num_points)))
    assert not dup.any()
    # Every theory starts from the simulation's group means.
    for space in cfg.spaces:
        for name in meanfield.THEORIES:
            np.testing.assert_allclose(ds[f"{name}_{space}"].values[:, :, 0], ds["group_mean"].values[:, :, 0], atol=1e-5)


def test_majority_first_then_minority_turns(run):
    for row in run.numbers["ratios"]:
        sim = row["simulation"]
        assert sim["turn_depth_of_mean"] > 0.07 and 0 < sim["turn_epoch_of_mean"] < 100, row
        assert sim["fraction_of_seeds_turning"] > 0.7
        final = sim["final_group_means"]
        assert final[1] > 0.55 and final[0] < 0.45
        th = row["theories"]
        for space in ("output", "logit"):
            for name in ("kernel", "meanfield", "aging", "aging_blocks"):
                t = th[f"{name}_{space}"]
                assert t["solver_ok"] and t["turn_depth"] > 0.05, (name, space, t)
            # Eq. 11 read literally cannot split the groups: no turn at all.
            assert th[f"literal_{space}"]["fraction_of_seeds_turning"] == 0.0
        assert th["meanfield_output"]["max_abs_deviation"] < 0.2
    ids = {c.id: c for c in run.claims}
    assert not ids["ratio-0_333-literal-turns"].held and ids["ratio-0_333-minority-turns"].held
    assert ids["ratio-0_333-meanfield-turns"].kind == "extension" and ids["ratio-0_333-literal-turns"].kind == "paper"


def test_config_errors():
    with pytest.raises(ConfigError, match="ratios"):
        M.RBEMeanfieldConfig(ratios=(0.7,))
    with pytest.raises(ConfigError, match="spaces"):
        M.RBEMeanfieldConfig(spaces=("output", "output"))
    with pytest.raises(ConfigError, match="kernel_every"):
        M.RBEMeanfieldConfig(kernel_every=3)


def test_taylor_model_and_infinite_width_kernel_beside_the_network(run):
    """The two new curves start where the network does; the infinite-width NTK stored is a kernel
    and its distance from each member's logit NTK is recomputed from the stored matrices; the
    'stays linearised' claim is recomputed from the stored group means."""
    cfg = M.RBEMeanfieldConfig.quick()
    ds = run.dataset
    start = ds["group_mean"].values[:, :, 0]
    for name in ("linearised_output", "linearised_logit", "kernel_infinite_logit"):
        np.testing.assert_allclose(ds[name].values[:, :, 0], start, atol=1e-5)
        assert np.isfinite(ds[name].values).all()
    theta = ds["theta_infinite"].values.astype(np.float64)  # (seed, ratio, n, n)
    np.testing.assert_allclose(theta, np.swapaxes(theta, -1, -2), rtol=1e-5, atol=1e-6)
    eig = np.linalg.eigvalsh(theta)  # positive semi-definite up to the ELU quadrature's error (order 20: below 1e-4 of the top)
    assert (eig[..., 0] > -1e-4 * eig[..., -1]).all() and (eig[..., -1] > 0).all()
    emp = ds["theta_logit"].values[:, :, 0].astype(np.float64)
    dist = np.linalg.norm(emp - theta, axis=(-2, -1)) / np.linalg.norm(theta, axis=(-2, -1))
    np.testing.assert_allclose(ds["ntk_distance_infinite"].values, dist, rtol=1e-4)
    assert 0.05 < np.median(dist) < 2.0  # 8 filters: a finite-width kernel, not the infinite one
    ids = {c.id: c for c in run.claims}
    for i, slug in enumerate(("ratio-0_333", "ratio-3")):
        dev = np.abs(ds[f"linearised_{cfg.space}"].values[:, i] - ds["group_mean"].values[:, i]).max(axis=(1, 2))
        claim = ids[f"{slug}-network-stays-linearised"]
        assert claim.kind == "extension"
        np.testing.assert_allclose(np.asarray(claim.per_seed, np.float64), dev, rtol=1e-5)
        assert claim.excluded == 0 and claim.fraction_held == pytest.approx(np.mean(dev < cfg.tolerance))
        for name in ("linearised", "kernel-infinite"):
            assert ids[f"{slug}-{name}-turns"].kind == "extension"
