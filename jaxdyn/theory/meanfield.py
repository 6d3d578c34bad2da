"""Kernel and mean-field dynamics of predictions under SGD (Nakazato Eqs. 10-11).

Training draws one pair (x_j, y_j) with probability w_j per step and takes an SGD step at learning
rate lr. To first order in lr (Eq. 4), the expected change of every prediction per step is

    df_i/dt = -lr sum_j w_j Theta_ij dL/df(f_j, y_j),                            (Eq. 10)

with the empirical NTK Theta of the network (held fixed: the linearised, "lazy" dynamics) and the
label replaced by its mean p1_j (both losses below are linear in y). Two spaces:

* ``space='output'``: the equation above for the sigmoid outputs f, with Theta the NTK of f.
* ``space='logit'``: the same for the logits z (f = sigmoid(z)) with Theta the NTK of z:
  dz_i/dt = -lr sum_j w_j Theta^z_ij sigma'(z_j) dL/df(f_j, y_j). This keeps the saturation of the
  output that the fixed output-space kernel ignores.

The G-group mean field is the project's extension of Eq. 11: it replaces every prediction of group
b by its group mean and Theta by its group averages: the self term d_a = <Theta_ii>_{i in a}, the within-group term
o_aa = <Theta_ij>_{i != j in a}, the cross term o_ab = <Theta_ij>_{i in a, j in b}:

    df_a/dt = -lr [ wbar_a d_a g_a + (W_a - wbar_a) o_aa g_a + sum_{b != a} W_b o_ab g_b ],

with W_a the probability of drawing group a, wbar_a its mean per point, g_b = dL/df(f_b, y_b); the
paper's densities are rho_b = W_b o_ab. Time t counts SGD steps (the paper's epochs).

The literal Eq. 11, df_i/de ~ -f_0 rho_0 + (1 - f_1) rho_1, has one right-hand side for every point
i: with a single kernel constant Theta_bar (the weighted mean of the kernel over all pairs) and the
densities rho_b = W_b, every group moves by the same amount (:func:`literal_vector_field`), so
f_a - f_b stays at its initial value and the groups cannot split. It is integrated beside the
extension to show what each predicts.

Aging (:func:`aging_vector_field`): the group mean field with time-dependent coefficients
d_a(t), o_ab(t), interpolated linearly between measurement times; :func:`fit_decay` fits the
decay a(t) = (1 + t / t0)^(-tau) of a kernel's trace, so "the kernel scaled by its fitted decay"
is the coefficients a(t) d_a(0), a(t) o_ab(0). A uniform scale only reparametrises time (the
trajectory through state space is the fixed-kernel one, slowed); block-wise measured
coefficients can change its shape.

Losses: ``'mse'`` (Keras' mean squared error on one output: dL/df = 2 (f - y)) and ``'bce'``
(binary cross-entropy: dL/df = (f - y) / (f (1 - f))).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.theory.saxe import ODESolution, solve_batch

LOSSES = ("mse", "bce")
"""The losses the dynamics know (:func:`loss_derivative`): ``mse`` (the paper's Eq. 5) and ``bce``,
both linear in the label y."""
SPACES = ("output", "logit")
"""The spaces the dynamics run in (module docstring): ``output`` (the sigmoid outputs f with the NTK
of f) and ``logit`` (the logits z with the NTK of z, keeping the output's saturation)."""


def loss_derivative(loss: str, f, y):
    """dL/df for one output: 'mse' 2 (f - y); 'bce' (f - y) / (f (1 - f))."""
    if loss == "mse":
        return 2.0 * (f - y)
    if loss == "bce":
        return (f - y) / (f * (1.0 - f))
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def _check(loss, space):
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")


@functools.cache
def kernel_vector_field(loss: str, space: str):
    """The vector field of Eq. 10 for one member, state (n,) (f, or z in logit space).

    ``args = (theta (n, n), weight (n,), y (n,), lr scalar)``. Cached, so ``solve_batch`` compiles
    once per (loss, space).
    """
    _check(loss, space)

    def field(t, state, args):
        theta, weight, y, lr = args
        if space == "output":
            drive = weight * loss_derivative(loss, state, y)
        else:
            f = jax.nn.sigmoid(state)
            drive = weight * f * (1.0 - f) * loss_derivative(loss, f, y)
        return -lr * theta @ drive

    return field


@functools.cache
def meanfield_vector_field(loss: str, space: str):
    """The G-group mean field of Eq. 11 for one member, state (G,) group means (f or z).

    ``args = (diag (G,), cross (G, G), group_weight W (G,), point_weight wbar (G,), y (G,), lr)``
    with ``cross[a, a]`` the within-group off-diagonal average.
    """
    _check(loss, space)

    def field(t, state, args):
        diag, cross, big_w, wbar, y, lr = args
        if space == "output":
            g = loss_derivative(loss, state, y)
        else:
            f = jax.nn.sigmoid(state)
            g = f * (1.0 - f) * loss_derivative(loss, f, y)
        eye = jnp.eye(state.shape[0], dtype=state.dtype)
        # coefficient of g_b in df_a/dt: W_b o_ab for b != a; wbar_a d_a + (W_a - wbar_a) o_aa for b = a
        coeff = cross * big_w[None, :] * (1 - eye) + eye * (wbar * diag + (big_w - wbar) * jnp.diag(cross))
        return -lr * coeff @ g

    return field


def group_kernel(theta: np.ndarray, group: np.ndarray, num_groups: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Group averages of a kernel: the mean field's coefficients.

    Args:
        theta: (..., n, n) kernel matrices (e.g. (seed, n, n)).
        group: (n,) group index of each point.
        num_groups: G (default max(group) + 1).

    Returns:
        diag (..., G): <Theta_ii> over i in a; cross (..., G, G): <Theta_ij> over i in a, j in b,
        i != j (so cross[a, a] is the within-group off-diagonal mean; NaN for one-point groups).
    """
    theta = np.asarray(theta, np.float64)
    group = np.asarray(group)
    g_count = int(group.max()) + 1 if num_groups is None else num_groups
    n = group.size
    off = ~np.eye(n, dtype=bool)
    diag = np.stack([np.diagonal(theta, axis1=-2, axis2=-1)[..., group == a].mean(-1) for a in range(g_count)], -1)
    cross = np.full(theta.shape[:-2] + (g_count, g_count), np.nan)
    for a in range(g_count):
        for b in range(g_count):
            mask = np.outer(group == a, group == b) & off
            if mask.any():
                cross[..., a, b] = theta[..., mask].mean(-1)
    return diag, cross


def solve_kernel(theta, f0, y, weight, ts, *, lr: float, loss: str = "mse", space: str = "output",
                 rtol: float = 1e-6, atol: float = 1e-8) -> ODESolution:
    """Integrates Eq. 10 for every member with diffrax (fixed kernel measured at t = ts[0]).

    Args:
        theta: (member, n, n) NTK of f (``space='output'``) or of the logits (``'logit'``).
        f0: (member, n) predictions at ts[0] (probabilities).
        y: (member, n) mean labels p1.
        weight: (member, n) sampling probabilities.
        ts: (time,) save times in steps.
        lr: learning rate.

    Returns:
        :class:`ODESolution` whose ``ys`` is (member, time, n) *predictions f* in both spaces.
    """
    f0 = jnp.asarray(f0, jnp.float32)
    state0 = f0 if space == "output" else jnp.log(f0) - jnp.log1p(-f0)
    m = f0.shape[0]
    args = (jnp.asarray(theta, jnp.float32), jnp.asarray(weight, jnp.float32), jnp.asarray(y, jnp.float32),
            jnp.full((m,), lr, jnp.float32))
    sol = solve_batch(kernel_vector_field(loss, space), state0, args, jnp.asarray(ts, jnp.float32), rtol=rtol, atol=atol)
    ys = sol.ys if space == "output" else jax.nn.sigmoid(sol.ys)
    return ODESolution(ys=np.asarray(ys), ok=np.asarray(sol.ok), message=sol.message)


def solve_meanfield(diag, cross, group_weight, point_weight, f0, y, ts, *, lr: float, loss: str = "mse",
                    space: str = "output", rtol: float = 1e-6, atol: float = 1e-8) -> ODESolution:
    """Integrates the G-group mean field (Eq. 11) for every member with diffrax.

    Args:
        diag, cross: (member, G), (member, G, G) from :func:`group_kernel`.
        group_weight: (member, G) probability W_a of drawing group a.
        point_weight: (member, G) mean probability per point wbar_a.
        f0: (member, G) group-mean predictions at ts[0]; y: (member, G) group labels p1.
        ts: (time,) save times in steps.

    Returns:
        :class:`ODESolution` with ``ys`` (member, time, G) group predictions f.
    """
    f0 = jnp.asarray(f0, jnp.float32)
    state0 = f0 if space == "output" else jnp.log(f0) - jnp.log1p(-f0)
    m = f0.shape[0]
    cross = np.nan_to_num(np.asarray(cross, np.float64))  # one-point groups have no within term
    args = tuple(jnp.asarray(a, jnp.float32) for a in (diag, cross, group_weight, point_weight, y)) + (jnp.full((m,), lr, jnp.float32),)
    sol = solve_batch(meanfield_vector_field(loss, space), state0, args, jnp.asarray(ts, jnp.float32), rtol=rtol, atol=atol)
    ys = sol.ys if space == "output" else jax.nn.sigmoid(sol.ys)
    return ODESolution(ys=np.asarray(ys), ok=np.asarray(sol.ok), message=sol.message)


THEORIES = ("kernel", "meanfield", "literal", "aging", "aging_blocks")
"""The theories :func:`group_theories` computes for every member, in order (the two aging ones only
given kernels measured along training); each is described in :data:`THEORY_NOTES`."""
THEORY_NOTES = {
    "kernel": "Eq. 10 with the initial NTK held fixed",
    "meanfield": "the project's G-group extension of Eq. 11 (self, within-group and cross terms) with the initial NTK",
    "literal": "Eq. 11 as written: one right-hand side for every point, densities rho_b = W_b, one kernel constant",
    "aging": "the group mean field with the initial kernel scaled by the fitted decay (1 + t/t0)^-tau of its trace",
    "aging_blocks": "the group mean field with every block coefficient measured along training (interpolated in time)",
    "kernel_infinite": "Eq. 10 with the infinite-width NTK of the same architecture and initialisation on the member's points "
                       "(jaxdyn.theory.kernels), from the member's initial predictions",
    "linearised": "the first-order Taylor model of the network around its initial weights, trained by the same SGD on the same "
                  "pairs (jaxdyn.engine.LinearizedLearner): Eq. 10's kernel frozen, without the ODE's averaging over pairs",
}
"""``{theory: one-line description}`` of :data:`THEORIES` and of the two curves the group
experiments set beside them (``kernel_infinite``, ``linearised``), for captions and attributes."""


def group_means(f: np.ndarray, group: np.ndarray, num_groups: int = 2) -> np.ndarray:
    """Group means of predictions: f (..., n) with group (n,) -> (..., G)."""
    f = np.asarray(f)
    return np.stack([f[..., group == a].mean(-1) for a in range(num_groups)], -1)


def kernel_group_curves(theta, f0, group, p1, weight, ts, *, lr: float, loss: str, space: str,
                        num_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 10 integrated point by point with a fixed kernel (:func:`solve_kernel`), read as group means.

    Args:
        theta: (member, n, n) the kernel held fixed: a member's NTK at initialisation, or the
            infinite-width NTK of its architecture on its points.
        f0: (member, n) predictions at ``ts[0]``; group: (member, n) group of every point;
            p1, weight: (member, n) labels p(y=1) and sampling probabilities.

    Returns:
        ``(curves, ok)``: (member, time, G) group-mean predictions and (member,) solver success.
    """
    sol = solve_kernel(theta, f0, p1, weight, ts, lr=lr, loss=loss, space=space)
    curves = np.stack([group_means(sol.ys[m], np.asarray(group)[m], num_groups) for m in range(np.shape(f0)[0])])
    return curves.astype(np.float64), np.asarray(sol.ok)


def group_theories(f0, group, p1, weight, theta_by_space: dict, ts, *, lr: float, loss: str, num_groups: int,
                   kernels_by_space: dict | None = None, kernel_times=None) -> tuple[dict, dict, dict]:
    """The theories of :data:`THEORIES` for every member: group-mean prediction curves.

    Args:
        f0: (member, n) predictions on the training points at ``ts[0]``.
        group: (member, n) group index of every point; p1, weight: (member, n) labels p(y=1) and
            sampling probabilities.
        theta_by_space: ``{space: (member, n, n)}`` the NTK of f ('output') or of the logits
            ('logit') at ``ts[0]``.
        ts: (time,) save times in steps.
        kernels_by_space: ``{space: (member, K, n, n)}`` the kernel measured at ``kernel_times``
            (K,) along training, for the aging theories (left out without it).

    Returns:
        ({space: {theory: (member, time, G)}} group-mean predictions, the matching solver-success
        flags (member,), and ``{space: {"t0", "tau"}}`` the fitted decays (member,)).
    """
    f0, group, p1, weight = (np.asarray(a) for a in (f0, group, p1, weight))
    n_members = f0.shape[0]
    groups = range(num_groups)
    big_w = np.stack([[weight[m, group[m] == a].sum() for a in groups] for m in range(n_members)])
    wbar = np.stack([[weight[m, group[m] == a].mean() for a in groups] for m in range(n_members)])
    y_g = np.stack([[p1[m, group[m] == a].mean() for a in groups] for m in range(n_members)])
    fg0 = np.stack([group_means(f0[m], group[m], num_groups) for m in range(n_members)])
    theory, ok, decays = {}, {}, {}
    for space, theta in theta_by_space.items():
        g_kernel, kernel_ok = kernel_group_curves(theta, f0, group, p1, weight, ts, lr=lr, loss=loss, space=space, num_groups=num_groups)
        diag, cross = (np.stack(x) for x in zip(*[group_kernel(theta[m], group[m], num_groups) for m in range(n_members)]))
        mf = solve_meanfield(diag, cross, big_w, wbar, fg0, y_g, ts, lr=lr, loss=loss, space=space)
        lit = solve_literal(literal_kernel(theta, weight), big_w, fg0, y_g, ts, lr=lr, loss=loss, space=space)
        theory[space] = {"kernel": g_kernel, "meanfield": np.asarray(mf.ys, np.float64), "literal": np.asarray(lit.ys, np.float64)}
        ok[space] = {"kernel": kernel_ok, "meanfield": np.asarray(mf.ok), "literal": np.asarray(lit.ok)}
        if kernels_by_space is not None and space in kernels_by_space:
            kt = np.asarray(kernel_times, np.float64)
            measured = np.asarray(kernels_by_space[space], np.float64)  # (member, K, n, n)
            trace = np.mean(np.diagonal(measured, axis1=-2, axis2=-1), axis=-1)  # (member, K)
            t0, tau = fit_decay(kt, trace / trace[:, :1])
            scale = decay_scale(kt, t0, tau)  # (member, K)
            uni = solve_aging(kt, diag[:, None] * scale[..., None], cross[:, None] * scale[..., None, None], big_w, wbar, fg0, y_g, ts,
                              lr=lr, loss=loss, space=space)
            blocks = [[group_kernel(measured[m, k], group[m], num_groups) for k in range(len(kt))] for m in range(n_members)]
            diag_k = np.array([[d for d, _ in row] for row in blocks])
            cross_k = np.array([[c for _, c in row] for row in blocks])
            blk = solve_aging(kt, diag_k, cross_k, big_w, wbar, fg0, y_g, ts, lr=lr, loss=loss, space=space)
            theory[space].update(aging=np.asarray(uni.ys, np.float64), aging_blocks=np.asarray(blk.ys, np.float64))
            ok[space].update(aging=np.asarray(uni.ok), aging_blocks=np.asarray(blk.ok))
            decays[space] = {"t0": t0, "tau": tau}
    return theory, ok, decays


# ---------------------------------------------------------------------------------------------
# The literal Eq. 11, and the mean field with aging
# ---------------------------------------------------------------------------------------------
def _group_drive(loss: str, space: str, state, y):
    """g_b = dL/df(f_b, y_b) in output space; sigma'(z_b) dL/df in logit space (state z)."""
    if space == "output":
        return loss_derivative(loss, state, y)
    f = jax.nn.sigmoid(state)
    return f * (1.0 - f) * loss_derivative(loss, f, y)


@functools.cache
def literal_vector_field(loss: str, space: str):
    """The literal Eq. 11 for one member, state (G,) group means: every group gets the same
    right-hand side -lr Theta_bar sum_b W_b g_b (for MSE and G = 2: 2 lr Theta_bar (-f_0 rho_0 +
    (1 - f_1) rho_1) with rho_b = W_b).

    ``args = (theta_bar scalar, group_weight W (G,), y (G,), lr)``.
    """
    _check(loss, space)

    def field(t, state, args):
        theta_bar, big_w, y, lr = args
        g = _group_drive(loss, space, state, y)
        return -lr * theta_bar * jnp.sum(big_w * g) * jnp.ones_like(state)

    return field


def literal_kernel(theta: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Theta_bar = mean_i sum_j w_j Theta_ij / sum_j w_j: the one kernel constant of the literal
    Eq. 11. theta (..., n, n), weight (..., n) -> (...)."""
    theta = np.asarray(theta, np.float64)
    w = np.asarray(weight, np.float64)
    return np.mean(np.einsum("...ij,...j->...i", theta, w) / w.sum(-1, keepdims=True), axis=-1)


def solve_literal(theta_bar, group_weight, f0, y, ts, *, lr: float, loss: str = "mse", space: str = "output",
                  rtol: float = 1e-6, atol: float = 1e-8) -> ODESolution:
    """Integrates the literal Eq. 11 for every member.

    Args:
        theta_bar: (member,) from :func:`literal_kernel`.
        group_weight: (member, G) probability W_a of drawing group a (the densities rho_a).
        f0: (member, G) group-mean predictions at ts[0]; y: (member, G) group labels p1.

    Returns:
        :class:`ODESolution` with ``ys`` (member, time, G) group predictions f.
    """
    f0 = jnp.asarray(f0, jnp.float32)
    state0 = f0 if space == "output" else jnp.log(f0) - jnp.log1p(-f0)
    m = f0.shape[0]
    args = (jnp.asarray(theta_bar, jnp.float32), jnp.asarray(group_weight, jnp.float32), jnp.asarray(y, jnp.float32),
            jnp.full((m,), lr, jnp.float32))
    sol = solve_batch(literal_vector_field(loss, space), state0, args, jnp.asarray(ts, jnp.float32), rtol=rtol, atol=atol)
    ys = sol.ys if space == "output" else jax.nn.sigmoid(sol.ys)
    return ODESolution(ys=np.asarray(ys), ok=np.asarray(sol.ok), message=sol.message)


def _interp(t, tk, values):
    """Linear interpolation of ``values`` (K, ...) given at times ``tk`` (K,) to time t (held
    constant outside [tk[0], tk[-1]])."""
    i = jnp.clip(jnp.searchsorted(tk, t, side="right") - 1, 0, tk.shape[0] - 2)
    w = jnp.clip((t - tk[i]) / (tk[i + 1] - tk[i]), 0.0, 1.0)
    return (1.0 - w) * values[i] + w * values[i + 1]


@functools.cache
def aging_vector_field(loss: str, space: str):
    """The G-group mean field with time-dependent (aging) coefficients, state (G,).

    ``args = (tk (K,), diag (K, G), cross (K, G, G), group_weight W (G,), point_weight wbar (G,),
    y (G,), lr)``: the coefficients at the times tk, interpolated linearly in between.
    """
    _check(loss, space)

    def field(t, state, args):
        tk, diag_k, cross_k, big_w, wbar, y, lr = args
        diag, cross = _interp(t, tk, diag_k), _interp(t, tk, cross_k)
        g = _group_drive(loss, space, state, y)
        eye = jnp.eye(state.shape[0], dtype=state.dtype)
        coeff = cross * big_w[None, :] * (1 - eye) + eye * (wbar * diag + (big_w - wbar) * jnp.diag(cross))
        return -lr * coeff @ g

    return field


def solve_aging(tk, diag_k, cross_k, group_weight, point_weight, f0, y, ts, *, lr: float, loss: str = "mse",
                space: str = "output", rtol: float = 1e-6, atol: float = 1e-8) -> ODESolution:
    """Integrates the G-group mean field with aging coefficients for every member.

    Args:
        tk: (K,) times of the coefficients (steps; tk[0] <= ts[0]).
        diag_k, cross_k: (member, K, G), (member, K, G, G) the coefficients at those times
            (:func:`group_kernel` of the kernel measured there, or the initial ones scaled by a
            fitted decay).
        group_weight, point_weight, f0, y, ts: as :func:`solve_meanfield`.

    Returns:
        :class:`ODESolution` with ``ys`` (member, time, G) group predictions f.
    """
    f0 = jnp.asarray(f0, jnp.float32)
    state0 = f0 if space == "output" else jnp.log(f0) - jnp.log1p(-f0)
    m = f0.shape[0]
    cross_k = np.nan_to_num(np.asarray(cross_k, np.float64))
    args = (jnp.broadcast_to(jnp.asarray(tk, jnp.float32), (m, len(tk))),) + tuple(
        jnp.asarray(a, jnp.float32) for a in (diag_k, cross_k, group_weight, point_weight, y)) + (jnp.full((m,), lr, jnp.float32),)
    sol = solve_batch(aging_vector_field(loss, space), state0, args, jnp.asarray(ts, jnp.float32), rtol=rtol, atol=atol)
    ys = sol.ys if space == "output" else jax.nn.sigmoid(sol.ys)
    return ODESolution(ys=np.asarray(ys), ok=np.asarray(sol.ok), message=sol.message)


def fit_decay(t: np.ndarray, ratio: np.ndarray, t0_grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fits ratio(t) = (1 + t / t0)^(-tau) by least squares in log(ratio), per member.

    Args:
        t: (K,) times (t[0] = 0, ratio 1 there).
        ratio: (member, K) a kernel's size over its initial size (positive).
        t0_grid: candidate time constants (default 40 log-spaced values from 1 to 10^4); tau is
            the closed-form least-squares exponent for each, and the best pair is kept.

    Returns:
        (t0 (member,), tau (member,)); tau > 0 for a decay, < 0 for a growth; the asymptotic
        power-law exponent of the fit.
    """
    t = np.asarray(t, np.float64)
    r = np.log(np.clip(np.asarray(ratio, np.float64), 1e-12, None))  # (member, K)
    grid = np.geomspace(1.0, 1e4, 40) if t0_grid is None else np.asarray(t0_grid, np.float64)
    u = np.log1p(t[None, :] / grid[:, None])  # (grid, K)
    tau = -(r @ u.T) / np.maximum(np.sum(u * u, axis=1), 1e-12)[None, :]  # (member, grid)
    sse = np.sum((r[:, None, :] + tau[..., None] * u[None]) ** 2, axis=-1)
    best = np.argmin(sse, axis=1)
    return grid[best], tau[np.arange(r.shape[0]), best]


def decay_scale(t: np.ndarray, t0: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """(1 + t / t0)^(-tau): (member,) fits at times t (K,) -> (member, K)."""
    return (1.0 + np.asarray(t, np.float64)[None, :] / np.asarray(t0)[:, None]) ** (-np.asarray(tau)[:, None])
