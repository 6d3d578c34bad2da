"""jaxdyn: seed-ensemble training, empirical kernels and reduced theories of deep-network learning.

One namespace for users: ``jaxdyn.train`` (the engine), ``jaxdyn.run`` (an experiment by name,
as the CLI runs it), and the subpackages ``engine``, ``models``, ``tasks``, ``theory``,
``analysis``, ``experiments``, ``claims``, ``ntk``. Subpackages are imported on first use, so
``import jaxdyn`` (and the ``jaxdyn`` command's ``--help`` and ``list``) does not import JAX.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

_SUBMODULES = ("analysis", "claims", "engine", "experiments", "models", "ntk", "plots", "store", "tasks", "theory")
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
