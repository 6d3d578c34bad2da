"""Empirical neural tangent kernel and the one-step training response.

For a model f(x; w) with K outputs, the empirical NTK (Nakazato Eq. 4, Jacot et al. 2018) is

    Theta(x, x')_{ab} = sum_p  d f_a(x) / d w_p  *  d f_b(x') / d w_p,

and one SGD step at learning rate lr on a loss L at the point x_o moves every prediction by the
training response (Nakazato's Delta, Eq. 2-4)

    Delta(x_o, x) = f(x; w - lr grad_w L(f(x_o), y_o)) - f(x; w)
                  = -lr sum_b Theta(x, x_o)_{ab} dL/df_b(x_o) + O(lr^2).

For the mean squared error on one output, dL/df = 2 (f - y), so the normalised response
(Eq. 5) is Delta / (y_o - f(x_o)) = 2 lr Theta(x_o, x) + O(lr^2).

Everything here takes an ``apply_fn(params, x) -> (N,) or (N, K)`` (build one for a flax model
with :func:`apply_fn`), so it works for every model of the package. The NTK is computed as
``vjp`` then ``jvp`` (one parameter-space vector per output row of x1 at a time, mapped in chunks
of ``batch_size`` rows): the Jacobian of x2 is never formed and that of x1 only ``batch_size`` rows
at a time. ``method='jacobian'`` forms both Jacobians and contracts them, the reference the
implicit method is tested against.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

Array = jax.Array
PyTree = Any
ApplyFn = Callable[[PyTree, Array], Array]

NTK_METHODS = ("implicit", "jacobian")


def apply_fn(model, *, method: str | None = None, train: bool = False) -> Callable[..., Array]:
    """``f(params, x)`` for a flax model (``method``: e.g. ``'logits'`` of :class:`RBEConvNet`).

    With ``train=True`` the function takes a third argument, the dropout key:
    ``f(params, x, key)``.
    """
    kw = {} if method is None else {"method": method}
    if train:
        return lambda params, x, key: model.apply({"params": params}, x, train=True, rngs={"dropout": key}, **kw)
    return lambda params, x: model.apply({"params": params}, x, train=False, **kw)


def _as_2d(y: Array) -> Array:
    return y[:, None] if y.ndim == 1 else y.reshape(y.shape[0], -1)


def ntk(f: ApplyFn, params: PyTree, x1: Array, x2: Array | None = None, *, method: str = "implicit",
        batch_size: int | None = 16) -> Array:
    """The empirical NTK between two batches of inputs.

    Args:
        f: ``f(params, x) -> (N,)`` or ``(N, K)``.
        params: the parameters (any pytree).
        x1: (N1, ...) inputs.
        x2: (N2, ...) inputs; default ``x1``.
        method: ``'implicit'`` (vjp then jvp, no full Jacobian) or ``'jacobian'`` (contract
            the two Jacobians; more memory, the reference).
        batch_size: rows of x1 processed together by the implicit method (``None``: all at once).

    Returns:
        (N1, N2) for a single-output model (f returns (N,)), else (N1, N2, K, K) with
        ``[i, j, a, b] = sum_p df_a(x1_i)/dp df_b(x2_j)/dp``.
    """
    if method not in NTK_METHODS:
        raise ValueError(f"method must be one of {NTK_METHODS}, got {method!r}")
    x2 = x1 if x2 is None else x2
    single = jax.eval_shape(f, params, x1[:1]).ndim == 1

    def f2(p, x):
        return _as_2d(f(p, x))

    if method == "jacobian":
        j1 = jax.jacrev(f2)(params, x1)  # leaves (N1, K, *param_shape)
        j2 = jax.jacrev(f2)(params, x2)
        terms = jax.tree_util.tree_map(
            lambda a, b: jnp.einsum("iaP,jbP->ijab", a.reshape(a.shape[:2] + (-1,)), b.reshape(b.shape[:2] + (-1,))),
            j1, j2,
        )
        out = sum(jax.tree_util.tree_leaves(terms))
    else:
        num_out = jax.eval_shape(f2, params, x1[:1]).shape[1]

        def push(p_tangent):
            # J(x2) v for a parameter-space vector v: (N2, K).
            return jax.jvp(lambda p: f2(p, x2), (params,), (p_tangent,))[1]

        def row(x):
            # Theta(x, x2): (K, N2, K); one vjp per output of x, each pushed through jvp.
            _, pullback = jax.vjp(lambda p: f2(p, x[None])[0], params)
            cot = jnp.eye(num_out, dtype=jax.eval_shape(f2, params, x1[:1]).dtype)
            tangents = jax.vmap(lambda c: pullback(c)[0])(cot)
            return jax.vmap(push)(tangents)

        rows = jax.lax.map(row, x1, batch_size=batch_size) if batch_size else jax.vmap(row)(x1)
        out = jnp.transpose(rows, (0, 2, 1, 3))  # (N1, K, N2, K) -> (N1, N2, K, K)
    return out[..., 0, 0] if single else out


def loss_gradient(f: ApplyFn, params: PyTree, loss: Callable, batch: Mapping[str, Array]) -> Array:
    """dL/df at the batch's outputs: the gradient of ``loss(outputs, batch)`` wrt ``outputs``.

    Returns an array shaped like ``f(params, batch['x'])``.
    """
    out = f(params, batch["x"])
    return jax.grad(lambda o: loss(o, batch))(out)


def sgd_step(params: PyTree, grads: PyTree, lr: float | Array) -> PyTree:
    """w - lr * grad (plain SGD, the paper's optimizer)."""
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)


def training_response(f: ApplyFn, params: PyTree, loss: Callable, batch: Mapping[str, Array], x: Array,
                      lr: float | Array, *, f_train: Callable | None = None, key: Array | None = None) -> Array:
    """Delta(x_o, x): the change of f(x) after one SGD step on ``batch`` (Nakazato Eqs. 2-4).

    Args:
        f: evaluation-mode ``f(params, x)``, used to read the predictions before and after.
        params: parameters before the step.
        loss: engine loss ``loss(outputs, batch) -> scalar``.
        batch: the training step's data, ``{'x': (B, ...), 'y': ...}`` (x_o, y_o).
        x: (N, ...) inputs at which the response is read.
        lr: learning rate.
        f_train: training-mode ``f(params, x, key)`` (dropout) for the step itself; default ``f``.
        key: dropout key for ``f_train``.

    Returns:
        Delta, shaped like ``f(params, x)``: (N,) or (N, K).
    """
    if f_train is None:
        grads = jax.grad(lambda p: loss(f(p, batch["x"]), batch))(params)
    else:
        grads = jax.grad(lambda p: loss(f_train(p, batch["x"], key), batch))(params)
    return f(sgd_step(params, grads, lr), x) - f(params, x)


def normalised_response(f: ApplyFn, params: PyTree, loss: Callable, batch: Mapping[str, Array], x: Array,
                        lr: float | Array, **kw) -> Array:
    """Delta(x_o, x) / (y_o - f(x_o)) (Nakazato Eq. 5) for one training point and one output.

    ``batch['x']`` must hold one point (1, ...) and ``f`` return (N,). Returns (N,).
    """
    shape = jax.eval_shape(f, params, batch["x"]).shape
    if shape != (1,):
        raise ValueError(f"normalised_response needs one training point and one output; f(x_o) has shape {shape}")
    f_o = f(params, batch["x"])
    delta = training_response(f, params, loss, batch, x, lr, **kw)
    return delta / (jnp.reshape(batch["y"], (1,)) - f_o)


def linear_response(f: ApplyFn, params: PyTree, loss: Callable, batch: Mapping[str, Array], x: Array,
                    lr: float | Array, **ntk_kw) -> Array:
    """The first-order response -lr sum_o sum_b Theta(x, x_o)_{ab} dL/df_b(x_o), from :func:`ntk`.

    Returns an array shaped like ``f(params, x)``.
    """
    theta = ntk(f, params, x, batch["x"], **ntk_kw)  # (N, B) or (N, B, K, K)
    g = loss_gradient(f, params, loss, batch)  # (B,) or (B, K)
    if theta.ndim == 2:
        return -lr * theta @ g
    return -lr * jnp.einsum("nbak,bk->na", theta, g)


def response_observables(model, loss: Callable, lr: float | None = None, *, sources: str = "sources",
                         probes: str = "probes", ntk_output: bool = True, output: str | None = None) -> dict:
    """Engine observables: the normalised one-step response of every source point on its probes.

    For each source x_s (``data[sources]``, (S, ...)) one SGD step on (x_s, y_s) is taken from the
    current parameters (not applied to the training run) and
    Delta(x_s, probe) / (y_s - f(x_s)) is read on ``data[probes]``: (P, ...) shared by every
    source, or (S, P, ...) one probe set per source. The label y_s ~ Bernoulli(p1_s) is drawn
    from the source's encoding (``data['p1'][s]``) with a key derived from ``data['key']`` and
    the step, so the measurement sees the training distribution's labels; the dropout mask of
    the step (models with dropout) comes from the same key.

    Args:
        model: the flax model being trained.
        loss: the training loss (engine form).
        lr: learning rate of the probe step; default the member's ``hparams['lr']``.
        sources, probes: keys of the member's data.
        ntk_output: also record ``'theta'``, the NTK Theta(x_s, probe) of the same f.
        output: model method giving f (e.g. ``'logits'``); default the model's output.

    Returns:
        ``{'response': fn -> (S, P), 'source': fn -> (S, 2) [f(x_s), y_s], 'theta': fn -> (S, P)}``.
    """
    f = apply_fn(model, method=output)
    f_train = apply_fn(model, method=output, train=True)

    def setup(snap):
        data = snap.data
        xs = data[sources]
        n_src = xs.shape[0]
        pr = data[probes]
        pr = jnp.broadcast_to(pr, (n_src,) + pr.shape) if pr.ndim == xs.ndim else pr
        base = jax.random.fold_in(jax.random.wrap_key_data(data["key"]), snap.step)
        keys = jax.random.split(base, 2 * n_src).reshape((n_src, 2) + base.shape)
        p1 = data["p1"][:n_src]
        f_s = f(snap.params, xs)
        y = jax.vmap(lambda k, p: jax.random.bernoulli(k[0], p))(keys, p1).astype(f_s.dtype)
        return xs, pr, keys, f_s, y

    def response(snap):
        xs, pr, keys, _, y = setup(snap)
        rate = snap.hparams["lr"] if lr is None else lr

        def one(x_s, y_s, k, probe_set):
            batch = {"x": x_s[None], "y": jnp.reshape(y_s, (1,))}
            return normalised_response(f, snap.params, loss, batch, probe_set, rate, f_train=f_train, key=k[1])

        return jax.vmap(one)(xs, y, keys, pr)

    def source(snap):
        _, _, _, f_s, y = setup(snap)
        return jnp.stack([f_s, y], axis=-1)

    def theta(snap):
        xs, pr, _, _, _ = setup(snap)
        return jax.vmap(lambda x_s, probe_set: ntk(f, snap.params, x_s[None], probe_set, batch_size=None)[0])(xs, pr)

    out = {"response": response, "source": source}
    if ntk_output:
        out["theta"] = theta
    return out
