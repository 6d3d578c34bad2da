"""Kernel and mean-field dynamics (jaxdyn.theory.meanfield) against exact answers."""

import numpy as np
import pytest

from jaxdyn.theory import meanfield as mf


def test_group_kernel_averages():
    theta = np.arange(16.0).reshape(4, 4)
    group = np.array([0, 0, 1, 1])
    diag, cross = mf.group_kernel(theta[None], group)
    np.testing.assert_allclose(diag[0], [(0 + 5) / 2, (10 + 15) / 2])
    np.testing.assert_allclose(cross[0], [[(1 + 4) / 2, (2 + 3 + 6 + 7) / 4], [(8 + 9 + 12 + 13) / 4, (11 + 14) / 2]])
    _, c1 = mf.group_kernel(np.eye(3)[None], np.array([0, 1, 1]))
    assert np.isnan(c1[0, 0, 0])  # a one-point group has no within-group pairs


def _block_kernel(sizes, d, o):
    """Kernel constant within blocks: diagonal d[a], off-diagonal o[a, b]."""
    group = np.repeat(np.arange(len(sizes)), sizes)
    theta = o[group][:, group].copy()
    np.fill_diagonal(theta, d[group])
    return theta, group


@pytest.mark.parametrize("space", ["output", "logit"])
def test_mean_field_is_exact_for_block_kernels(space):
    # With a kernel constant within blocks and equal initial predictions per group, Eq. 10 keeps
    # every group uniform, so the group mean field (Eq. 11) must reproduce it to solver tolerance.
    sizes = (6, 3, 2)
    d = np.array([1.5, 1.2, 1.0])
    o = np.array([[0.9, 0.4, 0.3], [0.4, 0.8, 0.6], [0.3, 0.6, 0.7]])
    theta, group = _block_kernel(sizes, d, o)
    n = group.size
    y = np.array([0.0, 1.0, 0.0])[group]
    w = np.full(n, 1.0 / n)
    f0g = np.array([0.5, 0.45, 0.55])
    ts = np.linspace(0, 300, 11)
    k = mf.solve_kernel(theta[None], f0g[group][None], y[None], w[None], ts, lr=0.1, space=space)
    diag, cross = mf.group_kernel(theta[None], group)
    big_w = np.array([[s / n for s in sizes]])
    m = mf.solve_meanfield(diag, cross, big_w, np.full((1, 3), 1.0 / n), f0g[None], np.array([[0.0, 1.0, 0.0]]), ts,
                           lr=0.1, space=space)
    assert k.ok.all() and m.ok.all()
    kg = np.stack([k.ys[0][:, group == a].mean(-1) for a in range(3)], -1)
    np.testing.assert_allclose(m.ys[0], kg, atol=2e-4)
    # The dynamics is not trivial: predictions move towards their labels, g1 from below 1/2 to above.
    assert kg[-1, 1] > 0.52 and kg[-1, 0] < 0.45


def test_kernel_ode_is_the_small_lr_limit_of_expected_sgd():
    # Expected SGD with a fixed kernel is the Euler map f <- f - lr Theta (w * 2 (f - y)); the ODE
    # differs from it by O(lr) at a fixed lr * t: halving lr halves the gap.
    # Same shapes as above (11 points, 11 save times): the compiled solver is reused.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((11, 16))
    theta = a @ a.T / 16
    y = (rng.random(11) < 0.5).astype(float)
    w = np.full(11, 1 / 11)
    f0 = np.full(11, 0.5)
    gaps = []
    for lr in (0.2, 0.1):
        steps = int(round(40.0 / lr))
        f, traj = f0.copy(), [f0.copy()]
        for _ in range(steps):
            f = f - lr * theta @ (w * 2 * (f - y))
            traj.append(f.copy())
        ts = np.linspace(0, steps, 11)
        sol = mf.solve_kernel(theta[None], f0[None], y[None], w[None], ts, lr=lr)
        gaps.append(np.abs(sol.ys[0] - np.array(traj)[:: steps // 10]).max())
    assert 1.7 < gaps[0] / gaps[1] < 2.3, gaps
    assert gaps[1] < 0.05


def test_invalid_choices_raise():
    with pytest.raises(ValueError, match="loss"):
        mf.kernel_vector_field("hinge", "output")
    with pytest.raises(ValueError, match="space"):
        mf.meanfield_vector_field("mse", "probability")
