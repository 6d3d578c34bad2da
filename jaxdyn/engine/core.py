"""The seed-ensemble training engine: every member of an ensemble trained inside one jit.

One call, :func:`train`, takes each concern as a named argument (the learner, the task, seeds,
what to record and how often, devices, chunking, checkpoints), in the manner of
``diffrax.diffeqsolve``. Inside, members are vmapped and steps are scanned:

    chunk = scan over ticks ( scan over ``tick`` steps ; observe the groups due )

so observables are recorded on the device without a host sync per step. Chunks run one after
the other from Python, so a progress bar can advance and a checkpoint can be written between
them. Every random number of member ``i`` at step ``s`` comes from ``fold_in(key_i, stream, s)``,
which makes the result independent of the chunk size (bitwise) and of the ensemble's composition.

Compiled once: the programs are module-level jitted functions of a hashable :class:`TrainSpec`
(learner, task, recording plan: frozen values compared by value), so a second call with an equal
specification and the same shapes neither retraces nor recompiles. The pure pieces are public for
users who drive their own loop: :func:`init_ensemble` (the initial :class:`EnsembleState` and the
first records) and :func:`run_chunk` (a number of ticks from a state).

Data: ``data=`` holds per-member arrays (a leading seed axis), ``shared=`` arrays that every member
sees (no seed axis), passed once to the device and never copied into checkpoints; the task and
the observables see both merged into one mapping (``snapshot.data``).

Reliability: before anything compiles, ``train`` validates its arguments and estimates the memory
its states and records will take (abstract evaluation, no compilation), refusing with the
estimate and a suggestion when it exceeds what the device has free (:class:`ResourceError`).
With ``checkpoint=Checkpointer(...)`` it writes crash-safe checkpoints between chunks and resumes
from them bitwise (:mod:`jaxdyn.engine.checkpoint`). A member whose learner reports a non-finite
step (loss or gradient) is flagged in ``diverged_at``; members never interact, so the others are
unchanged.

Executors (a Ray cluster, or chunks of members one after the other) are a layer above this
module: :mod:`jaxdyn.engine.executor` splits a :class:`TrainCall`'s members and runs
:func:`run_call` on each chunk.
"""

from __future__ import annotations

import functools
import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdyn._lowering import use_unrolled_threefry_on_cpu
from jaxdyn.engine.checkpoint import Checkpointer, CheckpointError
from jaxdyn.engine.learners import Learner, as_learner
from jaxdyn.engine.recording import Record, as_plan, declared, period_of, tick_of, validate_plan

use_unrolled_threefry_on_cpu()  # faster XLA:CPU compilation, the same random bits (jaxdyn/_lowering.py)

PyTree = Any
Array = jax.Array

# Stream tags for jax.random.fold_in: one independent stream per concern, per member.
_INIT_STREAM, _DATA_STREAM, _DROPOUT_STREAM, _TASK_STREAM = 0, 1, 2, 3


class Task(NamedTuple):
    """A source of data for one ensemble member, as two pure functions.

    Any object with these two attributes is a task; it must be hashable (module-level functions
    in this NamedTuple, or a frozen dataclass with ``init`` and ``batch`` methods), since the
    compiled program is keyed by it.

    Attributes:
        init: ``init(key) -> data``. The member's fixed data (training set, probe sets), a
            pytree of arrays without the seed axis; the engine vmaps it over members. Not called
            when ``train`` is given ``data=``; may be None then.
        batch: ``batch(data, key, step) -> batch``. The mini-batch used at ``step`` (an int32
            scalar); ``key`` is the member's data key for that step, so data order differs
            between members. ``data`` holds the member's data and the shared data in one
            mapping. The batch must hold the model input under ``"x"``.
    """

    init: Callable[[Array], PyTree] | None
    batch: Callable[[PyTree, Array, Array], Mapping[str, Array]]


class Snapshot(NamedTuple):
    """What an observable sees of one member at a recorded step (no seed axis).

    Attributes:
        params: the learner's parameters after ``step`` updates.
        state: the learner's whole state (parameters, optimizer state, ...).
        step: int32 scalar, number of updates applied so far.
        batch: the batch the next update will use.
        data: the member's data and the shared data, in one mapping.
        hparams: the member's hyperparameters, ``{name: scalar}``.
        apply: ``apply(params, x) -> outputs`` in evaluation mode (no dropout), with the state's
            other variables (batch statistics).
    """

    params: PyTree
    state: PyTree
    step: Array
    batch: Mapping[str, Array]
    data: PyTree
    hparams: Mapping[str, Array]
    apply: Callable[[PyTree, Array], Array]


Observable = Callable[[Snapshot], Any]


class TrainSpec(NamedTuple):
    """What the compiled programs depend on besides array shapes; hashable, compared by value.

    Attributes:
        learner: the :class:`~jaxdyn.engine.learners.Learner`.
        task: the :class:`Task`.
        plan: the recording plan, a tuple of :class:`~jaxdyn.engine.recording.Record`.
    """

    learner: Any
    task: Any
    plan: tuple


class EnsembleState(NamedTuple):
    """The whole state of an ensemble between chunks; enough to resume bitwise.

    Every array leaf has the seed axis first (padding included on the device).

    Attributes:
        learner: the learners' states (for a gradient learner: params, optimizer state and other
            model variables), leaves (seed, ...).
        data: per-member data, leaves (seed, ...) (``{}`` when there is none).
        keys: (seed, 2) uint32 raw PRNG keys, the member's root key.
        hparams: ``{name: (seed,)}`` per-member hyperparameters.
        diverged_at: (seed,) int32, the first step whose update was non-finite, -1 while finite.
        step: host int, number of updates done.
    """

    learner: PyTree
    data: PyTree
    keys: Array
    hparams: Mapping[str, Array]
    diverged_at: Array
    step: int


class EnsembleResult(NamedTuple):
    """What :func:`train` returns. Arrays are numpy, seed axis first, padding removed.

    Attributes:
        params: final parameters, leaves (seed, ...).
        records: ``{name: (seed, time, ...)}``, every record of every group; ``time`` is the
            group's own time axis (see ``dims_of`` and ``times``).
        record_steps: (time,) int, the steps of the first group's records (0 is the initial state).
        diverged_at: (seed,) int, first non-finite step per member, -1 where none.
        seeds: (seed,) the integer seeds, or None when keys were given.
        state: the final :class:`EnsembleState` (for resuming; leaves (seed, ...)).
        times: ``{time dim: (time,) steps}`` for every group of the plan.
        dims_of: ``{record name: (time dim, *output dims)}``, the axes after ``seed``.
        attrs_of: ``{record name: attributes}`` declared by the observables.
        engine: how the members were computed: ``{"block_width", "devices", "padded_members"}``
            (the block width is part of what the results depend on; see :func:`train`).
        nonfinite_at: (seed,) int, the first recorded step at which any record of the member is
            non-finite (NaN or infinite), -1 where none: a member whose training stays finite
            can still record undefined values (a saturated output, a division by zero).
    """

    params: PyTree
    records: dict[str, np.ndarray]
    record_steps: np.ndarray
    diverged_at: np.ndarray
    seeds: np.ndarray | None
    state: EnsembleState
    times: dict[str, np.ndarray]
    dims_of: dict[str, tuple[str, ...]]
    attrs_of: dict[str, dict]
    engine: dict
    nonfinite_at: np.ndarray

    @property
    def diverged(self) -> np.ndarray:
        """(seed,) bool: members flagged as diverged."""
        return self.diverged_at >= 0

    @property
    def opt_state(self) -> PyTree:
        """The final optimizer state of a gradient learner, leaves (seed, ...)."""
        return self.state.learner.opt_state

    def to_dataset(self, *, conditions: Mapping[str, Any] | None = None, records: Sequence[str] | None = None,
                   attrs: Mapping[str, Any] | None = None, seed_index: Any = None):
        """The records as an xarray Dataset with named dims, ``seed`` first.

        Args:
            conditions: per-member conditions ``{name: (seed,)}`` added as coordinates on ``seed``
                (so ``ds.sel(seed=ds.beta0 == 0.1)`` and ``ds.swap_dims`` work).
            records: which records to include (default all).
            attrs: dataset attributes.
            seed_index: the ``seed`` coordinate (default the integer seeds, or 0..n-1).

        Returns:
            ``xarray.Dataset`` with one variable per record, dims ``(seed, <time dim>, *dims)``
            where the observable declared them (``<record>_dim<k>`` otherwise); a coordinate per
            time dim holding its steps; ``diverged_at`` (seed,).
        """
        import xarray as xr

        n = len(self.diverged_at)
        seed = np.arange(n) if seed_index is None and self.seeds is None else (self.seeds if seed_index is None else seed_index)
        variables = {}
        for name in (records if records is not None else self.records):
            values = self.records[name]
            dims = ("seed", *self.dims_of[name])
            if len(dims) != values.ndim:
                raise ValueError(f"records[{name!r}]: declared dims {dims} do not match its shape {values.shape}")
            variables[name] = xr.Variable(dims, values, attrs=dict(self.attrs_of.get(name) or {}))
        for flag, flag_attrs in MEMBER_FLAG_ATTRS.items():
            variables[flag] = xr.Variable(("seed",), getattr(self, flag), attrs=dict(flag_attrs))
        coords: dict[str, Any] = {"seed": seed}
        for dim, steps in self.times.items():
            coords[dim] = xr.Variable((dim,), steps, attrs={"units": "step", "long_name": f"training step of the records along {dim}"})
        for key, value in (conditions or {}).items():
            coords[key] = ("seed", np.asarray(value))
        return xr.Dataset(variables, coords=coords, attrs=dict(attrs or {}))


class EngineConfigError(ValueError):
    """An argument of :func:`train` is invalid; raised before anything compiles."""


class MemoryEstimate(NamedTuple):
    """What :func:`train` expects to hold in memory, in bytes (activations not included).

    Attributes:
        params, opt_state, data, record: bytes per member: parameters, the rest of the learner's
            state (optimizer state, batch statistics), per-member data, and one record of every
            observable (one time point of every group).
        observables: ``{name: bytes of one record of one member}``.
        num_members, num_records: members (padding included) and records per member (time points).
        members_per_device, chunk_records: members on each device; records held on the device
            per chunk.
        device_bytes: per device: states (params, the rest of the learner state, data, plus
            gradients and updates, 2 x params) and one chunk of records.
        host_bytes: all records of all members, kept on the host (plus ``device_bytes`` of every
            device when the device is the host's own memory, as on CPU).
        device_available, host_available: free bytes found (None where unknown).
        device_kind: "device" when the device reports its own memory, else "host".
    """

    params: int
    opt_state: int
    data: int
    record: int
    observables: dict
    num_members: int
    num_records: int
    members_per_device: int
    chunk_records: int
    device_bytes: int
    host_bytes: int
    device_available: int | None
    host_available: int | None
    device_kind: str


class ResourceError(EngineConfigError):
    """The run would not fit in the available memory; raised before anything compiles.

    Attributes:
        estimate: the :class:`MemoryEstimate`.
    """

    def __init__(self, message: str, estimate: MemoryEstimate):
        super().__init__(message)
        self.estimate = estimate

    def __reduce__(self):  # pickles with its estimate (raised in a Ray task, read on the driver)
        return type(self), (str(self), self.estimate)


def host_available_memory() -> int | None:
    """Free host memory in bytes: MemAvailable from /proc/meminfo (or psutil), capped by a cgroup
    memory limit (containers); None where neither can be read."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        try:
            import psutil

            available = int(psutil.virtual_memory().available)
        except Exception:  # noqa: BLE001 - psutil missing or unsupported platform
            return None
    try:  # cgroup v2: the container's limit minus its usage
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        if limit != "max":
            used = int(open("/sys/fs/cgroup/memory.current").read().strip())
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def device_available_memory(device: jax.Device) -> int | None:
    """Free bytes on ``device`` from ``device.memory_stats()`` (GPU, TPU); None where the device
    does not report its memory (CPU: its memory is the host's)."""
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - not implemented on some backends
        return None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def _nbytes(tree) -> int:
    return int(sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree)))


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _estimate_memory(abstract_state, abstract_records, num_padded, num_times, chunk_times, devices) -> MemoryEstimate:
    per = lambda tree: _nbytes(tree) // num_padded  # noqa: E731
    obs = {k: per(v) for k, v in abstract_records.items()}
    learner = abstract_state.learner
    # Parameters are held three times (with their gradients and updates); the rest of the
    # learner's state (optimizer state, batch statistics) once.
    p = per(learner.params) if hasattr(learner, "params") else per(learner)
    o, d = per(learner) - p, per(abstract_state.data)
    r = sum(obs.values())
    members_per_device = num_padded // len(devices)
    chunk_bytes = sum(obs[k] * chunk_times[k] for k in obs)
    total_bytes = sum(obs[k] * num_times[k] for k in obs)
    device_bytes = members_per_device * (3 * p + o + d + chunk_bytes)
    host_bytes = num_padded * total_bytes
    device_available = min((a for a in map(device_available_memory, devices) if a is not None), default=None)
    kind = "device" if device_available is not None else "host"
    if kind == "host":
        host_bytes += len(devices) * device_bytes
    return MemoryEstimate(params=p, opt_state=o, data=d, record=r, observables=obs, num_members=num_padded,
                          num_records=max(num_times.values(), default=1), members_per_device=members_per_device,
                          chunk_records=max(chunk_times.values(), default=0), device_bytes=device_bytes, host_bytes=host_bytes,
                          device_available=device_available, host_available=host_available_memory(), device_kind=kind)


def _check_memory(est: MemoryEstimate, fraction: float = 0.9) -> None:
    """Raises :class:`ResourceError` when the estimate exceeds ``fraction`` of what is free."""
    over = []
    if est.device_available is not None and est.device_bytes > fraction * est.device_available:
        over.append(("device", est.device_bytes, est.device_available))
    if est.host_available is not None and est.host_bytes > fraction * est.host_available:
        over.append(("host" if est.device_kind == "device" else "host (the device's memory is the host's)", est.host_bytes, est.host_available))
    if not over:
        return
    where, need, have = over[0]
    records_total = est.num_members * est.num_records * est.record
    largest = max(est.observables, key=est.observables.get) if est.observables else None
    parts = [
        f"memory: this run needs about {_fmt_bytes(need)} of {where} memory but {_fmt_bytes(have)} is free",
        f"records {_fmt_bytes(records_total)} = {est.num_members} members x {est.num_records} records x {_fmt_bytes(est.record)}"
        + (f" (largest observable {largest!r}: {_fmt_bytes(est.observables[largest])} per record)" if largest else ""),
        f"states {_fmt_bytes(est.members_per_device * (3 * est.params + est.opt_state + est.data))} per device = "
        f"{est.members_per_device} members x (params {_fmt_bytes(est.params)} x 3 with gradients and updates"
        f" + optimizer and other state {_fmt_bytes(est.opt_state)} + data {_fmt_bytes(est.data)})",
        "record less often (record_every) or smaller observables, train fewer seeds per call, or use smaller chunk_steps; "
        "memory_check=False (CLI: --no-memory-check) runs anyway",
    ]
    raise ResourceError("; ".join(parts), est)


def member_keys(seeds: Sequence[int] | Array) -> tuple[Array, np.ndarray | None]:
    """Root PRNG keys for the members.

    Args:
        seeds: a sequence of distinct non-negative ints below 2**32, or raw keys of shape
            (seed, 2) uint32.

    Returns:
        (keys of shape (seed, 2) uint32, the int seeds as an array or None).
    """
    arr = np.asarray(seeds)
    if arr.ndim == 2 and arr.shape[1] == 2 and arr.dtype == np.uint32:
        return jnp.asarray(arr), None
    if arr.ndim != 1 or arr.size == 0:
        raise EngineConfigError(f"seeds: expected a non-empty 1-D list of ints or (n, 2) uint32 keys, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise EngineConfigError(f"seeds: expected integers, got dtype {arr.dtype}")
    # Distinct: increasing seeds (range(n)) need no sort; otherwise a sort (np.unique's hashing
    # took 44 s for 10**7 seeds).
    if arr.size > 1 and not (np.diff(arr) > 0).all():
        ordered = np.sort(arr)
        if (ordered[1:] == ordered[:-1]).any():
            raise EngineConfigError("seeds: seeds must be distinct, or members would be copies of each other")
    if arr.min() < 0 or arr.max() >= 2**32:
        raise EngineConfigError("seeds: seeds must be in 0 .. 2**32 - 1")
    keys = _seed_keys(jnp.asarray(arr, dtype=jnp.uint32))
    return keys, arr


@jax.jit
def _seed_keys(seeds: Array) -> Array:
    return jax.vmap(lambda s: jax.random.key_data(jax.random.key(s)))(seeds)


def _stream(key_data: Array, stream: int, step: Array | None = None) -> Array:
    key = jax.random.fold_in(jax.random.wrap_key_data(key_data), stream)
    if step is not None:
        key = jax.random.fold_in(key, step)
    return key


def _pad_members(tree: PyTree, num_padded: int) -> PyTree:
    """Pads the leading axis to ``num_padded`` by repeating the last member."""

    def pad(x):
        x = jnp.asarray(x)
        extra = num_padded - x.shape[0]
        if extra == 0:
            return x
        return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)], axis=0)

    return jax.tree_util.tree_map(pad, tree)


def _merge(data_m: PyTree, shared: PyTree) -> PyTree:
    """The member's view of its data: its own arrays and the shared ones in one mapping."""
    if not shared:
        return data_m
    return {**shared, **data_m}


# ---------------------------------------------------------------------------------------------
# The pure pieces: one member's initialisation, observation and chunk; their ensemble maps.
# ---------------------------------------------------------------------------------------------
def _observe(spec: TrainSpec, groups: Sequence[Record], lstate, step, view, key, hp) -> dict[str, Any]:
    """``{observable: array or {record: array}}`` of ``groups`` for one member at ``step`` (one
    batch and one snapshot serve every observable)."""
    if not any(r.observables for r in groups):
        return {}
    learner = spec.learner
    batch = spec.task.batch(view, _stream(key, _DATA_STREAM, step), step)
    snap = Snapshot(params=learner.params(lstate), state=lstate, step=step, batch=batch, data=view, hparams=hp,
                    apply=lambda p, x: learner.apply(lstate, x, params=p))
    out: dict[str, Any] = {}
    for group in groups:
        for name, fn in group.observables:
            value = fn(snap)
            out[name] = dict(value) if isinstance(value, Mapping) else value
    return out


def _flatten_records(nested: Mapping[str, Any]) -> dict[str, Any]:
    """``{observable: array or {record: array}}`` -> ``{record: array}``: an observable returning
    a mapping contributes one record per entry, named by its key."""
    flat: dict[str, Any] = {}
    for name, value in nested.items():
        items = value.items() if isinstance(value, Mapping) else ((name, value),)
        for record, array in items:
            if record in flat:
                raise EngineConfigError(f"observables[{name!r}]: its record {record!r} clashes with another record's name")
            flat[record] = array
    return flat


def _init_member(spec: TrainSpec, observe: bool, key, hp, params, data_m, shared):
    """One member's initial state and data, and with ``observe`` its records at step 0 (else {})."""
    if data_m is None:
        data_m = spec.task.init(_stream(key, _TASK_STREAM))
    view = _merge(data_m, shared)
    batch0 = spec.task.batch(view, _stream(key, _DATA_STREAM, jnp.int32(0)), jnp.int32(0))
    lstate = spec.learner.init(_stream(key, _INIT_STREAM), batch0, hp, params=params)
    records = {}
    if observe:
        for group in spec.plan:
            records[group.dim] = _observe(spec, (group,), lstate, jnp.int32(0), view, key, hp)
    return lstate, data_m, records


def _member_chunk(spec: TrainSpec, n_ticks: int, lstate, diverged_at, data_m, key, hp, shared, start):
    """``n_ticks`` ticks of one member from step ``start``; returns the state and the records of
    every group at ``start`` and after each tick: the tick's own groups as scan outputs
    (n_ticks + 1 times), sparser groups in buffers (n_ticks * tick // every + 1 times).

    The records at ``start`` are computed only when ``start`` is 0 (zeros otherwise: they are
    the previous chunk's last). So a run's step-0 records come from its chunk program, and the
    observables are compiled once per run instead of a second time in the initialisation's
    program (rbe-response's quick run: 15.4 s of compilation instead of 18.8 s). For that
    each observable must appear once in the program: the scan has n_ticks + 1 iterations, the
    first of which trains no step (a loop of zero trips) and observes under a branch.
    """
    learner, task = spec.learner, spec.task
    view = _merge(data_m, shared)
    tick = tick_of(spec.plan)
    dense = [g for g in spec.plan if g.every == tick]
    sparse = [g for g in spec.plan if g.every != tick]

    def one_step(step, carry):
        lstate, diverged_at = carry
        batch = task.batch(view, _stream(key, _DATA_STREAM, step), step)
        lstate, finite = learner.step(lstate, batch, _stream(key, _DROPOUT_STREAM, step), hp)
        diverged_at = jnp.where((diverged_at < 0) & ~finite, step, diverged_at)
        return lstate, diverged_at

    def observe(group, lstate, at):
        return _observe(spec, (group,), lstate, at, view, key, hp)

    def zeros(group):  # records of ``group`` with ``times`` leading, all zero
        shapes = jax.eval_shape(lambda s: observe(group, s, start), lstate)
        return lambda times=(): jax.tree_util.tree_map(lambda a: jnp.zeros((*times, *a.shape), a.dtype), shapes)

    def one_tick(carry, tick_index):
        (lstate, diverged_at), buffers = carry
        # Iteration 0 trains no step and observes at ``start``; iteration i >= 1 trains the i-th tick.
        first = start + (tick_index - 1) * tick
        trips = jnp.where(tick_index > 0, tick, 0)
        lstate, diverged_at = jax.lax.fori_loop(first, first + trips, one_step, (lstate, diverged_at))
        at = start + tick_index * tick
        wanted = (tick_index > 0) | (start == 0)  # the same for every member: under vmap a branch
        records = {g.dim: jax.lax.cond(wanted, functools.partial(observe, g, at=at), lambda s, g=g: zeros(g)(), lstate)
                   for g in dense}
        new_buffers = {}
        for g in sparse:
            index = (at - start) // g.every

            def write(buf, g=g, index=index):
                return jax.tree_util.tree_map(lambda b, v: b.at[index].set(v), buf, observe(g, lstate, at))

            new_buffers[g.dim] = jax.lax.cond(wanted & (at % g.every == 0), write, lambda buf: buf, buffers[g.dim])
        return ((lstate, diverged_at), new_buffers), records

    buffers = {g.dim: zeros(g)((n_ticks * tick // g.every + 1,)) for g in sparse}
    ((lstate, diverged_at), buffers), records = jax.lax.scan(
        one_tick, ((lstate, diverged_at), buffers), jnp.arange(n_ticks + 1, dtype=jnp.int32))
    return lstate, diverged_at, {**records, **buffers}


def _ensemble_map(fn, mesh: Mesh | None, n_per_member: int, n_shared: int, block: int | None = None):
    """Maps ``fn`` over the members of its first ``n_per_member`` arguments (the rest shared).

    With ``block`` the members are computed in blocks of that fixed width: a ``lax.map`` over
    blocks of a vmap of ``block`` members, so member i is always at position i mod block of a
    program of the same width, whatever the ensemble's size or the devices; its results do not
    depend on either (bitwise). With a mesh the member axis is sharded over its devices
    (shard_map: every member stays on one device, no collectives), each device holding whole
    blocks.
    """
    batched = jax.vmap(fn, in_axes=(0,) * n_per_member + (None,) * n_shared)
    if block is not None:
        vmapped = batched

        def batched(*args):
            members, shared = args[:n_per_member], args[n_per_member:]
            n = jax.tree_util.tree_leaves(members)[0].shape[0]
            blocks = jax.tree_util.tree_map(lambda x: x.reshape((n // block, block) + x.shape[1:]), members)
            out = jax.lax.map(lambda b: vmapped(*b, *shared), blocks)
            return jax.tree_util.tree_map(lambda y: y.reshape((n,) + y.shape[2:]), out)

    if mesh is None:
        return batched
    specs = (PartitionSpec("seed"),) * n_per_member + (PartitionSpec(),) * n_shared
    return jax.shard_map(batched, mesh=mesh, in_specs=specs, out_specs=PartitionSpec("seed"), check_vma=False)


@functools.partial(jax.jit, static_argnames=("spec", "mesh", "block", "observe"))
def _init_jit(spec: TrainSpec, keys, hparams, params, data, shared, *, mesh, block=None, observe=True):
    fn = _ensemble_map(functools.partial(_init_member, spec, observe), mesh, 4, 1, block)
    return fn(keys, hparams, params, data, shared)


@functools.partial(jax.jit, static_argnames=("spec", "n_ticks", "mesh", "block"), donate_argnums=(1, 2))
def _chunk_jit(spec: TrainSpec, lstate, diverged_at, data, keys, hparams, shared, start, *, n_ticks, mesh, block=None):
    fn = _ensemble_map(functools.partial(_member_chunk, spec, n_ticks), mesh, 5, 2, block)
    return fn(lstate, diverged_at, data, keys, hparams, shared, start)


def init_ensemble(spec: TrainSpec, keys: Array, hparams: Mapping[str, Array], *, params: PyTree | None = None,
                  data: PyTree | None = None, shared: PyTree | None = None, mesh: Mesh | None = None,
                  block: int | None = None, observe: bool = True):
    """The initial state of every member and its records at step 0 (one jitted program per spec).

    Args:
        spec: the :class:`TrainSpec`.
        keys: (seed, 2) uint32 root keys (see :func:`member_keys`).
        hparams: ``{name: (seed,)}``.
        params: given initial parameters, leaves (seed, ...), or None (the learner draws them).
        data: per-member data, leaves (seed, ...), or None (``task.init`` per member).
        shared: data every member sees (no seed axis), or None.
        mesh: a 1-D device mesh with axis ``"seed"`` to shard members over (the seed count must
            be a multiple of its size), or None.
        block: compute members in blocks of this width (the seed count must be a multiple of
            ``block`` times the mesh's size), or None: one vmap over all.
        observe: compute the records at step 0 (False: ``{}``; :func:`train` takes them from its
            first chunk instead, which saves compiling the observables twice).

    Returns:
        (:class:`EnsembleState` at step 0, ``{time dim: {record: (seed, ...)}}``).
    """
    lstate, data_all, records = _init_jit(spec, keys, hparams, params, data, shared or {}, mesh=mesh, block=block,
                                          observe=observe)
    diverged = jnp.full((keys.shape[0],), -1, dtype=jnp.int32)
    if mesh is not None:
        diverged = jax.device_put(diverged, NamedSharding(mesh, PartitionSpec("seed")))
    return EnsembleState(learner=lstate, data=data_all, keys=keys, hparams=hparams, diverged_at=diverged, step=0), records


def run_chunk(spec: TrainSpec, state: EnsembleState, n_ticks: int, *, shared: PyTree | None = None, mesh: Mesh | None = None,
              block: int | None = None):
    """Advances every member by ``n_ticks`` ticks of the plan (``n_ticks * tick`` steps).

    The chunk must start at a multiple of the plan's period (the least common multiple of its
    cadences) and span whole periods, so that every group's records fall inside it. The state's
    learner and divergence buffers are donated (not usable afterwards). ``mesh`` and ``block``:
    as for :func:`init_ensemble`.

    Returns:
        (the new :class:`EnsembleState`, ``{time dim: {record: (seed, time in chunk, ...)}}``): the
        records after each of the chunk's ticks (those at its start are the previous chunk's
        last, or :func:`init_ensemble`'s).
    """
    state, records = _advance(spec, state, n_ticks, shared=shared, mesh=mesh, block=block)
    return state, jax.tree_util.tree_map(lambda x: x[:, 1:], records)


def _advance(spec: TrainSpec, state: EnsembleState, n_ticks: int, *, shared, mesh, block):
    """:func:`run_chunk` with the records at the chunk's start kept first on each time axis
    (computed when the chunk starts at step 0; zeros otherwise)."""
    lstate, diverged, records = _chunk_jit(spec, state.learner, state.diverged_at, state.data, state.keys, state.hparams,
                                           shared or {}, jnp.int32(state.step), n_ticks=n_ticks, mesh=mesh, block=block)
    step = state.step + n_ticks * tick_of(spec.plan)
    return state._replace(learner=lstate, diverged_at=diverged, step=step), records


# ---------------------------------------------------------------------------------------------
# train: validate, prepare a call (the executor layer splits its members), run it.
# ---------------------------------------------------------------------------------------------
# Per backend: the bytes of member state a block should hold (about a core's share of the cache on
# CPU, so a block's state stays in cache for the whole chunk; on accelerators, enough members to
# fill the device) and the widest block. The CPU cap is 32: an ensemble smaller than a block is
# padded to a whole block, and at 16-256 RBE members width 32 ran 1.15-2.8x width 128, while from
# 1,024 to 16,384 members the two were within 4% (benchmarks/RESULTS.md, 2026-12-02).
MEMBER_FLAG_ATTRS: dict[str, dict[str, str]] = {
    "diverged_at": {"long_name": "first step whose update was non-finite (-1: none)", "units": "step"},
    "nonfinite_at": {"long_name": "first recorded step with a non-finite record (-1: none)", "units": "step"},
}
"""Attributes of the engine's per-member flags (``EnsembleResult.diverged_at``, ``nonfinite_at``)
wherever they are stored: ``to_dataset`` here, and the run layer for experiments that store
them themselves (``jaxdyn.store.describe_conventional``)."""
BLOCK_BUDGET = {"cpu": 1 << 19, "gpu": 1 << 28, "tpu": 1 << 28}
BLOCK_CAP = {"cpu": 32, "gpu": 16384, "tpu": 16384}


def default_block_width(member_bytes: int, backend: str) -> int:
    """The block width the engine uses by default: the largest power of two of members whose
    state (learner state and data, ``member_bytes`` each) fits the backend's budget, between 1
    and the backend's cap. It depends on the model and the backend only, never on the ensemble's
    size or the device count, so a member's results do not either."""
    budget, cap = BLOCK_BUDGET.get(backend, BLOCK_BUDGET["gpu"]), BLOCK_CAP.get(backend, BLOCK_CAP["gpu"])
    fit = max(1, budget // max(1, int(member_bytes)))
    return int(min(cap, 1 << (fit.bit_length() - 1)))


class Members(NamedTuple):
    """Everything that belongs to individual members of one call; leaves have the seed axis
    first, so an executor splits a call by slicing every leaf.

    Attributes:
        keys: (seed, 2) uint32 root keys.
        hparams: ``{name: (seed,)}``.
        params: given initial parameters (seed, ...) or None.
        data: per-member data (seed, ...) or None.
        seeds: (seed,) the integer seeds, or None when raw keys were given.
    """

    keys: Any
    hparams: Mapping[str, Any]
    params: PyTree | None
    data: PyTree | None
    seeds: np.ndarray | None

    def __len__(self) -> int:
        return int(np.shape(self.keys)[0])

    def slice(self, first: int, stop: int) -> Members:
        """Members ``first .. stop - 1``."""
        cut = lambda tree: None if tree is None else jax.tree_util.tree_map(lambda x: np.asarray(x)[first:stop], tree)  # noqa: E731
        return Members(keys=np.asarray(self.keys)[first:stop], hparams=cut(dict(self.hparams)), params=cut(self.params),
                       data=cut(self.data), seeds=None if self.seeds is None else self.seeds[first:stop])


class TrainCall(NamedTuple):
    """One validated :func:`train` call: what to train (``spec``, ``num_steps``, ``shared``), on
    which members, and how to run it (the options never change the results).

    Attributes:
        spec: the :class:`TrainSpec`.
        num_steps: updates per member.
        members: the :class:`Members`.
        shared: data every member sees (no seed axis), or None.
        options: ``{"chunk_steps", "devices", "progress", "checkpoint", "memory_check",
            "on_chunk", "resume_from", "block_width", "x64"}``.
    """

    spec: TrainSpec
    num_steps: int
    members: Members
    shared: PyTree | None
    options: dict[str, Any]


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise EngineConfigError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def prepare(
    learner: Learner | Any,
    task: Task | Any,
    optimizer: Any = None,
    *,
    seeds: Sequence[int] | Array,
    num_steps: int,
    loss: Callable | None = None,
    record: Record | Sequence[Record] | None = None,
    observables: Mapping[str, Observable] | None = None,
    record_every: int | None = None,
    hparams: Mapping[str, Any] | None = None,
    init_params: PyTree | None = None,
    data: PyTree | None = None,
    shared: PyTree | None = None,
    chunk_steps: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: Any = False,
    on_chunk: Callable[[EnsembleState, dict[str, np.ndarray]], None] | None = None,
    resume_from: tuple[EnsembleState, dict[str, np.ndarray]] | None = None,
    checkpoint: Checkpointer | None = None,
    memory_check: bool = True,
    block_width: int | str | None = None,
) -> TrainCall:
    """Validates :func:`train`'s arguments and bundles them as a :class:`TrainCall` (nothing
    compiles). Arguments: as :func:`train`. Raises :class:`EngineConfigError`."""
    try:
        learner = as_learner(learner, optimizer, loss)
        plan = as_plan(record, observables, record_every)
        num_steps = _positive_int("num_steps", num_steps)
        validate_plan(plan, num_steps)
    except EngineConfigError:
        raise
    except ValueError as exc:
        raise EngineConfigError(str(exc)) from None
    if not callable(getattr(task, "batch", None)):
        raise EngineConfigError(f"task: expected a jaxdyn.engine.Task (init, batch) or an object with a batch method, got {type(task).__name__}")
    if data is None and not callable(getattr(task, "init", None)):
        if shared is None:
            raise EngineConfigError("data: the task has no init, so per-member data= (or shared= data) must be given")
        data = {}  # all the data is shared: the members have none of their own
    keys, seed_array = member_keys(seeds)
    num_members = int(keys.shape[0])
    period = period_of(plan)
    if chunk_steps is not None:
        if not isinstance(chunk_steps, (int, np.integer)) or isinstance(chunk_steps, bool) or chunk_steps < 1 or chunk_steps % period:
            raise EngineConfigError(f"chunk_steps: expected a positive multiple of record_every ({period}), got {chunk_steps!r}")
    for name, value in (hparams or {}).items():
        shape = np.shape(value)
        if shape not in ((), (num_members,)):
            raise EngineConfigError(f"hparams[{name!r}]: expected a scalar or shape ({num_members},), got {shape}")
    for label, tree in (("init_params", init_params), ("data", data)):
        if tree is None:
            continue
        for leaf in jax.tree_util.tree_leaves(tree):
            if np.ndim(leaf) == 0 or np.shape(leaf)[0] != num_members:
                raise EngineConfigError(f"{label}: every leaf needs a leading seed axis of {num_members}, got shape {np.shape(leaf)}")
    if shared is not None:
        if not isinstance(shared, Mapping):
            raise EngineConfigError(f"shared: expected a mapping of arrays, got {type(shared).__name__}")
        if data is not None and not isinstance(data, Mapping):
            raise EngineConfigError("data: with shared= the per-member data must be a mapping too (the task sees both in one)")
        clash = sorted(set(shared) & set(data or {}))
        if clash:
            raise EngineConfigError(f"shared: {clash[0]!r} is also in the per-member data; give each array once")
    if not (block_width is None or block_width == "ensemble" or (isinstance(block_width, (int, np.integer))
                                                                 and not isinstance(block_width, bool) and block_width >= 1)):
        raise EngineConfigError(f"block_width: expected a positive int, None (the default for the model and backend) or "
                                f"'ensemble' (one vmap over all members), got {block_width!r}")
    if checkpoint is not None and not isinstance(checkpoint, Checkpointer):
        raise EngineConfigError(f"checkpoint: expected a jaxdyn.engine.Checkpointer, got {type(checkpoint).__name__}")
    spec = TrainSpec(learner=learner, task=task, plan=plan)
    try:
        hash(spec)
    except TypeError as exc:
        raise EngineConfigError(f"learner, task: must be hashable (frozen dataclasses, module-level functions) so the "
                                f"compiled program can be reused: {exc}") from None
    # Hyperparameters in the dtypes JAX gives them (float32 unless x64 is on), so checkpoints
    # and chunks see the same arrays as the device.
    hp = {k: np.broadcast_to(np.asarray(v, dtype=jax.dtypes.canonicalize_dtype(np.asarray(v).dtype)), (num_members,))
          for k, v in (hparams or {}).items()}
    members = Members(keys=keys, hparams=hp, params=init_params, data=data, seeds=seed_array)
    options = dict(chunk_steps=chunk_steps, devices=devices, progress=progress, checkpoint=checkpoint,
                   memory_check=memory_check, on_chunk=on_chunk, resume_from=resume_from, block_width=block_width,
                   # The caller's float64 setting travels with the call (an executor's workers re-enter it).
                   x64=bool(jax.config.read("jax_enable_x64")))
    return TrainCall(spec=spec, num_steps=num_steps, members=members, shared=shared, options=options)


def train(
    learner: Learner | Any,
    task: Task | Any,
    optimizer: Any = None,
    *,
    seeds: Sequence[int] | Array,
    num_steps: int,
    loss: Callable | None = None,
    record: Record | Sequence[Record] | None = None,
    observables: Mapping[str, Observable] | None = None,
    record_every: int | None = None,
    hparams: Mapping[str, Any] | None = None,
    init_params: PyTree | None = None,
    data: PyTree | None = None,
    shared: PyTree | None = None,
    chunk_steps: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: Any = False,
    on_chunk: Callable[[EnsembleState, dict[str, np.ndarray]], None] | None = None,
    resume_from: tuple[EnsembleState, dict[str, np.ndarray]] | None = None,
    checkpoint: Checkpointer | None = None,
    memory_check: bool = True,
    block_width: int | str | None = None,
    **unknown: Any,
) -> EnsembleResult:
    """Trains an ensemble of members (seeds or conditions) of one learner, inside one jit.

    Args:
        learner: a :class:`~jaxdyn.engine.learners.Learner` (e.g. ``GradientLearner(model, loss,
            optimizer)``, or neurashed's Algorithm 1); or a flax model, with ``optimizer`` and
            ``loss`` given here (a :class:`~jaxdyn.engine.learners.GradientLearner` is built).
        task: the data source, see :class:`Task`. ``task.init`` is not called when ``data`` is
            given.
        optimizer: with a model: :func:`~jaxdyn.engine.learners.optimizer` (hashable: compiled
            once), an optax ``GradientTransformation``, or a function of the member's
            hyperparameters returning one (``lambda h: optax.sgd(h['lr'])``).
        seeds: n distinct ints, or raw keys (n, 2) uint32. Member i draws its initialisation,
            data order and dropout masks from its own seed.
        num_steps: number of updates per member.
        loss: with a model: ``loss(outputs, batch) -> scalar``, ``outputs = model(batch['x'])``.
        record: the recording plan: a :class:`~jaxdyn.engine.recording.Record` or a sequence of
            them, each group with its own cadence and time dim.
        observables, record_every: the shorthand for one group: ``{name: fn(Snapshot) -> array
            or {name: array}}`` recorded every ``record_every`` steps (default 1) and at step 0;
            each record has shape (seed, time, ...).
        hparams: ``{name: scalar or (n,)}`` per-member hyperparameters.
        init_params: explicit initial parameters, leaves (n, ...); otherwise the learner draws
            them from each member's key.
        data: explicit per-member data, leaves (n, ...); otherwise ``task.init`` is vmapped.
        shared: data every member sees, a mapping of arrays without the seed axis: sent to the
            device once, not copied per member nor into checkpoints; merged with the member's
            data in what the task and observables see.
        chunk_steps: steps per jit call (a multiple of every cadence); the results do not depend
            on it. Default: all steps in one call.
        devices: devices to shard the seed axis over; default all local devices of the default
            backend. The member count is padded to a multiple of their number.
        progress: show a tqdm progress bar (True), or a callable ``progress(done, total)``
            called after each chunk with member-steps done and to do.
        on_chunk: called after each chunk as ``on_chunk(state, records_so_far)``; the state is
            a host (numpy) copy, records are numpy (seed_padded, time, ...).
        resume_from: ``(state, records_so_far)`` as given to ``on_chunk``; training continues
            from ``state.step``.
        checkpoint: a :class:`~jaxdyn.engine.checkpoint.Checkpointer`: writes the state and
            records atomically every ``checkpoint.every`` steps (which sets the chunk size) and
            at the end; with ``resume=True`` continues from this call's newest checkpoint
            (bitwise identical to an uninterrupted run).
        memory_check: estimate the memory of states and records before compiling and raise
            :class:`ResourceError` when it exceeds 90% of the free device (or host) memory.
        block_width: members per block of the compiled program (a ``lax.map`` over blocks of a
            vmap of this many members; member i always sits at position ``i % block_width``, so
            its results do not depend on the ensemble size, the device count or the chunking).
            Default (None): :func:`default_block_width` for the model and backend; ``'ensemble'``:
            one vmap over all members.
        unknown: refused with a message (``executor=`` names the layer above, where executors live).

    Returns:
        An :class:`EnsembleResult`.

    Raises:
        EngineConfigError: on an invalid argument, before anything is compiled.
        ResourceError: the estimated memory exceeds what is free (see ``memory_check``).
        CheckpointError: resuming from a checkpoint written by a different run.
    """
    if "executor" in unknown:
        raise EngineConfigError("executor: executors are a layer above train: call executor.train(...) with the same "
                                "arguments (jaxdyn.engine.LocalExecutor, RayExecutor), or RunContext(executor=...).train")
    if unknown:
        raise EngineConfigError(f"{sorted(unknown)[0]}: not an argument of train (see help(jaxdyn.engine.train))")
    return run_call(prepare(learner, task, optimizer, seeds=seeds, num_steps=num_steps, loss=loss, record=record,
                            observables=observables, record_every=record_every, hparams=hparams, init_params=init_params,
                            data=data, shared=shared, chunk_steps=chunk_steps, devices=devices, progress=progress,
                            on_chunk=on_chunk, resume_from=resume_from, checkpoint=checkpoint, memory_check=memory_check,
                            block_width=block_width))


def _block_width(call: TrainCall, shared, platform: str) -> int | None:
    """The block width of ``call`` on ``platform``: the one asked for, the default for the model
    (:func:`default_block_width`, from one member's state size, by tracing only), or None for
    ``'ensemble'`` (one vmap over all members)."""
    asked = call.options.get("block_width")
    if asked == "ensemble":
        return None
    if asked is not None:
        return int(asked)
    one = call.members.slice(0, 1)
    state, data, _ = _init_jit.eval_shape(call.spec, jnp.asarray(one.keys), {k: jnp.asarray(v) for k, v in one.hparams.items()},
                                          one.params, one.data, shared, mesh=None)
    return default_block_width(_nbytes(state) + _nbytes(data), platform)


def _fingerprint(call: TrainCall, block: int | None) -> dict[str, Any]:
    """What a checkpoint must match to be resumed by ``call`` computed in blocks of ``block``
    members (None: one vmap), beyond keys, hparams and data."""
    shared_crc = 0
    for leaf in jax.tree_util.tree_leaves(call.shared):
        shared_crc = zlib.crc32(np.ascontiguousarray(np.asarray(leaf)).view(np.uint8).data, shared_crc)
    plan = call.spec.plan
    return {"num_steps": int(call.num_steps), "num_members": len(call.members),
            "record_every": {r.dim: r.every for r in plan}, "observables": sorted(n for r in plan for n in r.names()),
            "shared_crc32": shared_crc, "block_width": "ensemble" if block is None else int(block)}


def run_call(call: TrainCall) -> EnsembleResult:
    """Runs a prepared :class:`TrainCall` in this process, on its devices (what :func:`train` does)."""
    spec, num_steps, members, opts = call.spec, call.num_steps, call.members, call.options
    plan = spec.plan
    num_members = len(members)
    devices = list(opts["devices"]) if opts["devices"] is not None else jax.local_devices()
    shared = {} if call.shared is None else jax.tree_util.tree_map(jnp.asarray, dict(call.shared))
    block = _block_width(call, shared, devices[0].platform)
    if block is not None and opts["devices"] is None:
        # No more devices than there are blocks to give them: a member's results do not depend
        # on the device count, so small ensembles are not padded to fill every core.
        devices = devices[:max(1, math.ceil(num_members / block))]
    num_devices = len(devices)
    group = num_devices * (block or 1)
    num_padded = math.ceil(num_members / group) * group
    if block is None:  # one vmap over all the (padded) members of a device
        block_width = num_padded // num_devices
    else:
        block_width = block
    tick, period = tick_of(plan), period_of(plan)
    checkpoint: Checkpointer | None = opts["checkpoint"]
    chunk_steps = opts["chunk_steps"]
    if checkpoint is not None:
        chunk_steps = checkpoint.chunk_steps(num_steps, period, chunk_steps)
    chunk_steps = num_steps if chunk_steps is None else min(chunk_steps, num_steps)
    num_times = {r.dim: num_steps // r.every + 1 for r in plan}

    mesh = Mesh(np.asarray(devices), ("seed",)) if num_devices > 1 else None

    def place(tree):
        if mesh is None:
            return tree
        return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("seed")))

    pad = lambda tree: None if tree is None else _pad_members(tree, num_padded)  # noqa: E731
    keys = place(pad(jnp.asarray(members.keys)))
    hparams = place(pad({k: jnp.asarray(v) for k, v in members.hparams.items()}))
    params, data = place(pad(members.params)), place(pad(members.data))

    # Shapes of everything the run will hold, by tracing only (cached per spec and shapes).
    abstract_state, abstract_data, abstract_nested = _init_jit.eval_shape(spec, keys, hparams, params, data, shared, mesh=mesh,
                                                                          block=block)
    records_of = _records_of(plan, abstract_nested)  # {record: (group, observable, from a mapping)}
    dims_of = {name: group.dim for name, (group, _, _) in records_of.items()}
    every_of = {name: group.every for name, (group, _, _) in records_of.items()}
    flat_abstract = {name: a for r in plan for name, a in _flatten_records(abstract_nested[r.dim]).items()}
    if opts["memory_check"]:
        chunk_times = {name: chunk_steps // every + 1 for name, every in every_of.items()}  # with the start's
        totals = {name: num_times[dim] for name, dim in dims_of.items()}
        est_state = EnsembleState(learner=abstract_state, data=abstract_data, keys=None, hparams=None, diverged_at=None, step=0)
        _check_memory(_estimate_memory(est_state, flat_abstract, num_padded, totals, chunk_times, devices))

    # ---- checkpoints: this call's folder; restore its newest checkpoint when resuming ----
    saver = None
    resume_from = opts["resume_from"]
    if checkpoint is not None:
        saver = checkpoint.for_call(_fingerprint(call, block))
        if resume_from is None and checkpoint.resume:
            resume_from = _restore(saver, (abstract_state, abstract_data), flat_abstract, every_of, members,
                                   num_members, num_padded, place)

    # ---- state: fresh or resumed ----
    # (A fresh run's records at step 0 come from its first chunk, which starts at step 0.)
    if resume_from is not None:
        state, records_so_far = resume_from
        records_so_far = {k: np.asarray(v) for k, v in records_so_far.items()}
    else:
        state, _ = init_ensemble(spec, keys, hparams, params=params, data=data, shared=shared, mesh=mesh, block=block,
                                 observe=False)
        records_so_far = {}

    # Records go into preallocated host buffers (no growing copies): (seed_padded, time, ...).
    filled = {name: (state.step // every_of[name] + 1) if state.step > 0 else 0 for name in dims_of}
    buffers = {}
    for name, a in flat_abstract.items():
        buffers[name] = np.empty((a.shape[0], num_times[dims_of[name]], *a.shape[1:]), dtype=a.dtype)
        if name in records_so_far:
            buffers[name][:, :filled[name]] = records_so_far[name][:, :filled[name]]

    def save(host_state):
        trim = lambda tree: jax.tree_util.tree_map(lambda x: np.asarray(x)[:num_members], tree)  # noqa: E731
        saver.save(host_state.step, trim(host_state._replace(step=None)),
                   {k: b[:num_members, :filled[k]] for k, b in buffers.items()})

    progress = opts["progress"]
    bar = None
    total = num_members * num_steps
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=num_members * state.step, unit="member-step", unit_scale=True, desc="training")
    try:
        if saver is not None and state.step == num_steps and saver.last_saved_step is None and not saver.steps():
            save(jax.device_get(state))  # a call that ran no chunk (num_steps already reached)
        first_chunk = True
        while state.step < num_steps:
            n_steps = min(chunk_steps, num_steps - state.step)
            from_start = 0 if state.step == 0 else 1  # the records at a later chunk's start are not computed
            state, records = _advance(spec, state, n_steps // tick, shared=shared, mesh=mesh, block=block)
            records = jax.device_get(records)
            flat = {name: a for r in plan for name, a in _flatten_records(records[r.dim]).items()}
            for name, values in flat.items():
                values = values[:, from_start:]
                buffers[name][:, filled[name]: filled[name] + values.shape[1]] = values
                filled[name] += values.shape[1]
            if bar is not None:
                bar.update(num_members * n_steps)
                if first_chunk:  # the rate (and ETA) from here on leaves compilation out
                    bar.initial, bar.start_t = bar.n, time.time()
            elif callable(progress):
                progress(num_members * state.step, total)
            first_chunk = False
            if opts["on_chunk"] is not None or saver is not None:
                # A host copy: the device buffers are donated to the next chunk.
                host_state = jax.device_get(state)
                if saver is not None:
                    save(host_state)
                if opts["on_chunk"] is not None:
                    opts["on_chunk"](host_state, {k: b[:, :filled[k]] for k, b in buffers.items()})
    finally:
        if bar is not None:
            bar.close()

    unpad = lambda tree: jax.tree_util.tree_map(lambda x: np.asarray(x)[:num_members], tree)  # noqa: E731
    final = unpad(jax.device_get(state._replace(step=None)))._replace(step=state.step)
    times = {r.dim: np.arange(0, num_steps + 1, r.every) for r in plan}
    records = {k: v[:num_members] for k, v in buffers.items()}
    full_dims, attrs_of = _record_dims(records_of, flat_abstract)
    return EnsembleResult(
        params=spec.learner.params(final.learner),
        records=records,
        record_steps=times[plan[0].dim],
        diverged_at=np.asarray(final.diverged_at),
        nonfinite_at=_first_nonfinite(records, {name: times[dim] for name, dim in dims_of.items()}, num_members),
        seeds=members.seeds,
        state=final,
        times=times,
        dims_of=full_dims,
        attrs_of=attrs_of,
        engine={"block_width": int(block_width), "blocked": block is not None, "devices": num_devices,
                "padded_members": num_padded},
    )


def _first_nonfinite(records: Mapping[str, np.ndarray], steps: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """(seed,) the first recorded step with any non-finite record of the member, -1 where none."""
    first = np.full(n, np.iinfo(np.int64).max)
    for name, values in records.items():
        if not np.issubdtype(values.dtype, np.inexact) or values.ndim < 2:
            continue
        bad = ~np.isfinite(values.reshape(values.shape[0], values.shape[1], -1)).all(axis=2)  # (seed, time)
        hit = bad.any(axis=1)
        first[hit] = np.minimum(first[hit], steps[name][np.argmax(bad[hit], axis=1)])
    return np.where(first == np.iinfo(np.int64).max, -1, first)


def _records_of(plan, nested) -> dict[str, tuple[Record, Callable, bool]]:
    """``{record: (its group, its observable, whether the observable returned a mapping)}``.

    Raises:
        EngineConfigError: two records of the plan with one name.
    """
    owner: dict[str, tuple[Record, Callable, bool]] = {}
    for group in plan:
        for name, fn in group.observables:
            value = nested[group.dim][name]
            is_mapping = isinstance(value, Mapping)
            for record in (value if is_mapping else (name,)):
                if record in owner:
                    raise EngineConfigError(f"observables[{name!r}]: its record {record!r} clashes with another record's name")
                owner[record] = (group, fn, is_mapping)
    return owner


def _record_dims(records_of, flat_abstract) -> tuple[dict, dict]:
    """``{record: (time dim, *output dims)}`` and ``{record: attrs}`` from the observables'
    declarations (``<record>_dim<k>`` where none)."""
    full, attrs = {}, {}
    for record, (group, fn, is_mapping) in records_of.items():
        ndim = len(flat_abstract[record].shape) - 1
        names = declared(fn, record, is_mapping, "dims")
        if names is None or len(names) != ndim:
            names = tuple(f"{record}_dim{k}" for k in range(ndim))
        full[record] = (group.dim, *names)
        attrs[record] = dict(declared(fn, record, is_mapping, "attrs") or {})
    return full, attrs


def _restore(saver, abstract, flat_abstract, every_of, members: Members, num_members, num_padded, place):
    """This call's newest checkpoint as ``resume_from`` (padding re-added), or None.

    The checkpoint must hold the same members (PRNG keys), hyperparameters and, when ``data``
    was given, the same data, bitwise; one that does not is skipped like an unreadable one, and
    when none is usable :class:`CheckpointError` names what differs.
    """
    lstate, data_all = abstract
    trim = lambda tree: jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct((num_members, *x.shape[1:]), x.dtype), tree)  # noqa: E731
    keys = np.asarray(members.keys)
    target = EnsembleState(
        learner=trim(lstate), data=trim(data_all),
        keys=jax.ShapeDtypeStruct(keys.shape, keys.dtype),
        hparams={k: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype) for k, v in members.hparams.items()},
        diverged_at=jax.ShapeDtypeStruct((num_members,), jnp.int32), step=None,
    )

    def same_run(path, state):
        if not np.array_equal(np.asarray(state.keys), keys):
            raise CheckpointError(f"{path}: seeds: the checkpoint's members have other seeds; start afresh or use another output folder")
        for name, value in members.hparams.items():
            if not np.array_equal(np.asarray(state.hparams[name]), np.asarray(value), equal_nan=True):
                raise CheckpointError(f"{path}: hparams[{name!r}] differ from the checkpoint's; start afresh or use another output folder")
        if members.data is not None:
            for a, b in zip(jax.tree_util.tree_leaves(state.data), jax.tree_util.tree_leaves(members.data)):
                if not np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True):
                    raise CheckpointError(f"{path}: data differ from the checkpoint's; start afresh or use another output folder")

    found = saver.restore(target, trim(flat_abstract), every_of, check=same_run)
    if found is None:
        return None
    step, state, records = found
    state = place(_pad_members(state._replace(step=None), num_padded))._replace(step=step)
    records = {k: np.asarray(_pad_members(v, num_padded)) for k, v in records.items()}
    return state, records


__all__ = [
    "EngineConfigError", "EnsembleResult", "EnsembleState", "Members", "MemoryEstimate", "ResourceError", "Snapshot",
    "Task", "TrainCall", "TrainSpec", "default_block_width", "init_ensemble", "member_keys", "prepare", "run_call",
    "run_chunk", "train",
]
