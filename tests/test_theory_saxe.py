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
