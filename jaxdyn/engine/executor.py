"""Executors: where the members of one training call run; a layer above :func:`~jaxdyn.engine.train`.

``RayExecutor(chunk_seeds=K).train(learner, task, ...)`` takes exactly ``train``'s arguments,
validates them into one :class:`~jaxdyn.engine.core.TrainCall`, splits its members (every leaf of
:class:`~jaxdyn.engine.core.Members` has the seed axis first, so a chunk is a slice) into chunks of
``K``, runs the ordinary single-machine :func:`~jaxdyn.engine.core.run_call` on each chunk as a
separate task (a Ray task, on whichever machine of the cluster has room, on that machine's own
devices), and concatenates the chunks' results along the seed axis into one
:class:`EnsembleResult`. The engine itself knows nothing of executors.

Why this is exact: every random number of a member comes from its own key (its seed), and
members never interact, so a member's trajectory does not depend on which other members share
its chunk. What can differ is float rounding, where XLA compiles a vmap of K members
differently from a vmap of all of them: on CPU the tests found chunks of 2 of 4 members bitwise
equal to one call, chunks of 3 and 1 within 1.2e-7.

Everything of a member is sliced with it: its seed (or raw key), hyperparameters given per
member, ``init_params`` and ``data``. The specification (learner, task, recording plan) and the
shared data are shipped to the workers once, with cloudpickle (flax modules, closures and lambdas pickle; a
function defined at the top of a module is pickled by name, so the module must be importable on
the workers, as jaxdyn's own are); what does not pickle is named in an
:class:`~jaxdyn.engine.EngineConfigError` before any task starts.

Checkpoints and resume (``executor.train(..., checkpoint=Checkpointer(...))``): each finished chunk's
result is written by the driver, atomically, as that chunk's final engine checkpoint in
``<checkpoint dir>/call_NN/chunk_{first:06d}-{stop:06d}/`` (the engine's own format, so its
checks apply: a stored chunk whose seeds, hyperparameters or data differ is refused). With
``resume=True`` a stored chunk is read back (no training, no compilation) and only the other
chunks are submitted. With ``worker_checkpoints=True`` (a filesystem shared by the driver and
every worker, as on most SLURM clusters) the workers also checkpoint inside their chunk, and an
unfinished chunk continues from its last checkpoint.

Failures: a task whose worker dies, or that raises, is retried by Ray (``max_retries``),
except for a ValueError (invalid argument, the memory guard's ResourceError, a checkpoint
mismatch), which would fail again: it is raised on the driver at once, with its type. The
exception that ends ``train`` carries a note naming the chunk and its members. A member that
diverges is not a failure: it is flagged in ``diverged_at`` as always.

Ray is imported only when a :class:`RayExecutor` runs; jaxdyn imports without it.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxdyn.engine import core
from jaxdyn.engine.checkpoint import Checkpointer
from jaxdyn.engine.core import EngineConfigError, EnsembleResult, TrainCall

INSTALL_HINT = "pip install 'jaxdyn[cluster]'"
"""The install command quoted when an executor needs Ray and it is not installed (the ``cluster`` extra)."""


class Executor:
    """Where the chunks of members of one ``train`` call run. Subclasses: :class:`LocalExecutor`,
    :class:`RayExecutor`.

    Attributes:
        chunk_seeds: members per chunk (task); None: all members in one chunk.
        shared_filesystem: whether chunk workers may write the driver's checkpoint folder (then
            they also checkpoint inside their chunk).
        accepts_devices: whether ``train(devices=...)`` can be honoured (devices of this process).
    """

    chunk_seeds: int | None = None
    shared_filesystem: bool = True
    accepts_devices: bool = True

    def __init__(self):
        #: What the last ``train`` call did: ``{"chunks": [(first, stop), ...], "submitted": [chunk
        #: indices run], "restored": [chunk indices read from checkpoints]}``.
        self.last_run: dict[str, Any] = {}

    def train(self, learner, task, optimizer=None, **kwargs) -> EnsembleResult:
        """:func:`jaxdyn.engine.train` with the members split into chunks run by this executor.

        Takes exactly ``train``'s arguments (``on_chunk`` and ``resume_from`` excepted: use
        ``checkpoint=``). The chunks' results are concatenated along the seed axis.
        """
        return self.run(core.prepare(learner, task, optimizer, **kwargs))

    def run(self, call: TrainCall) -> EnsembleResult:
        """Runs a prepared :class:`~jaxdyn.engine.core.TrainCall` through this executor."""
        return _run_split(self, call)

    def check(self) -> None:
        """Raises EngineConfigError when the executor cannot run here (e.g. Ray missing)."""

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description (recorded in a run's status.json)."""
        return {"kind": "local", "chunk_seeds": self.chunk_seeds}

    def prepare(self, shared: Mapping[str, Any]) -> Any:
        """Makes the arguments shared by every chunk ready to ship; returns a handle."""
        return shared

    def map_chunks(self, fn: Callable, handle: Any, payloads: Sequence[tuple[int, dict]]) -> Iterator[tuple[int, Any]]:
        """Runs ``fn(shared, payload)`` for each ``(index, payload)``; yields ``(index, result)``
        as each finishes (any order). An exception of a chunk propagates, with its
        ``jaxdyn_chunk`` attribute set to the chunk's index."""
        raise NotImplementedError


class LocalExecutor(Executor):
    """Runs the chunks one after the other in this process, on its devices.

    With ``chunk_seeds=None`` this is exactly ``train`` without an executor. With ``chunk_seeds``
    it bounds the memory of a large ensemble (one chunk's states and records at a time on the
    device) and writes, per finished chunk, a checkpoint that a resumed run does not recompute.

    Args:
        chunk_seeds: members per chunk, or None for all at once.
    """

    def __init__(self, chunk_seeds: int | None = None):
        super().__init__()
        self.chunk_seeds = _check_chunk_seeds(chunk_seeds)

    def __repr__(self) -> str:
        return f"LocalExecutor(chunk_seeds={self.chunk_seeds})"

    def map_chunks(self, fn, handle, payloads):
        for index, payload in payloads:
            try:
                result = fn(handle, payload)
            except Exception as exc:
                exc.jaxdyn_chunk = index
                raise
            yield index, result


class RayExecutor(Executor):
    """Runs each chunk of members as a Ray task, each on its worker's own local device(s).

    Args:
        address: the Ray cluster to connect to (``"auto"``: the one started on this node with
            ``ray start``; ``"ray://host:10001"``: a remote one). None: an already initialised Ray
            if there is one, else a new local cluster on this machine (``ray.init()``).
        chunk_seeds: members per task (default 1). Fewer members per task spread the work over
            more workers; more amortise each task's start-up and compilation (seconds).
        num_cpus_per_task: CPUs Ray reserves per task (default 1): at most (a node's CPUs /
            this) tasks run at once on a node, so CPU tasks do not oversubscribe it many times
            over. The reservation is for scheduling; it does not cap the threads XLA starts
            inside a task.
        num_gpus_per_task: GPUs per task (0: CPU only). With GPUs each worker process runs one
            task and exits (``max_calls=1``), so JAX in it sees the GPUs Ray assigned to it. A
            fraction (0.5) shares a GPU; then also limit JAX's preallocation, e.g.
            ``runtime_env={"env_vars": {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.4"}}``.
        max_retries: times a failed task is rerun (worker crash, node lost, or an exception in
            the task when ``retry_exceptions``) before ``train`` raises.
        retry_exceptions: retry tasks that raise (True), none (False), or only these exception
            classes (a list). A ValueError is never retried (see the module's docstring).
        worker_checkpoints: workers write checkpoints inside their chunk to the run's
            checkpoint folder, which must then be on a filesystem shared with the driver; an
            interrupted chunk then resumes from its last one. Default False: only finished
            chunks are stored (by the driver).
        runtime_env: Ray ``runtime_env`` of the tasks (env_vars, working_dir, py_modules, pip).
        init_kwargs: extra arguments of ``ray.init`` when this executor starts or connects Ray
            (e.g. ``num_cpus``, ``include_dashboard``).

    Ray's lifetime: if Ray is initialised when a chunk is submitted, that Ray is used and left
    alone. Otherwise the executor calls ``ray.init`` once and keeps Ray up for the next
    ``train`` calls (an experiment makes several); :meth:`shutdown` (or leaving a ``with
    RayExecutor(...)`` block, or the end of the process) shuts down only a Ray it started.
    """

    shared_filesystem = False
    accepts_devices = False

    def __init__(self, address: str | None = None, *, chunk_seeds: int = 1, num_cpus_per_task: float = 1,
                 num_gpus_per_task: float = 0, max_retries: int = 3, retry_exceptions: bool | Sequence[type] = True,
                 worker_checkpoints: bool = False, runtime_env: Mapping[str, Any] | None = None,
                 init_kwargs: Mapping[str, Any] | None = None):
        super().__init__()
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise EngineConfigError(f"address: expected a Ray address such as 'auto' or 'ray://host:10001', got {address!r}")
        self.chunk_seeds = _check_chunk_seeds(chunk_seeds, allow_none=False)
        for name, value in (("num_cpus_per_task", num_cpus_per_task), ("num_gpus_per_task", num_gpus_per_task)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0) or not np.isfinite(value):
                raise EngineConfigError(f"{name}: expected a non-negative number, got {value!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, (int, np.integer)) or max_retries < 0:
            raise EngineConfigError(f"max_retries: expected a non-negative int, got {max_retries!r}")
        if not isinstance(retry_exceptions, bool) and not (
                isinstance(retry_exceptions, (list, tuple)) and all(isinstance(c, type) and issubclass(c, BaseException) for c in retry_exceptions)):
            raise EngineConfigError(f"retry_exceptions: expected True, False or a list of exception classes, got {retry_exceptions!r}")
        self.address = address
        self.num_cpus_per_task = num_cpus_per_task
        self.num_gpus_per_task = num_gpus_per_task
        self.max_retries = int(max_retries)
        self.retry_exceptions = retry_exceptions if isinstance(retry_exceptions, bool) else list(retry_exceptions)
        self.shared_filesystem = bool(worker_checkpoints)
        self.runtime_env = dict(runtime_env) if runtime_env else None
        self.init_kwargs = dict(init_kwargs or {})
        self._started_ray = False

    def __repr__(self) -> str:
        return (f"RayExecutor(address={self.address!r}, chunk_seeds={self.chunk_seeds}, num_cpus_per_task={self.num_cpus_per_task}, "
                f"num_gpus_per_task={self.num_gpus_per_task}, max_retries={self.max_retries})")

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def describe(self) -> dict[str, Any]:
        return {"kind": "ray", "address": self.address, "chunk_seeds": self.chunk_seeds,
                "num_cpus_per_task": self.num_cpus_per_task, "num_gpus_per_task": self.num_gpus_per_task,
                "max_retries": self.max_retries, "worker_checkpoints": self.shared_filesystem}

    def check(self) -> None:
        _import_ray()

    def _ray(self):
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init_kwargs)
            self._started_ray = True
        return ray

    def shutdown(self) -> None:
        """Shuts Ray down if this executor started it (a Ray started elsewhere is left running)."""
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False

    def prepare(self, shared):
        data = _pickle_shared(shared)
        return self._ray().put(data)

    def map_chunks(self, fn, handle, payloads):
        ray = self._ray()
        options = dict(num_cpus=self.num_cpus_per_task, num_gpus=self.num_gpus_per_task, max_retries=self.max_retries,
                       retry_exceptions=self.retry_exceptions)
        if self.num_gpus_per_task:
            options["max_calls"] = 1  # a fresh process per task: JAX initialises on the GPUs Ray assigned
        # One XLA host device per reserved CPU in each worker (jaxdyn would otherwise give every
        # worker one per core of its node, oversubscribing it); results do not depend on it.
        env = dict((self.runtime_env or {}).get("env_vars", {}))
        env.setdefault("JAXDYN_HOST_DEVICES", str(max(1, int(self.num_cpus_per_task))))
        options["runtime_env"] = {**(self.runtime_env or {}), "env_vars": env}
        remote = ray.remote(_run_pickled).options(**options)
        pending = {remote.remote(fn, handle, payload): index for index, payload in payloads}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                index = pending.pop(ref)
                try:
                    result = ray.get(ref)
                    if isinstance(result, _Refused):
                        raise result.error
                except Exception as exc:
                    # ray.get raises an exception that is also an instance of the task's own
                    # exception class, so callers can still catch it by its type.
                    exc.jaxdyn_chunk = index
                    raise
                yield index, result
        finally:
            # An error or an interrupt: the chunks still queued or running are not wanted.
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise EngineConfigError(f"executor: the Ray executor needs ray, which is not installed; {INSTALL_HINT}") from None
    return ray


def _check_chunk_seeds(value, allow_none: bool = True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise EngineConfigError(f"chunk_seeds: expected a positive int (members per task), got {value!r}")
    return int(value)


def _pickle_shared(shared: Mapping[str, Any]) -> bytes:
    """cloudpickle of the arguments every chunk shares; an EngineConfigError names the one that
    does not pickle (a lock, an open file, a device array of another process ...)."""
    from ray import cloudpickle

    try:
        return cloudpickle.dumps(dict(shared))
    except Exception as whole:  # noqa: BLE001 - find and name the culprit
        items = []
        for name, value in shared.items():
            if isinstance(value, TrainCall):  # name the part of the specification
                spec = value.spec
                items += [("learner", spec.learner), ("task", spec.task), ("shared", value.shared)]
                items += [(f"observables[{n!r}]", fn) for r in spec.plan for n, fn in r.observables]
            elif isinstance(value, Mapping):
                items += [(f"{name}[{k!r}]", v) for k, v in value.items()]
            items.append((name, value))
        for name, value in items:
            try:
                cloudpickle.dumps(value)
            except Exception as exc:  # noqa: BLE001
                raise EngineConfigError(
                    f"{name}: cannot be sent to the Ray workers, it does not pickle ({type(exc).__name__}: {exc}); "
                    "define it at the top of an importable module or capture only picklable values") from None
        raise EngineConfigError(f"executor: the training arguments do not pickle ({type(whole).__name__}: {whole})") from None


class _Refused(NamedTuple):
    """A ValueError of a task (invalid configuration, memory guard, checkpoint mismatch): the
    same on every attempt, so it is returned to the driver, which raises it, instead of being
    raised in the task, which Ray would retry."""

    error: BaseException


def _run_pickled(fn, handle, payload):
    """The Ray task: unpickles the shared arguments and runs ``fn`` on one chunk."""
    from ray import cloudpickle

    try:
        return fn(cloudpickle.loads(handle), payload)
    except ValueError as exc:
        try:
            cloudpickle.loads(cloudpickle.dumps(exc))
        except Exception:  # noqa: BLE001 - an exception class that does not round-trip
            exc = EngineConfigError(f"{type(exc).__name__}: {exc}")
        return _Refused(exc)


def _train_chunk(shared: Mapping[str, Any], payload: Mapping[str, Any]) -> EnsembleResult:
    """Runs the ordinary :func:`~jaxdyn.engine.core.run_call` on one chunk of members, on this
    process's devices. ``shared``: ``{"call": the TrainCall without members and options,
    "options": the chunk's engine options}``; ``payload``: ``{"members", "checkpoint"}``."""
    options = dict(shared["options"])
    spec = payload.get("checkpoint")
    if spec is not None:
        # resume=True always: the driver cleared the folder when the run itself is not resumed,
        # so what is there was written by an earlier attempt at this very chunk.
        options["checkpoint"] = Checkpointer(spec["directory"], every=spec["every"], resume=True, keep=spec["keep"],
                                             metadata=spec["metadata"], on_save=spec["on_save"])
    with jax.enable_x64(bool(options.get("x64", False))):  # the driver's float64 setting, in this worker
        return core.run_call(shared["call"]._replace(members=payload["members"], options=options))


def _concatenate(results: Sequence[EnsembleResult], seeds) -> EnsembleResult:
    cat = lambda *xs: np.concatenate([np.asarray(x) for x in xs], axis=0)  # noqa: E731
    first = results[0]
    state = jax.tree_util.tree_map(cat, *[r.state._replace(step=None) for r in results])._replace(step=first.state.step)
    return first._replace(
        params=jax.tree_util.tree_map(cat, *[r.params for r in results]),
        records={k: cat(*[r.records[k] for r in results]) for k in first.records},
        diverged_at=cat(*[r.diverged_at for r in results]),
        nonfinite_at=cat(*[r.nonfinite_at for r in results]),
        seeds=seeds,
        state=state,
    )


def _run_split(executor: Executor, call: TrainCall) -> EnsembleResult:
    """Split, run, gather: the members of ``call`` in chunks of ``executor.chunk_seeds``.

    Returns:
        The :class:`EnsembleResult` of all members, seed axis in the order given.
    """
    if not isinstance(executor, Executor):
        raise EngineConfigError(f"executor: expected a jaxdyn.engine.LocalExecutor or RayExecutor, got {type(executor).__name__}")
    opts = dict(call.options)
    for name in ("on_chunk", "resume_from"):
        if opts.get(name) is not None:
            raise EngineConfigError(f"{name}: not available with an executor (the chunks run as separate train calls); use checkpoint=")
    if opts.get("devices") is not None and not executor.accepts_devices:
        raise EngineConfigError("devices: not available with a RayExecutor (each task uses its worker's own devices)")
    executor.check()

    members = call.members
    num_members = len(members)
    # Chunks hold whole blocks of members, computed at the block width this process would use,
    # so a member's results do not depend on the chunking (chunk_seeds is rounded up to it).
    shared_arrays = {} if call.shared is None else jax.tree_util.tree_map(np.asarray, dict(call.shared))
    block = core._block_width(call, shared_arrays, jax.local_devices()[0].platform)
    size = executor.chunk_seeds or num_members
    if block is not None:
        size = -(-size // block) * block
        opts["block_width"] = block
    bounds = [(a, min(a + size, num_members)) for a in range(0, num_members, size)]
    checkpoint = opts.pop("checkpoint", None)
    progress = opts.pop("progress", False)
    executor.last_run = {"chunks": bounds, "submitted": [], "restored": [], "block_width": block}
    if len(bounds) == 1 and isinstance(executor, LocalExecutor):  # nothing to split
        executor.last_run["submitted"] = [0]
        return core.run_call(call)

    chunk_options = {**opts, "progress": False, "checkpoint": None}
    shared = {"call": call._replace(members=None, options={}), "options": chunk_options}

    # ---- checkpoints: one folder per chunk inside this call's folder ----
    chunk_dirs: list[Path | None] = [None] * len(bounds)
    results: list[Any] = [None] * len(bounds)
    if checkpoint is not None:
        # This call's folder (numbered like any other call); a folder per chunk inside.
        calls = checkpoint.for_call(core._fingerprint(call, block))
        chunk_dirs = [calls.directory / f"chunk_{a:06d}-{b:06d}" for a, b in bounds]
        # members: [first, stop) of the chunk in the order of train's seeds
        where = [{"call": calls.index, "chunk": i, "members": [a, b]} for i, (a, b) in enumerate(bounds)]
        if not checkpoint.resume:
            for stale in calls.directory.glob("chunk_*"):
                shutil.rmtree(stale, ignore_errors=True)
        else:
            for i, ((a, b), folder) in enumerate(zip(bounds, chunk_dirs)):
                results[i] = _restore_chunk(call._replace(options=opts), members.slice(a, b), folder, checkpoint, where[i])
                if results[i] is not None:
                    executor.last_run["restored"].append(i)

    todo = [i for i, r in enumerate(results) if r is None]
    payloads = []
    for i in todo:
        p: dict[str, Any] = {"members": members.slice(*bounds[i])}
        if checkpoint is not None and executor.shared_filesystem:
            p["checkpoint"] = {"directory": str(chunk_dirs[i].resolve()), "every": checkpoint.every, "keep": checkpoint.keep,
                               "metadata": checkpoint.metadata,
                               # a callback of the driver (status.json) is called only in the driver's process
                               "on_save": _chunk_on_save(checkpoint, where[i]) if isinstance(executor, LocalExecutor) else None}
        payloads.append((i, p))

    # One progress unit with train's: member-steps.
    steps = int(call.num_steps)
    done = (num_members - sum(b - a for i, (a, b) in enumerate(bounds) if i in todo)) * steps
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_members * steps, initial=done, unit="member-step", unit_scale=True, desc="training (chunks)")
    with contextlib.ExitStack() as stack:
        if bar is not None:
            stack.callback(bar.close)
        if todo:
            handle = executor.prepare(shared)
            executor.last_run["submitted"] = list(todo)
            chunks = executor.map_chunks(_train_chunk, handle, payloads)
            stack.callback(chunks.close)  # whatever ends this loop stops the chunks still running
            while True:
                try:
                    i, result = next(chunks)
                except StopIteration:
                    break
                except Exception as exc:
                    index = getattr(exc, "jaxdyn_chunk", None)
                    if index is not None:
                        (a, b), retries = bounds[index], getattr(executor, "max_retries", 0)
                        how = "not retried (a ValueError is the same on every attempt)" if isinstance(exc, ValueError) else f"after {retries} retries"
                        kept = "; the chunks finished before are stored in the checkpoints (resume skips them)" if checkpoint is not None else ""
                        with contextlib.suppress(Exception):
                            exc.add_note(f"jaxdyn: raised by the executor's chunk {index} (members {a} to {b - 1}), {how}{kept}")
                    raise
                results[i] = result
                if checkpoint is not None:
                    _save_chunk(call, result, chunk_dirs[i], checkpoint, where[i], notified=isinstance(executor, LocalExecutor))
                a, b = bounds[i]
                if bar is not None:
                    bar.update((b - a) * steps)
                elif callable(progress):
                    done += (b - a) * steps
                    progress(done, num_members * steps)
    return _concatenate(results, members.seeds)


def _chunk_on_save(checkpoint: Checkpointer, where: Mapping[str, Any]):
    """The run's ``on_save`` callback, told which call and chunk a chunk checkpoint belongs to."""
    if checkpoint.on_save is None:
        return None
    return lambda info: checkpoint.on_save({**info, **where})


def _save_chunk(call: TrainCall, result: EnsembleResult, folder: Path, checkpoint: Checkpointer, where: Mapping[str, Any],
                notified: bool) -> None:
    """Writes a finished chunk as its own call's final checkpoint (atomic, engine format), so
    that the engine itself can restore it; unless the chunk's call wrote it already (then
    ``notified`` says whether it called ``on_save`` itself)."""
    step = int(result.state.step)
    chunk = Checkpointer(folder, every=checkpoint.every, resume=True, keep=checkpoint.keep, metadata=checkpoint.metadata,
                         on_save=_chunk_on_save(checkpoint, where))
    members = len(result.diverged_at)
    # The fingerprint the engine gives this chunk's call.
    block = result.engine["block_width"] if result.engine["blocked"] else None
    saver = chunk.for_call({**core._fingerprint(call, block), "num_members": members})
    if step not in saver.steps():
        saver.save(step, result.state._replace(step=None), result.records)
    elif not notified and chunk.on_save is not None:  # a worker wrote it (shared filesystem), without the callback
        chunk.on_save({"call": 0, "step": step, "num_steps": step, "path": str(saver.path(step)), "time": time.time()})


def _restore_chunk(call: TrainCall, members, folder: Path, checkpoint: Checkpointer, where: Mapping[str, Any]):
    """The stored result of a finished chunk, or None (not finished, or never run).

    It is read by the engine itself, restoring the chunk's final checkpoint (the same checks as
    any resume: seeds, hyperparameters, data, shapes; nothing trains or compiles), on this
    process's first device.
    """
    latest = Checkpointer(folder).latest()
    if latest is None or latest["step"] != int(call.num_steps) or latest["call"] != 0:
        return None
    chunk = Checkpointer(folder, resume=True, keep=checkpoint.keep)
    options = {**call.options, "devices": jax.local_devices()[:1], "memory_check": False, "checkpoint": chunk,
               "progress": False}
    result = core.run_call(call._replace(members=members, options=options))
    checkpoint.restored.extend({**r, **where} for r in chunk.restored)
    return result
