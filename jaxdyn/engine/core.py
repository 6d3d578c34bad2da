"""The seed-ensemble training engine: every member of an ensemble trained inside one jit.

One call, :func:`train`, takes each concern as a named argument (model, task, optimizer,
seeds, what to record and how often, devices, chunking, a callback between chunks), in the
manner of ``diffrax.diffeqsolve``. Inside, members are vmapped and steps are scanned:

    chunk = scan over records ( scan over ``record_every`` steps ; observe )

so observables are recorded on the device without a host sync per step. Chunks run one after
the other from Python, so a progress bar can advance and a checkpoint can be written between
them. Every random number of member ``i`` at step ``s`` comes from ``fold_in(key_i, s)``, which
makes the result independent of the chunk size (bitwise) and of the ensemble's composition.

Reliability: before anything compiles, ``train`` validates its arguments and estimates the memory
its states and records will take (``jax.eval_shape``, no compilation), refusing with the
estimate and a suggestion when it exceeds what the device has free (:class:`ResourceError`).
With ``checkpoint=Checkpointer(...)`` it writes crash-safe checkpoints between chunks and
resumes from them bitwise (:mod:`jaxdyn.engine.checkpoint`). A member whose loss or gradient goes
non-finite is flagged in ``diverged_at``; members never interact, so the others are unchanged.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdyn.engine.checkpoint import Checkpointer, CheckpointError

PyTree = Any
Array = jax.Array

# Stream tags for jax.random.fold_in: one independent stream per concern, per member.
_INIT_STREAM, _DATA_STREAM, _DROPOUT_STREAM, _TASK_STREAM = 0, 1, 2, 3


class Task(NamedTuple):
    """A source of data for one ensemble member, as two pure functions.

    Attributes:
        init: ``init(key) -> data``. The member's fixed data (training set, probe sets), a
            pytree of arrays without the seed axis. The engine vmaps it over members.
        batch: ``batch(data, key, step) -> batch``. The mini-batch used at ``step`` (an int32
            scalar); ``key`` is the member's data key for that step, so data order differs
            between members. The batch must hold the model input under ``"x"``.
    """

    init: Callable[[Array], PyTree]
    batch: Callable[[PyTree, Array, Array], Mapping[str, Array]]


class Snapshot(NamedTuple):
    """What an observable sees of one member at a recorded step (no seed axis).

    Attributes:
        params: the model parameters after ``step`` updates.
        step: int32 scalar, number of updates applied so far.
        batch: the batch the next update will use.
        data: the member's data (from ``Task.init`` or given).
        hparams: the member's hyperparameters, ``{name: scalar}``.
        apply: ``apply(params, x) -> outputs`` in evaluation mode (no dropout).
    """

    params: PyTree
    step: Array
    batch: Mapping[str, Array]
    data: PyTree
    hparams: Mapping[str, Array]
    apply: Callable[[PyTree, Array], Array]


Observable = Callable[[Snapshot], Any]


class EnsembleState(NamedTuple):
    """The whole state of an ensemble between chunks; enough to resume bitwise.

    Every array leaf has the seed axis first (``num_members`` rows, padding included).

    Attributes:
        params: model parameters, leaves of shape (seed, ...).
        opt_state: optimizer state, leaves of shape (seed, ...).
        data: per-member data, leaves of shape (seed, ...).
        keys: (seed, 2) uint32 raw PRNG keys, the member's root key.
        hparams: ``{name: (seed,)}`` per-member hyperparameters.
        diverged_at: (seed,) int32, the first step whose loss or gradient was non-finite,
            -1 while the member is finite.
        step: host int, number of updates done.
    """

    params: PyTree
    opt_state: PyTree
    data: PyTree
    keys: Array
    hparams: Mapping[str, Array]
    diverged_at: Array
    step: int


class EnsembleResult(NamedTuple):
    """What :func:`train` returns. Arrays are numpy, seed axis first, padding removed.

    Attributes:
        params: final parameters, leaves (seed, ...).
        opt_state: final optimizer state, leaves (seed, ...).
        records: ``{name: (seed, time, ...)}``, observables at ``record_steps``.
        record_steps: (time,) int, the step of each record (0 is the initial state).
        diverged_at: (seed,) int, first non-finite step per member, -1 where none.
        seeds: (seed,) the integer seeds, or None when keys were given.
        state: the final :class:`EnsembleState` (device arrays, padding kept), for resuming.
    """

    params: PyTree
    opt_state: PyTree
    records: dict[str, np.ndarray]
    record_steps: np.ndarray
    diverged_at: np.ndarray
    seeds: np.ndarray | None
    state: EnsembleState

    @property
    def diverged(self) -> np.ndarray:
        """(seed,) bool: members flagged as diverged."""
        return self.diverged_at >= 0


class EngineConfigError(ValueError):
    """An argument of :func:`train` is invalid; raised before anything compiles."""


class MemoryEstimate(NamedTuple):
    """What :func:`train` expects to hold in memory, in bytes (activations not included).

    Attributes:
        params, opt_state, data, record: bytes per member: parameters, optimizer state, data,
            and one record of every observable (one time point).
        observables: ``{name: bytes of one record of one member}``.
        num_members, num_records: members (padding included) and records per member (time points).
        members_per_device, chunk_records: members on each device; records held on the device
            per chunk.
        device_bytes: per device: states (params, optimizer state, data, plus gradients and
            updates, 2 x params) and one chunk of records.
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


def _estimate_memory(abstract, num_padded, total_records, chunk_records, devices) -> MemoryEstimate:
    params, opt_state, data, records0 = abstract  # ShapeDtypeStructs with the (padded) seed axis
    per = lambda tree: _nbytes(tree) // num_padded  # noqa: E731
    obs = {k: per(v) for k, v in records0.items()}
    p, o, d, r = per(params), per(opt_state), per(data), sum(obs.values())
    members_per_device = num_padded // len(devices)
    device_bytes = members_per_device * (p + o + d + 2 * p + chunk_records * r)
    host_bytes = num_padded * (total_records + 1) * r
    device_available = min((a for a in map(device_available_memory, devices) if a is not None), default=None)
    kind = "device" if device_available is not None else "host"
    if kind == "host":
        host_bytes += len(devices) * device_bytes
    return MemoryEstimate(params=p, opt_state=o, data=d, record=r, observables=obs, num_members=num_padded,
                          num_records=total_records + 1, members_per_device=members_per_device, chunk_records=chunk_records,
                          device_bytes=device_bytes, host_bytes=host_bytes, device_available=device_available,
                          host_available=host_available_memory(), device_kind=kind)


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
        f" + optimizer {_fmt_bytes(est.opt_state)} + data {_fmt_bytes(est.data)})",
        "record less often (record_every) or smaller observables, train fewer seeds per call, or use smaller chunk_steps; "
        "memory_check=False (CLI: --no-memory-check) runs anyway",
    ]
    raise ResourceError("; ".join(parts), est)


def member_keys(seeds: Sequence[int] | Array) -> tuple[Array, np.ndarray | None]:
    """Root PRNG keys for the members.

    Args:
        seeds: a sequence of distinct non-negative ints, or raw keys of shape (seed, 2) uint32.

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
    if len(np.unique(arr)) != arr.size:
        raise EngineConfigError("seeds: seeds must be distinct, or members would be copies of each other")
    if arr.min() < 0:
        raise EngineConfigError("seeds: seeds must be non-negative")
    keys = jax.vmap(lambda s: jax.random.key_data(jax.random.key(s)))(jnp.asarray(arr, dtype=jnp.uint32))
    return keys, arr


def _stream(key_data: Array, stream: int, step: Array | None = None) -> Array:
    key = jax.random.fold_in(jax.random.wrap_key_data(key_data), stream)
    if step is not None:
        key = jax.random.fold_in(key, step)
    return key


def _make_optimizer(optimizer, hparams: Mapping[str, Array]) -> optax.GradientTransformation:
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    return optimizer(hparams)


def _tree_all_finite(tree: PyTree) -> Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _pad_members(tree: PyTree, num_padded: int) -> PyTree:
    """Pads the leading axis to ``num_padded`` by repeating the last member."""

    def pad(x):
        x = jnp.asarray(x)
        extra = num_padded - x.shape[0]
        if extra == 0:
            return x
        return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)], axis=0)

    return jax.tree_util.tree_map(pad, tree)


def _validate(num_steps, record_every, chunk_steps, num_members, hparams, init_params, data, observables):
    for name, value in (("num_steps", num_steps), ("record_every", record_every)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise EngineConfigError(f"{name}: expected a positive int, got {value!r}")
    if num_steps % record_every:
        raise EngineConfigError(f"record_every: must divide num_steps ({num_steps}), got {record_every}")
    if chunk_steps is not None:
        if not isinstance(chunk_steps, (int, np.integer)) or chunk_steps < 1 or chunk_steps % record_every:
            raise EngineConfigError(f"chunk_steps: expected a positive multiple of record_every ({record_every}), got {chunk_steps!r}")
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
    for name, fn in (observables or {}).items():
        if not callable(fn):
            raise EngineConfigError(f"observables[{name!r}]: expected a callable of a Snapshot")


def train(
    model,
    task: Task,
    optimizer: optax.GradientTransformation | Callable[[Mapping[str, Array]], optax.GradientTransformation],
    *,
    seeds: Sequence[int] | Array,
    num_steps: int,
    loss: Callable[[Array, Mapping[str, Array]], Array],
    observables: Mapping[str, Observable] | None = None,
    record_every: int = 1,
    hparams: Mapping[str, Any] | None = None,
    init_params: PyTree | None = None,
    data: PyTree | None = None,
    chunk_steps: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = False,
    on_chunk: Callable[[EnsembleState, dict[str, np.ndarray]], None] | None = None,
    resume_from: tuple[EnsembleState, dict[str, np.ndarray]] | None = None,
    checkpoint: Checkpointer | None = None,
    memory_check: bool = True,
    executor=None,
) -> EnsembleResult:
    """Trains an ensemble of members (seeds or conditions) of one model, inside one jit.

    Args:
        model: a flax linen Module, called as ``model.apply({'params': p}, x, train=...)``
            with ``rngs={'dropout': key}`` in training mode.
        task: the data source, see :class:`Task`. ``task.init`` is not called when ``data``
            is given.
        optimizer: an optax ``GradientTransformation``, or a function of the member's
            hyperparameters returning one (``lambda h: optax.sgd(h['lr'])``), which is how a
            learning rate per member is expressed.
        seeds: n distinct ints, or raw keys (n, 2) uint32. Member i draws its
            initialisation, data order and dropout masks from its own seed.
        num_steps: number of updates per member.
        loss: ``loss(outputs, batch) -> scalar``, with ``outputs = model(batch['x'])``.
        observables: ``{name: fn(Snapshot) -> array}`` recorded every ``record_every``
            steps and at step 0; each becomes a record of shape (seed, time, ...).
        record_every: steps between records; must divide ``num_steps``.
        hparams: ``{name: scalar or (n,)}`` per-member hyperparameters.
        init_params: explicit initial parameters, leaves (n, ...); otherwise ``model.init``
            is called with each member's key.
        data: explicit per-member data, leaves (n, ...); otherwise ``task.init`` is vmapped.
        chunk_steps: steps per jit call (a multiple of ``record_every``); the results do not
            depend on it. Default: all steps in one call.
        devices: devices to shard the seed axis over; default all local devices of the
            default backend. The member count is padded to a multiple of their number.
        progress: show a tqdm progress bar over steps.
        on_chunk: called after each chunk as ``on_chunk(state, records_so_far)`` (for
            checkpoints); the state is a host (numpy) copy, records are numpy
            (seed_padded, time, ...).
        resume_from: ``(state, records_so_far)`` as given to ``on_chunk``; training
            continues from ``state.step``.
        checkpoint: a :class:`~jaxdyn.engine.checkpoint.Checkpointer`: writes the state and
            records atomically every ``checkpoint.every`` steps (which sets the chunk size) and
            at the end; with ``resume=True`` continues from this call's newest checkpoint
            (bitwise identical to an uninterrupted run). Ignored for restoring when
            ``resume_from`` is given.
        memory_check: estimate the memory of states and records before compiling and raise
            :class:`ResourceError` when it exceeds 90% of the free device (or host) memory.
            ``False`` skips the check.
        executor: where the members run: None (this process), or a
            :class:`~jaxdyn.engine.executor.RayExecutor` (chunks of ``chunk_seeds`` members as
            tasks on a Ray cluster) or :class:`~jaxdyn.engine.executor.LocalExecutor` (chunks one
            after the other here). The chunks' results are concatenated along the seed axis, the
            same as one call (see :mod:`jaxdyn.engine.executor`); finished chunks are stored with
            ``checkpoint`` and not recomputed on resume. Not with ``on_chunk`` or ``resume_from``.

    Returns:
        An :class:`EnsembleResult`.

    Raises:
        EngineConfigError: on an invalid argument, before anything is compiled.
        ResourceError: the estimated memory exceeds what is free (see ``memory_check``).
        CheckpointError: resuming from a checkpoint written by a different run.
    """
    keys, seed_array = member_keys(seeds)
    num_members = int(keys.shape[0])
    observables = dict(observables or {})
    _validate(num_steps, record_every, chunk_steps, num_members, hparams, init_params, data, observables)
    if checkpoint is not None:
        if not isinstance(checkpoint, Checkpointer):
            raise EngineConfigError(f"checkpoint: expected a jaxdyn.engine.checkpoint.Checkpointer, got {type(checkpoint).__name__}")
    if executor is not None:  # split the members into chunks, each an ordinary train call
        from jaxdyn.engine.executor import run_train

        return run_train(executor, dict(
            model=model, task=task, optimizer=optimizer, seeds=seeds, num_steps=num_steps, loss=loss,
            observables=observables, record_every=record_every, hparams=hparams, init_params=init_params, data=data,
            chunk_steps=chunk_steps, devices=devices, progress=progress, on_chunk=on_chunk, resume_from=resume_from,
            checkpoint=checkpoint, memory_check=memory_check), keys, seed_array)
    if checkpoint is not None:
        chunk_steps = checkpoint.chunk_steps(num_steps, record_every, chunk_steps)
    devices = list(devices) if devices is not None else jax.local_devices()
    num_devices = len(devices)
    num_padded = math.ceil(num_members / num_devices) * num_devices
    total_records = num_steps // record_every
    chunk_records = total_records if chunk_steps is None else min(chunk_steps // record_every, total_records)

    hparams = {k: jnp.broadcast_to(jnp.asarray(v), (num_members,)) for k, v in (hparams or {}).items()}

    def apply_eval(params, x):
        return model.apply({"params": params}, x, train=False)

    def objective(params, batch, dropout_key):
        outputs = model.apply({"params": params}, batch["x"], train=True, rngs={"dropout": dropout_key})
        return loss(outputs, batch)

    def observe(params, step, data_m, key, hp):
        batch = task.batch(data_m, _stream(key, _DATA_STREAM, step), step)
        snap = Snapshot(params=params, step=step, batch=batch, data=data_m, hparams=hp, apply=apply_eval)
        return {name: fn(snap) for name, fn in observables.items()}

    # ---- initialisation of one member (vmapped below) ----
    def init_member(key, hp, params, data_m):
        if data_m is None:
            data_m = task.init(_stream(key, _TASK_STREAM))
        if params is None:
            x0 = task.batch(data_m, _stream(key, _DATA_STREAM, jnp.int32(0)), jnp.int32(0))["x"]
            params = model.init({"params": _stream(key, _INIT_STREAM)}, x0, train=False)["params"]
        opt_state = _make_optimizer(optimizer, hp).init(params)
        records = observe(params, jnp.int32(0), data_m, key, hp)
        return params, opt_state, data_m, records

    # ---- one chunk of one member: scan over records, each a scan over steps ----
    def member_chunk(params, opt_state, data_m, key, hp, diverged_at, start_step, n_records):
        opt = _make_optimizer(optimizer, hp)

        def one_step(carry, step):
            params, opt_state, diverged_at = carry
            batch = task.batch(data_m, _stream(key, _DATA_STREAM, step), step)
            value, grads = jax.value_and_grad(objective)(params, batch, _stream(key, _DROPOUT_STREAM, step))
            updates, opt_state = opt.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            finite = jnp.isfinite(value) & _tree_all_finite(grads)
            diverged_at = jnp.where((diverged_at < 0) & ~finite, step, diverged_at)
            return (params, opt_state, diverged_at), None

        def one_record(carry, record_index):
            first = start_step + record_index * record_every
            carry, _ = jax.lax.scan(one_step, carry, first + jnp.arange(record_every, dtype=jnp.int32))
            params, _, _ = carry
            return carry, observe(params, first + record_every, data_m, key, hp)

        (params, opt_state, diverged_at), records = jax.lax.scan(
            one_record, (params, opt_state, diverged_at), jnp.arange(n_records, dtype=jnp.int32)
        )
        return params, opt_state, diverged_at, records

    mesh = Mesh(np.asarray(devices), ("seed",)) if num_devices > 1 else None

    def ensemble_map(fn, n_per_member, n_shared=0):
        """vmaps ``fn`` over its first ``n_per_member`` arguments; with several devices the
        member axis is sharded (shard_map: every member stays on one device, no collectives)."""
        batched = jax.vmap(fn, in_axes=(0,) * n_per_member + (None,) * n_shared)
        if mesh is None:
            return batched
        specs = (PartitionSpec("seed"),) * n_per_member + (PartitionSpec(),) * n_shared
        return jax.shard_map(batched, mesh=mesh, in_specs=specs, out_specs=PartitionSpec("seed"), check_vma=False)

    def place(tree):
        if mesh is None:
            return tree
        return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("seed")))

    pad_keys, pad_hp, pad_params, pad_data = place(
        tuple(None if t is None else _pad_members(t, num_padded) for t in (keys, hparams, init_params, data))
    )
    init_fn = jax.jit(ensemble_map(init_member, 4))
    # Shapes of everything the run will hold, by tracing only (nothing is compiled or run).
    abstract = jax.eval_shape(init_fn, pad_keys, pad_hp, pad_params, pad_data)
    if memory_check:
        _check_memory(_estimate_memory(abstract, num_padded, total_records, chunk_records, devices))

    # ---- checkpoints: this call's folder; restore its newest checkpoint when resuming ----
    saver = None
    if checkpoint is not None:
        saver = checkpoint.for_call({
            "num_steps": int(num_steps), "record_every": int(record_every), "num_members": num_members,
            "observables": sorted(observables),
        })
        if resume_from is None and checkpoint.resume:
            resume_from = _restore(saver, abstract, keys, hparams, data, num_members, num_padded, place)

    # ---- state: fresh or resumed ----
    if resume_from is not None:
        state, records_so_far = resume_from
        records_so_far = {k: np.asarray(v) for k, v in records_so_far.items()}
    else:
        params, opt_state, data_all, records0 = init_fn(pad_keys, pad_hp, pad_params, pad_data)
        state = EnsembleState(
            params=params,
            opt_state=opt_state,
            data=data_all,
            keys=pad_keys,
            hparams=pad_hp,
            diverged_at=place(jnp.full((num_padded,), -1, dtype=jnp.int32)),
            step=0,
        )
        records_so_far = {k: np.asarray(v)[:, None] for k, v in records0.items()}

    # Records go into preallocated host buffers (no growing copies): (seed_padded, time, ...).
    # Callbacks see views of the filled part, which is never written again.
    filled = state.step // record_every + 1
    buffers = {}
    for k, v in records_so_far.items():
        buffers[k] = np.empty((v.shape[0], total_records + 1, *v.shape[2:]), dtype=v.dtype)
        buffers[k][:, :filled] = v[:, :filled]

    # One compiled function per distinct chunk length (at most two: full and remainder).
    compiled: dict[int, Callable] = {}

    def chunk_fn(n_records):
        if n_records not in compiled:

            def run(params, opt_state, data_m, key, hp, diverged_at, start):
                return member_chunk(params, opt_state, data_m, key, hp, diverged_at, start, n_records)

            compiled[n_records] = jax.jit(ensemble_map(run, 6, 1), donate_argnums=(0, 1, 5))
        return compiled[n_records]

    def save(host_state):
        trim = lambda tree: jax.tree_util.tree_map(lambda x: np.asarray(x)[:num_members], tree)  # noqa: E731
        saver.save(host_state.step, trim(host_state._replace(step=None)), {k: b[:num_members, :filled] for k, b in buffers.items()})

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_steps, initial=state.step, unit="step", desc="training")
    try:
        if saver is not None and state.step == num_steps and saver.last_saved_step is None and not saver.steps():
            save(jax.device_get(state))  # a call that ran no chunk (num_steps already reached)
        while state.step < num_steps:
            n_records = min(chunk_records, (num_steps - state.step) // record_every)
            params, opt_state, diverged_at, records = chunk_fn(n_records)(
                state.params, state.opt_state, state.data, state.keys, state.hparams, state.diverged_at,
                jnp.int32(state.step),
            )
            state = state._replace(params=params, opt_state=opt_state, diverged_at=diverged_at, step=state.step + n_records * record_every)
            records = jax.device_get(records)
            for k in buffers:
                buffers[k][:, filled : filled + n_records] = records[k]
            filled += n_records
            if bar is not None:
                bar.update(n_records * record_every)
            if on_chunk is not None or saver is not None:
                # A host copy: the device buffers are donated to the next chunk.
                host_state = jax.device_get(state)
                if saver is not None:
                    save(host_state)
                if on_chunk is not None:
                    on_chunk(host_state, {k: b[:, :filled] for k, b in buffers.items()})
    finally:
        if bar is not None:
            bar.close()

    unpad = lambda tree: jax.tree_util.tree_map(lambda x: np.asarray(x)[:num_members], tree)  # noqa: E731
    return EnsembleResult(
        params=unpad(state.params),
        opt_state=unpad(state.opt_state),
        records={k: v[:num_members] for k, v in buffers.items()},
        record_steps=np.arange(0, num_steps + 1, record_every),
        diverged_at=np.asarray(state.diverged_at)[:num_members],
        seeds=seed_array,
        state=state,
    )


def _restore(saver, abstract, keys, hparams, data, num_members, num_padded, place):
    """This call's newest checkpoint as ``resume_from`` (padding re-added), or None.

    The checkpoint must hold the same members (PRNG keys), hyperparameters and, when ``data``
    was given, the same data, bitwise; otherwise :class:`CheckpointError` names what differs.
    """
    params, opt_state, data_all, records0 = abstract
    trim = lambda tree: jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct((num_members, *x.shape[1:]), x.dtype), tree)  # noqa: E731
    target = EnsembleState(
        params=trim(params), opt_state=trim(opt_state), data=trim(data_all),
        keys=jax.ShapeDtypeStruct(keys.shape, keys.dtype),
        hparams={k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in hparams.items()},
        diverged_at=jax.ShapeDtypeStruct((num_members,), jnp.int32), step=None,
    )
    found = saver.restore(target, trim(records0))
    if found is None:
        return None
    step, state, records = found
    path = saver.path(step)
    if not np.array_equal(np.asarray(state.keys), np.asarray(keys)):
        raise CheckpointError(f"{path}: seeds: the checkpoint's members have other seeds; start afresh or use another output folder")
    for name, value in hparams.items():
        if not np.array_equal(np.asarray(state.hparams[name]), np.asarray(value), equal_nan=True):
            raise CheckpointError(f"{path}: hparams[{name!r}] differ from the checkpoint's; start afresh or use another output folder")
    if data is not None:
        for a, b in zip(jax.tree_util.tree_leaves(state.data), jax.tree_util.tree_leaves(data)):
            if not np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True):
                raise CheckpointError(f"{path}: data differ from the checkpoint's; start afresh or use another output folder")
    state = place(_pad_members(state._replace(step=None), num_padded))._replace(step=step)
    records = {k: np.asarray(_pad_members(v, num_padded)) for k, v in records.items()}
    return state, records
