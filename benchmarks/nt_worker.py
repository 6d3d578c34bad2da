#!/usr/bin/env python
"""neural-tangents' empirical NTK, driven by benchmarks/bench_ntk.py in the legacy environment.

    /work/nt-venv/bin/python benchmarks/nt_worker.py      (built by benchmarks/legacy_env.sh)

neural-tangents 0.6.5 imports only on JAX <= 0.4.x, so it runs in its own environment, in this
process, and answers bench_ntk.py's requests on stdin/stdout (protocol: benchmarks/_common.py,
``serve``). It imports numpy, jax, neural_tangents and the two small jax-only benchmark modules;
never jaxdyn. The model is the pure function of benchmarks/ntk_models.py on the parameters and
inputs that bench_ntk.py saved (.npz), which bench_ntk.py checked against the jaxdyn flax model.

Contenders: ``nt.empirical_ntk_fn(f, trace_axes=(), vmap_axes=0, implementation=I)`` for I in
JACOBIAN_CONTRACTION, NTK_VECTOR_PRODUCTS, STRUCTURED_DERIVATIVES, AUTO, called as
``kernel_fn(x, None, params)`` (x2=None: the documented fast path for x1 == x2), under jit.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import ntk_models  # noqa: E402
import numpy as np  # noqa: E402

IMPLEMENTATIONS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES", "AUTO")


def contender_name(impl: str) -> str:
    return f"nt:{impl.lower()}"


def main() -> None:
    import neural_tangents as nt

    info = _common.machine_info()
    info["neural_tangents"] = nt.__version__

    def load(req: dict) -> dict:
        prob = _common.load_npz(req["npz"])
        f = ntk_models.make_apply(prob["spec"])
        params = {k: np.asarray(v, np.float32) for k, v in prob["params"].items()}
        x = np.asarray(prob["x"], np.float32)

        def builder(impl):
            def build():
                kernel_fn = nt.empirical_ntk_fn(f, trace_axes=(), vmap_axes=0,
                                                implementation=getattr(nt.NtkImplementation, impl))
                return _common.Contender(lambda xx, p: kernel_fn(xx, None, p), (x, params),
                                         {"implementation": impl, "fn": "pure (lax.conv)"})
            return build

        return {contender_name(i): builder(i) for i in IMPLEMENTATIONS}

    _common.serve(load, info)


if __name__ == "__main__":
    main()
