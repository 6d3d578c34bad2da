"""Layer coupling (channel-mean Pearson correlation) and linear CKA on activations with known answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.analysis import layers


def _acts(seed=0, shape=(20, 6, 6, 3)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_coupling_of_an_affine_copy_is_one_and_ignores_filter_order():
    a = _acts()
    b = 2.0 * a[..., ::-1] + 3.0  # filters permuted, scaled and shifted: same channel-mean map up to affinity
    c = _acts(1)
    m = np.asarray(layers.coupling_matrix([a, b, c]))
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-6)
    np.testing.assert_allclose(m[0, 1], 1.0, atol=1e-6)
    np.testing.assert_allclose(m, m.T, atol=1e-7)
    # Independent layers: |r| within 4 standard errors of 0 (n = 20 * 6 * 6 maps).
    assert abs(m[0, 2]) < 4 / np.sqrt(720)
    np.testing.assert_allclose(layers.successive_coupling([a, b, c]), [m[0, 1], m[1, 2]], atol=1e-7)


def test_coupling_recovers_a_known_correlation():
    rng = np.random.default_rng(2)
    n = (200, 10, 10, 3)
    for rho in (0.8, 0.3, -0.5):
        base = rng.standard_normal(n[:3])
        noise = rng.standard_normal(n[:3])
        a = np.repeat(base[..., None], 3, -1) + 0.0
        # Layer b's channel-mean map is rho base + sqrt(1 - rho^2) noise; its channels differ.
        mixed = rho * base + np.sqrt(1 - rho**2) * noise
        spread = rng.standard_normal(n)
        spread -= spread.mean(-1, keepdims=True)  # zero channel mean: does not change the map
        b = mixed[..., None] + spread
        r = float(layers.coupling_matrix([a, b])[0, 1])
        assert abs(r - rho) < 4 * (1 - rho**2) / np.sqrt(np.prod(n[:3])), (r, rho)


def test_coupling_requires_equal_shapes():
    with pytest.raises(ValueError, match="one shape"):
        layers.coupling_matrix([_acts(shape=(4, 3, 3, 3)), _acts(shape=(4, 2, 2, 3))])


def test_cka_known_answers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 8))
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    assert float(layers.linear_cka(x, x)) == pytest.approx(1.0, abs=1e-5)
    # Invariant to an orthogonal transform and isotropic scaling.
    assert float(layers.linear_cka(x, 3.0 * x @ q)) == pytest.approx(1.0, abs=1e-5)
    # Centred orthogonal columns of squared norms v_i; Y = the first column alone:
    # CKA = v_1 / sqrt(sum v_i^2).
    u, _ = np.linalg.qr(rng.standard_normal((30, 3)) - 0)
    u = u - u.mean(0)
    u, _ = np.linalg.qr(u)
    v = np.array([4.0, 2.0, 1.0])
    x3 = u * np.sqrt(v)
    expected = v[0] / np.sqrt(np.sum(v**2))
    assert float(layers.linear_cka(x3, x3[:, :1])) == pytest.approx(expected, rel=1e-4)
    # Not invariant to a non-isotropic rescaling of the features (a wrong centring would be).
    assert float(layers.linear_cka(x3, x3 * np.array([1.0, 5.0, 1.0]))) < 0.99


def test_cka_matrix_matches_pairs_and_runs_under_jit():
    acts = [_acts(s, (12, 4, 4, 3)) for s in range(3)]
    acts[2] = acts[1] * 2.0
    grams = jnp.stack([layers.gram(a) for a in acts])
    m = np.asarray(jax.jit(layers.cka_matrix)(grams))
    for i in range(3):
        for j in range(3):
            assert m[i, j] == pytest.approx(float(layers.linear_cka(acts[i], acts[j])), abs=1e-5)
    assert m[1, 2] == pytest.approx(1.0, abs=1e-5)
    coupled = jax.jit(jax.vmap(layers.coupling_matrix))([jnp.stack([a] * 2) for a in acts])
    assert coupled.shape == (2, 3, 3)


def test_coupling_from_sufficient_statistics_matches_and_adds_over_groups():
    rng = np.random.default_rng(4)
    acts = [np.maximum(rng.standard_normal((10, 6, 6, 3)) + i * 0.3, 0).astype(np.float32) for i in range(3)]
    acts[1] = acts[0] * 0.7 + 0.3 * acts[1]  # a coupled pair
    count, sums, cross = (np.asarray(a) for a in layers.coupling_statistics(acts))
    np.testing.assert_allclose(layers.coupling_from_statistics(count, sums, cross), layers.coupling_matrix(acts), atol=1e-5)
    # Two halves, summed, give the whole set; a mask leaves rows out.
    a = [np.asarray(x) for x in layers.coupling_statistics([x[:4] for x in acts])]
    b = [np.asarray(x) for x in layers.coupling_statistics([x[4:] for x in acts])]
    np.testing.assert_allclose(layers.coupling_from_statistics(a[0] + b[0], a[1] + b[1], a[2] + b[2]),
                               layers.coupling_matrix(acts), atol=1e-5)
    mask = np.r_[np.ones(4), np.zeros(6)]
    masked = [np.asarray(x) for x in layers.coupling_statistics(acts, mask)]
    np.testing.assert_allclose(masked[1], a[1], rtol=1e-6)


def test_distance_profile_and_its_linearity():
    c = np.eye(5)
    for i in range(5):
        for j in range(5):
            c[i, j] = 1.0 - 0.2 * abs(i - j)
    prof = layers.distance_profile(c)
    np.testing.assert_allclose(prof, [0.8, 0.6, 0.4, 0.2])
    assert layers.profile_linearity(prof) == pytest.approx(1.0)
    assert layers.profile_linearity(np.array([0.8, 0.2, 0.19, 0.18])) < 0.8  # a knee, not a line
    assert np.isnan(layers.profile_linearity(np.array([0.5, 0.5, 0.5])))


def test_weight_correlation_of_kernels():
    rng = np.random.default_rng(8)
    k0 = rng.standard_normal((3, 3, 3, 3))
    kernels = np.stack([k0, 2 * k0 + 1, -k0, rng.standard_normal((3, 3, 3, 3))])
    r = layers.weight_correlation(kernels)
    assert r.shape == (4, 4)
    np.testing.assert_allclose(r[0, 1], 1.0) and np.testing.assert_allclose(r[0, 2], -1.0)
    assert abs(r[0, 3]) < 0.5
    batched = layers.weight_correlation(np.stack([kernels, kernels]))  # (seed, L, ...) leading axes
    np.testing.assert_allclose(batched[1], r)
