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


def _two_groups():
    sizes = (6, 3, 2)
    d = np.array([1.5, 1.2, 1.0])
    o = np.array([[0.9, 0.4, 0.3], [0.4, 0.8, 0.6], [0.3, 0.6, 0.7]])
    theta, group = _block_kernel(sizes, d, o)
    n = group.size
    return theta, group, np.array([s / n for s in sizes]), np.full(3, 1.0 / n), n


@pytest.mark.parametrize("space", ["output", "logit"])
def test_literal_eq11_moves_every_group_alike(space):
    # Eq. 11 as written: one right-hand side for every point, so group differences stay put (in z
    # for logit space) and the minority never turns; for MSE and two groups it is
    # 2 lr Theta_bar (-f0 rho0 + (1 - f1) rho1).
    theta, group, big_w, _, n = _two_groups()
    tbar = mf.literal_kernel(theta[None], np.full((1, n), 1.0 / n))
    assert tbar[0] == pytest.approx(theta.mean())
    f0 = np.array([[0.5, 0.45, 0.55]])
    ts = np.linspace(0, 300, 11)
    sol = mf.solve_literal(tbar, big_w[None], f0, np.array([[0.0, 1.0, 0.0]]), ts, lr=0.1, space=space)
    assert sol.ok.all()
    state = sol.ys[0] if space == "output" else np.log(sol.ys[0]) - np.log1p(-sol.ys[0])
    np.testing.assert_allclose(state - state[:, :1], (state - state[:, :1])[:1].repeat(len(ts), 0), atol=2e-4)
    field = mf.literal_vector_field("mse", "output")
    f = np.array([0.3, 0.6])
    w = np.array([0.75, 0.25])
    got = field(0.0, f, (2.0, w, np.array([0.0, 1.0]), 0.1))
    np.testing.assert_allclose(got, 2 * 0.1 * 2.0 * (-f[0] * w[0] + (1 - f[1]) * w[1]) * np.ones(2), rtol=1e-6)


@pytest.mark.parametrize("space", ["output", "logit"])
def test_aging_mean_field_reduces_to_the_fixed_one_and_to_a_time_change(space):
    theta, group, big_w, wbar, n = _two_groups()
    diag, cross = mf.group_kernel(theta[None], group)
    f0 = np.array([[0.5, 0.45, 0.55]])
    y = np.array([[0.0, 1.0, 0.0]])
    ts = np.linspace(0, 300, 11)
    fixed = mf.solve_meanfield(diag, cross, big_w[None], wbar[None], f0, y, ts, lr=0.1, space=space)
    tk = np.linspace(0, 300, 7)
    same = mf.solve_aging(tk, np.repeat(diag[:, None], 7, 1), np.repeat(cross[:, None], 7, 1), big_w[None], wbar[None], f0, y, ts,
                          lr=0.1, space=space)
    np.testing.assert_allclose(same.ys, fixed.ys, atol=2e-4)
    # A constant scale c is the fixed kernel at time c t: the same path through state space, slower.
    half = mf.solve_aging(tk, 0.5 * np.repeat(diag[:, None], 7, 1), 0.5 * np.repeat(cross[:, None], 7, 1), big_w[None], wbar[None], f0, y,
                          ts, lr=0.1, space=space)
    np.testing.assert_allclose(half.ys[0, 10], fixed.ys[0, 5], atol=2e-4)
    # A decaying cross term between g1 and g2 lets g2 go its own way: block-wise aging changes the path.
    cross_k = np.repeat(cross[:, None], 7, 1).copy()
    cross_k[0, :, 1, 2] *= np.linspace(1, 0, 7)
    cross_k[0, :, 2, 1] *= np.linspace(1, 0, 7)
    blocks = mf.solve_aging(tk, np.repeat(diag[:, None], 7, 1), cross_k, big_w[None], wbar[None], f0, y, ts, lr=0.1, space=space)
    assert blocks.ys[0, -1, 2] < fixed.ys[0, -1, 2] - 0.01


def test_fit_decay_recovers_the_time_constant_and_exponent():
    t = np.linspace(0, 800, 41)
    ratio = np.stack([(1 + t / 30.0) ** -0.7, (1 + t / 100.0) ** 0.4])
    t0, tau = mf.fit_decay(t, ratio)
    np.testing.assert_allclose(tau, [0.7, -0.4], rtol=0.1)
    np.testing.assert_allclose(mf.decay_scale(t, t0, tau), ratio, rtol=0.05)
