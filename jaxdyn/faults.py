"""Fault injection for the kill harness (``tests/kill_harness.py``): SIGKILL at a named moment.

Nothing here acts unless the environment variable ``JAXDYN_KILL_AT`` names a point, as
``POINT`` or ``POINT#K`` (the K-th time the process reaches it). The points are the moments a kill
is most likely to corrupt a run folder: ``checkpoint-write`` (a checkpoint's temporary file is
written, not yet renamed), ``checkpoint-saved`` (just after the rename), ``results-write``,
``summary-write``, ``figure-write`` (the same, for results.nc, summary.json and each PNG) and
``status-write``. SIGKILL cannot be caught, so what the harness then sees on disk is exactly
what a power cut or the out-of-memory killer would leave.
"""

from __future__ import annotations

import os
import signal

POINTS = ("checkpoint-write", "checkpoint-saved", "results-write", "summary-write", "figure-write", "status-write")
"""The named kill points: the moments the code calls :func:`kill_point` at, and the names
``JAXDYN_KILL_AT`` may give (each described in the module docstring)."""
_reached: dict[str, int] = {}  # per process: how often each point was reached (only counted when armed)


def kill_point(name: str) -> None:
    """SIGKILLs this process if ``JAXDYN_KILL_AT`` names point ``name`` (and this is its K-th time)."""
    spec = os.environ.get("JAXDYN_KILL_AT")
    if not spec:
        return
    point, _, count = spec.partition("#")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
