"""Theory at scale: the alpha/beta ODE over many parameter sets, diffrax batched vs a scipy loop.

Both integrate the same equations (``jaxdyn.theory.saxe.alpha_beta_vector_field``) from the same
initial values to the same save times, with an adaptive 5th-order Runge-Kutta method (Tsit5 in
diffrax, RK45 = Dormand-Prince in scipy) at the same rtol/atol. The answers are compared
against each other and against a tight float64 scipy reference on a subset. diffrax runs in both
batching modes of ``jaxdyn.theory.saxe.solve_batch``: ``per_member`` (vmap: own steps per member)
and ``joint`` (one stacked system, max-norm step control).

    python benchmarks/bench_ode.py [--members 10000] [--scipy-members 500] [--repeats 3]

The scipy loop is timed on ``--scipy-members`` parameter sets and scaled linearly to
``--members`` (each solve_ivp call is independent, so its cost is linear in members); the
diffrax batch is timed on all members. Writes benchmarks/out/ode.json and ode.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jaxdyn.theory import saxe  # noqa: E402


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parameter_sets(n: int, seed: int = 0):
    """(beta0, c, v) for n conditions, spread over the ranges the experiments use."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 1.5, n), rng.uniform(0.5, 2.0, n), rng.uniform(0.01, 1.0, n)


def scipy_loop(beta0, c, v, ts, rtol, atol, method="RK45"):
    out = np.empty((len(beta0), 2, len(ts)))
    for i in range(len(beta0)):
        def rhs(t, y, c=c[i], v=v[i]):
            return saxe.alpha_beta_vector_field(t, (y[0], y[1]), (c, v))

        sol = solve_ivp(rhs, (ts[0], ts[-1]), [0.0, beta0[i]], t_eval=ts, method=method, rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"scipy failed on member {i}: {sol.message}")
        out[i] = sol.y
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--scipy-members", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--atol", type=float, default=1e-8)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = parser.parse_args()

    ts = np.linspace(0.0, 10.0, 101)
    beta0, c, v = parameter_sets(args.members)
    rows = []
    for precision, mode in (("float32", "per_member"), ("float32", "joint"), ("float64", "per_member"), ("float64", "joint")):
        with jax.enable_x64(precision == "float64"):
            dtype = np.float64 if precision == "float64" else np.float32
            b, cc, vv, tt = (x.astype(dtype) for x in (beta0, c, v, ts))
            t0 = time.perf_counter()
            first = saxe.solve_alpha_beta(b, cc, vv, tt, rtol=args.rtol, atol=args.atol, mode=mode)
            jax.block_until_ready(first.ys)
            compile_and_first = time.perf_counter() - t0
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                sol = saxe.solve_alpha_beta(b, cc, vv, tt, rtol=args.rtol, atol=args.atol, mode=mode)
                jax.block_until_ready(sol.ys)
                times.append(time.perf_counter() - t0)
            diffrax_s = statistics.median(times)
            ys = np.stack([np.asarray(y, dtype=np.float64) for y in sol.ys], axis=1)  # (member, 2, time)
        rows.append(dict(precision=precision, mode=mode, diffrax_s=diffrax_s, diffrax_first_call_s=compile_and_first, ys=ys, ok=int(np.asarray(sol.ok).sum())))

    n_sc = min(args.scipy_members, args.members)
    sc_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        sc = scipy_loop(beta0[:n_sc], c[:n_sc], v[:n_sc], ts, args.rtol, args.atol)
        sc_times.append(time.perf_counter() - t0)
    scipy_s = statistics.median(sc_times) * args.members / n_sc
    n_ref = min(100, n_sc)
    ref = scipy_loop(beta0[:n_ref], c[:n_ref], v[:n_ref], ts, 1e-11, 1e-12, method="DOP853")

    result = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "jax": jax.__version__, "backend": jax.default_backend(),
                    "devices": [str(d) for d in jax.devices()]},
        "members": args.members,
        "save_times": len(ts),
        "rtol": args.rtol,
        "atol": args.atol,
        "scipy_loop_s": scipy_s,
        "scipy_loop_measured_members": n_sc,
        "scipy_max_error_vs_reference": float(np.max(np.abs(sc[:n_ref] - ref))),
        "diffrax": [],
    }
    for r in rows:
        result["diffrax"].append({
            "precision": r["precision"],
            "mode": r["mode"],
            "batch_s": r["diffrax_s"],
            "first_call_s": r["diffrax_first_call_s"],
            "speedup_vs_scipy_loop": scipy_s / r["diffrax_s"],
            "members_ok": r["ok"],
            "max_abs_diff_vs_scipy_loop": float(np.max(np.abs(r["ys"][:n_sc] - sc))),
            "max_error_vs_reference": float(np.max(np.abs(r["ys"][:n_ref] - ref))),
        })

    lines = [
        f"alpha/beta ODE, {args.members} parameter sets, {len(ts)} save times, rtol={args.rtol:g}, atol={args.atol:g}",
        f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, jax {jax.__version__} ({jax.default_backend()})",
        "",
        "| method | time for all members (s) | speed-up vs scipy loop | max error vs float64 reference | max diff vs scipy loop |",
        "| --- | --- | --- | --- | --- |",
        f"| scipy solve_ivp RK45, Python loop (timed on {n_sc}, scaled) | {scipy_s:.3f} | 1 | {result['scipy_max_error_vs_reference']:.2e} | 0 |",
    ]
    for d in result["diffrax"]:
        lines.append(f"| diffrax Tsit5, {d['mode']}, {d['precision']} (first call incl. compile {d['first_call_s']:.2f} s) | {d['batch_s']:.3f} | "
                     f"{d['speedup_vs_scipy_loop']:.1f}x | {d['max_error_vs_reference']:.2e} | {d['max_abs_diff_vs_scipy_loop']:.2e} |")
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ode.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "ode.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
