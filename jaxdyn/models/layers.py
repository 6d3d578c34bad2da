"""Shared building blocks for jaxdyn models.

* :class:`PatchConv` -- a drop-in replacement for ``flax.linen.Conv`` (stride 1,
  'SAME'/'VALID' padding) that computes the convolution as patches + one matmul.
* :func:`elu` -- ``flax.linen.elu`` (alpha = 1), same values and derivatives, faster on XLA:CPU.
* :func:`adaptive_avg_pool2d` -- PyTorch ``AdaptiveAvgPool2d`` semantics, NHWC.
* :func:`count_params` -- number of scalars in a parameter pytree.
* :func:`capture_intermediates` -- run a model and return what it ``sow``-ed.

All functions are pure; modules keep no state besides their flax variables.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
"""A JAX array."""

_PADDINGS = ("SAME", "VALID")


# ---------------------------------------------------------------------------
# Validation helpers (shared by every model's __post_init__).
# ---------------------------------------------------------------------------
def check_positive_int(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_rate(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``0 <= value < 1`` (a dropout rate)."""
    try:
        ok = 0.0 <= float(value) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")


def normalize_kernel_size(kernel_size: int | Sequence[int]) -> tuple[int, ...]:
    """Turn an int or sequence into a tuple of positive ints (like ``nn.Conv``)."""
    ks = (kernel_size,) if isinstance(kernel_size, (int, np.integer)) else tuple(kernel_size)
    if len(ks) == 0:
        raise ValueError(f"kernel_size must be non-empty, got {kernel_size!r}")
    for k in ks:
        check_positive_int("kernel_size", k)
    return tuple(int(k) for k in ks)


def count_params(params: Any) -> int:
    """Total number of scalars in a pytree of arrays.

    Works on concrete arrays and on ``jax.ShapeDtypeStruct`` leaves (e.g. the
    output of ``jax.eval_shape(module.init, ...)``), so large models can be
    counted without allocating them.

    Args:
      params: any pytree (e.g. ``variables`` or ``variables['params']``).

    Returns:
      The sum of ``prod(leaf.shape)`` over all leaves.
    """
    return int(sum(math.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(params)))


# ---------------------------------------------------------------------------
# PatchConv
# ---------------------------------------------------------------------------
def _pad_same(x: Array, kernel_size: Sequence[int]) -> Array:
    """Zero-pads the spatial axes of (N, *spatial, C) for a 'SAME' convolution (lo = (k-1)//2, as lax)."""
    return jnp.pad(x, [(0, 0)] + [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_size] + [(0, 0)])


def extract_patches(
    x: Array, kernel_size: Sequence[int], padding: str = "SAME"
) -> Array:
    """Stride-1 sliding-window patches built from shifted slices.

    Args:
      x: input of shape ``(N, *spatial, C)`` with ``len(spatial) == len(kernel_size)``.
      kernel_size: window size per spatial axis.
      padding: ``'SAME'`` (zero padding, output spatial = input spatial, same
        lo/hi split as ``lax`` i.e. lo = (k-1)//2) or ``'VALID'`` (no padding).

    Returns:
      Patches of shape ``(N, *out_spatial, prod(kernel_size) * C)``; the last
      axis is ordered (kernel offsets row-major, then channel), matching
      ``kernel.reshape(-1, features)`` for a flax kernel ``(*kernel_size, C, F)``.
    """
    kernel_size = tuple(kernel_size)
    nsp = len(kernel_size)
    if x.ndim != nsp + 2:
        raise ValueError(
            f"x must have shape (N, *spatial, C) with {nsp} spatial axes, got shape {x.shape}"
        )
    if padding == "SAME":
        x = _pad_same(x, kernel_size)
    elif padding != "VALID":
        raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
    spatial = x.shape[1:-1]
    out = tuple(s - k + 1 for s, k in zip(spatial, kernel_size))
    if any(o < 1 for o in out):
        raise ValueError(
            f"input spatial shape {spatial} is smaller than kernel_size {kernel_size} "
            f"with padding {padding!r}"
        )
    # Static Python loop over kernel offsets: k^d cheap slices, no lax.conv, so
    # vmap over (params, x) only ever produces batched slices and a batched dot.
    slices = [
        x[(slice(None),) + tuple(slice(o, o + n) for o, n in zip(offset, out)) + (slice(None),)]
        for offset in itertools.product(*(range(k) for k in kernel_size))
    ]
    patches = jnp.stack(slices, axis=-2)  # (N, *out, prod(k), C)
    return patches.reshape(patches.shape[:-2] + (-1,))


class PatchConv(nn.Module):
    """Stride-1 convolution computed as patches + one matmul (no ``lax.conv``).

    Parameters are laid out and initialised exactly like ``flax.linen.Conv``:
    ``'kernel'`` of shape ``(*kernel_size, in_features, features)`` (lecun_normal
    by default) then ``'bias'`` of shape ``(features,)`` (zeros), so the two
    modules are interchangeable on the same params dict and produce identical
    params from the same key.

    Why: under ``jax.vmap`` over parameters (a seed ensemble) on CPU, a vmapped
    ``lax.conv`` lowers to a grouped conv that is several times slower than a
    Python loop, whereas patches + dot vmaps into a plain batched matmul.

    Attributes:
      features: number of output channels F.
      kernel_size: int or tuple (one entry per spatial axis; 1-D and 2-D tested).
      padding: ``'SAME'`` or ``'VALID'``.
      use_bias: add a bias of shape (F,).
      kernel_init, bias_init: initialisers (flax ``nn.Conv`` defaults).
      precision: passed to the matmul (``None`` = JAX default, as ``nn.Conv``).
      dtype: computation dtype (``None``: promote inputs/params, as ``nn.Conv``).
      param_dtype: parameter dtype (float32).
      bias_in_matmul: add the bias inside the matmul, ``[patches, 1] @ [[kernel], [bias]]``,
        instead of after it (same parameters and function; float32 rounding differs at the
        last bit). Why: XLA:CPU emits an elementwise fusion that contains a broadcast (here
        the bias over positions) with scalar, not vectorised, transcendental functions, so a
        bias-add fused into the next layer's ELU makes that ELU 4-5x slower. With the bias in
        the matmul, the conv + :func:`elu` RBE net ensemble step ran 1.2-1.4x faster on CPU
        (16-4096 members; benchmarks/bench_ensemble.py). Off by default: a larger contraction costs a
        little where the activation is cheap (ReLU).
      weight_grad_by_columns: compute the kernel's gradient (and the kernel tangent) from the
        patches laid out as (kernel taps x channels, N x positions), extracted a second time
        in that order, so that it is a plain row-major matmul. Why: the usual weight gradient
        contracts the patches over their leading (N, positions) axes; XLA:CPU hands that batched
        dot (batched over members under vmap) to Eigen one member at a time instead of to
        YNNPACK, and in the RBE net ensemble it was half of every step; with this flag the RBE
        step ran 1.3-2.1x faster at 16-4096 members (batch 1 and 32). The forward value is unchanged
        (bitwise); gradients agree to float32 rounding. Off by default: a single unvmapped
        member (about 0.8x) and the VGG (0.93-0.97x) get slower from the second extraction.
    """

    features: int
    kernel_size: int | Sequence[int]
    padding: str = "SAME"
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()
    precision: Any = None
    dtype: Any = None
    param_dtype: Any = jnp.float32
    bias_in_matmul: bool = False
    weight_grad_by_columns: bool = False

    def __post_init__(self):
        check_positive_int("features", self.features)
        normalize_kernel_size(self.kernel_size)
        check_choice("padding", self.padding, _PADDINGS)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """Apply the convolution.

        Args:
          x: ``(N, L, C)`` for 1-D or ``(N, H, W, C)`` for 2-D kernels (exactly
            one leading batch axis; vmap for more).

        Returns:
          ``(N, L', F)`` / ``(N, H', W', F)``; spatial sizes unchanged for
          ``'SAME'``, reduced by ``k - 1`` for ``'VALID'``.
        """
        ks = normalize_kernel_size(self.kernel_size)
        if x.ndim != len(ks) + 2:
            raise ValueError(
                f"PatchConv with kernel_size {ks} expects input (N, *spatial, C) with "
                f"{len(ks)} spatial axes; got shape {x.shape}"
            )
        in_features = x.shape[-1]
        # Same names, order, shapes and initialisers as nn.Conv -> same params.
        kernel = self.param("kernel", self.kernel_init, ks + (in_features, self.features), self.param_dtype)
        bias = (
            self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        kernel = kernel.reshape(-1, self.features)
        ones = bias is not None and self.bias_in_matmul
        if ones:
            kernel = jnp.concatenate([kernel, bias[None, :]], axis=0)
            bias = None
        if self.weight_grad_by_columns:
            y = _patch_matmul_by_columns(x, kernel, ks, self.padding, ones, self.precision)
        else:
            y = jnp.matmul(_patches(x, ks, self.padding, ones), kernel, precision=self.precision)
        if bias is not None:
            y = y + bias
        return y


def _patches(x: Array, kernel_size: tuple[int, ...], padding: str, ones: bool) -> Array:
    """:func:`extract_patches`, with a column of ones appended when ``ones`` (bias in the matmul)."""
    p = extract_patches(x, kernel_size, padding)
    if ones:
        p = jnp.concatenate([p, jnp.ones(p.shape[:-1] + (1,), p.dtype)], axis=-1)
    return p


def _patch_columns(x: Array, kernel_size: tuple[int, ...], padding: str, ones: bool) -> Array:
    """The patches of ``_patches(x, ...)`` as columns, (K, N * prod(out_spatial)) with K =
    prod(kernel_size) * C (+ 1 row of ones), built by slicing x with its channel axis first (a
    transpose of the patches would be folded back into the matmul by XLA)."""
    if padding == "SAME":
        x = _pad_same(x, kernel_size)
    out = tuple(s - k + 1 for s, k in zip(x.shape[1:-1], kernel_size))
    xt = jnp.moveaxis(x, -1, 0)  # (C, N, *spatial)
    cols = jnp.stack([
        xt[(slice(None), slice(None)) + tuple(slice(o, o + n) for o, n in zip(offset, out))]
        for offset in itertools.product(*(range(k) for k in kernel_size))
    ])  # (prod(k), C, N, *out): rows ordered (kernel offset, channel) as the patches' last axis
    cols = cols.reshape(-1, math.prod(cols.shape[2:]))
    if ones:
        cols = jnp.concatenate([cols, jnp.ones((1, cols.shape[1]), cols.dtype)], axis=0)
    return cols


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _patch_matmul_by_columns(x, kernel, kernel_size, padding, ones, precision):
    """``_patches(x) @ kernel``, differentiated through :func:`_patch_columns` in the kernel."""
    return jnp.matmul(_patches(x, kernel_size, padding, ones), kernel, precision=precision)


@_patch_matmul_by_columns.defjvp
def _patch_matmul_by_columns_jvp(kernel_size, padding, ones, precision, primals, tangents):
    (x, kernel), (dx, dkernel) = primals, tangents
    y = jnp.matmul(_patches(x, kernel_size, padding, ones), kernel, precision=precision)
    dy_x = jnp.matmul(extract_patches(dx, kernel_size, padding), kernel[:-1] if ones else kernel, precision=precision)
    # Tangent in the kernel written on the columns: its transpose, the kernel gradient, is then
    # columns (K, N*P) @ cotangent (N*P, F), a row-major matmul.
    cols = _patch_columns(x, kernel_size, padding, ones)
    dy_k = jnp.matmul(cols.T, dkernel, precision=precision).reshape(y.shape)
    return y, dy_x + dy_k


# ---------------------------------------------------------------------------
# ELU
# ---------------------------------------------------------------------------
@jax.custom_jvp
def elu(x: Array) -> Array:
    """ELU with alpha = 1: ``x`` where ``x > 0``, ``exp(x) - 1`` elsewhere.

    The same values as ``flax.linen.elu`` (up to the sign of a zero output) and the same
    derivatives (1 at x = 0; ``expm1(x) + 1`` for x <= 0, as JAX differentiates ``expm1``),
    written for XLA:CPU, which emits transcendental functions scalar, 4-5x slower, inside an
    elementwise fusion that contains a broadcast (the constant 0 of ``x > 0`` in flax's
    ``where`` form): the forward ``max(x, expm1(-|x|))`` has no constant, and the derivative
    reuses the forward's ``expm1`` instead of computing ``exp`` again.

    Args:
      x: any shape, floating point.

    Returns:
      Same shape and dtype as ``x``.
    """
    return jnp.maximum(x, jnp.expm1(_neg_abs(x)))  # expm1(-|x|) = expm1(x) for x <= 0, < 0 < x otherwise


@elu.defjvp
def _elu_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    e = jnp.expm1(_neg_abs(x))
    return jnp.maximum(x, e), jnp.where(x > 0, dx, (e + 1) * dx)


@jax.custom_jvp
def _neg_abs(x: Array) -> Array:
    """-|x|, with derivative 1 at x = 0 (the x <= 0 side), so that elu's second derivative at 0
    is flax's exp(0) = 1."""
    return -jnp.abs(x)


@_neg_abs.defjvp
def _neg_abs_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return -jnp.abs(x), jnp.where(x > 0, -dx, dx)


# ---------------------------------------------------------------------------
# Adaptive average pooling (PyTorch semantics)
# ---------------------------------------------------------------------------
def adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Averaging matrix of PyTorch's adaptive pooling along one axis.

    Bin ``i`` covers ``[floor(i*in/out), ceil((i+1)*in/out))``; bins may overlap.

    Returns:
      float32 array ``(out_size, in_size)`` whose row i averages bin i.
    """
    check_positive_int("in_size", in_size)
    check_positive_int("out_size", out_size)
    p = np.zeros((out_size, in_size), dtype=np.float32)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)  # ceil division
        p[i, start:end] = 1.0 / (end - start)
    return p


def adaptive_avg_pool2d(x: Array, output_size: int | Sequence[int]) -> Array:
    """PyTorch ``nn.AdaptiveAvgPool2d`` for channels-last inputs.

    Implemented as two small constant matmuls (exact bin averages, vmap- and
    grad-friendly, no per-bin slicing in the graph). Uses HIGHEST precision so
    it stays float32-exact on accelerators with TF32 matmuls.

    Args:
      x: ``(N, H, W, C)``.
      output_size: int ``s`` (-> ``(s, s)``) or ``(out_h, out_w)``.

    Returns:
      ``(N, out_h, out_w, C)``.
    """
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, H, W, C), got shape {x.shape}")
    if isinstance(output_size, (int, np.integer)):
        out_h = out_w = int(output_size)
    else:
        out_h, out_w = (int(s) for s in output_size)
    ph = jnp.asarray(adaptive_pool_matrix(x.shape[1], out_h), dtype=x.dtype)
    pw = jnp.asarray(adaptive_pool_matrix(x.shape[2], out_w), dtype=x.dtype)
    hi = jax.lax.Precision.HIGHEST
    y = jnp.einsum("ih,nhwc->niwc", ph, x, precision=hi)
    return jnp.einsum("jw,niwc->nijc", pw, y, precision=hi)


# ---------------------------------------------------------------------------
# Reading sown activations
# ---------------------------------------------------------------------------
def capture_intermediates(
    module: nn.Module,
    variables: Mapping[str, Any],
    x: Array,
    train: bool = False,
    rngs: Mapping[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Run ``module`` and return its output and the top-level sown activations.

    Args:
      module: a jaxdyn model that calls ``self.sow('intermediates', name, value)``.
      variables: ``{'params': ...}``.
      x: model input with leading batch axis.
      train, rngs: forwarded to ``module.apply``.

    Returns:
      ``(output, {name: activation})`` -- each sown tuple is unwrapped to its
      last value (the one from this call).
    """
    out, state = module.apply(
        variables, x, train=train, rngs=rngs, mutable=["intermediates"]
    )
    inter = state.get("intermediates", {})
    return out, {k: v[-1] for k, v in inter.items() if isinstance(v, tuple)}
