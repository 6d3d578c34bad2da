"""Experiments: one module per experiment, and the registry the CLI reads."""

from __future__ import annotations

from jaxdyn.experiments import saxe_reduction
from jaxdyn.experiments.base import Claim, Config, ConfigError, Experiment, RunResult, param

REGISTRY: dict[str, Experiment] = {
    e.name: e
    for e in [
        Experiment(
            name="saxe-reduction",
            work="Saxe",
            description="three-layer linear net by gradient descent vs the alpha/beta ODE; conserved (1+2a)^2/2 - b^2; beta > sqrt(2) alpha",
            config=saxe_reduction.SaxeReductionConfig,
            run=saxe_reduction.run,
        ),
    ]
}


def get(name: str) -> Experiment:
    """The registered experiment ``name``; a ``ConfigError`` listing the names otherwise."""
    if name not in REGISTRY:
        raise ConfigError(f"experiment: unknown name {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


__all__ = ["Claim", "Config", "ConfigError", "Experiment", "REGISTRY", "RunResult", "get", "param", "run"]


def run(name: str, config: Config | None = None, *, out: str | None = "runs", progress: bool = False):
    """Runs experiment ``name`` and, unless ``out`` is None, writes ``out/name/``.

    Args:
        name: a registered experiment (``jaxdyn list``).
        config: its Config; default the paper defaults.
        out: parent folder of the run directory, or None to write nothing.
        progress: show a progress bar.

    Returns:
        (RunResult, path of the run directory or None).
    """
    import time

    from jaxdyn.store import RunDir

    experiment = get(name)
    config = experiment.config() if config is None else config
    if not isinstance(config, experiment.config):
        raise ConfigError(f"config: expected a {experiment.config.__name__} for {name}, got {type(config).__name__}")
    run_dir = None
    if out is not None:
        run_dir = RunDir(out, name)
        run_dir.start(config.to_dict())
    start = time.perf_counter()
    try:
        result = experiment.run(config, progress=progress)
        if run_dir is not None:
            run_dir.finish(result, time.perf_counter() - start)
    except BaseException as exc:
        if run_dir is not None:
            run_dir.fail(exc)
        raise
    return result, None if run_dir is None else run_dir.path
