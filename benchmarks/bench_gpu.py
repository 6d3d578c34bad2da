#!/usr/bin/env python
"""One GPU run of issue 20, inside a hard time budget: roofline, ensembles, VGG, NTK, tests.

    python benchmarks/bench_gpu.py --out DIR [--budget-s 450] [--tiny] [--allow-cpu]
                                   [--sections roofline,ensemble,vgg,ntk,tests] [--tests FILES]
    jaxdyn bench gpu -- ...   (or python -m jaxdyn.bench gpu ...)

Without a GPU backend (``jax.default_backend() != 'gpu'``) it refuses with one line on stderr and
exit status 2, unless ``--allow-cpu --tiny`` is given: the CPU smoke run of tiny sizes that the
test suite makes (tests/test_bench_gpu.py). ``--tiny`` alone on a GPU is a quick check of the
command on the device.

Sections, in this order, each skipped with a note (never overrun) when the time left in the
budget (default 450 s from the start of the process, so the whole command, compilation included,
stays under 8 minutes on one H200) or the section's own share is too short for its next row:

* ``roofline``: the device's matmul peak (float32 at the default precision, which is what the
  engine's float32 matmuls use, and bfloat16; n x n @ n x n, median of warm runs) and its copy
  bandwidth (``x + 1`` over a float32 array: bytes read plus written per second).
* ``ensemble``: ``jaxdyn.engine.train`` on the RBE net (one point per step) and the deep linear
  chain (DeepLinear 16-32-32-1, batch 32) at 1k, 4k, 16k and 64k members, the default block width
  and ``block_width='ensemble'`` (one vmap of all members). Seed-steps per second from warm
  (compiled) calls: the median over repeats of seeds * K * T / (t(1 + K chunks) - t(1 chunk)),
  the two calls interleaved, so that initialisation and the final host copy cancel out.
* ``vgg``: the dense-sample paper preset's net (DenseSampleVGG, 5 conv of 3 filters, pool 20,
  dense 1200-1024-1024-5, dropout 0.5) on 128 x 128 x 3 images, batch 32, at 8 and 64 members:
  images per second per member, and the epoch time of the paper preset (72 steps: 5 identities
  x 9 poses x 64 lights, 20% held out per identity, batch 32), training steps only (the
  preset's per-epoch records are not run).
* ``ntk``: ``jaxdyn.ntk.ntk`` of the RBE net at N = 1k, 4k and 16k random bit strings (method
  'auto'): compile time and the warm median.
* ``tests``: ``pytest`` of the engine, determinism, NTK and layer tests on the device, in a
  subprocess with ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` (the determinism check), its
  time capped by the budget; passed / failed / skipped counts from its ``-rA`` summary.

Every timed row is reported against the roofline: XLA's cost analysis of the row's work (a
training step vmapped over 16 members, per member; the NTK call) gives FLOPs and bytes
accessed, the roofline rate is min(peak / FLOPs, bandwidth / bytes), and the row's fraction of
it is measured rate / roofline rate (XLA's bytes are its own estimate of the traffic of the
unfused program, so the fraction is indicative). It writes ``DIR/gpu.md`` (one Markdown table
and the notes) and ``DIR/gpu.json`` after every row, so a run stopped by the budget's watchdog
(exit status 3) still leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time

T0 = time.perf_counter()  # the budget counts from the start of the process
# The tests' subprocess shares the device with this process: allocate on demand, not 75% up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

SECTIONS = ("roofline", "ensemble", "vgg", "ntk", "tests")
DEFAULT_TESTS = "tests/test_engine.py,tests/test_determinism.py,tests/test_ntk.py,tests/test_layers.py"
# Share of the budget each section may use (the rest is startup and writing); a section also
# stops when the whole budget's remainder is too short.
SHARES = {"roofline": 0.04, "ensemble": 0.36, "vgg": 0.16, "ntk": 0.12, "tests": 1.0}  # tests: what is left
# Paper preset of dense-sample (jaxdyn/experiments/dense_sample.py): 5 identities x 9 poses x 64
# lights, round(0.2 * 576) = 115 held out per identity, batch 32: 5 * 461 // 32 steps per epoch.
PAPER_STEPS_PER_EPOCH = (5 * (9 * 64 - round(0.2 * 9 * 64))) // 32

SIZES = {
    "full": dict(matmul_n=8192, copy_floats=1 << 28, members=(1024, 4096, 16384, 65536), linear_batch=32,
                 vgg_side=128, vgg_members=(8, 64), vgg_batch=32, vgg_hidden=(1024, 1024), vgg_pool=20, ntk_n=(1024, 4096, 16384), repeats=3,
                 chunk_target_s=0.1, widths=("default", "ensemble"), models=("rbe", "linear"), steps=None),
    # tiny: every section once, at sizes whose compilation is the cost (a smoke run of the code paths)
    "tiny": dict(matmul_n=256, copy_floats=1 << 20, members=(4,), linear_batch=4, vgg_side=8, vgg_members=(2,),
                 vgg_batch=2, vgg_hidden=(8,), vgg_pool=4, ntk_n=(16,), repeats=1, chunk_target_s=0.02, widths=("default",), models=("rbe",), steps=5),
}


class Budget:
    """The time left: of the whole run (``budget_s`` from process start) and of the current section."""

    def __init__(self, budget_s: float):
        self.budget_s = budget_s
        self.section_end = None

    def left(self) -> float:
        whole = self.budget_s - (time.perf_counter() - T0)
        return whole if self.section_end is None else min(whole, self.section_end - time.perf_counter())

    def start_section(self, share: float) -> None:
        self.section_end = time.perf_counter() + share * self.budget_s

    def allows(self, need_s: float) -> bool:
        return self.left() >= need_s


class Report:
    """Rows, notes and machine info; written as JSON and Markdown after every change."""

    def __init__(self, out: str, args):
        self.out, self.lock = out, threading.RLock()
        self.data = {"args": vars(args), "rows": [], "notes": [], "sections": {}, "roofline": {}, "tests": None}

    def note(self, text: str) -> None:
        with self.lock:
            self.data["notes"].append(text)
            print("note: " + text, flush=True)
            self.save()

    def add(self, row: dict) -> None:
        with self.lock:
            self.data["rows"].append(row)
            print(json.dumps({k: v for k, v in row.items() if not isinstance(v, list)}, default=str), flush=True)
            self.save()

    def save(self) -> None:
        with self.lock:
            self.data["wall_s"] = time.perf_counter() - T0
            os.makedirs(self.out, exist_ok=True)
            with open(os.path.join(self.out, "gpu.json"), "w") as f:
                json.dump(self.data, f, indent=1, default=float)
            with open(os.path.join(self.out, "gpu.md"), "w") as f:
                f.write(render(self.data) + "\n")


# --------------------------------------------------------------------------------------------
# Roofline
# --------------------------------------------------------------------------------------------
def _median_time(fn, args, repeats: int) -> float:
    import jax

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def roofline(n: int, copy_floats: int) -> dict:
    """Matmul peak (float32 default precision; bfloat16) and copy bandwidth of the default device."""
    import jax
    import jax.numpy as jnp

    out = {}
    k1, k2 = jax.random.split(jax.random.key(0))
    for name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
        a = jax.random.normal(k1, (n, n), dtype)
        b = jax.random.normal(k2, (n, n), dtype)
        dt = _median_time(jax.jit(jnp.matmul), (a, b), 10)
        out[f"matmul_{name}_flops_per_s"] = 2.0 * n**3 / dt
        del a, b
    x = jnp.zeros((copy_floats,), jnp.float32)
    dt = _median_time(jax.jit(lambda v: v + 1.0), (x,), 10)
    out["copy_bytes_per_s"] = 2.0 * 4 * copy_floats / dt  # read + written
    out.update(matmul_n=n, copy_bytes=4 * copy_floats)
    return out


def roofline_fraction(rate: float, flops: float | None, nbytes: float | None, roof: dict) -> dict:
    """Achieved FLOP/s and the rate as a fraction of min(peak / flops, bandwidth / bytes) (per unit of work)."""
    peak, bw = roof.get("matmul_float32_flops_per_s"), roof.get("copy_bytes_per_s")
    out = {"flops_per_unit": flops, "bytes_per_unit": nbytes}
    if flops and peak:
        out["achieved_flops_per_s"] = rate * flops
        out["fraction_of_matmul_peak"] = rate * flops / peak
    bounds = [b for b in ((peak / flops) if flops and peak else None, (bw / nbytes) if nbytes and bw else None) if b]
    if bounds:
        out["roofline_rate"] = min(bounds)
        out["bound_by"] = "compute" if flops and peak and min(bounds) == peak / flops else "memory"
        out["fraction_of_roofline"] = rate / min(bounds)
    return out


# --------------------------------------------------------------------------------------------
# Engine rows
# --------------------------------------------------------------------------------------------
def _nice(x: float) -> int:
    if x <= 1:
        return 1
    p = 10 ** math.floor(math.log10(x))
    return int(max(1, round(x / p)) * p)


def engine_rate(problem, conv, batch: int, seeds: int, width, budget: Budget, sizes: dict, fixed_steps: int | None,
                rate_guess: float) -> dict:
    """Warm seed-steps/s of ``jaxdyn.engine.train`` (see the module docstring for the differencing).

    ``width``: 'default' (the engine's default block width), 'ensemble' or an int."""
    import jax
    import optax

    from jaxdyn.engine import train

    # One model, task and optimizer object for every call: the engine's compile cache keys on them
    # (a new optax.sgd(...) per call would recompile each time).
    model, task, opt = problem.make_model(conv), problem.make_task(batch), optax.sgd(problem.lr)
    kwargs = {} if width == "default" else {"block_width": width}
    seed_list = list(range(seeds))

    def call(T, chunks):
        t = time.perf_counter()
        res = train(model, task, opt, seeds=seed_list, num_steps=T * chunks, loss=problem.loss,
                    observables={}, record_every=T, chunk_steps=T, **kwargs)
        jax.block_until_ready(res.params)
        return time.perf_counter() - t, res

    T = fixed_steps or max(2, _nice(sizes["chunk_target_s"] * rate_guess / seeds))
    T = min(T, 100_000)
    first_s, res = call(T, 1)
    info = {"compile_and_first_s": first_s, "recompiled_for_T": False}
    K = 2
    if fixed_steps is None:  # one chunk's time from a warm difference; a new T (one recompilation) if far off
        short, _ = call(T, 1)
        long, _ = call(T, 1 + K)
        chunk = max((long - short) / K, 1e-5)
        new_T = min(100_000, max(2, _nice(T * sizes["chunk_target_s"] / chunk)))
        if (new_T > 3 * T or new_T * 3 < T) and budget.allows(3 * first_s + 4 * (1 + K) * sizes["chunk_target_s"]):
            T = new_T
            first_s, res = call(T, 1)
            info.update(compile_and_first_s=first_s, recompiled_for_T=True)
    rates, shorts, longs, overhead_bound = [], [], [], False
    for _ in range(sizes["repeats"]):
        if rates and not budget.allows(2 * (longs[-1] + shorts[-1])):
            break
        short, _ = call(T, 1)
        long, _ = call(T, 1 + K)
        shorts.append(short)
        longs.append(long)
        if long - short > 0.2 * short:
            rates.append(seeds * K * T / (long - short))
        else:  # the chunks are lost in the call's overhead: the whole long call instead (a lower bound)
            overhead_bound = True
            rates.append(seeds * (1 + K) * T / long)
    info["overhead_bound"] = overhead_bound
    info.update(steps_per_chunk=T, chunks_timed=K, seed_steps_per_s=statistics.median(rates), repeats=len(rates),
                rates=rates, one_chunk_call_s=shorts, long_call_s=longs, block_width=res.engine["block_width"],
                blocked=res.engine["blocked"], devices=res.engine["devices"], diverged=int((res.diverged_at >= 0).sum()))
    return info


def ensemble_section(report: Report, budget: Budget, sizes: dict, roof: dict, fixed_steps):
    import bench_ensemble as be

    problems = {"rbe": (be.PROBLEMS["rbe"], 1), "linear": (be.PROBLEMS["linear"], sizes["linear_batch"])}
    costs = {}
    # The default width first, for every model and size: it is what a user gets; the other
    # widths come after, where the section's time still allows.
    for width in sizes["widths"]:
        for name in sizes["models"]:
            problem, batch = problems[name]
            conv = "patches" if name == "rbe" else None
            if name not in costs:
                cost = be.step_cost(problem, conv, batch, 16)
                costs[name] = {k: (v / 16 if v is not None else None) for k, v in (cost or {}).items()}
            per = costs[name]
            guess = {"rbe": 2e7, "linear": 5e7}[name]
            last_s = 0.0
            for seeds in sizes["members"]:
                need = max(5.0, 2.0 * last_s)
                if not budget.allows(need):
                    report.note(f"ensemble {name} {seeds} members, width {width}: skipped, {budget.left():.0f} s left "
                                f"in the section/budget, the row needs about {need:.0f} s")
                    continue
                t = time.perf_counter()
                try:
                    info = engine_rate(problem, conv, batch, seeds, width, budget, sizes, fixed_steps or sizes["steps"], guess)
                except Exception as e:  # noqa: BLE001 - one row's failure (e.g. out of memory) is reported, the run goes on
                    report.note(f"ensemble {name} {seeds} members, width {width}: failed: {type(e).__name__}: "
                                f"{str(e).splitlines()[0][:200]}")
                    continue
                last_s = time.perf_counter() - t
                rate = info["seed_steps_per_s"]
                guess = 2.0 * rate  # the next size has 4x the members: on a GPU its rate grows, up to the device's
                report.add(dict(section="ensemble", name=f"{name} (batch {batch}), width {width}", members=seeds,
                                unit="seed-steps/s", rate=rate, per_member=rate / seeds, row_wall_s=last_s, **info,
                                **roofline_fraction(rate, per.get("flops"), per.get("bytes"), roof)))


def vgg_section(report: Report, budget: Budget, sizes: dict, roof: dict, fixed_steps):
    import bench_ensemble as be

    from jaxdyn.engine import losses
    from jaxdyn.models import DenseSampleVGG

    side, batch = sizes["vgg_side"], sizes["vgg_batch"]
    problem = be.Problem(
        name="vgg-paper", describe="dense-sample paper net", convs=("patches",),
        make_model=lambda conv: DenseSampleVGG(num_classes=5, hidden=sizes["vgg_hidden"], pool_size=sizes["vgg_pool"],
                                               dropout_rate=0.5, conv=conv),
        make_task=lambda b: be.image_task(b, side, 5), loss=losses.softmax_cross_entropy, lr=0.01, rate_guess=1e3)
    cost = be.step_cost(problem, "patches", batch, 4)
    per = {k: (v / 4 if v is not None else None) for k, v in (cost or {}).items()}
    last_s = 0.0
    for seeds in sizes["vgg_members"]:
        need = max(10.0, 3.0 * last_s)
        if not budget.allows(need):
            report.note(f"vgg {seeds} members: skipped, {budget.left():.0f} s left, the row needs about {need:.0f} s")
            continue
        t = time.perf_counter()
        try:
            info = engine_rate(problem, "patches", batch, seeds, "default", budget, sizes, fixed_steps or sizes["steps"], 2e3 * seeds)
        except Exception as e:  # noqa: BLE001
            report.note(f"vgg {seeds} members: failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            continue
        last_s = time.perf_counter() - t
        rate = info["seed_steps_per_s"]
        hidden = "-".join(str(w) for w in sizes["vgg_hidden"])
        report.add(dict(section="vgg", name=f"dense-sample VGG {side}x{side}, dense {hidden}, batch {batch}", members=seeds,
                        unit="seed-steps/s", rate=rate, per_member=rate / seeds,
                        images_per_s_per_member=rate / seeds * batch,
                        paper_epoch_s=PAPER_STEPS_PER_EPOCH * seeds / rate, row_wall_s=last_s, **info,
                        **roofline_fraction(rate, per.get("flops"), per.get("bytes"), roof)))


def ntk_section(report: Report, budget: Budget, sizes: dict, roof: dict):
    import jax
    import jax.numpy as jnp

    from jaxdyn import ntk as ntk_mod
    from jaxdyn.models import RBEConvNet

    model = RBEConvNet(num_layers=3, features=8, kernel_size=3, activation="elu", padding="VALID")
    f = ntk_mod.apply_fn(model)
    last_s = 0.0
    for n in sizes["ntk_n"]:
        need = max(5.0, 5.0 * last_s)
        if not budget.allows(need):
            report.note(f"ntk N={n}: skipped, {budget.left():.0f} s left, the row needs about {need:.0f} s")
            continue
        t = time.perf_counter()
        try:
            x = jax.random.bernoulli(jax.random.key(1), 0.5, (n, 16)).astype(jnp.float32)
            params = model.init(jax.random.key(0), x[:1])["params"]
            fn = jax.jit(lambda p, xs: ntk_mod.ntk(f, p, xs))
            compiled = fn.lower(params, x).compile()
            ca = compiled.cost_analysis()
            ca = (ca[0] if isinstance(ca, (list, tuple)) and ca else ca) or {}
            compile_s = time.perf_counter() - t
            t1 = time.perf_counter()
            jax.block_until_ready(compiled(params, x))
            first = time.perf_counter() - t1
            times = []
            for _ in range(sizes["repeats"]):
                if times and not budget.allows(2 * times[-1]):
                    break
                t1 = time.perf_counter()
                jax.block_until_ready(compiled(params, x))
                times.append(time.perf_counter() - t1)
        except Exception as e:  # noqa: BLE001
            report.note(f"ntk N={n}: failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            continue
        last_s = time.perf_counter() - t
        med = statistics.median(times)
        report.add(dict(section="ntk", name="ntk of the RBE net (method auto)", members=n, unit="kernels/s", rate=1.0 / med,
                        warm_median_s=med, warm_s=times, compile_s=compile_s,
                        first_s=first, row_wall_s=last_s,
                        **roofline_fraction(1.0 / med, ca.get("flops"), ca.get("bytes accessed"), roof)))


_CHILD: list = []


def tests_section(report: Report, budget: Budget, test_files: list[str]):
    """pytest of ``test_files`` in a subprocess on the device, deterministic GPU ops, capped by the budget."""
    if not test_files:
        report.note("tests: none asked")
        return
    limit = budget.left() - 3.0
    if limit < 10:
        report.note(f"tests: skipped, {budget.left():.0f} s left")
        return
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
    env["PYTHONUNBUFFERED"] = "1"
    log_path = os.path.join(report.out, "tests.log")
    cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *test_files]
    t = time.perf_counter()
    with open(log_path, "w") as log:
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _CHILD.append(child)
        try:
            code = child.wait(timeout=limit)
            timed_out = False
        except subprocess.TimeoutExpired:
            child.kill()
            code, timed_out = child.wait(), True
    with open(log_path) as f:
        text = f.read()
    counts = {k: sum(1 for line in text.splitlines() if line.startswith(k.upper() + " "))
              for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")}
    summary = [line for line in text.splitlines() if line.startswith("=") or " passed" in line or " failed" in line]
    result = dict(files=test_files, exit_code=code, timed_out=timed_out, wall_s=time.perf_counter() - t, limit_s=limit,
                  xla_flags=env["XLA_FLAGS"], summary=summary[-1] if summary else "", log="tests.log",
                  failing=[line for line in text.splitlines() if line.startswith(("FAILED ", "ERROR "))][:30], **counts)
    with report.lock:
        report.data["tests"] = result
        report.save()
    if timed_out:
        report.note(f"tests: stopped at the budget's {limit:.0f} s; counts are of the tests finished by then")


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def _g(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):
        return f"{x:,}"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= digits:
        return f"{x:,.0f}"
    return f"{x:.{max(0, digits - 1 - mag)}f}"


TABLE_HEAD = ["section", "what", "members / N", "rate", "unit", "per member", "images/s/member", "paper epoch s",
              "block width", "compile+first s", "GFLOP/s", "% matmul peak", "% roofline", "bound"]


def render(data: dict) -> str:
    m, roof = data.get("machine", {}), data.get("roofline", {})
    lines = [f"Device: {m.get('device_kind', '?')} ({m.get('backend', '?')}, {m.get('devices', '?')}); jax {m.get('jax', '?')}, "
             f"jaxlib {m.get('jaxlib', '?')}; host {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores; "
             f"sizes {data['args'].get('size', '?')}, budget {data['args'].get('budget_s')} s, wall {_g(data.get('wall_s'))} s."]
    if roof:
        lines.append(f"Roofline: matmul {roof['matmul_n']}^3 float32 (default precision) {_g(roof['matmul_float32_flops_per_s'] / 1e12)} "
                     f"TFLOP/s, bfloat16 {_g(roof['matmul_bfloat16_flops_per_s'] / 1e12)} TFLOP/s; copy "
                     f"{_g(roof['copy_bytes_per_s'] / 1e9)} GB/s (read + written, {_g(roof['copy_bytes'] / 2**20)} MiB array).")
    lines += ["", "| " + " | ".join(TABLE_HEAD) + " |", "|" + "---|" * len(TABLE_HEAD)]
    for r in data["rows"]:
        pct = lambda k: _g(100 * r[k]) if r.get(k) is not None else "-"  # noqa: E731
        lines.append("| " + " | ".join([
            r["section"], r["name"], _g(int(r["members"])), _g(r["rate"]), r["unit"], _g(r.get("per_member")),
            _g(r.get("images_per_s_per_member")), _g(r.get("paper_epoch_s")), _g(r.get("block_width")),
            _g(r.get("compile_and_first_s", r.get("compile_s"))),
            _g(r["achieved_flops_per_s"] / 1e9) if r.get("achieved_flops_per_s") else "-",
            pct("fraction_of_matmul_peak"), pct("fraction_of_roofline"), r.get("bound_by", "-")]) + " |")
    tests = data.get("tests")
    lines.append("")
    if tests:
        lines.append(f"Tests on the device ({', '.join(tests['files'])}; XLA_FLAGS={tests['xla_flags']}): "
                     f"{tests['passed']} passed, {tests['failed']} failed, {tests['error']} errors, {tests['skipped']} skipped, "
                     f"{tests['xfailed']} xfailed in {_g(tests['wall_s'])} s (exit {tests['exit_code']}"
                     f"{', stopped by the budget' if tests['timed_out'] else ''}).")
        lines += [f"- {line}" for line in tests["failing"]]
    for section, info in data["sections"].items():
        lines.append(f"Section {section}: {info}.")
    for note in data["notes"]:
        lines.append(f"Note: {note}")
    lines.append("Rates: ensemble and vgg rows are warm seed-steps/s of jaxdyn.engine.train (median of repeats of "
                 "seeds * K * T / (t(1 + K chunks) - t(1 chunk))); ntk rows are kernels per second (1 / warm median). "
                 "% roofline: the rate over min(matmul peak / FLOPs, copy bandwidth / bytes) per unit of work, from XLA's "
                 "cost analysis (training steps: 16 members vmapped, per member).")
    return "\n".join(lines)


def machine(jax_mod) -> dict:
    import jaxlib
    from _common import cpu_model

    dev = jax_mod.devices()[0]
    return dict(backend=jax_mod.default_backend(), device_kind=getattr(dev, "device_kind", str(dev)),
                devices=[str(d) for d in jax_mod.devices()], jax=jax_mod.__version__, jaxlib=jaxlib.__version__,
                cpu_model=cpu_model()[0], cores=os.cpu_count(), xla_flags=os.environ.get("XLA_FLAGS", ""),
                loadavg=list(os.getloadavg()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "out", "gpu"), help="folder for gpu.md, gpu.json and tests.log")
    ap.add_argument("--budget-s", type=float, default=450.0,
                    help="hard wall-time budget from process start (default 450: under 8 minutes with margin)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run: seconds)")
    ap.add_argument("--allow-cpu", action="store_true", help="run without a GPU backend (only with --tiny)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    ap.add_argument("--tests", default=DEFAULT_TESTS, help="comma list of test files / node ids for the tests section ('' for none)")
    ap.add_argument("--steps", type=int, default=None, help="fixed steps per chunk (default: chosen from a first warm call)")
    args = ap.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    if not set(sections) <= set(SECTIONS):
        ap.error(f"--sections: unknown {sorted(set(sections) - set(SECTIONS))}; allowed: {', '.join(SECTIONS)}")
    if args.budget_s <= 0:
        ap.error("--budget-s must be > 0")
    if args.allow_cpu and not args.tiny:
        ap.error("--allow-cpu needs --tiny (the full sizes are for one GPU)")
    args.size = "tiny" if args.tiny else "full"

    import jax

    import jaxdyn  # noqa: F401  (its host-device setting comes before JAX's import, as for a user)

    backend = jax.default_backend()
    if backend != "gpu" and not args.allow_cpu:
        print(f"bench_gpu: no GPU backend (jax.default_backend() is {backend!r}); run it on a GPU machine, "
              "or pass --allow-cpu --tiny for the CPU smoke run", file=sys.stderr)
        return 2
    sizes = SIZES[args.size]
    report = Report(args.out, args)
    report.data["machine"] = machine(jax)
    budget = Budget(args.budget_s)

    def watchdog():  # the hard stop: whatever a section is doing, the run ends inside the budget
        for child in _CHILD:
            if child.poll() is None:
                child.kill()
        with report.lock:
            report.data["notes"].append(f"stopped by the {args.budget_s:.0f} s budget's watchdog")
            report.save()
        os._exit(3)

    timer = threading.Timer(max(0.0, args.budget_s - (time.perf_counter() - T0)), watchdog)
    timer.daemon = True
    timer.start()
    roof: dict = {}
    for section in SECTIONS:
        if section not in sections:
            continue
        budget.start_section(SHARES[section])
        t = time.perf_counter()
        if section == "roofline":
            roof = roofline(sizes["matmul_n"], sizes["copy_floats"])
            report.data["roofline"] = roof
        elif section == "ensemble":
            ensemble_section(report, budget, sizes, roof, args.steps)
        elif section == "vgg":
            vgg_section(report, budget, sizes, roof, args.steps)
        elif section == "ntk":
            ntk_section(report, budget, sizes, roof)
        else:
            tests_section(report, budget, [s for s in args.tests.split(",") if s])
        report.data["sections"][section] = f"{time.perf_counter() - t:.1f} s"
        report.save()
    timer.cancel()
    report.save()
    print(render(report.data), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
