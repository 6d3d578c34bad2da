"""Infinite-width NNGP and NTK kernels, from layer descriptions that also build the finite network.

A network is a :func:`serial` composition of layer descriptions (frozen dataclasses):

* :class:`Dense` ``(out_dim, W_std, b_std, parametrization)``: a fully connected layer acting on
  the channel (last) axis;
* :class:`Conv` ``(out_chan, kernel_size, padding, W_std, b_std, parametrization)``: a stride-1
  1-D or 2-D convolution, ``'VALID'`` or ``'SAME'`` padding (lo = (k-1)//2, as lax and flax);
* activations: :class:`Relu` and :class:`Erf` (closed forms), :class:`Elu` and
  :class:`Elementwise` (any elementwise function; Gauss-Hermite quadrature of configurable order);
* :class:`Flatten`, :class:`GlobalAvgPool`, :class:`AdaptiveAvgPool` (PyTorch's adaptive average
  pool; what :class:`~jaxdyn.models.DenseSampleVGG` uses).

``net = serial(*layers)`` gives one source of truth for a model and its kernels (neural-tangents'
``stax`` idea, written anew here): ``net.init_fn(key, input_shape)``, ``net.apply_fn(params, x)``
(the finite network, widths from ``out_dim`` / ``out_chan``) and ``net.kernel_fn(x1, x2)`` (the
infinite-width kernels). :func:`from_model` converts jaxdyn's models (:class:`DeepLinear`,
:class:`RBEConvNet`, :class:`RBEConvNet2D`, :class:`DenseSampleVGG`) to their descriptions with the
initialisation they actually use; :func:`linear_chain_kernels` is the exact expected NNGP and NTK
of a deep linear chain at any finite width.

Conventions (the same as neural-tangents 0.6.5's ``stax``, checked against it in
benchmarks/bench_kernels.py):

* The input kernel is ``x . x' / C`` (per position, averaged over the C input channels), so a
  first layer with ``W_std = 1`` has weight variance ``1 / fan_in``.
* ``parametrization='ntk'``: ``z = W_std / sqrt(fan_in) * x @ w + b_std * b`` with ``w, b ~ N(0, 1)``;
  the kernels do not depend on the widths. ``'standard'``: ``z = x @ W + b`` with
  ``W ~ N(0, W_std^2 / fan_in)``, ``b ~ N(0, b_std^2)`` -- flax's default ``lecun_normal`` kernels
  and zero biases are ``W_std = 1, b_std = 0`` in this parametrisation. The NNGP is the same in
  both. The NTK of standard parametrisation grows with the widths (the gradient with respect to
  a layer's weights is not scaled by 1 / sqrt(fan_in)), so it has no finite infinite-width limit;
  like neural-tangents, the kernel then keeps each layer's *finite* fan-in as a factor,
  ``Theta_l = fan_in_l * Sigma_{l-1} + W_std^2 Theta_{l-1} (+ 1 with a bias)``, where the Sigma are
  the infinite-width covariances. The result is the expectation of the empirical NTK over
  initialisations up to corrections of order 1 / width, the quantity that the empirical NTK of
  a network with those widths fluctuates around.
* ``parametrization='ntk_scaled_input'``: ``z = x @ W / sqrt(fan_in) + b`` with
  ``W ~ N(0, W_std^2)`` and ``b ~ N(0, b_std^2)`` (jaxdyn's ``RBEConvNet(parametrization='ntk')``:
  the 1 / sqrt(fan_in) scales the layer's input, the initialisation's scale stays in the
  weights). The NNGP is again the same; the gradient with respect to the weights is
  ``x / sqrt(fan_in)``, so the NTK's weight term is the layer's input kernel without the
  ``W_std^2`` of NTK parametrisation, ``Theta_l = L(Sigma_{l-1}) + W_std^2 L(Theta_{l-1})
  (+ 1 with a bias)``, finite at infinite width; a bias, entering as ``+ b``, adds 1 per layer as
  in standard parametrisation.
* ``b_std=None``: no bias. ``b_std=0``: a bias initialised at zero; it adds nothing to the NNGP,
  and to the NTK it adds 1 per layer in standard and ``ntk_scaled_input`` parametrisation, nothing
  in NTK parametrisation (there the bias enters as ``b_std * b``).
* A network with several outputs (``Dense(K)`` last) has kernels ``delta_ab K(x, x')``: the
  returned ``(N1, N2)`` array is the kernel of each output unit.
* Zero-variance pre-activations (e.g. a window of zeros in the RBE net, whose biases start at
  zero) are a point mass at 0; the activation's derivative there is the one JAX uses (ReLU:
  0, as ``jax.nn.relu``), i.e. the kernel is the limit of the network that JAX differentiates.
  neural-tangents' ReLU kernel uses 1/4 there, and its quadrature divides 0 by 0.

Cost: a network ending in :class:`Flatten` needs only the kernel between equal positions of
the two inputs (the "diagonal" in space, ``(N1, N2, *spatial)`` per layer); any pooling layer
needs all pairs of positions, ``(N1, N2, *spatial, *spatial)``. :meth:`Serial.kernel_fn` picks
the cheaper form from the description, and computes the ``(N1, N2)`` result in blocks of
``block_size`` examples of each side (one jitted function per block shape), so memory stays
``block_size^2 * positions`` per layer; with ``x2=None`` only the blocks on and above the
diagonal are computed. Quadrature layers cost ``order^2`` function evaluations per pair of
inputs and position (:class:`Elu`: ``order + 1`` exponentials and ``order^2`` products); they
are evaluated in a loop over one node axis, holding at most ``order x block_size^2 x
positions`` values at a time, never the ``order x order`` grid. Measured against
neural-tangents 0.6.5 (benchmarks/RESULTS.md, section 5): the same numbers to float32 rounding;
RBE-like ELU nets 5-7x faster, closed-form (ReLU/erf) nets up to 1.5-3.7x slower at
N = 256-1024.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

PARAMETRIZATIONS = ("ntk", "standard", "ntk_scaled_input")
"""The parametrisations a kernel layer accepts: neural-tangents' NTK one, the standard one, and
the NTK parametrisation with the initialisation's scale in the weights (module docstring)."""
PADDINGS = ("VALID", "SAME")
"""The convolution paddings the kernel layers accept."""
KERNEL_NAMES = ("nngp", "ntk")
"""The kernels a :class:`Kernels` holds: the NNGP (forward covariance) and the NTK."""
DEFAULT_ORDER = 25  # neural-tangents' suggested start for smooth functions; ELU: see Elu
"""Gauss-Hermite quadrature order of the elementwise layers without a closed form."""


class Kernels(NamedTuple):
    """The infinite-width kernels of a network between two sets of inputs.

    Attributes:
        nngp: ``(N1, N2)`` NNGP covariance ``E[f(x1_i) f(x2_j)]`` of one output unit, or None if
            not requested.
        ntk: ``(N1, N2)`` neural tangent kernel of one output unit, or None if not requested.
    """

    nngp: Array | None
    ntk: Array | None


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------
def _check_std(name: str, value: Any, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or float(value) < 0:
        extra = " or None (no bias)" if allow_none else ""
        raise ValueError(f"{name} must be a finite float >= 0{extra}, got {value!r}")


def _check_pos_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Layer descriptions
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Dense:
    """Fully connected layer on the last (channel) axis; applied per position on spatial inputs.

    Attributes:
        out_dim: output width of the finite network (used by the kernel only in standard
            parametrisation, as the next layer's fan-in).
        W_std: the weights' scale: their standard deviation times sqrt(fan_in) (standard), the
            factor of N(0, 1) weights (ntk), their standard deviation (ntk_scaled_input).
        b_std: bias standard deviation; None for no bias.
        parametrization: ``'ntk'``, ``'standard'`` or ``'ntk_scaled_input'`` (module docstring).
    """

    out_dim: int
    W_std: float = 1.0
    b_std: float | None = None
    parametrization: str = "ntk"

    def __post_init__(self):
        _check_pos_int("out_dim", self.out_dim)
        _check_std("W_std", self.W_std, False)
        _check_std("b_std", self.b_std, True)
        _check_choice("parametrization", self.parametrization, PARAMETRIZATIONS)


@dataclasses.dataclass(frozen=True)
class Conv:
    """Stride-1 convolution over 1 or 2 spatial axes, inputs ``(N, *spatial, C)``.

    Attributes:
        out_chan: output channels of the finite network (a width, as ``Dense.out_dim``).
        kernel_size: int (1-D) or tuple of one or two ints.
        padding: ``'VALID'`` or ``'SAME'`` (zeros; lo = (k - 1) // 2 as lax and flax).
        W_std, b_std, parametrization: as :class:`Dense`; the fan-in is C * prod(kernel_size).
    """

    out_chan: int
    kernel_size: int | tuple[int, ...] = 3
    padding: str = "VALID"
    W_std: float = 1.0
    b_std: float | None = None
    parametrization: str = "ntk"

    def __post_init__(self):
        _check_pos_int("out_chan", self.out_chan)
        ks = (self.kernel_size,) if isinstance(self.kernel_size, (int, np.integer)) else self.kernel_size
        try:
            ks = tuple(ks)
        except TypeError:
            raise ValueError(f"kernel_size must be an int or a tuple of 1 or 2 ints, got {self.kernel_size!r}") from None
        if len(ks) not in (1, 2):
            raise ValueError(f"kernel_size must be an int or a tuple of 1 or 2 ints, got {self.kernel_size!r}")
        for k in ks:
            _check_pos_int("kernel_size", k)
        object.__setattr__(self, "kernel_size", tuple(int(k) for k in ks))
        _check_choice("padding", self.padding, PADDINGS)
        _check_std("W_std", self.W_std, False)
        _check_std("b_std", self.b_std, True)
        _check_choice("parametrization", self.parametrization, PARAMETRIZATIONS)

    @property
    def spatial_dims(self) -> int:
        return len(self.kernel_size)


@dataclasses.dataclass(frozen=True)
class Flatten:
    """Flatten ``(N, *spatial, C)`` to ``(N, prod(spatial) * C)`` (position-major, as Keras)."""


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool:
    """Average over all spatial positions: ``(N, *spatial, C)`` -> ``(N, C)``."""


@dataclasses.dataclass(frozen=True)
class AdaptiveAvgPool:
    """PyTorch's adaptive average pool over 1 or 2 spatial axes: ``(N, *spatial, C)`` ->
    ``(N, *output_size, C)`` (bins as ``jaxdyn.models.adaptive_pool_matrix``).

    Attributes:
        output_size: int or tuple with one entry per spatial axis (an int is used for every axis).
    """

    output_size: int | tuple[int, ...]

    def __post_init__(self):
        sizes = (self.output_size,) if isinstance(self.output_size, (int, np.integer)) else self.output_size
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(f"output_size must be an int or a tuple of ints, got {self.output_size!r}") from None
        if not sizes:
            raise ValueError(f"output_size must be an int or a tuple of ints, got {self.output_size!r}")
        for s in sizes:
            _check_pos_int("output_size", s)
        object.__setattr__(self, "output_size", tuple(int(s) for s in sizes) if len(sizes) > 1 else int(sizes[0]))

    def sizes(self, ndim: int) -> tuple[int, ...]:
        """The output size along each of ``ndim`` spatial axes."""
        s = self.output_size
        if isinstance(s, int):
            return (s,) * ndim
        if len(s) != ndim:
            raise ValueError(f"output_size {s} has {len(s)} entries for an input with {ndim} spatial axes")
        return s


class _Activation:
    """Base of the elementwise layers: ``fn`` for the finite network, and the Gaussian
    expectations the kernel needs, for (u, v) jointly Gaussian with variances q1, q2 and
    covariance k12 (arrays broadcast against each other):

    * ``pair(q1, k12, q2, want_dot) -> (E[fn(u) fn(v)], E[fn'(u) fn'(v)] or None)``;
    * ``diag(q) -> E[fn(u)^2]`` for u ~ N(0, q).
    """

    def fn(self, x: Array) -> Array:  # pragma: no cover - overridden
        """The activation applied elementwise to ``x`` (any shape), as the finite network does."""
        raise NotImplementedError

    def pair(self, q1: Array, k12: Array, q2: Array, want_dot: bool):  # pragma: no cover - overridden
        """``(E[fn(u) fn(v)], E[fn'(u) fn'(v)] or None)`` for (u, v) jointly Gaussian with
        variances q1, q2 and covariance k12 (broadcast arrays); the second only if ``want_dot``."""
        raise NotImplementedError

    def diag(self, q: Array) -> Array:  # pragma: no cover - overridden
        """``E[fn(u)^2]`` for u ~ N(0, q), elementwise over ``q``."""
        raise NotImplementedError

    def value_and_dot(self, v: Array, want_dot: bool):  # pragma: no cover - overridden
        """``(fn(v), fn'(v) or None)`` at the quadrature nodes ``v`` (the quadrature layers)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Relu(_Activation):
    """``max(x, 0)``; arc-cosine closed forms (Cho & Saul 2009). Derivative 0 at 0, as JAX."""

    def fn(self, x):
        return jax.nn.relu(x)

    def pair(self, q1, k12, q2, want_dot):
        prod = q1 * q2
        root = jnp.sqrt(jnp.maximum(prod - k12 * k12, 0.0))
        theta = jnp.arctan2(root, k12)  # in [0, pi]
        nngp = (root + (jnp.pi - theta) * k12) / (2 * jnp.pi)
        if not want_dot:
            return nngp, None
        # A point mass at 0 on either side: relu'(0) = 0 (jax.nn.relu's derivative).
        dot = jnp.where(prod > 0, (jnp.pi - theta) / (2 * jnp.pi), 0.0)
        return nngp, dot

    def diag(self, q):
        return q / 2


@dataclasses.dataclass(frozen=True)
class Erf(_Activation):
    """``erf(x)``; closed forms (Williams 1997)."""

    def fn(self, x):
        return jax.scipy.special.erf(x)

    def pair(self, q1, k12, q2, want_dot):
        denom = (1 + 2 * q1) * (1 + 2 * q2)
        nngp = (2 / jnp.pi) * jnp.arcsin(jnp.clip(2 * k12 / jnp.sqrt(denom), -1.0, 1.0))
        if not want_dot:
            return nngp, None
        dot = (4 / jnp.pi) / jnp.sqrt(jnp.maximum(denom - 4 * k12 * k12, 1e-30))
        return nngp, dot

    def diag(self, q):
        return (2 / jnp.pi) * jnp.arcsin(2 * q / (1 + 2 * q))


def _hermite(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights (weight exp(-x^2)), float64; scipy's ``roots_hermite``."""
    return np.polynomial.hermite.hermgauss(order)


def _quadrature_pair(value_and_dot, order, q1, k12, q2, want_dot):
    """``(1/pi) sum_ij w_i w_j f(a x_i) f(b x_i + c x_j)`` with ``a = sqrt(2 q1)``,
    ``b = k12 sqrt(2 / q1)``, ``c = sqrt(2 (q2 - k12^2 / q1))``: the order x order Gauss-Hermite
    rule for E[f(u) f(v)] (u = sqrt(q1) z1, v = its regression on u plus the rest), the same
    rule as neural-tangents' ``ElementwiseNumerical``, and the same for f'.

    The outer factor f(a x_i) depends on x1 alone (shape of q1), so it is computed once per
    example; the loop over i evaluates all j at once along a leading axis and contracts it with
    the weights, so at most order x (pairs x positions) values are stored, never the order x
    order grid, and the compiled size does not grow with the order.
    """
    xs, ws = (np.asarray(v, np.float64) for v in _hermite(order))
    dtype = k12.dtype
    xs_f = [float(v) for v in xs]  # weak-typed: keep k12's dtype
    q1 = jnp.maximum(q1, 0.0)
    pos = q1 > 0
    safe = jnp.where(pos, q1, 1.0)
    b = jnp.where(pos, k12 * jnp.sqrt(2.0 / safe), 0.0)
    c = jnp.sqrt(jnp.maximum(2.0 * (q2 - jnp.where(pos, k12 * k12 / safe, 0.0)), 0.0))
    b, c = jnp.broadcast_arrays(b, c)
    a = jnp.sqrt(2.0 * q1)
    outer = [value_and_dot(a * xs_f[i], want_dot) for i in range(order)]
    fa = jnp.stack([o[0] for o in outer])  # (order, *q1.shape): small
    da = jnp.stack([o[1] for o in outer]) if want_dot else None
    xs_j = jnp.asarray(xs, dtype)
    ws_j = jnp.asarray(ws, dtype)

    inner_shape = (order,) + (1,) * b.ndim

    def body(i, acc):
        s_f, s_d = acc
        # All j at once along a leading axis, reduced by a dot with the weights.
        v = (b * xs_j[i])[None] + c[None] * xs_j.reshape(inner_shape)
        fv, dv = value_and_dot(v, want_dot)
        s_f = s_f + ws_j[i] * fa[i] * jnp.tensordot(ws_j, fv, 1)
        if want_dot:
            s_d = s_d + ws_j[i] * da[i] * jnp.tensordot(ws_j, dv, 1)
        return s_f, s_d

    zero = jnp.zeros(b.shape, dtype)
    s_f, s_d = jax.lax.fori_loop(0, order, body, (zero, zero if want_dot else None))
    return s_f / jnp.pi, (s_d / jnp.pi if want_dot else None)


def _quadrature_diag(value_and_dot, order, q):
    xs, ws = (jnp.asarray(v, q.dtype) for v in _hermite(order))
    a = jnp.sqrt(2.0 * jnp.maximum(q, 0.0))
    f, _ = value_and_dot(a[None] * xs.reshape((order,) + (1,) * q.ndim), False)
    return jnp.tensordot(ws, f * f, 1) / math.sqrt(math.pi)


@dataclasses.dataclass(frozen=True)
class Elementwise(_Activation):
    """Any elementwise activation, kernels by Gauss-Hermite quadrature of ``order`` nodes per axis
    (``order^2`` evaluations of fn per pair and position; the same rule as neural-tangents'
    ``ElementwiseNumerical(fn, deg=order)``).

    The quadrature is exact for polynomials of degree < 2 order and converges fast for smooth
    functions; for functions with kinks it converges slowly (ELU's second derivative jumps at 0:
    relative error about 3e-4 to 5e-3 at order 25, 1e-4 to 1e-3 at 50, measured against order 400).

    Attributes:
        function: ``x -> fn(x)``, elementwise and jax-traceable.
        order: nodes per axis (>= 1).
        derivative: ``x -> fn'(x)``; default from ``jax.jvp`` of ``function``.
    """

    function: Callable[[Array], Array]
    order: int = DEFAULT_ORDER
    derivative: Callable[[Array], Array] | None = None

    def __post_init__(self):
        if not callable(self.function):
            raise ValueError(f"function must be a callable x -> fn(x), got {self.function!r}")
        _check_pos_int("order", self.order)
        if self.derivative is not None and not callable(self.derivative):
            raise ValueError(f"derivative must be None or a callable x -> fn'(x), got {self.derivative!r}")

    def fn(self, x):
        return self.function(x)

    def value_and_dot(self, v, want_dot):
        if not want_dot:
            return self.function(v), None
        if self.derivative is not None:
            return self.function(v), self.derivative(v)
        return jax.jvp(self.function, (v,), (jnp.ones_like(v),))

    def pair(self, q1, k12, q2, want_dot):
        return _quadrature_pair(self.value_and_dot, self.order, q1, k12, q2, want_dot)

    def diag(self, q):
        return _quadrature_diag(self.value_and_dot, self.order, q)


@dataclasses.dataclass(frozen=True)
class Elu(_Activation):
    """ELU, ``x`` for x > 0 else ``alpha (exp(x) - 1)`` (flax's ``nn.elu``), kernels by the same
    Gauss-Hermite rule as :class:`Elementwise` (see there for its accuracy). The exponential of
    each node's argument factorises, ``exp(b x_i + c x_j) = exp(b x_i) exp(c x_j)``, so up to
    order 64 a pair and position costs ``order + 1`` exponentials and ``order^2`` products
    (about 3x faster than evaluating ELU at every node; the plain rule runs where the
    factors could overflow float32, i.e. variances above ~3200 / max|node|^2).

    Attributes:
        alpha: the negative-side scale.
        order: quadrature nodes per axis.
    """

    alpha: float = 1.0
    order: int = DEFAULT_ORDER

    def __post_init__(self):
        _check_std("alpha", self.alpha, False)
        _check_pos_int("order", self.order)

    def fn(self, x):
        return jnp.where(x > 0, x, self.alpha * jnp.expm1(jnp.minimum(x, 0.0)))

    def value_and_dot(self, v, want_dot):
        neg = jnp.minimum(v, 0.0)
        if not want_dot:
            return jnp.where(v > 0, v, self.alpha * jnp.expm1(neg)), None
        e = jnp.exp(neg)
        # exp(v) - 1 instead of expm1(v): absolute error ~ 6e-8, one transcendental instead of two.
        return jnp.where(v > 0, v, self.alpha * (e - 1.0)), jnp.where(v > 0, 1.0, self.alpha * e)

    def pair(self, q1, k12, q2, want_dot):
        if self.order > _ELU_FACTORISED_MAX_ORDER:
            return _quadrature_pair(self.value_and_dot, self.order, q1, k12, q2, want_dot)
        # exp(b x_i + c x_j) = exp(b x_i) exp(c x_j): order + 1 exponentials per pair and position
        # instead of order^2 (the same rule, ~3x faster). Both exponents are at most
        # sqrt(2 q2) max|x| in size; where that could overflow float32, the plain rule runs.
        x_max = float(np.max(np.abs(_hermite(self.order)[0])))
        safe = jnp.max(q2) * 2.0 * x_max ** 2 < 80.0 ** 2
        args = (q1, k12, q2)
        return jax.lax.cond(safe, lambda a: self._pair_factorised(*a, want_dot),
                            lambda a: _quadrature_pair(self.value_and_dot, self.order, *a, want_dot), args)

    def _pair_factorised(self, q1, k12, q2, want_dot):
        xs, ws = _hermite(self.order)
        xs_f, ws_f = xs.tolist(), ws.tolist()
        dtype = k12.dtype
        q1 = jnp.maximum(q1, 0.0)
        pos = q1 > 0
        safe = jnp.where(pos, q1, 1.0)
        b = jnp.where(pos, k12 * jnp.sqrt(2.0 / safe), 0.0)
        c = jnp.sqrt(jnp.maximum(2.0 * (q2 - jnp.where(pos, k12 * k12 / safe, 0.0)), 0.0))
        b, c = jnp.broadcast_arrays(b, c)
        a = jnp.sqrt(2.0 * q1)
        outer = [self.value_and_dot(a * x, want_dot) for x in xs_f]
        fa = jnp.stack([o[0] for o in outer])
        da = jnp.stack([o[1] for o in outer]) if want_dot else None
        exp_c = jnp.stack([jnp.exp(c * x) for x in xs_f])  # (order, *block)
        xs_j, ws_j = jnp.asarray(xs, dtype), jnp.asarray(ws, dtype)
        alpha = float(self.alpha)

        def body(i, acc):
            s_f, s_d = acc
            u = b * xs_j[i]
            e_u = jnp.exp(u)
            in_f = jnp.zeros_like(u)
            in_d = jnp.zeros_like(u) if want_dot else None
            for j in range(self.order):  # unrolled: one elementwise fusion per i
                v = u + c * xs_f[j]
                p = e_u * exp_c[j]  # exp(v)
                in_f = in_f + ws_f[j] * jnp.where(v > 0, v, alpha * (p - 1.0))
                if want_dot:
                    in_d = in_d + ws_f[j] * jnp.where(v > 0, 1.0, alpha * p)
            s_f = s_f + ws_j[i] * fa[i] * in_f
            if want_dot:
                s_d = s_d + ws_j[i] * da[i] * in_d
            return s_f, s_d

        zero = jnp.zeros(b.shape, dtype)
        s_f, s_d = jax.lax.fori_loop(0, self.order, body, (zero, zero if want_dot else None))
        return s_f / jnp.pi, (s_d / jnp.pi if want_dot else None)

    def diag(self, q):
        return _quadrature_diag(self.value_and_dot, self.order, q)


_ELU_FACTORISED_MAX_ORDER = 64  # the inner sum is unrolled: keep the compiled size bounded

LAYER_TYPES = (Dense, Conv, Flatten, GlobalAvgPool, AdaptiveAvgPool, Relu, Erf, Elu, Elementwise)
"""The layer types :func:`serial` composes."""
_POOLS = (GlobalAvgPool, AdaptiveAvgPool)


# ---------------------------------------------------------------------------------------------
# The kernel algebra on one block of examples
# ---------------------------------------------------------------------------------------------
class _State(NamedTuple):
    """Kernels of one block. ``nngp``/``ntk``: (n1, n2) + spatial [+ spatial when ``full``];
    ``cov1``/``cov2``: the same per example, (n) + spatial [+ spatial]; ``channels``: finite width."""

    nngp: Array
    ntk: Array | None
    cov1: Array
    cov2: Array
    spatial: tuple[int, ...]
    channels: int
    full: bool


def _diag_of(cov: Array, spatial: tuple[int, ...], full: bool) -> Array:
    """Per-position variances (n, *spatial) of a per-example kernel."""
    if not full or not spatial:
        return cov
    p = math.prod(spatial)
    d = jnp.diagonal(cov.reshape(cov.shape[0], p, p), axis1=1, axis2=2)
    return d.reshape((cov.shape[0],) + spatial)


def _conv_positions(k: Array, nb: int, ks: tuple[int, ...], padding: str, full: bool) -> Array:
    """Mean over kernel offsets d of k[p + d (, q + d)] (the same offset for both inputs: shared
    weights); ``nb`` leading batch axes; SAME pads with zeros (the padded inputs are zero)."""
    s = len(ks)
    groups = 2 if full else 1
    if padding == "SAME":
        pads = [(0, 0)] * nb + [((kk - 1) // 2, kk - 1 - (kk - 1) // 2) for kk in ks] * groups
        k = jnp.pad(k, pads)
    sp = k.shape[nb:nb + s]
    out = tuple(n - kk + 1 for n, kk in zip(sp, ks))
    total = None
    for off in itertools.product(*(range(kk) for kk in ks)):
        sl = tuple(slice(o, o + n) for o, n in zip(off, out))
        term = k[(slice(None),) * nb + sl * groups]
        total = term if total is None else total + term
    return total / math.prod(ks)


def _affine(k: Array, w_std: float, b_std: float | None) -> Array:
    k = (w_std ** 2) * k
    return k + b_std ** 2 if b_std is not None else k


def _linear_layer(layer, st: _State, unscaled: Callable[[Array, int], Array], fan_in: int) -> _State:
    """Dense or Conv: the NNGP is ``W^2 L(Sigma) + b^2``; the NTK adds the weight-gradient term."""
    w, b = layer.W_std, layer.b_std
    l_nngp = unscaled(st.nngp, 2)
    nngp = _affine(l_nngp, w, b)
    ntk = None
    if st.ntk is not None:
        l_ntk = unscaled(st.ntk, 2)
        bias_gradient = 1.0 if b is not None else 0.0  # the gradient of a bias entering as + b
        if layer.parametrization == "ntk":
            ntk = nngp + (w ** 2) * l_ntk
        elif layer.parametrization == "ntk_scaled_input":  # the weights' gradient is x / sqrt(fan_in)
            ntk = l_nngp + (w ** 2) * l_ntk + bias_gradient
        else:  # standard: the finite fan-in stays as a factor (module docstring)
            ntk = fan_in * l_nngp + (w ** 2) * l_ntk + bias_gradient
    cov1 = _affine(unscaled(st.cov1, 1), w, b)
    cov2 = _affine(unscaled(st.cov2, 1), w, b)
    out_spatial = st.spatial
    if isinstance(layer, Conv):
        out_spatial = tuple(nngp.shape[2:2 + len(st.spatial)])
    width = layer.out_dim if isinstance(layer, Dense) else layer.out_chan
    return _State(nngp, ntk, cov1, cov2, out_spatial, width, st.full)


def _activation_layer(layer: _Activation, st: _State) -> _State:
    s = len(st.spatial)
    d1 = _diag_of(st.cov1, st.spatial, st.full)
    d2 = _diag_of(st.cov2, st.spatial, st.full)
    if st.full and s:
        ones = (1,) * s
        q1 = d1.reshape((d1.shape[0], 1) + st.spatial + ones)
        q2 = d2.reshape((1, d2.shape[0]) + ones + st.spatial)
    else:
        q1, q2 = d1[:, None], d2[None]
    nngp, dot = layer.pair(q1, st.nngp, q2, st.ntk is not None)
    ntk = None if st.ntk is None else st.ntk * dot
    if st.full and s:
        ones = (1,) * s

        def self_cov(cov, d):
            qa = d.reshape((d.shape[0],) + st.spatial + ones)
            qb = d.reshape((d.shape[0],) + ones + st.spatial)
            return layer.pair(qa, cov, qb, False)[0]

        cov1, cov2 = self_cov(st.cov1, d1), self_cov(st.cov2, d2)
    else:
        cov1, cov2 = layer.diag(st.cov1), layer.diag(st.cov2)
    return st._replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2)


def _mean_positions(k: Array, nb: int, s: int, full: bool, diagonal_only: bool) -> Array:
    if s == 0:
        return k
    if not full:
        return jnp.mean(k, axis=tuple(range(nb, nb + s)))
    p = math.prod(k.shape[nb:nb + s])
    k = k.reshape(k.shape[:nb] + (p, p))
    if diagonal_only:  # Flatten: only equal positions meet the same dense weight
        return jnp.trace(k, axis1=-2, axis2=-1) / p
    return jnp.mean(k, axis=(-2, -1))


def _pool_matrices(layer: AdaptiveAvgPool, spatial: tuple[int, ...]) -> list[np.ndarray]:
    from jaxdyn.models.layers import adaptive_pool_matrix

    return [np.asarray(adaptive_pool_matrix(n, o)) for n, o in zip(spatial, layer.sizes(len(spatial)))]


def _adaptive_pool(k: Array, nb: int, mats: list[np.ndarray], full: bool) -> Array:
    s = len(mats)
    hi = jax.lax.Precision.HIGHEST
    for g in range(2 if full else 1):
        for i, m in enumerate(mats):
            ax = nb + g * s + i
            k = jnp.moveaxis(jnp.tensordot(k, jnp.asarray(m, k.dtype), axes=([ax], [1]), precision=hi), -1, ax)
    return k


def _input_state(x1: Array, x2: Array, full: bool, want_ntk: bool) -> _State:
    """Kernels of the inputs themselves: x . x' / C per position (pair of positions if full)."""
    c = x1.shape[-1]
    spatial = tuple(x1.shape[1:-1])
    s = len(spatial)
    hi = jax.lax.Precision.HIGHEST
    if full and s:
        p = math.prod(spatial)
        a, b = x1.reshape(x1.shape[0], p, c), x2.reshape(x2.shape[0], p, c)
        nngp = jnp.einsum("ipc,jqc->ijpq", a, b, precision=hi).reshape((a.shape[0], b.shape[0]) + spatial * 2) / c
        cov1 = jnp.einsum("ipc,iqc->ipq", a, a, precision=hi).reshape((a.shape[0],) + spatial * 2) / c
        cov2 = jnp.einsum("ipc,iqc->ipq", b, b, precision=hi).reshape((b.shape[0],) + spatial * 2) / c
    else:
        nngp = jnp.einsum("i...c,j...c->ij...", x1, x2, precision=hi) / c
        cov1 = jnp.mean(x1 * x1, axis=-1)
        cov2 = jnp.mean(x2 * x2, axis=-1)
    ntk = jnp.zeros_like(nngp) if want_ntk else None
    return _State(nngp, ntk, cov1, cov2, spatial, c, bool(full and s))


def _mirror_upper(k: Array) -> Array:
    """The upper triangle (diagonal included) of a square kernel, mirrored: exactly symmetric."""
    return jnp.triu(k) + jnp.triu(k, 1).T


def _block_kernels(layers: tuple, x1: Array, x2: Array, want_ntk: bool, full: bool,
                   mirror: bool = False) -> tuple[Array, Array | None]:
    if mirror:  # x2 is x1: the upper triangle, mirrored
        nngp, ntk = _block_kernels(layers, x1, x1, want_ntk, full)
        return _mirror_upper(nngp), None if ntk is None else _mirror_upper(ntk)
    st = _input_state(x1, x2, full, want_ntk)
    for layer in layers:
        nb_ = len(st.spatial)
        if isinstance(layer, Dense):
            st = _linear_layer(layer, st, lambda k, nb: k, st.channels)
        elif isinstance(layer, Conv):
            ks, pad, full_ = layer.kernel_size, layer.padding, st.full
            st = _linear_layer(layer, st, lambda k, nb, ks=ks, pad=pad, full_=full_: _conv_positions(k, nb, ks, pad, full_),
                               st.channels * math.prod(ks))
        elif isinstance(layer, _Activation):
            st = _activation_layer(layer, st)
        elif isinstance(layer, Flatten):
            m = lambda k, nb, s_=nb_, f_=st.full: _mean_positions(k, nb, s_, f_, True)  # noqa: E731
            st = _State(m(st.nngp, 2), None if st.ntk is None else m(st.ntk, 2), m(st.cov1, 1), m(st.cov2, 1),
                        (), st.channels * math.prod(st.spatial), False)
        elif isinstance(layer, GlobalAvgPool):
            m = lambda k, nb, s_=nb_, f_=st.full: _mean_positions(k, nb, s_, f_, False)  # noqa: E731
            st = _State(m(st.nngp, 2), None if st.ntk is None else m(st.ntk, 2), m(st.cov1, 1), m(st.cov2, 1),
                        (), st.channels, False)
        elif isinstance(layer, AdaptiveAvgPool):
            mats = _pool_matrices(layer, st.spatial)
            p = lambda k, nb, m_=mats, f_=st.full: _adaptive_pool(k, nb, m_, f_)  # noqa: E731
            st = _State(p(st.nngp, 2), None if st.ntk is None else p(st.ntk, 2), p(st.cov1, 1), p(st.cov2, 1),
                        tuple(m.shape[0] for m in mats), st.channels, st.full)
        else:  # pragma: no cover - serial() validated the layers
            raise ValueError(f"unsupported layer {layer!r}")
    if st.spatial:
        raise ValueError("the network must end without spatial axes (Flatten or a pool, then Dense)")
    return st.nngp, st.ntk


_block_kernels_jit = jax.jit(_block_kernels, static_argnames=("layers", "want_ntk", "full", "mirror"))


def _diagonal_kernels(layers: tuple, x: Array, want_ntk: bool, full: bool) -> tuple[Array, Array | None]:
    """(N,) each input's kernels with itself: the one-pair block of every input, vmapped."""

    def one(xi):
        nngp, ntk = _block_kernels(layers, xi[None], xi[None], want_ntk, full)
        return nngp[0, 0], None if ntk is None else ntk[0, 0]

    return jax.vmap(one)(x)


_diagonal_kernels_jit = jax.jit(_diagonal_kernels, static_argnames=("layers", "want_ntk", "full"))


# ---------------------------------------------------------------------------------------------
# The network: init_fn, apply_fn, kernel_fn
# ---------------------------------------------------------------------------------------------
def _describe(layer) -> str:
    return type(layer).__name__


@dataclasses.dataclass(frozen=True)
class Serial:
    """A serial composition of layer descriptions (build with :func:`serial`).

    Hashable (a static jit argument), so each block shape compiles once per network.

    Attributes:
        layers: the layer descriptions, input first.
    """

    layers: tuple

    @property
    def spatial_dims(self) -> int:
        """Spatial axes the inputs must have (0 for a fully connected network)."""
        for layer in self.layers:
            if isinstance(layer, Conv):
                return layer.spatial_dims
        if any(isinstance(layer, (Flatten, *_POOLS)) for layer in self.layers):
            return -1  # any: determined by the input
        return 0

    @property
    def needs_all_position_pairs(self) -> bool:
        """True if a pooling layer mixes positions (kernels over all pairs of positions)."""
        return any(isinstance(layer, _POOLS) for layer in self.layers)

    # -- the finite network -----------------------------------------------------------------
    def _prepare_input(self, x: Array, name: str) -> Array:
        x = jnp.asarray(x)
        d = self.spatial_dims
        if x.ndim < 2:
            raise ValueError(f"{name} must have a leading example axis and at least one feature axis, got shape {x.shape}")
        if d > 0 and x.ndim == d + 1:
            x = x[..., None]  # one input channel, as the RBE models accept (N, L) and (N, H, W)
        if d >= 0 and x.ndim != d + 2:
            want = "(N, features)" if d == 0 else f"(N, {', '.join(['S'] * d)}[, C])"
            raise ValueError(f"{name} must have shape {want} for this network, got shape {x.shape}")
        return x

    def _shapes(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Per-example shapes after each layer (validates spatial sizes), input first."""
        shapes = [tuple(shape)]
        cur = tuple(shape)
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                cur = cur[:-1] + (layer.out_dim,)
            elif isinstance(layer, Conv):
                sp = cur[:-1]
                if len(sp) != layer.spatial_dims:
                    raise ValueError(f"layers[{i}] (Conv with kernel_size {layer.kernel_size}) needs "
                                     f"{layer.spatial_dims} spatial axes, got an input of per-example shape {cur}")
                if layer.padding == "VALID":
                    sp = tuple(n - k + 1 for n, k in zip(sp, layer.kernel_size))
                    if min(sp) < 1:
                        raise ValueError(f"layers[{i}]: input spatial shape {cur[:-1]} is smaller than kernel_size "
                                         f"{layer.kernel_size} with VALID padding")
                cur = sp + (layer.out_chan,)
            elif isinstance(layer, Flatten):
                cur = (math.prod(cur),)
            elif isinstance(layer, GlobalAvgPool):
                if len(cur) < 2:
                    raise ValueError(f"layers[{i}] (GlobalAvgPool) needs spatial axes, got per-example shape {cur}")
                cur = (cur[-1],)
            elif isinstance(layer, AdaptiveAvgPool):
                if len(cur) < 2:
                    raise ValueError(f"layers[{i}] (AdaptiveAvgPool) needs spatial axes, got per-example shape {cur}")
                cur = layer.sizes(len(cur) - 1) + (cur[-1],)
            shapes.append(cur)
        if len(cur) != 1:
            raise ValueError(f"the network ends with per-example shape {cur}; end with Flatten or GlobalAvgPool "
                             "and a Dense readout")
        return shapes

    def init_fn(self, key: Array, input_shape: Sequence[int]) -> tuple[tuple[int, ...], tuple]:
        """Random parameters of the finite network.

        Args:
            key: PRNG key.
            input_shape: ``(N, ...)`` or the per-example shape; the leading axis is dropped if
                its length is given (any value) together with all feature axes.

        Returns:
            ``(output_shape, params)``: the per-example output shape and one dict per layer
            (``{'W': ..., 'b': ...}`` for Dense/Conv, ``{}`` otherwise). Weights
            ``(fan-in axes..., out)`` as flax; NTK parametrisation stores N(0, 1) entries and
            scales in ``apply_fn``, standard stores them with variance W_std^2 / fan_in,
            ``ntk_scaled_input`` with variance W_std^2 (biases with b_std^2).
        """
        shape = tuple(int(s) for s in input_shape)
        d = self.spatial_dims
        if d >= 0 and len(shape) == d + 2:
            shape = shape[1:]
        elif d > 0 and len(shape) == d:  # (*spatial) without channels
            shape = shape + (1,)
        shapes = self._shapes(shape)
        params = []
        keys = jax.random.split(key, len(self.layers))
        for layer, k, shp in zip(self.layers, keys, shapes[:-1]):
            if isinstance(layer, (Dense, Conv)):
                kw, kb = jax.random.split(k)
                fan_shape = (shp[-1],) if isinstance(layer, Dense) else layer.kernel_size + (shp[-1],)
                out = layer.out_dim if isinstance(layer, Dense) else layer.out_chan
                w = jax.random.normal(kw, fan_shape + (out,), jnp.float32)
                b = None if layer.b_std is None else jax.random.normal(kb, (out,), jnp.float32)
                if layer.parametrization == "standard":
                    w = w * (layer.W_std / math.sqrt(math.prod(fan_shape)))
                if layer.parametrization != "ntk":
                    b = None if b is None else b * layer.b_std
                if layer.parametrization == "ntk_scaled_input":
                    w = w * layer.W_std
                params.append({"W": w} if b is None else {"W": w, "b": b})
            else:
                params.append({})
        return shapes[-1], tuple(params)

    def apply_fn(self, params: Sequence[dict], x: Array) -> Array:
        """The finite network: ``x`` of shape ``(N, *input)`` -> ``(N, out_dim)``."""
        h = self._prepare_input(x, "x")
        for layer, p in zip(self.layers, params):
            if isinstance(layer, Dense):
                h = _affine_apply(layer, h @ p["W"], p, h.shape[-1])
            elif isinstance(layer, Conv):
                d = layer.spatial_dims
                spec = ("NWC", "WIO", "NWC") if d == 1 else ("NHWC", "HWIO", "NHWC")
                z = jax.lax.conv_general_dilated(h, p["W"], (1,) * d, layer.padding, dimension_numbers=spec)
                h = _affine_apply(layer, z, p, h.shape[-1] * math.prod(layer.kernel_size))
            elif isinstance(layer, _Activation):
                h = layer.fn(h)
            elif isinstance(layer, Flatten):
                h = h.reshape(h.shape[0], -1)
            elif isinstance(layer, GlobalAvgPool):
                h = jnp.mean(h, axis=tuple(range(1, h.ndim - 1)))
            elif isinstance(layer, AdaptiveAvgPool):
                for i, m in enumerate(_pool_matrices(layer, tuple(h.shape[1:-1]))):
                    h = jnp.moveaxis(jnp.tensordot(h, jnp.asarray(m, h.dtype), axes=([1 + i], [1])), -1, 1 + i)
        return h

    # -- the infinite-width kernels --------------------------------------------------------------
    def kernel_fn(self, x1: Array, x2: Array | None = None, *, get: str | Sequence[str] = KERNEL_NAMES,
                  block_size: int | None = 256, dtype: Any = jnp.float32) -> Kernels:
        """The infinite-width NNGP and NTK between two sets of inputs.

        Args:
            x1: ``(N1, features)`` for a fully connected network, ``(N1, *spatial[, C])`` for a
                convolutional one (a missing channel axis means one channel).
            x2: ``(N2, ...)`` like x1; None for x1 itself: then only blocks on and above the
                diagonal are computed and the upper triangle is mirrored, so the result is
                exactly symmetric. (The quadrature rule is not symmetric in its two inputs --
                x1 is the outer variable, as in neural-tangents -- so for quadrature layers
                ``kernel_fn(x, x)`` differs from ``kernel_fn(x)`` below the diagonal by the
                quadrature error; closed forms are symmetric anyway.)
            get: ``'nngp'``, ``'ntk'`` or both (the NTK costs about twice the NNGP).
            block_size: examples per block on each side (memory ~ block_size^2 x positions per
                layer, x positions again if a pool needs all pairs of positions); None: one
                block, and the call is traceable (usable under an outer ``jax.jit``).
            dtype: ``jnp.float32`` (default) or ``jnp.float64`` (needs ``jax.enable_x64``).

        Returns:
            :class:`Kernels` with ``(N1, N2)`` arrays (None for what ``get`` leaves out).
        """
        names, x1 = self._checked_call(get, dtype, x1, "x1")
        if block_size is not None:
            _check_pos_int("block_size", block_size)
        dtype = x1.dtype
        same = x2 is None
        x2 = x1 if same else self._prepare_input(x2, "x2").astype(dtype)
        if x2.shape[1:] != x1.shape[1:]:
            raise ValueError(f"x2 must have per-example shape {x1.shape[1:]} like x1, got {x2.shape[1:]}")
        self._shapes(tuple(x1.shape[1:]))
        want_ntk = "ntk" in names
        full = self.needs_all_position_pairs
        n1, n2 = x1.shape[0], x2.shape[0]
        if block_size is None or (n1 <= block_size and n2 <= block_size):
            nngp, ntk = _block_kernels_jit(self.layers, x1, x2, want_ntk, full, same)
            return Kernels(nngp if "nngp" in names else None, ntk)
        return self._blocked(x1, x2, same, int(block_size), want_ntk, full, names)

    def kernel_diagonal(self, x: Array, *, get: str | Sequence[str] = KERNEL_NAMES, dtype: Any = jnp.float32) -> Kernels:
        """Each input's infinite-width kernels with itself, ``k(x_i, x_i)``: the diagonal of
        ``kernel_fn(x)`` from N pairs instead of the N (N + 1) / 2 that the whole kernel needs.

        Args:
            x: ``(N, ...)`` like :meth:`kernel_fn`'s x1.
            get, dtype: as for :meth:`kernel_fn`.

        Returns:
            :class:`Kernels` with ``(N,)`` arrays (None for what ``get`` leaves out).
        """
        names, x = self._checked_call(get, dtype, x, "x")
        self._shapes(tuple(x.shape[1:]))
        nngp, ntk = _diagonal_kernels_jit(self.layers, x, "ntk" in names, self.needs_all_position_pairs)
        return Kernels(nngp if "nngp" in names else None, ntk)

    def _checked_call(self, get, dtype, x: Array, name: str) -> tuple[tuple[str, ...], Array]:
        """The kernel names asked for and ``x`` as the network's input in ``dtype``; a
        ValueError naming the argument for a bad one."""
        names = (get,) if isinstance(get, str) else tuple(get)
        if not names or any(n not in KERNEL_NAMES for n in names):
            raise ValueError(f"get must be one of {KERNEL_NAMES} or a sequence of them, got {get!r}")
        dtype = jnp.dtype(dtype)
        if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        if dtype == jnp.float64 and jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64:
            raise ValueError("dtype float64 needs 64-bit JAX: wrap the call in `with jax.enable_x64(True):`")
        return names, self._prepare_input(x, name).astype(dtype)

    def _blocked(self, x1, x2, same, bs, want_ntk, full, names) -> Kernels:
        n1, n2 = x1.shape[0], x2.shape[0]

        def pad(x):  # one block shape: pad the last block with zeros (rows dropped at the end)
            m = -(-x.shape[0] // bs) * bs
            return jnp.pad(x, [(0, m - x.shape[0])] + [(0, 0)] * (x.ndim - 1))

        p1 = pad(x1)
        p2 = p1 if same else pad(x2)
        nb1, nb2 = p1.shape[0] // bs, p2.shape[0] // bs
        out_nngp = np.empty((nb1 * bs, nb2 * bs), np.dtype(x1.dtype))
        out_ntk = np.empty_like(out_nngp) if want_ntk else None
        for i in range(nb1):
            for j in range(i if same else 0, nb2):
                a, b = p1[i * bs:(i + 1) * bs], p2[j * bs:(j + 1) * bs]
                nngp, ntk = _block_kernels_jit(self.layers, a, b, want_ntk, full)
                for out, val in ((out_nngp, nngp), (out_ntk, ntk)):
                    if out is None:
                        continue
                    v = np.asarray(val)
                    out[i * bs:(i + 1) * bs, j * bs:(j + 1) * bs] = v
                    if same and j != i:
                        out[j * bs:(j + 1) * bs, i * bs:(i + 1) * bs] = v.T
        if same:  # diagonal blocks: upper triangle as computed (x1 the outer variable), mirrored
            lower = np.tril_indices(bs, -1)
            for out in (out_nngp, out_ntk):
                for i in range(nb1 if out is not None else 0):
                    blk = out[i * bs:(i + 1) * bs, i * bs:(i + 1) * bs]
                    blk[lower] = blk.T[lower]
        nngp = jnp.asarray(out_nngp[:n1, :n2]) if "nngp" in names else None
        ntk = jnp.asarray(out_ntk[:n1, :n2]) if want_ntk else None
        return Kernels(nngp, ntk)


def _affine_apply(layer, z: Array, p: dict, fan_in: int) -> Array:
    """A Dense or Conv layer's output from ``z`` (its input contracted with ``p['W']``) in the
    layer's parametrisation (module docstring)."""
    if layer.parametrization == "ntk":
        z = z * (layer.W_std / math.sqrt(fan_in))
        return z + layer.b_std * p["b"] if "b" in p else z
    if layer.parametrization == "ntk_scaled_input":
        z = z * (1.0 / math.sqrt(fan_in))
    return z + p["b"] if "b" in p else z


def serial(*layers) -> Serial:
    """Compose layer descriptions, input first: ``serial(Conv(8, 3), Relu(), Flatten(), Dense(1))``.

    Raises ValueError (one line) for a description without a kernel: an unknown layer, an
    activation before any Dense/Conv (its input would not be Gaussian), a Conv after the
    spatial axes are gone, Conv layers of different spatial dimensions, or no Dense/Conv at all.
    """
    if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
        layers = tuple(layers[0])
    if not layers:
        raise ValueError("serial needs at least one layer")
    dims = None
    linear_seen = False
    flat = False
    for i, layer in enumerate(layers):
        if not isinstance(layer, LAYER_TYPES):
            raise ValueError(f"layers[{i}] must be one of {[t.__name__ for t in LAYER_TYPES]}, got {layer!r} "
                             "(max pooling, dropout at train time and batch norm have no closed-form "
                             "infinite-width kernel here)")
        if isinstance(layer, _Activation) and not linear_seen:
            raise ValueError(f"layers[{i}] ({_describe(layer)}) comes before any Dense or Conv: an activation "
                             "needs Gaussian pre-activations")
        if isinstance(layer, Conv):
            if flat:
                raise ValueError(f"layers[{i}] (Conv) comes after Flatten/GlobalAvgPool: no spatial axes left")
            if dims is not None and layer.spatial_dims != dims:
                raise ValueError(f"layers[{i}] (Conv) is {layer.spatial_dims}-D after {dims}-D convolutions")
            dims = layer.spatial_dims
        if isinstance(layer, (Flatten, GlobalAvgPool)):
            flat = True
        if isinstance(layer, (Dense, Conv)):
            linear_seen = True
    if not linear_seen:
        raise ValueError("serial needs at least one Dense or Conv layer")
    return Serial(tuple(layers))


# ---------------------------------------------------------------------------------------------
# Deep linear chains: exact
# ---------------------------------------------------------------------------------------------
def linear_chain_kernels(x1: Array, x2: Array | None = None, *, widths: Sequence[int],
                         weight_variances: Sequence[float]) -> Kernels:
    """Exact expected NNGP and NTK of the bias-free chain ``f(x) = W_D ... W_1 x`` at any widths.

    With independent weights whose second moments are ``E[W_l W_l^T] = v_l d_{l-1} I`` and
    ``E[W_l^T W_l] = v_l d_l I`` (iid entries of variance v_l; or Haar (semi-)orthogonal ``W_l``
    times s with ``v_l = s^2 / max(d_l, d_{l-1})``), for each output unit

        E[f(x) f(x')] = (x . x' / d_0) prod_l d_{l-1} v_l,
        E[Theta(x, x')] = x . x' sum_l prod_{m > l} d_{m-1} v_m prod_{m < l} d_m v_m

    exactly (no large-width limit: a linear chain's layers are independent), and the cross-unit
    terms vanish. In NTK parametrisation (``v_l = W_std^2 / d_{l-1}`` with the 1 / sqrt(d) in the
    forward pass) this is the infinite-width NTK ``D W_std^(2D) x . x' / d_0``.

    Args:
        x1: ``(N1, d_0)``.
        x2: ``(N2, d_0)``; None for x1.
        widths: ``(d_0, ..., d_D)``.
        weight_variances: ``(v_1, ..., v_D)``.

    Returns:
        :class:`Kernels` with ``(N1, N2)`` arrays.
    """
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise ValueError(f"widths must list (d_0, ..., d_D) with D >= 1 positive ints, got {widths!r}")
    v = tuple(float(s) for s in weight_variances)
    if len(v) != len(widths) - 1 or any(s < 0 or not math.isfinite(s) for s in v):
        raise ValueError(f"weight_variances must hold {len(widths) - 1} finite values >= 0 (one per layer), got "
                         f"{weight_variances!r}")
    x1 = jnp.asarray(x1)
    x2 = x1 if x2 is None else jnp.asarray(x2)
    if x1.ndim != 2 or x1.shape[1] != widths[0] or x2.ndim != 2 or x2.shape[1] != widths[0]:
        raise ValueError(f"x1 and x2 must have shape (N, d_0 = {widths[0]}), got {x1.shape} and {x2.shape}")
    dot = jnp.matmul(x1, x2.T, precision=jax.lax.Precision.HIGHEST)
    depth = len(v)
    # 0-based: W_l maps d_l -> d_{l+1}. Forward E[W^T W] = d_{l+1} v_l I; backward E[W M W^T] = v_l tr(M) I.
    fwd = [widths[l + 1] * v[l] for l in range(depth)]
    bwd = [widths[l] * v[l] for l in range(depth)]
    nngp_factor = v[0] * math.prod(bwd[1:])
    ntk_factor = sum(math.prod(fwd[:l]) * math.prod(bwd[l + 1:]) for l in range(depth))
    return Kernels(nngp_factor * dot, ntk_factor * dot)


# ---------------------------------------------------------------------------------------------
# jaxdyn models -> kernel descriptions
# ---------------------------------------------------------------------------------------------
def from_model(model, *, output: str = "logits", train: bool = False, order: int = DEFAULT_ORDER,
               input_shape: Sequence[int] | None = None) -> Serial:
    """The kernel description of a jaxdyn model with its actual initialisation.

    * :class:`~jaxdyn.models.DeepLinear`: Dense layers without bias in standard parametrisation,
      ``W_std = scale sqrt(d_{l-1})`` for ``'small_random'`` (entries N(0, scale^2)) and
      ``W_std = scale sqrt(d_{l-1} / max(d_l, d_{l-1}))`` for ``'orthogonal'`` (the Gaussian with
      the same second moments; a linear chain's kernels depend on nothing else, see
      :func:`linear_chain_kernels`). ``'given'`` matrices are not random: no limit to take.
    * :class:`~jaxdyn.models.RBEConvNet` / ``RBEConvNet2D``: ``num_layers`` x (Conv(features,
      kernel_size, padding) + ELU/ReLU), Flatten, Dense(1), every Dense/Conv in standard
      parametrisation (``'ntk_scaled_input'`` for the net's ``parametrization='ntk'``) with
      ``b_std = 0`` and ``W_std = 1`` for ``init_scheme='flax'`` (LeCun normal kernels) or
      ``W_std = sqrt(2 fan_in / (fan_in + fan_out))`` for ``'keras'`` (Glorot uniform: the
      same variance; the kernels depend on nothing else). With Keras' fans the first layer's
      ``W_std^2 = 2 k / (k + k M)`` falls as the width M grows, so these are the kernels at the
      model's widths' variances, not a width-independent limit.
    * :class:`~jaxdyn.models.DenseSampleVGG` (evaluation mode): ``num_conv`` x (SAME Conv +
      ReLU), AdaptiveAvgPool(pool_size), Flatten, (Dense + ReLU) per hidden width, Dense
      (num_classes), the same initialisation (the flatten order does not change the kernels).

    Args:
        model: one of the models above.
        output: ``'logits'`` (default): the kernels of the pre-sigmoid output. ``'model'``: of
            what the model returns; for an RBE net with a sigmoid output this appends
            ``Elementwise(jax.nn.sigmoid, order)``, whose NNGP is E[s(f) s(f')] and whose NTK is
            the expectation E[s'(f) s'(f')] Theta over the Gaussian process f (the NTK of a
            sigmoid output stays random at infinite width).
        train: True describes the training-mode network: dropout at train time has no
            closed-form kernel here and raises.
        order: quadrature order for ELU (and the sigmoid).
        input_shape: the per-example input shape, e.g. ``(16,)``: needed for an RBE net with
            Keras' initialisation, whose readout variance depends on its fan-in (positions x
            filters); the input channels (last axis, when given) set the first layer's fan-in.

    Returns:
        :class:`Serial`.
    """
    from jaxdyn.models import DeepLinear, DenseSampleVGG
    from jaxdyn.models.rbe_conv import _RBENet

    _check_choice("output", output, ("logits", "model"))
    _check_pos_int("order", order)
    if isinstance(model, DeepLinear):
        if model.init_scheme == "given":
            raise ValueError("model: DeepLinear(init_scheme='given') has fixed matrices, no random initialisation "
                             "whose large-width limit a kernel describes; use jaxdyn.ntk.ntk")
        w = model.widths
        layers = []
        for l in range(model.depth):
            if model.init_scheme == "small_random":
                w_std = float(model.scale) * math.sqrt(w[l])
            else:
                w_std = float(model.scale) * math.sqrt(w[l] / max(w[l], w[l + 1]))
            layers.append(Dense(w[l + 1], W_std=w_std, b_std=None, parametrization="standard"))
        return serial(*layers)
    if isinstance(model, _RBENet):
        # 'ntk': each layer scales its input by 1 / sqrt(fan_in), the initialisation's scale stays
        # in the weights and the zero-initialised biases enter as + b: 'ntk_scaled_input'.
        param = "ntk_scaled_input" if model.parametrization == "ntk" else "standard"
        if train and model.dropout_rate > 0:
            raise ValueError(f"train=True with dropout_rate={model.dropout_rate}: dropout at train time has no "
                             "closed-form infinite-width kernel; use train=False (evaluation mode)")
        act = Elu(order=order) if model.activation == "elu" else Relu()
        receptive = model.kernel_size ** model.spatial_dims
        # W_std^2 = fan_in Var(W): 1 for flax's LeCun normal; for Keras' Glorot uniform Var(W) =
        # 2 / (fan_in + fan_out) (the kernel depends on the weights' variance only, so the
        # uniform law has the Gaussian's kernel), with flax's fans: receptive field x channels.
        keras = model.init_scheme == "keras"
        glorot = lambda fan_in, fan_out: math.sqrt(2.0 * fan_in / (fan_in + fan_out))  # noqa: E731
        layers = []
        in_channels = 1
        if input_shape is not None and len(tuple(input_shape)) == model.spatial_dims + 1:
            in_channels = int(tuple(input_shape)[-1])
        for i in range(model.num_layers):
            c_in = in_channels if i == 0 else model.features
            w_std = glorot(receptive * c_in, receptive * model.features) if keras else 1.0
            layers += [Conv(model.features, (model.kernel_size,) * model.spatial_dims, model.padding,
                            W_std=w_std, b_std=0.0, parametrization=param), act]
        readout = 1.0
        if keras:
            if input_shape is None:
                raise ValueError("input_shape: Keras' Glorot initialisation of the readout depends on its fan-in "
                                 "(positions x filters); give the input's per-example shape, e.g. (16,)")
            positions = int(np.prod([n - model.num_layers * (model.kernel_size - 1) if model.padding == "VALID" else n
                                     for n in tuple(input_shape)[:model.spatial_dims]]))
            readout = glorot(positions * model.features, 1)
        layers += [Flatten(), Dense(1, W_std=readout, b_std=0.0, parametrization=param)]
        if output == "model" and not model.return_logits:
            layers.append(Elementwise(jax.nn.sigmoid, order=order))
        return serial(*layers)
    if isinstance(model, DenseSampleVGG):
        if train and model.dropout_rate > 0:
            raise ValueError(f"train=True with dropout_rate={model.dropout_rate}: dropout at train time has no "
                             "closed-form infinite-width kernel; use train=False (evaluation mode)")
        if model.conv != "patches" and model.conv != "flax":  # pragma: no cover - validated by the model
            raise ValueError(f"model.conv must be 'patches' or 'flax', got {model.conv!r}")
        std = dict(W_std=1.0, b_std=0.0, parametrization="standard")
        layers = []
        for _ in range(model.num_conv):
            layers += [Conv(model.conv_features, (model.kernel_size,) * 2, "SAME", **std), Relu()]
        layers += [AdaptiveAvgPool(model.pool_size), Flatten()]
        for width in model.hidden:
            layers += [Dense(width, **std), Relu()]
        layers.append(Dense(model.num_classes, **std))
        return serial(*layers)
    raise ValueError(f"model must be a DeepLinear, RBEConvNet, RBEConvNet2D or DenseSampleVGG, got "
                     f"{type(model).__name__}; describe other networks with serial(...)")


__all__ = [
    "DEFAULT_ORDER",
    "KERNEL_NAMES",
    "LAYER_TYPES",
    "PADDINGS",
    "PARAMETRIZATIONS",
    "AdaptiveAvgPool",
    "Conv",
    "Dense",
    "Elementwise",
    "Elu",
    "Erf",
    "Flatten",
    "GlobalAvgPool",
    "Kernels",
    "Relu",
    "Serial",
    "from_model",
    "linear_chain_kernels",
    "serial",
]
