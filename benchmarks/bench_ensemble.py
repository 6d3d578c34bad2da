#!/usr/bin/env python
"""Seed-ensemble training throughput: jaxdyn's engine vs a Python loop over seeds vs torch.func.

    python benchmarks/bench_ensemble.py [--seeds 1,16,256,1024,4096] [--models rbe,linear,vgg]
                                        [--batches 1,32] [--vgg-seeds 1,16,256] [--vgg-batches 1,8]
                                        [--methods engine,loopstep,loopscan,torch,rec]
                                        [--steps N] [--repeats R] [--torch-threads K] [--out benchmarks/out]

Issue 7, benchmark 1. Methods, all on the same seeds and the same tasks, in one process:

* ``engine/patches``: ``jaxdyn.engine.train`` with the model as it ships (RBE and VGG use
  ``conv='patches'``, i.e. PatchConv: patches + one matmul); vmap over members, scan over
  steps, one jit call per chunk.
* ``engine/flax``: the same engine with ``conv='flax'`` (``nn.Conv``; under vmap over
  parameters it becomes a grouped ``lax.conv``).
* ``loop-step/<conv>``: the baseline the issue names, "a Python loop over seeds of a jitted
  single-seed step": for each seed, for each step, one call of a jitted single-member SGD step
  (``params, opt_state = step(params, opt_state, data, key, s)``; jit once).
* ``loop-scan/<conv>``: a stronger loop: a Python loop over seeds calling one jitted
  single-member function that runs all T steps in a ``lax.scan`` (jit once, one call per seed).
  (Called ``loop/<conv>`` in earlier runs; ``--methods loop`` still selects it.)
* ``torch.func``: the same ensemble in PyTorch (CPU build, the ``bench`` extra), the way
  torch.func does ensembles: ``stack_module_state`` of the members' modules, the per-member
  loss gradient ``grad(functional_call(...))`` vmapped over the members
  (``randomness='different'``), an SGD update on the stacked parameters (``_foreach_add_``).
  Same architectures (RBE: 3 ``Conv1d`` of 8 filters, kernel 3, ELU, VALID, dense to 1,
  sigmoid, clipped BCE; deep linear; small VGG), the same initial parameters (the JAX
  members' flax init, copied), the same learning rate and batch; each step draws every
  member's batch from torch's generator, from the same distributions as the JAX task (not the
  same bits). torch runs eagerly with ``--torch-threads`` intra-op threads (default: the usable
  cores; a list such as ``2,1`` gives one column per count) and ``OMP_WAIT_POLICY=PASSIVE``
  unless the environment sets it (``--omp-wait-policy``): spinning idle OpenMP threads made
  torch 10-100x slower on the shared 2-core machine and would take cores from the JAX methods
  timed in the same process. Before timing, one SGD step of torch.func and of the engine from the same
  parameters on the same fixed batch are compared (printed and in the report). If torch is
  not installed, its column says so.
Not run by default (add ``vmap``/``map`` to ``--methods``):

* ``vmap/patches`` (diagnostic): ``jit(vmap(the loop's single-member scan))`` over all seeds,
  without the engine's machinery (records, divergence flags, chunks, donation, state copies):
  engine / vmap isolates what the engine adds on top of vmapping itself.
* ``map16/patches`` (diagnostic): ``jit(lax.map(the single-member scan, batch_size=16))``:
  blocks of 16 members vmapped, the blocks run one after the other.
Run by default at ``--rec-seeds`` (256):

* ``engine+rec10/patches`` (RBE only): the engine recording the batch loss every 10
  steps, to show what in-scan records cost.

The engine and the loops use the same per-member PRNG streams, so they train exactly the same
members (checked: max |parameter difference| after 20 steps, printed).

Throughput is seed-steps per second of warm (already compiled) runs, the median of
``--repeats`` repeats. The repeats of all methods of one row (model, batch, seed count) are
interleaved round-robin, one method running at a time, so that load from other processes on a
shared machine affects all methods alike. Engine: ``train`` is called once with
``(repeats + 2) * T`` steps and ``chunk_steps=T`` (in a worker thread whose ``on_chunk`` waits
for its turn); each chunk is one jit call of T steps for all members, timed from the return of
one ``on_chunk`` to the next call (it includes the engine's fetch of the records and its host
copy of the state for ``on_chunk``). The first chunk carries the compilation (init + chunk),
reported separately as "compile s": the first call's time minus the warm time of the same
work (for every method). Loops: the jitted function is compiled by a first
call, then the loop over the timed seeds is timed end to end (dispatch is async, one block at
the end). With more seeds than ``--loop-subset`` a loop is timed on the first
``--loop-subset`` seeds and scaled per seed (its cost is linear in the number of seeds: every
seed runs the same compiled function independently). torch.func: T eager steps per repeat
after one warm-up step. The "cores busy" column (process CPU time / wall time during the warm
repeats) shows how many cores each method kept busy.

The steps per call (T) are chosen per row so a warm repeat takes about ``--target`` seconds (a
method is restarted with a new T when its first warm repeat falls outside 0.1-3 s);
``--steps`` fixes T instead. Initialisation is excluded from every warm time.

Memory, per method and row: "state" = bytes of the parameters, optimizer state and per-member
data the method keeps between steps (from array sizes; one member for the loops), and "peak
RSS added" = after the timed repeats one more, untimed repeat is run between a reset of the
kernel's peak-RSS mark (glibc ``malloc_trim``, ``/proc/self/clear_refs``) and a read of
``VmHWM``: the memory the steps need at their peak beyond what was resident before (a lower
bound: pages the allocator already held are not counted again).

Also measured: the machine's float32 matmul rate (2048^3, best of 20, at the start and at the
end of the run; the better of the two is used) as its peak FLOP/s, and for each row the FLOPs
of one training step from XLA's cost analysis
(``jit(step).lower(...).compile().cost_analysis()['flops']``; vmapped over 16 members and
counted per member for the engine and for torch.func, which does the same arithmetic; one
unvmapped member for the loops), giving achieved FLOP/s and its fraction of that peak.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import queue
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's jaxdyn
import jaxdyn  # noqa: E402,F401  (first: its one-host-device-per-core default is set before JAX loads, as for a user)

# isort: split
import flax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import _status_kib, malloc_trim, matmul_peak  # noqa: E402  (benchmarks/_common.py)
from _common import machine_info as common_machine_info  # noqa: E402

from jaxdyn.engine import Task, losses, member_keys, observables, train
from jaxdyn.models import DeepLinear, DenseSampleVGG, RBEConvNet, count_params

# The engine's per-member PRNG streams (jaxdyn/engine/core.py), mirrored so that the loop
# trains on exactly the same data as the engine (checked in `sanity_check`).
_INIT_STREAM, _DATA_STREAM, _DROPOUT_STREAM, _TASK_STREAM = 0, 1, 2, 3

WINDOW = (0.1, 3.0)  # accepted warm seconds per repeat when T is auto-chosen
MAX_T = 1_000_000


def stream(key_data, tag, step=None):
    key = jax.random.fold_in(jax.random.wrap_key_data(key_data), tag)
    if step is not None:
        key = jax.random.fold_in(key, step)
    return key


# --------------------------------------------------------------------------------------------
# Benchmarked problems
# --------------------------------------------------------------------------------------------
def bits_task(batch: int, y_shape_extra: tuple[int, ...] = ()) -> Task:
    """Nakazato's RBE task: per member one random 16-bit string x_o; each step labels
    y ~ Bernoulli(0.5). batch == 1: the paper's single point (x = x_o); batch > 1: ``batch``
    fresh random 16-bit strings per step, each with its own random label."""

    def init(key):
        return {"x_o": jax.random.bernoulli(key, 0.5, (16,)).astype(jnp.float32)}

    def batch_fn(data, key, step):
        kx, ky = jax.random.split(key)
        y = jax.random.bernoulli(ky, 0.5, (batch,) + y_shape_extra).astype(jnp.float32)
        if batch == 1:
            x = data["x_o"][None]
        else:
            x = jax.random.bernoulli(kx, 0.5, (batch, 16)).astype(jnp.float32)
        return {"x": x, "y": y}

    return Task(init, batch_fn)


def image_task(batch: int, side: int, classes: int) -> Task:
    """Random N(0, 1) images (batch, side, side, 3) and uniform labels, fresh each step."""

    def init(key):
        return {"unused": jnp.zeros((1,), jnp.float32)}

    def batch_fn(data, key, step):
        kx, ky = jax.random.split(key)
        x = jax.random.normal(kx, (batch, side, side, 3), jnp.float32)
        return {"x": x, "y": jax.random.randint(ky, (batch,), 0, classes)}

    return Task(init, batch_fn)


@dataclasses.dataclass(frozen=True)
class Problem:
    name: str
    describe: str
    make_model: Callable[[str | None], Any]
    convs: tuple  # conv impls to compare; (None,) for conv-free models
    make_task: Callable[[int], Task]
    loss: Callable
    lr: float
    rate_guess: float  # seed-steps/s, a deliberately low first guess for choosing T


VGG_SIDE, VGG_CLASSES = 32, 5

PROBLEMS = {
    "rbe": Problem(
        name="rbe",
        describe="RBEConvNet(num_layers=3, features=8, kernel_size=3, elu, VALID, dropout 0), "
        "sigmoid output, binary cross-entropy, SGD lr 0.1, bits task (x_o per member, y ~ Bernoulli(0.5))",
        make_model=lambda conv: RBEConvNet(num_layers=3, features=8, kernel_size=3, activation="elu", padding="VALID", conv=conv),
        convs=("patches", "flax"),
        make_task=lambda b: bits_task(b),
        loss=losses.binary_cross_entropy,
        lr=0.1,
        rate_guess=5e4,
    ),
    "linear": Problem(
        name="linear",
        describe="DeepLinear(widths=(16, 32, 32, 1), small_random init 1e-3), mean squared error, "
        "SGD lr 0.01, same bits task with y of shape (B, 1)",
        make_model=lambda conv: DeepLinear((16, 32, 32, 1)),
        convs=(None,),
        make_task=lambda b: bits_task(b, (1,)),
        loss=losses.mean_squared_error,
        lr=0.01,
        rate_guess=2e5,
    ),
    "vgg": Problem(
        name="vgg",
        describe=f"DenseSampleVGG(num_conv=5, conv_features=3, kernel 3, SAME, pool_size=8, hidden=(64,), "
        f"dropout 0.5, {VGG_CLASSES} classes) on random {VGG_SIDE}x{VGG_SIDE}x3 images, softmax cross-entropy, SGD lr 0.1",
        make_model=lambda conv: DenseSampleVGG(
            num_classes=VGG_CLASSES, num_conv=5, conv_features=3, hidden=(64,), pool_size=8, dropout_rate=0.5, conv=conv
        ),
        convs=("patches", "flax"),
        make_task=lambda b: image_task(b, VGG_SIDE, VGG_CLASSES),
        loss=losses.softmax_cross_entropy,
        lr=0.1,
        rate_guess=1000.0,
    ),
}


# --------------------------------------------------------------------------------------------
# One member, written out: what the loop runs and what the FLOP count is taken of
# --------------------------------------------------------------------------------------------
def member_fns(problem: Problem, conv, batch: int):
    model = problem.make_model(conv)
    task = problem.make_task(batch)
    opt = optax.sgd(problem.lr)

    def init_one(key):
        # Same as the engine's init_member: data, then params from the step-0 batch.
        data = task.init(stream(key, _TASK_STREAM))
        x0 = task.batch(data, stream(key, _DATA_STREAM, jnp.int32(0)), jnp.int32(0))["x"]
        params = model.init({"params": stream(key, _INIT_STREAM)}, x0, train=False)["params"]
        return params, opt.init(params), data

    def step(params, opt_state, data, key, s):
        batch_ = task.batch(data, stream(key, _DATA_STREAM, s), s)

        def objective(p):
            out = model.apply({"params": p}, batch_["x"], train=True, rngs={"dropout": stream(key, _DROPOUT_STREAM, s)})
            return problem.loss(out, batch_)

        grads = jax.grad(objective)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def make_run(num_steps: int):
        @jax.jit
        def run(params, opt_state, data, key):
            def body(carry, s):
                return step(*carry, data, key, s), None

            carry, _ = jax.lax.scan(body, (params, opt_state), jnp.arange(num_steps, dtype=jnp.int32))
            return carry

        return run

    return model, task, opt, jax.jit(init_one), step, make_run


def step_cost(problem: Problem, conv, batch: int, members: int | None) -> dict | None:
    """XLA's cost analysis of one training step, of ``members`` vmapped members or of one
    unvmapped member when ``members`` is None: ``{'flops': ..., 'bytes': ...}`` (bytes accessed,
    XLA's estimate of the memory traffic), or None where the backend gives no analysis."""
    _, _, _, init_one, step, _ = member_fns(problem, conv, batch)
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    params, opt_state, data = jax.eval_shape(init_one, key)
    s = jax.ShapeDtypeStruct((), jnp.int32)
    fn = step
    if members is not None:
        add = lambda t: jax.tree_util.tree_map(lambda l: jax.ShapeDtypeStruct((members,) + l.shape, l.dtype), t)  # noqa: E731
        params, opt_state, data, key = add((params, opt_state, data, key))
        fn = jax.vmap(step, in_axes=(0, 0, 0, 0, None))
    try:
        ca = jax.jit(fn).lower(params, opt_state, data, key, s).compile().cost_analysis()
    except Exception as e:  # cost analysis is best effort
        print(f"  (cost analysis failed: {e})", file=sys.stderr)
        return None
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    ca = ca or {}
    if ca.get("flops") is None:
        return None
    return {"flops": float(ca["flops"]), "bytes": float(ca["bytes accessed"]) if ca.get("bytes accessed") is not None else None}


def step_flops(problem: Problem, conv, batch: int, members: int | None) -> float | None:
    """XLA's FLOP count of one training step: of ``members`` vmapped members, or of one
    unvmapped member when ``members`` is None."""
    cost = step_cost(problem, conv, batch, members)
    return None if cost is None else cost["flops"]


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised inside the engine's on_chunk to end a run early (when T must be re-chosen)."""


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def member_state_bytes(state) -> int:
    """Bytes of one member's (params, optimizer state, data): arrays or ShapeDtypeStructs."""
    return int(sum(int(np.prod(l.shape)) * np.dtype(l.dtype).itemsize for l in jax.tree_util.tree_leaves(state)))


def ensemble_state_bytes(problem, conv, batch, seeds) -> int:
    """Bytes an ensemble method keeps between repeats: params + optimizer state + data of every
    member (from shapes only: nothing is run)."""
    _, _, _, init_one, _, _ = member_fns(problem, conv, batch)
    return seeds * member_state_bytes(jax.eval_shape(init_one, jax.ShapeDtypeStruct((2,), jnp.uint32)))


# Peak memory of one repeat (Linux): give freed heap pages back (malloc_trim), reset the
# kernel's peak-RSS mark (/proc/self/clear_refs, "5"), run the repeat, read VmHWM. The
# growth over VmRSS before the repeat is what the repeat added at its peak (activations,
# gradients, new state buffers, temporaries); state already held is not in it.
def peak_reset() -> float | None:
    """Resets the process's peak-RSS mark; returns the current RSS in MiB (None if unsupported)."""
    malloc_trim()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    rss = _status_kib("VmRSS")
    return None if rss is None else rss / 1024.0


def peak_since_reset(rss_before: float | None) -> float | None:
    """MiB the peak RSS rose above ``rss_before`` since :func:`peak_reset`."""
    hwm = _status_kib("VmHWM")
    return None if rss_before is None or hwm is None else max(0.0, hwm / 1024.0 - rss_before)


def clock():
    """(wall seconds, CPU seconds of this process, all threads)."""
    return time.perf_counter(), time.process_time()


def since(start):
    wall, cpu = clock()
    return wall - start[0], cpu - start[1]


# Every method is a generator: each next() runs one warm repeat (compiling first if needed) and
# yields (wall seconds, process CPU seconds) of it; what else was measured goes into the dict `info`. The driver calls the
# methods of one row round-robin, so load from other processes hits all methods alike, and only
# one method ever runs at a time.


def engine_runner(problem, conv, batch, seeds, num_steps, repeats, info, record_every=None, block_width=None):
    """jaxdyn.engine.train with (repeats + 1) chunks of num_steps; yields the warm chunks' times.

    train() is run in a worker thread whose on_chunk callback blocks until the driver asks for
    the next chunk, so a chunk's time is measured from the end of the previous callback to the
    start of the next one (the chunk's jit call, the fetch of its records and the engine's host
    copy of the state for on_chunk), with nothing else of ours running meanwhile.
    """
    model = problem.make_model(conv)
    task = problem.make_task(batch)
    obs = {} if record_every is None else {"loss": observables.batch_loss(problem.loss)}
    width = {} if block_width is None else {"block_width": block_width}  # None: the engine's default
    info["state_bytes"] = ensemble_state_bytes(problem, conv, batch, seeds)
    to_driver: queue.Queue = queue.Queue()
    to_engine: queue.Queue = queue.Queue()
    last = [(0.0, 0.0)]

    def on_chunk(state, records):
        to_driver.put(("chunk", since(last[0])))
        if to_engine.get() == "stop":
            raise _Stop()
        last[0] = clock()

    def work():
        last[0] = clock()
        try:
            res = train(
                model, task, optax.sgd(problem.lr), seeds=list(range(seeds)), num_steps=(repeats + 1) * num_steps,
                loss=problem.loss, observables=obs, record_every=record_every or num_steps, chunk_steps=num_steps,
                on_chunk=on_chunk, **width,
            )
            to_driver.put(("done", res))
        except _Stop:
            to_driver.put(("stopped", None))
        except BaseException as e:  # noqa: BLE001 - handed to the driver
            to_driver.put(("error", e))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    chunks = 0
    try:
        while True:
            kind, value = to_driver.get()
            if kind == "chunk":
                chunks += 1
                if chunks == 1:  # compile (init + chunk) and the first chunk
                    info["first_s"], info["first_seed_steps"] = value[0], seeds * num_steps
                    to_engine.put("go")
                    continue
                yield value
                to_engine.put("go")
            elif kind == "done":
                info["engine"] = dict(value.engine)
                t0 = time.perf_counter()
                jax.device_get(value.state)
                info["state_host_copy_s"] = time.perf_counter() - t0
                info["diverged"] = int(value.diverged.sum())
                return
            elif kind == "stopped":
                return
            else:
                raise value
    finally:
        if thread.is_alive():
            to_engine.put("stop")
            thread.join()


def loop_scan_runner(problem, conv, batch, seeds, num_steps, repeats, info, subset):
    """loop-scan: a Python loop over (a subset of) the seeds, each seed one call of a jitted
    single-member ``lax.scan`` of num_steps SGD steps (jit once, one call per seed)."""
    _, _, _, init_one, _, make_run = member_fns(problem, conv, batch)
    keys, _ = member_keys(list(range(seeds)))
    n = min(seeds, subset)
    keys = [keys[i] for i in range(n)]
    states = [init_one(keys[i]) for i in range(n)]
    jax.block_until_ready(states)
    info["state_bytes"] = member_state_bytes(states[0])  # a loop holds one member at a time
    run = make_run(num_steps)
    t0 = time.perf_counter()
    jax.block_until_ready(run(*states[0], keys[0]))  # compile + one member
    info["first_s"], info["first_seed_steps"] = time.perf_counter() - t0, num_steps
    for _ in range(repeats):
        t0 = clock()
        outs = [run(*states[i], keys[i]) for i in range(n)]
        jax.block_until_ready(outs)
        yield since(t0)
    leaves = jax.tree_util.tree_leaves([o[0] for o in outs])
    info["diverged"] = int(sum(not bool(np.all(np.isfinite(np.asarray(l)))) for l in leaves) > 0)


def loop_step_runner(problem, conv, batch, seeds, num_steps, repeats, info, subset):
    """loop-step, the baseline of issue 7: a Python loop over (a subset of) the seeds and, for
    each seed, over its num_steps steps, calling one jitted single-member SGD step each time
    (``params, opt_state = step(params, opt_state, data, key, s)``; jit once)."""
    _, _, _, init_one, step, _ = member_fns(problem, conv, batch)
    keys, _ = member_keys(list(range(seeds)))
    n = min(seeds, subset)
    keys = [keys[i] for i in range(n)]
    states = [init_one(keys[i]) for i in range(n)]
    jax.block_until_ready(states)
    info["state_bytes"] = member_state_bytes(states[0])
    jstep = jax.jit(step)
    t0 = time.perf_counter()
    jax.block_until_ready(jstep(*states[0], keys[0], 0))  # compile + one step
    info["first_s"], info["first_seed_steps"] = time.perf_counter() - t0, 1
    for _ in range(repeats):
        t0 = clock()
        outs = []
        for i in range(n):
            params, opt_state, data = states[i]
            key = keys[i]
            for s in range(num_steps):
                params, opt_state = jstep(params, opt_state, data, key, s)
            outs.append(params)
        jax.block_until_ready(outs)
        yield since(t0)
    leaves = jax.tree_util.tree_leaves(outs)
    info["diverged"] = int(sum(not bool(np.all(np.isfinite(np.asarray(l)))) for l in leaves) > 0)


def vmap_runner(problem, conv, batch, seeds, num_steps, repeats, info):
    """Diagnostic: jit(vmap(the loop's single-member scan)) over all seeds, none of the engine's
    machinery (no records, divergence flags, chunks, donation or state copies)."""
    _, _, _, init_one, _, make_run = member_fns(problem, conv, batch)
    keys, _ = member_keys(list(range(seeds)))
    states = jax.jit(jax.vmap(init_one))(keys)
    info["state_bytes"] = member_state_bytes(states)
    run = jax.jit(jax.vmap(make_run(num_steps)))
    jax.block_until_ready(states)
    t0 = time.perf_counter()
    jax.block_until_ready(run(*states, keys))
    info["first_s"], info["first_seed_steps"] = time.perf_counter() - t0, seeds * num_steps
    for _ in range(repeats):
        t0 = clock()
        out = run(*states, keys)
        jax.block_until_ready(out)
        yield since(t0)
    info["diverged"] = int(not all(bool(np.all(np.isfinite(np.asarray(l)))) for l in jax.tree_util.tree_leaves(out[0])))


def map_runner(problem, conv, batch, seeds, num_steps, repeats, info, block):
    """Diagnostic: jit(lax.map(the single-member scan, batch_size=block)): members in blocks of
    ``block``, vmapped within a block and run one block after the other."""
    _, _, _, init_one, _, make_run = member_fns(problem, conv, batch)
    keys, _ = member_keys(list(range(seeds)))
    states = jax.jit(jax.vmap(init_one))(keys)
    info["state_bytes"] = member_state_bytes(states)
    one = make_run(num_steps)
    run = jax.jit(lambda p, o, d, k: jax.lax.map(lambda a: one(*a), (p, o, d, k), batch_size=min(block, seeds)))
    jax.block_until_ready(states)
    t0 = time.perf_counter()
    jax.block_until_ready(run(*states, keys))
    info["first_s"], info["first_seed_steps"] = time.perf_counter() - t0, seeds * num_steps
    for _ in range(repeats):
        t0 = clock()
        out = run(*states, keys)
        jax.block_until_ready(out)
        yield since(t0)
    info["diverged"] = int(not all(bool(np.all(np.isfinite(np.asarray(l)))) for l in jax.tree_util.tree_leaves(out[0])))


# --------------------------------------------------------------------------------------------
# PyTorch contender: the same ensemble with torch.func (torch is imported lazily)
# --------------------------------------------------------------------------------------------
_TORCH: dict = {}


def torch_module(threads: int | None = None):
    """The ``torch`` module, or None when it cannot be imported (the reason is kept in
    ``torch_missing()``). On the first call sets torch's intra-op threads to ``threads``
    (default: the number of usable cores)."""
    if "mod" not in _TORCH:
        try:
            import torch
            import torch.func  # noqa: F401

            _TORCH["threads"] = threads or len(os.sched_getaffinity(0))
            torch.set_num_threads(_TORCH["threads"])
            _TORCH["mod"] = torch
        except ImportError as e:
            _TORCH["mod"], _TORCH["missing"] = None, f"torch not installed ({e}); pip install -e '.[bench]'"
    return _TORCH["mod"]


def torch_missing() -> str | None:
    torch_module()
    return _TORCH.get("missing")


def torch_net(name: str, dropout: float | None = None):
    """A PyTorch module computing the same function as PROBLEMS[name]'s flax model (with the
    same parameters, see :func:`torch_params_from_flax`). Inputs as the JAX tasks give them:
    bits (B, 16); images NCHW (B, 3, H, W) (the JAX model takes NHWC)."""
    if "classes" not in _TORCH:  # defined once: stack_module_state wants one class for all members
        _TORCH["classes"] = _torch_classes()
    RBE, Linear, VGG = _TORCH["classes"]
    if name == "rbe":
        return RBE()
    if name == "linear":
        return Linear()
    if name == "vgg":
        return VGG(0.5 if dropout is None else dropout)
    raise ValueError(f"no torch model for {name!r}")


def _torch_classes():
    torch = torch_module()
    nn = torch.nn
    F = torch.nn.functional

    class RBE(nn.Module):
        """RBEConvNet(3 layers, 8 filters, kernel 3, ELU, VALID), dense to 1, sigmoid."""

        def __init__(self, layers=3, features=8, k=3, length=16):
            super().__init__()
            self.convs = nn.ModuleList([nn.Conv1d(1 if i == 0 else features, features, k) for i in range(layers)])
            self.dense = nn.Linear(features * (length - layers * (k - 1)), 1)

        def forward(self, x):  # (B, 16) -> (B,)
            h = x.unsqueeze(1)  # (B, 1, L): channels first
            for conv in self.convs:
                h = F.elu(conv(h))
            # Flatten length-major, (B, L, C) as jaxdyn (and Keras) do, so the dense kernel lines up.
            h = h.transpose(1, 2).reshape(h.shape[0], -1)
            return torch.sigmoid(self.dense(h))[:, 0]

    class Linear(nn.Module):
        """DeepLinear((16, 32, 32, 1)): bias-free dense layers."""

        def __init__(self, widths=(16, 32, 32, 1)):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(a, b, bias=False) for a, b in zip(widths[:-1], widths[1:])])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    class VGG(nn.Module):
        """DenseSampleVGG(num_conv=5, conv_features=3, kernel 3, SAME, pool 8, hidden (64,), 5 classes)."""

        def __init__(self, p_drop, num_conv=5, features=3, pool=8, hidden=64, classes=VGG_CLASSES):
            super().__init__()
            self.convs = nn.ModuleList([nn.Conv2d(3 if i == 0 else features, features, 3, padding=1) for i in range(num_conv)])
            self.pool = nn.AdaptiveAvgPool2d(pool)
            self.dense = nn.Linear(features * pool * pool, hidden)
            self.drop = nn.Dropout(p_drop)
            self.head = nn.Linear(hidden, classes)

        def forward(self, x):  # (B, 3, H, W)
            for conv in self.convs:
                x = F.relu(conv(x))
            x = torch.flatten(self.pool(x), 1)  # (C, H, W) order, as the flax model flattens
            return self.head(self.drop(F.relu(self.dense(x))))

    return RBE, Linear, VGG


def torch_params_from_flax(name: str, params) -> dict[str, np.ndarray]:
    """Stacked flax parameters (leading seed axis) -> ``{torch name: (seed, ...) array}`` in the
    layout of :func:`torch_net` (conv kernels (F, C, k...), dense weights (out, in))."""
    p = jax.tree_util.tree_map(np.asarray, params)
    out = {}
    if name == "rbe":
        for i in range(3):
            out[f"convs.{i}.weight"] = p[f"conv_{i}"]["kernel"].transpose(0, 3, 2, 1)  # (S, k, C, F) -> (S, F, C, k)
            out[f"convs.{i}.bias"] = p[f"conv_{i}"]["bias"]
        out["dense.weight"] = p["dense"]["kernel"].transpose(0, 2, 1)
        out["dense.bias"] = p["dense"]["bias"]
    elif name == "linear":
        for i in range(3):
            out[f"layers.{i}.weight"] = p[f"layer_{i}"]["kernel"].transpose(0, 2, 1)
    elif name == "vgg":
        for i in range(5):
            out[f"convs.{i}.weight"] = p[f"conv2d_{i}"]["kernel"].transpose(0, 4, 3, 1, 2)  # (S, kh, kw, C, F) -> (S, F, C, kh, kw)
            out[f"convs.{i}.bias"] = p[f"conv2d_{i}"]["bias"]
        out["dense.weight"] = p["dense_0"]["kernel"].transpose(0, 2, 1)
        out["dense.bias"] = p["dense_0"]["bias"]
        out["head.weight"] = p["head"]["kernel"].transpose(0, 2, 1)
        out["head.bias"] = p["head"]["bias"]
    else:
        raise ValueError(f"no torch model for {name!r}")
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def torch_loss(name: str):
    """The problem's loss in torch, written as jaxdyn.engine.losses writes it."""
    torch = torch_module()
    if name == "rbe":  # binary_cross_entropy, probabilities clipped to [eps, 1 - eps]
        def bce(out, y, eps=1e-7):
            p = out.clamp(eps, 1.0 - eps)
            return -(y * torch.log(p) + (1.0 - y) * torch.log1p(-p)).mean()
        return bce
    if name == "linear":  # mean_squared_error: mean over the batch of the summed squared error
        return lambda out, y: ((y - out) ** 2).reshape(out.shape[0], -1).sum(-1).mean()
    if name == "vgg":  # softmax_cross_entropy with integer labels, mean over the batch
        return lambda out, y: torch.nn.functional.cross_entropy(out, y)
    raise ValueError(f"no torch loss for {name!r}")


class TorchEnsemble:
    """``seeds`` members of the problem's model trained together with torch.func: the members'
    modules stacked (``torch.func.stack_module_state``), one member's loss gradient
    (``torch.func.grad`` of ``functional_call``) vmapped over the members (``torch.func.vmap``,
    ``randomness='different'`` so dropout masks differ per member), and an SGD update on the
    stacked parameters (``torch._foreach_add_``, what ``torch.optim.SGD`` does with foreach).

    The initial parameters are the JAX members' (``init_params``, flax layout, seed axis first),
    copied in, so both frameworks start from the same function. Each step draws a fresh batch
    for every member from torch's generator, from the same distributions as the JAX task (the
    streams are not bit-identical to JAX's); ``x_o`` (RBE / linear, batch 1) is the JAX
    members' own string.
    """

    def __init__(self, problem, batch: int, init_params, x_o=None, dropout: float | None = None):
        torch = torch_module()
        from torch.func import functional_call, grad, stack_module_state, vmap

        self.torch, self.problem, self.batch = torch, problem, batch
        flat = torch_params_from_flax(problem.name, init_params)
        self.seeds = next(iter(flat.values())).shape[0]
        modules = [torch_net(problem.name, dropout) for _ in range(self.seeds)]
        params, buffers = stack_module_state(modules)
        if set(params) != set(flat):
            raise RuntimeError(f"torch/flax parameter names differ: {sorted(params)} vs {sorted(flat)}")
        for k, v in flat.items():
            if tuple(params[k].shape) != v.shape:
                raise RuntimeError(f"{k}: torch shape {tuple(params[k].shape)} vs flax {v.shape}")
        self.names = sorted(flat)
        self.params = {k: torch.from_numpy(flat[k].copy()) for k in self.names}  # plain leaves, no autograd graph
        self.buffers = {k: v.detach() for k, v in buffers.items()}
        self.plist = [self.params[k] for k in self.names]
        base = copy.deepcopy(modules[0]).to("meta")
        base.train()
        del modules
        loss = torch_loss(problem.name)

        def member_loss(p, b, x, y):
            return loss(functional_call(base, (p, b), (x,)), y)

        self.grads = vmap(grad(member_loss), in_dims=(0, 0, 0, 0), randomness="different")
        self.lr = problem.lr
        S = self.seeds
        if problem.name in ("rbe", "linear"):
            extra = (1,) if problem.name == "linear" else ()
            self.half_y = torch.full((S, batch) + extra, 0.5)
            self.half_x = torch.full((S, batch, 16), 0.5) if batch > 1 else None
            self.x_o = None if x_o is None else torch.from_numpy(np.asarray(x_o, np.float32).copy())[:, None, :]
        self.state_bytes = int(sum(t.numel() * t.element_size() for t in self.plist)) + (
            0 if getattr(self, "x_o", None) is None else self.x_o.numel() * 4)

    def sample(self):
        """A fresh batch for every member: x (S, B, ...), y (S, B, ...)."""
        torch, S, B = self.torch, self.seeds, self.batch
        if self.problem.name in ("rbe", "linear"):
            x = self.x_o if B == 1 else torch.bernoulli(self.half_x)
            return x, torch.bernoulli(self.half_y)
        return torch.randn(S, B, 3, VGG_SIDE, VGG_SIDE), torch.randint(0, VGG_CLASSES, (S, B))

    def step(self, x=None, y=None):
        """One SGD step of every member (on a fresh batch unless x, y are given)."""
        if x is None:
            x, y = self.sample()
        g = self.grads(self.params, self.buffers, x, y)
        self.torch._foreach_add_(self.plist, [g[k] for k in self.names], alpha=-self.lr)

    def losses(self, x, y):
        """(S,) loss of every member on (x, y), no gradient (for the correctness check)."""
        from torch.func import functional_call, vmap

        base = copy.deepcopy(torch_net(self.problem.name, 0.0)).to("meta")
        base.eval()
        loss = torch_loss(self.problem.name)
        with self.torch.no_grad():
            return vmap(lambda p, b, x, y: loss(functional_call(base, (p, b), (x,)), y))(self.params, self.buffers, x, y).numpy()

    def params_numpy(self) -> dict[str, np.ndarray]:
        return {k: v.numpy().copy() for k, v in self.params.items()}


def torch_runner(problem, batch, seeds, num_steps, repeats, info, threads=None):
    """The torch.func ensemble of all seeds, num_steps eager steps per repeat; the initial
    parameters (and RBE/linear strings x_o) are the JAX members' of the same seeds. With
    ``threads``, torch's intra-op threads are set to it before every repeat (other torch
    methods of the row may use other counts)."""
    torch = torch_module()
    threads = threads or _TORCH["threads"]
    torch.set_num_threads(threads)
    conv0 = problem.convs[0]
    _, _, _, init_one, _, _ = member_fns(problem, conv0, batch)
    keys, _ = member_keys(list(range(seeds)))
    params, _, data = jax.jit(jax.vmap(init_one))(keys)
    t0 = time.perf_counter()
    ens = TorchEnsemble(problem, batch, params, x_o=data.get("x_o") if isinstance(data, dict) else None)
    del params, data
    info["setup_s"] = time.perf_counter() - t0
    info["state_bytes"] = ens.state_bytes
    info["torch_threads"] = torch.get_num_threads()
    t0 = time.perf_counter()
    ens.step()  # first call: vmap/functorch tracing caches, allocator warm-up
    info["first_s"], info["first_seed_steps"] = time.perf_counter() - t0, seeds
    for _ in range(repeats):
        torch.set_num_threads(threads)
        t0 = clock()
        for _ in range(num_steps):
            ens.step()
        yield since(t0)
    info["diverged"] = int(not all(bool(torch.isfinite(p).all()) for p in ens.plist))


def torch_check(problem, batch: int, members: int = 3):
    """torch.func and the engine train the same function: from the same initial parameters (the
    JAX init of seeds 0..members-1) and the same fixed batch, one SGD step of each. Returns the
    max |difference| of the initial losses and of the parameters after the step, and the size of
    the step (max |parameter change|) for scale. Dropout is off on both sides (their masks come
    from different generators)."""
    conv0 = problem.convs[0]
    _, task, _, init_one, _, _ = member_fns(problem, conv0, batch)
    keys, _ = member_keys(list(range(members)))
    params, _, _ = jax.jit(jax.vmap(init_one))(keys)
    kx, ky = jax.random.split(jax.random.key(12345))
    if problem.name == "vgg":
        x = jax.random.normal(kx, (members, batch, VGG_SIDE, VGG_SIDE, 3), jnp.float32)
        y = jax.random.randint(ky, (members, batch), 0, VGG_CLASSES)
        x_t = np.ascontiguousarray(np.asarray(x).transpose(0, 1, 4, 2, 3))  # NHWC -> NCHW
    else:
        x = jax.random.bernoulli(kx, 0.5, (members, batch, 16)).astype(jnp.float32)
        y = jax.random.bernoulli(ky, 0.5, (members, batch) + ((1,) if problem.name == "linear" else ())).astype(jnp.float32)
        x_t = np.asarray(x)
    model = problem.make_model(conv0)
    if hasattr(model, "dropout_rate"):
        model = model.clone(dropout_rate=0.0)
    fixed = Task(init=lambda key: None, batch=lambda data, key, step: data)
    res = train(model, fixed, optax.sgd(problem.lr), seeds=list(range(members)), num_steps=1, loss=problem.loss,
                observables={"loss": observables.batch_loss(problem.loss)}, init_params=params, data={"x": x, "y": y})
    torch = torch_module()
    ens = TorchEnsemble(problem, batch, params, dropout=0.0)
    xt, yt = torch.from_numpy(np.array(x_t)), torch.from_numpy(np.array(y))
    loss_t = ens.losses(xt, yt)
    ens.step(xt, yt)
    after_t = ens.params_numpy()
    after_j = torch_params_from_flax(problem.name, res.params)
    before = torch_params_from_flax(problem.name, params)
    diff = max(float(np.max(np.abs(after_t[k] - after_j[k]))) for k in after_j)
    moved = max(float(np.max(np.abs(after_j[k] - before[k]))) for k in after_j)
    loss_diff = float(np.max(np.abs(loss_t - res.records["loss"][:, 0])))
    return {"engine vs torch.func, loss at init": loss_diff, "engine vs torch.func, params after 1 step": diff,
            "1-step change (scale)": moved}


def nice(x: float) -> int:
    """Rounds to 1, 2 or 5 times a power of ten (>= 1)."""
    x = max(1.0, x)
    p = 10 ** int(np.floor(np.log10(x)))
    for m in (1, 2, 5, 10):
        if x <= m * p * 1.5:
            return int(m * p)
    return int(10 * p)


def choose_steps(rate, seeds_timed, target, multiple):
    t = nice(target * rate / seeds_timed)
    t = min(MAX_T, max(multiple, t))
    return int(np.ceil(t / multiple) * multiple)


class Method(NamedTuple):
    kind: str  # engine | loop-step | loop-scan | torch.func | vmap | map<N> | engine+rec10
    conv: str | None

    @property
    def label(self):
        return f"{self.kind}/{self.conv}" if self.conv else self.kind


def first_guess(method: Method, problem, seeds) -> float:
    """A deliberately low first guess of a method's seed-steps/s, for choosing T."""
    if method.kind == "loop-step":  # one dispatch per seed-step: tens of microseconds each
        return min(problem.rate_guess, 2e4)
    if method.kind == "torch.func":  # eager: about a millisecond of overhead per step
        return min(problem.rate_guess, 1e3 * seeds**0.8)
    return problem.rate_guess


def calibrated(method: Method, problem, batch, seeds, args, rates, info):
    """Yields the method's warm repeat times, ``args.repeats + 1`` of them (the driver uses
    the last one to measure memory only); re-starts the method with a new T (steps per call)
    when its first warm repeat falls outside WINDOW (only when --steps is not given)."""
    record_every = 10 if method.kind == "engine+rec10" else None
    timed = min(seeds, args.loop_subset) if method.kind.startswith("loop") else seeds
    multiple = record_every or 1
    rate_key = (problem.name, batch, method)
    fixed = args.steps is not None
    if fixed:
        T = int(np.ceil(args.steps / multiple) * multiple)
    else:
        T = choose_steps(rates.get(rate_key, first_guess(method, problem, seeds)), timed, args.target, multiple)
    info.update(seeds_timed=timed, retried=[])
    n = args.repeats + 1
    for attempt in range(4):
        if method.kind == "loop-scan":
            gen = loop_scan_runner(problem, method.conv, batch, seeds, T, n, info, args.loop_subset)
        elif method.kind == "loop-step":
            gen = loop_step_runner(problem, method.conv, batch, seeds, T, n, info, args.loop_subset)
        elif method.kind == "torch.func":
            gen = torch_runner(problem, batch, seeds, T, n, info, int(method.conv[:-7]) if method.conv else None)
        elif method.kind == "vmap":
            gen = vmap_runner(problem, method.conv, batch, seeds, T, n, info)
        elif method.kind.startswith("map"):
            gen = map_runner(problem, method.conv, batch, seeds, T, n, info, int(method.kind[3:]))
        elif method.kind.startswith("engine@"):  # engine@ensemble, engine@<width>: a block width asked for
            width = method.kind.split("@", 1)[1]
            gen = engine_runner(problem, method.conv, batch, seeds, T, n, info, None, width if width == "ensemble" else int(width))
        else:
            gen = engine_runner(problem, method.conv, batch, seeds, T, n, info, record_every)
        first = next(gen)
        dt = first[0]
        if not fixed and attempt < 3 and not WINDOW[0] <= dt <= WINDOW[1]:
            gen.close()
            info["retried"].append([T, dt])
            T = choose_steps(timed * T / dt, timed, args.target, multiple)
            continue
        info["steps_per_call"] = T
        rates[rate_key] = timed * T / dt
        yield first
        yield from gen
        return


def measure_row(methods, problem, batch, seeds, args, rates):
    """All methods of one (model, batch, seeds) point, their repeats interleaved round-robin.

    Each method runs ``args.repeats`` timed warm repeats, then one more that is not timed
    but measured for memory (peak RSS it adds, see :func:`peak_reset`), so that trimming the
    heap and resetting the peak mark never touch a timed repeat."""
    infos = {m: {} for m in methods}
    gens = {m: calibrated(m, problem, batch, seeds, args, rates, infos[m]) for m in methods}
    times = {m: [] for m in methods}
    load_before = os.getloadavg()
    active = list(methods)
    while active:
        for m in list(active):
            memory_pass = len(times[m]) == args.repeats
            rss0 = peak_reset() if memory_pass else None
            try:
                value = next(gens[m])
            except StopIteration:
                active.remove(m)
                continue
            if memory_pass:
                infos[m]["repeat_peak_mib"] = peak_since_reset(rss0)
                infos[m]["memory_pass_s"] = value[0]
            else:
                times[m].append(value)
    load_after = os.getloadavg()
    rows = []
    for m in methods:
        info = infos[m]
        cpu = [c / w for w, c in times[m]]
        times[m] = [w for w, _ in times[m]]
        med = statistics.median(times[m])
        rate = info["seeds_timed"] * info["steps_per_call"] / med
        rates[(problem.name, batch, m)] = rate
        rows.append(dict(
            model=problem.name, batch=batch, kind=m.kind, conv=m.conv, seeds=seeds, warm_s=times[m],
            warm_median_s=med, warm_min_s=min(times[m]), seed_steps_per_s=rate,
            seed_steps_per_s_best=info["seeds_timed"] * info["steps_per_call"] / min(times[m]),
            # compile+first minus the warm time of the same work: the one-time cost
            compile_s=info["first_s"] - info.get("first_seed_steps", info["seeds_timed"] * info["steps_per_call"]) * med
            / (info["seeds_timed"] * info["steps_per_call"]), cores_busy=statistics.median(cpu), loadavg_1min=[load_before[0], load_after[0]], max_rss_mib=rss_mib(),
            **{k: v for k, v in info.items()},
        ))
    return rows




def sanity_check(problem, batch, steps=20, members=3):
    """The engine and the loops train the same thing: max |param difference| after ``steps``
    (same seeds, same PRNG streams)."""
    conv0 = problem.convs[0]
    res = train(problem.make_model(conv0), problem.make_task(batch), optax.sgd(problem.lr), seeds=list(range(members)),
                num_steps=steps, loss=problem.loss, observables={}, record_every=steps)
    keys, _ = member_keys(list(range(members)))
    out = {}

    def diff_to_engine(per_member):
        diff = 0.0
        for i, p in enumerate(per_member):
            for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(res.params)):
                diff = max(diff, float(np.max(np.abs(np.asarray(a) - b[i]))))
        return diff

    for conv in problem.convs:
        _, _, _, init_one, step, make_run = member_fns(problem, conv, batch)
        run = make_run(steps)
        tag = f"/{conv}" if conv else ""
        out[f"engine{'/' + conv0 if conv0 else ''} vs loop-scan{tag}"] = diff_to_engine(
            [run(*init_one(keys[i]), keys[i])[0] for i in range(members)])
        if conv == conv0:
            jstep = jax.jit(step)
            finals = []
            for i in range(members):
                params, opt_state, data = init_one(keys[i])
                for s in range(steps):
                    params, opt_state = jstep(params, opt_state, data, keys[i], s)
                finals.append(params)
            out[f"engine{'/' + conv0 if conv0 else ''} vs loop-step{tag}"] = diff_to_engine(finals)
    return out


def machine_info(with_torch: bool = False):
    """_common.machine_info(), plus flax/optax and, with ``with_torch``, torch's version and threads."""
    info = common_machine_info()
    info.update(flax=flax.__version__, optax=optax.__version__)
    if with_torch:
        torch = torch_module()
        if torch is None:
            info["torch"] = torch_missing()
        else:
            info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                        torch_interop_threads=torch.get_num_interop_threads(),
                        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "(unset)"))
    return info


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def fmt(x, digits=3):
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)):
        return str(x)
    if x == 0:
        return "0"
    mag = int(np.floor(np.log10(abs(x))))
    if mag >= digits:
        return f"{x:,.0f}"
    return f"{x:.{max(0, digits - 1 - mag)}f}"


def method_label(row):
    return f"{row['kind']}/{row['conv']}" if row["conv"] else row["kind"]


def group_ratios(methods: list[str]) -> list[tuple[str, str]]:
    """The ratios shown for one (model, batch) group: the engine as it ships (the first engine
    column) over every contender, the goal's first (loop-step, torch.func), then diagnostics."""
    engines = [m for m in methods if m.split("/")[0] == "engine"]
    if not engines:
        return []
    ref = engines[0]
    order = ("loop-step", "torch.func", "loop-scan", "vmap", "map")
    out = [(ref, o) for kind in order for o in methods if o.split("/")[0].startswith(kind)]
    for e in engines[1:]:  # the other conv in the engine, against the loops with that conv
        conv = e.split("/", 1)[1]
        out += [(e, o) for o in methods if o.split("/")[0].startswith("loop") and o.endswith("/" + conv)]
    out += [(m, ref) for m in methods if m.startswith(("engine+rec", "engine@"))]
    return out


def render(report) -> str:
    lines = []
    m = report["machine"]
    pk = report["matmul_peak"]
    lines.append(f"Machine: {m['cpu_model']}, {m['usable_cores']} usable cores ({m['os_cpu_count']} listed), "
                 f"SIMD {'/'.join(m['simd'])}; jax {m['jax']} (jaxlib {m['jaxlib']}), flax {m['flax']}, optax {m['optax']}, "
                 f"backend {m['backend']}, devices {m['devices']}" + (f", XLA_FLAGS={m['xla_flags']!r}" if m.get("xla_flags") else "") + ".")
    if "torch" in m:
        if "torch_threads" in m:
            lines.append(f"PyTorch {m['torch']} (CPU), intra-op threads {report['args']['torch_threads']!r} "
                         f"('0' = the usable cores: {m['usable_cores']}; per torch row in the details), "
                         f"{m['torch_interop_threads']} inter-op threads, OMP_WAIT_POLICY={m.get('omp_wait_policy')}.")
        else:
            lines.append(f"PyTorch: {m['torch']}.")
    for label, p in pk.items():
        lines.append(f"Peak ({label}): float32 {p['n']}x{p['n']} @ {p['n']}x{p['n']} matmul: best {fmt(p['best_flops_per_s'] / 1e9)} GFLOP/s, "
                     f"median {fmt(p['median_flops_per_s'] / 1e9)} GFLOP/s over {len(p['times_s'])} runs.")
    la, lb = report.get("loadavg_start"), report.get("loadavg_end")
    if la:
        lines.append(f"1-minute load average at start {la[0]:.2f}" + (f", at end {lb[0]:.2f}" if lb else "") +
                     f" (on {m['usable_cores']} cores; other processes' load slows every method, which is why the methods' "
                     "repeats are interleaved round-robin within each row).")
    if report.get("peak_flops_per_s"):
        lines.append(f"'% of peak' below is relative to the best of these: {fmt(report['peak_flops_per_s'] / 1e9)} GFLOP/s.")
    lines.append(f"Repeats per row: {report['args']['repeats']} (median shown); loop rows with more than "
                 f"{report['args']['loop_subset']} seeds are timed on the first {report['args']['loop_subset']} seeds and scaled "
                 "per seed (a loop's cost is linear in seeds: each seed runs the same compiled function).")
    lines.append("")
    lines.append("Methods: **engine/<conv>** = jaxdyn.engine.train (vmap over members, lax.scan over steps, one jit call per chunk); "
                 "**loop-step/<conv>** = issue 7's baseline, a Python loop over seeds and steps calling one jitted single-member SGD step; "
                 "**loop-scan/<conv>** = a Python loop over seeds calling one jitted single-member lax.scan of all T steps (a stronger loop); "
                 "**torch.func** = the same ensemble in PyTorch (stack_module_state + functional_call + vmap of the per-member "
                 "loss gradient, SGD on the stacked parameters), same initial parameters, same batch distributions.")
    lines.append("")
    rows = report["rows"]
    groups = []
    for r in rows:
        g = (r["model"], r["batch"])
        if g not in groups:
            groups.append(g)

    def rate_cell(r):
        if r is None:
            return "-"
        if r.get("missing"):
            return "n/a (torch not installed)"
        star = "*" if r["seeds_timed"] < r["seeds"] else ""
        return fmt(r["seed_steps_per_s"]) + star

    def ratio(ra, rb, key):
        if not ra or not rb or ra.get(key) is None or rb.get(key) is None:
            return "-"
        return f"{ra[key] / rb[key]:.2f}x"

    for model, batch in groups:
        sub = [r for r in rows if (r["model"], r["batch"]) == (model, batch)]
        methods = []
        for r in sub:
            if method_label(r) not in methods:
                methods.append(method_label(r))
        seeds = sorted({r["seeds"] for r in sub})
        by = {(method_label(r), r["seeds"]): r for r in sub}
        ratios = group_ratios(methods)
        lines.append(f"### {model}, batch {batch}: seed-steps per second (higher is better)")
        lines.append("")
        head = ["seeds"] + methods + [f"{a} / {b}" for a, b in ratios]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for s in seeds:
            cells = [str(s)] + [rate_cell(by.get((meth, s))) for meth in methods]
            cells += [ratio(by.get((a, s)), by.get((b, s)), "seed_steps_per_s") for a, b in ratios]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if ratios:
            lines.append("Same ratios from each method's best (fastest) repeat instead of the median:")
            lines.append("")
            head = ["seeds"] + [f"{a} / {b}" for a, b in ratios]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            for s in seeds:
                cells = [str(s)] + [ratio(by.get((a, s)), by.get((b, s)), "seed_steps_per_s_best") for a, b in ratios]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        def memory_cell(r):
            if r is None or r.get("missing"):
                return "-"
            st, pkm = r.get("state_bytes"), r.get("repeat_peak_mib")
            return f"{fmt(st / 2**20) if st is not None else '-'} / {fmt(pkm) if pkm is not None else '-'}"

        def flops_cell(r):
            if r is None or not r.get("achieved_flops_per_s"):
                return "-"
            return f"{fmt(r['achieved_flops_per_s'] / 1e9)} ({fmt(100 * r['fraction_of_peak'])}%)"

        for caption, cell in (("memory, MiB: state held / peak RSS added by one warm repeat (see the notes below the tables)", memory_cell),
                              ("achieved GFLOP/s (% of the matmul peak)", flops_cell)):
            lines += [f"{model}, batch {batch}: {caption}", "", "| seeds | " + " | ".join(methods) + " |",
                      "|" + "---|" * (len(methods) + 1)]
            lines += ["| " + " | ".join([str(s)] + [cell(by.get((meth, s))) for meth in methods]) + " |" for s in seeds]
            lines.append("")
    lines.append("`*` loop timed on a subset of seeds and scaled per seed. 'cores busy' is the process's CPU time over "
                 "wall time during the warm repeats (median): how many of the cores the method kept busy.")
    lines.append("Memory: 'state held' = bytes of the parameters, optimizer state and per-member data the method keeps "
                 "between steps, from the arrays' sizes (all members for the ensembles; one member for the loops, which "
                 "need only the member they are training); 'peak RSS added' = after the timed repeats, one more repeat "
                 "measured, not timed: glibc malloc_trim, reset of the kernel's peak-RSS mark (/proc/self/clear_refs), the "
                 "repeat, then VmHWM minus the RSS before it: the memory the steps themselves need at their peak "
                 "(activations, gradients, new parameter buffers, temporaries; for the engine also its host copy of the "
                 "state after the chunk). Memory the allocator already held is not counted again, so this is a lower bound.")
    lines.append("FLOPs: XLA's cost analysis of one training step (vmapped at 16 members, per member, for the ensembles "
                 "and torch.func, which does the same arithmetic; one unvmapped member for the loops) times the "
                 "measured seed-steps/s.")
    lines.append("")
    lines.append("### Details")
    lines.append("")
    head = ["model", "batch", "method", "engine block width x devices", "seeds", "seeds timed", "steps/call", "warm s (median)", "warm s (all)",
            "seed-steps/s", "best seed-steps/s", "compile s", "cores busy", "load 1-min", "GFLOP/step/seed", "GFLOP/s",
            "% of peak", "state MiB", "repeat peak +RSS MiB", "max RSS so far MiB"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in rows:
        if r.get("missing"):
            continue
        fl = r.get("flops_per_seed_step")
        lines.append("| " + " | ".join([
            r["model"], str(r["batch"]), method_label(r),
            (f"{r['engine']['block_width'] if r['engine']['blocked'] else 'ensemble'} x {r['engine']['devices']}" if r.get("engine") else "-"),
            str(r["seeds"]), str(r["seeds_timed"]), str(r["steps_per_call"]),
            fmt(r["warm_median_s"]), ", ".join(fmt(t) for t in r["warm_s"]), fmt(r["seed_steps_per_s"]), fmt(r["seed_steps_per_s_best"]), fmt(r["compile_s"]),
            fmt(r["cores_busy"]) if "cores_busy" in r else "-",
            f"{r['loadavg_1min'][0]:.1f}-{r['loadavg_1min'][1]:.1f}",
            fmt(fl / 1e9, 3) if fl else "-",
            fmt(r["achieved_flops_per_s"] / 1e9) if r.get("achieved_flops_per_s") else "-",
            fmt(100 * r["fraction_of_peak"]) if r.get("fraction_of_peak") else "-",
            fmt(r["state_bytes"] / 2**20) if r.get("state_bytes") is not None else "-",
            fmt(r["repeat_peak_mib"]) if r.get("repeat_peak_mib") is not None else "-",
            fmt(r["max_rss_mib"]),
        ]) + " |")
    lines.append("")
    if report.get("sanity"):
        lines.append("Sanity (max |param difference| after 20 steps, 3 members, engine with the shipped conv vs the loops, same "
                     "seeds and PRNG streams): " + "; ".join(f"{k} {p}: {v:.2e}" for k, d in report["sanity"].items() for p, v in d.items()))
    if report.get("torch_check"):
        lines.append("torch.func vs the engine (3 members, the same initial parameters and the same fixed batch, one SGD step, "
                     "dropout off; max |difference|): " + "; ".join(
                         f"{k} {p}: {v:.2e}" for k, d in report["torch_check"].items() for p, v in d.items()))
    lines.append(f"Total benchmark wall time: {fmt(report.get('wall_s', 0.0))} s.")
    return "\n".join(lines)


def _require_default_devices() -> None:
    """Refuses to time "the engine" on fewer CPU devices than its default (one per core).

    ``import jaxdyn`` before JAX sets that default; an import order that loads JAX first (an
    import sorter once reordered this file's) would time a one-device engine under the default's
    name. An explicit ``JAXDYN_HOST_DEVICES`` or device count in ``XLA_FLAGS`` is respected.
    """
    if jax.default_backend() != "cpu" or "JAXDYN_HOST_DEVICES" in os.environ:
        return
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    cores = len(os.sched_getaffinity(0))
    if len(jax.devices()) < cores:
        raise SystemExit(f"bench_ensemble: JAX has {len(jax.devices())} CPU device(s) on {cores} cores: jaxdyn was imported "
                         "after JAX, so the engine rows would not be the default engine's (import jaxdyn first)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="1,16,256,1024,4096", help="seed counts for rbe and linear")
    ap.add_argument("--vgg-seeds", default="1,16,256", help="seed counts for vgg")
    ap.add_argument("--models", default="rbe,linear,vgg")
    ap.add_argument("--batches", default="1,32", help="points per step for rbe and linear; 1 is the RBE paper's single point")
    ap.add_argument("--vgg-batches", default="1,8", help="images per step for vgg")
    ap.add_argument("--steps", type=int, default=None, help="fixed steps per jit call (default: chosen per row)")
    ap.add_argument("--target", type=float, default=0.2, help="target seconds per warm repeat when --steps is not given")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loop-subset", type=int, default=64, help="most seeds the loop is timed on (then scaled per seed)")
    ap.add_argument("--rec-seeds", default="256", help="rbe seed counts with the engine+rec10 row ('' for none)")
    ap.add_argument("--methods", default="engine,loopstep,loopscan,torch,rec",
                    help="engine (engine/<conv> per conv), loopstep (loop-step/<conv>: loop over seeds and steps of a jitted step), "
                         "loopscan or loop (loop-scan/<conv>: loop over seeds of a jitted T-step scan), torch (torch.func ensemble), "
                         "vmap and map (diagnostics), rec (engine+rec10)")
    ap.add_argument("--block-widths", default="",
                    help="extra engine columns (shipped conv) with train(block_width=...): a comma list of 'ensemble' (one "
                         "vmap of all members) and widths, e.g. 'ensemble,16,64,256'; labelled engine@<width>")
    ap.add_argument("--convs", default="", help="only these conv implementations (comma list of patches, flax; default: both)")
    ap.add_argument("--map-batch", type=int, default=16, help="members per block of the diagnostic map method")
    ap.add_argument("--omp-wait-policy", default="PASSIVE",
                    help="OMP_WAIT_POLICY for torch's OpenMP threads when the environment does not set it ('' to leave "
                         "it unset). PASSIVE: idle threads sleep instead of spinning, which on a machine with few cores "
                         "would take them from the working thread and from the JAX methods timed in the same process")
    ap.add_argument("--torch-threads", default="0",
                    help="torch intra-op threads (0: the number of usable cores, the default); a comma list, e.g. "
                         "'2,1', runs one torch.func method per count (labelled torch.func/<k>threads)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    args = ap.parse_args(argv)
    _require_default_devices()
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    for w in filter(None, args.block_widths.split(",")):
        if w != "ensemble" and not (w.isdigit() and int(w) >= 1):
            ap.error(f"--block-widths: {w!r} is neither 'ensemble' nor a positive integer")

    t_start = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    wanted = set(args.methods.split(","))
    known = {"engine", "loop", "loopscan", "loopstep", "torch", "vmap", "map", "rec"}
    if not wanted <= known:
        ap.error(f"--methods: unknown {sorted(wanted - known)}")
    if "loop" in wanted:
        wanted = (wanted - {"loop"}) | {"loopscan"}
    if "torch" in wanted:
        if args.omp_wait_policy and "OMP_WAIT_POLICY" not in os.environ:
            os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy  # read when torch's OpenMP runtime loads
        torch_threads = [int(t) or len(os.sched_getaffinity(0)) for t in args.torch_threads.split(",")]
        torch_module(torch_threads[0])  # before anything else imports it: sets its threads
    report: dict[str, Any] = dict(
        args=vars(args), argv=sys.argv, machine=machine_info(with_torch="torch" in wanted), rows=[], sanity={}, torch_check={},
        problems={k: p.describe for k, p in PROBLEMS.items()}, loadavg_start=os.getloadavg(),
    )
    print(json.dumps(report["machine"]), flush=True)
    report["matmul_peak"] = {"start": matmul_peak()}
    peak = report["matmul_peak"]["start"]["best_flops_per_s"]
    print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s (load average {os.getloadavg()[0]:.2f})", flush=True)

    def save():
        report["wall_s"] = time.perf_counter() - t_start
        with open(os.path.join(args.out, "ensemble.json"), "w") as f:
            json.dump(report, f, indent=1, default=float)

    rates: dict = {}
    first_rate: dict = {}
    rec_seeds = {int(s) for s in args.rec_seeds.split(",") if s}
    torch_ok = "torch" in wanted and torch_module() is not None
    for name in args.models.split(","):
        problem = PROBLEMS[name]
        if args.convs and problem.convs != (None,):
            problem = dataclasses.replace(problem, convs=tuple(c for c in problem.convs if c in args.convs.split(",")))
        seed_list = [int(s) for s in (args.vgg_seeds if name == "vgg" else args.seeds).split(",")]
        batches = [int(b) for b in (args.vgg_batches if name == "vgg" else args.batches).split(",")]
        task1 = problem.make_task(1)
        x1 = task1.batch(task1.init(jax.random.key(0)), jax.random.key(0), 0)["x"]
        report.setdefault("param_counts", {})[name] = count_params(
            jax.eval_shape(problem.make_model(problem.convs[0]).init, jax.random.key(0), x1))
        report["sanity"][name] = sanity_check(problem, batches[0])
        print(f"[{name}] params {report['param_counts'][name]}; sanity {report['sanity'][name]}", flush=True)
        if torch_ok:
            report["torch_check"][name] = torch_check(problem, batch=4)
            print(f"[{name}] torch.func vs engine, 1 SGD step from the same params on the same batch of 4: "
                  f"{report['torch_check'][name]}", flush=True)
        for bi, batch in enumerate(batches):
            if bi:  # first guesses for this batch size: the previous one's rates at its first seed count,
                # scaled by (batch ratio)^0.75 (cost grows sub-linearly with the batch at these sizes)
                prev = batches[bi - 1]
                for (pn, pb, m), r in list(rates.items()):
                    if pn == name and pb == prev and (pn, batch, m) not in rates:
                        rates[(pn, batch, m)] = first_rate.get((pn, pb, m), r) * (prev / batch) ** 0.75
            # FLOPs per seed-step from XLA's cost analysis: vmapped (16 members) and one member.
            flops = {}
            for conv in problem.convs:
                for members in (16, None):
                    f = step_flops(problem, conv, batch, members)
                    flops[(conv, members)] = None if f is None else f / (members or 1)
            for seeds in seed_list:
                methods = []
                if "engine" in wanted:
                    methods += [Method("engine", c) for c in problem.convs]
                if "loopstep" in wanted:
                    methods += [Method("loop-step", c) for c in reversed(problem.convs)]
                if "loopscan" in wanted:
                    methods += [Method("loop-scan", c) for c in reversed(problem.convs)]
                if torch_ok:
                    methods += ([Method("torch.func", None)] if len(torch_threads) == 1
                                else [Method("torch.func", f"{k}threads") for k in torch_threads])
                methods += [Method(f"engine@{w}", problem.convs[0]) for w in args.block_widths.split(",") if w]
                if "vmap" in wanted:
                    methods.append(Method("vmap", problem.convs[0]))
                if "map" in wanted:
                    methods.append(Method(f"map{args.map_batch}", problem.convs[0]))
                if "rec" in wanted and name == "rbe" and seeds in rec_seeds:
                    methods.append(Method("engine+rec10", problem.convs[0]))
                for row in measure_row(methods, problem, batch, seeds, args, rates):
                    first_rate.setdefault((name, batch, Method(row["kind"], row["conv"])), row["seed_steps_per_s"])
                    conv = problem.convs[0] if row["kind"] == "torch.func" else row["conv"]
                    fl = flops[(conv, None if row["kind"].startswith("loop") else 16)]
                    if fl:
                        row["flops_per_seed_step"] = fl
                        row["achieved_flops_per_s"] = fl * row["seed_steps_per_s"]
                        row["fraction_of_peak"] = row["achieved_flops_per_s"] / peak
                    report["rows"].append(row)
                    print(f"[{name} B={batch}] {method_label(row):>20} seeds={seeds:>5} T={row['steps_per_call']:>7} "
                          f"warm={row['warm_median_s']:.3f}s rate={row['seed_steps_per_s']:,.0f}/s "
                          f"compile={row['compile_s']:.2f}s retried={len(row['retried'])} "
                          f"load={row['loadavg_1min'][0]:.1f} ({time.perf_counter() - t_start:.0f}s)", flush=True)
                if "torch" in wanted and not torch_ok:
                    report["rows"].append(dict(model=name, batch=batch, kind="torch.func", conv=None, seeds=seeds,
                                               missing=torch_missing()))
                save()
    report["matmul_peak"]["end"] = matmul_peak()
    report["loadavg_end"] = os.getloadavg()
    # Fractions of the best matmul rate seen (start or end): on a loaded machine the one at
    # the start alone can be far below what the cores do.
    peak = max(p["best_flops_per_s"] for p in report["matmul_peak"].values())
    report["peak_flops_per_s"] = peak
    for row in report["rows"]:
        if row.get("achieved_flops_per_s"):
            row["fraction_of_peak"] = row["achieved_flops_per_s"] / peak
    save()
    md = render(report)
    with open(os.path.join(args.out, "ensemble.md"), "w") as f:
        f.write(md + "\n")
    print()
    print(md)


if __name__ == "__main__":
    main()
