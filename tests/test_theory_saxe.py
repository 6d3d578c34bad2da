"""The alpha/beta ODE: diffrax against scipy, conservation, failure reporting."""

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from jaxdyn.theory import saxe

CONDITIONS = dict(beta0=np.array([0.1, 0.5, 1.0, 0.3]), c=np.array([1.0, 1.0, 2.0, 0.5]), v=np.array([0.013, 0.19, 0.62, 0.91]))
TS = np.linspace(0.0, 8.0, 81)


def _scipy(beta0, c, v):
    def rhs(t, y):
        return list(saxe.alpha_beta_vector_field(t, (y[0], y[1]), (c, v)))

    sol = solve_ivp(rhs, (TS[0], TS[-1]), [0.0, beta0], t_eval=TS, method="DOP853", rtol=1e-11, atol=1e-12)
    assert sol.success
    return sol.y


def test_diffrax_agrees_with_scipy_solve_ivp_in_float64():
    with jax.enable_x64(True):
        sol = saxe.solve_alpha_beta(CONDITIONS["beta0"], CONDITIONS["c"], CONDITIONS["v"], TS, rtol=1e-10, atol=1e-12)
        alpha, beta = (np.asarray(y) for y in sol.ys)
    assert sol.ok.all() and set(sol.message) == {"successful"}
    assert alpha.dtype == np.float64
    for m in range(4):
        ref = _scipy(CONDITIONS["beta0"][m], CONDITIONS["c"][m], CONDITIONS["v"][m])
        np.testing.assert_allclose(alpha[m], ref[0], atol=1e-8)
        np.testing.assert_allclose(beta[m], ref[1], atol=1e-8)


def test_float32_default_agrees_with_scipy_to_solver_tolerance():
    sol = saxe.solve_alpha_beta(CONDITIONS["beta0"], CONDITIONS["c"], CONDITIONS["v"], TS)
    for m in range(4):
        ref = _scipy(CONDITIONS["beta0"][m], CONDITIONS["c"][m], CONDITIONS["v"][m])
        np.testing.assert_allclose(np.asarray(sol.ys[0][m]), ref[0], atol=2e-4)
        np.testing.assert_allclose(np.asarray(sol.ys[1][m]), ref[1], atol=2e-4)


def test_conserved_quantity_and_fixed_point():
    with jax.enable_x64(True):
        sol = saxe.solve_alpha_beta(CONDITIONS["beta0"], CONDITIONS["c"], CONDITIONS["v"], np.linspace(0, 40, 11), rtol=1e-10, atol=1e-12)
        alpha, beta = (np.asarray(y) for y in sol.ys)
    q = saxe.conserved_quantity(alpha, beta)
    assert np.max(np.abs(q - q[:, :1])) < 1e-7
    # At the end the network output matches the target c.
    np.testing.assert_allclose(saxe.fixed_point_output(alpha[:, -1], beta[:, -1], CONDITIONS["v"]), CONDITIONS["c"], rtol=1e-6)
    # beta > sqrt(2) alpha, the paper's "higher layers change more", for every t > 0.
    assert (beta[:, 1:] > np.sqrt(2) * alpha[:, 1:]).all()


def test_failed_member_is_reported_not_raised():
    # v < 0 makes the flow blow up in finite time: that member fails, the others succeed.
    sol = saxe.solve_alpha_beta(np.array([0.5, 0.5]), np.array([1.0, 1.0]), np.array([0.3, -5.0]), np.linspace(0, 50, 6))
    assert bool(sol.ok[0]) and not bool(sol.ok[1])
    assert sol.message[0] == "successful" and sol.message[1] != "successful"


# ---- deep chains ----------------------------------------------------------------------------


def _aligned_chain_gradient_rates(b, c, v, seed=0, n=5):
    """-dL/dW_l projected on r_l r_{l-1}^T, by autodiff on real matrices (independent of the ODE)."""
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    dirs = [x / np.linalg.norm(x) for x in rng.standard_normal((len(b) + 1, n))]
    mats = [b[l] * np.outer(dirs[l + 1], dirs[l]) for l in range(len(b))]
    x, y = v * dirs[0], c * dirs[-1]

    def loss(ws):
        out = jnp.asarray(x)
        for w in ws:
            out = w @ out
        return 0.5 * jnp.sum((y - out) ** 2)

    grads = jax.grad(loss)([jnp.asarray(m) for m in mats])
    return np.array([-(dirs[l + 1] @ np.asarray(g) @ dirs[l]) for l, g in enumerate(grads)])


@pytest.mark.parametrize("b", [np.array([1.0, 0.6, 0.2]), np.array([0.3, 0.5, 0.9, 1.2]), np.array([0.7, -0.4, 0.5])])
def test_chain_vector_field_is_the_projected_gradient(b):
    with jax.enable_x64(True):
        expected = _aligned_chain_gradient_rates(b, c=1.3, v=1.7)
        got = np.asarray(saxe.chain_vector_field(0.0, b, (1.3, 1.7)))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_chain_conservation_and_reverse_hierarchy():
    b0 = np.array([[1.0, 0.6, 0.2], [0.2, 0.6, 1.0], [0.5, 0.5, 0.5]])
    ts = np.linspace(0.0, 10.0, 101)
    with jax.enable_x64(True):
        sol = saxe.solve_chain(b0, np.ones(3), np.full(3, 1.5), ts, rtol=1e-10, atol=1e-12)
        b = np.asarray(sol.ys)
        q = np.asarray(saxe.chain_conserved(b))
        # Every layer shares q(t) = b_l(t)^2 - b_l(0)^2: the closed-form change.
        closed = np.asarray(saxe.chain_layer_change(b0[:, None, :], b[..., 0] ** 2 - b0[:, None, 0] ** 2))
    assert sol.ok.all()
    assert np.max(np.abs(q - q[:, :1])) < 1e-8
    np.testing.assert_allclose(np.abs(b - b0[:, None, :]), closed, atol=1e-8)
    # Output reaches c / v; the least-tuned layer changes most at every t > 0.
    np.testing.assert_allclose(b[:, -1].prod(-1), 1.0 / 1.5, rtol=1e-6)
    change = np.abs(b - b0[:, None, :])[:, 1:]
    assert (change[0, :, 2] > change[0, :, 1]).all() and (change[0, :, 1] > change[0, :, 0]).all()
    assert (change[1, :, 0] > change[1, :, 1]).all() and (change[1, :, 1] > change[1, :, 2]).all()
    np.testing.assert_allclose(change[2, :, 0], change[2, :, 2], rtol=1e-8)


# ---- mode dynamics (Saxe et al. 2014) -------------------------------------------------------


def test_closed_form_mode_strength_solves_the_logistic_and_inverts_the_learning_time():
    s, u0 = np.array([3.0, 1.0, 0.5]), np.array([1e-3, 2e-2, 0.1])
    ts = np.linspace(0.0, 6.0, 61)
    with jax.enable_x64(True):
        closed = np.asarray(saxe.mode_strength(ts[None, :], s[:, None], u0[:, None]))
        for k in range(3):
            ref = solve_ivp(lambda t, u: 2.0 * u * (s[k] - u), (0.0, ts[-1]), [u0[k]], t_eval=ts, method="DOP853", rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(closed[k], ref.y[0], rtol=1e-7)
        uf = 0.8 * s
        t = np.asarray(saxe.mode_learning_time(s, u0, uf))
        np.testing.assert_allclose(np.asarray(saxe.mode_strength(t, s, u0)), uf, rtol=1e-10)
        # The deep balanced chain at D = 2 is the same logistic.
        for k in range(3):
            assert abs(saxe.balanced_chain_learning_time(s[k], u0[k], uf[k], 2) - t[k]) < 1e-8
    # Deeper balanced chains with u0 = O(1) take less tau-time (rate D u^{2-2/D} grows with D).
    times = [saxe.balanced_chain_learning_time(1.0, 0.5, 0.9, d) for d in (2, 4, 8)]
    assert times[0] > times[1] > times[2]
    with pytest.raises(ValueError, match="u0"):
        saxe.balanced_chain_learning_time(1.0, 0.0, 0.5, 3)


def test_unaligned_mode_solution():
    s, p0, m0 = 2.0, 0.01, 0.004
    ts = np.linspace(0.0, 4.0, 41)
    with jax.enable_x64(True):
        # Reference: integrate tau da/dt = b (s - a.b), tau db/dt = a (s - a.b) for one mode in 3 hidden dims.
        a0 = np.array([0.1, 0.02, 0.0])
        b0 = np.array([0.06, -0.05, 0.03])
        p0, m0 = (float(x) for x in saxe.mode_components(a0, b0))

        def field(t, y):
            a, b = y[:3], y[3:]
            err = s - a @ b
            return np.concatenate([b * err, a * err])

        ref = solve_ivp(field, (0.0, ts[-1]), np.concatenate([a0, b0]), t_eval=ts, method="DOP853", rtol=1e-12, atol=1e-15)
        u_ref = np.sum(ref.y[:3] * ref.y[3:], 0)
        u = np.asarray(saxe.mode_strength_unaligned(ts, s, p0, m0))
        np.testing.assert_allclose(u, u_ref, atol=1e-9)
        # With m0 = 0 it is the closed form with u0 = p0.
        np.testing.assert_allclose(np.asarray(saxe.mode_strength_unaligned(ts, s, p0, 0.0)), np.asarray(saxe.mode_strength(ts, s, p0)), rtol=1e-10)
    # The strongest mode's effective components are its own; weaker ones lose the stronger direction.
    a = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    b = np.array([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5]])
    p, m = saxe.effective_mode_components(a, b, np.array([2.0, 1.0]))
    np.testing.assert_allclose(p, [1.0, 0.125], atol=1e-12)  # |(0, .5, .5)|^2 / 4 after removing e_1
    np.testing.assert_allclose(m, [0.0, 0.125], atol=1e-12)


def test_layer_changes_and_input_profile():
    # ||alpha [d, -d]|| = 2 sqrt(v) alpha and ||(beta - beta0) d|| = sqrt(2v)(beta - beta0) for |d|^2 = 2v.
    from jaxdyn.tasks.perceptual import discrimination_task

    task = discrimination_task(32, 12.0)
    alpha, beta, beta0 = 0.7, 1.9, 0.2
    dw1, dw2 = saxe.layer_changes(alpha, beta, beta0, task.v)
    np.testing.assert_allclose(float(dw1), np.linalg.norm(alpha * np.stack([task.d, -task.d], -1)), rtol=1e-6)
    np.testing.assert_allclose(float(dw2), np.linalg.norm((beta - beta0) * task.d), rtol=1e-6)
    rows = np.linalg.norm(alpha * np.stack([task.d, -task.d], -1), axis=-1)
    np.testing.assert_allclose(np.asarray(saxe.input_change_profile(task.d, alpha)), rows, rtol=1e-6)
    # Transfer: the trained position moves by the full change, an orthogonal one not at all.
    assert float(saxe.transferred_beta(2.0, 0.5, 0.3, 1.0)) == pytest.approx(1.8)
    assert float(saxe.transferred_beta(2.0, 0.5, 0.3, 0.0)) == pytest.approx(0.3)


# ---- the decision layer's change, the flip, the fixed point, the parallel topology ----------


def test_decision_change_and_the_flip_of_the_ordering():
    beta0 = np.array([0.0, 0.001, 0.3, 0.7, 0.72, 1.0, 2.0])
    ts = np.linspace(0.0, 6.0, 61)
    with jax.enable_x64(True):
        sol = saxe.solve_alpha_beta(beta0, np.ones(7), np.full(7, 0.2), ts, rtol=1e-11, atol=1e-13)
        alpha, beta = (np.asarray(y) for y in sol.ys)
        np.testing.assert_allclose(beta - beta0[:, None], np.asarray(saxe.decision_change(alpha, beta0[:, None])), atol=1e-8)
    flip = saxe.change_order_flip_beta0()
    assert flip == pytest.approx(1 / np.sqrt(2))
    margin = (beta - beta0[:, None]) - np.sqrt(2) * alpha
    # The sign of the ordering at every t > 0 is the sign of 1/sqrt(2) - beta0, whatever t.
    np.testing.assert_array_equal(np.sign(margin[:, 1:]), np.sign(flip - beta0)[:, None] * np.ones((1, len(ts) - 1)))


def test_final_alpha_beta_is_the_flow_s_end_state():
    c, v, beta0 = np.array([0.01, 0.5, 1.0, 3.0]), np.array([0.9, 0.2, 0.05, 0.6]), np.array([0.0, 0.1, 0.001, 0.5])
    with jax.enable_x64(True):
        sol = saxe.solve_alpha_beta(beta0, c, v, np.linspace(0.0, 200.0, 5), rtol=1e-11, atol=1e-13)
    a_inf, b_inf = saxe.final_alpha_beta(c / v, beta0)
    np.testing.assert_allclose(np.asarray(sol.ys[0])[:, -1], a_inf, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(np.asarray(sol.ys[1])[:, -1], b_inf, rtol=1e-7)
    # The ratio of the layers' changes vanishes like c / (sqrt(2) v) for beta0 = 0, tends to 1 for large c/v.
    ratio = saxe.change_ratio(*saxe.final_alpha_beta(np.array([1e-4, 1e4]), 0.0), 0.0)
    np.testing.assert_allclose(ratio, [1e-4 / np.sqrt(2), 1.0], rtol=2e-2)


def test_parallel_readout_closed_form():
    g, w0, c = np.array([0.3, 0.8, 1.1]), np.array([0.1, -0.2, 0.0]), 1.5
    ts = np.linspace(0.0, 5.0, 26)
    ref = solve_ivp(lambda t, w: (c - w @ g) * g, (0, ts[-1]), w0, t_eval=ts, method="DOP853", rtol=1e-12, atol=1e-14).y.T
    np.testing.assert_allclose(saxe.parallel_readout(ts, g, w0, c), ref, atol=1e-9)
    change = saxe.parallel_readout(ts, g, w0, c)[1:] - w0
    np.testing.assert_allclose(change / g, np.broadcast_to(change[:, :1] / g[0], change.shape), rtol=1e-12)


def test_project_alpha_beta_reads_the_family():
    from jaxdyn.tasks.perceptual import discrimination_task

    task = discrimination_task(24, 10.0)
    alpha, beta = 0.37, 1.9
    w1 = np.stack([task.g_plus + alpha * task.d, task.g_minus - alpha * task.d], -1)
    w2 = (beta * task.d)[None, :]
    with jax.enable_x64(True):
        out = np.asarray(saxe.project_alpha_beta(w1, w2, task.g_plus, task.g_minus))
    np.testing.assert_allclose(out, [alpha, beta, 0.0], atol=1e-12)
