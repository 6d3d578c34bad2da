"""Linearised training dynamics: the first-order Taylor model and its function-space predictions.

* :func:`linearize` / :func:`linearized_apply`: ``f_lin(params, x) = f(params0, x) + J(params0)
  (params - params0)`` by one ``jax.jvp``: a pure apply function that any trainer (optax, the
  engine) can train like the network itself.
* Function-space predictions of training on ``(x_train, y_train)`` from the NTK Theta at
  initialisation -- the empirical one (``jaxdyn.ntk.ntk``) or the infinite-width one
  (``jaxdyn.theory.kernels``):

  - :func:`predict_mse`: squared error, closed forms through the eigendecomposition of
    Theta(train, train), for gradient flow and for full-batch gradient descent;
  - :func:`predict_loss`: any loss; gradient flow ``df/dt = -lr Theta dL/df`` integrated with
    diffrax, or gradient descent iterated in function space.

The learning rate meets the loss's normalisation: for ``L = c sum_{i,k} (f_ik - y_ik)^2`` the
flow is ``df/dt = -2 c lr Theta (f - y)``, so the same lr is a different speed under a mean and
under a sum. :func:`predict_mse` therefore takes the normalisation (``'mean'``: c = 1/n, the mean
over examples of the squared error summed over outputs; ``'half_sum'``: c = 1/2; ``'sum'``:
c = 1; or c itself). Gradient descent with step lr on the linearised model moves its outputs
exactly as ``f_{s+1} = f_s - lr Theta dL/df(f_s)`` (the model is linear in its parameters), so
the discrete predictions are exact for it, to float rounding; for the network itself they hold
to first order in the change of the NTK during training.

Kernels: ``theta_train`` is ``(n, n)`` (one kernel shared by all K outputs: infinite-width
kernels, whose cross-output terms vanish) or ``(n, n, K, K)`` (an empirical NTK of a K-output
model, ``[i, j, a, b]``); ``theta_test`` is ``(m, n)`` or ``(m, n, K, K)`` with the same layout.
Outputs ``f0``/``y`` are ``(n,)`` or ``(n, K)``. Predictions carry a leading time axis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
"""A JAX array."""
PyTree = Any
"""A pytree of arrays."""

NORMALISATIONS = ("mean", "half_sum", "sum")
"""How an MSE loss normalises its sum of squares over points (and outputs): the mean, half the sum, or the sum."""


# ---------------------------------------------------------------------------------------------
# The linearised model
# ---------------------------------------------------------------------------------------------
def linearized_apply(apply_fn: Callable[..., Array]) -> Callable[..., Array]:
    """``g(params0, params, x, *args) = f(params0, x) + J_f(params0) (params - params0)``.

    The expansion point is an argument, so ``g`` can be vmapped over a seed axis of both
    parameter sets (an ensemble of linearised models around their own initialisations).

    Args:
        apply_fn: ``f(params, x, *args) -> (N, ...)``.

    Returns:
        ``g(params0, params, x, *args) -> (N, ...)`` (one jvp: a forward pass and its tangent).
    """

    def g(params0: PyTree, params: PyTree, x: Array, *args) -> Array:
        delta = jax.tree_util.tree_map(lambda p, p0: p - p0, params, params0)
        y0, dy = jax.jvp(lambda p: apply_fn(p, x, *args), (params0,), (delta,))
        return y0 + dy

    return g


def linearize(apply_fn: Callable[..., Array], params0: PyTree) -> Callable[..., Array]:
    """The first-order Taylor model of ``apply_fn`` around ``params0``, as a model's apply.

    Args:
        apply_fn: ``f(params, x, *args) -> (N, ...)``.
        params0: the expansion point (usually the initial parameters).

    Returns:
        ``f_lin(params, x, *args) = f(params0, x) + J(params0) (params - params0)``: a pure
        function of the same signature as ``apply_fn``, equal to it at ``params0`` with the same
        Jacobian there; train it from ``params0``.
    """
    g = linearized_apply(apply_fn)

    def f_lin(params: PyTree, x: Array, *args) -> Array:
        return g(params0, params, x, *args)

    return f_lin


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------
class Prediction(NamedTuple):
    """Function-space prediction of training.

    Attributes:
        times: ``(T,)`` times (gradient flow: lr-free time, the flow runs ``lr * t``) or steps.
        train: ``(T, n)`` or ``(T, n, K)`` outputs on the training inputs.
        test: ``(T, m)`` or ``(T, m, K)`` outputs on the test inputs; None without them.
    """

    times: Array
    train: Array
    test: Array | None


def _check_outputs(name: str, f: Array, n: int | None) -> Array:
    f = jnp.asarray(f)
    if f.ndim not in (1, 2) or (n is not None and f.shape[0] != n):
        want = "(n,) or (n, K)" if n is None else f"({n},) or ({n}, K)"
        raise ValueError(f"{name} must have shape {want}, got {f.shape}")
    return f


def _flat_kernel(name: str, theta: Array, rows: int, n: int, k: int) -> tuple[Array, bool]:
    """Theta as a matrix over (example, output) pairs; ``shared``: one kernel for all outputs."""
    theta = jnp.asarray(theta)
    if theta.ndim == 2 and theta.shape == (rows, n):
        return theta, True
    if theta.ndim == 4 and theta.shape == (rows, n, k, k):
        return jnp.transpose(theta, (0, 2, 1, 3)).reshape(rows * k, n * k), False
    raise ValueError(f"{name} must have shape ({rows}, {n}) or ({rows}, {n}, {k}, {k}) for {n} training "
                     f"examples with {k} outputs, got {theta.shape}")


def _scale(normalisation: str | float, n: int) -> float:
    if isinstance(normalisation, str):
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS} or a positive float c "
                             f"(L = c sum (f - y)^2), got {normalisation!r}")
        return {"mean": 1.0 / n, "half_sum": 0.5, "sum": 1.0}[normalisation]
    try:
        c = float(normalisation)
    except (TypeError, ValueError):
        c = -1.0
    if not c > 0 or not np.isfinite(c):
        raise ValueError(f"normalisation must be one of {NORMALISATIONS} or a positive float c, got {normalisation!r}")
    return c


def _check_lr(lr: Any) -> float:
    try:
        v = float(lr)
    except (TypeError, ValueError):
        v = -1.0
    if not v > 0 or not np.isfinite(v):
        raise ValueError(f"lr must be a positive float, got {lr!r}")
    return v


def _test_args(theta_test, f0_test, n, k, shared):
    if (theta_test is None) != (f0_test is None):
        raise ValueError("theta_test and f0_test come together: give both or neither")
    if theta_test is None:
        return None, None
    f0_test = _check_outputs("f0_test", f0_test, None)
    m = f0_test.shape[0]
    t, t_shared = _flat_kernel("theta_test", theta_test, m, n, k)
    if t_shared != shared:
        raise ValueError("theta_test must have the same layout as theta_train ((m, n) with (n, n), "
                         "(m, n, K, K) with (n, n, K, K))")
    return t, f0_test


# ---------------------------------------------------------------------------------------------
# Squared error: closed forms
# ---------------------------------------------------------------------------------------------
def predict_mse(theta_train: Array, y_train: Array, f0_train: Array, times: Array | Sequence[float], *,
                lr: float, normalisation: str | float = "mean", theta_test: Array | None = None,
                f0_test: Array | None = None, gradient_descent: bool = False) -> Prediction:
    """Outputs of a model trained on the squared error, linearised around initialisation.

    With ``r = 2 c lr`` (``c`` from ``normalisation``, see the module docstring) and
    ``Theta = V diag(lambda) V^T`` on the training set:

    * gradient flow at time t: ``f_t = y + V e^{-r lambda t} V^T (f_0 - y)`` and, on test inputs,
      ``f*_t = f*_0 + Theta* V diag((1 - e^{-r lambda t}) / lambda) V^T (y - f_0)``;
    * gradient descent after s full-batch steps of size lr: ``(1 - r lambda)^s`` in place of
      ``e^{-r lambda t}`` -- exact for the linearised model.

    Args:
        theta_train: ``(n, n)`` or ``(n, n, K, K)`` NTK on the training inputs (symmetrised here).
        y_train: ``(n,)`` or ``(n, K)`` targets.
        f0_train: outputs at initialisation, the shape of ``y_train`` (zeros for the mean over
            initialisations of an infinite-width network).
        times: ``(T,)`` times (gradient flow) or step counts (gradient descent; integers).
        lr: learning rate.
        normalisation: ``'mean'`` (default), ``'half_sum'``, ``'sum'`` or c > 0.
        theta_test: ``(m, n)`` or ``(m, n, K, K)`` NTK between test and training inputs.
        f0_test: ``(m,)`` or ``(m, K)`` test outputs at initialisation.
        gradient_descent: False: gradient flow; True: discrete steps.

    Returns:
        :class:`Prediction` with ``(T, n[, K])`` and ``(T, m[, K])`` arrays.
    """
    y = _check_outputs("y_train", y_train, None)
    n = y.shape[0]
    f0 = _check_outputs("f0_train", f0_train, n)
    if f0.shape != y.shape:
        raise ValueError(f"f0_train must have the shape of y_train {y.shape}, got {f0.shape}")
    k = 1 if y.ndim == 1 else y.shape[1]
    theta, shared = _flat_kernel("theta_train", theta_train, n, n, k)
    t_test, f0_test = _test_args(theta_test, f0_test, n, k, shared)
    rate = 2.0 * _scale(normalisation, n) * _check_lr(lr)
    times = jnp.asarray(times)
    if times.ndim != 1:
        raise ValueError(f"times must have shape (T,), got {times.shape}")
    if gradient_descent and not jnp.issubdtype(times.dtype, jnp.integer):
        if not np.all(np.equal(np.mod(np.asarray(times), 1), 0)) or np.any(np.asarray(times) < 0):
            raise ValueError("times must be step counts >= 0 (integers) with gradient_descent=True")
    dtype = jnp.result_type(theta.dtype, jnp.float32)
    theta = 0.5 * (theta + theta.T)
    lam, vec = jnp.linalg.eigh(theta)
    lam = jnp.maximum(lam, 0.0)  # a PSD kernel: negative eigenvalues are rounding
    t = times.astype(dtype)[:, None]
    if gradient_descent:
        base = 1.0 - rate * lam
        # (1 - r lambda)^s, also past the stable step (negative base: the sign from the parity of s)
        odd = jnp.mod(t, 2.0) == 1.0
        decay = jnp.where((base < 0) & odd, -1.0, 1.0) * jnp.abs(base) ** t
        small = rate * t  # (1 - (1 - r lambda)^s) / lambda as lambda -> 0
    else:
        decay = jnp.exp(-rate * lam * t)
        small = rate * t
    tiny = jnp.finfo(dtype).eps * jnp.maximum(jnp.max(lam), jnp.finfo(dtype).tiny) * n
    gain = jnp.where(lam > tiny, (1.0 - decay) / jnp.where(lam > tiny, lam, 1.0), small)  # (T, nK)

    def flat(a):
        return a.reshape(n, -1) if shared else a.reshape(n * k, 1)

    resid0 = vec.T @ flat(f0 - y)  # eigen-coordinates of f_0 - y
    train = flat(y)[None] + jnp.einsum("pe,te,ek->tpk", vec, decay, resid0)
    train = train.reshape((times.shape[0],) + y.shape)
    test = None
    if t_test is not None:
        m = f0_test.shape[0]
        proj = t_test @ vec  # (m[K], nK)
        move = jnp.einsum("qe,te,ek->tqk", proj, gain, -resid0)
        base_test = f0_test.reshape(m, -1) if shared else f0_test.reshape(m * k, 1)
        test = (base_test[None] + move).reshape((times.shape[0],) + f0_test.shape)
    return Prediction(times, train, test)


# ---------------------------------------------------------------------------------------------
# Any loss: the function-space ODE (diffrax) or gradient-descent iteration
# ---------------------------------------------------------------------------------------------
def predict_loss(theta_train: Array, y_train: Array, f0_train: Array, times: Array | Sequence[float], *,
                 lr: float, loss: Callable[[Array, Mapping[str, Array]], Array],
                 theta_test: Array | None = None, f0_test: Array | None = None, gradient_descent: bool = False,
                 solver: diffrax.AbstractSolver | None = None, rtol: float = 1e-6, atol: float = 1e-8,
                 max_steps: int = 100_000) -> Prediction:
    """Outputs of a model trained on any loss, linearised around initialisation.

    Gradient flow ``df/dt = -lr Theta dL/df(f)`` on the training outputs, with the test outputs
    driven by the same gradient, ``df*/dt = -lr Theta* dL/df(f)``; integrated with diffrax
    (Tsit5 and a PID step-size controller by default). With ``gradient_descent=True`` the map
    ``f_{s+1} = f_s - lr Theta dL/df(f_s)`` is iterated instead (``lax.scan``), exact for the
    linearised model trained by full-batch gradient descent.

    Args:
        theta_train, y_train, f0_train, theta_test, f0_test: as :func:`predict_mse`; ``y_train``
            is whatever ``loss`` reads (e.g. integer labels ``(n,)`` for a softmax loss over
            ``(n, K)`` logits), ``f0_train`` the outputs the kernel is of.
        times: ``(T,)`` increasing times from 0 (flow) or step counts (descent).
        lr: learning rate.
        loss: ``loss(outputs, {'y': y_train}) -> scalar``, the engine's form (its normalisation,
            mean or sum, is part of the dynamics).
        gradient_descent: iterate discrete steps instead of integrating the flow.
        solver, rtol, atol, max_steps: diffrax settings for the flow.

    Returns:
        :class:`Prediction`.
    """
    f0 = _check_outputs("f0_train", f0_train, None)
    n = f0.shape[0]
    y = jnp.asarray(y_train)
    if y.shape[:1] != (n,):
        raise ValueError(f"y_train must have a leading axis of the {n} training examples, got shape {y.shape}")
    if not callable(loss):
        raise ValueError(f"loss must be a callable loss(outputs, batch) -> scalar, got {loss!r}")
    k = 1 if f0.ndim == 1 else f0.shape[1]
    theta, shared = _flat_kernel("theta_train", theta_train, n, n, k)
    t_test, f0_test = _test_args(theta_test, f0_test, n, k, shared)
    lr = _check_lr(lr)
    times = jnp.asarray(times)
    if times.ndim != 1 or times.shape[0] < 1:
        raise ValueError(f"times must have shape (T,) with T >= 1, got {times.shape}")
    batch = {"y": y}
    grad = jax.grad(lambda f: loss(f, batch))

    def apply_kernel(kern, g):  # Theta applied to a gradient of the training outputs' shape
        if shared:
            return kern @ g.reshape(n, -1)
        return (kern @ g.reshape(n * k, 1))

    m = None if f0_test is None else f0_test.shape[0]

    def velocity(state):
        f_tr, f_te = state
        g = grad(f_tr)
        v_tr = -lr * apply_kernel(theta, g).reshape(f_tr.shape)
        v_te = None if f_te is None else -lr * apply_kernel(t_test, g).reshape(f_te.shape)
        return v_tr, v_te

    state0 = (f0, f0_test)
    if gradient_descent:
        steps = np.asarray(times)
        if np.any(steps < 0) or np.any(np.mod(steps, 1) != 0) or np.any(np.diff(steps) < 0):
            raise ValueError("times must be non-decreasing step counts >= 0 with gradient_descent=True")
        last = int(steps[-1])

        def step(state, _):
            v = velocity(state)
            new = jax.tree_util.tree_map(lambda s, d: s + d, state, v)
            return new, state

        _, hist = jax.lax.scan(step, state0, None, length=last + 1)  # hist[s] = state after s steps
        idx = jnp.asarray(steps.astype(np.int64))
        train = hist[0][idx]
        test = None if m is None else hist[1][idx]
        return Prediction(times, train, test)

    ts = times.astype(jnp.result_type(f0.dtype, jnp.float32))
    if float(ts[0]) < 0 or np.any(np.diff(np.asarray(ts)) < 0):
        raise ValueError("times must be non-decreasing and >= 0 for the gradient flow")
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, s, args: velocity(s)),
        solver or diffrax.Tsit5(), t0=0.0, t1=ts[-1], dt0=None, y0=state0,
        saveat=diffrax.SaveAt(ts=ts), stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )
    train, test = sol.ys
    return Prediction(times, train, test)


# ---------------------------------------------------------------------------------------------
# Comparison with actual training
# ---------------------------------------------------------------------------------------------
def trajectory_gap(actual: Array, predicted: Array) -> Array:
    """Relative gap between trained and predicted outputs along training.

    ``max_t ||actual_t - predicted_t|| / max_t ||predicted_t - predicted_0||`` per ensemble member:
    the largest deviation from the prediction, in units of how far the prediction moves.

    Args:
        actual: ``(S, T, ...)`` outputs of S trained members at the T times.
        predicted: ``(S, T, ...)`` (one prediction per member, e.g. from its own empirical NTK)
            or ``(T, ...)`` (one for all, e.g. the infinite-width mean).

    Returns:
        ``(S,)`` relative gaps.
    """
    actual = jnp.asarray(actual)
    predicted = jnp.asarray(predicted)
    if predicted.ndim == actual.ndim - 1 and predicted.shape == actual.shape[1:]:
        predicted = jnp.broadcast_to(predicted, actual.shape)
    if predicted.shape != actual.shape or actual.ndim < 2:
        raise ValueError(f"predicted must have shape (S, T, ...) = {actual.shape} or (T, ...) = {actual.shape[1:]}, "
                         f"got {predicted.shape}")
    s, t = actual.shape[:2]
    dev = jnp.linalg.norm((actual - predicted).reshape(s, t, -1), axis=-1)
    moved = jnp.linalg.norm((predicted - predicted[:, :1]).reshape(s, t, -1), axis=-1)
    return jnp.max(dev, axis=1) / jnp.maximum(jnp.max(moved, axis=1), jnp.finfo(moved.dtype).tiny)


__all__ = ["NORMALISATIONS", "Prediction", "linearize", "linearized_apply", "predict_loss", "predict_mse",
           "trajectory_gap"]
