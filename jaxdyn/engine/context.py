"""The run context an experiment trains through: execution options bound once, never results.

An experiment's ``run(config, ctx)`` calls ``ctx.train(...)`` with exactly the arguments of
:func:`jaxdyn.engine.train` that describe *what* to train; the context adds *how*: progress
reporting, checkpoints (with resume), the memory guard and the executor (this process, chunks of
members one after the other, or a Ray cluster). None of these changes a result, so an experiment
never forwards them by hand. ``ctx.stage("theory")`` reports what the run is doing between
training calls (the CLI prints it).

The run layer (:mod:`jaxdyn.store`) builds the context of a run folder; ``RunContext()`` is the
plain one (this process, no checkpoints, no progress) for calling an experiment from Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from jaxdyn.engine import core
from jaxdyn.engine.checkpoint import Checkpointer
from jaxdyn.engine.executor import Executor

_OWNED = ("progress", "checkpoint", "memory_check", "block_width")


@dataclasses.dataclass
class RunContext:
    """Execution options of one run (see the module docstring).

    Attributes:
        progress: a progress bar per training call (True), a callable ``progress(done, total)``
            (member-steps), or False.
        checkpoint: the run's :class:`~jaxdyn.engine.checkpoint.Checkpointer` (it numbers the
            training calls of the run), or None.
        memory_check: the engine's memory guard.
        executor: where the members of each training call run (None: this process).
        on_stage: called with a short message when the run enters a stage (``"training"``,
            ``"theory"``, ``"analysis"``, ``"figures"``).
        block_width: members per block of every training call (None: the engine's default for
            the model and backend). Unlike the other options it is part of what the results
            depend on (at float rounding), so the run layer records it and a resume checks it.
        calls: what each training call of the run did (``EnsembleResult.engine``: block width,
            devices, padded members), appended as they finish.
    """

    progress: Any = False
    checkpoint: Checkpointer | None = None
    memory_check: bool = True
    executor: Executor | None = None
    on_stage: Callable[[str], None] | None = None
    block_width: int | str | None = None
    calls: list = dataclasses.field(default_factory=list)

    def train(self, learner, task, optimizer=None, **kwargs) -> core.EnsembleResult:
        """:func:`jaxdyn.engine.train` with this context's options (progress, checkpoint,
        memory guard, executor). Raises EngineConfigError when one of those is passed too."""
        for name in _OWNED:
            if name in kwargs:
                raise core.EngineConfigError(f"{name}: set by the run context; do not pass it to ctx.train")
        options = {"progress": self.progress, "checkpoint": self.checkpoint, "memory_check": self.memory_check,
                   "block_width": self.block_width}
        self.stage("training")
        if self.executor is not None:
            result = self.executor.train(learner, task, optimizer, **kwargs, **options)
        else:
            result = core.train(learner, task, optimizer, **kwargs, **options)
        self.calls.append(dict(result.engine))
        return result

    def stage(self, message: str) -> None:
        """Reports the stage the run is in (no effect without ``on_stage``)."""
        if self.on_stage is not None:
            self.on_stage(message)
