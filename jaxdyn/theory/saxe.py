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
import numpy as np
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


def decision_change(alpha, beta0):
    """The decision layer's change beta - beta0 on the alpha/beta flow from alpha(0) = 0, beta0 >= 0.

    The first integral (1 + 2 alpha)^2 / 2 - beta^2 = 1/2 - beta0^2 gives
    beta^2 = beta0^2 + 2 alpha + 2 alpha^2, so

        beta - beta0 = sqrt(beta0^2 + 2 alpha + 2 alpha^2) - beta0.

    Any broadcastable shapes (alpha > 0 while the stimuli are being learnt).
    """
    alpha, beta0 = jnp.asarray(alpha), jnp.asarray(beta0)
    return jnp.sqrt(beta0**2 + 2.0 * alpha + 2.0 * alpha**2) - beta0


def change_order_flip_beta0() -> float:
    """The initial decision strength above which the input layer changes more than the decision layer.

    "Higher layers change more" compares the Frobenius sizes of the two changes,
    ||dW2|| = sqrt(2 v) (beta - beta0) and ||dW1|| = 2 sqrt(v) alpha, i.e. beta - beta0 against
    sqrt(2) alpha. With :func:`decision_change`, (beta - beta0 + beta0)^2 = beta0^2 + 2 alpha + 2 alpha^2
    against (sqrt(2) alpha + beta0)^2 = 2 alpha^2 + 2 sqrt(2) alpha beta0 + beta0^2 differ by
    2 alpha (1 - sqrt(2) beta0): for alpha > 0 the decision layer changes more at every t > 0 exactly
    when beta0 < 1/sqrt(2), whatever c, v and t. Returns 1/sqrt(2).
    """
    return float(1.0 / np.sqrt(2.0))


def final_alpha_beta(c_over_v, beta0):
    """The fixed point the alpha/beta flow from alpha(0) = 0 converges to: (alpha_inf, beta_inf).

    At the fixed point v beta (1 + 2 alpha) = c; with the first integral,
    u = (1 + 2 alpha)^2 solves u/2 - (c/v)^2 / u = 1/2 - beta0^2, the positive root of
    u^2 - (1 - 2 beta0^2) u - 2 (c/v)^2 = 0. So the end state depends on c/v and beta0 only.

    Args:
        c_over_v: target size over the task constant, any shape (> 0).
        beta0: initial decision strength, broadcastable.

    Returns:
        (alpha_inf, beta_inf), each of the broadcast shape (numpy float64).
    """
    r = np.asarray(c_over_v, dtype=np.float64)
    b0 = np.asarray(beta0, dtype=np.float64)
    a = 1.0 - 2.0 * b0**2
    u = (a + np.sqrt(a**2 + 8.0 * r**2)) / 2.0
    gain = np.sqrt(u)  # 1 + 2 alpha
    return (gain - 1.0) / 2.0, r / gain


def change_ratio(alpha, beta, beta0):
    """||dW1|| / ||dW2|| = sqrt(2) |alpha| / |beta - beta0|, the input layer's change over the decision
    layer's (Frobenius sizes, :func:`layer_changes`; v cancels). Any broadcastable shapes; numpy."""
    alpha, beta, beta0 = (np.asarray(x, dtype=np.float64) for x in (alpha, beta, beta0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(2.0) * np.abs(alpha) / np.abs(beta - beta0)


def project_alpha_beta(w1, w2, g_plus, g_minus):
    """(alpha, beta, off-family residual) of three-layer weights, by projection on d = g+ - g-.

    alpha = (W1[:, 0] - g+) . d / |d|^2 and beta = W2 . d / |d|^2; the residual is the norm of what
    the two-parameter family does not explain, ||W1 - [g+ g-] - alpha [d, -d]|| + ||W2 - beta d^T||
    (0 in exact arithmetic for the poster's initialisation).

    Args:
        w1: (N, 2) input layer in math layout (out, in).
        w2: (1, N) decision layer.
        g_plus, g_minus: (N,) the tuning curves W1 started from.

    Returns:
        (3,) array: alpha, beta, residual.
    """
    d = g_plus - g_minus
    dd = d @ d
    alpha = (w1[:, 0] - g_plus) @ d / dd
    beta = w2[0] @ d / dd
    reduced_w1 = jnp.stack([g_plus + alpha * d, g_minus - alpha * d], axis=-1)
    residual = jnp.linalg.norm(w1 - reduced_w1) + jnp.linalg.norm(w2[0] - beta * d)
    return jnp.stack([alpha, beta, residual])


def alpha_beta_observable(snap):
    """Engine observable (3,): :func:`project_alpha_beta` of a :class:`~jaxdyn.models.deep_linear.DeepLinear`
    of widths (2, N, 1), with the tuning curves read from ``snap.data["g_plus"]`` and ``["g_minus"]``
    (N,). A module-level function, so every experiment using it shares one compiled program."""
    w1 = snap.params["layer_0"]["kernel"].T  # (N, 2)
    w2 = snap.params["layer_1"]["kernel"].T  # (1, N)
    return project_alpha_beta(w1, w2, snap.data["g_plus"], snap.data["g_minus"])


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


# ----------------------------------------------------------------------------------------------
# Deep chains (saxe-depth): one input-output mode through D weight layers.
# ----------------------------------------------------------------------------------------------
# A chain y = W_D ... W_1 x trained on one stimulus x = v xhat with target c yhat, from
# mode-aligned weights W_l = b_l r_l r_{l-1}^T (unit vectors r_0 = xhat, r_D = yhat, r_l hidden).
# The gradient of L = 1/2 |c yhat - W_D...W_1 x|^2 with respect to W_l is
# -(W_D...W_{l+1})^T (c yhat - W_tot x) x^T (W_{l-1}...W_1)^T
#   = -(c - v prod_k b_k) v prod_{k != l} b_k r_l r_{l-1}^T,
# which stays on the aligned family, so each layer keeps one scalar gain b_l(t).


def _exclusive_products(b):
    """prod_{k != l} b_k for every l, without dividing (b may contain zeros). b: (..., D)."""
    ones = jnp.ones_like(b[..., :1])
    prefix = jnp.cumprod(jnp.concatenate([ones, b[..., :-1]], axis=-1), axis=-1)
    suffix = jnp.flip(jnp.cumprod(jnp.concatenate([ones, jnp.flip(b, -1)[..., :-1]], axis=-1), axis=-1), -1)
    return prefix * suffix


def chain_vector_field(t, b, args):
    """The scalar chain, tau db_l/dt = (c - v prod_k b_k) v prod_{k != l} b_k (chain_dot).

    Derivation (block comment above): for mode-aligned layers W_l = b_l r_l r_{l-1}^T the
    gradient on W_l is (c - v P) v prod_{k != l} b_k r_l r_{l-1}^T with P = prod_k b_k; its
    component along r_l r_{l-1}^T is the rate of b_l. Time in units of tau = 1/lr.

    Args:
        t: time (unused: autonomous).
        b: (D,) per-layer gains, b[0] the input layer.
        args: (c, v) scalars: target size and input strength.

    Returns:
        (D,) db/dt.
    """
    c, v = args
    others = _exclusive_products(b)
    total = others[..., 0] * b[..., 0]
    return (c - v * total)[..., None] * v * others


def chain_conserved(b):
    """b_l^2 - b_1^2 for every layer l: constant along the chain flow. b: (..., D) -> (..., D).

    Multiplying (chain_dot) by 2 b_l gives d(b_l^2)/dt = 2 (c - v P) v P, the same for every l,
    so every difference b_l^2 - b_k^2 is conserved.
    """
    b = jnp.asarray(b)
    return b**2 - b[..., :1] ** 2


def chain_layer_change(b0, q):
    """Per-layer change |b_l(t) - b_l(0)| = sqrt(b_l(0)^2 + q) - b_l(0) on the chain flow.

    From (chain_conserved), b_l(t)^2 = b_l(0)^2 + q(t) with one q(t) = b_1(t)^2 - b_1(0)^2 shared
    by all layers (positive gains, q > 0 while learning). The change is decreasing in b_l(0), so
    the least-tuned layer changes most at every t > 0: the reverse hierarchy.

    Args:
        b0: (..., D) initial gains (positive).
        q: (...,) or broadcastable, the shared growth of b^2.

    Returns:
        (..., D) changes.
    """
    b0 = jnp.asarray(b0)
    return jnp.sqrt(b0**2 + jnp.asarray(q)[..., None]) - b0


def solve_chain(b0, c, v, ts, *, rtol=1e-7, atol=1e-9, mode="per_member") -> ODESolution:
    """The chain ODE (chain_dot) for a batch of members of one depth.

    Args:
        b0: (member, D) initial gains.
        c: (member,) target size.
        v: (member,) input strength.
        ts: (time,) save times in units of tau, from 0.
        mode: batching of the solver, see :func:`solve_batch`.

    Returns:
        :class:`ODESolution` with ``ys`` of shape (member, time, D).
    """
    return solve_batch(chain_vector_field, jnp.asarray(b0), (jnp.asarray(c), jnp.asarray(v)), ts, rtol=rtol, atol=atol, mode=mode)


# ----------------------------------------------------------------------------------------------
# Mode dynamics (saxe-modes; Saxe, McClelland & Ganguli 2014).
# ----------------------------------------------------------------------------------------------
# Whitened inputs (Sigma_xx = I) and Sigma_yx = U S V^T. In a three-layer net W2 W1, mode k is
# carried by a_k = W1 v_k and b_k = W2^T u_k, with strength u_k = a_k . b_k. Gradient flow gives
#   tau da_k/dt = b_k (s_k - a_k . b_k) - sum_{j != k} b_j (b_j . a_k)
# and the same with a and b exchanged; the cross terms vanish for decoupled (aligned) weights.


def mode_strength(t, s, u0):
    """Closed-form three-layer mode strength (Saxe et al. 2014, section 2):

        u(t) = s e^{2 s t/tau} / (e^{2 s t/tau} - 1 + s/u0),

    the solution of tau du/dt = 2 u (s - u), which holds for a decoupled mode with balanced
    a = b (then d(a . b)/dt = 2 |a|^2 (s - u) = 2 u (s - u)). Written as s / (1 - (1 - s/u0)
    e^{-2 s t}) to stay finite for large t. Any broadcastable shapes; t in units of tau.
    """
    t, s, u0 = (jnp.asarray(x) for x in (t, s, u0))
    return s / (1.0 - (1.0 - s / u0) * jnp.exp(-2.0 * s * t))


def mode_learning_time(s, u0, uf):
    """Time (units of tau) for the three-layer mode to go from u0 to uf (0 < u0 < uf < s):

        t = (tau / 2s) ln(uf (s - u0) / (u0 (s - uf))),

    the inverse of :func:`mode_strength`. Any broadcastable shapes.
    """
    s, u0, uf = (jnp.asarray(x) for x in (s, u0, uf))
    return jnp.log(uf * (s - u0) / (u0 * (s - uf))) / (2.0 * s)


def mode_components(a, b):
    """Growing and decaying parts of one mode, p = |a + b|^2 / 4 and m = |a - b|^2 / 4.

    For one mode without cross terms, tau d(a + b)/dt = (a + b)(s - u) and tau d(a - b)/dt =
    -(a - b)(s - u), so p grows, m decays, u = a . b = p - m and K = p m is conserved.

    Args:
        a, b: (..., H) the mode's input-side and output-side hidden vectors.

    Returns:
        (p, m), each (...,).
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    return jnp.sum((a + b) ** 2, -1) / 4.0, jnp.sum((a - b) ** 2, -1) / 4.0


def effective_mode_components(a, b, s):
    """Growing and decaying parts of every mode once the stronger modes have been learned.

    The cross term -sum_{j != k} b_j (b_j . a_k) of the mode equations removes from a_k (and
    likewise from b_k) its component along the hidden vectors of modes j already learned.
    Stronger modes are learned first, and a mode's hidden vectors grow along their initial
    direction a_j + b_j, so mode k effectively starts from its part orthogonal to the initial
    a_j + b_j of every stronger mode j (s_j > s_k):

        p_k = |P_k (a_k + b_k)|^2 / 4,   m_k = |P_k (a_k - b_k)|^2 / 4,

    with P_k the projector off span{a_j + b_j : s_j > s_k}. For the strongest mode this is
    :func:`mode_components`.

    Args:
        a: (K, H) input-side hidden vectors a_k = W1 v_k.
        b: (K, H) output-side hidden vectors b_k = W2^T u_k.
        s: (K,) mode strengths (host values; they fix the order).

    Returns:
        (p, m), each (K,).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    s = np.asarray(s)
    grow, decay = a + b, a - b
    p, m = np.zeros(len(s)), np.zeros(len(s))
    for k in range(len(s)):
        stronger = grow[s > s[k]]
        g, d = grow[k], decay[k]
        if len(stronger):
            q, _ = np.linalg.qr(stronger.T)
            g, d = g - q @ (q.T @ g), d - q @ (q.T @ d)
        p[k], m[k] = g @ g / 4.0, d @ d / 4.0
    return p, m


def mode_strength_unaligned(t, s, p0, m0):
    """Exact strength of one three-layer mode from any (unaligned, unbalanced) start.

    With p, m of :func:`mode_components` and K = p m conserved, tau dp/dt = 2 p (s - p + K/p)
    = 2 (K + s p - p^2), a Riccati equation with roots p_pm = (s pm sqrt(s^2 + 4K)) / 2:

        (p - p_+) / (p - p_-) = (p0 - p_+) / (p0 - p_-) e^{-2 sqrt(s^2 + 4K) t},   u = p - K/p.

    For m0 = 0 (aligned, balanced: K = 0) this is :func:`mode_strength` with u0 = p0. Cross
    terms between modes are neglected. Any broadcastable shapes; t in units of tau.
    """
    t, s, p0, m0 = (jnp.asarray(x) for x in (t, s, p0, m0))
    k = p0 * m0
    root = jnp.sqrt(s**2 + 4.0 * k)
    p_plus, p_minus = (s + root) / 2.0, (s - root) / 2.0
    r = (p0 - p_plus) / (p0 - p_minus) * jnp.exp(-2.0 * root * t)
    p = (p_plus - p_minus * r) / (1.0 - r)
    return p - k / p


def balanced_chain_vector_field(t, u, args):
    """Mode strength of a balanced, aligned chain of D layers: tau du/dt = D u^{2-2/D} (s - u).

    With every b_l = b (balanced) and v = 1, (chain_dot) reads db/dt = b^{D-1} (s - b^D); for
    u = b^D, du/dt = D b^{D-1} db/dt = D u^{2 - 2/D} (s - u) (Saxe et al. 2014, section 3).
    For D = 2 this is the three-layer logistic of :func:`mode_strength`.

    Args:
        t: unused.
        u: scalar mode strength (> 0).
        args: (s, depth) scalars.
    """
    s, depth = args
    return depth * u ** (2.0 - 2.0 / depth) * (s - u)


def balanced_chain_learning_time(s: float, u0: float, uf: float, depth: int) -> float:
    """Time (units of tau) for a balanced aligned chain of ``depth`` layers to go from u0 to uf:

        t = int_{u0}^{uf} du / (D u^{2 - 2/D} (s - u))

    (inverse of :func:`balanced_chain_vector_field`), by scipy quadrature in log u. Equals
    :func:`mode_learning_time` for depth 2. Scalars in, float out.
    """
    import scipy.integrate

    if not 0.0 < u0 < uf < s:
        raise ValueError(f"need 0 < u0 < uf < s, got u0={u0}, uf={uf}, s={s}")

    def integrand(log_u):
        u = np.exp(log_u)
        return u / (depth * u ** (2.0 - 2.0 / depth) * (s - u))

    value, _ = scipy.integrate.quad(integrand, np.log(u0), np.log(uf), epsabs=0.0, epsrel=1e-10, limit=200)
    return float(value)


# ----------------------------------------------------------------------------------------------
# Task precision (saxe-precision) and transfer (saxe-transfer) on the alpha/beta reduction.
# ----------------------------------------------------------------------------------------------


def layer_changes(alpha, beta, beta0, v):
    """Frobenius sizes of the change of each layer of the three-layer reduction.

    W1 - W1(0) = alpha [d, -d] and W2 - W2(0) = (beta - beta0) d^T with |d|^2 = 2v, so

        ||dW1|| = 2 sqrt(v) |alpha|,    ||dW2|| = sqrt(2 v) |beta - beta0|.

    Any broadcastable shapes. Returns (||dW1||, ||dW2||).
    """
    alpha, beta, beta0, v = (jnp.asarray(x) for x in (alpha, beta, beta0, v))
    return 2.0 * jnp.sqrt(v) * jnp.abs(alpha), jnp.sqrt(2.0 * v) * jnp.abs(beta - beta0)


def input_change_profile(d, alpha):
    """Change of each input-layer (tuning-curve) neuron: ||dW1[i, :]|| = sqrt(2) |alpha| |g+_i - g-_i|.

    Row i of alpha [d, -d] is alpha (d_i, -d_i): a neuron changes in proportion to how much its
    response differs between the two stimuli (the 'most informative neuron').

    Args:
        d: (..., N) g+ - g-.
        alpha: (...,) input-layer change.

    Returns:
        (..., N).
    """
    d, alpha = jnp.asarray(d), jnp.asarray(alpha)
    return jnp.sqrt(2.0) * jnp.abs(alpha)[..., None] * jnp.abs(d)


def parallel_readout(t, g, w0, c):
    """Closed form of the parallel topology y = sum_j w_j x_j trained on one stimulus x = g, target c.

    With L = 1/2 (c - w . g)^2, gradient flow is tau dw/dt = (c - w . g) g: every weight moves
    along its own input, so the error e = c - w . g decays as e0 e^{-|g|^2 t/tau} and

        w(t) = w0 + g e0 (1 - e^{-|g|^2 t/tau}) / |g|^2,    e0 = c - w0 . g:

    the change of weight j is proportional to its input's informativeness g_j.

    Args:
        t: (T,) times in units of tau.
        g: (..., P) input responses (informativeness profile).
        w0: (..., P) initial weights.
        c: target, broadcastable to g[..., 0].

    Returns:
        (..., T, P) weights (numpy float64).
    """
    t = np.asarray(t, dtype=np.float64)
    g, w0 = np.asarray(g, dtype=np.float64), np.asarray(w0, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    norm2 = np.sum(g**2, -1)
    e0 = c - np.sum(w0 * g, -1)
    decay = 1.0 - np.exp(-norm2[..., None] * t)  # (..., T)
    return w0[..., None, :] + (g * (e0 / norm2)[..., None])[..., None, :] * decay[..., :, None]


def transferred_beta(beta_trained, beta_trained0, beta_untrained0, overlap):
    """Decision strength at an untrained position after training at position a (pooling transfer).

    The decision layer W2 (N x K) reads pooled units; position p is seen through its pooling
    profile c_p (unit K-vector), so its effective decision vector is W2 c_p. Training at a moves
    W2 only along (.) c_a^T, by exactly what the trained position's reduction needs, so

        beta_p(t) = beta_p(0) + (c_a . c_p) (beta_a(t) - beta_a(0)),

    while the input layer at p (no input there) does not change. Broadcastable shapes.
    """
    beta_trained, beta_trained0, beta_untrained0, overlap = (jnp.asarray(x) for x in (beta_trained, beta_trained0, beta_untrained0, overlap))
    return beta_untrained0 + overlap * (beta_trained - beta_trained0)
