"""Run directories: config.json, results.nc (netCDF via xarray), summary.json, figures, status.

Layout of ``OUT/NAME/``::

    config.json    the configuration that produced the run (and the experiment's name)
    status.json    {"state": "running" | "complete" | "failed" | "interrupted", ...}; written
                   first, with the process id and host, and updated at every checkpoint, so a
                   run that crashed or was killed is recognisable as such (:func:`read_status`
                   reports a "running" run whose process is gone as "interrupted")
    checkpoints/   crash-safe checkpoints of every train call (jaxdyn.engine.checkpoint) while
                   the run is unfinished; removed when it completes
    results.nc     the xarray Dataset (dims named; ``seed`` for the ensemble)
    summary.json   headline numbers and claims (held / not held, with the number), and
                   ``skipped_members``: members left out of the summary (diverged, ODE failed)
    *.png          figures

Files are written to a temporary name, fsync-ed and renamed into place, so a reader never sees
half a file, even after a SIGKILL or a power cut.

:func:`run_experiment` runs an experiment into its run directory with checkpoints, resume and
the memory guard; the CLI's ``jaxdyn run`` is a thin layer over it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

NETCDF_ENGINE = "h5netcdf"


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Writes through ``write(tmp_path)`` then renames onto ``path`` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:  # durable before it becomes visible under its name
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
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
    """Atomically writes ``obj`` as indented JSON (numpy scalars and arrays converted)."""
    text = json.dumps(obj, indent=2, default=_json_default, allow_nan=True)
    atomic_write(Path(path), lambda p: p.write_text(text + "\n"))


def write_dataset(path: Path, dataset: xr.Dataset) -> None:
    """Atomically writes ``dataset`` as netCDF4 (h5netcdf engine)."""
    atomic_write(Path(path), lambda p: dataset.to_netcdf(p, engine=NETCDF_ENGINE))


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


class RunInterrupted(KeyboardInterrupt):
    """Raised (by the CLI's SIGTERM handler) when a run is asked to stop; marks it interrupted."""


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
    reported as ``"interrupted"`` (with ``"detected": "process gone"``). Missing file: "unknown".
    """
    file = Path(path) / "status.json"
    if not file.exists():
        return {"state": "unknown"}
    status = json.loads(file.read_text())
    if status.get("state") == "running" and status.get("host") == socket.gethostname() and isinstance(status.get("pid"), int):
        if not _pid_alive(status["pid"]):
            status = {**status, "state": "interrupted", "detected": "process gone (killed without a chance to record it)"}
    return status


class RunDir:
    """A run directory ``OUT/NAME/``; see the module docstring for its files."""

    def __init__(self, out: str | os.PathLike, name: str):
        self.path = Path(out) / name
        self.name = name
        self._status: dict[str, Any] = {}

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def _write_status(self, **fields) -> None:
        self._status.update(fields)
        write_json(self.path / "status.json", self._status)

    def start(self, config: Mapping[str, Any], *, resume: bool = False) -> None:
        """Creates the folder, writes config.json and marks the run as running.

        Args:
            config: the configuration, as a JSON-serialisable mapping.
            resume: continue a previous run in this folder: its checkpoints are kept and the
                previous status is recorded under ``"resumed"``. Without it, the checkpoints and
                results of any earlier run here are removed first.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        previous = read_status(self.path) if resume else None
        if not resume:
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
            for stale in ("results.nc", "summary.json"):
                with contextlib.suppress(FileNotFoundError):
                    (self.path / stale).unlink()
        write_json(self.path / "config.json", {"experiment": self.name, "config": dict(config)})
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

    def finish(self, result, elapsed_s: float) -> None:
        """Writes results.nc, summary.json and the figures, marks the run complete, and removes
        the checkpoints (the results now hold everything)."""
        from jaxdyn import plots
        from jaxdyn.experiments.base import skipped_members

        write_dataset(self.path / "results.nc", result.dataset)
        for stem, fig in result.figures.items():
            plots.save(fig, self.path / f"{stem}.png")
        summary = dict(result.summary)
        if "skipped_members" not in summary:
            summary["skipped_members"] = skipped_members(result.dataset)
        summary["elapsed_s"] = round(elapsed_s, 3)
        summary["environment"] = environment()
        write_json(self.path / "summary.json", summary)
        self._status.pop("last_checkpoint", None)
        self._write_status(state="complete", finished=time.time(), elapsed_s=round(elapsed_s, 3))
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)

    def fail(self, exc: BaseException) -> None:
        """Marks the run as failed (or interrupted), with the error, keeping whatever was written
        (checkpoints included, so an interrupted run can be resumed)."""
        state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        if not self._status and (self.path / "status.json").exists():
            self._status = json.loads((self.path / "status.json").read_text())
        self._write_status(
            state=state,
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exception(exc)[-5:],
            finished=time.time(),
        )


def run_experiment(experiment, config, out: str | os.PathLike, *, progress: bool = False, resume: bool = False,
                   checkpoints: bool = True, checkpoint_every: int | None = None, memory_check: bool = True,
                   executor=None):
    """Runs ``experiment`` with ``config`` into ``out/NAME/``, with checkpoints and resume.

    The execution options reach the engine as ``train_options`` that the experiment forwards
    to each ``train`` call (see :class:`jaxdyn.experiments.base.Experiment`); they never change
    the results.

    Args:
        experiment: a registered :class:`~jaxdyn.experiments.base.Experiment`.
        config: its Config.
        out: parent folder of the run directory.
        progress: progress bars.
        resume: continue from the checkpoints in the run directory (fresh where there are none).
        checkpoints: write checkpoints (``checkpoints/``) between chunks.
        checkpoint_every: steps between checkpoints; default about 10 per train call.
        memory_check: the engine's memory guard (see ``jaxdyn.engine.train``).
        executor: where the members of each ``train`` call run (``jaxdyn.engine.RayExecutor``,
            ``LocalExecutor``); None: this process. Recorded in status.json (``executor``).

    Returns:
        (RunResult, path of the run directory).

    Raises:
        jaxdyn.experiments.ConfigError: ``resume`` or ``executor`` for an experiment that does not
            forward ``train_options`` (it can neither checkpoint nor run elsewhere); raised before the
            folder is touched.
        jaxdyn.engine.EngineConfigError: the executor cannot run (Ray not installed); also
            before the folder is touched.
    """
    run_dir = RunDir(out, experiment.name)
    options: dict[str, Any] = {"memory_check": memory_check}
    if checkpoints or resume:
        options["checkpoint"] = run_dir.checkpointer(every=checkpoint_every, resume=resume,
                                                     metadata={"experiment": experiment.name, "config": config.to_dict()})
    unsupported = experiment.unsupported_options(options)
    if resume and "checkpoint" in unsupported:
        from jaxdyn.experiments.base import ConfigError

        raise ConfigError(f"--resume: {experiment.name} does not pass checkpoints to the engine (its run() takes no **train_options)")
    if executor is not None:
        from jaxdyn.experiments.base import ConfigError

        if "executor" in experiment.unsupported_options({"executor": executor}):
            raise ConfigError(f"--executor: {experiment.name} does not pass train options to the engine (its run() takes no "
                              "**train_options), so it runs only in this process")
        executor.check()  # e.g. Ray not installed: before the folder is touched
        options["executor"] = executor
    run_dir.start(config.to_dict(), resume=resume)
    run_dir._write_status(executor=executor.describe() if executor is not None else {"kind": "local", "chunk_seeds": None})
    if unsupported:
        run_dir._write_status(unsupported_options=sorted(unsupported))
    start = time.perf_counter()
    try:
        result = experiment.execute(config, progress=progress, **options)
        if "checkpoint" in options and "checkpoint" not in unsupported:
            run_dir._status["restored_from"] = options["checkpoint"].restored
        run_dir.finish(result, time.perf_counter() - start)
    except BaseException as exc:
        run_dir.fail(exc)
        raise
    return result, run_dir.path


def load_run(path: str | os.PathLike) -> tuple[dict[str, Any], xr.Dataset | None, dict[str, Any] | None, dict[str, Any]]:
    """Reads a run directory.

    Returns:
        (config.json contents, the Dataset or None, summary.json or None, status.json as read
        by :func:`read_status`).
    """
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    status = read_status(path)
    dataset = xr.load_dataset(path / "results.nc", engine=NETCDF_ENGINE) if (path / "results.nc").exists() else None
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").exists() else None
    return config, dataset, summary, status
