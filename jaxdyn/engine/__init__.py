"""The seed-ensemble engine: :func:`train` and what it takes and returns.

One call trains every member of an ensemble in one compiled program; each concern is a named
argument: the learner (:class:`GradientLearner` of a flax model, loss and :func:`optimizer`, or
any :class:`Learner`), the task (:class:`Task`), the recording plan (:class:`Record`), seeds and
per-member hyperparameters, devices, chunks and checkpoints (:class:`Checkpointer`). Executors
(:class:`LocalExecutor`, :class:`RayExecutor`) are a layer above it with the same arguments.
"""

from jaxdyn.engine import losses, observables
from jaxdyn.engine.checkpoint import Checkpointer, CheckpointError
from jaxdyn.engine.core import (
    EngineConfigError,
    EnsembleResult,
    EnsembleState,
    Members,
    MemoryEstimate,
    ResourceError,
    Snapshot,
    Task,
    TrainCall,
    TrainSpec,
    default_block_width,
    init_ensemble,
    member_keys,
    prepare,
    run_call,
    run_chunk,
    train,
)
from jaxdyn.engine.executor import Executor, LocalExecutor, RayExecutor
from jaxdyn.engine.learners import GradientLearner, GradientState, Learner, LinearizedLearner, LinearizedState, Optimizer, hparam, optimizer
from jaxdyn.engine.recording import Record, observable

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "EngineConfigError",
    "EnsembleResult",
    "EnsembleState",
    "Executor",
    "GradientLearner",
    "GradientState",
    "Learner",
    "LinearizedLearner",
    "LinearizedState",
    "LocalExecutor",
    "Members",
    "MemoryEstimate",
    "Optimizer",
    "RayExecutor",
    "Record",
    "ResourceError",
    "Snapshot",
    "Task",
    "TrainCall",
    "TrainSpec",
    "default_block_width",
    "hparam",
    "init_ensemble",
    "losses",
    "member_keys",
    "observable",
    "observables",
    "optimizer",
    "prepare",
    "run_call",
    "run_chunk",
    "train",
]
