"""Reduced theories of deep linear networks (Saxe).

Three-layer reduction (Saxe, "A deep learning theory of perceptual learning dynamics").
A network y = W2 W1 x with one-hot inputs for two stimuli, hidden weights initialised to
tuning curves W1(0) = [g+ g-] (equal norms) and decision weights W2(0) = beta0 d^T,
d = g+ - g-, trained by gradient flow on L = 1/2 sum_mu (y_mu - W2 W1 x_mu)^2 with targets
+c and -c. The gradient of L keeps W1 - [g+ g-] along [d, -d] and W2 along d^T, so the
weights stay on the two-parameter family

    W1(t) = [g+ g-] + alpha(t) [d, -d],      W2(t) = beta(t) d^T,

and, with v = d . g+ = |g+|^2 - g+ . g- (|d|^2 = 2v for equal norms), the output on the
stimuli is +-v beta (1 + 2 alpha). Projecting the gradient on d gives the paper's equations

    tau d(alpha)/dt = beta (c - v beta (1 + 2 alpha))                 (alpha_dot)
    tau d(beta)/dt  = (c - v beta (1 + 2 alpha)) (1 + 2 alpha)          (beta_dot)

Time is measured in units of tau = 1/lr: gradient descent with learning rate lr is the Euler
discretisation of these equations with step lr, so simulation meets theory to first order in lr.
Multiplying (alpha_dot) by 2 (1 + 2 alpha) and (beta_dot) by 2 beta shows that
(1 + 2 alpha)^2 / 2 - beta^2 is conserved (``conserved_quantity``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import optimistix as optx


def alpha_beta_vector_field(t, y, args):
    """Right-hand side of the alpha/beta ODE (alpha_dot, beta_dot above), time in units of tau.

    Args:
        t: time (unused: the system is autonomous).
        y: (alpha, beta) scalars.
        args: (c, v) scalars: target size and task constant v = d . g+.

    Returns:
        (d alpha/dt, d beta/dt).
    """
    alpha, beta = y
    c, v = args
    error = c - v * beta * (1.0 + 2.0 * alpha)
    return (beta * error, error * (1.0 + 2.0 * alpha))


def conserved_quantity(alpha, beta):
    """(1 + 2 alpha)^2 / 2 - beta^2, constant along the alpha/beta flow. Any shape."""
    return 0.5 * (1.0 + 2.0 * alpha) ** 2 - beta**2


def fixed_point_output(alpha, beta, v):
    """The network's output on the + stimulus, v beta (1 + 2 alpha). Any broadcastable shapes."""
    return v * beta * (1.0 + 2.0 * alpha)


# diffrax's result codes by index (its Enumeration exposes no public index -> name map).
_RESULT_NAMES = {int(item._value): name for name, item in diffrax.RESULTS._name_to_item.items()}


class ODESolution(NamedTuple):
    """Trajectories of a batch of ODE members.

    Attributes:
        ys: pytree of arrays with shape (member, time) (one leaf per state variable).
        ok: (member,) bool, True where the solver reached t1 successfully.
        message: (member,) diffrax's result names: "successful", or why not (e.g.
            "max_steps_reached", "nonfinite").
    """

    ys: tuple
    ok: jax.Array
    message: list[str]


def solve_batch(vector_field, y0, args, ts, *, rtol=1e-7, atol=1e-9, max_steps=100_000, solver=None, mode="per_member") -> ODESolution:
    """Integrates one autonomous ODE for a batch of members with diffrax.

    Two ways to batch, same answers to within the tolerances:

    - ``"per_member"`` (default): ``vmap`` of ``diffeqsolve``. Every member has its own
      adaptive steps, so a member's trajectory does not depend on the others, and a member that
      fails (stiffness, step limit, non-finite values) is reported alone.
    - ``"joint"``: one ``diffeqsolve`` of the stacked system with a max-norm step-size
      controller, so every member meets the tolerance on shared steps. Much faster for many
      similar members (no masked while-loop per member); one failing member fails all.

    Args:
        vector_field: ``f(t, y, args) -> dy/dt`` on one member's pytree state.
        y0: pytree of (member,) initial values.
        args: pytree of (member,) parameters.
        ts: (time,) increasing save times; integration runs from ts[0] to ts[-1].
        rtol, atol: PID step-size controller tolerances.
        max_steps: solver step limit; a member that hits it is reported, not raised.
        solver: a diffrax solver; default Tsit5 (5th-order explicit Runge-Kutta).
        mode: ``"per_member"`` or ``"joint"``.

    Returns:
        An :class:`ODESolution` with leaves of shape (member, time).
    """
    if mode not in ("per_member", "joint"):
        raise ValueError(f"mode: must be 'per_member' or 'joint', got {mode!r}")
    solver = diffrax.Tsit5() if solver is None else solver
    ys, codes = _solve_batch(vector_field, y0, args, jnp.asarray(ts), solver, rtol, atol, max_steps, mode)
    ok = codes == diffrax.RESULTS.successful._value
    return ODESolution(ys=ys, ok=ok, message=[_RESULT_NAMES.get(int(c), f"code {int(c)}") for c in codes])


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7, 8))
def _solve_batch(vector_field, y0, args, ts, solver, rtol, atol, max_steps, mode):
    # Jitted once per (vector field, solver, tolerances, mode) and shapes: repeated calls reuse it.
    def solve(term, y0_, args_, controller):
        sol = diffrax.diffeqsolve(
            term, solver, t0=ts[0], t1=ts[-1], dt0=None, y0=y0_, args=args_,
            saveat=diffrax.SaveAt(ts=ts), stepsize_controller=controller, max_steps=max_steps,
            throw=False,  # failures are reported per member, not raised
        )
        return sol.ys, sol.result._value

    if mode == "per_member":
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
        return jax.vmap(lambda y, a: solve(diffrax.ODETerm(vector_field), y, a, controller))(y0, args)
    batched_field = jax.vmap(vector_field, in_axes=(None, 0, 0))
    controller = diffrax.PIDController(rtol=rtol, atol=atol, norm=optx.max_norm)
    ys, code = solve(diffrax.ODETerm(batched_field), y0, args, controller)
    num_members = jax.tree_util.tree_leaves(y0)[0].shape[0]
    ys = jax.tree_util.tree_map(lambda y: jnp.moveaxis(y, 0, 1), ys)  # (time, member) -> (member, time)
    return ys, jnp.broadcast_to(code, (num_members,))


def solve_alpha_beta(beta0, c, v, ts, *, alpha0=None, rtol=1e-7, atol=1e-9, mode="per_member") -> ODESolution:
    """The alpha/beta ODE for a batch of conditions.

    Args:
        beta0: (member,) initial decision-layer strength.
        c: (member,) target size.
        v: (member,) task constant d . g+.
        ts: (time,) save times in units of tau, from 0.
        alpha0: (member,) initial alpha; default 0 (weights start at the tuning curves).
        mode: batching of the solver, see :func:`solve_batch`.

    Returns:
        :class:`ODESolution` with ``ys = (alpha, beta)``, each (member, time).
    """
    beta0 = jnp.asarray(beta0)
    alpha0 = jnp.zeros_like(beta0) if alpha0 is None else jnp.asarray(alpha0)
    return solve_batch(alpha_beta_vector_field, (alpha0, beta0), (jnp.asarray(c), jnp.asarray(v)), ts, rtol=rtol, atol=atol, mode=mode)
