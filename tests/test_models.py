"""Tests for jaxdyn.models (fast: small inputs, eval_shape for big counts)."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.models import (
    DeepLinear,
    DenseSampleVGG,
    PatchConv,
    RBEConvNet,
    adaptive_avg_pool2d,
    capture_intermediates,
    count_params,
    deep_linear,
    end_to_end_matrix,
    params_from_matrices,
    vgg_abstract,
    vgg_paper,
    weight_matrices,
)

KEY = jax.random.PRNGKey(0)


def tree_equal(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    return ta == tb and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def tree_allclose(a, b, rtol=1e-5, atol=1e-6):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# PatchConv
# ---------------------------------------------------------------------------
CONV_CASES = [
    ((3,), (2, 11, 2)),
    ((4,), (2, 9, 3)),  # even kernel: checks the SAME lo/hi padding split
    ((3, 3), (2, 8, 7, 3)),
    ((2, 3), (1, 6, 5, 2)),
]


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("kernel_size,shape", CONV_CASES)
def test_patchconv_matches_flax_conv(kernel_size, shape, padding):
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    ref = nn.Conv(5, kernel_size, padding=padding)
    mine = PatchConv(5, kernel_size, padding=padding)
    v_ref = ref.init(KEY, x)
    v_mine = mine.init(KEY, x)
    # Same layout, same initialisers, same key -> bit-identical params.
    assert tree_equal(v_ref, v_mine)
    # Non-zero bias so the bias path is exercised too.
    v = jax.tree_util.tree_map(lambda p: p + 0.1, v_ref)
    y_ref = ref.apply(v, x)
    y_mine = mine.apply(v, x)
    assert y_mine.shape == y_ref.shape
    np.testing.assert_allclose(y_mine, y_ref, rtol=1e-5, atol=1e-6)


def test_patchconv_under_vmap_over_params_matches_loop():
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 6, 6, 2))
    m = PatchConv(4, (3, 3))
    keys = jax.random.split(KEY, 3)
    params = jax.vmap(lambda k: m.init(k, x))(keys)
    xs = jnp.stack([x, 2 * x, -x])  # per-seed inputs, as deeper layers see
    out = jax.vmap(m.apply)(params, xs)
    for s in range(3):
        p_s = jax.tree_util.tree_map(lambda a: a[s], params)
        np.testing.assert_allclose(out[s], nn.Conv(4, (3, 3)).apply(p_s, xs[s]), rtol=1e-5, atol=1e-6)


def test_patchconv_invalid_arguments():
    with pytest.raises(ValueError, match="padding"):
        PatchConv(4, 3, padding="FULL")
    with pytest.raises(ValueError, match="features"):
        PatchConv(0, 3)
    with pytest.raises(ValueError, match="kernel_size"):
        PatchConv(4, (3, 0))
    with pytest.raises(ValueError, match="spatial"):
        PatchConv(4, (3, 3)).init(KEY, jnp.ones((2, 5, 1)))
    with pytest.raises(ValueError, match="smaller than kernel_size"):
        PatchConv(4, (3,), padding="VALID").init(KEY, jnp.ones((2, 2, 1)))


# ---------------------------------------------------------------------------
# Adaptive average pooling
# ---------------------------------------------------------------------------
def numpy_adaptive_avg_pool2d(x, out_h, out_w):
    n, h, w, c = x.shape
    y = np.zeros((n, out_h, out_w, c), dtype=np.float64)
    for i in range(out_h):
        h0, h1 = math.floor(i * h / out_h), math.ceil((i + 1) * h / out_h)
        for j in range(out_w):
            w0, w1 = math.floor(j * w / out_w), math.ceil((j + 1) * w / out_w)
            y[:, i, j, :] = x[:, h0:h1, w0:w1, :].mean(axis=(1, 2))
    return y


@pytest.mark.parametrize(
    "in_hw,out_size,out_hw",
    [((128, 128), 20, (20, 20)), ((7, 7), 3, (3, 3)), ((7, 5), (3, 2), (3, 2)), ((3, 4), 5, (5, 5))],
)
def test_adaptive_avg_pool2d_matches_numpy(in_hw, out_size, out_hw):
    x = np.random.default_rng(0).normal(size=(2, *in_hw, 3)).astype(np.float32)
    y = adaptive_avg_pool2d(jnp.asarray(x), out_size)
    assert y.shape == (2, *out_hw, 3)
    np.testing.assert_allclose(y, numpy_adaptive_avg_pool2d(x.astype(np.float64), *out_hw), rtol=1e-5, atol=1e-6)


def test_count_params():
    tree = {"a": jnp.zeros((2, 3)), "b": {"c": jnp.zeros((4,)), "d": jax.ShapeDtypeStruct((5, 5), jnp.float32)}}
    assert count_params(tree) == 6 + 4 + 25


# ---------------------------------------------------------------------------
# DeepLinear
# ---------------------------------------------------------------------------
def test_deep_linear_shapes_and_names():
    m = DeepLinear((5, 4, 3, 2))
    v = m.init(KEY, jnp.ones((7, 5)))
    assert list(v) == ["params"]
    assert {k: p["kernel"].shape for k, p in v["params"].items()} == {
        "layer_0": (5, 4),
        "layer_1": (4, 3),
        "layer_2": (3, 2),
    }
    assert m.apply(v, jnp.ones((7, 5))).shape == (7, 2)
    assert m.apply(v, jnp.ones((7, 5)), train=True).shape == (7, 2)


def test_deep_linear_small_random_std():
    m = DeepLinear((200, 200, 200), init_scheme="small_random", scale=0.01)
    mats = weight_matrices(m.init(KEY, jnp.ones((1, 200))))
    for w in mats:
        assert abs(float(jnp.std(w)) - 0.01) < 5e-4
        assert abs(float(jnp.mean(w))) < 5e-4
    # Different layers get different draws.
    assert not np.allclose(mats[0], mats[1])


def test_deep_linear_orthogonal():
    scale = 0.5
    m = DeepLinear((6, 6, 4, 8), init_scheme="orthogonal", scale=scale)
    w1, w2, w3 = weight_matrices(m.init(KEY, jnp.ones((1, 6))))
    np.testing.assert_allclose(w1 @ w1.T, scale**2 * np.eye(6), atol=1e-5)  # square
    np.testing.assert_allclose(w2 @ w2.T, scale**2 * np.eye(4), atol=1e-5)  # wide: orthonormal rows
    np.testing.assert_allclose(w3.T @ w3, scale**2 * np.eye(4), atol=1e-5)  # tall: orthonormal cols


def test_deep_linear_given_round_trip_and_product():
    rng = np.random.default_rng(0)
    widths = (4, 3, 5, 2)
    mats = [rng.normal(size=(widths[l + 1], widths[l])).astype(np.float32) for l in range(3)]
    m = DeepLinear(widths, init_scheme="given", matrices=mats)
    v = m.init(KEY, jnp.ones((1, 4)))
    for got, want in zip(weight_matrices(v), mats):
        np.testing.assert_array_equal(got, want)
    # params_from_matrices builds the same tree without init.
    assert tree_equal(v["params"], params_from_matrices(mats))
    x = rng.normal(size=(6, 4)).astype(np.float32)
    y = m.apply({"params": params_from_matrices(mats)}, x)
    prod = mats[2] @ mats[1] @ mats[0]
    np.testing.assert_allclose(y, x @ prod.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(end_to_end_matrix(v), prod, rtol=1e-5, atol=1e-6)
    # Hashable even with arrays inside (usable as a static jit argument).
    assert hash(m) == hash(DeepLinear(widths, init_scheme="given", matrices=mats))
    # Convenience factory with the `init=` keyword.
    assert tree_equal(deep_linear(widths, init="given", matrices=mats).init(KEY, x), v)


def test_deep_linear_ensemble_layout_helpers():
    mats = [jnp.ones((3, 4, 2)), jnp.ones((3, 5, 4))]  # leading seed axis S=3
    p = params_from_matrices(mats)
    assert p["layer_0"]["kernel"].shape == (3, 2, 4)
    out = jax.vmap(lambda q, x: DeepLinear((2, 4, 5)).apply({"params": q}, x))(p, jnp.ones((3, 7, 2)))
    assert out.shape == (3, 7, 5)
    assert [w.shape for w in weight_matrices(p)] == [(3, 4, 2), (3, 5, 4)]


def test_deep_linear_invalid_arguments():
    with pytest.raises(ValueError, match="depth"):
        DeepLinear((3,))
    with pytest.raises(ValueError, match="widths"):
        DeepLinear((3, 0, 2))
    with pytest.raises(ValueError, match="init_scheme"):
        DeepLinear((3, 2), init_scheme="xavier")
    with pytest.raises(ValueError, match="scale"):
        DeepLinear((3, 2), scale=-1.0)
    with pytest.raises(ValueError, match="matrices"):
        DeepLinear((3, 2), init_scheme="given")
    with pytest.raises(ValueError, match=r"matrices\[1\]"):
        DeepLinear((3, 4, 2), init_scheme="given", matrices=[np.ones((4, 3)), np.ones((4, 2))])
    with pytest.raises(ValueError, match="matrices"):
        DeepLinear((3, 4, 2), init_scheme="given", matrices=[np.ones((4, 3))])
    with pytest.raises(ValueError, match="matrices"):
        DeepLinear((3, 2), init_scheme="orthogonal", matrices=[np.ones((2, 3))])
    with pytest.raises(ValueError, match="d_0"):
        DeepLinear((3, 2)).init(KEY, jnp.ones((1, 4)))


# ---------------------------------------------------------------------------
# RBEConvNet
# ---------------------------------------------------------------------------
def bits(n, seed=0):
    return jax.random.bernoulli(jax.random.PRNGKey(seed), 0.5, (n, 16)).astype(jnp.float32)


@pytest.mark.parametrize("padding,dense_in", [("VALID", 10 * 8), ("SAME", 16 * 8)])
def test_rbe_shapes_and_param_tree(padding, dense_in):
    m = RBEConvNet(padding=padding)
    x = bits(4)
    v = m.init(KEY, x)
    assert list(v) == ["params"]
    shapes = jax.tree_util.tree_map(jnp.shape, v["params"])
    assert shapes == {
        "conv_0": {"kernel": (3, 1, 8), "bias": (8,)},
        "conv_1": {"kernel": (3, 8, 8), "bias": (8,)},
        "conv_2": {"kernel": (3, 8, 8), "bias": (8,)},
        "dense": {"kernel": (dense_in, 1), "bias": (1,)},
    }
    p = m.apply(v, x)
    assert p.shape == (4,)
    assert bool(jnp.all((p > 0) & (p < 1)))


@pytest.mark.parametrize("activation,padding", [("elu", "VALID"), ("relu", "SAME")])
def test_rbe_patches_equals_flax(activation, padding):
    x = bits(5, seed=1)
    a = RBEConvNet(activation=activation, padding=padding, conv="patches")
    b = RBEConvNet(activation=activation, padding=padding, conv="flax")
    va, vb = a.init(KEY, x), b.init(KEY, x)
    assert tree_equal(va, vb)
    np.testing.assert_allclose(a.apply(va, x), b.apply(va, x), rtol=1e-5, atol=1e-6)


def test_rbe_logits():
    x = bits(3)
    m = RBEConvNet()
    v = m.init(KEY, x)
    z = m.apply(v, x, method="logits")
    assert z.shape == (3,)
    np.testing.assert_allclose(jax.nn.sigmoid(z), m.apply(v, x), rtol=1e-6)
    np.testing.assert_allclose(RBEConvNet(return_logits=True).apply(v, x), z, rtol=1e-6)


def test_rbe_dropout_only_in_train():
    x = bits(8)
    m = RBEConvNet(dropout_rate=0.5)
    v = m.init(KEY, x)
    e1, e2 = m.apply(v, x), m.apply(v, x, train=False)
    np.testing.assert_array_equal(e1, e2)
    t1 = m.apply(v, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    t2 = m.apply(v, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    assert not np.allclose(t1, e1)
    assert not np.allclose(t1, t2)
    # Rate 0: train=True is a no-op and needs no rng.
    m0 = RBEConvNet()
    np.testing.assert_array_equal(m0.apply(v, x, train=True), m0.apply(v, x))


def test_rbe_invalid_arguments():
    with pytest.raises(ValueError, match="activation"):
        RBEConvNet(activation="tanh")
    with pytest.raises(ValueError, match="num_layers"):
        RBEConvNet(num_layers=0)
    with pytest.raises(ValueError, match="dropout_rate"):
        RBEConvNet(dropout_rate=1.0)
    with pytest.raises(ValueError, match="padding"):
        RBEConvNet(padding="same")
    with pytest.raises(ValueError, match="conv"):
        RBEConvNet(conv="lax")
    with pytest.raises(ValueError, match="too short"):
        RBEConvNet(num_layers=8).init(KEY, bits(2))


# ---------------------------------------------------------------------------
# DenseSampleVGG
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("factory,expected", [(vgg_paper, 2_284_969), (vgg_abstract, 1_235_369)])
def test_vgg_param_counts(factory, expected):
    shapes = jax.eval_shape(factory().init, KEY, jax.ShapeDtypeStruct((1, 128, 128, 3), jnp.float32))
    assert list(shapes) == ["params"]
    assert count_params(shapes) == expected


def small_images(n=2, hw=24, seed=0):
    return jax.random.uniform(jax.random.PRNGKey(seed), (n, hw, hw, 3))


@pytest.fixture(scope="module")
def vgg_small():
    m = vgg_abstract(hidden=(64,))  # small hidden layer keeps the test fast
    x = small_images()
    return m, m.init(KEY, x), x


def test_vgg_forward_shape():
    m = vgg_paper()
    x = jax.random.uniform(KEY, (2, 32, 32, 3))
    v = m.init(KEY, x)
    assert m.apply(v, x).shape == (2, 5)
    assert m.apply(v, x, train=True, rngs={"dropout": KEY}).shape == (2, 5)


def test_vgg_patches_equals_flax(vgg_small):
    m, v, x = vgg_small
    f = DenseSampleVGG(hidden=(64,), conv="flax")
    assert tree_equal(f.init(KEY, x), v)
    np.testing.assert_allclose(m.apply(v, x), f.apply(v, x), rtol=1e-5, atol=1e-5)


def test_vgg_matches_manual_forward_channels_first_flatten(vgg_small):
    m, v, x = vgg_small
    p = v["params"]
    h = x
    for i in range(5):
        h = nn.relu(nn.Conv(3, (3, 3), padding="SAME").apply({"params": p[f"conv2d_{i}"]}, h))
    h = adaptive_avg_pool2d(h, 20)
    h = jnp.transpose(h, (0, 3, 1, 2)).reshape(2, -1)  # torch's (C, H, W) flatten
    h = nn.relu(h @ p["dense_0"]["kernel"] + p["dense_0"]["bias"])
    z = h @ p["head"]["kernel"] + p["head"]["bias"]
    np.testing.assert_allclose(m.apply(v, x), z, rtol=1e-4, atol=1e-5)


def test_vgg_dropout_only_in_train(vgg_small):
    m, v, x = vgg_small
    np.testing.assert_array_equal(m.apply(v, x), m.apply(v, x, train=False))
    t1 = m.apply(v, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    t2 = m.apply(v, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    assert not np.allclose(t1, m.apply(v, x))
    assert not np.allclose(t1, t2)


def test_vgg_intermediates_and_features(vgg_small):
    m, v, x = vgg_small
    out, state = m.apply(v, x, mutable=["intermediates"])
    inter = state["intermediates"]
    assert set(inter) == {f"conv_{i}" for i in range(5)} | {"hidden_last"}
    assert inter["conv_0"][0].shape == (2, 24, 24, 3)
    assert inter["hidden_last"][0].shape == (2, 64)
    np.testing.assert_array_equal(out, m.apply(v, x))
    feats = m.apply(v, x, method="features")
    np.testing.assert_array_equal(feats, inter["hidden_last"][0])
    out2, flat = capture_intermediates(m, v, x)
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(flat["conv_4"], inter["conv_4"][0])


def test_vgg_invalid_arguments():
    with pytest.raises(ValueError, match="hidden"):
        DenseSampleVGG(hidden=())
    with pytest.raises(ValueError, match="num_conv"):
        DenseSampleVGG(num_conv=0)
    with pytest.raises(ValueError, match="dropout_rate"):
        DenseSampleVGG(dropout_rate=-0.1)
    with pytest.raises(ValueError, match="conv"):
        DenseSampleVGG(conv="cudnn")
    with pytest.raises(ValueError, match="pool_size"):
        DenseSampleVGG(pool_size=0)


def test_rbe_ntk_parametrisation_same_function_rescaled_gradients():
    # parametrization='ntk' draws W as the standard kernel times sqrt(fan_in) and uses it as
    # (x / sqrt(fan_in)) @ W: the same initial function from the same key, and every weight's
    # gradient 1/sqrt(fan_in) of the standard one (biases unchanged).
    from jaxdyn.models import RBEConvNet
    from jaxdyn.theory import kernels

    x = (np.random.default_rng(0).random((5, 16)) > 0.5).astype(np.float32)
    fans = {"conv_0": 3, "conv_1": 24, "conv_2": 24, "dense": 80}
    for scheme in ("flax", "keras"):
        std, ntk = RBEConvNet(init_scheme=scheme), RBEConvNet(init_scheme=scheme, parametrization="ntk")
        p_std, p_ntk = std.init(jax.random.key(4), x), ntk.init(jax.random.key(4), x)
        np.testing.assert_allclose(ntk.apply(p_ntk, x), std.apply(p_std, x), rtol=1e-5, atol=1e-7)
        g_std = jax.grad(lambda p: std.apply(p, x).sum())(p_std)["params"]
        g_ntk = jax.grad(lambda p: ntk.apply(p, x).sum())(p_ntk)["params"]
        for name, fan_in in fans.items():
            np.testing.assert_allclose(p_ntk["params"][name]["kernel"], p_std["params"][name]["kernel"] * np.sqrt(fan_in), rtol=1e-5)
            np.testing.assert_allclose(g_ntk[name]["kernel"] * np.sqrt(fan_in), g_std[name]["kernel"], rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(g_ntk[name]["bias"], g_std[name]["bias"], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="parametrization"):
        RBEConvNet(parametrization="mup")
    # Its kernel description (tests/test_kernels.py checks it against wide nets' empirical NTKs).
    described = kernels.from_model(RBEConvNet(parametrization="ntk"))
    assert {layer.parametrization for layer in described.layers if hasattr(layer, "parametrization")} == {"ntk_scaled_input"}
