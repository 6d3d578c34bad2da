#!/usr/bin/env python
"""neural-tangents' infinite-width kernels (``stax``), driven by benchmarks/bench_kernels.py.

    /work/nt-venv/bin/python benchmarks/nt_kernels_worker.py      (built by benchmarks/legacy_env.sh)

neural-tangents 0.6.5 imports only on JAX <= 0.4.x, so it runs in its own environment, in this
process, and answers bench_kernels.py's requests, one JSON object per line on stdin/stdout. It
imports numpy, jax, neural_tangents and benchmarks/_common.py; never jaxdyn.

The network is a list of layer dicts (``spec``, the format of bench_kernels.py's ARCHS) turned
into ``stax.serial``: ``dense`` -> ``stax.Dense``, ``conv`` -> ``stax.Conv`` (channels last),
``relu`` -> ``stax.Relu``, ``erf`` -> ``stax.Erf`` (a=1, b=1, c=0: plain erf), ``elu`` ->
``stax.ElementwiseNumerical(elu, deg=order, df=elu')``, ``flatten`` -> ``stax.Flatten``,
``gap`` -> ``stax.GlobalAvgPool``. The kernel is ``nt.batch(jit(kernel_fn), batch_size)`` (the
documented way to bound memory: neural-tangents' quadrature holds deg^2 x block x positions
values at once), called as ``kernel_fn(x, None, get)``; N must be a multiple of the batch size.

Requests (``op``): ``hello`` -> environment; ``prepare`` {npz, spec, get, batch_size, out[, dtype]} ->
builds the kernel function, runs it once (compile + first call, peak RSS measured as in
_common.measure_peak_rss) and saves the (nngp, ntk) result to ``out`` (.npz); ``time`` -> one
warm call {s}; ``quit``. Any exception answers {error: one line}.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import numpy as np  # noqa: E402


def build_stax(spec: list[dict]):
    """``stax.serial`` of the layer dicts (module docstring)."""
    import jax.numpy as jnp
    from neural_tangents import stax

    def elu(x):
        return jnp.where(x > 0, x, jnp.expm1(jnp.minimum(x, 0.0)))

    def elu_grad(x):
        return jnp.where(x > 0, 1.0, jnp.exp(jnp.minimum(x, 0.0)))

    layers = []
    for d in spec:
        kind = d["layer"]
        lin = dict(W_std=d.get("W_std", 1.0), b_std=d.get("b_std"), parameterization=d.get("parametrization", "ntk"))
        if kind == "dense":
            layers.append(stax.Dense(d["out"], **lin))
        elif kind == "conv":
            layers.append(stax.Conv(d["out"], tuple(d["kernel"]), padding=d["padding"], **lin))
        elif kind == "relu":
            layers.append(stax.Relu())
        elif kind == "erf":
            layers.append(stax.Erf())
        elif kind == "elu":
            layers.append(stax.ElementwiseNumerical(elu, deg=int(d["order"]), df=elu_grad))
        elif kind == "flatten":
            layers.append(stax.Flatten())
        elif kind == "gap":
            layers.append(stax.GlobalAvgPool())
        else:
            raise ValueError(f"unknown layer {kind!r}")
    return stax.serial(*layers)


def main() -> None:
    import warnings

    import jax
    import neural_tangents as nt

    warnings.filterwarnings("ignore")  # ElementwiseNumerical warns on every construction
    info = _common.machine_info()
    info["neural_tangents"] = nt.__version__
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints (C libraries too) go to stderr, not into the protocol
    sys.stdout = sys.stderr
    live = {}

    def answer(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        op = req.get("op")
        try:
            if op == "hello":
                answer(info)
            elif op == "prepare":
                live.clear()
                with np.load(req["npz"]) as z:
                    x = jax.device_put(np.asarray(z["x"], req.get("dtype", "float32")))
                get = tuple(req["get"])
                _, _, kernel_fn = build_stax(req["spec"])
                bs = int(req["batch_size"])
                kfn = nt.batch(jax.jit(kernel_fn, static_argnames="get"), batch_size=bs) if bs < x.shape[0] \
                    else jax.jit(kernel_fn, static_argnames="get")

                def call(kfn=kfn, x=x, get=get):
                    return kfn(x, None, get)

                out, first_s, peak = _common.measure_peak_rss(call)
                res = dict(zip(get, out)) if isinstance(out, tuple) else {get[0]: out}
                np.savez(req["out"], **{k: np.asarray(v) for k, v in res.items()})
                live["call"] = call
                answer({"first_s": first_s, "peak_rss_bytes": peak, "batch_size": bs})
            elif op == "time":
                t0 = time.perf_counter()
                jax.block_until_ready(live["call"]())
                answer({"s": time.perf_counter() - t0})
            elif op == "quit":
                answer({"ok": True})
                return
            else:
                answer({"error": f"unknown op {op!r}"})
        except Exception as e:  # noqa: BLE001 - reported to the driver, which records it
            traceback.print_exc(file=sys.stderr)
            answer({"error": f"{type(e).__name__}: {e}".splitlines()[0][:300]})


if __name__ == "__main__":
    main()
