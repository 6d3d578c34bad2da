"""The claim contract: every claim an experiment makes, in one form the run layer, the CLI and
the report read.

A claim is evidence only if it could have come out the other way, so each one records:

* its ``kind``: ``paper`` (with a short quote of the source and where it stands: :func:`source`),
  ``extension`` (the project's own, with ``why``), or ``sanity`` (true by construction or a check
  of the code, with ``why``; never counted as the paper's);
* its value, the comparison and threshold it is held against, and where the threshold comes from;
* for ensemble claims (:func:`per_seed`): the value of every seed, the fraction of seeds for which
  the claim holds (the verdict is taken on that fraction, never on a seed mean that no seed
  shows), and the margin to the threshold in seed-bootstrap standard errors;
* for claims about learning: the value at initialisation beside the final value;
* how many members were left out of it, and why.

:func:`check` makes a claim on one number (a condition sweep, a pooled fit), :func:`per_seed` one
decided seed by seed. Both return a :class:`Claim`; ``Claim.to_dict()`` is its JSON form in
``summary.json`` (NaN and infinities become null).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

KINDS = ("paper", "extension", "sanity")
"""The kinds a :class:`Claim` may have: ``paper`` (a quoted statement of the source), ``extension``
(the project's own, with ``why``), ``sanity`` (true by construction or a check of the code; never
counted as the paper's). :func:`tally` counts claims in this order."""
_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


class ClaimError(ValueError):
    """A claim that does not follow the contract (unknown kind, a paper claim without its quote)."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a paper claim stands in its source.

    Attributes:
        quote: a short quote of the statement tested.
        where: where it stands (section, figure, panel, equation).
    """

    quote: str
    where: str


def source(quote: str, where: str) -> Source:
    """A :class:`Source` for a ``paper`` claim."""
    if not quote or not where:
        raise ClaimError("source: a paper claim needs a quote and where it stands in the source")
    return Source(quote=quote, where=where)


def _finite_or_none(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim checked against a measured number (see the module docstring).

    Attributes:
        id: unique within the experiment (an anchor: letters, digits, ``-``).
        statement: the claim, in words, with what is measured.
        kind: ``paper``, ``extension`` or ``sanity``.
        held: the verdict.
        value: the decisive statistic (for per-seed claims the median over seeds).
        comparison: ``>``, ``>=``, ``<``, ``<=``, or None for a claim without a threshold.
        threshold: what the value is held against.
        threshold_source: where the threshold comes from.
        source: the quote and its place, for ``paper`` claims.
        why: for ``extension`` and ``sanity`` claims: why the project makes it.
        reading: how the code reads an open statement (a limit, an asymptote), and why.
        per_seed: (seed,) values, for ensemble claims; None otherwise.
        seed_held: (seed,) verdicts per seed (False where a seed was excluded).
        fraction_held: the fraction of included seeds that hold.
        required_fraction: the fraction needed for the claim to hold.
        margin_se: (value - threshold) in standard errors, signed so that > 0 is the held side.
        initial: the value at initialisation (claims about learning).
        initial_per_seed: (seed,) values at initialisation.
        excluded: members left out (non-finite values, diverged members).
        excluded_reason: why.
    """

    id: str
    statement: str
    kind: str
    held: bool
    value: float | None
    comparison: str | None = None
    threshold: float | None = None
    threshold_source: str | None = None
    source: Source | None = None
    why: str | None = None
    reading: str | None = None
    per_seed: tuple[float, ...] | None = None
    seed_held: tuple[bool, ...] | None = None
    fraction_held: float | None = None
    required_fraction: float | None = None
    margin_se: float | None = None
    initial: float | None = None
    initial_per_seed: tuple[float, ...] | None = None
    excluded: int = 0
    excluded_reason: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ClaimError(f"{self.id}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "paper" and self.source is None:
            raise ClaimError(f"{self.id}: a paper claim needs source=claims.source(quote, where)")
        if self.kind != "paper" and not self.why:
            raise ClaimError(f"{self.id}: an {self.kind} claim needs why= (why the project makes it, or why it holds by construction)")
        if self.comparison is not None and self.comparison not in _COMPARE:
            raise ClaimError(f"{self.id}: comparison must be one of {', '.join(_COMPARE)}, got {self.comparison!r}")
        if self.comparison is not None and not self.threshold_source:
            raise ClaimError(f"{self.id}: a threshold needs threshold_source= (where it comes from)")
        if not self.id or not all(c.isalnum() or c in "-_" for c in self.id):
            raise ClaimError(f"claim id {self.id!r}: use letters, digits, '-' and '_' only (it is an anchor)")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``summary.json``): every key present, NaN and infinities as null."""
        seq = lambda xs: None if xs is None else [_finite_or_none(x) for x in xs]  # noqa: E731
        return {
            "id": self.id,
            "statement": self.statement,
            "kind": self.kind,
            "source": None if self.source is None else {"quote": self.source.quote, "where": self.source.where},
            "why": self.why,
            "reading": self.reading,
            "held": bool(self.held),
            "value": _finite_or_none(self.value),
            "comparison": self.comparison,
            "threshold": _finite_or_none(self.threshold),
            "threshold_source": self.threshold_source,
            "per_seed": seq(self.per_seed),
            "seed_held": None if self.seed_held is None else [bool(x) for x in self.seed_held],
            "fraction_held": _finite_or_none(self.fraction_held),
            "required_fraction": _finite_or_none(self.required_fraction),
            "margin_se": _finite_or_none(self.margin_se),
            "initial": _finite_or_none(self.initial),
            "initial_per_seed": seq(self.initial_per_seed),
            "excluded": int(self.excluded),
            "excluded_reason": self.excluded_reason,
        }


def _sign(comparison: str) -> float:
    return 1.0 if comparison in (">", ">=") else -1.0


def check(id: str, statement: str, value: float, comparison: str | None = None, threshold: float | None = None, *,  # noqa: A002
          kind: str, threshold_source: str | None = None, source: Source | None = None, why: str | None = None,
          reading: str | None = None, se: float | None = None, initial: float | None = None, held: bool | None = None,
          excluded: int = 0, excluded_reason: str | None = None) -> Claim:
    """A claim on one number: held when ``value <comparison> threshold`` (a NaN value never holds).

    Args:
        id, statement, kind, threshold_source, source, why, reading: see :class:`Claim`.
        value: the measured number.
        comparison, threshold: the test; both None for a claim decided by ``held``.
        se: a standard error of ``value`` (e.g. a seed bootstrap of a pooled fit), giving
            ``margin_se``; None: no margin.
        initial: the value at initialisation, for claims about learning.
        held: the verdict, only for claims without a numeric test.
    """
    if comparison is not None:
        if held is not None:
            raise ClaimError(f"{id}: held is decided by the comparison; do not pass it too")
        v = float(value)
        verdict = bool(math.isfinite(v) and _COMPARE[comparison](v, float(threshold)))
        margin = None
        if se is not None and math.isfinite(v) and _resolved_se(float(se), v, float(threshold)):
            margin = _sign(comparison) * (v - float(threshold)) / float(se)
    else:
        if held is None:
            raise ClaimError(f"{id}: a claim without a comparison needs held=")
        verdict, margin = bool(held), None
    return Claim(id=id, statement=statement, kind=kind, held=verdict, value=_finite_or_none(value), comparison=comparison,
                 threshold=_finite_or_none(threshold), threshold_source=threshold_source, source=source, why=why,
                 reading=reading, margin_se=margin, initial=_finite_or_none(initial), excluded=int(excluded),
                 excluded_reason=excluded_reason)


def _resolved_se(se: float, value: float, threshold: float) -> bool:
    """Whether ``se`` is a spread at all: finite and above float64 rounding of the numbers it
    divides (seeds that agree to rounding give an SE of 1e-17 and a margin of 1e15 SE, which
    says nothing; no margin is given then)."""
    return math.isfinite(se) and se > 1e-12 * max(1.0, abs(value), abs(threshold))


def bootstrap_se(values: Sequence[float], statistic=np.median, n_boot: int = 2000, seed: int = 0) -> float:
    """The seed-bootstrap standard error of ``statistic`` over ``values`` (resampling seeds)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    draws = x[rng.integers(0, x.size, size=(n_boot, x.size))]
    return float(np.std(statistic(draws, axis=1), ddof=1))


def per_seed(id: str, statement: str, values: Sequence[float], comparison: str, threshold: float, *, kind: str,  # noqa: A002
             threshold_source: str, required_fraction: float = 1.0, source: Source | None = None, why: str | None = None,
             reading: str | None = None, initial: Sequence[float] | None = None, include: Sequence[bool] | None = None,
             excluded_reason: str | None = None, n_boot: int = 2000, seed: int = 0) -> Claim:
    """A claim decided seed by seed: it holds when at least ``required_fraction`` of the included
    seeds hold ``value_s <comparison> threshold``.

    Args:
        values: (seed,) the per-seed values.
        comparison, threshold, threshold_source: the per-seed test and where its threshold
            comes from.
        required_fraction: the fraction of seeds that must hold (1.0: every seed; say in the
            statement when less, and why).
        initial: (seed,) the values at initialisation (claims about learning).
        include: (seed,) False for members left out (diverged, undefined input); non-finite
            values are left out too. ``excluded_reason`` says why.
        n_boot, seed: the seed bootstrap of the median, for ``margin_se``.

    Returns:
        A :class:`Claim` whose ``value`` is the median over included seeds.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = np.isfinite(v) if include is None else (np.asarray(include, bool).reshape(-1) & np.isfinite(v))
    if not 0.0 < required_fraction <= 1.0:
        raise ClaimError(f"{id}: required_fraction must be in (0, 1], got {required_fraction}")
    test = _COMPARE[comparison]
    seed_held = np.array([bool(k and test(x, threshold)) for x, k in zip(v, keep)])
    n_in = int(keep.sum())
    fraction = float(seed_held[keep].mean()) if n_in else float("nan")
    held = bool(n_in > 0 and fraction >= required_fraction - 1e-12)
    med = float(np.median(v[keep])) if n_in else float("nan")
    se = bootstrap_se(v[keep], n_boot=n_boot, seed=seed) if n_in >= 2 else float("nan")
    margin = _sign(comparison) * (med - threshold) / se if (n_in >= 2 and _resolved_se(se, med, threshold)) else None
    n_out = int((~keep).sum())
    reason = excluded_reason
    if n_out and reason is None:
        reason = f"{n_out} member(s) with a non-finite value"
    init = None if initial is None else np.asarray(initial, dtype=np.float64).reshape(-1)
    return Claim(id=id, statement=statement, kind=kind, held=held, value=med, comparison=comparison, threshold=float(threshold),
                 threshold_source=threshold_source, source=source, why=why, reading=reading,
                 per_seed=tuple(float(x) for x in v), seed_held=tuple(bool(x) for x in seed_held),
                 fraction_held=fraction, required_fraction=float(required_fraction), margin_se=margin,
                 initial=None if init is None else (float(np.median(init[np.isfinite(init)])) if np.isfinite(init).any() else None),
                 initial_per_seed=None if init is None else tuple(float(x) for x in init),
                 excluded=n_out, excluded_reason=reason if n_out else None)


def leaving_out(found: Sequence[Claim], included: Sequence[bool], reason: str) -> list[Claim]:
    """``found``, computed on the included members only, with the members an analysis dropped
    before them put back as left out.

    Args:
        found: claims whose per-seed arrays (if any) hold the included members, in order.
        included: (seed,) bool over every member; False for those the analysis left out.
        reason: why they were left out (added to each claim's ``excluded_reason``).

    Returns:
        The claims with ``per_seed`` / ``seed_held`` / ``initial_per_seed`` over every member
        (NaN / False where left out, so index s is seed s) and ``excluded`` counting them.
    """
    mask = np.asarray(included, bool).reshape(-1)
    n_out = int((~mask).sum())
    if not n_out:
        return list(found)

    def spread(values, fill):
        if values is None:
            return None
        if len(values) != int(mask.sum()):
            raise ClaimError(f"leaving_out: {len(values)} per-seed values for {int(mask.sum())} included members")
        full = [fill] * mask.size
        for i, v in zip(np.flatnonzero(mask), values):
            full[i] = v
        return tuple(full)

    why = f"{n_out} member(s) left out: {reason}"
    return [dataclasses.replace(c, per_seed=spread(c.per_seed, float("nan")), seed_held=spread(c.seed_held, False),
                                initial_per_seed=spread(c.initial_per_seed, float("nan")), excluded=c.excluded + n_out,
                                excluded_reason="; ".join(r for r in (c.excluded_reason, why) if r))
            for c in found]


def tally(claims: Sequence[Claim | dict]) -> dict[str, list[int]]:
    """``{kind: [held, total]}`` over ``claims`` (Claims or their dicts)."""
    out = {k: [0, 0] for k in KINDS}
    for c in claims:
        kind, held = (c["kind"], c["held"]) if isinstance(c, dict) else (c.kind, c.held)
        out.setdefault(kind, [0, 0])
        out[kind][1] += 1
        out[kind][0] += int(bool(held))
    return out
