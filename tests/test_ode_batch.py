"""Batched ODE solving: the two batching modes agree, and the compiled solver is reused."""

import numpy as np

from jaxdyn.theory import saxe
from jaxdyn.theory.saxe import _solve_batch


def test_joint_and_per_member_modes_agree_within_tolerance():
    rng = np.random.default_rng(1)
    beta0, c, v = rng.uniform(0.05, 1.5, 64), rng.uniform(0.5, 2.0, 64), rng.uniform(0.01, 1.0, 64)
    ts = np.linspace(0.0, 10.0, 41)
    a = saxe.solve_alpha_beta(beta0, c, v, ts, rtol=1e-6, atol=1e-8)
    b = saxe.solve_alpha_beta(beta0, c, v, ts, rtol=1e-6, atol=1e-8, mode="joint")
    assert a.ok.all() and b.ok.all()
    for x, y in zip(a.ys, b.ys):
        assert x.shape == y.shape == (64, 41)
        # Both meet rtol 1e-6 on O(1-10) values in float32: they agree to ~1e-4 at worst.
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-4)


def test_repeated_calls_reuse_the_compiled_solver():
    ts = np.linspace(0.0, 1.0, 5)
    saxe.solve_alpha_beta(np.ones(3), np.ones(3), np.ones(3), ts)
    before = _solve_batch._cache_size()
    saxe.solve_alpha_beta(np.full(3, 0.5), np.ones(3), np.ones(3), ts)
    assert _solve_batch._cache_size() == before
