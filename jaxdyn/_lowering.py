"""Compile time on CPU: JAX's unrolled lowering of the threefry random-bit generator.

On CPU, JAX lowers threefry2x32 (every ``jax.random`` draw) to rolled loops, a while loop over
the cipher's rounds; on GPU and TPU it emits the rounds unrolled. XLA:CPU compiles the rolled
form more slowly and runs it no faster: the rbe-response quick run spent 19-20 s compiling with
the rolled form and 13-15 s with the unrolled one (2-core CPU, 2026-12-04), and at 1,024 and
16,384 members the RBE net trained at the same rate with either. Threefry is integer arithmetic
and both forms compute the same rounds, so the random bits, and every result, are bitwise the
same (tests/test_engine.py checks them against the default lowering in a subprocess).

:func:`use_unrolled_threefry_on_cpu` registers JAX's own unrolled rule for the CPU platform. It
is called when jaxdyn's JAX layers are imported (the engine, models, theory, NTK); setting
``JAXDYN_ROLLED_THREEFRY=1`` keeps JAX's default. The rule lives in JAX's private modules
(``jax._src``), so with a JAX that lacks them nothing changes.
"""

from __future__ import annotations

import os

_ENV = "JAXDYN_ROLLED_THREEFRY"


def use_unrolled_threefry_on_cpu() -> bool:
    """Registers the unrolled threefry lowering for CPU (idempotent). Returns whether it is in use."""
    if os.environ.get(_ENV, "").strip() not in ("", "0"):
        return False
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32
        rule, primitive = threefry2x32._threefry2x32_lowering_rule, threefry2x32.threefry2x32_p
    except (ImportError, AttributeError):  # another JAX layout: its default lowering stays
        return False
    mlir.register_lowering(primitive, rule, platform="cpu")
    return True
