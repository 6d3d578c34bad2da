"""Experiments: one module per experiment, and the registry the CLI reads.

Every module of this package (except ``base`` and names starting with ``_``) declares one
``EXPERIMENT = Experiment(name=..., work=..., description=..., config=..., run=...)``; a new
experiment is a new module here, nothing else needs editing to register it.

The registry is read without importing the modules (they import JAX): :func:`index` parses each
module's source for its ``Experiment(...)`` call and reads the literal ``name``, ``work`` and
``description``, so ``jaxdyn list`` and ``jaxdyn --help`` answer at once. :func:`get` imports the
one module asked for.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import pkgutil
from pathlib import Path
from typing import NamedTuple

from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param

__all__ = ["Config", "ConfigError", "Entry", "Experiment", "Figure", "Result", "get", "index", "param"]


class Entry(NamedTuple):
    """An experiment as the registry knows it before importing it.

    Attributes:
        name: the CLI name.
        work: the source work.
        description: one line.
        module: the module that defines it (``jaxdyn.experiments.<module>``).
    """

    name: str
    work: str
    description: str
    module: str


def _declared(path: Path) -> Entry | None:
    """The literal name, work and description of the module's ``Experiment(...)`` call."""
    stat = path.stat()
    return _declared_in(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _declared_in(path: str, mtime_ns: int, size: int) -> Entry | None:
    """:func:`_declared` of one version of the file (keyed by its modification time and size):
    parsing every module costs about 0.4 s, which a process calling ``get`` repeatedly (a notebook,
    the CLI's tests) would pay on every call."""
    tree = ast.parse(Path(path).read_text(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Experiment":
            fields = {}
            for kw in node.keywords:
                if kw.arg in ("name", "work", "description"):
                    try:
                        fields[kw.arg] = ast.literal_eval(kw.value)
                    except ValueError:
                        raise RuntimeError(f"{path}: Experiment({kw.arg}=...) must be a string literal (the registry reads it "
                                           "without importing the module)") from None
            if set(fields) != {"name", "work", "description"}:
                raise RuntimeError(f"{path}: Experiment(...) needs name=, work= and description= as keyword string literals")
            return Entry(fields["name"], fields["work"], fields["description"], Path(path).stem)
    return None


def index() -> dict[str, Entry]:
    """``{name: Entry}`` of every experiment module of this package, in name order."""
    found: dict[str, Entry] = {}
    folder = Path(__file__).parent
    for info in pkgutil.iter_modules([str(folder)]):
        if info.name.startswith("_") or info.name in ("base", "fields"):
            continue
        entry = _declared(folder / f"{info.name}.py")
        if entry is None:
            continue
        if entry.name in found:
            raise RuntimeError(f"experiment {entry.name!r} registered twice ({found[entry.name].module}, {entry.module})")
        found[entry.name] = entry
    return dict(sorted(found.items()))


def suggest(name: str, names) -> str:
    """' (did you mean X?)' for a misspelled name, or ''."""
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def get(name: str) -> Experiment:
    """The registered experiment ``name`` (its module imported); a ``ConfigError`` listing the
    names otherwise."""
    entries = index()
    if name not in entries:
        raise ConfigError(f"experiment: unknown name {name!r}{suggest(name, entries)}; available: {', '.join(entries)}")
    module = importlib.import_module(f"{__name__}.{entries[name].module}")
    experiment = getattr(module, "EXPERIMENT", None)
    if not isinstance(experiment, Experiment) or experiment.name != name:
        raise RuntimeError(f"jaxdyn.experiments.{entries[name].module}: EXPERIMENT must be the Experiment named {name!r}")
    return experiment
