"""The seed-ensemble engine: :func:`train` and what it takes and returns."""

from jaxdyn.engine import losses, observables
from jaxdyn.engine.checkpoint import Checkpointer, CheckpointError
from jaxdyn.engine.core import (
    EngineConfigError,
    MemoryEstimate,
    ResourceError,
    EnsembleResult,
    EnsembleState,
    Snapshot,
    Task,
    member_keys,
    train,
)
from jaxdyn.engine.executor import Executor, LocalExecutor, RayExecutor

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "EngineConfigError",
    "MemoryEstimate",
    "ResourceError",
    "EnsembleResult",
    "EnsembleState",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "Snapshot",
    "Task",
    "losses",
    "member_keys",
    "observables",
    "train",
]
