"""Theory at scale: the reduced theories over many parameter sets, diffrax batched vs a scipy loop.

Two theories: the alpha/beta ODE of Saxe's deep linear reduction
(``jaxdyn.theory.saxe.alpha_beta_vector_field``) and the two-group mean field of Nakazato's
training response (Eq. 11, ``jaxdyn.theory.meanfield.meanfield_vector_field('bce', 'logit')``;
its scipy right-hand side is the same equation in NumPy). Both sides integrate the same equations from the same
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
import statistics
import sys
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import scipy
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model  # noqa: E402  (benchmarks/_common.py)

from jaxdyn.theory import meanfield, saxe  # noqa: E402


def parameter_sets(n: int, seed: int = 0):
    """(beta0, c, v) for n conditions, spread over the ranges the experiments use."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 1.5, n), rng.uniform(0.5, 2.0, n), rng.uniform(0.01, 1.0, n)


def meanfield_sets(n: int, groups: int = 2, seed: int = 1):
    """Random two-group (G-group) mean fields of Nakazato Eq. 11, kernels in the range rbe-meanfield sees.

    Returns a dict of (n, ...) float64 arrays: diag (n, G), cross (n, G, G) symmetric, group_weight
    W (n, G) summing to 1, point_weight wbar (n, G) = W / group size, y (n, G) labels p1,
    f0 (n, G) initial group predictions, lr (n,).
    """
    rng = np.random.default_rng(seed)
    diag = rng.uniform(0.5, 2.0, (n, groups))
    cross = rng.uniform(-0.2, 0.4, (n, groups, groups))
    cross = 0.5 * (cross + np.swapaxes(cross, 1, 2))
    idx = np.arange(groups)
    cross[:, idx, idx] = rng.uniform(0.1, 0.5, (n, groups))
    big_w = rng.dirichlet(np.ones(groups), n)
    sizes = rng.integers(1, 16, (n, groups))
    return dict(diag=diag, cross=cross, group_weight=big_w, point_weight=big_w / sizes,
                y=rng.uniform(0.1, 0.9, (n, groups)), f0=rng.uniform(0.3, 0.7, (n, groups)),
                lr=np.full(n, 0.1))


def meanfield_rhs_numpy(diag, cross, big_w, wbar, y, lr):
    """Eq. 11 in logit space with the binary cross-entropy, in NumPy (what a scipy user writes).

    The same equation as ``meanfield.meanfield_vector_field('bce', 'logit')``: for the sigmoid
    output and BCE, f (1 - f) dL/df = f - y.
    """
    eye = np.eye(len(diag))
    coeff = cross * big_w[None, :] * (1 - eye) + eye * (wbar * diag + (big_w - wbar) * np.diag(cross))

    def rhs(t, z):
        f = 1.0 / (1.0 + np.exp(-z))
        return -lr * coeff @ (f - y)

    return rhs


def problems(n: int):
    """The two theories: name -> (diffrax solve(dtype, mode) -> (member, time, state), scipy rhs/y0 per member, ts)."""
    beta0, c, v = parameter_sets(n)
    ab_ts = np.linspace(0.0, 10.0, 101)

    def ab_diffrax(dtype, mode, rtol, atol):
        sol = saxe.solve_alpha_beta(*(x.astype(dtype) for x in (beta0, c, v, ab_ts)), rtol=rtol, atol=atol, mode=mode)
        return jnp.stack(sol.ys, axis=-1), sol.ok  # (member, time, 2)

    def ab_scipy(i):
        def rhs(t, y, c=c[i], v=v[i]):
            return saxe.alpha_beta_vector_field(t, (y[0], y[1]), (c, v))
        return rhs, np.array([0.0, beta0[i]])

    mf = meanfield_sets(n)
    mf_ts = np.linspace(0.0, 500.0, 101)
    field = meanfield.meanfield_vector_field("bce", "logit")

    def mf_diffrax(dtype, mode, rtol, atol):
        z0 = np.log(mf["f0"]) - np.log1p(-mf["f0"])
        args = tuple(jnp.asarray(mf[k], dtype) for k in ("diag", "cross", "group_weight", "point_weight", "y", "lr"))
        sol = saxe.solve_batch(field, jnp.asarray(z0, dtype), args, jnp.asarray(mf_ts, dtype), rtol=rtol, atol=atol, mode=mode)
        return sol.ys, sol.ok  # (member, time, G) logits

    def mf_scipy(i):
        rhs = meanfield_rhs_numpy(*(mf[k][i] for k in ("diag", "cross", "group_weight", "point_weight", "y", "lr")))
        return rhs, np.log(mf["f0"][i]) - np.log1p(-mf["f0"][i])

    return {
        "alpha/beta ODE (Saxe)": (ab_diffrax, ab_scipy, ab_ts),
        "two-group mean field, Eq. 11, logit space, BCE (Nakazato)": (mf_diffrax, mf_scipy, mf_ts),
    }


def scipy_loop(make_rhs, members, ts, rtol, atol, method="RK45"):
    """solve_ivp member after member: (len(members), time, state)."""
    out = []
    for i in members:
        rhs, y0 = make_rhs(i)
        sol = solve_ivp(rhs, (ts[0], ts[-1]), y0, t_eval=ts, method=method, rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"scipy failed on member {i}: {sol.message}")
        out.append(sol.y.T)
    return np.stack(out)


def bench_problem(name, diffrax_solve, make_rhs, ts, args):
    rows = []
    for precision, mode in (("float32", "per_member"), ("float32", "joint"), ("float64", "per_member"), ("float64", "joint")):
        with jax.enable_x64(precision == "float64"):
            dtype = np.float64 if precision == "float64" else np.float32
            t0 = time.perf_counter()
            ys, ok = diffrax_solve(dtype, mode, args.rtol, args.atol)
            jax.block_until_ready(ys)
            first = time.perf_counter() - t0
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                ys, ok = diffrax_solve(dtype, mode, args.rtol, args.atol)
                jax.block_until_ready(ys)
                times.append(time.perf_counter() - t0)
        rows.append(dict(precision=precision, mode=mode, batch_s=statistics.median(times), first_call_s=first,
                         ys=np.asarray(ys, np.float64), ok=int(np.asarray(ok).sum())))
        print(f"  {name}: diffrax {precision} {mode}: {rows[-1]['batch_s']:.3f} s (first {first:.2f} s)", flush=True)

    n_sc = min(args.scipy_members, args.members)
    sc_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        sc = scipy_loop(make_rhs, range(n_sc), ts, args.rtol, args.atol)
        sc_times.append(time.perf_counter() - t0)
    scipy_s = statistics.median(sc_times) * args.members / n_sc
    n_ref = min(100, n_sc)
    ref = scipy_loop(make_rhs, range(n_ref), ts, 1e-11, 1e-12, method="DOP853")
    scale = float(np.max(np.abs(ref)))
    print(f"  {name}: scipy loop {scipy_s:.1f} s for {args.members} (timed on {n_sc})", flush=True)
    return {
        "problem": name,
        "scipy_loop_s": scipy_s,
        "scipy_loop_measured_members": n_sc,
        "scipy_max_error_vs_reference": float(np.max(np.abs(sc[:n_ref] - ref))),
        "reference_max_abs": scale,
        "diffrax": [{
            "precision": r["precision"], "mode": r["mode"], "batch_s": r["batch_s"], "first_call_s": r["first_call_s"],
            "speedup_vs_scipy_loop": scipy_s / r["batch_s"], "members_ok": r["ok"],
            "max_abs_diff_vs_scipy_loop": float(np.max(np.abs(r["ys"][:n_sc] - sc))),
            "max_error_vs_reference": float(np.max(np.abs(r["ys"][:n_ref] - ref))),
        } for r in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--scipy-members", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--atol", type=float, default=1e-8)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = parser.parse_args()

    load0 = os.getloadavg()[0]
    results = [bench_problem(name, *spec, args) for name, spec in problems(args.members).items()]
    result = {
        "machine": {"cpu": cpu_model()[0], "cores": os.cpu_count(), "jax": jax.__version__, "diffrax": diffrax.__version__,
                    "scipy": scipy.__version__, "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
                    "load_1min_start": load0, "load_1min_end": os.getloadavg()[0]},
        "members": args.members, "rtol": args.rtol, "atol": args.atol, "problems": results,
    }
    m = result["machine"]
    lines = [
        f"{args.members} parameter sets per theory, 101 save times, rtol={args.rtol:g}, atol={args.atol:g}; "
        f"Tsit5 (diffrax) vs RK45 (scipy solve_ivp), both adaptive 5th-order Runge-Kutta",
        f"machine: {m['cpu']}, {m['cores']} cores, jax {m['jax']}, diffrax {m['diffrax']}, scipy {m['scipy']} ({m['backend']}); "
        f"1-min load {m['load_1min_start']:.2f} at start, {m['load_1min_end']:.2f} at end",
    ]
    for r in results:
        lines += [
            "",
            f"**{r['problem']}** (errors are max abs over members and times, against a float64 DOP853 reference at "
            f"rtol 1e-11 on the first 100 members; largest |y| there {r['reference_max_abs']:.3g})",
            "",
            "| method | time for all members (s) | speed-up vs scipy loop | members ok | max error vs reference | max diff vs scipy loop |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| scipy solve_ivp RK45, Python loop (timed on {r['scipy_loop_measured_members']}, scaled) | {r['scipy_loop_s']:.2f} | 1 | - | "
            f"{r['scipy_max_error_vs_reference']:.2e} | 0 |",
        ]
        for d in r["diffrax"]:
            lines.append(f"| diffrax Tsit5, vmapped `solve_batch` mode={d['mode']}, {d['precision']} (first call incl. compile "
                         f"{d['first_call_s']:.2f} s) | {d['batch_s']:.3f} | {d['speedup_vs_scipy_loop']:.1f}x | {d['members_ok']} | "
                         f"{d['max_error_vs_reference']:.2e} | {d['max_abs_diff_vs_scipy_loop']:.2e} |")
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ode.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "ode.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
