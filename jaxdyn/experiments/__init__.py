"""Experiments: one module per experiment, and the registry the CLI reads."""

from __future__ import annotations

import importlib
import pkgutil

from jaxdyn.experiments.base import Claim, Config, ConfigError, Experiment, RunResult, param


def _discover() -> dict[str, Experiment]:
    """Collects ``EXPERIMENTS`` (a list of :class:`Experiment`) from every module of this package.

    A new experiment is a new module here; nothing else needs editing to register it.
    """
    found: dict[str, Experiment] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for experiment in getattr(module, "EXPERIMENTS", ()):
            if experiment.name in found:
                raise RuntimeError(f"experiment {experiment.name!r} registered twice ({info.name})")
            found[experiment.name] = experiment
    return found


REGISTRY: dict[str, Experiment] = _discover()


def get(name: str) -> Experiment:
    """The registered experiment ``name``; a ``ConfigError`` listing the names otherwise."""
    if name not in REGISTRY:
        raise ConfigError(f"experiment: unknown name {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


__all__ = ["Claim", "Config", "ConfigError", "Experiment", "REGISTRY", "RunResult", "get", "param", "run"]


def run(name: str, config: Config | None = None, *, out: str | None = "runs", progress: bool = False, **options):
    """Runs experiment ``name`` and, unless ``out`` is None, writes ``out/name/``.

    Args:
        name: a registered experiment (``jaxdyn list``).
        config: its Config; default the paper defaults.
        out: parent folder of the run directory, or None to write nothing (no checkpoints).
        progress: show a progress bar.
        **options: with ``out``, the run-directory options of :func:`jaxdyn.store.run_experiment`
            (``resume``, ``checkpoints``, ``checkpoint_every``, ``memory_check``); without it,
            the engine options the experiment forwards to ``train`` (``memory_check``).

    Returns:
        (RunResult, path of the run directory or None).
    """
    from jaxdyn.store import run_experiment

    experiment = get(name)
    config = experiment.config() if config is None else config
    if not isinstance(config, experiment.config):
        raise ConfigError(f"config: expected a {experiment.config.__name__} for {name}, got {type(config).__name__}")
    if out is None:
        return experiment.execute(config, progress=progress, **options), None
    return run_experiment(experiment, config, out, progress=progress, **options)
