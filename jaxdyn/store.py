"""The run layer: run folders, their lock, the claims and datasets written, resume, run-by-name.

Layout of ``OUT/NAME/``::

    .lock          held (an OS file lock) by the one process running this folder; holds its PID
    config.json    the experiment, its preset, the command line and the configuration
    status.json    {"state": "running" | "complete" | "failed" | "interrupted", ...}; written
                   first, with the process id and host, and updated at every checkpoint, so a
                   run that crashed or was killed is recognisable as such (:func:`read_status`
                   reports a "running" run whose process is gone as "interrupted")
    checkpoints/   crash-safe checkpoints of every training call (jaxdyn.engine.checkpoint) while
                   the run is unfinished; removed when it completes
    results.nc     the xarray Dataset (dims named; ``seed`` first for the ensemble)
    summary.json   the claims (the claim contract of :mod:`jaxdyn.claims`), their tally by kind,
                   the headline numbers, figure captions, the members left out and why
    *.png          figures

Files are written to a unique temporary name, fsync-ed and renamed into place, so a reader never
sees half a file, even after a SIGKILL or a power cut, and two writers never share a temporary.

:func:`run` runs an experiment by name into its folder: it takes the folder's lock for the whole
run (a second process is refused, always), checks that a resumed run's configuration matches the
saved one, builds the experiment's :class:`~jaxdyn.engine.context.RunContext` (progress,
checkpoints, memory guard, executor), and writes what the experiment returns. The CLI's
``jaxdyn run`` is a thin layer over it; so is ``jaxdyn.run`` in Python.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxdyn.faults import kill_point

NETCDF_ENGINE = "h5netcdf"
"""The xarray netCDF engine ``results.nc`` is written and read with (netCDF4 files through h5py)."""


class RunFolderError(ValueError):
    """The run folder cannot be used: not creatable or writable, locked by another process, or
    holding a complete run that would be replaced without ``force``."""


class RunInterrupted(KeyboardInterrupt):
    """Raised (by the CLI's SIGTERM handler) when a run is asked to stop; marks it interrupted."""


def _jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays converted and non-finite floats as None (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if hasattr(obj, "to_dict"):
        return _jsonable(obj.to_dict())
    return obj


def atomic_write(path: Path, write: Callable[[Path], None], point: str | None = None) -> None:
    """Writes through ``write(tmp_path)`` then renames onto ``path`` (atomic on POSIX); the
    temporary name is unique, so concurrent writers never collide. ``point``: the kill harness's
    name for this write (:mod:`jaxdyn.faults`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:  # durable before it becomes visible under its name
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        if point is not None:
            kill_point(point)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    with contextlib.suppress(OSError):  # make the rename durable too
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """Atomically writes ``obj`` as indented strict JSON (numpy converted, NaN and inf as null)."""
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False)
    point = {"summary.json": "summary-write", "status.json": "status-write"}.get(Path(path).name)
    atomic_write(Path(path), lambda p: p.write_text(text + "\n"), point)


def write_dataset(path: Path, dataset) -> None:
    """Atomically writes ``dataset`` as netCDF4 (h5netcdf engine)."""
    atomic_write(Path(path), lambda p: dataset.to_netcdf(p, engine=NETCDF_ENGINE), "results-write")


def write_figure(path: Path, figure) -> None:
    """Atomically writes a matplotlib figure as PNG in the jaxdyn style."""
    from jaxdyn import plots

    atomic_write(Path(path), lambda p: plots.savefig(figure, p), "figure-write")


def environment() -> dict[str, Any]:
    """Versions and device, stored with every run."""
    import jax

    import jaxdyn

    return {
        "jaxdyn": jaxdyn.__version__,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(path: str | os.PathLike) -> dict[str, Any]:
    """status.json of run directory ``path``, with a dead run recognised.

    A run killed without a chance to say so (SIGKILL, out of memory, node lost) leaves
    ``"running"``; when its process (``pid`` on this ``host``) no longer exists the state is
    reported as ``"interrupted"`` (with ``"detected": "process gone"``). Missing or unreadable
    file: ``"unknown"``.
    """
    file = Path(path) / "status.json"
    try:
        status = json.loads(file.read_text())
    except FileNotFoundError:
        return {"state": "unknown"}
    except (OSError, ValueError) as exc:
        return {"state": "unknown", "error": f"status.json is not valid JSON ({type(exc).__name__})"}
    if status.get("state") == "running" and status.get("host") == socket.gethostname() and isinstance(status.get("pid"), int):
        if not _pid_alive(status["pid"]):
            status = {**status, "state": "interrupted", "detected": "process gone (killed without a chance to record it)"}
    return status


class RunLock:
    """An exclusive OS lock (``flock``) on ``OUT/NAME/.lock`` for the whole run.

    The lock is released by the kernel when its process ends, however it ends, so a stale lock
    file never blocks a later run; the PID and host written into the file name the holder in the
    refusal message.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock or raises :class:`RunFolderError` naming the holder."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no OS lock; the status check below is all there is
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
                holder = f" by process {info.get('pid')} on host {info.get('host')}"
            os.close(fd)
            raise RunFolderError(f"--out: {self.path.parent} is being run{holder}; wait for it or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Releases the lock (closes its file descriptor); does nothing when it is not held. The
        lock file stays."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


_OUTPUTS = ("results.nc", "summary.json")


class RunDir:
    """A run directory ``OUT/NAME/``; see the module docstring for its files."""

    def __init__(self, out: str | os.PathLike, name: str):
        self.path = Path(out) / name
        self.name = name
        self._status: dict[str, Any] = {}
        self.lock = RunLock(self.path)

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def open(self) -> None:
        """Creates the folder and takes its lock; :class:`RunFolderError` with one true line when
        the folder cannot be made or written, or another process holds it."""
        if "\x00" in str(self.path):
            raise RunFolderError(f"--out: the path contains a NUL character: {str(self.path)!r}")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            blocker = next((p for p in [self.path, *self.path.parents] if p.exists() and not p.is_dir()), self.path)
            raise RunFolderError(f"--out: {blocker} exists and is not a folder") from None
        except OSError as exc:
            raise RunFolderError(f"--out: cannot create {self.path}: {exc.strerror or exc}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise RunFolderError(f"--out: {self.path} is not writable")
        try:
            self.lock.acquire()
        except PermissionError as exc:
            raise RunFolderError(f"--out: cannot write in {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        """Ends this process's hold on the run directory: releases its :class:`RunLock`."""
        self.lock.release()

    def _write_status(self, **fields) -> None:
        self._status.update(fields)
        write_json(self.path / "status.json", self._status)

    def clear(self) -> None:
        """Removes the outputs of an earlier run here (results, summary, figures, checkpoints,
        stray temporary files), before a fresh run writes its own."""
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        for stale in [*(self.path / n for n in _OUTPUTS), *self.path.glob("*.png"), *self.path.glob(".*.tmp")]:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def start(self, record: Mapping[str, Any], *, resume: bool = False) -> None:
        """Writes config.json (``record``: experiment, preset, command, config) and marks the run
        as running; without ``resume`` the outputs of an earlier run here are removed first."""
        previous = read_status(self.path) if resume else None
        if not resume:
            self.clear()
        write_json(self.path / "config.json", record)
        self._status = {"state": "running", "started": time.time(), "pid": os.getpid(), "host": socket.gethostname(), **environment()}
        if previous is not None:
            self._status["resumed"] = {k: previous.get(k) for k in ("state", "last_checkpoint", "error", "detected") if k in previous}
        self._write_status()

    def checkpointer(self, *, every: int | None = None, resume: bool = False, metadata: Mapping[str, Any] | None = None):
        """A :class:`~jaxdyn.engine.checkpoint.Checkpointer` writing to ``checkpoints/`` that
        records each save in status.json (``last_checkpoint``)."""
        from jaxdyn.engine.checkpoint import Checkpointer

        return Checkpointer(self.checkpoint_dir, every=every, resume=resume, metadata=metadata,
                            on_save=lambda info: self._write_status(last_checkpoint=info))

    def finish(self, result, summary: Mapping[str, Any], elapsed_s: float) -> None:
        """Writes results.nc, the figures and summary.json, marks the run complete, and removes
        the checkpoints and any stray temporary file (the results now hold everything)."""
        write_dataset(self.path / "results.nc", result.dataset)
        for stem, fig in result.figures.items():
            write_figure(self.path / f"{stem}.png", fig.figure)
        write_json(self.path / "summary.json", summary)
        self._status.pop("last_checkpoint", None)
        self._write_status(state="complete", finished=time.time(), elapsed_s=round(elapsed_s, 3))
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        for stray in self.path.glob(".*.tmp"):  # left by a process killed mid-write
            with contextlib.suppress(FileNotFoundError):
                stray.unlink()

    def fail(self, exc: BaseException) -> None:
        """Marks the run as failed (or interrupted), with the error, keeping whatever was written
        (checkpoints included, so an interrupted run can be resumed)."""
        state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        if not self._status and (self.path / "status.json").exists():
            self._status = read_status(self.path)
        self._write_status(
            state=state,
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exception(exc)[-5:],
            finished=time.time(),
        )


# ---------------------------------------------------------------------------------------------
# What the run layer adds to an experiment's Result
# ---------------------------------------------------------------------------------------------
def skipped_members(dataset) -> dict[str, Any]:
    """Which members a summary leaves out, and why, from a run's Dataset.

    Reads the conventional per-member variables, where present, with ``seed`` as one of their
    dims (any others are reduced: a member is left out if any of its entries is):
    ``diverged_at`` int, the first non-finite step or -1 (from the engine); ``nonfinite_at`` int,
    the first recorded step with a non-finite record (engine); ``ode_ok`` bool-like
    and ``ode_message`` str (from ``jaxdyn.theory.saxe.solve_batch``); ``excluded_reason`` str
    ("" where the member is included), set by an experiment for members whose records make a
    claim's input undefined (saturated outputs, non-finite records).

    Returns:
        ``{"members": n, "skipped": k, "reasons": [{"member", "reason"}]}``; ``members`` is None
        when the Dataset has no ``seed`` dim.
    """
    if "seed" not in getattr(dataset, "sizes", {}):
        return {"members": None, "skipped": 0, "reasons": []}
    n = int(dataset.sizes["seed"])
    reasons: dict[int, list[str]] = {}

    def per_member(name):
        var = dataset[name]
        if "seed" not in var.dims:
            return None
        return var.transpose("seed", ...).values.reshape(n, -1)

    if "diverged_at" in dataset and (at := per_member("diverged_at")) is not None:
        for i in range(n):
            steps = at[i][at[i] >= 0]
            if steps.size:
                where = "" if at.shape[1] == 1 else f" ({steps.size} of its {at.shape[1]} conditions)"
                reasons.setdefault(i, []).append(f"diverged at step {int(steps.min())}{where}")
    if "nonfinite_at" in dataset and (at := per_member("nonfinite_at")) is not None:
        for i in range(n):
            steps = at[i][at[i] >= 0]
            if steps.size:
                reasons.setdefault(i, []).append(f"records non-finite from step {int(steps.min())}")
    if "ode_ok" in dataset and (ok := per_member("ode_ok")) is not None:
        messages = per_member("ode_message") if "ode_message" in dataset else None
        for i in np.flatnonzero(~ok.astype(bool).all(axis=1)):
            why = str(messages[i][~ok[i].astype(bool)][0]) if messages is not None else "failed"
            reasons.setdefault(int(i), []).append(f"ODE {why}")
    if "excluded_reason" in dataset and (why := per_member("excluded_reason")) is not None:
        for i in range(n):
            for text in dict.fromkeys(str(w) for w in why[i] if str(w)):
                reasons.setdefault(i, []).append(text)
    listed = [{"member": i, "reason": "; ".join(r)} for i, r in sorted(reasons.items())]
    return {"members": n, "skipped": len(listed), "reasons": listed}


def summarize(experiment, result, *, elapsed_s: float, calls: list | None = None) -> dict[str, Any]:
    """summary.json of a run: the experiment, its claims (contract form) and their tally by kind,
    the headline numbers, figure captions, members left out, elapsed time and environment (with
    what each training call did: block width, devices, padded members)."""
    from jaxdyn import claims as claims_module

    claims = [c.to_dict() for c in result.claims]
    ids = [c["id"] for c in claims]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"{experiment.name}: claim ids must be unique, {duplicated[0]!r} is repeated")
    return {
        "experiment": experiment.name,
        "work": experiment.work,
        "description": experiment.description,
        "claims": claims,
        "claims_held": claims_module.tally(result.claims),
        "numbers": result.numbers,
        "figures": {stem: fig.caption for stem, fig in result.figures.items()},
        "skipped_members": skipped_members(result.dataset),
        "elapsed_s": round(elapsed_s, 3),
        "environment": {**environment(), "train_calls": list(calls or [])},
    }


CONVENTIONAL_ATTRS: dict[str, dict[str, str]] = {
    "seed": {"long_name": "ensemble member: its integer seed (or its index when members were given keys)", "units": "1"},
    "ode_ok": {"long_name": "1 where the reduced theory's ODE solve succeeded", "units": "1"},
    "ode_message": {"long_name": "diffrax's result of the ODE solve ('successful' or why not)"},
    "excluded_reason": {"long_name": "why the member is left out of the claims ('' where it is included)"},
}
"""Attributes of the run layer's conventional variables (read by :func:`skipped_members`), filled
in by :func:`describe_conventional` where an experiment gave none; the engine's per-member flags
(``diverged_at``, ``nonfinite_at``) take theirs from ``jaxdyn.engine.core.MEMBER_FLAG_ATTRS``."""


def describe_conventional(dataset) -> None:
    """Gives the conventional variables of :data:`CONVENTIONAL_ATTRS` their attributes where they
    have none (in place)."""
    from jaxdyn.engine.core import MEMBER_FLAG_ATTRS  # here, not at import: the run layer loads without JAX

    for name, attrs in {**CONVENTIONAL_ATTRS, **MEMBER_FLAG_ATTRS}.items():
        if name in dataset.variables:
            for key, text in attrs.items():
                dataset[name].attrs.setdefault(key, text)


def undescribed(dataset) -> list[str]:
    """What a results Dataset leaves undescribed: every data variable and coordinate needs a
    ``long_name``, and every numeric one (not bool, not text) a ``units`` (``"1"`` where it is
    dimensionless, CF convention).

    Returns:
        ``["NAME: long_name", "NAME: units", ...]``, empty when everything is described.
    """
    missing = []
    for name, var in dataset.variables.items():
        if not var.attrs.get("long_name"):
            missing.append(f"{name}: long_name")
        if var.dtype.kind in "iufc" and not var.attrs.get("units"):
            missing.append(f"{name}: units")
    return missing


def execute(experiment, config, ctx=None):
    """Runs ``experiment`` with ``config`` in this process and checks what it returns (no folder).

    Returns:
        its :class:`~jaxdyn.experiments.base.Result`, the dataset stamped with the experiment's
        name and configuration.
    """
    from jaxdyn.claims import Claim
    from jaxdyn.engine.context import RunContext
    from jaxdyn.experiments.base import Figure, Result

    ctx = RunContext() if ctx is None else ctx
    result = experiment.run(config, ctx)
    if not isinstance(result, Result):
        raise TypeError(f"{experiment.name}: run() must return jaxdyn.experiments.Result, got {type(result).__name__}")
    bad = [c for c in result.claims if not isinstance(c, Claim)]
    if bad:
        raise TypeError(f"{experiment.name}: every claim must be a jaxdyn.claims.Claim, got {type(bad[0]).__name__}")
    for stem, fig in result.figures.items():
        if not isinstance(fig, Figure):
            raise TypeError(f"{experiment.name}: figure {stem!r} must be jaxdyn.experiments.Figure(figure, caption)")
    describe_conventional(result.dataset)
    missing = undescribed(result.dataset)
    if missing:
        raise TypeError(f"{experiment.name}: every results variable needs attrs long_name (and units where numeric; '1' when "
                        f"dimensionless): {len(missing)} missing, first {', '.join(missing[:5])}")
    result.dataset.attrs["experiment"] = experiment.name
    result.dataset.attrs["config"] = json.dumps(_jsonable(config.to_dict()))
    return result


def preset_of(config) -> str:
    """``"quick"``, ``"default"``, the config's own ``preset`` field (``"paper"``) or ``"custom"``."""
    cls = type(config)
    if config == cls.quick():
        return "quick"
    if config == cls():
        return "default"
    return str(getattr(config, "preset", "custom"))


def _config_diff(saved, given) -> str:
    import dataclasses

    return "; ".join(f"{f.name} {getattr(saved, f.name)!r} there, {getattr(given, f.name)!r} here"
                     for f in dataclasses.fields(saved) if getattr(saved, f.name) != getattr(given, f.name))


def saved_config(experiment, path: Path):
    """The configuration a run folder was started with (config.json), or None."""
    from jaxdyn.experiments.base import ConfigError

    file = Path(path) / "config.json"
    if not file.exists():
        return None
    try:
        saved = json.loads(file.read_text())
        return experiment.config.from_dict(saved.get("config", {}))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--resume: {file}: {exc}") from None


def run(name_or_experiment, config=None, *, out: str | os.PathLike | None = "runs", resume: bool = False,
        force: bool = False, progress: Any = False, checkpoints: bool = True, checkpoint_every: int | None = None,
        memory_check: bool = True, executor=None, command: str | None = None, on_stage: Callable[[str], None] | None = None,
        block_width: int | str | None = None):
    """Runs an experiment by name into ``out/NAME/`` (the run layer under ``jaxdyn run``).

    Args:
        name_or_experiment: a registered name (``jaxdyn list``) or an Experiment.
        config: its Config; None: the paper defaults, or when resuming the saved configuration.
            A config given with ``resume`` must equal the saved one.
        out: parent folder of the run directory; None writes nothing (no folder, no checkpoints).
        resume: continue from the checkpoints in the run directory (fresh where there are none;
            nothing to do when it is complete).
        force: replace a complete run in the folder (its outputs are removed first).
        progress: progress bars (True), a callable ``progress(done, total)``, or False.
        checkpoints: write checkpoints between chunks.
        checkpoint_every: steps between checkpoints; default about 10 per training call.
        memory_check: the engine's memory guard.
        executor: where the members of each training call run (``jaxdyn.engine.RayExecutor``,
            ``LocalExecutor``); None: this process. Recorded in status.json.
        command: the command line, recorded in config.json.
        on_stage: told each stage the run enters (``training``, ``theory``, ``figures``...).
        block_width: members per block of the engine (None: its default for each model); the
            results depend on it at float rounding, so it is recorded in config.json and a
            resume with another width is refused.

    Returns:
        (the experiment's Result, the summary dict, the run directory or None).

    Raises:
        jaxdyn.experiments.ConfigError: a configuration that differs from the resumed one.
        RunFolderError: the folder cannot be used (not writable, locked by another process, or
            holding a complete run without ``force`` or ``resume``); before anything runs.
        jaxdyn.engine.EngineConfigError: the executor cannot run (Ray not installed).
    """
    from jaxdyn import experiments
    from jaxdyn.engine.context import RunContext
    from jaxdyn.experiments.base import ConfigError

    experiment = experiments.get(name_or_experiment) if isinstance(name_or_experiment, str) else name_or_experiment
    if config is not None and not isinstance(config, experiment.config):
        raise ConfigError(f"config: expected a {experiment.config.__name__} for {experiment.name}, got {type(config).__name__}")
    if executor is not None:
        executor.check()  # e.g. Ray not installed: before the folder is touched
    stage = on_stage or (lambda message: None)
    if out is None:
        ctx = RunContext(progress=progress, memory_check=memory_check, executor=executor, on_stage=stage, block_width=block_width)
        config = experiment.config() if config is None else config
        start = time.perf_counter()
        result = execute(experiment, config, ctx)
        return result, summarize(experiment, result, elapsed_s=time.perf_counter() - start, calls=ctx.calls), None

    run_dir = RunDir(out, experiment.name)
    run_dir.open()
    try:
        status = read_status(run_dir.path)
        if status["state"] == "running" and status.get("host") != socket.gethostname() and not force:
            # The lock covers this host; a run on another host of a shared filesystem may not see it.
            raise RunFolderError(f"--out: {run_dir.path} is marked running by process {status.get('pid')} on host "
                                 f"{status.get('host')}; wait for it or stop it (--force if you know that run is dead)")
        saved = saved_config(experiment, run_dir.path) if resume else None
        if resume and saved is not None:
            if config is not None and config != saved:
                raise ConfigError(f"--resume: the configuration differs from the one being resumed ({_config_diff(saved, config)})")
            saved_width = json.loads((run_dir.path / "config.json").read_text()).get("engine", {}).get("block_width")
            if saved_width != block_width:
                raise ConfigError(f"--resume: --block-width {block_width} here, {saved_width} in the run being resumed "
                                  "(the results depend on it); give the same")
            config = saved
            if status["state"] == "complete":
                return None, json.loads((run_dir.path / "summary.json").read_text()), run_dir.path
        else:
            resume = False
            if status["state"] == "complete" and not force:
                raise RunFolderError(f"--out: {run_dir.path} holds a complete run; --force replaces it (its outputs are "
                                     "removed first), --resume leaves it as it is, or choose another --out")
        config = experiment.config() if config is None else config
        checkpointer = None
        if checkpoints or resume:
            checkpointer = run_dir.checkpointer(every=checkpoint_every, resume=resume,
                                                metadata={"experiment": experiment.name, "config": config.to_dict()})
        ctx = RunContext(progress=progress, checkpoint=checkpointer, memory_check=memory_check, executor=executor,
                         on_stage=stage, block_width=block_width)
        start = time.perf_counter()
        try:  # from the first write on: an interrupt while status.json says running must not leave it so
            run_dir.start({"experiment": experiment.name, "preset": preset_of(config), "command": command,
                           "config": config.to_dict(), "engine": {"block_width": block_width}}, resume=resume)
            run_dir._write_status(executor=executor.describe() if executor is not None else {"kind": "local", "chunk_seeds": None})
            result = execute(experiment, config, ctx)
            if checkpointer is not None:
                run_dir._status["restored_from"] = checkpointer.restored
            run_dir._status["train_calls"] = ctx.calls
            stage("writing results and figures")
            summary = summarize(experiment, result, elapsed_s=time.perf_counter() - start, calls=ctx.calls)
            run_dir.finish(result, summary, time.perf_counter() - start)
        except BaseException as exc:
            run_dir.fail(exc)
            raise
    finally:
        run_dir.close()
    return result, summary, run_dir.path


def load_run(path: str | os.PathLike):
    """Reads a run directory.

    Returns:
        (config.json contents, the Dataset or None, summary.json or None, status.json as read
        by :func:`read_status`).
    """
    import xarray as xr

    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    status = read_status(path)
    dataset = xr.load_dataset(path / "results.nc", engine=NETCDF_ENGINE) if (path / "results.nc").exists() else None
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").exists() else None
    return config, dataset, summary, status
