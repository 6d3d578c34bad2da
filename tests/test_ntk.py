"""Empirical NTK and the one-step training response, for every model of the package.

Each model gets one jitted float64 computation (few compilations): the NTK by every method (the
implicit vjp/jvp one, the structured one on x2 != x1 and on x2 = x1, the per-example Jacobian
contraction, the automatic choice), and the measured response at two learning rates beside the
NTK's first-order prediction -lr Theta(x, x_o) dL/df(x_o). A float32 model exercises what the
package's models do not: nn.Conv with strides, a module called twice, a LayerNorm (whose
parameters fall back to Jacobians), chunked contraction.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxdyn import ntk as N
from jaxdyn.engine import losses
from jaxdyn.models import DeepLinear, DenseSampleVGG, RBEConvNet
from jaxdyn.tasks import rbe

LR_BIG, LR_SMALL = 1e-5, 2.5e-6  # small enough that no ReLU unit crosses its kink


def _case(name):
    key = jax.random.key(1)
    kx, kp = jax.random.split(key)
    if name == "deep_linear":
        model = DeepLinear((4, 6, 3), init_scheme="orthogonal", scale=1.0)
        x = jax.random.normal(kx, (5, 4))
        return model, x, losses.half_squared_error_sum, jnp.array([[1.0, -1.0, 0.5]])
    if name == "rbe_conv":
        model = RBEConvNet()  # the paper's standard setting
        return model, rbe.random_bits(kx, 5), losses.mean_squared_error, jnp.array([1.0])
    if name == "vgg":
        model = DenseSampleVGG(num_classes=3, num_conv=2, conv_features=3, hidden=(16,), pool_size=4, dropout_rate=0.0)
        return model, jax.random.uniform(kx, (5, 8, 8, 3)), losses.softmax_cross_entropy, jnp.array([2])
    if name == "rbe_conv2d":
        from jaxdyn.models import RBEConvNet2D

        # ReLU and binary cross-entropy here, so every activation and loss of the RBE nets is covered.
        model = RBEConvNet2D(num_layers=2, features=4, activation="relu")
        return model, jax.random.uniform(kx, (5, 6, 6)), losses.binary_cross_entropy, jnp.array([0.0])
    raise KeyError(name)


MODELS = ["deep_linear", "rbe_conv", "vgg", "rbe_conv2d"]


def _perturbed(params, seed, scale=0.05):
    # A generic point of parameter space: zero biases put ReLU units of all-zero bit patches
    # exactly on their kink, where the response is not differentiable.
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a, np.float64) + scale * rng.standard_normal(a.shape)), params)


@pytest.fixture(scope="module", params=MODELS)
def computed(request):
    model, x, loss, y_o = _case(request.param)
    with jax.enable_x64(True):
        params = _perturbed(jax.jit(model.init)(jax.random.key(2), x)["params"], 5)
        x = x.astype(jnp.float64)
        f = N.apply_fn(model)
        plain = lambda p, xx: model.apply({"params": p}, xx)  # noqa: E731 -- no ModelFn: the jaxpr path
        batch = {"x": x[:1], "y": y_o}
        lrs = jnp.array([LR_BIG, LR_SMALL])

        @jax.jit
        def run(params):
            out = {
                "implicit": N.ntk(f, params, x, method="implicit", batch_size=2),  # 5 rows in chunks of 2
                "jacobian": N.ntk(f, params, x, x[:3], method="jacobian"),
                "structured": N.ntk(f, params, x, x[:3], method="structured"),
                "structured_same": N.ntk(f, params, x, method="structured"),
                "auto": N.ntk(f, params, x, x[:3]),
                "out": f(params, x),
                "dl_df": N.loss_gradient(f, params, loss, batch),
                "delta": jax.vmap(lambda lr: N.training_response(f, params, loss, batch, x, lr))(lrs),
            }
            if loss is losses.mean_squared_error:
                out["normalised"] = N.normalised_response(f, params, loss, batch, x, LR_SMALL)
            # The same network as a plain function: the structured method reads its jaxpr.
            out["plain_structured"] = N.ntk(plain, params, x, x[:3], method="structured")
            return out

        out = jax.tree_util.tree_map(np.asarray, run(params))
    return request.param, params, out


def test_implicit_ntk_equals_jacobian_contraction(computed):
    name, _, out = computed
    single = out["out"].ndim == 1
    assert out["implicit"].shape == ((5, 5) if single else (5, 5, 3, 3))
    ref = out["jacobian"]
    np.testing.assert_allclose(out["implicit"][:, :3], ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    # On one batch the NTK is a Gram matrix: symmetric and positive semi-definite.
    g = out["implicit"] if single else out["implicit"].transpose(0, 2, 1, 3).reshape(15, 15)
    np.testing.assert_allclose(g, g.T, rtol=1e-10, atol=1e-12 * np.abs(g).max())
    assert np.linalg.eigvalsh(g).min() > -1e-9 * np.abs(g).max()


def test_structured_and_auto_equal_jacobian_contraction(computed):
    # float64: the methods differ only in the order of the sums.
    name, _, out = computed
    ref = out["jacobian"]
    assert out["structured"].shape == ref.shape == out["auto"].shape
    tol = dict(rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(out["structured"], ref, **tol, err_msg=name)
    np.testing.assert_allclose(out["structured_same"][:, :3], ref, **tol, err_msg=name)
    np.testing.assert_allclose(out["auto"], ref, **tol, err_msg=name)


def test_response_is_ntk_to_first_order_in_lr(computed):
    # Delta - (-lr Theta(x, x_o) dL/df(x_o)) is O(lr^2): the relative error falls 4x with lr.
    name, _, out = computed
    theta = out["implicit"][:, 0]  # Theta(x, x_o): (5,) or (5, K, K)
    g = out["dl_df"][0]
    errs = []
    for i, lr in enumerate((LR_BIG, LR_SMALL)):
        lin = -lr * (theta * g if theta.ndim == 1 else np.einsum("nak,k->na", theta, g))
        d = out["delta"][i]
        assert d.shape == out["out"].shape
        errs.append(np.linalg.norm(d - lin) / np.linalg.norm(lin))
    ratio = errs[0] / errs[1]
    assert 3.0 < ratio < 5.0, (name, errs)
    assert errs[0] < 1e-3, (name, errs)


def test_deep_linear_ntk_closed_form():
    # f = W2 W1 x: Theta(x, x')_ab = delta_ab (W1 x).(W1 x') + (W2 W2^T)_ab x.x'.
    model = DeepLinear((3, 5, 2), init_scheme="orthogonal", scale=1.0)
    x = jax.random.normal(jax.random.key(0), (4, 3))
    params = jax.jit(model.init)(jax.random.key(1), x)["params"]
    w1 = np.asarray(params["layer_0"]["kernel"]).T  # (5, 3)
    w2 = np.asarray(params["layer_1"]["kernel"]).T  # (2, 5)
    xn = np.asarray(x)
    h = xn @ w1.T
    expected = np.einsum("ij,ab->ijab", h @ h.T, np.eye(2)) + np.einsum("ij,ab->ijab", xn @ xn.T, w2 @ w2.T)
    got = np.asarray(jax.jit(lambda p: N.ntk(N.apply_fn(model), p, x))(params))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_normalised_response_is_twice_lr_theta_for_mse(computed):
    # Mean squared error: dL/df = 2 (f - y), so Delta / (y_o - f(x_o)) -> 2 lr Theta(x_o, x).
    name, params, out = computed
    if "normalised" not in out:
        pytest.skip("normalised response: one output trained with the mean squared error only")
    np.testing.assert_allclose(out["normalised"], 2 * LR_SMALL * out["implicit"][0], rtol=1e-4)
    with pytest.raises(ValueError, match="one training point"):
        model, x, loss, _ = _case(name)
        N.normalised_response(N.apply_fn(model), params, loss, {"x": x[:2], "y": jnp.zeros(2)}, x, 0.1)


CHUNKING_LIMIT = 16_000  # bytes


class _Mixed(nn.Module):
    """Strided nn.Conv, a LayerNorm (not dense-like), a Dense called twice (shared kernel), 3 outputs."""

    @nn.compact
    def __call__(self, x, train=False):
        h = nn.elu(nn.Conv(4, (3, 3), strides=2, padding="SAME")(x))
        h = nn.LayerNorm()(h).reshape(x.shape[0], -1)
        h = jnp.tanh(nn.Dense(6)(h))
        shared = nn.Dense(6)
        h = shared(jnp.tanh(shared(h)))
        return nn.Dense(3)(h)


def test_structured_float32_conv_shared_layer_fallback_and_chunks():
    model = _Mixed()
    kx, kp = jax.random.split(jax.random.key(3))
    x = jax.random.uniform(kx, (7, 7, 7, 2))
    params = _perturbed(model.init(kp, x)["params"], 1)
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    f = N.apply_fn(model)

    @jax.jit
    def run(params):
        return {
            "jacobian": N.ntk(f, params, x, x[:4], method="jacobian"),
            "structured": N.ntk(f, params, x, x[:4], method="structured"),
            # A memory limit of a few kB forces chunks of examples and of rows of x1 (see below).
            "chunked": N.ntk(f, params, x, x[:4], method="structured", memory_limit=CHUNKING_LIMIT),
        }

    out = jax.tree_util.tree_map(np.asarray, run(params))
    ref = out["jacobian"]
    assert ref.shape == (7, 4, 3, 3) and ref.dtype == np.float32
    for key in ("structured", "chunked"):
        # float32 sums of ~100 terms in another order: a few ulps of the largest entry.
        np.testing.assert_allclose(out[key], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max(), err_msg=key)


def test_structured_plan_covers_dense_like_layers_only():
    model = _Mixed()
    x = jnp.zeros((2, 7, 7, 2))
    params = model.init(jax.random.key(0), x)["params"]
    _, plan = N._analyse(N.apply_fn(model), params, x, 2, True, 16, True, 1 << 30)
    assert [layer.path[0] for layer in plan.layers] == ["Conv_0", "Dense_0", "Dense_1", "Dense_2"]
    shared = plan.layers[2]
    assert len(shared.keys) == 2 and shared.positions == 2  # two calls: two positions of one kernel
    assert plan.layers[0].positions == 16 and plan.layers[0].d_in == 18  # 4x4 outputs of 3x3x2 patches
    paths = N._leaf_paths(params)
    assert sorted(paths[i] for i in plan.fallback) == [("LayerNorm_0", "bias"), ("LayerNorm_0", "scale")]
    assert plan.chunk == plan.side_chunk == 2  # no chunks: all rows, all examples at once
    x7 = jnp.zeros((7, 7, 7, 2))
    _, small = N._analyse(N.apply_fn(model), params, x7, 4, False, 16, True, CHUNKING_LIMIT)
    assert 1 < small.chunk < 7 and 7 % small.chunk and small.side_chunk < 4  # chunks with a remainder


def test_bad_method_is_rejected():
    with pytest.raises(ValueError, match="method"):
        N.ntk(lambda p, x: x, {}, jnp.zeros((1, 2)), method="exact")
    with pytest.raises(ValueError, match="evaluation-mode"):
        N.ntk(N.apply_fn(DeepLinear((2, 1)), train=True), {}, jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match="batch_size"):
        N.ntk(lambda p, x: x @ p, jnp.ones((2, 1)), jnp.zeros((1, 2)), batch_size=0)
    with pytest.raises(ValueError, match="x2"):
        N.ntk(lambda p, x: x @ p, jnp.ones((2, 1)), jnp.zeros((1, 2)), jnp.zeros((1, 3)))


def test_auto_picks_by_cost_and_falls_back_without_memory():
    w = jnp.ones((3, 2))
    x = jnp.ones((4, 3))
    f = lambda p, x: jnp.tanh(x @ p)  # noqa: E731 -- a plain callable: its jaxpr's structure
    est = N.ntk_estimates(f, w, x)
    assert set(est) == {"implicit", "jacobian", "structured"}
    assert N.choose_method(f, w, x) == min(est, key=lambda m: est[m].cost)
    assert N.choose_method(N.apply_fn(DeepLinear((3, 2))), {"layer_0": {"kernel": w}}, x, memory_limit=0) == "implicit"
    np.testing.assert_allclose(N.ntk(f, w, x), N.ntk(f, w, x, method="jacobian"), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# The structured method on plain JAX functions (the jaxpr path), float64 against Jacobians.
# ---------------------------------------------------------------------------------------------
def _mlp(p, x):
    h = jnp.tanh(x @ p["w1"] + p["b1"])
    return jax.vmap(lambda hi: hi @ p["w2"] + p["b2"])(h)  # a vmap over examples inside f


def _convnet(p, x):
    # SAME NHWC, then strided VALID NCHW with a dilated kernel, then an lhs-dilated (transposed)
    # convolution with explicit asymmetric padding; biases broadcast both ways.
    h = lax.conv_general_dilated(x, p["k1"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["c1"]
    h = jnp.transpose(jax.nn.softplus(h), (0, 3, 1, 2))
    h = lax.conv_general_dilated(h, p["k2"], (2, 2), "VALID", rhs_dilation=(1, 2), dimension_numbers=("NCHW", "OIHW", "NCHW"))
    h = jnp.tanh(h + p["c2"][None, :, None, None])
    h = lax.conv_general_dilated(h, p["k3"], (1, 1), ((1, 1), (0, 1)), lhs_dilation=(2, 1),
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return jnp.tanh(h.reshape(h.shape[0], -1)) @ p["w"]


def _shared(p, x):
    # u used twice the same way (one weight group, two sites); w as W and as W^T (two layouts);
    # b as a bias twice and as a weight vector (mixed); m1 @ m2 a product of two parameters (the
    # same X for every example).
    h = jnp.tanh(x @ (p["m1"] @ p["m2"]) @ p["u"])
    h = jnp.tanh(h @ p["u"] + p["b"])
    h = jnp.tanh(h @ p["w"] + p["b"])
    h = jnp.tanh(h @ p["w"].T)
    return h @ p["v"] + (h @ p["b"])[:, None]


def _nonlinear(p, x):
    h = x @ (p["w"] * jnp.exp(p["log_s"]))  # a parameter through exp, a product of two parameters
    h = jnp.tanh(h * p["gain"] + p["b"])
    h, _ = lax.scan(lambda c, _: (jnp.tanh(c @ p["r"]), None), h, None, length=2)  # inside a scan
    h = lax.conv_general_dilated(h.reshape(h.shape[0], 2, 2), p["g"], (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"),
                                 feature_group_count=2)  # grouped convolution
    h = jnp.tanh(h.reshape(h.shape[0], -1))
    h = jax.jit(lambda a, m: a @ m)(h, p["q"] * 2.0 / 3.0)  # through a jit call and scalar scalings
    return jax.checkpoint(lambda a: jnp.sin(a @ p["v"]))(h)


@jax.custom_jvp
def _act(z):
    return jnp.tanh(z)


@_act.defjvp
def _act_jvp(primals, tangents):
    # Twice the derivative of tanh: differentiating the primal instead of this rule would be wrong.
    (z,), (dz,) = primals, tangents
    return jnp.tanh(z), 2.0 * (1.0 - jnp.tanh(z) ** 2) * dz


@jax.custom_vjp
def _act2(z):
    return jnp.sin(z)


_act2.defvjp(lambda z: (jnp.sin(z), jnp.cos(z)), lambda c, g: (3.0 * c * g,))


@jax.custom_jvp
def _scale(z, s):
    return z * s


_scale.defjvp(lambda primals, tangents: (_scale(*primals), tangents[0] * primals[1] + 0.5 * primals[0] * tangents[1]))


def _custom(p, x):
    h = _act(x @ p["w1"] + p["b1"])
    h = _act2(h @ p["w2"])
    return _scale(h, p["s"]) @ p["w3"]  # s enters a custom_jvp: Jacobians


def _plain_case(name):
    rng = np.random.default_rng({"mlp": 0, "conv": 1, "shared": 2, "nonlinear": 3, "custom": 4}[name])

    def a(*shape):
        return jnp.asarray(rng.standard_normal(shape) / np.sqrt(shape[0] if len(shape) > 1 else 1.0))

    if name == "mlp":
        return _mlp, {"w1": a(4, 7), "b1": a(7), "w2": a(7, 3), "b2": a(3)}, a(6, 4)
    if name == "conv":
        p = {"k1": a(3, 3, 2, 4), "c1": a(4), "k2": a(5, 4, 3, 2), "c2": a(5), "k3": a(3, 5, 2, 2), "w": a(96, 2)}
        return _convnet, p, a(6, 9, 9, 2)
    if name == "shared":
        return _shared, {"m1": a(4, 2), "m2": a(2, 4), "u": a(4, 4), "w": a(4, 4), "b": a(4), "v": a(4, 3)}, a(6, 4)
    if name == "nonlinear":
        p = {"w": a(3, 4), "log_s": a(4), "gain": a(4), "b": a(4), "r": a(4, 4), "g": a(3, 1, 4), "q": a(8, 5), "v": a(5, 2)}
        return _nonlinear, p, a(6, 3)
    if name == "custom":
        return _custom, {"w1": a(3, 5), "b1": a(5), "w2": a(5, 5), "s": a(5), "w3": a(5, 2)}, a(6, 3)
    raise KeyError(name)


# Leaves each plain function's structure must leave to per-example Jacobians.
PLAIN_FALLBACK = {"mlp": [], "conv": [], "shared": [], "nonlinear": ["gain", "g", "log_s", "r", "w"], "custom": ["s"]}
PLAIN_KINDS = {
    "mlp": {"w1": "weight", "b1": "bias", "w2": "weight", "b2": "bias"},
    "conv": {"k1": "weight", "c1": "bias", "k2": "weight", "c2": "bias", "k3": "weight", "w": "weight"},
    "shared": {"m1": "weight", "m2": "weight", "u": "weight", "w": "mixed", "b": "mixed", "v": "weight"},
    "nonlinear": {"b": "bias", "q": "weight", "v": "weight"},
    "custom": {"w1": "weight", "b1": "bias", "w2": "weight", "w3": "weight"},
}


FORCED = ("mlp", "conv", "shared")  # weight groups of dense, conv and shared sites
CHUNKED = ("conv", "shared")


def _forced_modes(f, params, x1, x2, mode, pairs=N._FULL):
    """The structured NTK with every weight group contracted in ``mode`` ('grad', 'gram', 'gram2')."""
    _, plan = N._analyse(f, params, x1, x2.shape[0], False, 16, True, 1 << 30)
    modes = tuple(mode if getattr(g, "kind", "weight") == "weight" else "grad" for g in plan.layers)
    k = int(np.prod(jax.eval_shape(f, params, x1[:1]).shape[1:]))
    return N._ntk_structured(f, params, x1, x2, plan._replace(modes=modes), k, pairs)


@pytest.mark.parametrize("name", ["mlp", "conv", "shared", "nonlinear", "custom"])
def test_structured_plain_function_equals_jacobian(name):
    with jax.enable_x64(True):
        f, params, x = _plain_case(name)
        x2 = x[:4]

        @jax.jit
        def run(params):
            out = {"jacobian": N.ntk(f, params, x, x2, method="jacobian"),
                   "structured": N.ntk(f, params, x, x2, method="structured"),
                   "structured_same": N.ntk(f, params, x, method="structured"),
                   "auto": N.ntk(f, params, x, x2)}
            if name in FORCED:  # every contraction order of the weight groups
                for mode in ("grad", "gram", "gram2"):
                    out[mode] = _forced_modes(f, params, x, x2, mode)
            if name == "mlp":  # under an outer vmap over parameter sets (a seed ensemble)
                stack = jax.tree_util.tree_map(lambda a: jnp.stack([a, 1.1 * a]), params)
                out["seeds"] = jax.vmap(lambda p: N.ntk(f, p, x, x2, method="structured"))(stack)
                out["seeds_ref"] = jax.vmap(lambda p: N.ntk(f, p, x, x2, method="jacobian"))(stack)
            if name in CHUNKED:  # a limit of a few kB: chunks of examples and of rows of x1
                out["chunked"] = N.ntk(f, params, x, x2, method="structured", memory_limit=4_000)
            return out

        out = jax.tree_util.tree_map(np.asarray, run(params))
        st = N._jaxpr_structure(f, params, x)
        _, chunked = N._analyse(f, params, x, 4, False, 16, True, 4_000)
    ref = out["jacobian"]
    assert ref.shape == (6, 4, ref.shape[2], ref.shape[2]) and ref.dtype == np.float64
    tol = dict(rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    assert set(out) >= {"grad", "gram", "gram2"} if name in FORCED else True
    for key in set(out) - {"jacobian", "structured_same", "seeds", "seeds_ref"}:
        np.testing.assert_allclose(out[key], ref, **tol, err_msg=f"{name} {key}")
    if name == "mlp":
        np.testing.assert_allclose(out["seeds_ref"][0], ref, **tol)
        np.testing.assert_allclose(out["seeds"], out["seeds_ref"], **tol)
    np.testing.assert_allclose(out["structured_same"][:, :4], ref, **tol, err_msg=name)
    names = [p[0] for p in N._leaf_paths(params)]
    assert sorted(names[i] for i in st.fallback) == sorted(PLAIN_FALLBACK[name])
    assert {names[g.leaf]: g.kind for g in st.groups} == PLAIN_KINDS[name]
    if name in CHUNKED:
        assert chunked.side_chunk < 6 and chunked.chunk < 6  # the chunked run did chunk


def test_structured_plain_function_sites():
    f, params, x = _plain_case("shared")
    st = N._jaxpr_structure(f, params, x)
    names = [p[0] for p in N._leaf_paths(params)]
    groups = {names[g.leaf]: g for g in st.groups}
    assert len(groups["u"].sites) == 2 and groups["u"].positions == 2  # two calls, one position each
    assert [st.sites[i].kind for i in groups["b"].sites] == ["add", "add", "dot"]
    # Seven matmuls with a parameter (m1 @ m2 one, with two sites), each perturbed once; both bias
    # adds reuse their matmul's cotangent.
    assert len(st.perts) == 7 and sum(s.kind == "dot" for s in st.sites) == 8
    assert groups["m1"].positions == 4 and groups["m2"].positions == 4  # the columns of m2, the rows of m1
    f, params, x = _plain_case("conv")
    st = N._jaxpr_structure(f, params, x)
    conv = [s for s in st.sites if s.kind == "conv"]
    assert [(s.positions, s.d_in, s.d_out) for s in conv] == [(81, 18, 4), (16, 24, 5), (32, 20, 3)]


def test_structured_package_models_as_plain_functions(computed):
    # lambda p, x: model.apply({'params': p}, x), float64, against the flax model's Jacobian NTK.
    name, params, out = computed
    ref = out["jacobian"]
    np.testing.assert_allclose(out["plain_structured"], ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max(), err_msg=name)
    model, x, _, _ = _case(name)
    with jax.enable_x64(True):
        st = N._jaxpr_structure(lambda p, xx: model.apply({"params": p}, xx), params, x.astype(jnp.float64))
    names = ["/".join(p) for p in N._leaf_paths(params)]
    fallback = sorted(names[i] for i in st.fallback)
    if name == "rbe_conv":  # its PatchConv runs inside a custom_jvp (and folds the bias into the kernel)
        assert fallback == [f"conv_{i}/{leaf}" for i in range(3) for leaf in ("bias", "kernel")]
        assert {names[g.leaf] for g in st.groups} == {"dense/bias", "dense/kernel"}
    else:  # PatchConv's plain matmul and the Dense layers: every leaf has its sites
        assert fallback == []
        assert {names[g.leaf]: g.kind for g in st.groups} == {n: "bias" if n.endswith("bias") else "weight" for n in names}


def test_trace_and_diagonal_axes_against_full_kernel():
    with jax.enable_x64(True):
        f, params, x = _plain_case("mlp")
        g = lambda p, xx: f(p, xx)[:, :2, None] * jnp.arange(1.0, 4.0)  # noqa: E731 -- output (N, 2, 3)
        combos = [((-1,), ()), ((), (1,)), ((1,), (2,)), ((), (0,)), ((), ()), ((1, 2), ()), ((0,), (-1,))]

        @jax.jit
        def run(params):
            full = N.ntk(g, params, x, method="jacobian").reshape(6, 6, 2, 3, 2, 3)  # [i, j, a, b, c, d]
            return full, [[N.ntk(g, params, x, method=m, trace_axes=t, diagonal_axes=d) for (t, d) in combos]
                          for m in ("structured", "jacobian", "implicit")]

        full, got = jax.tree_util.tree_map(np.asarray, run(params))
        single = np.asarray(N.ntk(f, params, x, x[:4], method="structured", trace_axes=(-1,)))
        scalar = np.asarray(N.ntk(lambda p, xx: f(p, xx)[:, 0], params, x, x[:4], trace_axes=(), diagonal_axes=()))
        ref_single = np.asarray(N.ntk(f, params, x, x[:4], method="jacobian"))
        ref_scalar = np.asarray(N.ntk(lambda p, xx: f(p, xx)[:, 0], params, x, x[:4], method="jacobian"))
    # neural-tangents' layout: remaining axes in pairs, a diagonal axis once, traces as means
    # (checked once against neural-tangents 0.6.5 itself on these combinations).
    expected = [np.einsum("ijabcb->ijac", full) / 3, np.einsum("ijabad->ijabd", full), np.einsum("ijabab->ijb", full) / 2,
                np.einsum("iiabcd->iacbd", full), np.einsum("ijabcd->ijacbd", full), np.einsum("ijabab->ij", full) / 6,
                np.einsum("iiabcb->acb", full) / 6]
    for per_method in got:
        for (t, d), e, o in zip(combos, expected, per_method):
            assert o.shape == e.shape, (t, d)
            np.testing.assert_allclose(o, e, rtol=1e-10, atol=1e-12 * np.abs(e).max(), err_msg=str((t, d)))
    np.testing.assert_allclose(single, np.einsum("ijaa->ij", ref_single) / 3, rtol=1e-10)
    np.testing.assert_allclose(scalar, ref_scalar, rtol=1e-10)
    # Traces and diagonals are taken inside every contraction order and chunk (a conv net: P > 1).
    with jax.enable_x64(True):
        fc, pc, xc = _plain_case("conv")
        trace, diag = N._pairs((6, 2), (1,), ()), N._pairs((6, 2), (), (1,))

        @jax.jit
        def run_conv(p):
            out = {m: _forced_modes(fc, p, xc, xc[:4], m, trace) for m in ("grad", "gram", "gram2")}
            out["gram2 diagonal"] = _forced_modes(fc, p, xc, xc[:4], "gram2", diag)
            out["chunked diagonal"] = N.ntk(fc, p, xc, xc[:4], method="structured", memory_limit=4_000, diagonal_axes=-1)
            return N.ntk(fc, p, xc, xc[:4], method="jacobian"), out

        full_c, got_c = jax.tree_util.tree_map(np.asarray, run_conv(pc))
    for key, o in got_c.items():
        e = np.einsum("ijaa->ija", full_c) if "diagonal" in key else np.einsum("ijaa->ij", full_c) / 2
        np.testing.assert_allclose(o, e, rtol=1e-10, atol=1e-12 * np.abs(e).max(), err_msg=key)
    with pytest.raises(ValueError, match="trace_axes"):
        N.ntk(g, params, x, trace_axes=(3,))
    with pytest.raises(ValueError, match="must not share"):
        N.ntk(g, params, x, trace_axes=(1,), diagonal_axes=(-2,))
    with pytest.raises(ValueError, match="example axis"):
        N.ntk(g, params, x, x[:2], diagonal_axes=(0,))


class _Normed(nn.Module):
    """Dense, BatchNorm (running statistics in evaluation mode), tanh, Dense: 2 outputs."""

    @nn.compact
    def __call__(self, x, train=False):
        h = nn.BatchNorm(use_running_average=not train)(nn.Dense(5)(x))
        return nn.Dense(2)(jnp.tanh(h))


def test_model_with_batch_stats_ntk_wrt_params_only():
    model = _Normed()
    x = jax.random.normal(jax.random.key(4), (6, 3))
    with jax.enable_x64(True):
        variables = model.init(jax.random.key(5), x)
        params = _perturbed(variables["params"], 2)
        rng = np.random.default_rng(3)
        stats = {"BatchNorm_0": {"mean": jnp.asarray(rng.standard_normal(5)), "var": jnp.asarray(rng.uniform(0.5, 2.0, 5))}}
        x = x.astype(jnp.float64)
        f = N.apply_fn(model, variables={"params": variables["params"], "batch_stats": stats})

        def one(p, xi):
            return model.apply({"params": p, "batch_stats": stats}, xi[None])[0]

        jac = jax.vmap(jax.jacrev(one), (None, 0))(params, x)  # leaves (N, 2, *leaf)
        leaves = [a.reshape(6, 2, -1) for a in jax.tree_util.tree_leaves(jac)]
        ref = np.asarray(sum(jnp.einsum("iaq,jbq->ijab", a, a) for a in leaves))
        got = jax.jit(lambda p: {m: N.ntk(f, p, x, method=m) for m in ("structured", "jacobian", "implicit")})(params)
        f_train = N.apply_fn(model, variables={"batch_stats": stats}, train=True)
        y_train = f_train(params, x, jax.random.key(0))  # batch statistics; the updated ones discarded
    for m, theta in got.items():
        np.testing.assert_allclose(np.asarray(theta), ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max(), err_msg=m)
    assert y_train.shape == (6, 2)
    with pytest.raises(TypeError):
        hash(f)  # carries arrays: never a silent static argument
    with pytest.raises(ValueError, match="variables"):
        N.apply_fn(model, variables=[stats])
