"""Tasks: generated or loaded data, in the engine's :class:`~jaxdyn.engine.Task` form.

The task families are submodules (``digits``, ``faces``, ``neurashed``, ``perceptual``, ``rbe``),
imported on first use (``jaxdyn.tasks.rbe`` or ``from jaxdyn.tasks import faces``).
"""

from __future__ import annotations

import importlib

from jaxdyn.engine.core import Task

SUBMODULES = ("digits", "faces", "neurashed", "perceptual", "rbe")
"""The task submodules, by name."""

__all__ = ["Task", "digits", "faces", "full_batch", "neurashed", "perceptual", "rbe"]


def full_batch(data, key, step):
    """A ``Task.batch`` for full-batch training: every step sees all of ``data`` (``x``, ``y``, ...)."""
    del key, step
    return data


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"jaxdyn.tasks.{name}")
    raise AttributeError(f"module 'jaxdyn.tasks' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
