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


def test_auto_falls_back_without_structure_or_memory():
    w = jnp.ones((3, 2))
    x = jnp.ones((4, 3))
    f = lambda p, x: jnp.tanh(x @ p)  # noqa: E731 -- a plain callable: no layers to read
    assert N.choose_method(f, w, x) in ("jacobian", "implicit")
    assert N.choose_method(N.apply_fn(DeepLinear((3, 2))), {"layer_0": {"kernel": w}}, x, memory_limit=0) == "implicit"
    np.testing.assert_allclose(N.ntk(f, w, x), N.ntk(f, w, x, method="jacobian"), rtol=1e-6)
