#!/usr/bin/env python
"""Infinite-width kernels: jaxdyn.theory.kernels vs neural-tangents 0.6.5 ``stax`` (legacy env).

    python benchmarks/bench_kernels.py [--archs fc_relu,rbe_elu,...] [--sizes 256,1024 | rbe_elu:256,4096/...]
                                       [--repeats R] [--quick] [--nt-python /work/nt-venv/bin/python]
                                       [--time-limit-s S] [--budget-s S] [--out benchmarks/out]

The NNGP and NTK ``(N, N)`` of N inputs with themselves (``kernel_fn(x, None)`` on both sides),
same architecture, same inputs, float32, on the same machine in one run:

* ``jaxdyn``: ``serial(...).kernel_fn(x, get=('nngp', 'ntk'), block_size=B)`` in this process
  (blocks of B examples per side; only blocks on and above the diagonal, mirrored);
* ``nt``: ``nt.batch(jit(stax.serial(...)[2]), batch_size=B)(x, None, ('nngp', 'ntk'))`` in the
  legacy environment (benchmarks/legacy_env.sh), in a worker process
  (benchmarks/nt_kernels_worker.py). Its quadrature holds order^2 x B^2 x positions values, so
  its batch size bounds its memory.

Architectures (ARCHS): fully connected ReLU and erf nets (closed forms); 1-D conv nets like the
RBE net (3 VALID Conv1D of 8 filters, kernel 3, on 16-bit strings (N, 16, 1), Flatten, Dense(1),
standard parametrisation) with ELU by Gauss-Hermite quadrature at the same order on both sides,
and with ReLU; a 2-D conv net with SAME padding and global average pooling. The RBE-like nets use
b_std = 0.1: the RBE model itself starts its biases at zero (``rbe_elu_b0``), which gives
zero-variance pre-activations (a window of zero bits), where neural-tangents' quadrature divides
0 by 0 (NaN) and its ReLU uses relu'(0) = 1/4 (jaxdyn: JAX's 0).

Reported per (architecture, N):

* time: the median of the warm repeats, interleaved jaxdyn / neural-tangents (load from other
  processes hits both alike); at most ``--repeats``, fewer when a call takes longer than
  ``--budget-s`` / repeats, none when the first call alone exceeds ``--budget-s`` (then the
  first call, compilation included, is the time reported, and marked so);
* first call (trace + compile + run) and the peak resident memory it added
  (_common.measure_peak_rss, the same in both processes);
* agreement: ``max |K_jaxdyn - K_nt| / max |K_nt|`` over the whole matrix, and over its upper
  triangle only (where both evaluate the quadrature with x1 as the outer variable; below the
  diagonal jaxdyn mirrors, neural-tangents evaluates the other orientation); neural-tangents' own
  asymmetry ``max |K - K^T| / max |K|`` beside it; at the smallest N, both float32 results
  against jaxdyn's float64 kernel;
* neural-tangents is skipped at an N where its time extrapolated from the previous N by
  (N / N_prev)^2 exceeds ``--time-limit-s`` ("skipped: time"), and the extrapolation is shown.

Output: ``<out>/kernels.json`` (every number) and ``<out>/kernels.md`` (tables, with the machine,
both environments' versions and the load average).
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

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The checkout this script belongs to, ahead of any installed jaxdyn.
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _common import fmt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_NT_PYTHON = "/work/nt-venv/bin/python"
NT_MISSING = "not run: legacy env missing, run benchmarks/legacy_env.sh"
ORDER = 25  # Gauss-Hermite order for ELU on both sides (neural-tangents' suggested start)


# --------------------------------------------------------------------------------------------
# Architectures: one list of layer dicts, read by jaxdyn_net here and by nt_kernels_worker.build_stax
# --------------------------------------------------------------------------------------------
def _dense(out, w, b, p="ntk"):
    return {"layer": "dense", "out": out, "W_std": w, "b_std": b, "parametrization": p}


def _conv(out, k, pad, w, b, p="ntk"):
    return {"layer": "conv", "out": out, "kernel": list(k), "padding": pad, "W_std": w, "b_std": b, "parametrization": p}


def _fc(act):
    return [_dense(512, 1.4, 0.1), {"layer": act}, _dense(512, 1.4, 0.1), {"layer": act}, _dense(1, 1.0, 0.1)]


def _rbe(act, b_std):
    a = {"layer": "elu", "order": ORDER} if act == "elu" else {"layer": act}
    return [_conv(8, (3,), "VALID", 1.0, b_std, "standard"), a] * 3 + [{"layer": "flatten"},
                                                                     _dense(1, 1.0, b_std, "standard")]


def _bits(key, n):
    return jax.random.bernoulli(key, 0.5, (n, 16, 1)).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str
    describe: str
    spec: list
    make_x: Callable
    sizes: tuple[int, ...]
    quick_sizes: tuple[int, ...]
    block_size: int  # jaxdyn's block_size
    nt_batch: int  # neural-tangents' batch_size (N itself if N is smaller)


ARCHS = {
    "fc_relu": Arch("fc_relu", "Dense(512, W_std 1.4, b_std 0.1)-ReLU x 2, Dense(1); NTK parametrisation; inputs N(0, 1) (N, 32)",
                    _fc("relu"), lambda k, n: jax.random.normal(k, (n, 32)), (256, 1024, 4096), (64,), 1024, 4096),
    "fc_erf": Arch("fc_erf", "as fc_relu with erf", _fc("erf"), lambda k, n: jax.random.normal(k, (n, 32)),
                   (256, 1024, 4096), (64,), 1024, 4096),
    "rbe_elu": Arch("rbe_elu", f"RBE-like: Conv1D(8, 3, VALID)-ELU x 3, Flatten, Dense(1), standard parametrisation, "
                    f"W_std 1, b_std 0.1; ELU by {ORDER} x {ORDER} Gauss-Hermite on both sides; inputs random 16-bit "
                    "strings (N, 16, 1)", _rbe("elu", 0.1), _bits, (128, 256, 512, 1024, 4096), (64,), 256, 128),
    "rbe_relu": Arch("rbe_relu", "as rbe_elu with ReLU (closed form)", _rbe("relu", 0.1), _bits,
                     (128, 1024, 4096), (64,), 256, 128),
    "rbe_elu_b0": Arch("rbe_elu_b0", "as rbe_elu with b_std 0: the RBEConvNet's own initialisation "
                       "(jaxdyn.theory.from_model(RBEConvNet()) with ELU at the same order)", _rbe("elu", 0.0), _bits,
                       (128,), (64,), 256, 128),
    "conv2d_gap": Arch("conv2d_gap", "Conv2D(16, 3x3, SAME, W_std 1.5, b_std 0.1)-ReLU, Conv2D(16, 3x3, SAME)-erf, "
                       "GlobalAvgPool, Dense(1); NTK parametrisation; inputs N(0, 1) 8x8x3 images (all 64 x 64 pairs of "
                       "positions)", [_conv(16, (3, 3), "SAME", 1.5, 0.1), {"layer": "relu"},
                                      _conv(16, (3, 3), "SAME", 1.5, 0.1), {"layer": "erf"}, {"layer": "gap"},
                                      _dense(1, 1.0, 0.1)],
                       lambda k, n: jax.random.normal(k, (n, 8, 8, 3)), (32, 128), (16,), 32, 32),
}


def jaxdyn_net(spec: list):
    """The jaxdyn description of a layer-dict list."""
    from jaxdyn.theory import kernels as K

    layers = []
    for d in spec:
        kind = d["layer"]
        lin = dict(W_std=d.get("W_std", 1.0), b_std=d.get("b_std"), parametrization=d.get("parametrization", "ntk"))
        if kind == "dense":
            layers.append(K.Dense(d["out"], **lin))
        elif kind == "conv":
            layers.append(K.Conv(d["out"], tuple(d["kernel"]), d["padding"], **lin))
        elif kind == "relu":
            layers.append(K.Relu())
        elif kind == "erf":
            layers.append(K.Erf())
        elif kind == "elu":
            layers.append(K.Elu(order=int(d["order"])))
        elif kind == "flatten":
            layers.append(K.Flatten())
        elif kind == "gap":
            layers.append(K.GlobalAvgPool())
        else:
            raise ValueError(f"unknown layer {kind!r}")
    return K.serial(*layers)


# --------------------------------------------------------------------------------------------
# The neural-tangents worker
# --------------------------------------------------------------------------------------------
class WorkerDied(RuntimeError):
    pass


class NTWorker:
    def __init__(self, python: str, log_path: str, x64: bool = False):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", JAX_ENABLE_X64="1" if x64 else "0")
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen([python, os.path.join(HERE, "nt_kernels_worker.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=HERE)

    def ask(self, **req) -> dict:
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            raise WorkerDied(f"neural-tangents worker died (exit {self.proc.poll()})")
        return json.loads(line)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.ask(op="quit")
                self.proc.wait(timeout=30)
            except (WorkerDied, subprocess.TimeoutExpired):
                self.proc.kill()
        self.log.close()


# --------------------------------------------------------------------------------------------
# One problem
# --------------------------------------------------------------------------------------------
def _rel(a: np.ndarray, b: np.ndarray, upper: bool = False) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if upper:
        iu = np.triu_indices(a.shape[0])
        a, b = a[iu], b[iu]
    d = np.abs(a - b)
    return float(np.nanmax(d) / max(np.nanmax(np.abs(b)), 1e-300)) if np.isfinite(d).any() else float("nan")


def _asym(k: np.ndarray) -> float:
    k = np.asarray(k, np.float64)
    return float(np.nanmax(np.abs(k - k.T)) / max(np.nanmax(np.abs(k)), 1e-300))


def run_problem(arch: Arch, n: int, nt: NTWorker | None, nt64: NTWorker | None, args, tmp: str, prev: dict) -> dict:
    x = np.asarray(arch.make_x(jax.random.PRNGKey(1000 + n), n), np.float32)
    net = jaxdyn_net(arch.spec)
    row: dict = dict(arch=arch.name, n=n, loadavg_start=os.getloadavg())
    bs = min(arch.block_size, n)

    def jd_call():
        k = net.kernel_fn(x, get=("nngp", "ntk"), block_size=bs)
        return k.nngp, k.ntk

    (jd_nngp, jd_ntk), first, peak = _common.measure_peak_rss(jd_call)
    jd = {"nngp": np.asarray(jd_nngp), "ntk": np.asarray(jd_ntk)}
    row["jaxdyn"] = dict(first_s=first, peak_rss_bytes=peak, block_size=bs, times_s=[])
    print(f"[{arch.name} N={n}] jaxdyn first call {first:.2f} s", flush=True)

    nt_row = None
    nt_res = None
    if nt is not None:
        p = prev.get("nt")
        est = p["time_s"] * (n / p["n"]) ** 2 if p else None
        if p and p.get("skipped"):
            nt_row = dict(status=f"skipped: {p['why']} at N={p['n']}")
        elif est is not None and est > args.time_limit_s:
            nt_row = dict(status=f"skipped: time ({fmt(est)} s extrapolated from N={p['n']} > {fmt(args.time_limit_s)} s)",
                          extrapolated_s=est)
            prev["nt"] = dict(p, skipped=True, why="time")
        else:
            npz, out = os.path.join(tmp, "x.npz"), os.path.join(tmp, "nt.npz")
            np.savez(npz, x=x)
            nb = n if arch.nt_batch >= n else arch.nt_batch
            try:
                res = nt.ask(op="prepare", npz=npz, spec=arch.spec, get=["nngp", "ntk"], batch_size=nb, out=out)
            except WorkerDied as e:
                res = {"error": str(e)}
            if "error" in res:
                nt_row = dict(status="error: " + res["error"])
                prev["nt"] = dict(n=n, skipped=True, why="error")
            else:
                with np.load(out) as z:
                    nt_res = {k: np.asarray(z[k]) for k in z.files}
                nt_row = dict(status="ok", first_s=res["first_s"], peak_rss_bytes=res["peak_rss_bytes"],
                              batch_size=res["batch_size"], times_s=[])
                print(f"  neural-tangents first call {res['first_s']:.2f} s", flush=True)
    row["nt"] = nt_row or dict(status=NT_MISSING)

    # Agreement (float32 both).
    if nt_res is not None:
        agree = {}
        for g in ("nngp", "ntk"):
            agree[g] = dict(rel_full=_rel(jd[g], nt_res[g]), rel_upper=_rel(jd[g], nt_res[g], upper=True),
                            nt_asymmetry=_asym(nt_res[g]), nt_nan=int(np.isnan(nt_res[g]).sum()),
                            jaxdyn_nan=int(np.isnan(jd[g]).sum()))
        row["agreement"] = agree
    # Float64 references at the smallest N.
    if args.reference and n == min(args.sizes[arch.name]):
        with jax.enable_x64(True):
            k64 = net.kernel_fn(x.astype(np.float64), get=("nngp", "ntk"), block_size=bs, dtype=jnp.float64)
            ref = {"nngp": np.asarray(k64.nngp), "ntk": np.asarray(k64.ntk)}
        # Upper triangle for neural-tangents: the orientation jaxdyn (mirroring) evaluates too.
        row["vs_float64"] = {g: dict(jaxdyn32=_rel(jd[g], ref[g]),
                                     nt32=_rel(nt_res[g], ref[g], upper=True) if nt_res else None) for g in ref}
        if nt64 is not None:
            npz, out = os.path.join(tmp, "x.npz"), os.path.join(tmp, "nt64.npz")
            np.savez(npz, x=x.astype(np.float64))
            try:
                res = nt64.ask(op="prepare", npz=npz, spec=arch.spec, get=["nngp", "ntk"],
                               batch_size=n if arch.nt_batch >= n else arch.nt_batch, out=out, dtype="float64")
                if "error" not in res:
                    with np.load(out) as z:
                        for g in ref:
                            row["vs_float64"][g]["nt64_vs_jaxdyn64"] = _rel(ref[g], np.asarray(z[g]), upper=True)
                            row["vs_float64"][g]["nt64_vs_jaxdyn64_full"] = _rel(ref[g], np.asarray(z[g]))
                else:
                    row["vs_float64_error"] = res["error"]
            except WorkerDied as e:
                row["vs_float64_error"] = str(e)

    # Interleaved warm repeats.
    def reps(first_s):
        return 0 if first_s > args.budget_s else min(args.repeats, max(1, int(args.budget_s // max(first_s, 1e-9))))

    r_jd = reps(row["jaxdyn"]["first_s"])
    r_nt = reps(nt_row["first_s"]) if nt_row and nt_row.get("status") == "ok" else 0
    for r in range(max(r_jd, r_nt)):
        if r < r_jd:
            t0 = time.perf_counter()
            jax.block_until_ready(jd_call())
            row["jaxdyn"]["times_s"].append(time.perf_counter() - t0)
        if r < r_nt:
            try:
                nt_row["times_s"].append(nt.ask(op="time")["s"])
            except WorkerDied as e:
                nt_row["status"] = f"error: {e}"
                break
    for side in ("jaxdyn", "nt"):
        s = row[side]
        if s.get("times_s"):
            s["time_s"], s["time_kind"] = statistics.median(s["times_s"]), f"median of {len(s['times_s'])} warm"
        elif s.get("first_s") is not None:
            s["time_s"], s["time_kind"] = s["first_s"], "first call (compile included)"
    if row["nt"].get("time_s") is not None:
        prev["nt"] = dict(n=n, time_s=row["nt"]["time_s"])
        row["jaxdyn_over_nt"] = row["jaxdyn"]["time_s"] / row["nt"]["time_s"]
    elif row["nt"].get("extrapolated_s"):
        row["jaxdyn_over_nt_extrapolated"] = row["jaxdyn"]["time_s"] / row["nt"]["extrapolated_s"]
    row["loadavg_end"] = os.getloadavg()
    print(f"  jaxdyn {fmt(row['jaxdyn']['time_s'])} s, nt {fmt(row['nt'].get('time_s'))} s; "
          f"agreement {json.dumps(row.get('agreement'))}", flush=True)
    return row


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def _e(v):
    return "-" if v is None else ("nan" if v != v else f"{v:.1e}")


def _mib(b):
    return None if b is None else b / 2**20


def render(report: dict) -> str:
    m, ntenv = report["machine"], report.get("nt_env")
    lines = ["# Infinite-width kernels: jaxdyn.theory.kernels vs neural-tangents stax", ""]
    lines.append(f"Machine: {m['cpu_model']}, {m['usable_cores']} usable cores ({m['os_cpu_count']} listed), "
                 f"{fmt((m.get('mem_total_bytes') or 0) / 2**30)} GiB, SIMD {'/'.join(m['simd'])}.")
    lines.append(f"jaxdyn environment: jax {m['jax']} (jaxlib {m['jaxlib']}), numpy {m['numpy']}, python {m['python']}.")
    if ntenv:
        lines.append(f"neural-tangents environment ({report['args']['nt_python']}): neural-tangents "
                     f"{ntenv['neural_tangents']}, jax {ntenv['jax']} (jaxlib {ntenv['jaxlib']}), numpy {ntenv['numpy']}, "
                     f"python {ntenv['python']}.")
    else:
        lines.append(f"neural-tangents: {report.get('nt_status', NT_MISSING)}.")
    la, lb = report["loadavg_start"], report.get("loadavg_end")
    lines.append(f"Load average (1, 5, 15 min) at start {', '.join(f'{v:.2f}' for v in la)}"
                 + (f"; at end {', '.join(f'{v:.2f}' for v in lb)}" if lb else "") + ".")
    a = report["args"]
    lines.append(f"Kernels: NNGP and NTK (N, N) of x with itself, float32. Time: median of up to {a['repeats']} warm calls "
                 f"interleaved jaxdyn / neural-tangents (fewer when a call takes over {fmt(a['budget_s'])}/{a['repeats']} s; "
                 f"the first call, compile included, when it alone takes over {fmt(a['budget_s'])} s). Agreement: "
                 "max |K_jaxdyn - K_nt| / max |K_nt| over the whole matrix / its upper triangle; 'NT asym.': "
                 "max |K_nt - K_nt^T| / max |K_nt| (the quadrature rule is not symmetric in its two inputs). "
                 f"neural-tangents is skipped where its time extrapolated as N^2 exceeds {fmt(a['time_limit_s'])} s.")
    lines.append("")
    lines.append("| arch | N | jaxdyn s | NT s | jaxdyn / NT | NNGP rel. diff (full / upper) | NTK rel. diff (full / upper) | "
                 "NT asym. NNGP / NTK | NaN in NT | jaxdyn first s | NT first s | peak MiB jaxdyn / NT | load 1-min | NT status |")
    lines.append("|" + "---|" * 14)
    for r in report["rows"]:
        j, t = r["jaxdyn"], r["nt"]
        ag = r.get("agreement") or {}
        ratio = r.get("jaxdyn_over_nt")
        ratio_s = fmt(ratio) if ratio is not None else (f"{fmt(r['jaxdyn_over_nt_extrapolated'])} (NT extrapolated)"
                                                      if r.get("jaxdyn_over_nt_extrapolated") else "-")
        nt_s = fmt(t.get("time_s")) if t.get("time_s") is not None else (
            f"~{fmt(t['extrapolated_s'])} (extrapolated)" if t.get("extrapolated_s") else "-")
        mark = lambda s: "" if (s.get("time_kind") or "").startswith("median") else (" (first)" if s.get("time_s") else "")  # noqa: E731
        lines.append("| " + " | ".join([
            r["arch"], str(r["n"]), fmt(j.get("time_s")) + mark(j), nt_s + (mark(t) if t.get("time_s") else ""), ratio_s,
            f"{_e(ag['nngp']['rel_full'])} / {_e(ag['nngp']['rel_upper'])}" if ag else "-",
            f"{_e(ag['ntk']['rel_full'])} / {_e(ag['ntk']['rel_upper'])}" if ag else "-",
            f"{_e(ag['nngp']['nt_asymmetry'])} / {_e(ag['ntk']['nt_asymmetry'])}" if ag else "-",
            f"{ag['nngp']['nt_nan']} / {ag['ntk']['nt_nan']}" if ag else "-",
            fmt(j.get("first_s")), fmt(t.get("first_s")),
            f"{fmt(_mib(j.get('peak_rss_bytes')))} / {fmt(_mib(t.get('peak_rss_bytes')))}",
            f"{r['loadavg_start'][0]:.1f}-{r['loadavg_end'][0]:.1f}", t.get("status", "-"),
        ]) + " |")
    lines.append("")
    refs = [r for r in report["rows"] if r.get("vs_float64")]
    if refs:
        lines.append("Against float64 (smallest N of each architecture): max |K - K_64| / max |K_64| with K_64 jaxdyn's "
                     "float64 kernel (jaxdyn32: whole matrix; NT32: upper triangle, the orientation jaxdyn evaluates); "
                     "'NT64 vs jaxdyn64': neural-tangents in float64 against it (upper triangle / full).")
        lines.append("")
        lines.append("| arch | N | NNGP jaxdyn32 | NNGP NT32 | NNGP NT64 vs jaxdyn64 | NTK jaxdyn32 | NTK NT32 | "
                     "NTK NT64 vs jaxdyn64 |")
        lines.append("|" + "---|" * 8)
        for r in refs:
            v = r["vs_float64"]
            c = lambda g: f"{_e(v[g].get('nt64_vs_jaxdyn64'))} / {_e(v[g].get('nt64_vs_jaxdyn64_full'))}"  # noqa: E731
            lines.append(f"| {r['arch']} | {r['n']} | {_e(v['nngp']['jaxdyn32'])} | {_e(v['nngp']['nt32'])} | {c('nngp')} | "
                         f"{_e(v['ntk']['jaxdyn32'])} | {_e(v['ntk']['nt32'])} | {c('ntk')} |")
        lines.append("")
    lines.append("Architectures:")
    lines.append("")
    for name in report["args"]["archs"]:
        lines.append(f"- `{name}`: {ARCHS[name].describe}.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default=",".join(a for a in ARCHS), help=f"comma list of {list(ARCHS)}")
    ap.add_argument("--sizes", default=None, help="N values: '256,1024' for every arch, or 'rbe_elu:256,4096/fc_relu:1024'")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small N, 2 repeats: a smoke check of the whole pipeline")
    ap.add_argument("--nt-python", default=DEFAULT_NT_PYTHON, help="python of the neural-tangents environment")
    ap.add_argument("--time-limit-s", type=float, default=600.0,
                    help="skip neural-tangents where its call, extrapolated from the previous N, would take longer")
    ap.add_argument("--budget-s", type=float, default=120.0, help="seconds of warm repeats per contender and N at most")
    ap.add_argument("--no-reference", dest="reference", action="store_false", help="skip the float64 references")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args(argv)
    args.archs = [a for a in args.archs.split(",") if a]
    for a in args.archs:
        if a not in ARCHS:
            ap.error(f"--archs: unknown architecture {a!r}; choose from {list(ARCHS)}")
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.quick and args.repeats == 5:
        args.repeats = 2
    sizes = {a: list(ARCHS[a].quick_sizes if args.quick else ARCHS[a].sizes) for a in args.archs}
    if args.sizes:
        if ":" not in args.sizes:
            sizes = {a: [int(s) for s in args.sizes.split(",") if s] for a in args.archs}
        else:
            for part in args.sizes.split("/"):
                name, _, vals = part.partition(":")
                if name not in ARCHS:
                    ap.error(f"--sizes: unknown architecture {name!r}")
                sizes[name] = [int(s) for s in vals.split(",") if s]
    args.sizes = sizes
    return args


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    report: dict = dict(args={k: v for k, v in vars(args).items()}, loadavg_start=os.getloadavg(),
                        machine=_common.machine_info(), rows=[])
    tmp = tempfile.mkdtemp(prefix="bench_kernels_")
    nt = nt64 = None
    if os.path.exists(args.nt_python):
        nt = NTWorker(args.nt_python, os.path.join(args.out, "kernels_worker_nt.log"))
        try:
            report["nt_env"] = nt.ask(op="hello")
        except WorkerDied as e:
            report["nt_status"] = f"not run: the neural-tangents worker failed to start ({e})"
            nt = None
        if nt is not None and args.reference:
            nt64 = NTWorker(args.nt_python, os.path.join(args.out, "kernels_worker_nt64.log"), x64=True)
    else:
        report["nt_status"] = NT_MISSING
        print(f"neural-tangents: {NT_MISSING} ({args.nt_python} not found)", flush=True)
    try:
        for name in args.archs:
            prev: dict = {}
            for n in args.sizes[name]:
                report["rows"].append(run_problem(ARCHS[name], n, nt, nt64, args, tmp, prev))
                _write(report, args.out)
    finally:
        for w in (nt, nt64):
            if w is not None:
                w.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report["loadavg_end"] = os.getloadavg()
    _write(report, args.out)
    print(open(os.path.join(args.out, "kernels.md")).read())


def _write(report: dict, out: str) -> None:
    with open(os.path.join(out, "kernels.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    with open(os.path.join(out, "kernels.md"), "w") as f:
        f.write(render(report))


if __name__ == "__main__":
    main()
