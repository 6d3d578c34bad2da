"""What every experiment shares: a validated configuration, a result, and a registry.

An experiment is a :class:`Config` dataclass (paper defaults, a ``quick`` preset for tests) and
a ``run(config, ctx) -> Result`` function that wires tasks, models, the engine, theory and
analysis together. Fields declare their constraints with :func:`param`; :meth:`Config.validate`
checks every field before anything compiles, and :meth:`Config.with_overrides` parses the CLI's
``--set field=value`` strings by the field's declared type.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple


class ConfigError(ValueError):
    """An invalid configuration value. The message names the field and what is allowed."""


def param(default: Any, help: str, *, min: float | None = None, max: float | None = None,  # noqa: A002
          choices: Sequence[Any] | None = None, min_len: int = 1, max_len: int | None = None,
          min_exclusive: bool = False, unique: bool = False):
    """A configuration field with its documentation and constraints.

    Args:
        default: default value (tuples for sequence fields).
        help: one line shown by ``jaxdyn run NAME --help-config``.
        min, max: inclusive bounds for numbers, and for each element of a tuple field.
        choices: allowed values.
        min_len, max_len: length bounds for tuple fields.
        min_exclusive: make ``min`` exclusive (for strictly positive quantities).
        unique: a tuple field whose values must be distinct (epochs, conditions).
    """
    meta = dict(help=help, min=min, max=max, choices=None if choices is None else tuple(choices),
                min_len=min_len, max_len=max_len, min_exclusive=min_exclusive, unique=unique)
    return dataclasses.field(default=default, metadata=meta)


_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _did_you_mean(name: str, names) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _element_type(tp) -> type:
    args = typing.get_args(tp)
    return args[0] if args else float


def _is_tuple_type(tp) -> bool:
    return typing.get_origin(tp) is tuple or tp is tuple


def _check_scalar(name: str, value: Any, tp: type, meta: Mapping[str, Any], where: str = "") -> Any:
    """Type- and range-checks one scalar, returning it converted (int -> float where declared)."""
    label = f"{name}{where}"
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{label}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{label}: expected an integer, got {value!r}")
        if not -(2**63) <= value < 2**63:  # stored in results.nc as int64
            raise ConfigError(f"{label}: must fit in a 64-bit integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{label}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{label}: expected a finite number, got {value!r}")
        # The engine computes in float32: a value that becomes 0 or infinity there is not the
        # value asked for.
        if value != 0.0 and abs(value) < _FLOAT32_SMALLEST:
            raise ConfigError(f"{label}: {value!r} rounds to 0 in float32 (the engine's precision); use at least {_FLOAT32_SMALLEST:.3g}")
        if abs(value) > _FLOAT32_MAX:
            raise ConfigError(f"{label}: {value!r} overflows float32 (the engine's precision); at most {_FLOAT32_MAX:.3g}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{label}: expected a string, got {value!r}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None:
        if meta.get("min_exclusive") and not value > lo:
            raise ConfigError(f"{label}: must be > {lo}, got {value!r}")
        if not meta.get("min_exclusive") and not value >= lo:
            raise ConfigError(f"{label}: must be >= {lo}, got {value!r}")
    if hi is not None and not value <= hi:
        raise ConfigError(f"{label}: must be <= {hi}, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{label}: must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


_FLOAT32_SMALLEST, _FLOAT32_MAX = 1.1754944e-38, 3.4028235e38  # smallest normal, largest finite


def _parse_scalar(name: str, text: str, tp: type) -> Any:
    text = text.strip()
    if tp in (int, float) and not text.isascii():
        # int() and float() accept other scripts' digits (fullwidth, Arabic-Indic): not here.
        raise ConfigError(f"{name}: expected {'an integer' if tp is int else 'a number'} in ASCII digits, got {text!r}")
    if tp is not str and text == "":
        raise ConfigError(f"{name}: empty value")
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"{name}: expected true or false, got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {text!r}") from None
    return text


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every experiment configuration. Subclasses declare fields with :func:`param`.

    ``seeds`` and ``quick`` semantics are up to each experiment; ``check`` holds cross-field
    rules (raise :class:`ConfigError` naming the field).
    """

    def __post_init__(self):
        self.validate()

    @classmethod
    def quick(cls) -> Config:
        """A small preset that runs in seconds (tests, smoke runs). Default: the defaults."""
        return cls()

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        """``{field name: type}`` of every dataclass field, in declaration order, with string
        annotations resolved (``typing.get_type_hints``)."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    def validate(self) -> None:
        """Checks every field's type and range, then :meth:`check`. Raises :class:`ConfigError`."""
        types = self.field_types()
        for f in dataclasses.fields(self):
            value, tp, meta = getattr(self, f.name), types[f.name], f.metadata
            if _is_tuple_type(tp):
                if isinstance(value, list):
                    value = tuple(value)
                    object.__setattr__(self, f.name, value)
                if not isinstance(value, tuple):
                    raise ConfigError(f"{f.name}: expected a list of values, got {value!r}")
                if len(value) < meta.get("min_len", 1) or (meta.get("max_len") and len(value) > meta["max_len"]):
                    raise ConfigError(f"{f.name}: expected between {meta.get('min_len', 1)} and {meta.get('max_len') or 'any number of'} values, got {len(value)}")
                elem = _element_type(tp)
                checked = tuple(_check_scalar(f.name, v, elem, meta, f"[{i}]") for i, v in enumerate(value))
                if meta.get("unique") and len(set(checked)) != len(checked):
                    repeated = next(v for i, v in enumerate(checked) if v in checked[:i])
                    raise ConfigError(f"{f.name}: values must be distinct, {repeated!r} is repeated")
                object.__setattr__(self, f.name, checked)
            else:
                object.__setattr__(self, f.name, _check_scalar(f.name, value, tp, meta))
        self.check()

    def check(self) -> None:
        """Cross-field rules; override in subclasses."""

    def to_dict(self) -> dict[str, Any]:
        """``{field name: value}`` of every field, tuples as lists: the JSON form :meth:`from_dict` reads back."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Config:
        """A config from a mapping (e.g. a saved config.json); unknown keys are rejected."""
        names = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in names:
                raise ConfigError(f"{key}: unknown field; the fields are {', '.join(sorted(names))}")
        return cls(**values)

    def with_overrides(self, assignments: Sequence[str]) -> Config:
        """Applies ``field=value`` strings (the CLI's ``--set``), parsed by each field's type.

        Tuple fields take comma-separated values (``deltas=5,10,20``).
        """
        types = self.field_types()
        values: dict[str, Any] = {}
        seen: set[str] = set()
        for item in assignments:
            if "=" not in item:
                raise ConfigError(f"--set {item!r}: expected field=value")
            name, text = item.split("=", 1)
            name = name.strip()
            if not name:
                raise ConfigError(f"--set {item!r}: expected field=value, the field name is empty")
            if name not in types:
                raise ConfigError(f"{name}: unknown field{_did_you_mean(name, types)}; the fields are {', '.join(sorted(types))}")
            if name in seen:
                raise ConfigError(f"--set {name}: given twice; give each field once")
            seen.add(name)
            tp = types[name]
            if _is_tuple_type(tp):
                parts = text.split(",")
                if len(parts) > 1 and parts[-1].strip() == "":
                    parts = parts[:-1]  # a trailing comma: "5,10,"
                values[name] = tuple(_parse_scalar(f"{name}[{i}]", p, _element_type(tp)) for i, p in enumerate(parts))
            else:
                values[name] = _parse_scalar(name, text, tp)
        return dataclasses.replace(self, **values)

    def with_file(self, path: str) -> Config:
        """Applies the fields of a JSON or TOML file (a mapping ``{field: value}``), validated as
        construction validates them. Raises :class:`ConfigError` naming the file (and the field)."""
        from pathlib import Path

        file = Path(path)
        try:
            text = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--config: cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            if file.suffix.lower() == ".toml":
                import tomllib

                values = tomllib.loads(text)
            else:
                import json

                values = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"--config: {file} is not valid {'TOML' if file.suffix.lower() == '.toml' else 'JSON'}: {exc}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"--config: {file} must hold a mapping of field names to values")
        values.pop("experiment", None)  # a saved config.json: {"experiment": ..., "config": {...}}
        values = values.get("config", values) if isinstance(values.get("config"), dict) else values
        types = self.field_types()
        for key in values:
            if key not in types:
                raise ConfigError(f"--config: {file}: {key}: unknown field{_did_you_mean(key, types)}")
        try:
            return dataclasses.replace(self, **values)
        except ConfigError as exc:
            raise ConfigError(f"--config: {file}: {exc}") from None

    @classmethod
    def describe(cls) -> list[str]:
        """One line per field: name, type, default, constraints, help."""
        lines = []
        types = cls.field_types()
        for f in dataclasses.fields(cls):
            m = f.metadata
            bounds = []
            if m.get("min") is not None:
                bounds.append(f"{'>' if m.get('min_exclusive') else '>='} {m['min']}")
            if m.get("max") is not None:
                bounds.append(f"<= {m['max']}")
            if m.get("choices"):
                bounds.append("one of " + "/".join(map(str, m["choices"])))
            tp = types[f.name]
            tname = f"list of {_element_type(tp).__name__}" if _is_tuple_type(tp) else tp.__name__
            lines.append(f"{f.name} ({tname}, default {f.default!r}{'; ' + ', '.join(bounds) if bounds else ''}): {m.get('help', '')}")
        return lines


class Figure(NamedTuple):
    """A figure of an experiment with its one-line caption (shown under it in the report).

    Attributes:
        figure: a matplotlib Figure.
        caption: what it shows, in one line.
    """

    figure: Any
    caption: str


class Result(NamedTuple):
    """What an experiment's ``run`` returns; the run layer (:mod:`jaxdyn.store`) writes it.

    Attributes:
        dataset: xarray Dataset with named dims (``seed`` first for the ensemble): every raw
            array and parameter needed to recompute each claim without jaxdyn.
        claims: the :class:`jaxdyn.claims.Claim` list (the claim contract).
        figures: ``{file stem: Figure}``.
        numbers: headline numbers (JSON-serialisable; NaN is written as null).
    """

    dataset: Any
    claims: list
    figures: dict[str, Figure]
    numbers: dict[str, Any]


class Experiment(NamedTuple):
    """A registered experiment: wiring only.

    ``run(config, ctx) -> Result`` wires tasks, models, learners, the engine (through
    ``ctx.train``, which binds progress, checkpoints, the memory guard and the executor), theory
    and analysis together; the run layer stamps the experiment's name, serialises the claims,
    counts the members left out and writes the run folder.

    Attributes:
        name: the CLI name, e.g. ``saxe-reduction``.
        work: which source work it reproduces.
        description: one line for ``jaxdyn list``.
        config: its :class:`Config` subclass.
        run: ``run(config, ctx) -> Result``.
    """

    name: str
    work: str
    description: str
    config: type[Config]
    run: Callable[..., Result]
