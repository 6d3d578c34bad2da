"""jaxdyn: seed-ensemble training, empirical kernels and reduced theories of deep-network learning.

One namespace for users: ``jaxdyn.train`` (the engine), ``jaxdyn.run`` (an experiment, as the
CLI runs it), and the subpackages ``engine``, ``models``, ``tasks``, ``theory``,
``experiments``.
"""

__version__ = "0.1.0"

from jaxdyn import engine, experiments, models, tasks, theory  # noqa: E402
from jaxdyn.engine import Task, train  # noqa: E402
from jaxdyn.experiments import run  # noqa: E402

__all__ = ["Task", "engine", "experiments", "models", "run", "tasks", "theory", "train"]
