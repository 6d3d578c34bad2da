"""Empirical neural tangent kernel and the one-step training response.

For a model f(x; w) with K outputs, the empirical NTK (Nakazato Eq. 4, Jacot et al. 2018) is

    Theta(x, x')_{ab} = sum_p  d f_a(x) / d w_p  *  d f_b(x') / d w_p,

and one SGD step at learning rate lr on a loss L at the point x_o moves every prediction by the
training response (Nakazato's Delta, Eq. 2-4)

    Delta(x_o, x) = f(x; w - lr grad_w L(f(x_o), y_o)) - f(x; w)
                  = -lr sum_b Theta(x, x_o)_{ab} dL/df_b(x_o) + O(lr^2).

For the mean squared error on one output, dL/df = 2 (f - y), so the normalised response
(Eq. 5) is Delta / (y_o - f(x_o)) = 2 lr Theta(x_o, x) + O(lr^2).

Everything here takes an ``apply_fn(params, x) -> (N,) or (N, ...)``: any JAX function, or one
built for a flax model with :func:`apply_fn` (which also carries the model's other variable
collections, e.g. BatchNorm's statistics, and lets :func:`ntk` see its layers). Three ways to
compute the NTK (``method=``), all jitted once per shape:

* ``'jacobian'``: per-example Jacobians (``vmap`` of ``jacrev`` over examples; ``jacrev`` of
  the whole batch would run each backward pass through all N examples), contracted with
  matmuls: narrow leaves concatenated into one, wide ones each alone. Memory (N1 + N2) K P for
  P parameters.
* ``'structured'``: every parameter that enters through a dense-like contraction y = X @ W + b
  has d y_p / d W = X_p, so its share of the NTK needs only the layer's inputs X (positions x
  d_in, the patches of a convolution) and the cotangents G_a = d f_a / d y (positions x d_out):

      Theta_W(x, x')_{ab} = sum_{p,q} (X X'^T)_{pq} (G_a G'_b^T)_{pq},
      Theta_b(x, x')_{ab} = sum_{p,q} (G_a G'_b^T)_{pq}.

  Per layer the cheaper contraction order is taken: through the per-example gradient
  X^T G_a (cost ~ d_in d_out per pair, what the Jacobian method does) or through the position
  Gram matrices X X'^T (cost ~ P^2 (d_in + K d_out) per pair, far cheaper for dense layers and
  for convolutions with few positions): the weight-sharing structure that neural-tangents'
  "structured derivatives" exploit. G comes from one vjp per output unit with respect to zero
  perturbations added to every layer output. Where the layers are found:

  - a flax model from :func:`apply_fn`: its ``nn.Dense``, ``nn.Conv`` and :class:`PatchConv`
    calls (``flax.linen.intercept_methods``), which also sees layers the jaxpr hides (the RBE
    nets' PatchConv runs inside a ``custom_jvp``; benchmarks/RESULTS.md compares the two);
  - any other function: its jaxpr on one example. A parameter leaf is covered when every use
    of it is an operand of a ``dot_general`` (no batch dimensions) or ``conv_general_dilated``
    (ungrouped, the kernel operand), or an ``add`` (a bias: G-only term), reached directly or
    through moves of its entries (reshape, transpose, squeeze, rev, broadcast_in_dim adding
    unit axes, float casts), scalings by literal scalars, and ``jit``/``checkpoint`` calls
    (whose bodies are evaluated equation by equation). The inputs X of each such contraction
    (the patches of a convolution: strided slices of its padded input) and the cotangents of
    its output come from evaluating the jaxpr with a zero perturbation added there. A leaf
    used at several sites sums over them, cross terms included: sites that multiply the same
    matrix concatenate their positions, others (W and W^T, a vector used as bias and as
    weight) contract their per-example gradients, each site's mapped back onto the leaf by the
    transpose of its linear map. A leaf entering anything else (a product of parameters, a
    non-linear function, a ``scan``/``while``/``cond`` body, a ``custom_jvp``/``custom_vjp``
    call, whose own derivative rules then apply) falls back to per-example Jacobians.

  Parameters of any other kind (a norm's scale, a custom layer) fall back to per-example
  Jacobians, leaf by leaf. The factors are computed in chunks of examples and the contraction
  in chunks of rows of x1, both sized to a memory limit, so the patches of a convolution are
  never held for all N examples at once. The model must treat examples independently (no batch
  statistics: evaluation mode).
* ``'implicit'``: vjp then jvp, one parameter-space vector per output row of x1 at a time, in
  chunks of ``batch_size`` rows; the Jacobian of x2 is never formed. Least memory, most FLOPs
  (a forward pass through x2 per row of x1).

``method='auto'`` (the default) picks among them from cost and memory estimates computed from
the shapes (XLA's cost analysis of one forward pass, its largest intermediate, the layer sizes),
never by timing: :func:`ntk_estimates` shows them, :func:`choose_method` the choice. Sums of
products accumulate in at least float32. ``ntk(..., trace_axes=, diagonal_axes=)`` gives
neural-tangents' traced / diagonal kernels of multi-output models, reduced inside the
contractions.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
from flax.linen.linear import canonicalize_padding

from jaxdyn.engine.learners import call_kwargs
from jaxdyn.models.layers import PatchConv, extract_patches, normalize_kernel_size

Array = jax.Array
"""A JAX array (alias of ``jax.Array``)."""
PyTree = Any
"""A pytree of arrays (nested dicts, lists, tuples of arrays), e.g. a model's parameters."""
ApplyFn = Callable[[PyTree, Array], Array]
"""A model's apply function ``f(params, x) -> outputs``: parameters and a batch of inputs to a batch of outputs."""

NTK_METHODS = ("implicit", "jacobian", "structured")
"""The ways :func:`ntk` computes the kernel (module docstring), besides ``method='auto'``, which
picks one of them (:func:`choose_method`)."""
_METHOD_CHOICES = NTK_METHODS + ("auto",)

# Dense-like layers whose kernel enters as y = X @ W (+ b). Exact types: a subclass may
# override __call__ and compute something else.
_DENSE_LIKE = (nn.Dense, nn.Conv, PatchConv)


@dataclasses.dataclass(frozen=True)
class ModelFn:
    """``f(params, x)`` of a flax model; carries the model so :func:`ntk` can see its layers.

    Hashable and compared by value (same model, method and mode -> equal), so it can be a static
    argument of ``jax.jit`` and repeated calls hit the compilation cache. One that carries
    ``state`` (arrays) is not hashable: :func:`ntk` passes its state as a traced argument and
    keys its cache by the rest.

    Attributes:
        model: the flax module.
        method: model method giving f (e.g. ``'logits'``); ``None``: ``__call__``.
        train: training mode; then the call takes a dropout key: ``f(params, x, key)``.
        state: the model's other variable collections (e.g. ``{'batch_stats': ...}``), applied
            beside ``params``; ``None``: none. In training mode they are mutable and their
            updates are discarded (f stays a function of the parameters).
    """

    model: nn.Module
    method: str | None = None
    train: bool = False
    state: Mapping[str, PyTree] | None = None

    def __call__(self, params: PyTree, x: Array, key: Array | None = None) -> Array:
        kw = {} if self.method is None else {"method": self.method}
        variables = {"params": params, **(self.state or {})}
        if self.train:
            if key is None:
                raise ValueError("key: a training-mode apply_fn needs a dropout key, f(params, x, key)")
            if self.state:
                out, _ = self.model.apply(variables, x, train=True, rngs={"dropout": key}, mutable=list(self.state), **kw)
                return out
            return self.model.apply(variables, x, train=True, rngs={"dropout": key}, **kw)
        # A module whose __call__ takes no train argument has no training mode (the engine's rule).
        return self.model.apply(variables, x, **call_kwargs(self.model, False), **kw)


def apply_fn(model, *, method: str | None = None, train: bool = False,
             variables: Mapping[str, PyTree] | None = None) -> ModelFn:
    """``f(params, x)`` for a flax model (``method``: e.g. ``'logits'`` of :class:`RBEConvNet`).

    With ``train=True`` the function takes a third argument, the dropout key:
    ``f(params, x, key)``. The returned :class:`ModelFn` lets :func:`ntk` use the structured method.

    ``variables``: the model's variables (``model.init(...)`` or a trained copy); every collection
    but ``'params'`` (e.g. BatchNorm's ``'batch_stats'``) is kept and applied with the
    parameters f is called on, so the NTK is taken with respect to ``params`` only, at fixed
    statistics (evaluation mode: ``nn.BatchNorm(use_running_average=not train)``).
    """
    state = None
    if variables is not None:
        if not isinstance(variables, Mapping):
            raise ValueError(f"variables must be a mapping of flax collections (e.g. model.init(...)), got {type(variables).__name__}")
        state = {name: col for name, col in variables.items() if name != "params"} or None
    return ModelFn(model, method, train, state)


def _as_2d(y: Array) -> Array:
    return y[:, None] if y.ndim == 1 else y.reshape(y.shape[0], -1)


# ---------------------------------------------------------------------------------------------
# The dense-like layers of a model: their inputs (patches) and output cotangents.
# ---------------------------------------------------------------------------------------------
def _layer_patches(mod: nn.Module, args: tuple, kwargs: dict) -> Array | None:
    """The layer input X as (N, P, d_in) with y[n, p] = X[n, p] @ W.reshape(d_in, d_out) (+ b), up
    to an order of the d_in axis (which the NTK does not see); ``None`` if not supported."""
    if len(args) == 1 and not kwargs:
        x = args[0]
    elif not args and set(kwargs) == {"inputs"}:
        x = kwargs["inputs"]
    else:
        return None
    if not hasattr(x, "ndim") or x.ndim < 2:
        return None
    kind = type(mod)
    if kind is nn.Dense:
        if mod.dot_general is not None or mod.dot_general_cls is not None:
            return None
        return x.reshape(x.shape[0], -1, x.shape[-1])
    if kind is PatchConv:
        ks = normalize_kernel_size(mod.kernel_size)
        if x.ndim != len(ks) + 2:
            return None
        p = extract_patches(x, ks, mod.padding)
        return p.reshape(p.shape[0], -1, p.shape[-1])
    # nn.Conv: plain shared-weight convolutions with lax paddings.
    ks = (mod.kernel_size,) if isinstance(mod.kernel_size, int) else tuple(mod.kernel_size)
    if (x.ndim != len(ks) + 2 or mod.feature_group_count != 1 or mod.mask is not None
            or mod.conv_general_dilated is not None or mod.conv_general_dilated_cls is not None):
        return None
    pad = canonicalize_padding(mod.padding, len(ks))
    if isinstance(pad, str) and pad not in ("SAME", "VALID"):
        return None

    def tup(v):
        return (1,) * len(ks) if v is None else ((int(v),) * len(ks) if isinstance(v, int) else tuple(v))

    # Patches come out channels-first (C * prod(k) features); the order of d_in is irrelevant.
    p = jax.lax.conv_general_dilated_patches(
        jnp.moveaxis(x, -1, 1), ks, tup(mod.strides), pad, lhs_dilation=tup(mod.input_dilation),
        rhs_dilation=tup(mod.kernel_dilation), precision=jax.lax.Precision.HIGHEST)
    p = jnp.moveaxis(p, 1, -1)
    return p.reshape(p.shape[0], -1, p.shape[-1])


def _call_key(path: tuple[str, ...], count: int) -> str:
    return "/".join(path) + f"#{count}"


def _interceptor(inputs: dict, perts: Mapping[str, Array] | None = None, outputs: dict | None = None,
                 paths: dict | None = None):
    """A flax method interceptor recording each dense-like call's input patches (``inputs``),
    output (``outputs``) and (module path, call number) (``paths``), keyed by call, and adding
    ``perts[key]`` to its output (zero, to take cotangents)."""
    counts: dict = {}

    def intercept(next_fun, args, kwargs, context):
        mod = context.module
        if context.method_name != "__call__" or type(mod) not in _DENSE_LIKE:
            return next_fun(*args, **kwargs)
        x = _layer_patches(mod, args, kwargs)
        y = next_fun(*args, **kwargs)
        if x is None:
            return y
        path = tuple(str(s) for s in mod.path)
        n = counts.get(path, 0)
        counts[path] = n + 1  # a module called twice shares its kernel: its calls add positions
        key = _call_key(path, n)
        inputs[key] = x
        if outputs is not None:
            outputs[key] = y
        if paths is not None:
            paths[key] = (path, n)
        if perts is not None and key in perts:
            y = y + perts[key].astype(y.dtype)
        return y

    return intercept


class _Layer(NamedTuple):
    """One dense-like module of the model (all its calls)."""

    path: tuple[str, ...]
    keys: tuple[str, ...]  # one per call
    out_tails: tuple[tuple[int, ...], ...]  # each call's output shape without the example axis
    positions: int  # P, summed over calls
    d_in: int
    d_out: int
    bias: bool
    dtype: Any  # of the layer's output


def _abstract(tree: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), tree)


def _leaf_paths(params: PyTree) -> list[tuple]:
    out = []
    for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
        out.append(tuple(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path))
    return out


def _subtree(params: PyTree, path: tuple[str, ...]):
    node = params
    for k in path:
        if not hasattr(node, "keys") or k not in node:
            return None
        node = node[k]
    return node


def _find_layers(f: ModelFn, params: PyTree, x: Array) -> tuple[_Layer, ...]:
    """The dense-like layers of ``f.model`` whose kernel (and bias) the structured method covers."""
    n = x.shape[0]
    paths: dict = {}

    def run(p, x):
        inputs, outputs = {}, {}
        with nn.intercept_methods(_interceptor(inputs, None, outputs, paths)):
            f(p, x)
        return inputs, outputs

    inputs, outputs = jax.eval_shape(run, _abstract(params), _abstract(x))
    recorded: dict = {}
    for key, xs in inputs.items():
        path, count = paths[key]
        recorded.setdefault(path, []).append((count, key, xs, outputs[key]))
    layers = []
    for path, calls in recorded.items():
        calls.sort()
        sub = _subtree(params, path)
        if sub is None or not hasattr(sub, "keys") or "kernel" not in sub or not set(sub) <= {"kernel", "bias"}:
            continue
        kernel = sub["kernel"]
        d_out = kernel.shape[-1]
        d_in = math.prod(kernel.shape[:-1])
        ok = True
        for _, _, xs, ys in calls:
            ok &= (xs.shape[0] == n and ys.shape[0] == n and ys.ndim >= 2 and ys.shape[-1] == d_out
                   and xs.shape[-1] == d_in and xs.shape[1] == math.prod(ys.shape[1:-1]))
        bias = "bias" in sub
        if bias:
            ok &= tuple(sub["bias"].shape) == (d_out,)
        if not ok:
            continue  # not the structure assumed: these leaves fall back to Jacobians
        layers.append(_Layer(path, tuple(c[1] for c in calls), tuple(tuple(c[3].shape[1:]) for c in calls),
                             sum(c[2].shape[1] for c in calls), d_in, d_out, bias, calls[0][3].dtype))
    return tuple(sorted(layers))


# ---------------------------------------------------------------------------------------------
# Any JAX function: the dense-like contractions of its jaxpr.
# ---------------------------------------------------------------------------------------------
# Primitives that only move or cast a parameter's entries: through them a parameter stays "the
# weight matrix" up to a fixed permutation of its entries (broadcast_in_dim only where it adds
# axes of size 1; a true broadcast is followed only as a bias).
_MOVES = frozenset({"reshape", "transpose", "squeeze", "expand_dims", "broadcast_in_dim", "rev", "copy", "copy_p",
                    "convert_element_type"})
# Calls whose body is evaluated here equation by equation (their derivatives are their body's).
# custom_jvp / custom_vjp calls are never entered: their own rules define the derivative, so a
# parameter entering one falls back to Jacobians (which use those rules).
_CALLS = frozenset({"jit", "pjit", "closed_call", "core_call", "remat", "remat2", "checkpoint"})


def _sub_jaxpr(eqn):
    """(jaxpr, consts) of a call equation's body."""
    sub = eqn.params["jaxpr"] if "jaxpr" in eqn.params else eqn.params["call_jaxpr"]
    return getattr(sub, "jaxpr", sub), tuple(getattr(sub, "consts", ()))


def _freeze(params: Mapping) -> tuple:
    """A hashable form of an equation's parameters (to compare the layouts of two sites)."""
    items = []
    for name, value in sorted(params.items()):
        try:
            hash(value)
        except TypeError:
            value = repr(value)
        items.append((name, value))
    return tuple(items)


class _Src(NamedTuple):
    """A value computed from one parameter leaf by moves and scalings only."""

    leaf: int
    chain: tuple  # ((primitive, params, scalar or None, operand position), ...), applied in order
    bijective: bool  # False once a true broadcast was applied
    key: tuple  # hashable description of the chain
    scale: float = 1.0  # product of the chain's scalings: the chain is scale x (a permutation)


def _apply_chain(chain: tuple, w: Array) -> Array:
    """The value a :class:`_Src` chain computes from its leaf ``w`` (a linear function of w)."""
    for prim, params, scalar, pos in chain:
        args = (w,) if scalar is None else ((w, scalar) if pos == 0 else (scalar, w))
        w = prim.bind(*args, **prim.get_bind_params(params))
    return w


class _Site(NamedTuple):
    """One place where a parameter leaf enters f: a dot_general or conv_general_dilated taking
    it as an operand (``'dot'``, ``'conv'``), or an add (``'add'``, a bias)."""

    kind: str
    src: _Src
    eqn: Any  # the equation (primitive, parameters, operand shapes)
    operand: int  # position of the parameter's operand
    pert: tuple  # location of the equation whose output is perturbed for this site's cotangent
    positions: int  # P: rows of X and of G (dot, conv)
    d_in: int
    d_out: int
    out_elems: int  # elements of the (one-example) output the cotangent is taken at
    layout: tuple  # sites of one leaf with equal layouts multiply the same matrix W (P x d_in @ d_in x d_out)


class _Group(NamedTuple):
    """All the sites of one parameter leaf: ``'weight'`` (dot/conv sites of one layout: factors
    X, G concatenated over sites), ``'bias'`` (add sites only) or ``'mixed'`` (both kinds or
    several layouts: per-example gradients, each site's mapped back to the leaf)."""

    leaf: int
    kind: str
    sites: tuple[int, ...]
    positions: int
    d_in: int
    d_out: int
    size: int  # elements of the leaf


class _JaxprStructure(NamedTuple):
    """What the jaxpr of f(params, one example) reveals: its sites, grouped per leaf."""

    jaxpr: Any  # ClosedJaxpr of f(*leaves, x_one)
    sites: tuple[_Site, ...]
    groups: tuple[_Group, ...]
    fallback: tuple[int, ...]  # leaves left to per-example Jacobians
    perts: dict  # location -> ShapeDtypeStruct of the perturbed output
    record: dict  # location -> site indices whose other operand (the layer input) is recorded there
    descend: frozenset  # locations of call equations evaluated equation by equation


def _moved(s: _Src, eqn, lit) -> _Src | None:
    """The source of a move/scaling equation's output, ``None`` if it is not one."""
    name = eqn.primitive.name
    if name in _MOVES and len(eqn.invars) == 1:
        a_in, a_out = eqn.invars[0].aval, eqn.outvars[0].aval
        if name == "convert_element_type" and not (jnp.issubdtype(a_in.dtype, jnp.floating)
                                                   and jnp.issubdtype(a_out.dtype, jnp.floating)):
            return None
        bij = s.bijective and math.prod(a_out.shape) == math.prod(a_in.shape)
        step = (eqn.primitive, dict(eqn.params), None, 0)
        return _Src(s.leaf, s.chain + (step,), bij, s.key + ((name, _freeze(eqn.params)),), s.scale)
    if name in ("mul", "div") and lit is not None:
        pos, scalar = lit
        if name == "div" and pos != 0:
            return None
        step = (eqn.primitive, dict(eqn.params), scalar, pos)
        factor = float(scalar) if name == "mul" else 1.0 / float(scalar)
        return _Src(s.leaf, s.chain + (step,), s.bijective, s.key + ((name, float(scalar), pos),), s.scale * factor)
    return None


def _scalar_literal(eqn, j: int):
    """(position of the parameter operand, value) if the other operand is a scalar literal."""
    if len(eqn.invars) != 2:
        return None
    other = eqn.invars[1 - j]
    if isinstance(other, jax.extend.core.Literal) and np.ndim(other.val) == 0:
        return j, other.val
    return None


class _Walk:
    """Follows every parameter leaf through a jaxpr, recording sites and leaves to fall back."""

    def __init__(self):
        self.sites: list[_Site] = []
        self.bad: set[int] = set()
        self.perts: dict = {}
        self.record: dict = {}
        self.descend: set = set()

    def run(self, jaxpr, in_srcs, prefix: tuple) -> list:
        src = {v: s for v, s in zip(jaxpr.invars, in_srcs) if s is not None}
        uses: dict = {}
        for e in jaxpr.eqns:
            for v in e.invars:
                if not isinstance(v, jax.extend.core.Literal):
                    uses[v] = uses.get(v, 0) + 1
        for v in jaxpr.outvars:
            if not isinstance(v, jax.extend.core.Literal):
                uses[v] = uses.get(v, 0) + 1
        site_out: dict = {}  # output var of a dot/conv site -> its location
        for i, eqn in enumerate(jaxpr.eqns):
            loc = prefix + (i,)
            ins = [None if isinstance(v, jax.extend.core.Literal) else src.get(v) for v in eqn.invars]
            if all(s is None for s in ins):
                continue
            name = eqn.primitive.name
            if name in _CALLS:
                body, _ = _sub_jaxpr(eqn)
                outs = self.run(body, ins, loc)
                self.descend.add(loc)
                src.update({v: s for v, s in zip(eqn.outvars, outs) if s is not None})
                continue
            live = [j for j, s in enumerate(ins) if s is not None]
            if len(live) == 1 and (name in _MOVES or name in ("mul", "div")):
                moved = _moved(ins[live[0]], eqn, _scalar_literal(eqn, live[0]))
                if moved is not None:
                    src[eqn.outvars[0]] = moved
                    continue
            if name == "dot_general":
                for j in live:
                    self._dot(eqn, j, ins[j], loc, site_out)
            elif name == "conv_general_dilated":
                for j in live:
                    self._conv(eqn, j, ins[j], loc, site_out)
            elif name in ("add", "add_any"):
                for j in live:
                    self._add(eqn, j, ins, loc, site_out, uses)
            else:
                self.bad.update(ins[j].leaf for j in live)
        return [None if isinstance(v, jax.extend.core.Literal) else src.get(v) for v in jaxpr.outvars]

    def _new_site(self, kind, s, eqn, j, loc, pert, p, c, d, layout):
        idx = len(self.sites)
        out = eqn.outvars[0].aval
        self.sites.append(_Site(kind, s, eqn, j, pert, p, c, d, math.prod(out.shape), layout))
        if kind != "add":
            self.record.setdefault(loc, []).append(idx)
        self.perts[pert] = jax.ShapeDtypeStruct(out.shape, out.dtype)

    def _dot(self, eqn, j, s, loc, site_out):
        (lc, rc), (lb, _) = eqn.params["dimension_numbers"]
        own_c, other_c = (lc, rc) if j == 0 else (rc, lc)
        if lb or not s.bijective:  # batch dimensions: a weight per batch index, not shared
            self.bad.add(s.leaf)
            return
        w_shape, a_shape = eqn.invars[j].aval.shape, eqn.invars[1 - j].aval.shape
        d_in = math.prod(w_shape[a] for a in own_c)
        d_out = math.prod(w_shape[a] for a in range(len(w_shape)) if a not in own_c)
        p = math.prod(a_shape[a] for a in range(len(a_shape)) if a not in other_c)
        self._new_site("dot", s, eqn, j, loc, loc, p, d_in, d_out, (s.key, "dot", tuple(own_c)))
        site_out[eqn.outvars[0]] = loc

    def _conv(self, eqn, j, s, loc, site_out):
        prm = eqn.params
        if j != 1 or not s.bijective or prm["feature_group_count"] != 1 or prm["batch_group_count"] != 1:
            self.bad.add(s.leaf)  # the image operand, or grouped convolutions: Jacobians
            return
        dn = prm["dimension_numbers"]
        w_shape, y_shape = eqn.invars[1].aval.shape, eqn.outvars[0].aval.shape
        d_in = w_shape[dn.rhs_spec[1]] * math.prod(w_shape[a] for a in dn.rhs_spec[2:])
        p = y_shape[dn.out_spec[0]] * math.prod(y_shape[a] for a in dn.out_spec[2:])
        self._new_site("conv", s, eqn, j, loc, loc, p, d_in, w_shape[dn.rhs_spec[0]], (s.key, "conv", tuple(dn.rhs_spec)))
        site_out[eqn.outvars[0]] = loc

    def _add(self, eqn, j, ins, loc, site_out, uses):
        other = eqn.invars[1 - j]
        pert = loc
        # y = X W + b: when the add is the only use of X W, its cotangent is that of X W.
        if (ins[1 - j] is None and not isinstance(other, jax.extend.core.Literal) and other in site_out
                and uses.get(other) == 1 and other.aval.shape == eqn.outvars[0].aval.shape):
            pert = site_out[other]
        s = ins[j]
        self._new_site("add", s, eqn, j, loc, pert, 0, 0, 0, (s.key, "add"))


def _jaxpr_structure(f: ApplyFn, params: PyTree, x: Array) -> _JaxprStructure:
    """Trace f on one example and find where each parameter leaf enters (see :class:`_Site`)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    one = jax.ShapeDtypeStruct((1,) + tuple(x.shape[1:]), x.dtype)
    closed = jax.make_jaxpr(lambda lv, xx: f(jax.tree_util.tree_unflatten(treedef, lv), xx))(_abstract(leaves), one)
    n = len(leaves)
    walk = _Walk()
    srcs = [_Src(i, (), True, ()) for i in range(n)] + [None]
    outs = walk.run(closed.jaxpr, srcs, ())
    walk.bad.update(s.leaf for s in outs if s is not None)  # a parameter returned as (part of) the output
    for i, a in enumerate(leaves):
        if not jnp.issubdtype(jnp.result_type(a), jnp.inexact):
            walk.bad.add(i)
    by_leaf: dict = {}
    for idx, site in enumerate(walk.sites):
        by_leaf.setdefault(site.src.leaf, []).append(idx)
    groups = []
    for leaf, idxs in sorted(by_leaf.items()):
        if leaf in walk.bad:
            continue
        sites = [walk.sites[i] for i in idxs]
        size = math.prod(jnp.shape(leaves[leaf]))
        kinds = {s.kind for s in sites}
        if kinds == {"add"}:
            kind = "bias"
        elif "add" not in kinds and len({s.layout for s in sites}) == 1:
            kind = "weight"
        else:
            kind = "mixed"
        groups.append(_Group(leaf, kind, tuple(idxs), sum(s.positions for s in sites), sites[0].d_in,
                             sites[0].d_out, size))
    covered = {g.leaf for g in groups}
    # Leaves with no site and not bad do not enter f at all: zero rows, nothing to compute.
    unused = {i for i in range(n) if i not in covered and i not in walk.bad and i not in by_leaf}
    fallback = tuple(i for i in range(n) if i not in covered and i not in unused)
    # Only the perturbations and records of sites still in use.
    live = {i for g in groups for i in g.sites}
    perts = {walk.sites[i].pert: walk.perts[walk.sites[i].pert] for i in sorted(live)}
    record = {}
    for loc, idxs in walk.record.items():
        keep = [i for i in idxs if i in live]
        if keep:
            record[loc] = tuple(keep)
    return _JaxprStructure(closed, tuple(walk.sites), tuple(groups), fallback, perts, record,
                           frozenset(walk.descend))


def _eval_jaxpr(st: _JaxprStructure, jaxpr, consts, args, prefix: tuple, perts: Mapping, recorded: dict) -> list:
    """Evaluate ``jaxpr`` as jax.core.eval_jaxpr does, adding ``perts[loc]`` to the outputs of the
    perturbed equations and keeping the layer input of every dot/conv site in ``recorded``."""
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, jax.extend.core.Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for i, eqn in enumerate(jaxpr.eqns):
        loc = prefix + (i,)
        invals = [read(v) for v in eqn.invars]
        if loc in st.descend:
            body, body_consts = _sub_jaxpr(eqn)
            outs = _eval_jaxpr(st, body, body_consts, invals, loc, perts, recorded)
        else:
            outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
            if not eqn.primitive.multiple_results:
                outs = [outs]
        for s in st.record.get(loc, ()):
            recorded[s] = invals[1 - st.sites[s].operand]
        if loc in perts:
            outs = [outs[0] + perts[loc].astype(outs[0].dtype)] + list(outs[1:])
        for v, o in zip(eqn.outvars, outs):
            if not isinstance(v, jax.extend.core.DropVar):
                env[v] = o
    return [read(v) for v in jaxpr.outvars]


def _conv_patches(eqn, lhs: Array) -> Array:
    """The patches of a convolution's input, (P, d_in): strided slices of the padded (and
    lhs-dilated) image, one per kernel tap, rows in the order (batch, output spatial...) of the
    output positions, columns (taps row-major, then input channel)."""
    prm = eqn.params
    dn = prm["dimension_numbers"]
    w_shape, y_shape = eqn.invars[1].aval.shape, eqn.outvars[0].aval.shape
    ks = [w_shape[d] for d in dn.rhs_spec[2:]]
    out = [y_shape[d] for d in dn.out_spec[2:]]
    img = jnp.transpose(lhs, (dn.lhs_spec[0],) + tuple(dn.lhs_spec[2:]) + (dn.lhs_spec[1],))  # (B, *spatial, C)
    lhs_dil = prm["lhs_dilation"] or (1,) * len(ks)
    rhs_dil = prm["rhs_dilation"] or (1,) * len(ks)
    cfg = [(0, 0, 0)] + [(lo, hi, dl - 1) for (lo, hi), dl in zip(prm["padding"], lhs_dil)] + [(0, 0, 0)]
    img = jax.lax.pad(img, jnp.zeros((), img.dtype), cfg)
    strides = prm["window_strides"]
    taps = []
    for offset in itertools.product(*(range(k) for k in ks)):
        start = [0] + [o * r for o, r in zip(offset, rhs_dil)] + [0]
        limit = [img.shape[0]] + [s0 + (n - 1) * st + 1 for s0, n, st in zip(start[1:-1], out, strides)] + [img.shape[-1]]
        taps.append(jax.lax.slice(img, start, limit, [1] + list(strides) + [1]))
    patches = jnp.stack(taps, axis=-2)  # (B, *out, taps, C)
    return patches.reshape(-1, patches.shape[-2] * patches.shape[-1])


def _site_x(site: _Site, a: Array) -> Array:
    """The layer input of a dot/conv site as X (P, d_in): y = X @ W (W the d_in x d_out matrix of the
    site's layout) at one example; ``a`` is the site's other operand (a convolution's input)."""
    if site.kind == "dot":
        (lc, rc), _ = site.eqn.params["dimension_numbers"]
        other_c = rc if site.operand == 0 else lc
        free = [d for d in range(a.ndim) if d not in other_c]
        return jnp.transpose(a, free + list(other_c)).reshape(site.positions, site.d_in)
    return _conv_patches(site.eqn, a)


def _site_g(site: _Site, g: Array) -> Array:
    """Cotangents of a dot/conv site's output, (K, *y) -> (K, P, d_out), rows in X's order."""
    k = g.shape[0]
    if site.kind == "dot":
        if site.operand == 1:  # y = (free axes of X..., free axes of W...)
            return g.reshape(k, site.positions, site.d_out)
        return jnp.swapaxes(g.reshape(k, site.d_out, site.positions), 1, 2)
    dn = site.eqn.params["dimension_numbers"]
    perm = (0, 1 + dn.out_spec[0]) + tuple(1 + d for d in dn.out_spec[2:]) + (1 + dn.out_spec[1],)
    return jnp.transpose(g, perm).reshape(k, site.positions, site.d_out)


def _site_grad(site: _Site, leaf: Array, other: Array | None, g: Array) -> Array:
    """Per-output-unit gradient of the leaf through one site alone, (K, *y) -> (K, leaf.size): the
    transpose of the site's linear map w -> site output applied to the cotangents."""
    eqn = site.eqn
    y_shape = eqn.outvars[0].aval.shape

    def linear(w):
        wv = _apply_chain(site.src.chain, w)
        if site.kind == "add":
            return jnp.broadcast_to(wv, y_shape).astype(eqn.outvars[0].aval.dtype)
        args = (wv, other) if site.operand == 0 else (other, wv)
        return eqn.primitive.bind(*args, **eqn.primitive.get_bind_params(eqn.params))

    transpose = jax.linear_transpose(linear, jax.ShapeDtypeStruct(jnp.shape(leaf), jnp.result_type(leaf)))
    return jax.vmap(lambda gi: transpose(gi.astype(eqn.outvars[0].aval.dtype))[0])(g).reshape(g.shape[0], -1)


def _jaxpr_side_block(st: _JaxprStructure, modes: tuple[str, ...], params: PyTree, x: Array, k: int):
    """Per-example factors of a chunk of examples from the jaxpr (see :func:`_side_block`):
    per-example gradient blocks [(N, K, q)] and [(X (N, P, d_in), G (N, K, P, d_out))]."""
    leaves = jax.tree_util.tree_leaves(params)
    closed = st.jaxpr

    def one(xi):
        def run(perts):
            recorded: dict = {}
            (out,) = _eval_jaxpr(st, closed.jaxpr, closed.consts, list(leaves) + [xi[None]], (), perts, recorded)
            return _as_2d(out)[0], recorded

        zeros = {loc: jnp.zeros(a.shape, a.dtype) for loc, a in st.perts.items()}
        out, pullback, recorded = jax.vjp(run, zeros, has_aux=True)
        (gs,) = jax.vmap(pullback)(jnp.eye(k, dtype=out.dtype))  # {loc: (K, *y)}
        parts, grams = [], []
        for group, mode in zip(st.groups, modes):
            sites = [st.sites[i] for i in group.sites]
            if group.kind == "weight":
                xl = jnp.concatenate([_site_x(s, recorded[i]) for i, s in zip(group.sites, sites)], axis=0)
                gl = jnp.concatenate([_site_g(s, gs[s.pert]) for s in sites], axis=1)
                xl = xl.astype(jnp.result_type(xl, gl))
                if sites[0].src.scale != 1.0:  # W' = scale * W: d y / d W = scale * X (one scale per layout)
                    xl = xl * jnp.asarray(sites[0].src.scale, xl.dtype)
                if mode == "grad":
                    parts.append(jnp.einsum("pc,kpd->kcd", xl, gl, preferred_element_type=_acc(xl)).reshape(k, -1))
                else:
                    grams.append((xl, gl))
            else:
                leaf = leaves[group.leaf]
                grad = sum(_site_grad(s, leaf, recorded.get(i), gs[s.pert]) for i, s in zip(group.sites, sites))
                parts.append(grad)
        return parts, grams

    return jax.vmap(one)(x)


# ---------------------------------------------------------------------------------------------
# Cost estimates and plans
# ---------------------------------------------------------------------------------------------
class _Plan(NamedTuple):
    """How the structured method treats each part of the parameters."""

    layers: tuple  # _Layer per flax layer, or _Group per parameter leaf (from the jaxpr)
    modes: tuple[str, ...]  # per layer: 'grad' (X^T G per example), 'gram' or 'gram2' (via X X'^T)
    fallback: tuple[int, ...]  # flat indices of parameter leaves left to per-example Jacobians
    chunk: int  # rows of x1 per contraction chunk
    side_chunk: int  # at most this many examples per pass computing the factors
    structure: _JaxprStructure | None = None  # the jaxpr path's sites; None: the flax layers


class Estimate(NamedTuple):
    """A method's estimated ``cost`` (FLOP-equivalents: FLOPs plus :data:`MEMORY_PASS_COST` per
    array element written and read back) and ``bytes`` (peak memory)."""

    cost: float
    bytes: float


# FLOP-equivalents per array element a computation writes to memory and reads back: a CPU
# core does ~30 float32 FLOPs per element in a matmul in the time a memory-bound pass moves one
# element (measured on this project's machine: benchmarks/, bench_ntk).
MEMORY_PASS_COST = 16.0
"""FLOP-equivalents charged per array element a computation writes to memory and reads back, in
the cost of an :class:`Estimate` (the cost model of ``method='auto'``); set from measurements on
this project's machine (benchmarks/, bench_ntk)."""
# Cost of a pass relative to the forward pass it follows (measured on the package's models,
# XLA:CPU): a jvp tangent (x dW + dx W, elementwise derivatives shared with the primal), a
# backward pass to the activations only, and one that also forms the parameter gradients.
_TANGENT, _BACKWARD, _BACKWARD_PARAMS = 1.0, 1.5, 2.0


def _layer_modes(layer: _Layer | _Group, n1: int, n2: int, same: bool, k: int) -> dict[str, tuple[float, float]]:
    """{mode: (cost, elements of intermediates per row of x1)} for one layer's kernel (a
    parameter of P positions, d_in inputs, d_out outputs)."""
    p, c, d = layer.positions, layer.d_in, layer.d_out
    nb = n1 + (0 if same else n2)
    pairs = n1 * n2
    m = MEMORY_PASS_COST
    return {
        # J_a = X^T G_a per example (nb k c d stored), then its columns join the one matmul of
        # all per-example gradients.
        "grad": (2.0 * k * nb * p * c * d + m * nb * k * c * d + 2.0 * pairs * k * k * c * d, 0.0),
        # X X'^T (p, q), contracted with G_a over p, then with G'_b over (q, d).
        "gram": (2.0 * pairs * (p * p * c + p * p * k * d + p * k * k * d) + m * pairs * (p * p + k * p * d + 2 * k * k),
                 n2 * (p * p + k * p * d)),
        # X X'^T and G_a G'_b^T (p, q), then their product summed over (p, q).
        "gram2": (2.0 * pairs * (p * p * c + k * k * p * p * d + k * k * p * p) + m * pairs * (p * p + k * k * p * p + 2 * k * k),
                  n2 * (p * p + k * k * p * p)),
    }


def _largest_value(jaxpr) -> int:
    """Elements of the largest value a jaxpr (and the jaxprs it calls) computes."""
    size = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            size = max(size, math.prod(getattr(v.aval, "shape", ())))
        for p in eqn.params.values():
            for sub in p if isinstance(p, (list, tuple)) else (p,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    size = max(size, _largest_value(inner))
    return size


def _forward_cost(f: Callable, params: PyTree, x: Array) -> tuple[float, float, float]:
    """f on one example: XLA's FLOPs and bytes accessed (HLO cost analysis; nothing compiled),
    and the bytes of its largest intermediate value."""
    one = jax.ShapeDtypeStruct((1,) + tuple(x.shape[1:]), x.dtype)
    n_params = sum(math.prod(jnp.shape(a)) for a in jax.tree_util.tree_leaves(params))
    item = jnp.dtype(x.dtype).itemsize if jnp.issubdtype(x.dtype, jnp.floating) else 4
    try:
        fn = jax.jit(lambda p, xx: f(p, xx))
        cost = fn.lower(_abstract(params), one).cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops, nbytes = float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
        largest = item * _largest_value(jax.make_jaxpr(fn)(_abstract(params), one).jaxpr)
    except Exception:  # noqa: BLE001 -- an estimate only: f may close over tracers of an outer trace
        flops, nbytes, largest = 0.0, 0.0, 0.0
    return (flops if flops > 0 else 2.0 * n_params), (nbytes if nbytes > 0 else item * n_params), \
        (largest if largest > 0 else item * math.prod(x.shape[1:]))


def _memory_budget() -> int:
    """Bytes a method may hold: half the accelerator's memory, or a quarter of the host's RAM."""
    try:
        stats = jax.local_devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001 -- backends without memory stats
        stats = {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) // 2
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 4 << 30


# Elements the intermediates of the structured contraction may hold per chunk of rows of x1,
# and those of the passes computing the factors per chunk of examples (each at most an eighth of
# the memory limit): the patches and cotangents of a layer contracted through per-example
# gradients are needed only until those are formed, so their memory need not grow with N.
# Measured on a 2-core CPU against 4x these caps: VGG 32x32 N=64 16 MiB and 0.032 s instead of
# 54 MiB and 0.055 s, N=256 40 MiB / 0.139 s instead of 76 MiB / 0.200 s, 2-D RBE net N=4096
# 105 / 158 MiB at 0.90x the time, 1-D RBE net N=4096 unchanged; 4x smaller caps were slower.
_CHUNK_ELEMENTS = 1 << 24
_SIDE_CHUNK_ELEMENTS = 1 << 22


def _analyse(f: ApplyFn, params: PyTree, x1: Array, n2: int, same: bool, batch_size: int | None,
             structured: bool, budget: int) -> tuple[dict[str, Estimate], _Plan | None]:
    """Estimated cost of every available method, and the structured method's plan (its chunks
    of rows of x1 sized to ``budget`` bytes)."""
    n1 = x1.shape[0]
    out = jax.eval_shape(f, _abstract(params), jax.ShapeDtypeStruct((1,) + tuple(x1.shape[1:]), x1.dtype))
    k = math.prod(out.shape[1:]) if len(out.shape) > 1 else 1
    item = jnp.dtype(out.dtype).itemsize
    leaves = jax.tree_util.tree_leaves(params)
    n_params = sum(math.prod(jnp.shape(a)) for a in leaves)
    fwd, fwd_bytes, largest = _forward_cost(f, params, x1)
    m = MEMORY_PASS_COST
    fwd = fwd + m * fwd_bytes / item  # one forward pass of one example, memory traffic included
    nb = n1 + (0 if same else n2)
    pairs = n1 * n2
    out_pass = m * pairs * k * k  # writing (or adding into) the (n1, n2, K, K) result
    alone = _alone(n1, n2, same, k)
    est = {
        # Per row of x1: a vjp of one example (K backward passes), then a jvp through x2 for
        # each of the K vectors (the primal computed once).
        # Memory: per row in flight, K parameter-space vectors and K tangents through x2 (a jvp
        # keeps no residuals: a few values of the size of the largest).
        "implicit": Estimate(n1 * fwd * ((1 + _BACKWARD_PARAMS * k) + n2 * (1 + _TANGENT * k)) + out_pass,
                             (batch_size or n1) * k * (item * n_params + 2 * n2 * largest) + item * pairs * k * k),
        # Per example a forward and K backward passes, the Jacobian written, then matmuls.
        # Memory: the Jacobians, the result, K cotangents per example in flight.
        "jacobian": Estimate(nb * fwd * (1 + _BACKWARD_PARAMS * k) + m * nb * k * n_params + 2.0 * pairs * k * k * n_params
                             + out_pass * (1 + sum(math.prod(jnp.shape(a)) >= alone for a in leaves)),
                             item * (nb * k * n_params + pairs * k * k) + 2 * nb * k * largest),
    }
    if not structured:
        return est, None
    structure = None
    if isinstance(f, ModelFn):
        layers = _find_layers(f, params, x1)
        covered = set()
        for layer in layers:
            covered.add(layer.path + ("kernel",))
            if layer.bias:
                covered.add(layer.path + ("bias",))
        paths = _leaf_paths(params)
        fallback = tuple(i for i, p in enumerate(paths) if p not in covered)
    else:
        structure = _jaxpr_structure(f, params, x1)
        layers, fallback = structure.groups, structure.fallback
    n_fallback = sum(math.prod(jnp.shape(leaves[i])) for i in fallback)
    # One forward pass and K activation-only backward passes per example; patches and
    # cotangents written.
    cost = out_pass
    side_elems = 0.0  # per example: patches and cotangents written
    kept_elems = 0.0  # per example: those kept for the X X'^T contractions
    transient = 0.0  # per example: what one pass computing the factors holds at its peak
    grad_width = n_fallback  # columns of the per-example gradients
    row_elems = n2 * k * k  # per row of x1: the output block
    modes = []
    weight_perts = set() if structure is None else {
        structure.sites[i].pert for g in layers if g.kind == "weight" for i in g.sites}
    for layer in layers:
        if getattr(layer, "kind", "weight") != "weight":
            # A bias or a leaf used in several ways (jaxpr path): per-example gradients of the
            # leaf from the cotangents of its sites (and their inputs, for mixed ones).
            modes.append("grad")
            sites = [structure.sites[i] for i in layer.sites]
            read = sum(s.out_elems for s in sites)  # cotangent elements read, per output unit
            # Cotangents not already held for a weight group (a bias after its matmul shares them).
            own = sum(structure.perts[loc].size for loc in {s.pert for s in sites} - weight_perts)
            x_elems = sum(s.positions * s.d_in for s in sites)
            cost += (2.0 * pairs * k * k * layer.size + m * nb * k * (layer.size + read)
                     + sum(2.0 * nb * k * s.out_elems * s.d_in for s in sites))
            side_elems += k * own + x_elems
            transient += 2 * k * own + x_elems + k * layer.size
            grad_width += layer.size
            continue
        options = _layer_modes(layer, n1, n2, same, k)
        mode = min(options, key=lambda name: options[name][0])
        modes.append(mode)
        cost += options[mode][0]
        row_elems = max(row_elems, options[mode][1])
        elems = layer.positions * (layer.d_in + k * layer.d_out)
        side_elems += elems
        transient += elems + layer.positions * k * layer.d_out  # and a transposed copy of G
        if mode == "grad":
            grad_width += layer.d_in * layer.d_out
        else:
            kept_elems += elems
        if getattr(layer, "bias", False):
            grad_width += layer.d_out
            cost += 2.0 * pairs * k * k * layer.d_out + m * nb * k * layer.d_out
    if layers:
        cost += nb * fwd * (1 + _BACKWARD * k) + m * nb * side_elems
        # The backward pass through a layer holds K cotangents of its input (patches).
        transient += max(k * layer.positions * layer.d_in for layer in layers)
    if fallback:
        cost += nb * fwd * (1 + _BACKWARD_PARAMS * k) + m * nb * k * n_fallback + 2.0 * pairs * k * k * n_fallback
        transient += k * n_fallback
    chunk_elems = min(_CHUNK_ELEMENTS, budget // (8 * item))
    chunk = int(max(1, min(n1, chunk_elems // max(row_elems, 1))))
    side_chunk = int(max(1, min(max(n1, n2), min(_SIDE_CHUNK_ELEMENTS, budget // (8 * item)) // max(transient, 1))))
    mem = item * (nb * (kept_elems + k * grad_width) + min(side_chunk, max(n1, n2)) * transient
                  + chunk * row_elems + pairs * k * k)
    est["structured"] = Estimate(cost, mem)
    return est, _Plan(tuple(layers), tuple(modes), fallback, chunk, side_chunk, structure)


def choose_method(f: ApplyFn, params: PyTree, x1: Array, x2: Array | None = None, *, batch_size: int | None = 16,
                  memory_limit: int | None = None) -> str:
    """The method ``ntk(..., method='auto')`` uses for these shapes (no timing, nothing compiled).

    Among the methods whose estimated peak memory fits ``memory_limit`` (bytes; default half the
    accelerator's memory or a quarter of the host's RAM), the one of least estimated cost;
    ``'implicit'`` (the least memory) when none fits. ``'structured'`` is a candidate for every
    f (a :class:`ModelFn`'s flax layers, any other function's jaxpr); its estimate counts the
    leaves it leaves to per-example Jacobians.
    """
    n2 = x1.shape[0] if x2 is None else x2.shape[0]
    budget = _memory_budget() if memory_limit is None else memory_limit
    est, _ = _analyse(f, params, x1, n2, x2 is None, batch_size, _structured_ok(f), budget)
    return _pick(est, budget)


def ntk_estimates(f: ApplyFn, params: PyTree, x1: Array, x2: Array | None = None, *,
                  batch_size: int | None = 16) -> dict[str, Estimate]:
    """``{method: Estimate(cost, bytes)}``: the cost model behind ``method='auto'``."""
    n2 = x1.shape[0] if x2 is None else x2.shape[0]
    return _analyse(f, params, x1, n2, x2 is None, batch_size, _structured_ok(f), _memory_budget())[0]


def _structured_ok(f) -> bool:
    # Every evaluation-mode f: a ModelFn's flax layers, any other function's jaxpr.
    return not (isinstance(f, ModelFn) and f.train)


def _pick(est: dict[str, Estimate], budget: int) -> str:
    fits = [m for m in est if est[m].bytes <= budget]
    if not fits:
        return "implicit"
    return min(fits, key=lambda m: est[m].cost)


# ---------------------------------------------------------------------------------------------
# The three methods
# ---------------------------------------------------------------------------------------------
def _group(parts: list[Array], alone: float) -> list[Array]:
    """Per-example gradient blocks (N, K, q) -> fewer blocks: those narrower than ``alone`` columns
    concatenated into one (one matmul instead of many small ones), wider ones kept apart (copying
    them would cost more than adding their own (n1, n2, K, K) product)."""
    small = [a for a in parts if a.shape[-1] < alone]
    big = [a for a in parts if a.shape[-1] >= alone]
    return big + ([jnp.concatenate(small, axis=-1)] if len(small) > 1 else small)


def _acc(a: Array):
    # Sums of products accumulate in at least float32 (bfloat16 / float16 models).
    return jnp.promote_types(a.dtype, jnp.float32)


class _Pairs(NamedTuple):
    """How the output axes of f(x1) and f(x2) pair up in every contraction (einsum letters; i, j
    the examples; p, q, c, d, the contracted axes, never used here).

    The default, :data:`_FULL`, keeps the flattened K axis on both sides: terms (n1, K, n2, K)
    (a matmul's natural layout), transposed once at the end. With ``trace_axes`` /
    ``diagonal_axes`` each side's K axis is unflattened to f's output axes, a traced axis gets
    one letter on both sides and is summed inside every contraction, a diagonal axis one letter
    kept once, so no term is ever larger than the reduced kernel: terms (n1, n2, *rest); the end
    applies the example axis's trace or diagonal, neural-tangents' layout and the division by
    the traced sizes.
    """

    a: str  # letters of f(x1)'s output axes after the first
    b: str  # letters of f(x2)'s
    out: str  # each term's letters
    dims: tuple[int, ...] | None  # the output axes K is unflattened to; None: K flat
    final: str | None  # einsum from ``out`` to the result (None: the transpose of _FULL)
    traced: tuple[int, ...]  # traced axes of f's output (0: the examples)


_FULL = _Pairs("a", "b", "iajb", None, None, ())


def _pairs(out_shape: tuple, trace_axes: tuple | None, diagonal_axes: tuple | None) -> _Pairs:
    """The :class:`_Pairs` of neural-tangents' ``trace_axes`` / ``diagonal_axes`` (canonical,
    sorted) on an output of shape ``out_shape`` (axis 0 the examples); ``None``: :data:`_FULL`."""
    if trace_axes is None:
        return _FULL
    nd = len(out_shape)
    pool = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZefghklmnorstuvwxyz")
    left = ["i"] + [next(pool) for _ in range(nd - 1)]
    right = ["j"] + [next(pool) for _ in range(nd - 1)]
    reduced = set(trace_axes) | set(diagonal_axes)
    for r in reduced:
        if r > 0:
            right[r] = left[r]
    inner = "".join(left[r] + ("" if r in reduced else right[r]) for r in range(1, nd) if r not in trace_axes)
    out = "ij" + inner
    # The end: the example axis's own trace/diagonal (i = j), then neural-tangents' layout: the
    # remaining axes in pairs (N1, N2, X, X', ...), each diagonal axis once at its place
    # (neural-tangents' _get_res_batch_dims).
    if 0 in reduced:
        right[0] = "i"
    start = left[0] + right[0] + inner
    paired = [c for r in range(nd) if r not in reduced for c in (left[r], right[r])]
    places = [2 * d - n - 2 * sum(c < d for c in trace_axes) for n, d in enumerate(diagonal_axes)]
    result: list = [None] * (len(paired) + len(diagonal_axes))
    for pos, d in zip(places, diagonal_axes):
        result[pos] = left[d]
    rest = iter(paired)
    result = [c if c is not None else next(rest) for c in result]
    return _Pairs("".join(left[1:]), "".join(right[1:]), out, tuple(out_shape[1:]), start + "->" + "".join(result),
                  tuple(trace_axes))


def _sides(pairs: _Pairs, a: Array, b: Array, axis: int = 1) -> tuple[Array, Array]:
    """Both sides' K axis (at ``axis``) unflattened to the output axes (nothing for :data:`_FULL`)."""
    if pairs.dims is None:
        return a, b
    return tuple(t.reshape(t.shape[:axis] + pairs.dims + t.shape[axis + 1:]) for t in (a, b))


def _finish(pairs: _Pairs, theta: Array) -> Array:
    """The contracted kernel (``pairs.out`` layout) as the result: (N1, N2, K, K) for
    :data:`_FULL`, else neural-tangents' layout with the traces divided by their sizes."""
    if pairs.final is None:
        return jnp.transpose(theta, (0, 2, 1, 3))
    size = math.prod(([theta.shape[0]] if 0 in pairs.traced else []) + [pairs.dims[r - 1] for r in pairs.traced if r > 0])
    return jnp.einsum(pairs.final, theta) / size


def _gram(j1: list[Array], j2: list[Array], pairs: _Pairs = _FULL) -> Array | None:
    """sum over blocks of J1 J2^T: (n1, K, q) x (n2, K, q) -> (n1, K, n2, K), a matmul's natural
    layout (the result is transposed once, at the end); other :class:`_Pairs`: their layout."""
    out = None
    for a, b in zip(j1, j2):
        a, b = _sides(pairs, a, b)
        term = jnp.einsum(f"i{pairs.a}q,j{pairs.b}q->{pairs.out}", a, b, preferred_element_type=_acc(a))
        out = term if out is None else out + term
    return out


def _per_example_jacobian(f: ApplyFn, params: PyTree, x: Array, leaf_idx: tuple[int, ...]) -> list[Array]:
    """[(N, K, q_l)]: d f_a(x_n) / d (leaf l of ``leaf_idx``, flattened), one example at a time."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    sub = [leaves[i] for i in leaf_idx]

    def g(sub, xi):
        full = list(leaves)
        for i, v in zip(leaf_idx, sub):
            full[i] = v
        return _as_2d(f(jax.tree_util.tree_unflatten(treedef, full), xi[None]))[0]

    # vmap over examples: each Jacobian row is one example's backward pass (jacrev of the whole
    # batch would run every backward pass through all N examples).
    jac = jax.vmap(jax.jacrev(g), in_axes=(None, 0))(sub, x)
    return [j.reshape(j.shape[:2] + (-1,)) for j in jac]


def _side(f: ModelFn | ApplyFn, params: PyTree, x: Array, plan: _Plan, k: int, alone: float):
    """Per-example factors of one batch: per-example gradient blocks [(N, K, q)] (see
    :func:`_group`) and [(X (N, P, d_in), G (N, K, P, d_out))] of the layers contracted through
    X X'^T; computed in chunks of at most ``plan.side_chunk`` examples."""
    n = x.shape[0]
    n_chunks = -(-n // plan.side_chunk)
    if n_chunks == 1:
        parts, grams = _side_block(f, params, x, plan, k)
    else:
        c = -(-n // n_chunks)
        xs = jnp.pad(x, [(0, n_chunks * c - n)] + [(0, 0)] * (x.ndim - 1)).reshape((n_chunks, c) + x.shape[1:])
        parts, grams = jax.lax.map(lambda xc: _side_block(f, params, xc, plan, k), xs)
        parts, grams = jax.tree_util.tree_map(lambda a: a.reshape((n_chunks * c,) + a.shape[2:])[:n], (parts, grams))
    return _group(parts, alone), grams


def _side_block(f: ModelFn | ApplyFn, params: PyTree, x: Array, plan: _Plan, k: int):
    """:func:`_side` for one chunk of examples, the per-example gradients not yet grouped."""
    n = x.shape[0]
    parts, grams = [], []
    if plan.structure is not None:
        if plan.layers:
            parts, grams = _jaxpr_side_block(plan.structure, plan.modes, params, x, k)
            parts, grams = list(parts), list(grams)
        if plan.fallback:
            parts.extend(_per_example_jacobian(f, params, x, plan.fallback))
        return parts, grams
    if plan.layers:
        perts = {key: jnp.zeros((n,) + tail, layer.dtype)
                 for layer in plan.layers for key, tail in zip(layer.keys, layer.out_tails)}

        def run(pt):
            inputs = {}
            with nn.intercept_methods(_interceptor(inputs, pt)):
                out = _as_2d(f(params, x))
            return out, {key: inputs[key] for key in pt}

        out, pullback, xs = jax.vjp(run, perts, has_aux=True)
        # Cotangent e_a on every example: examples are independent, so row n of the result is
        # d f_a(x_n) / d y(x_n).
        cts = jnp.broadcast_to(jnp.eye(k, dtype=out.dtype)[:, None, :], (k, n, k))
        (gs,) = jax.vmap(pullback)(cts)
        for layer, mode in zip(plan.layers, plan.modes):
            xl = jnp.concatenate([xs[key] for key in layer.keys], axis=1).astype(out.dtype)
            gl = jnp.concatenate([gs[key].reshape(k, n, -1, layer.d_out) for key in layer.keys], axis=2)
            gl = jnp.moveaxis(gl, 0, 1)  # (N, K, P, d_out)
            if mode == "grad":
                parts.append(jnp.einsum("npc,nkpd->nkcd", xl, gl, preferred_element_type=_acc(xl)).reshape(n, k, -1))
            else:
                grams.append((xl, gl))
            if layer.bias:
                parts.append(gl.sum(2))
    if plan.fallback:
        parts.extend(_per_example_jacobian(f, params, x, plan.fallback))
    return parts, grams


def _contract(side1, side2, modes: tuple[str, ...], pairs: _Pairs = _FULL) -> Array:
    """Theta block (n1, K, N2, K) (``pairs.out`` layout) from the factors of rows of x1 and of all of x2."""
    j1, grams1 = side1
    j2, grams2 = side2
    out = _gram(j1, j2, pairs)
    a, b, o = pairs.a, pairs.b, pairs.out
    for (x1, g1), (x2, g2), mode in zip(grams1, grams2, modes):
        g1, g2 = _sides(pairs, g1, g2)
        if x1.shape[1] == 1:  # one position (a dense layer): (X X'^T) times (G_a G'_b^T)
            xx = jnp.einsum("ic,jc->ij", x1[:, 0], x2[:, 0], preferred_element_type=_acc(x1))
            xx = xx[:, None, :, None] if o == "iajb" else xx.reshape(xx.shape + (1,) * (len(o) - 2))
            term = jnp.einsum(f"i{a}d,j{b}d->{o}", g1[..., 0, :], g2[..., 0, :], preferred_element_type=_acc(g1)) * xx
        elif mode == "gram":
            xx = jnp.einsum("ipc,jqc->ijpq", x1, x2, preferred_element_type=_acc(x1))
            t = jnp.einsum(f"ijpq,i{a}pd->i{a}jqd", xx, g1, preferred_element_type=_acc(xx))
            term = jnp.einsum(f"i{a}jqd,j{b}qd->{o}", t, g2, preferred_element_type=_acc(t))
        else:
            xx = jnp.einsum("ipc,jqc->ijpq", x1, x2, preferred_element_type=_acc(x1))
            both = "i" + a + "j" + "".join(c for c in b if c not in a) + "pq"
            gg = jnp.einsum(f"i{a}pd,j{b}qd->{both}", g1, g2, preferred_element_type=_acc(g1))
            term = jnp.einsum(f"ijpq,{both}->{o}", xx, gg, preferred_element_type=_acc(xx))
        out = term if out is None else out + term
    return out


def _ntk_structured(f, params, x1, x2, plan: _Plan, k: int, pairs: _Pairs = _FULL) -> Array:
    n2 = x1.shape[0] if x2 is None else x2.shape[0]
    if not plan.layers and not plan.fallback:  # no parameter enters f
        dtype = jax.eval_shape(f, _abstract(params), jax.ShapeDtypeStruct((1,) + tuple(x1.shape[1:]), x1.dtype)).dtype
        return _finish(pairs, jnp.zeros(_term_shape(pairs, x1.shape[0], n2, k), dtype))
    alone = _alone(x1.shape[0], n2, x2 is None, k)
    side1 = _side(f, params, x1, plan, k, alone)
    side2 = side1 if x2 is None else _side(f, params, x2, plan, k, alone)
    gram_modes = tuple(m for m in plan.modes if m != "grad")
    n1 = x1.shape[0]
    if plan.chunk >= n1:
        return _finish(pairs, _contract(side1, side2, gram_modes, pairs))
    # Rows of x1 in chunks, to bound the X X'^T intermediates; the x2 factors are computed once.
    c = plan.chunk
    pad = (-n1) % c

    def split(a):
        a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
        return a.reshape((-1, c) + a.shape[1:])

    blocks = jax.lax.map(lambda s: _contract(s, side2, gram_modes, pairs), jax.tree_util.tree_map(split, side1))
    return _finish(pairs, blocks.reshape((-1,) + blocks.shape[2:])[:n1])


def _term_shape(pairs: _Pairs, n1: int, n2: int, k: int) -> tuple[int, ...]:
    """The shape of a contraction's result in ``pairs.out`` layout."""
    if pairs.dims is None:
        return (n1, k, n2, k)
    size = dict(zip(pairs.a + pairs.b, pairs.dims + pairs.dims), i=n1, j=n2)
    return tuple(size[c] for c in pairs.out)


def _ntk_jacobian(f, params, x1, x2, k, pairs: _Pairs = _FULL) -> Array:
    idx = tuple(range(len(jax.tree_util.tree_leaves(params))))
    alone = _alone(x1.shape[0], x1.shape[0] if x2 is None else x2.shape[0], x2 is None, k)
    j1 = _group(_per_example_jacobian(f, params, x1, idx), alone)
    j2 = j1 if x2 is None else _group(_per_example_jacobian(f, params, x2, idx), alone)
    return _finish(pairs, _gram(j1, j2, pairs))


def _alone(n1: int, n2: int, same: bool, k: int) -> float:
    # Copying a block costs (n1 + n2) K q; contracting it alone adds an (n1, n2, K, K) sum.
    return n1 * n2 * k / (n1 + (0 if same else n2))


def _ntk_implicit(f, params, x1, x2, batch_size, k, pairs: _Pairs = _FULL) -> Array:
    x2 = x1 if x2 is None else x2

    def f2(p, x):
        return _as_2d(f(p, x))

    def push(p_tangent):
        # J(x2) v for a parameter-space vector v: (N2, K).
        return jax.jvp(lambda p: f2(p, x2), (params,), (p_tangent,))[1]

    def row(x):
        # Theta(x, x2): (K, N2, K); one vjp per output of x, each pushed through jvp.
        out, pullback = jax.vjp(lambda p: f2(p, x[None])[0], params)
        tangents = jax.vmap(lambda c: pullback(c)[0])(jnp.eye(k, dtype=out.dtype))
        block = jax.vmap(push)(tangents)
        if pairs.dims is None:
            return block
        # Reduced at once, row by row: (K, N2, K) -> the row of pairs.out.
        block = block.reshape(pairs.dims + block.shape[1:2] + pairs.dims)
        return jnp.einsum(f"{pairs.a}j{pairs.b}->{pairs.out[1:]}", block)

    rows = jax.lax.map(row, x1, batch_size=batch_size) if batch_size else jax.vmap(row)(x1)
    return _finish(pairs, rows)  # (N1, K, N2, K) -> (N1, N2, K, K)


def _ntk(f, state, params, x1, x2, method, batch_size, memory_limit, trace_axes, diagonal_axes):
    if state is not None:  # a ModelFn's variable collections, passed traced
        f = dataclasses.replace(f, state=state)
    n2 = x1.shape[0] if x2 is None else x2.shape[0]
    out = jax.eval_shape(f, _abstract(params), jax.ShapeDtypeStruct((1,) + tuple(x1.shape[1:]), x1.dtype))
    k = math.prod(out.shape[1:]) if len(out.shape) > 1 else 1
    plan = None
    if method in ("auto", "structured"):
        budget = _memory_budget() if memory_limit is None else memory_limit
        est, plan = _analyse(f, params, x1, n2, x2 is None, batch_size, _structured_ok(f), budget)
        if method == "auto":
            method = _pick(est, budget)
    pairs = _pairs(out.shape, trace_axes, diagonal_axes)
    if method == "structured":
        theta = _ntk_structured(f, params, x1, x2, plan, k, pairs)
    elif method == "jacobian":
        theta = _ntk_jacobian(f, params, x1, x2, k, pairs)
    else:
        theta = _ntk_implicit(f, params, x1, x2, batch_size, k, pairs)
    if pairs is not _FULL:
        return theta
    return theta[..., 0, 0] if len(out.shape) == 1 else theta


_ntk_jit = jax.jit(_ntk, static_argnames=("f", "method", "batch_size", "memory_limit", "trace_axes", "diagonal_axes"))


def _canonical_axes(name: str, axes, ndim: int) -> tuple[int, ...]:
    """Sorted non-negative output axes (neural-tangents' canonicalisation), validated."""
    items = (axes,) if isinstance(axes, (int, np.integer)) else axes
    try:
        items = tuple(items)
    except TypeError:
        raise ValueError(f"{name} must be an int or a sequence of ints (axes of f's output), got {axes!r}") from None
    out = set()
    for a in items:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not -ndim <= a < ndim:
            raise ValueError(f"{name} must hold axes of f's output, ints in [{-ndim}, {ndim}), got {axes!r}")
        out.add(int(a) % ndim)
    return tuple(sorted(out))


def ntk(f: ApplyFn, params: PyTree, x1: Array, x2: Array | None = None, *, method: str = "auto",
        batch_size: int | None = 16, memory_limit: int | None = None, trace_axes=None, diagonal_axes=None) -> Array:
    """The empirical NTK between two batches of inputs.

    Jitted once per shapes and ``f``: ``f`` keys the compilation cache by hash and equality, so
    :func:`apply_fn` of the same model hits it again, while a new lambda compiles anew (an
    unhashable ``f`` is traced without the cache). Works under ``jit`` and ``vmap``.

    Args:
        f: ``f(params, x) -> (N,)`` or ``(N, ...)``: any JAX function, or :func:`apply_fn` of a
            flax model (whose layers the structured method then reads directly). Examples must be
            independent (f(x)[n] depends on x[n] only).
        params: the parameters (any pytree).
        x1: (N1, ...) inputs.
        x2: (N2, ...) inputs; default ``x1`` (then its factors are computed once).
        method: ``'auto'`` (:func:`choose_method`), ``'structured'`` (dense-like contractions,
            see the module docstring), ``'jacobian'`` (per-example Jacobians contracted) or
            ``'implicit'`` (vjp then jvp, no full Jacobian; least memory).
        batch_size: rows of x1 processed together by the implicit method (``None``: all at once).
        memory_limit: bytes ``'auto'`` lets a method hold (default: see :func:`choose_method`);
            the structured method also sizes its chunks of rows of x1 to an eighth of it.
        trace_axes, diagonal_axes: output axes of f (0 = the example axis; negative from the
            end, so -1 is the example axis of an (N,) output) to trace over / keep only the
            diagonal of, with neural-tangents' meaning and layout (``empirical_ntk_fn``): a traced
            pair of axes is summed over its diagonal and divided by its size. Output axes after
            the first are reduced inside every contraction (the structured and Jacobian methods
            never form the full kernel; the implicit one reduces each row's (K, N2, K) block);
            the example axis at the end. ``None`` for both (the default): the layout below, no
            reduction; giving either (``()`` for none) selects neural-tangents' layout, e.g.
            ``trace_axes=(), diagonal_axes=()`` on an (N, X, Y) output gives (N1, N2, X, X, Y, Y).

    Returns:
        Default: (N1, N2) for a single-output model (f returns (N,)), else (N1, N2, K, K), K the
        product of f's output axes after the first, with ``[i, j, a, b] = sum_p df_a(x1_i)/dp
        df_b(x2_j)/dp``. With ``trace_axes`` / ``diagonal_axes``: neural-tangents' shape, e.g.
        (N1, N2) for ``trace_axes=(-1,)`` on an (N, K) output (the mean over a of [i, j, a, a]).
    """
    if method not in _METHOD_CHOICES:
        raise ValueError(f"method must be one of {_METHOD_CHOICES}, got {method!r}")
    if isinstance(f, ModelFn) and f.train:
        raise ValueError("f must be an evaluation-mode f(params, x); got a training-mode apply_fn(model, train=True), "
                         "which needs a dropout key")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if memory_limit is not None and (not isinstance(memory_limit, (int, np.integer)) or memory_limit < 0):
        raise ValueError(f"memory_limit must be a number of bytes >= 0 or None, got {memory_limit!r}")
    if jnp.ndim(x1) < 1 or jnp.shape(x1)[0] < 1:
        raise ValueError(f"x1 must have a leading example axis of length >= 1, got shape {jnp.shape(x1)}")
    if x2 is not None and (jnp.ndim(x2) != jnp.ndim(x1) or jnp.shape(x2)[1:] != jnp.shape(x1)[1:] or jnp.shape(x2)[0] < 1):
        raise ValueError(f"x2 must have shape (N2,) + {tuple(jnp.shape(x1)[1:])} like x1's examples, got {jnp.shape(x2)}")
    x1 = jnp.asarray(x1)
    x2 = None if x2 is None else jnp.asarray(x2)
    batch_size = None if batch_size is None else int(batch_size)
    if trace_axes is not None or diagonal_axes is not None:
        ndim = len(jax.eval_shape(f, params, jax.ShapeDtypeStruct((1,) + tuple(x1.shape[1:]), x1.dtype)).shape)
        trace_axes = _canonical_axes("trace_axes", () if trace_axes is None else trace_axes, ndim)
        diagonal_axes = _canonical_axes("diagonal_axes", () if diagonal_axes is None else diagonal_axes, ndim)
        if set(trace_axes) & set(diagonal_axes):
            raise ValueError(f"trace_axes {trace_axes} and diagonal_axes {diagonal_axes} must not share an axis")
        if 0 in trace_axes + diagonal_axes and x2 is not None and x2.shape[0] != x1.shape[0]:
            raise ValueError(f"trace_axes / diagonal_axes hold the example axis 0: x1 and x2 need as many examples, "
                             f"got {x1.shape[0]} and {x2.shape[0]}")
    state = None
    if isinstance(f, ModelFn) and f.state is not None:  # arrays: traced, not part of the cache key
        f, state = dataclasses.replace(f, state=None), f.state
    args = (method, batch_size, memory_limit, trace_axes, diagonal_axes)
    try:
        hash(f)
    except TypeError:  # an unhashable callable cannot key the compilation cache: trace inline
        return _ntk(f, state, params, x1, x2, *args)
    return _ntk_jit(f, state, params, x1, x2, method=method, batch_size=batch_size, memory_limit=memory_limit,
                    trace_axes=trace_axes, diagonal_axes=diagonal_axes)


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
