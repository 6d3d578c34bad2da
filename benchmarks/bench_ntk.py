#!/usr/bin/env python
"""Empirical NTK: jaxdyn.ntk vs neural-tangents (in its legacy environment) vs jacrev + einsum.

    python benchmarks/bench_ntk.py [--models rbe,rbe2d,vgg] [--sizes 256,1024 | rbe:256,1024/vgg:64]
                                   [--repeats R] [--quick] [--nt-python /work/nt-venv/bin/python]
                                   [--fns model,pure,apply] [--contenders PREFIX,...]
                                   [--mem-limit-gib G] [--time-limit-s S] [--out benchmarks/out]

The full N x N (x K x K) NTK Theta(x, x) of one model at one parameter point, on the same
parameters and inputs in every contender, on the same machine in one run:

* ``jaxdyn:<m> [fn]``: ``jaxdyn.ntk.ntk(f, params, x, None, method=m)`` under jit, for every
  method in ``jaxdyn.ntk.NTK_METHODS`` (read at run time) and ``'auto'`` (reported as "not
  offered" where jaxdyn.ntk rejects it; where jaxdyn.ntk exposes its choice, the choice is
  recorded).
* ``jacrev+einsum [fn]``: the naive way in current JAX: per-example Jacobians
  ``vmap(jacrev(f_one), (None, 0))``, contracted leaf by leaf with ``einsum('iaP,jbP->ijab')``.
* ``nt:<implementation>``: neural-tangents 0.6.5
  ``empirical_ntk_fn(f, trace_axes=(), vmap_axes=0, implementation=I)`` for
  JACOBIAN_CONTRACTION, NTK_VECTOR_PRODUCTS, STRUCTURED_DERIVATIVES and AUTO, called with
  x2=None (neural-tangents' documented fast path for x1 == x2; jaxdyn gets x2=None too). It
  needs JAX <= 0.4.x, so it runs in the legacy environment (benchmarks/legacy_env.sh) in a
  worker process (benchmarks/nt_worker.py).

``fn`` is the function differentiated: ``model`` = the jaxdyn flax model as it ships (its
convolutions are PatchConv: patches + one matmul), given as ``jaxdyn.ntk.apply_fn(model)``, so
the structured method reads its flax layers; ``pure`` = the same network written with
``lax.conv_general_dilated`` in benchmarks/ntk_models.py, the very function neural-tangents is
given, a plain function (the structured method reads its jaxpr); ``apply`` = the flax model as a
plain function, ``lambda p, x: model.apply({'params': p}, x)`` (the jaxpr path on the model's
PatchConv matmuls; jaxdyn's methods only). Before each problem the pure function is checked
against the flax model on the same parameters and inputs (float32; the run stops if they
differ by more than 1e-5 of max |f|).

Every contender runs in a worker process (jaxdyn's in this environment, neural-tangents' in the
legacy one) that holds the compiled functions of one problem (model, N) and answers one call
at a time, so the warm repeats of all contenders are interleaved round-robin (load from other
processes hits all alike). Reported per contender:

* warm time: the median of ``--repeats`` calls of the compiled function, each ending in
  ``block_until_ready`` (fewer repeats when one call takes longer than ``--budget-s`` /
  repeats; the number used is shown);
* compile: trace + lower + compile of the jitted function (``jax.jit(fn).lower(...).compile()``);
* first call: the first execution after compiling;
* peak memory: the peak resident memory added by the first call (Linux: the kernel's peak-RSS
  mark, reset just before the call, minus the RSS before it, after ``malloc_trim``); measured the
  same way in both environments. Also XLA's own buffer-assignment total
  (``compiled.memory_analysis()``: arguments + outputs + temporaries) where the JAX version
  reports it (jaxlib 0.4.25 on CPU does not);
* agreement: max |Theta - Theta_ref| / max |Theta_ref|, Theta_ref computed in float64 (the pure
  function, per-example Jacobians contracted, ``jax.enable_x64``).

A contender whose memory estimate exceeds ``--mem-limit-gib`` is not run ("skipped: memory";
the estimate is XLA's where available, else the previous N's measured peak scaled by
(N / N_prev)^2); one whose time extrapolated the same way from the previous N exceeds
``--time-limit-s`` is "skipped: time".

Output: ``<out>/ntk.json`` (every number) and ``<out>/ntk.md`` (tables, with the machine, both
environments' versions and the load average).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

# The jaxdyn of this checkout (beside benchmarks/), not whichever one is installed; then the
# benchmark's own modules.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ntk_models  # noqa: E402
from _common import fmt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_NT_PYTHON = "/work/nt-venv/bin/python"
NT_MISSING = "not run: legacy env missing, run benchmarks/legacy_env.sh"
AGREE_TOL = 1e-3  # float32 NTKs agree with the float64 reference to ~1e-6; 1e-3 flags a wrong result


# --------------------------------------------------------------------------------------------
# The benchmarked models
# --------------------------------------------------------------------------------------------
def _rbe2d_class():
    from jaxdyn.models import RBEConvNet2D

    return RBEConvNet2D


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    describe: str
    make_model: Callable[[], Any]
    spec: dict  # benchmarks/ntk_models.py description of the same network
    make_x: Callable[[Any, int], Any]  # (key, N) -> inputs
    sizes: tuple[int, ...]
    quick_sizes: tuple[int, ...]


def _rbe_model():
    from jaxdyn.models import RBEConvNet

    return RBEConvNet()


def _vgg_model():
    from jaxdyn.models import DenseSampleVGG

    return DenseSampleVGG(num_classes=5, num_conv=5, conv_features=3, hidden=(256, 256), pool_size=8)


CASES = {
    "rbe": Case(
        "rbe",
        "RBEConvNet() as shipped: 3 Conv1D layers of 8 filters, kernel 3, VALID, ELU, Dense(1), sigmoid "
        "output (N,); inputs random 16-bit strings",
        _rbe_model,
        dict(kind="rbe1d", num_layers=3, padding="VALID", activation="elu", output="sigmoid"),
        lambda key, n: jax.random.bernoulli(key, 0.5, (n, 16)).astype(jnp.float32),
        (256, 1024, 4096),
        (64,),
    ),
    "rbe2d": Case(
        "rbe2d",
        "RBEConvNet2D() (the rbe-images net): 3 Conv2D layers of 8 filters, 3x3, VALID, ELU, Dense(1), sigmoid "
        "output (N,); inputs uniform [0, 1) 8x8 images (the size of scikit-learn's digits)",
        lambda: _rbe2d_class()(),
        dict(kind="rbe2d", num_layers=3, padding="VALID", activation="elu", output="sigmoid"),
        lambda key, n: jax.random.uniform(key, (n, 8, 8), jnp.float32),
        (256, 1024, 4096),
        (64,),
    ),
    "vgg": Case(
        "vgg",
        "DenseSampleVGG(num_classes=5, num_conv=5, conv_features=3, hidden=(256, 256), pool_size=8), eval mode: "
        "5 SAME 3x3 Conv2D+ReLU at 32x32, adaptive average pool to 8x8, Dense 256-256-5; output (N, 5); "
        "inputs N(0, 1) 32x32x3 images",
        _vgg_model,
        dict(kind="vgg", num_conv=5, pool_size=8, hidden=[256, 256]),
        lambda key, n: jax.random.normal(key, (n, 32, 32, 3), jnp.float32),
        (64, 256),
        (16,),
    ),
}
FNS = ("model", "pure", "apply")


# --------------------------------------------------------------------------------------------
# Contenders of the current environment (run in the worker: `bench_ntk.py --worker`)
# --------------------------------------------------------------------------------------------
def naive_ntk(f: Callable) -> Callable:
    """``(params, x) -> Theta``: per-example ``jacrev`` under vmap, then einsum per parameter leaf.

    Returns (N, N) for a model with output (N,), else (N, N, K, K).
    """

    def kernel(params, x):
        def one(p, xi):
            return f(p, xi[None])[0]

        out = jax.eval_shape(one, params, x[0])
        k = int(np.prod(out.shape)) if out.shape else 1
        jac = jax.vmap(jax.jacrev(one), (None, 0))(params, x)  # leaves (N, [K,] *param_shape)
        n = x.shape[0]
        theta = sum(
            jnp.einsum("iaP,jbP->ijab", leaf.reshape(n, k, -1), leaf.reshape(n, k, -1))
            for leaf in jax.tree_util.tree_leaves(jac)
        )
        return theta[:, :, 0, 0] if not out.shape else theta

    return kernel


def auto_choice(ntk_mod, f, params, x) -> str | None:
    """The method jaxdyn.ntk's 'auto' picks here (``jaxdyn.ntk.choose_method``), None where the
    module does not expose its choice."""
    choose = getattr(ntk_mod, "choose_method", None)
    if choose is None:
        return None
    return str(choose(f, params, x, None))


def jaxdyn_methods() -> list[str]:
    from jaxdyn import ntk

    methods = list(ntk.NTK_METHODS)
    if "auto" not in methods:
        methods.append("auto")  # tried; reported "not offered" if jaxdyn.ntk rejects it
    return methods


def worker_main() -> None:
    """Serve the jaxdyn-side contenders (protocol: benchmarks/_common.py, ``serve``)."""
    import flax

    import jaxdyn
    from jaxdyn import ntk

    info = _common.machine_info()
    info.update(flax=flax.__version__, jaxdyn=getattr(jaxdyn, "__version__", "?"),
                jaxdyn_path=os.path.dirname(os.path.abspath(jaxdyn.__file__)), ntk_methods=list(ntk.NTK_METHODS))

    def load(req: dict) -> dict:
        prob = _common.load_npz(req["npz"])
        case = CASES[req["model"]]
        flat = {k: jnp.asarray(v, jnp.float32) for k, v in prob["params"].items()}
        x = jnp.asarray(prob["x"], jnp.float32)
        model = case.make_model()
        fns = {
            "model": (ntk.apply_fn(model), ntk_models.unflatten_params(flat)),
            "pure": (ntk_models.make_apply(prob["spec"]), flat),
            "apply": (lambda p, xx: model.apply({"params": p}, xx), ntk_models.unflatten_params(flat)),
        }
        builders = {}
        for fn_name in req["fns"]:
            f, params = fns[fn_name]
            for m in jaxdyn_methods():
                def build(f=f, params=params, m=m, fn_name=fn_name):
                    # Reject an unknown method before compiling (jaxdyn raises ValueError).
                    jax.eval_shape(lambda p, xx: ntk.ntk(f, p, xx, None, method=m), params, x[:2])
                    notes = {"method": m, "fn": fn_name}
                    if m == "auto":
                        notes["auto_choice"] = auto_choice(ntk, f, params, x)
                    return _common.Contender(lambda p, xx: ntk.ntk(f, p, xx, None, method=m), (params, x), notes)

                builders[f"jaxdyn:{m} [{fn_name}]"] = build

            def build_naive(f=f, params=params, fn_name=fn_name):
                return _common.Contender(naive_ntk(f), (params, x), {"fn": fn_name})

            if fn_name != "apply":  # the same computation as on the flax model
                builders[f"jacrev+einsum [{fn_name}]"] = build_naive
        return builders

    _common.serve(load, info)


# --------------------------------------------------------------------------------------------
# Driver side
# --------------------------------------------------------------------------------------------
class WorkerDied(RuntimeError):
    pass


class Worker:
    """A worker process answering line-JSON requests (see _common.serve)."""

    def __init__(self, label: str, cmd: list[str], log_path: str, env: dict):
        self.label, self.cmd, self.log_path, self.env = label, cmd, log_path, env
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, env=self.env, cwd=HERE)

    def log_tail(self, n=5) -> str:
        try:
            with open(self.log_path) as f:
                lines = [ln.strip() for ln in f.readlines() if ln.strip()]
            return " | ".join(lines[-n:])
        except OSError:
            return ""

    def ask(self, **req) -> dict:
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            rc = self.proc.poll()
            raise WorkerDied(f"{self.label} worker died (exit {rc}); log: {self.log_tail()}")
        return json.loads(line)

    def restart(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.start()

    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.ask(op="quit")
            except WorkerDied:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def reference_ntk(spec: dict, flat: dict, x: np.ndarray) -> np.ndarray:
    """Theta(x, x) in float64 from the pure function: (N, N) or (N, N, K, K).

    Per-example Jacobians contracted; convolutions as patches + matmul (XLA's CPU convolution
    is very slow in float64), the same function (checked in tests/test_bench_ntk.py).
    """
    with jax.enable_x64(True):
        f = ntk_models.make_apply(spec, conv_impl="patches")
        p64 = {k: jnp.asarray(np.asarray(v, np.float64)) for k, v in flat.items()}
        x64 = jnp.asarray(np.asarray(x, np.float64))
        theta = jax.jit(naive_ntk(f))(p64, x64)
        return np.asarray(theta, np.float64)


def outputs_flax_and_pure(case: Case, model, params, flat, x) -> tuple[np.ndarray, np.ndarray]:
    """The flax model's and the pure function's outputs on the same float32 params and x (one jit)."""
    f_pure = ntk_models.make_apply(case.spec)
    both = jax.jit(lambda p, fl, xx: (model.apply({"params": p}, xx), f_pure(fl, xx)))
    y_flax, y_pure = both(params, {k: jnp.asarray(v, jnp.float32) for k, v in flat.items()}, jnp.asarray(x, jnp.float32))
    return np.asarray(y_flax), np.asarray(y_pure)


def check_pure_matches_flax(case: Case, model, params, flat, x) -> float:
    """max |f_pure - f_flax| / max |f_flax| on the same float32 params and inputs."""
    y_flax, y_pure = outputs_flax_and_pure(case, model, params, flat, x)
    if y_flax.shape != y_pure.shape:
        raise SystemExit(f"{case.name}: pure function output {y_pure.shape} != flax model output {y_flax.shape}")
    rel = float(np.max(np.abs(y_flax - y_pure)) / max(np.max(np.abs(y_flax)), 1e-30))
    if not rel <= 1e-5:
        raise SystemExit(f"{case.name}: the pure-JAX function differs from the flax model by {rel:.2e} "
                         "(relative); the two sides would not compute the same NTK")
    return rel


def parse_sizes(text: str | None, models: list[str], quick: bool) -> dict[str, list[int]]:
    if not text:
        return {m: list(CASES[m].quick_sizes if quick else CASES[m].sizes) for m in models}
    if ":" not in text:
        sizes = [int(s) for s in text.split(",") if s]
        return {m: sizes for m in models}
    out = {m: list(CASES[m].quick_sizes if quick else CASES[m].sizes) for m in models}
    for part in text.split("/"):
        name, _, vals = part.partition(":")
        if name not in CASES:
            raise SystemExit(f"--sizes: unknown model {name!r}; models are {list(CASES)}")
        out[name] = [int(s) for s in vals.split(",") if s]
    return out


def extrapolate(prev: dict | None, n: int) -> tuple[float | None, float | None]:
    """(time, memory) at N from the same contender at the previous N, scaled by (N / N_prev)^2."""
    if not prev:
        return None, None
    r = (n / prev["n"]) ** 2
    t = prev["warm_s"] * r if prev.get("warm_s") else None
    m = prev["peak_bytes"] * r if prev.get("peak_bytes") else None
    return t, m


def run_problem(case: Case, n: int, model, params, flat, workers: dict, args, tmp: str, prev: dict) -> list[dict]:
    """All contenders on one model at one N: prepare each, then interleaved warm repeats."""
    x = np.asarray(case.make_x(jax.random.PRNGKey(1000 + n), n))
    pure_rel = check_pure_matches_flax(case, model, params, flat, x)
    npz = os.path.join(tmp, f"{case.name}_{n}.npz")
    np.savez(npz, spec=np.array(json.dumps(case.spec)), x=x, **{f"param:{k}": np.asarray(v) for k, v in flat.items()})
    t0 = time.perf_counter()
    ref = reference_ntk(case.spec, flat, x)
    ref_s = time.perf_counter() - t0
    ref_max = float(np.max(np.abs(ref)))
    print(f"[{case.name} N={n}] pure vs flax rel. diff {pure_rel:.1e}; float64 reference {ref.shape} in {ref_s:.1f}s",
          flush=True)
    load_start = os.getloadavg()

    order: list[tuple[str, str]] = []
    for side, w in workers.items():
        if w is None:
            continue
        req = {"op": "load", "npz": npz, "model": case.name, "fns": args.fns}
        try:
            avail = w.ask(**req)["available"]
        except WorkerDied as e:
            print(f"  {e}", flush=True)
            w.restart()
            avail = w.ask(**req)["available"]
        order += [(side, c) for c in avail if not args.contenders or any(c.startswith(p) for p in args.contenders)]

    rows: dict[str, dict] = {}
    ran: list[tuple[str, str]] = []
    limit = int(args.mem_limit_gib * 2**30)
    for side, name in order:
        row = dict(model=case.name, n=n, contender=name, side=side, status="ok")
        rows[name] = row
        p = prev.get(name)
        if p and p.get("skipped"):
            row["status"] = f"skipped: {p['why']} at N={p['n']}"
            print(f"  {name}: {row['status']}", flush=True)
            continue
        est_t, est_m = extrapolate(p, n)
        if est_t is not None and est_t > args.time_limit_s:
            row["status"] = f"skipped: time ({fmt(est_t)} s extrapolated from N={p['n']} > {fmt(args.time_limit_s)} s)"
            prev[name] = dict(n=n, skipped=True, why="time")
            print(f"  {name}: {row['status']}", flush=True)
            continue
        out_path = os.path.join(tmp, "theta.npy")
        try:
            res = workers[side].ask(op="prepare", name=name, out=out_path, mem_limit_bytes=limit,
                                    mem_estimate_bytes=est_m)
        except WorkerDied as e:
            res = {"error": str(e)}
            workers[side].restart()
            workers[side].ask(op="load", npz=npz, model=case.name, fns=args.fns)
            # The restarted worker lost what it had compiled: prepare those again.
            for _, n2 in [r for r in ran if r[0] == side]:
                workers[side].ask(op="prepare", name=n2, out=out_path, mem_limit_bytes=limit, mem_estimate_bytes=None)
            if os.path.exists(out_path):
                os.remove(out_path)
        row.update(compile_s=res.get("compile_s"), first_s=res.get("first_s"), peak_rss_bytes=res.get("peak_rss_bytes"),
                   xla_memory=res.get("xla_memory"), notes=res.get("notes", {}))
        if "not_applicable" in res:
            msg = res["not_applicable"]
            row["status"] = ("not offered by jaxdyn.ntk: " if "method must be one of" in msg else "n/a: ") + msg
        elif "error" in res:
            row["status"] = "error: " + res["error"]
            prev[name] = dict(n=n, skipped=True, why="error")
        elif "skipped" in res:
            row["status"] = "skipped: " + res["skipped"]
            prev[name] = dict(n=n, skipped=True, why=res["skipped"].split(":")[0])
        else:
            theta = np.load(out_path)
            os.remove(out_path)
            if theta.shape != ref.shape:
                row["status"] = f"error: shape {theta.shape}, reference {ref.shape}"
            else:
                row["rel_err"] = float(np.max(np.abs(theta.astype(np.float64) - ref)) / ref_max)
                if not row["rel_err"] <= AGREE_TOL:
                    row["status"] = f"wrong: rel. error {row['rel_err']:.1e} > {AGREE_TOL:g}"
            del theta
            reps = args.repeats
            if row["first_s"] * reps > args.budget_s:
                reps = max(1, int(args.budget_s // max(row["first_s"], 1e-9)))
            row["repeats"] = reps
            row["times_s"] = []
            ran.append((side, name))
        print(f"  {name}: {row['status']}" + (f", compile {row['compile_s']:.2f}s, first {row['first_s']:.3f}s, "
              f"peak {fmt((row['peak_rss_bytes'] or 0) / 2**20)} MiB, rel.err {row.get('rel_err', float('nan')):.1e}"
              if "rel_err" in row else ""), flush=True)

    # Warm repeats, round-robin over everything that ran.
    for r in range(max([rows[nm]["repeats"] for _, nm in ran] or [0])):
        for side, name in ran:
            row = rows[name]
            if r < row["repeats"] and "times_s" in row:
                try:
                    row["times_s"].append(workers[side].ask(op="time", name=name)["s"])
                except WorkerDied as e:
                    row["status"] = f"error: {e}"
                    row.pop("times_s")
                    workers[side].restart()
                    workers[side].ask(op="load", npz=npz, model=case.name, fns=args.fns)
    load_end = os.getloadavg()
    for _, name in ran:
        row = rows[name]
        if row.get("times_s"):
            row["warm_s"] = statistics.median(row["times_s"])
            row["min_s"] = min(row["times_s"])
            prev[name] = dict(n=n, warm_s=row["warm_s"], peak_bytes=row.get("peak_rss_bytes"))
            print(f"  {name}: warm {fmt(row['warm_s'])} s (median of {len(row['times_s'])})", flush=True)
    for w in workers.values():
        if w is not None:
            try:
                w.ask(op="unload")
            except WorkerDied:
                w.restart()
    os.remove(npz)
    for row in rows.values():
        row.update(loadavg_1min=[load_start[0], load_end[0]], reference_s=ref_s, pure_vs_flax_rel=pure_rel,
                   ref_max_abs=ref_max)
    return list(rows.values())


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def _ok(r):
    return r["status"] == "ok" and r.get("warm_s") is not None


def summarize(rows: list[dict]) -> list[dict]:
    """Per (model, N): jaxdyn's best method and its auto vs neural-tangents' best (agreeing ones)."""
    out = []
    keys = []
    for r in rows:
        if (r["model"], r["n"]) not in keys:
            keys.append((r["model"], r["n"]))
    for model, n in keys:
        sub = [r for r in rows if (r["model"], r["n"]) == (model, n)]
        jd = [r for r in sub if r["contender"].startswith("jaxdyn:") and _ok(r)]
        jd_auto = [r for r in jd if r["contender"].startswith("jaxdyn:auto")]
        nt = [r for r in sub if r["contender"].startswith("nt:") and _ok(r)]
        naive = [r for r in sub if r["contender"].startswith("jacrev") and _ok(r)]
        best = lambda rs: min(rs, key=lambda r: r["warm_s"]) if rs else None  # noqa: E731
        s = dict(model=model, n=n, best_jaxdyn=best(jd), nt_best=best(nt), naive_best=best(naive),
                 jaxdyn_auto=best(jd_auto))
        nb, bj, au = s["nt_best"], s["best_jaxdyn"], s["jaxdyn_auto"]
        s["best_jaxdyn_vs_nt"] = bj["warm_s"] / nb["warm_s"] if bj and nb else None
        s["auto_vs_nt"] = au["warm_s"] / nb["warm_s"] if au and nb else None
        # The auto goal: on each f, auto's time over the fastest jaxdyn method on the same f.
        per_fn = {}
        for fn in FNS:
            same = [r for r in jd if r["contender"].endswith(f"[{fn}]")]
            a_fn = [r for r in same if r["contender"].startswith("jaxdyn:auto")]
            if a_fn and best(same):
                per_fn[fn] = a_fn[0]["warm_s"] / best(same)["warm_s"]
        s["auto_vs_best_same_fn"] = per_fn
        # The plain-function goal: jaxdyn on the very function neural-tangents differentiates.
        s["best_pure"] = best([r for r in jd if r["contender"].endswith("[pure]")])
        s["best_pure_vs_nt"] = s["best_pure"]["warm_s"] / nb["warm_s"] if s["best_pure"] and nb else None
        if bj and nb and bj.get("peak_rss_bytes") and nb.get("peak_rss_bytes"):
            s["best_jaxdyn_mem_vs_nt"] = bj["peak_rss_bytes"] / nb["peak_rss_bytes"]
        out.append(s)
    return out


def _mib(b):
    return None if b is None else b / 2**20


def render(report: dict) -> str:
    m, ntenv = report["machine"], report.get("nt_env")
    lines = ["# Empirical NTK: jaxdyn vs neural-tangents vs jacrev + einsum", ""]
    lines.append(f"Machine: {m['cpu_model']}, {m['usable_cores']} usable cores ({m['os_cpu_count']} listed), "
                 f"{fmt((m.get('mem_total_bytes') or 0) / 2**30)} GiB, SIMD {'/'.join(m['simd'])}.")
    jd = report.get("jaxdyn_env") or {}
    lines.append(f"jaxdyn environment: jax {m['jax']} (jaxlib {m['jaxlib']}), numpy {m['numpy']}, flax {jd.get('flax', '?')}, "
                 f"python {m['python']}; jaxdyn.ntk methods: {', '.join(jd.get('ntk_methods', []))}"
                 + (f" (jaxdyn from {jd['jaxdyn_path']})" if jd.get("jaxdyn_path") else "") + ".")
    if ntenv:
        lines.append(f"neural-tangents environment ({report['args']['nt_python']}): neural-tangents {ntenv['neural_tangents']}, "
                     f"jax {ntenv['jax']} (jaxlib {ntenv['jaxlib']}), numpy {ntenv['numpy']}, python {ntenv['python']}.")
    else:
        lines.append(f"neural-tangents: {report.get('nt_status', NT_MISSING)}.")
    for label, p in report.get("matmul_peak", {}).items():
        lines.append(f"Peak ({label}): float32 {p['n']}x{p['n']} matmul, best {fmt(p['best_flops_per_s'] / 1e9)} GFLOP/s, "
                     f"median {fmt(p['median_flops_per_s'] / 1e9)} GFLOP/s over {len(p['times_s'])} runs.")
    la, lb = report.get("loadavg_start"), report.get("loadavg_end")
    lines.append(f"Load average (1, 5, 15 min) at start {', '.join(f'{v:.2f}' for v in la)}"
                 + (f"; at end {', '.join(f'{v:.2f}' for v in lb)}" if lb else "") + ".")
    a = report["args"]
    lines.append(f"Warm time: median of up to {a['repeats']} calls (interleaved round-robin over contenders; fewer when a "
                 f"call takes over {fmt(a['budget_s'])}/{a['repeats']} s). Compile: trace + lower + compile. Peak: resident "
                 "memory added by the first call (peak-RSS mark reset before it); XLA: arguments + outputs + temporaries "
                 "of XLA's buffer assignment (not reported by jaxlib 0.4.25 on CPU). Rel. error: max |Theta - Theta_f64| "
                 "/ max |Theta_f64|. '/ NT best': warm time over neural-tangents' fastest agreeing implementation at that N "
                 f"(< 1: faster). Limits: {fmt(a['mem_limit_gib'])} GiB, {fmt(a['time_limit_s'])} s per call (extrapolated).")
    lines.append("Contenders: `jaxdyn:<method> [fn]` = jaxdyn.ntk.ntk(f, params, x, None, method); `jacrev+einsum [fn]` = "
                 "vmap over examples of jax.jacrev, einsum per parameter leaf; `nt:<impl>` = nt.empirical_ntk_fn(f, "
                 "trace_axes=(), vmap_axes=0, implementation) in the legacy environment on the `pure` function. fn: `model` "
                 "= the jaxdyn flax model as shipped (PatchConv convolutions) as jaxdyn.ntk.apply_fn(model) (structured: its "
                 "flax layers); `pure` = the same network with lax.conv_general_dilated (benchmarks/ntk_models.py), "
                 "identical to what neural-tangents differentiates, a plain function (structured: its jaxpr); `apply` = "
                 "the flax model as a plain function, lambda p, x: model.apply({'params': p}, x) (structured: its jaxpr).")
    lines.append("")

    summ = report.get("summary", [])
    if summ:
        lines.append("## Summary (fastest agreeing contender of each kind)")
        lines.append("")
        lines.append("| model | N | best jaxdyn | s | jaxdyn auto (choice) | s | best jaxdyn [pure] | s | best neural-tangents "
                     "| s | naive s | best jaxdyn / NT | auto / NT | best [pure] / NT | auto / best method, same f "
                     "| mem best jaxdyn / NT |")
        lines.append("|" + "---|" * 16)
        for s in summ:
            bj, au, nb, nv = s["best_jaxdyn"], s["jaxdyn_auto"], s["nt_best"], s["naive_best"]
            bp = s.get("best_pure")
            choice = (au.get("notes") or {}).get("auto_choice") if au else None
            lines.append("| " + " | ".join([
                s["model"], str(s["n"]), bj["contender"] if bj else "-", fmt(bj["warm_s"]) if bj else "-",
                (au["contender"] + (f" ({choice})" if choice else "")) if au else "-", fmt(au["warm_s"]) if au else "-",
                bp["contender"] if bp else "-", fmt(bp["warm_s"]) if bp else "-",
                nb["contender"] if nb else (report.get("nt_status") or "-"), fmt(nb["warm_s"]) if nb else "-",
                fmt(nv["warm_s"]) if nv else "-", fmt(s["best_jaxdyn_vs_nt"]), fmt(s["auto_vs_nt"]),
                fmt(s.get("best_pure_vs_nt")),
                ", ".join(f"{fn} {fmt(v)}" for fn, v in s["auto_vs_best_same_fn"].items()) or "-",
                fmt(s.get("best_jaxdyn_mem_vs_nt")),
            ]) + " |")
        lines.append("")

    for name, info in report["models"].items():
        lines.append(f"## {name}: {info['params']:,} parameters")
        lines.append("")
        lines.append(info["describe"] + f". Theta shape per N: {info['theta_shape']}.")
        lines.append("")
        lines.append("| N | contender | warm s | min s | repeats | compile s | first call s | peak MiB | XLA MiB | "
                     "rel. error | / NT best | load 1-min | status |")
        lines.append("|" + "---|" * 13)
        summ_by_n = {s["n"]: s for s in summ if s["model"] == name}
        for r in [r for r in report["rows"] if r["model"] == name]:
            nb = summ_by_n.get(r["n"], {}).get("nt_best")
            ratio = r["warm_s"] / nb["warm_s"] if (nb and r.get("warm_s")) else None
            xm = r.get("xla_memory")
            lines.append("| " + " | ".join([
                str(r["n"]), r["contender"] + (f" (chose {ch})" if (ch := (r.get("notes") or {}).get("auto_choice")) else ""),
                fmt(r.get("warm_s")), fmt(r.get("min_s")), str(len(r.get("times_s") or [])) if
                r.get("times_s") else "-", fmt(r.get("compile_s")), fmt(r.get("first_s")), fmt(_mib(r.get("peak_rss_bytes"))),
                fmt(_mib(xm["total"])) if xm else "-",
                f"{r['rel_err']:.1e}" if r.get("rel_err") is not None else "-", fmt(ratio),
                f"{r['loadavg_1min'][0]:.1f}-{r['loadavg_1min'][1]:.1f}", r["status"],
            ]) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--models", default=",".join(CASES), help=f"comma list of {list(CASES)}")
    ap.add_argument("--sizes", default=None, help="N values: '256,1024' for every model, or 'rbe:256,1024/vgg:64'")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small N and 2 repeats: a smoke check of the whole pipeline")
    ap.add_argument("--nt-python", default=DEFAULT_NT_PYTHON, help="python of the neural-tangents environment")
    ap.add_argument("--fns", default=None,
                    help="functions jaxdyn and jacrev differentiate: model, pure, apply (jaxdyn only); "
                         "default all three, model,pure with --quick")
    ap.add_argument("--contenders", default="", help="only contenders whose name starts with one of these (comma list)")
    ap.add_argument("--mem-limit-gib", type=float, default=8.0,
                    help="skip a contender whose estimated peak memory is larger")
    ap.add_argument("--time-limit-s", type=float, default=60.0,
                    help="skip a contender whose call, extrapolated from the previous N, would take longer")
    ap.add_argument("--budget-s", type=float, default=60.0, help="seconds of warm repeats per contender at most")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main()

    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in CASES:
            raise SystemExit(f"--models: unknown model {m!r}; models are {list(CASES)}")
    if args.fns is None:
        args.fns = "model,pure" if args.quick else ",".join(FNS)
    args.fns = [f for f in args.fns.split(",") if f]
    for f in args.fns:
        if f not in FNS:
            raise SystemExit(f"--fns: unknown function {f!r}; choose from {list(FNS)}")
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")
    if args.quick and args.repeats == 5:
        args.repeats = 2
    sizes = parse_sizes(args.sizes, models, args.quick)
    args.contenders = [c for c in args.contenders.split(",") if c]
    os.makedirs(args.out, exist_ok=True)

    report: dict = dict(args={**vars(args), "sizes": sizes}, loadavg_start=os.getloadavg(), machine=_common.machine_info())
    tmp = tempfile.mkdtemp(prefix="bench_ntk_")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    workers: dict[str, Worker | None] = {
        "jaxdyn": Worker("jaxdyn", [sys.executable, os.path.abspath(__file__), "--worker"],
                         os.path.join(args.out, "ntk_worker_jaxdyn.log"), env)}
    if os.path.exists(args.nt_python):
        workers["nt"] = Worker("neural-tangents", [args.nt_python, os.path.join(HERE, "nt_worker.py")],
                               os.path.join(args.out, "ntk_worker_nt.log"), env)
    else:
        workers["nt"] = None
        report["nt_status"] = NT_MISSING
        print(f"neural-tangents: {NT_MISSING} ({args.nt_python} not found)", flush=True)
    try:
        report["jaxdyn_env"] = workers["jaxdyn"].ask(op="hello")
        if workers["nt"] is not None:
            try:
                report["nt_env"] = workers["nt"].ask(op="hello")
            except WorkerDied as e:
                report["nt_status"] = f"not run: the neural-tangents worker failed to start ({e})"
                print(report["nt_status"], flush=True)
                workers["nt"] = None
        pk_n, pk_r = (1024, 5) if args.quick else (2048, 20)
        report["matmul_peak"] = {"start": _common.matmul_peak(pk_n, pk_r)}
        print(f"matmul peak {report['matmul_peak']['start']['best_flops_per_s'] / 1e9:.1f} GFLOP/s; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        report["models"], report["rows"] = {}, []
        for name in models:
            case = CASES[name]
            model = case.make_model()
            x0 = case.make_x(jax.random.PRNGKey(1), 2)
            params = model.init(jax.random.PRNGKey(0), x0)["params"]
            flat = {k: np.asarray(v, np.float32) for k, v in ntk_models.flatten_params(params).items()}
            nparams = int(sum(v.size for v in flat.values()))
            out_shape = jax.eval_shape(lambda xx: model.apply({"params": params}, xx), x0).shape
            theta_shape = "(N, N)" if len(out_shape) == 1 else f"(N, N, {out_shape[1]}, {out_shape[1]})"
            report["models"][name] = dict(describe=case.describe, params=nparams, spec=case.spec, theta_shape=theta_shape,
                                          sizes=sizes[name])
            prev: dict = {}
            for n in sizes[name]:
                report["rows"] += run_problem(case, n, model, params, flat, workers, args, tmp, prev)
                report["summary"] = summarize(report["rows"])
                _write(report, args.out)
        report["matmul_peak"]["end"] = _common.matmul_peak(pk_n, pk_r)
    finally:
        for w in workers.values():
            if w is not None:
                w.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report["loadavg_end"] = os.getloadavg()
    report["summary"] = summarize(report["rows"])
    _write(report, args.out)
    print(open(os.path.join(args.out, "ntk.md")).read())


def _write(report: dict, out: str) -> None:
    with open(os.path.join(out, "ntk.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    with open(os.path.join(out, "ntk.md"), "w") as f:
        f.write(render(report))


if __name__ == "__main__":
    main()
