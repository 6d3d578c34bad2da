"""Run directories: config.json, results.nc (netCDF via xarray), summary.json, figures, status.

Layout of ``OUT/NAME/``::

    config.json    the configuration that produced the run (and the experiment's name)
    status.json    {"state": "running" | "complete" | "failed", ...}; written first, so a run
                   that crashed or was killed is recognisable as such
    results.nc     the xarray Dataset (dims named; ``seed`` for the ensemble)
    summary.json   headline numbers and claims (held / not held, with the number)
    *.png          figures

Files are written to a temporary name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import platform
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


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Writes through ``write(tmp_path)`` then renames onto ``path`` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """Atomically writes ``obj`` as indented JSON (numpy scalars and arrays converted)."""
    text = json.dumps(obj, indent=2, default=_json_default, allow_nan=True)
    _atomic_write(Path(path), lambda p: p.write_text(text + "\n"))


def write_dataset(path: Path, dataset: xr.Dataset) -> None:
    """Atomically writes ``dataset`` as netCDF4 (h5netcdf engine)."""
    _atomic_write(Path(path), lambda p: dataset.to_netcdf(p, engine=NETCDF_ENGINE))


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


class RunDir:
    """A run directory ``OUT/NAME/``; see the module docstring for its files."""

    def __init__(self, out: str | os.PathLike, name: str):
        self.path = Path(out) / name
        self.name = name

    def start(self, config: Mapping[str, Any]) -> None:
        """Creates the folder, writes config.json and marks the run as running."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / "config.json", {"experiment": self.name, "config": dict(config)})
        write_json(self.path / "status.json", {"state": "running", "started": time.time(), **environment()})

    def finish(self, result, elapsed_s: float) -> None:
        """Writes results.nc, summary.json and the figures, then marks the run complete."""
        from jaxdyn import plots

        write_dataset(self.path / "results.nc", result.dataset)
        for stem, fig in result.figures.items():
            plots.save(fig, self.path / f"{stem}.png")
        summary = dict(result.summary)
        summary["elapsed_s"] = round(elapsed_s, 3)
        summary["environment"] = environment()
        write_json(self.path / "summary.json", summary)
        write_json(self.path / "status.json", {"state": "complete", "finished": time.time(), "elapsed_s": round(elapsed_s, 3)})

    def fail(self, exc: BaseException) -> None:
        """Marks the run as failed (or interrupted), with the error, keeping whatever was written."""
        state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        write_json(self.path / "status.json", {
            "state": state,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exception(exc)[-5:],
            "finished": time.time(),
        })


def load_run(path: str | os.PathLike) -> tuple[dict[str, Any], xr.Dataset | None, dict[str, Any] | None, dict[str, Any]]:
    """Reads a run directory.

    Returns:
        (config.json contents, the Dataset or None, summary.json or None, status.json).
    """
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    status = json.loads((path / "status.json").read_text()) if (path / "status.json").exists() else {"state": "unknown"}
    dataset = xr.load_dataset(path / "results.nc", engine=NETCDF_ENGINE) if (path / "results.nc").exists() else None
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").exists() else None
    return config, dataset, summary, status
