"""Helpers shared by the benchmarks, importable in jaxdyn's environment and in the legacy one.

Only the standard library, numpy and jax are imported here (no jaxdyn, no flax), because
benchmarks/nt_worker.py runs this module under jax 0.4.25 in the neural-tangents environment.

* :func:`machine_info`, :func:`matmul_peak`, :func:`fmt`: what bench_ensemble.py reports, in the
  same form.
* Peak memory of one call: :func:`measure_peak_rss` (Linux: frees the allocator's cached pages
  with ``malloc_trim``, resets the kernel's peak-RSS mark through ``/proc/self/clear_refs`` and
  reads ``VmHWM`` after the call; the result is the peak resident memory the call added).
* :func:`serve`: the worker side of a line-JSON protocol on stdin/stdout, so that the main
  benchmark can drive contenders living in another process (another environment) one call at a
  time and interleave their repeats with its own.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


# --------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------
def cpu_model() -> tuple[str, list[str]]:
    cpu, flags = "unknown", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    simd = [f for f in flags if f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")]
    return cpu, simd


def mem_total_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_info() -> dict:
    """CPU model, SIMD flags, cores, memory, and the versions of python / jax / jaxlib / numpy."""
    import jaxlib

    cpu, simd = cpu_model()
    return dict(
        cpu_model=cpu, simd=simd, os_cpu_count=os.cpu_count(), usable_cores=len(os.sched_getaffinity(0)),
        mem_total_bytes=mem_total_bytes(), python=platform.python_version(), platform=platform.platform(),
        jax=jax.__version__, jaxlib=jaxlib.__version__, numpy=np.__version__, backend=jax.default_backend(),
        devices=[str(d) for d in jax.devices()], xla_flags=os.environ.get("XLA_FLAGS", ""),
    )


def matmul_peak(n: int = 2048, repeats: int = 20) -> dict:
    """The float32 n x n @ n x n matmul rate (FLOP/s), best and median of ``repeats`` warm runs."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(k1, (n, n), jnp.float32)
    b = jax.random.normal(k2, (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    f(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a, b).block_until_ready()
        times.append(time.perf_counter() - t0)
    flops = 2.0 * n**3
    return dict(n=n, times_s=times, best_flops_per_s=flops / min(times), median_flops_per_s=flops / statistics.median(times))


def fmt(x, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, thousands separators above that; '-' for None."""
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)):
        return f"{x:,}"
    if x == 0:
        return "0"
    mag = int(np.floor(np.log10(abs(x))))
    if mag >= digits:
        return f"{x:,.0f}"
    if mag < -4:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{max(0, digits - 1 - mag)}f}"


# --------------------------------------------------------------------------------------------
# Peak memory of one call
# --------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def malloc_trim() -> None:
    """Give the C allocator's free pages back to the OS, so that they do not hide new allocations."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_peak_rss(call: Callable[[], Any]) -> tuple[Any, float, int | None]:
    """Run ``call()`` once; return (its result, wall seconds, peak resident bytes it added).

    The peak is VmHWM after the call minus VmRSS before it, with the high-water mark reset just
    before the call (Linux >= 4.0; None where the reset is not possible). It counts everything
    the call made resident (XLA's buffers, the output, its thread stacks), measured the same way
    in every process, whatever the JAX version.
    """
    gc.collect()
    malloc_trim()
    before = _status_kib("VmRSS")
    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        reset = False
    t0 = time.perf_counter()
    out = call()
    out = jax.block_until_ready(out)
    wall = time.perf_counter() - t0
    hwm = _status_kib("VmHWM")
    peak = (hwm - before) * 1024 if (reset and hwm is not None and before is not None) else None
    return out, wall, peak


def xla_memory(compiled) -> dict | None:
    """XLA's buffer-assignment sizes of a compiled function (None where the backend reports none:
    jaxlib 0.4.25 on CPU reports zeros)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not offered by every backend / version
        return None
    if m is None:
        return None
    d = {k: int(getattr(m, f"{k}_size_in_bytes", 0)) for k in ("argument", "output", "temp", "alias")}
    if not any(d.values()):
        return None
    d["total"] = d["argument"] + d["output"] + d["temp"] - d["alias"]
    return d


# --------------------------------------------------------------------------------------------
# Worker protocol
# --------------------------------------------------------------------------------------------
class Contender:
    """One way to compute the NTK: ``fn(*args)`` (jittable), plus notes to report."""

    def __init__(self, fn: Callable, args: tuple, notes: dict | None = None):
        self.fn, self.args, self.notes = fn, args, dict(notes or {})
        self.compiled = None


def serve(load: Callable[[dict], dict], info: dict) -> None:
    """Answer requests, one JSON object per line on stdin, one JSON answer per line on stdout.

    ``load(request) -> {name: (() -> Contender)}`` builds the contenders of one problem (a model
    at one N) from the request's ``npz`` file. Requests (``op``):

    * ``hello``: -> ``info`` (the environment: versions).
    * ``load`` {npz, ...}: -> {available: [names]}.
    * ``prepare`` {name, out, mem_limit_bytes, mem_estimate_bytes}: build, compile (timed), then,
      unless XLA's memory estimate (or, where XLA reports none, the given estimate) exceeds the
      limit, run once measuring peak RSS, save the result to ``out`` (.npy) -> compile_s,
      first_s, peak_rss_bytes, xla_memory, notes; or {skipped: reason}; or {not_applicable:
      reason} when the builder raises ValueError (the contender rejects this problem).
    * ``time`` {name}: one warm call -> {s: seconds}.
    * ``unload``, ``quit``.
    Any exception answers {error: one line}, and the worker goes on.
    """
    # Keep the protocol on the real stdout; everything else printed (by C libraries too) goes to
    # stderr, so a stray print cannot corrupt an answer.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    builders: dict = {}
    live: dict[str, Contender] = {}

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
            elif op == "load":
                live.clear()
                builders = load(req)
                answer({"available": list(builders)})
            elif op == "prepare":
                name = req["name"]
                t0 = time.perf_counter()
                try:
                    c = builders[name]()
                except ValueError as e:
                    # Rejected before compiling (e.g. a method that needs another kind of f).
                    answer({"not_applicable": str(e).splitlines()[0][:300]})
                    continue
                c.args = jax.device_put(c.args)  # inputs resident before timing, as for a user's arrays
                lowered = jax.jit(c.fn).lower(*c.args)
                c.compiled = lowered.compile()
                compile_s = time.perf_counter() - t0
                xm = xla_memory(c.compiled)
                limit = req.get("mem_limit_bytes")
                est = xm["total"] if xm else req.get("mem_estimate_bytes")
                if limit and est and est > limit:
                    src = "XLA buffer assignment" if xm else "extrapolated from the previous N"
                    answer({"skipped": f"memory: {est / 2**30:.3g} GiB ({src}) > limit {limit / 2**30:.3g} GiB",
                            "compile_s": compile_s, "xla_memory": xm, "notes": c.notes})
                    continue
                out, first_s, peak = measure_peak_rss(lambda: c.compiled(*c.args))
                arr = np.asarray(out)
                np.save(req["out"], arr)
                del out, arr
                live[name] = c
                answer({"compile_s": compile_s, "first_s": first_s, "peak_rss_bytes": peak, "xla_memory": xm,
                        "notes": c.notes})
            elif op == "time":
                c = live[req["name"]]
                t0 = time.perf_counter()
                jax.block_until_ready(c.compiled(*c.args))
                answer({"s": time.perf_counter() - t0})
            elif op == "unload":
                live.clear()
                builders = {}
                gc.collect()
                answer({"ok": True})
            elif op == "quit":
                answer({"ok": True})
                return
            else:
                answer({"error": f"unknown op {op!r}"})
        except Exception as e:  # noqa: BLE001 - reported to the driver, which records it
            traceback.print_exc(file=sys.stderr)
            msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            answer({"error": msg})


def load_npz(path: str) -> dict:
    """The benchmark problem saved by bench_ntk.py: {'spec': dict, 'x': array, 'params': {name: array}}."""
    with np.load(path, allow_pickle=False) as z:
        spec = json.loads(str(z["spec"]))
        x = np.asarray(z["x"])
        params = {k[len("param:"):]: np.asarray(z[k]) for k in z.files if k.startswith("param:")}
    return {"spec": spec, "x": x, "params": params}
