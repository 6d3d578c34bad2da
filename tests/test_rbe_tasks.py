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


def test_generated_groups_have_distinct_strings():
    # No string twice in a task, so none carries two labels (the landed generator repeated a string
    # in most nested tasks); the nested geometry still holds, and the balls are still filled from
    # their centre outwards like "k ~ Uniform{0..r} flipped bits".
    nested = rbe.ensemble_data(rbe.nested_groups((16, 5, 3), (0, 1, 0), 6, 4), range(100))
    dup, conflict = rbe.duplicate_stats(nested["points"], nested["p1"])
    assert not dup.any() and not conflict.any()
    pts, grp = np.asarray(nested["points"]), np.asarray(nested["group"][0])
    pair = np.abs(pts[:, :, None] - pts[:, None, :]).sum(-1)
    local = grp >= 1
    assert pair[:, local][:, :, local].max() <= 6 and pair[:, grp == 2][:, :, grp == 2].max() <= 4
    flat = rbe.ensemble_data(rbe.groups((5, 15), (0.0, 1.0)), range(100))
    assert not rbe.duplicate_stats(flat["points"], flat["p1"])[0].any()
    # duplicate_stats itself: a repeated string, and one with two labels.
    x = np.zeros((1, 3, 16))
    assert rbe.duplicate_stats(x, np.array([[0.0, 0.0, 1.0]]))[0].all() and rbe.duplicate_stats(x, np.array([[0.0, 0.0, 1.0]]))[1].all()
    assert not rbe.duplicate_stats(x[:, :2], np.array([[1.0, 1.0]]))[1].any()
    codes = np.array([0, 1, 2 ** 15, 65535])
    np.testing.assert_array_equal(np.asarray(rbe.bits_to_int(rbe.int_to_bits(codes))), codes)
    with pytest.raises(ValueError, match="g2 needs"):
        rbe.nested_groups((3, 3, 200), (0, 1, 0), 6, 4)


def test_paired_members_and_encoding_names():
    keys, data = rbe.single_point_members((0.5, 0.8, 0.0), [3, 4], probes_per_distance=1)
    assert keys.shape == (6, 2) and (keys[:2] == keys[2:4]).all() and (keys[:2] == keys[4:]).all()
    np.testing.assert_array_equal(np.asarray(data["points"][:2]), np.asarray(data["points"][4:]))
    np.testing.assert_allclose(np.asarray(data["p1"][:, 0]), [0.5, 0.5, 0.8, 0.8, 0.0, 0.0])
    assert rbe.split_conditions(np.arange(6), 3).tolist() == [[0, 2, 4], [1, 3, 5]]
    assert [rbe.encoding_name(p) for p in (0.5, 0.8, 0.0)] == ["unbiased", "biased p0/p1=0.25", "deterministic y=0"]


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
