"""The recording plan: what :func:`jaxdyn.engine.train` records, and how often, inside its scan.

In the manner of diffrax's ``SaveAt``, a plan is a tuple of :class:`Record` groups, each a set of
observables with its own cadence::

    plan = (Record({"metrics": epoch_metrics}, every=steps_per_epoch, dim="epoch"),
            Record({"spectra": weight_spectra}, every=10 * steps_per_epoch, dim="spectrum_epoch"))

Every group records at step 0 and every ``every`` steps; all groups run in one compiled scan over
ticks of the smallest cadence, a group whose cadence is a multiple of it being evaluated (inside a
``lax.cond`` on the step, which stays a branch under ``vmap`` because the step is the same for all
members) only at its own steps. Nothing is computed on the host between chunks.

An observable is a function of a :class:`~jaxdyn.engine.Snapshot` returning an array, or a mapping
of named arrays computed from one forward pass (each entry a record of its own); it must be
hashable (a module-level function or a frozen dataclass), so the compiled program is reused.
:func:`observable` declares the names of its output axes (for ``EnsembleResult.to_dataset``) and
their units.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class Record:
    """One group of observables recorded every ``every`` steps (and at step 0).

    Args:
        observables: ``{name: fn(snapshot) -> array or {record name: array}}``.
        every: steps between records (positive; must divide the number of steps).
        dim: the name of this group's time axis in datasets (``"time"`` by default; each group
            of a plan needs its own).
    """

    observables: tuple[tuple[str, Callable], ...]
    every: int = 1
    dim: str = "time"

    def __init__(self, observables: Mapping[str, Callable] | Sequence[tuple[str, Callable]], every: int = 1, dim: str = "time"):
        items = tuple(observables.items()) if isinstance(observables, Mapping) else tuple(observables)
        object.__setattr__(self, "observables", items)
        object.__setattr__(self, "every", every)
        object.__setattr__(self, "dim", dim)

    def names(self) -> tuple[str, ...]:
        """The names of the group's observables (the keys of ``observables``), in the order given."""
        return tuple(name for name, _ in self.observables)


Plan = tuple
"""A recording plan: a tuple of :class:`Record` groups, as :func:`as_plan` returns it."""


def as_plan(record: Record | Sequence[Record] | None, observables: Mapping[str, Callable] | None, record_every: int | None) -> tuple[Record, ...]:
    """The recording plan from ``train``'s arguments: ``record=`` (a Record or several), or the
    shorthand ``observables=`` with ``record_every=`` (one group, dim ``"time"``)."""
    if record is not None and observables is not None:
        raise ValueError("record, observables: give a recording plan (record=) or observables= with record_every=, not both")
    if record is None:
        return (Record(dict(observables or {}), every=1 if record_every is None else record_every),)
    if record_every is not None:
        raise ValueError("record_every: with record= each Record carries its own cadence (Record(..., every=k))")
    plan = (record,) if isinstance(record, Record) else tuple(record)
    if not plan or not all(isinstance(r, Record) for r in plan):
        raise ValueError(f"record: expected a jaxdyn.engine.Record or a sequence of them, got {record!r}")
    return plan


def validate_plan(plan: tuple[Record, ...], num_steps: int) -> None:
    """Checks cadences, dims and names. Raises ValueError naming the group or observable."""
    dims = [r.dim for r in plan]
    if len(set(dims)) != len(dims):
        raise ValueError(f"record: each Record needs its own dim (the name of its time axis), got {dims}")
    seen: set[str] = set()
    for r in plan:
        if not isinstance(r.every, int) or isinstance(r.every, bool) or r.every < 1:
            raise ValueError(f"record[{r.dim!r}].every: expected a positive int, got {r.every!r}")
        if num_steps % r.every:
            raise ValueError(f"record_every: must divide num_steps ({num_steps}), got {r.every}" if len(plan) == 1 else
                             f"record[{r.dim!r}].every: must divide num_steps ({num_steps}), got {r.every}")
        if not isinstance(r.dim, str) or not r.dim or r.dim == "seed":
            raise ValueError(f"record: dim must be a non-empty name other than 'seed', got {r.dim!r}")
        for name, fn in r.observables:
            if not isinstance(name, str) or not name:
                raise ValueError(f"observables: names must be non-empty strings, got {name!r}")
            if not callable(fn):
                raise ValueError(f"observables[{name!r}]: expected a callable of a Snapshot")
            if name in seen:
                raise ValueError(f"observables[{name!r}]: recorded twice in the plan")
            seen.add(name)
            try:
                hash(fn)
            except TypeError:
                raise ValueError(f"observables[{name!r}]: not hashable ({type(fn).__name__}); use a module-level function "
                                 "or a frozen dataclass so the compiled program can be reused") from None
    tick = math.gcd(*[r.every for r in plan])
    if tick not in [r.every for r in plan]:
        raise ValueError(f"record: the cadences {[r.every for r in plan]} need a smallest one that divides the others")


def tick_of(plan: tuple[Record, ...]) -> int:
    """The scan's tick: the smallest cadence (every other cadence is a multiple of it)."""
    return min(r.every for r in plan)


def period_of(plan: tuple[Record, ...]) -> int:
    """The least common multiple of the cadences: chunks are whole multiples of it."""
    return math.lcm(*[r.every for r in plan])


def observable(*, dims: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
               attrs: Mapping[str, Any] | Mapping[str, Mapping[str, Any]] | None = None):
    """Declares an observable's output axes and variable attributes (for datasets).

    Args:
        dims: the names of the output's axes after ``(seed, time)``; for an observable returning
            a mapping, ``{record name: dims}``.
        attrs: netCDF attributes (``units``, ``long_name``) of the output; for a mapping,
            ``{record name: attrs}``.

    Returns:
        A decorator that sets ``fn.dims`` and ``fn.attrs`` and returns ``fn`` itself (so a
        module-level function stays hashable by identity).
    """

    def wrap(fn):
        fn.dims = dims
        fn.attrs = attrs
        return fn

    return wrap


def declared(fn: Callable, record_name: str, is_mapping: bool, attribute: str) -> Any:
    """An observable's declared ``dims`` or ``attrs`` for one of its records (None if none)."""
    value = getattr(fn, attribute, None)
    if value is None:
        return None
    if is_mapping:
        return value.get(record_name) if isinstance(value, Mapping) else None
    return value
