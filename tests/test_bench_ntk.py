"""The NTK benchmark computes the same thing on both sides: benchmarks/ntk_models.py's pure-JAX
networks (what neural-tangents differentiates in its legacy environment) reproduce the jaxdyn
flax models on the same parameters, and the benchmark's naive NTK and float64 reference agree
with jaxdyn.ntk. No timing is asserted."""

import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import _common  # noqa: E402
import bench_ntk  # noqa: E402
import ntk_models  # noqa: E402


@pytest.mark.parametrize("name", list(bench_ntk.CASES))
def test_pure_function_reproduces_flax_model(name):
    case = bench_ntk.CASES[name]
    model = case.make_model()
    x = np.asarray(case.make_x(jax.random.PRNGKey(3), 5))
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x)["params"]
    flat = ntk_models.flatten_params(params)
    y_flax, y_pure = bench_ntk.outputs_flax_and_pure(case, model, params, flat, x)
    assert y_pure.shape == y_flax.shape == ((5,) if name.startswith("rbe") else (5, 5))
    # Same network, float32 (lax.conv vs patches + matmul): agreement to float32 rounding.
    np.testing.assert_allclose(y_pure, y_flax, rtol=0, atol=1e-5 * float(np.max(np.abs(y_flax))))
    # The patches variant (used for the float64 reference) is the same function.
    y_patch = jax.jit(ntk_models.make_apply(case.spec, conv_impl="patches"))(flat, x)
    np.testing.assert_allclose(y_patch, y_flax, rtol=0, atol=1e-5 * float(np.max(np.abs(y_flax))))
    # The flat dict round-trips to flax's nested layout.
    back = ntk_models.unflatten_params(flat)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(dict(params))


def test_naive_and_reference_ntk_match_jaxdyn():
    # A small VGG of the benchmark's kind (multi-output: Theta is (N, N, K, K)), to keep compiles short.
    from jaxdyn import ntk
    from jaxdyn.models import DenseSampleVGG

    model = DenseSampleVGG(num_classes=3, num_conv=2, conv_features=2, hidden=(4, 4), pool_size=2)
    spec = dict(kind="vgg", num_conv=2, pool_size=2, hidden=[4, 4])
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (3, 8, 8, 3)))
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x)["params"]
    flat = {k: np.asarray(v) for k, v in ntk_models.flatten_params(params).items()}
    ref = bench_ntk.reference_ntk(spec, flat, x)  # float64
    assert ref.shape == (3, 3, 3, 3) and ref.dtype == np.float64
    jd = np.asarray(ntk.ntk(ntk.apply_fn(model), params, x, None, method="jacobian"))
    naive = np.asarray(jax.jit(bench_ntk.naive_ntk(ntk_models.make_apply(spec)))(flat, x))
    scale = np.max(np.abs(ref))
    # float32 vs float64 of the same sums: agreement to float32 rounding.
    assert np.max(np.abs(jd - ref)) / scale < 1e-5
    assert np.max(np.abs(naive - ref)) / scale < 1e-5


def test_peak_rss_sees_an_allocation():
    # 256 MiB written page by page must show up in the peak (Linux /proc accounting).
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc")
    size = 256 * 2**20
    out, wall, peak = _common.measure_peak_rss(lambda: np.ones(size // 8))
    assert out.nbytes == size and wall >= 0
    if peak is None:
        pytest.skip("peak-RSS reset not permitted here")
    assert 0.9 * size <= peak <= 2 * size
