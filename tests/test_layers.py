"""jaxdyn.models.layers.elu and PatchConv(bias_in_matmul=True, weight_grad_by_columns=True): the
same function and derivatives as the plain forms they replace for speed (fast: a few small
compilations)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.models import PatchConv, RBEConvNet, rbe_conv
from jaxdyn.models.layers import elu

KEY = jax.random.PRNGKey(0)
SPECIAL = np.array([-1e30, -100.0, -1.0, -1e-8, -0.0, 0.0, 1e-8, 1.0, 100.0, 1e30, np.inf, -np.inf, np.nan], np.float32)


def test_elu_matches_flax_values_and_derivatives():
    x = jnp.concatenate([jnp.asarray(SPECIAL), 4.0 * jax.random.normal(KEY, (2000,))])
    np.testing.assert_array_equal(jax.jit(elu)(x), nn.elu(x))  # NaN == NaN, -0.0 == 0.0 here
    # First derivative by reverse and forward mode (1 at x = 0, as flax's), and the second.
    d_ref = jax.vmap(jax.grad(nn.elu))(x)
    np.testing.assert_array_equal(jax.jit(jax.vmap(jax.grad(elu)))(x), d_ref)
    np.testing.assert_array_equal(jax.jvp(elu, (x,), (jnp.ones_like(x),))[1], d_ref)
    finite = jnp.isfinite(x) & (jnp.abs(x) < 50)
    dd = jax.vmap(jax.grad(jax.grad(elu)))(x)
    dd_ref = jax.vmap(jax.grad(jax.grad(nn.elu)))(x)
    np.testing.assert_allclose(np.asarray(dd)[finite], np.asarray(dd_ref)[finite], rtol=1e-6, atol=0)


def test_patchconv_bias_in_matmul_same_params_and_function():
    for ks, shape, padding in (((3,), (2, 11, 2), "VALID"), ((3, 3), (2, 8, 7, 3), "SAME")):
        x = jax.random.normal(jax.random.PRNGKey(1), shape)
        plain, folded = PatchConv(5, ks, padding=padding), PatchConv(5, ks, padding=padding, bias_in_matmul=True)
        v = plain.init(KEY, x)
        assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, v, folded.init(KEY, x)))
        v = jax.tree_util.tree_map(lambda p: p + 0.1, v)  # non-zero bias
        np.testing.assert_allclose(folded.apply(v, x), plain.apply(v, x), rtol=1e-6, atol=1e-6)
        g_plain = jax.grad(lambda v: jnp.sum(jnp.sin(plain.apply(v, x))))(v)
        g_fold = jax.grad(lambda v: jnp.sum(jnp.sin(folded.apply(v, x))))(v)
        # Sums of ~100 terms of size ~1 in another order: float32 rounding of a few 1e-6.
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), g_fold, g_plain)


def test_patchconv_weight_grad_by_columns_same_derivatives():
    """Forward bitwise equal; reverse- and forward-mode derivatives (in x and in the params) and a
    second derivative agree with the plain PatchConv, vmapped over members, 1-D and 2-D, with and
    without the bias in the matmul."""
    for ks, shape, padding, fold in (((3,), (3, 2, 11, 2), "VALID", True), ((3, 3), (3, 2, 6, 5, 2), "SAME", False)):
        x = jax.random.normal(jax.random.PRNGKey(4), shape)  # (members, N, *spatial, C)
        plain = PatchConv(4, ks, padding=padding, bias_in_matmul=fold)
        cols = PatchConv(4, ks, padding=padding, bias_in_matmul=fold, weight_grad_by_columns=True)
        v = jax.vmap(plain.init)(jax.random.split(KEY, shape[0]), x)
        v = jax.tree_util.tree_map(lambda p: p + 0.1, v)
        np.testing.assert_array_equal(jax.vmap(cols.apply)(v, x), jax.vmap(plain.apply)(v, x))

        def loss(m):
            return lambda v, x: jnp.sum(jnp.tanh(m.apply(v, x)) ** 2)

        close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # noqa: E731
        jax.tree_util.tree_map(close, jax.vmap(jax.grad(loss(cols), argnums=(0, 1)))(v, x),
                               jax.vmap(jax.grad(loss(plain), argnums=(0, 1)))(v, x))
        tv = jax.tree_util.tree_map(lambda p: jnp.cos(p), v)  # a tangent direction
        jvp = lambda m: jax.vmap(lambda v, x, t: jax.jvp(lambda w: m.apply(w, x), (v,), (t,))[1])(v, x, tv)  # noqa: E731
        close(jvp(cols), jvp(plain))
        hvp = lambda m: jax.vmap(lambda v, x, t: jax.jvp(jax.grad(loss(m)), (v, x), (t, jnp.sin(x)))[1])(v, x, tv)  # noqa: E731
        jax.tree_util.tree_map(close, hvp(cols), hvp(plain))


def test_rbe_net_matches_flax_elu_and_plain_patchconv(monkeypatch):
    """The shipped RBE net (layers.elu, PatchConv with bias in the matmul and the weight gradient
    by columns) vs the same net with nn.elu and a plain PatchConv: outputs and gradients agree to
    float32 rounding, vmapped over members as the engine runs it."""
    model = RBEConvNet(conv="patches")
    x = jax.random.bernoulli(jax.random.PRNGKey(3), 0.5, (4, 5, 16)).astype(jnp.float32)  # 4 members x 5 points
    params = jax.vmap(lambda k, xx: model.init(k, xx)["params"])(jax.random.split(KEY, 4), x)
    params = jax.tree_util.tree_map(lambda p: p + 0.05, params)  # non-zero biases

    def loss(m):
        return lambda p, xx: jnp.mean((m.apply({"params": p}, xx) - 0.3) ** 2)

    out, grads = jax.vmap(jax.value_and_grad(loss(model)))(params, x)
    monkeypatch.setitem(rbe_conv.ACTIVATIONS, "elu", nn.elu)
    real = rbe_conv.make_conv
    monkeypatch.setattr(rbe_conv, "make_conv", lambda *a, **patch_options: real(*a))
    ref_out, ref_grads = jax.vmap(jax.value_and_grad(loss(RBEConvNet(conv="patches"))))(params, x)
    np.testing.assert_allclose(out, ref_out, rtol=1e-6, atol=1e-7)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads, ref_grads)
