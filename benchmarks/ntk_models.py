"""The NTK benchmark's models as pure JAX functions of a flat parameter dict.

Imports only numpy and jax (any version from 0.4.25 on), so that the same forward pass runs in
jaxdyn's environment and in the legacy environment where neural-tangents lives
(benchmarks/nt_worker.py), where jaxdyn itself cannot be imported. Each function reproduces a
jaxdyn flax model exactly (checked by bench_ntk.py at every run and by tests/test_bench_ntk.py)
but uses ``lax.conv_general_dilated`` for the convolutions, the primitive that
neural-tangents' structured-derivative rules know.

A model is described by a JSON-able ``spec`` dict; :func:`make_apply` turns it into
``f(params, x)``, where ``params`` is the flat dict ``{'conv_0/kernel': array, ...}`` (flax's
nested names joined with '/'). Shapes:

* ``rbe1d``  (jaxdyn.models.RBEConvNet): x (N, L) bits -> (N,).
* ``rbe2d``  (jaxdyn.models.RBEConvNet2D, the rbe-images net): x (N, H, W) or (N, H, W, C) -> (N,).
* ``vgg``    (jaxdyn.models.DenseSampleVGG, eval mode): x (N, H, W, C) -> (N, num_classes).

Every function follows the dtype of its parameters (float32 or float64), so the float64
reference NTK is the same function evaluated in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

KINDS = ("rbe1d", "rbe2d", "vgg")


def _act(name: str) -> Callable:
    if name == "elu":
        return jax.nn.elu
    if name == "relu":
        return jax.nn.relu
    raise ValueError(f"activation must be 'elu' or 'relu', got {name!r}")


def conv(x, kernel, bias, padding: str):
    """Stride-1 convolution, channels last, flax's kernel layout.

    Args:
        x: (N, *spatial, C_in).
        kernel: (*kernel_size, C_in, C_out).
        bias: (C_out,).
        padding: 'SAME' or 'VALID' (same lo/hi split as flax and PatchConv).

    Returns:
        (N, *spatial', C_out).
    """
    nsp = x.ndim - 2
    sp = {1: "W", 2: "HW", 3: "DHW"}[nsp]
    dn = ("N" + sp + "C", sp + "IO", "N" + sp + "C")
    y = lax.conv_general_dilated(x, kernel, window_strides=(1,) * nsp, padding=padding, dimension_numbers=dn)
    return y + bias


def conv_patches(x, kernel, bias, padding: str):
    """The same convolution as :func:`conv`, as shifted slices + one matmul (jaxdyn's PatchConv).

    Used for the float64 reference: XLA's CPU convolution in float64 (batched under vmap) is
    orders of magnitude slower than its float64 matmul.
    """
    ks = kernel.shape[:-2]
    if padding == "SAME":
        x = jnp.pad(x, [(0, 0)] + [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in ks] + [(0, 0)])
    out = tuple(s - k + 1 for s, k in zip(x.shape[1:-1], ks))
    slices = [x[(slice(None),) + tuple(slice(o, o + n) for o, n in zip(off, out)) + (slice(None),)]
              for off in np.ndindex(*ks)]
    patches = jnp.stack(slices, axis=-2).reshape(x.shape[:1] + out + (-1,))
    return patches @ kernel.reshape(-1, kernel.shape[-1]) + bias


def adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
    """PyTorch adaptive average pooling along one axis as an (out, in) matrix (as jaxdyn's)."""
    p = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)
        p[i, start:end] = 1.0 / (end - start)
    return p


def adaptive_avg_pool2d(x, out: int):
    """(N, H, W, C) -> (N, out, out, C), two constant matmuls like jaxdyn's (HIGHEST precision)."""
    ph = jnp.asarray(adaptive_pool_matrix(x.shape[1], out).astype(np.float32), dtype=x.dtype)
    pw = jnp.asarray(adaptive_pool_matrix(x.shape[2], out).astype(np.float32), dtype=x.dtype)
    hi = lax.Precision.HIGHEST
    y = jnp.einsum("ih,nhwc->niwc", ph, x, precision=hi)
    return jnp.einsum("jw,niwc->nijc", pw, y, precision=hi)


def _rbe(params: Mapping[str, Any], x, spec: Mapping[str, Any], spatial: int, conv_fn: Callable):
    dtype = params["dense/kernel"].dtype
    h = jnp.asarray(x, dtype)
    if h.ndim == spatial + 1:
        h = h[..., None]  # one input channel
    act = _act(spec.get("activation", "elu"))
    for i in range(spec["num_layers"]):
        h = act(conv_fn(h, params[f"conv_{i}/kernel"], params[f"conv_{i}/bias"], spec.get("padding", "VALID")))
    h = h.reshape(h.shape[0], -1)  # position-major, channels last: as flax's reshape
    z = (h @ params["dense/kernel"] + params["dense/bias"])[:, 0]
    return z if spec.get("output", "sigmoid") == "logits" else jax.nn.sigmoid(z)


def _vgg(params: Mapping[str, Any], x, spec: Mapping[str, Any], conv_fn: Callable):
    dtype = params["head/kernel"].dtype
    h = jnp.asarray(x, dtype)
    for i in range(spec["num_conv"]):
        h = jax.nn.relu(conv_fn(h, params[f"conv2d_{i}/kernel"], params[f"conv2d_{i}/bias"], "SAME"))
    h = adaptive_avg_pool2d(h, spec["pool_size"])
    h = jnp.transpose(h, (0, 3, 1, 2)).reshape(h.shape[0], -1)  # (C, H, W) flatten, as torch
    for j in range(len(spec["hidden"])):
        h = jax.nn.relu(h @ params[f"dense_{j}/kernel"] + params[f"dense_{j}/bias"])
    return h @ params["head/kernel"] + params["head/bias"]


def make_apply(spec: Mapping[str, Any], conv_impl: str = "lax") -> Callable:
    """``f(params, x)`` for a model spec (see the module docstring).

    ``conv_impl``: ``'lax'`` (``lax.conv_general_dilated``, what neural-tangents is given) or
    ``'patches'`` (slices + matmul, the same function; used for the float64 reference).
    """
    conv_fn = {"lax": conv, "patches": conv_patches}.get(conv_impl)
    if conv_fn is None:
        raise ValueError(f"conv_impl must be 'lax' or 'patches', got {conv_impl!r}")
    kind = spec.get("kind")
    if kind == "rbe1d":
        return lambda params, x: _rbe(params, x, spec, 1, conv_fn)
    if kind == "rbe2d":
        return lambda params, x: _rbe(params, x, spec, 2, conv_fn)
    if kind == "vgg":
        return lambda params, x: _vgg(params, x, spec, conv_fn)
    raise ValueError(f"spec['kind'] must be one of {KINDS}, got {kind!r}")


def flatten_params(tree: Mapping[str, Any], prefix: str = "") -> dict:
    """Nested flax params -> {'a/b': leaf}."""
    out = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_params(v, name + "/"))
        else:
            out[name] = v
    return out


def unflatten_params(flat: Mapping[str, Any]) -> dict:
    """{'a/b': leaf} -> nested dict (flax's layout)."""
    out: dict = {}
    for name, v in flat.items():
        node = out
        *path, last = name.split("/")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = v
    return out
