"""jaxdyn: seed-ensemble training, empirical kernels and reduced theories of deep-network learning.

One namespace for users: ``jaxdyn.train`` (the engine), ``jaxdyn.run`` (an experiment by name,
as the CLI runs it), and the subpackages ``engine``, ``models``, ``tasks``, ``theory``,
``analysis``, ``experiments``, ``claims``, ``ntk``. Subpackages are imported on first use, so
``import jaxdyn`` (and the ``jaxdyn`` command's ``--help`` and ``list``) does not import JAX.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for static readers (type checkers, the API reference); at run time __getattr__ imports them
    from jaxdyn.engine import Task, train
    from jaxdyn.store import run


def _use_every_cpu_core() -> None:
    """One XLA host device per CPU core, so the engine shards members over every core by default.

    XLA:CPU runs one small-op program on about one core; with one host device per core the engine
    gives each device whole blocks of members (results do not depend on the device count). Set
    before JAX is imported, and only when the user set no device count: ``JAXDYN_HOST_DEVICES=N``
    chooses N (1 turns it off); a process that imported JAX first keeps its devices.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "jax" in sys.modules or "xla_force_host_platform_device_count" in flags:
        return
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    wanted = os.environ.get("JAXDYN_HOST_DEVICES", "")
    count = int(wanted) if wanted.strip().isdigit() and int(wanted) >= 1 else cores
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


_use_every_cpu_core()

__version__ = "0.2.0"

_SUBMODULES = ("analysis", "claims", "engine", "experiments", "models", "ntk", "plots", "store", "tasks", "theory")
"""The subpackages ``jaxdyn.NAME`` imported on first attribute access (module ``__getattr__``), listed in ``__all__``."""
_NAMES = {"train": ("jaxdyn.engine", "train"), "Task": ("jaxdyn.engine", "Task"), "run": ("jaxdyn.store", "run")}

__all__ = ["Task", "run", "train", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"jaxdyn.{name}")
    if name in _NAMES:
        module, attr = _NAMES[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'jaxdyn' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
