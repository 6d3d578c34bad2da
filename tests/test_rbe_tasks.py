"""Random bit-string encoder tasks: exact Hamming geometry and the sampling distribution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.tasks import rbe


def test_p1_from_ratio():
    assert rbe.p1_from_ratio(1.0) == 0.5
    assert rbe.p1_from_ratio(0.25) == pytest.approx(0.8)
    assert rbe.p1_from_ratio(0.0) == 1.0
    assert rbe.p1_from_ratio(float("inf")) == 0.0
    with pytest.raises(ValueError, match="p0_over_p1"):
        rbe.p1_from_ratio(-1.0)


def test_single_point_probes_are_at_exact_distances():
    data = jax.jit(rbe.single_point(0.5, probes_per_distance=5))(jax.random.key(0))
    assert data["probes"].shape == (17 * 5, 16) and data["probe_h"].shape == (17 * 5,)
    h = np.asarray(rbe.hamming_distance(data["probes"], data["sources"][0]))
    np.testing.assert_array_equal(h, np.asarray(data["probe_h"]))
    assert set(np.unique(np.asarray(data["points"]))) <= {0.0, 1.0}
    # Probes at one distance are distinct strings (except h = 0 and h = 16, which are unique).
    p = np.asarray(data["probes"]).reshape(17, 5, 16)
    assert len({row.tobytes() for row in p[8]}) > 1


def test_two_points_and_nested_groups_geometry():
    keys = jax.random.split(jax.random.key(1), 20)
    data = rbe.ensemble_data(rbe.two_points(0.5, 0.01, 12, probes_per_distance=2), range(20))
    pts = np.asarray(data["points"])
    np.testing.assert_array_equal(np.abs(pts[:, 0] - pts[:, 1]).sum(-1), 12)
    np.testing.assert_allclose(np.asarray(data["weight"][0]), [0.99, 0.01], rtol=1e-6)
    h = np.abs(np.asarray(data["probes"]) - pts[:, :, None, :]).sum(-1)
    np.testing.assert_array_equal(h, np.broadcast_to(np.asarray(data["probe_h"])[:, None, :], h.shape))
    data = jax.jit(jax.vmap(rbe.nested_groups((10, 7, 3), (0, 1, 0), 6, 4)))(keys)
    pts, grp = np.asarray(data["points"]), np.asarray(data["group"][0])
    pair = np.abs(pts[:, :, None] - pts[:, None, :]).sum(-1)  # (seed, 20, 20)
    local = grp >= 1
    assert pair[:, local][:, :, local].max() <= 6
    assert pair[:, grp == 2][:, :, grp == 2].max() <= 4
    # The constraints bind: the local groups are much tighter than random strings (mean 8).
    assert pair[:, local][:, :, local].mean() < 5 and pair[:, grp == 0][:, :, grp == 0].mean() > 6
    np.testing.assert_array_equal(np.asarray(data["p1"][0]), np.repeat([0.0, 1.0, 0.0], [10, 7, 3]))


def test_sampling_follows_weights_and_encoding():
    init = rbe.two_points(0.8, 0.25, 3)
    data = jax.jit(init)(jax.random.key(2))
    n = 20000
    draws = jax.jit(jax.vmap(lambda k: rbe.sample(data, k)))(jax.random.split(jax.random.key(3), n))  # one compile
    index, y = np.asarray(draws["index"][:, 0]), np.asarray(draws["y"][:, 0])
    assert draws["x"].shape == (n, 1, 16)
    np.testing.assert_array_equal(np.asarray(draws["x"][:, 0]), np.asarray(data["points"])[index])
    # Binomial standard errors: 4-sigma bands; a swapped alpha or p1 would miss by > 50 sigma.
    assert abs(index.mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / n)
    assert abs(y.mean() - 0.8) < 4 * np.sqrt(0.8 * 0.2 / n)
    # Groups: deterministic labels; with_p1 rewrites the encoding per member.
    g = jax.jit(rbe.groups((5, 15), (0.0, 1.0)))(jax.random.key(4))
    d = jax.jit(jax.vmap(lambda k: rbe.sample(g, k, 4)))(jax.random.split(jax.random.key(5), 500))
    np.testing.assert_array_equal(np.asarray(d["y"]), np.asarray(g["p1"])[np.asarray(d["index"])])
    ens = rbe.ensemble_data(rbe.single_point(0.5, probes_per_distance=1), [0, 1, 2])
    assert ens["points"].shape == (3, 1, 16)
    np.testing.assert_allclose(np.asarray(rbe.with_p1(ens, jnp.array([0.5, 0.8, 0.0]))["p1"][:, 0]), [0.5, 0.8, 0.0])


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="p1"):
        rbe.single_point(1.5)
    with pytest.raises(ValueError, match="alpha"):
        rbe.two_points(0.5, 2.0, 1)
    with pytest.raises(ValueError, match="distance"):
        rbe.two_points(0.5, 0.1, 17)
    with pytest.raises(ValueError, match="radius2"):
        rbe.nested_groups((3, 3, 3), (0, 1, 0), 4, 6)
    with pytest.raises(ValueError, match="same non-zero length"):
        rbe.groups((3, 3), (0.0,))
    with pytest.raises(ValueError, match="batch_size"):
        rbe.encoder_task(rbe.groups((3,), (1.0,)), batch_size=0)
