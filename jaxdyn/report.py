"""``jaxdyn report``: one self-contained HTML page from run folders.

The page, top to bottom:

- an overview, one row per run: its state, preset, seeds, start date, elapsed time, and the
  claims held / total counted separately for each kind (paper, extension, sanity);
- a comparison for every experiment that two or more runs share (different configurations or
  versions): one column per run, one row per claim, and the configuration fields and versions
  that differ;
- per run: the paper's claims first, then the project's extensions, then the sanity checks
  apart; each claim with its kind, verdict, statement, source quote, reading, value against its
  threshold (and where the threshold comes from), the fraction of seeds that hold, the margin
  in seed-bootstrap standard errors, the value at initialisation, the members left out, a
  per-seed strip, and an anchor (``#<experiment>-<claim id>``); the figures with their captions;
  the configuration, versions, and the raw summary numbers folded away.

The page is rendered by jinja2 with autoescaping (templates in ``jaxdyn/templates/``), so every
string from a run folder is escaped exactly once. Figures are embedded as base64 PNG: the file
needs no network and no other file.

Run folders of the older format (claims as ``{"claim", "held", "value", "threshold"}``, headline
numbers at the top level of summary.json, no captions) still render: their claims are of kind
``unclassified`` and their figures are captioned by file name.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from jaxdyn.store import atomic_write, read_status

KINDS = ("paper", "extension", "sanity", "unclassified")
"""Claim kinds in the order the page shows them: :data:`jaxdyn.claims.KINDS`, then
``unclassified`` for a claim of a run of the older format (no kind recorded)."""
_COMPARISONS = {">": ">", ">=": "≥", "<": "<", "<=": "≤"}
# Keys of an old-format summary.json that are not headline numbers.
_SUMMARY_META = ("experiment", "work", "description", "claims", "claims_held", "figures", "skipped_members",
                 "elapsed_s", "environment", "numbers")
_VERSION_KEYS = ("jaxdyn", "jax", "backend", "devices", "python", "machine")
_MISSING = object()


@dataclass(frozen=True)
class StripDot:
    """One seed's marker in a per-seed strip (SVG user units)."""

    x: float
    y: float
    css: str
    title: str


@dataclass(frozen=True)
class Strip:
    """A tiny inline SVG of per-seed values: one dot per seed (coloured by its verdict), the
    values at initialisation as hollow dots below, and the threshold as a dashed line."""

    width: float
    height: float
    dots: tuple[StripDot, ...]
    initial_dots: tuple[StripDot, ...]
    threshold_x: float | None
    low: str
    high: str


@dataclass(frozen=True)
class ClaimView:
    """One claim of one run, normalised from either run-folder format.

    ``per_seed``, ``seed_held`` and ``initial_per_seed`` are (seeds,) lists in seed order (None
    where the claim is not an ensemble claim or the run is of the older format).
    """

    id: str
    anchor: str
    kind: str
    held: bool | None
    statement: str
    quote: str | None
    where: str | None
    why: str | None
    reading: str | None
    value: Any
    comparison: str | None
    threshold: Any
    threshold_source: str | None
    per_seed: list | None
    seed_held: list | None
    seeds_held: int | None
    seeds_total: int | None
    fraction_held: float | None
    required_fraction: float | None
    margin_se: float | None
    initial: Any
    initial_per_seed: list | None
    excluded: int
    excluded_reason: str | None
    strip: Strip | None


@dataclass(frozen=True)
class FigureView:
    """One figure of a run: ``data_uri`` is the embedded PNG (None when the file is missing)."""

    stem: str
    caption: str
    captioned: bool
    anchor: str
    data_uri: str | None


@dataclass(frozen=True)
class RunView:
    """Everything the page shows of one run folder.

    ``counts`` maps each kind in :data:`KINDS` to (held, total) computed from the claims;
    ``counts_mismatch`` says where summary.json's own ``claims_held`` disagrees with them.
    """

    path: Path
    label: str
    anchor: str
    experiment: str
    work: str | None
    description: str | None
    preset: str | None
    command: str | None
    config: dict
    state: str
    status: dict
    has_summary: bool
    old_format: bool
    seeds: str | None
    started: float | None
    elapsed_s: float | None
    versions: dict
    host: str | None
    claims: tuple[ClaimView, ...]
    counts: dict
    counts_mismatch: str | None
    figures: tuple[FigureView, ...]
    numbers_json: str | None
    members: int | None
    skipped: int
    skipped_reasons: tuple[str, ...]

    def claims_of(self, kind: str) -> list[ClaimView]:
        """The claims of ``kind``, in the order the experiment gave them."""
        return [c for c in self.claims if c.kind == kind]


@dataclass(frozen=True)
class ComparisonRow:
    """One claim across the runs of a comparison; ``cells[i]`` is run i's claim or None."""

    id: str
    anchor: str
    kind: str
    statement: str
    cells: tuple[ClaimView | None, ...]
    differs: bool


@dataclass(frozen=True)
class Comparison:
    """Two or more runs of one experiment side by side.

    ``config_diffs`` and ``version_diffs`` are (name, per-run values as text) for each
    configuration field (``preset`` included) and version that differs; ``same_versions`` names
    the versions all runs share.
    """

    experiment: str
    anchor: str
    runs: tuple[RunView, ...]
    rows: tuple[ComparisonRow, ...]
    config_diffs: tuple[tuple[str, tuple[str, ...]], ...]
    version_diffs: tuple[tuple[str, tuple[str, ...]], ...]
    same_versions: tuple[tuple[str, str], ...]


def _slug(text: Any, max_len: int = 80) -> str:
    """A fragment-safe id. One already made of lower-case letters, digits and ``._-`` is kept as
    it is (claim ids are, by contract); any other text is lower-cased with each run of other
    characters and hyphens made one hyphen, and cut to ``max_len``."""
    text = str(text)
    if re.fullmatch(r"[a-z0-9._-]+", text):
        return text
    slug = re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "x"


def _read_json(path: Path) -> dict | None:
    # A missing or half-written file (a run in progress, an old run) reads as absent.
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt_number(value: Any) -> str:
    """A number as a reader wants it: 4 significant digits; None (null in summary.json: not
    applicable, or NaN as the redesigned format writes it) as "n/a"."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(fmt_number(v) for v in value[:12])
        return f"[{shown}, ...] ({len(value)} values)" if len(value) > 12 else f"[{shown}]"
    if isinstance(value, dict):
        return json.dumps(value, default=str, allow_nan=True)
    return str(value)


def fmt_duration(seconds: Any) -> str:
    """``12.3 s``, ``4 min 05 s``, ``1 h 02 min``; "n/a" when unknown."""
    if not _finite(seconds):
        return "n/a"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def fmt_date(unix_time: Any) -> str:
    """Local date and time of a unix timestamp, to the minute; "n/a" when unknown."""
    if not _finite(unix_time):
        return "n/a"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(unix_time)))


def _strip(per_seed: Sequence | None, seed_held: Sequence | None, initial_per_seed: Sequence | None,
           threshold: Any, width: float = 240.0) -> Strip | None:
    """Lays out the per-seed strip; None when there is no finite per-seed value to draw."""
    values = list(per_seed or [])
    initial = list(initial_per_seed or [])
    finite = [v for v in values + initial if _finite(v)]
    if not any(_finite(v) for v in values):
        return None
    if _finite(threshold):
        finite.append(threshold)
    lo, hi = min(finite), max(finite)
    if hi == lo:  # one distinct value: centre it
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    margin = 8.0

    def x_of(v):
        return margin + (v - lo) / (hi - lo) * (width - 2 * margin)
    # Rows of a few pixels keep the dots of large ensembles from hiding one another.
    dots = []
    for i, v in enumerate(values):
        if not _finite(v):
            continue
        held = seed_held[i] if seed_held is not None and i < len(seed_held) else None
        css = "dot-held" if held is True else "dot-not-held" if held is False else "dot-unknown"
        verdict = "held" if held is True else "not held" if held is False else "no verdict"
        dots.append(StripDot(round(x_of(v), 2), 6.0 + 3.0 * (i % 4), css, f"seed {i}: {fmt_number(v)} ({verdict})"))
    initial_dots = tuple(StripDot(round(x_of(v), 2), 22.0 + 2.0 * (i % 2), "dot-initial", f"seed {i} at initialisation: {fmt_number(v)}")
                         for i, v in enumerate(initial) if _finite(v))
    threshold_x = round(x_of(threshold), 2) if _finite(threshold) else None
    return Strip(width, 36.0 if initial_dots else 26.0, tuple(dots), initial_dots, threshold_x, fmt_number(lo), fmt_number(hi))


def _claim_view(raw: Mapping[str, Any], anchor_prefix: str, anchor_suffix: str, used: set[str]) -> ClaimView:
    old = "claim" in raw and "statement" not in raw
    statement = str(raw.get("statement") or raw.get("claim") or "(no statement recorded)")
    claim_id = str(raw.get("id") or _slug(statement, 60))
    kind = raw.get("kind") if raw.get("kind") in KINDS[:3] else "unclassified"
    anchor = f"{anchor_prefix}-{_slug(claim_id)}{anchor_suffix}"
    base, n = anchor, 2
    while anchor in used:  # ids are unique within an experiment by contract; old ones are derived
        anchor, n = f"{base}-{n}", n + 1
    used.add(anchor)
    source = raw.get("source") if isinstance(raw.get("source"), Mapping) else {}
    seed_held = raw.get("seed_held")
    seed_held = list(seed_held) if isinstance(seed_held, (list, tuple)) else None
    per_seed = raw.get("per_seed")
    per_seed = list(per_seed) if isinstance(per_seed, (list, tuple)) else None
    initial_per_seed = raw.get("initial_per_seed")
    initial_per_seed = list(initial_per_seed) if isinstance(initial_per_seed, (list, tuple)) else None
    held = raw.get("held")
    comparison = raw.get("comparison")
    return ClaimView(
        id=claim_id,
        anchor=anchor,
        kind=kind,
        held=None if held is None else bool(held),
        statement=statement,
        quote=source.get("quote"),
        where=source.get("where"),
        why=raw.get("why"),
        reading=raw.get("reading"),
        value=raw.get("value"),
        comparison=_COMPARISONS.get(comparison, comparison) if comparison else None,
        threshold=raw.get("threshold"),
        threshold_source=raw.get("threshold_source"),
        per_seed=per_seed,
        seed_held=seed_held,
        seeds_held=sum(bool(h) for h in seed_held) if seed_held is not None else None,
        seeds_total=len(seed_held) if seed_held is not None else None,
        fraction_held=raw.get("fraction_held") if _finite(raw.get("fraction_held")) else None,
        required_fraction=raw.get("required_fraction") if _finite(raw.get("required_fraction")) else None,
        margin_se=raw.get("margin_se") if _finite(raw.get("margin_se")) else None,
        initial=raw.get("initial"),
        initial_per_seed=initial_per_seed,
        excluded=int(raw.get("excluded") or 0) if not old else 0,
        excluded_reason=raw.get("excluded_reason"),
        strip=_strip(per_seed, seed_held, initial_per_seed, raw.get("threshold")),
    )


def _counts(claims: Sequence[ClaimView]) -> dict[str, tuple[int, int]]:
    return {kind: (sum(c.held is True for c in claims if c.kind == kind), sum(c.kind == kind for c in claims)) for kind in KINDS}


def _counts_mismatch(recorded: Any, counts: Mapping[str, tuple[int, int]]) -> str | None:
    """Says where summary.json's ``claims_held`` disagrees with its own claims list."""
    if not isinstance(recorded, Mapping):
        return None
    wrong = []
    for kind, pair in recorded.items():
        actual = counts.get(kind, (0, 0))
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and tuple(pair) == actual):
            wrong.append(f"{kind}: recorded {fmt_number(pair)}, claims list {actual[0]}/{actual[1]}")
    return "; ".join(wrong) or None


def _figures(run_dir: Path, captions: Any, anchor: str) -> tuple[FigureView, ...]:
    """The figures in the order the experiment listed them, then any other PNG by name."""
    captions = captions if isinstance(captions, Mapping) else {}
    on_disk = {p.stem: p for p in sorted(run_dir.glob("*.png"))}
    stems = list(captions) + [s for s in on_disk if s not in captions]
    views = []
    for stem in stems:
        path = on_disk.get(stem)
        data = f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode('ascii')}" if path else None
        caption = captions.get(stem)
        views.append(FigureView(stem, str(caption) if caption else stem, bool(caption), f"{anchor}-fig-{_slug(stem)}", data))
    return tuple(views)


def _skipped(skipped: Any) -> tuple[int | None, int, tuple[str, ...]]:
    """(members, skipped, reasons) from either format of ``skipped_members``."""
    if not isinstance(skipped, Mapping):
        return None, 0, ()
    reasons = [f"member {r.get('member')}: {r.get('reason')}" for r in skipped.get("reasons") or [] if isinstance(r, Mapping)]
    # The older format splits them by cause.
    reasons += [f"member {r.get('member')}: diverged at step {r.get('step')}" for r in skipped.get("diverged") or [] if isinstance(r, Mapping)]
    reasons += [f"member {r.get('member')}: ODE failed ({r.get('reason')})" for r in skipped.get("ode_failed") or [] if isinstance(r, Mapping)]
    members = skipped.get("members")
    return (members if isinstance(members, int) else None), int(skipped.get("skipped") or len(reasons)), tuple(reasons)


def _versions(status: Mapping[str, Any], environment: Mapping[str, Any]) -> dict[str, str]:
    versions = {}
    for key in _VERSION_KEYS:
        value = status.get(key, environment.get(key))
        if value is not None:
            versions[key] = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return versions


def read_run(path: str | Path, *, label: str | None = None, repeated: bool = False, used_anchors: set[str] | None = None) -> RunView:
    """Reads one run folder (either format) into what the page shows of it.

    Args:
        path: the run folder (config.json, status.json, summary.json, ``*.png``; any may be missing).
        label: how the page names the run (default: the folder's name).
        repeated: another run of the same experiment is on the page, so claim anchors carry the
            run (``#<experiment>-<claim id>--<run>``) and ``#<experiment>-<claim id>`` is left to
            the comparison.
        used_anchors: anchors already on the page (updated); clashing ones get a numeric suffix.

    Returns:
        A :class:`RunView`.
    """
    path = Path(path)
    label = label or path.name
    used = used_anchors if used_anchors is not None else set()
    config = _read_json(path / "config.json") or {}
    # A "running" run whose process is gone reads as interrupted; a damaged status.json (it is
    # written atomically, so damage, not a half-written file) as unknown, with the reason.
    status = read_status(path)
    summary = _read_json(path / "summary.json")
    old_format = summary is not None and "numbers" not in summary
    experiment = str(config.get("experiment") or (summary or {}).get("experiment") or path.name)
    anchor = f"run-{_slug(label)}"
    used.add(anchor)
    suffix = f"--{_slug(label)}" if repeated else ""
    claims = tuple(_claim_view(c, _slug(experiment), suffix, used) for c in (summary or {}).get("claims") or [] if isinstance(c, Mapping))
    counts = _counts(claims)
    fields = config.get("config") if isinstance(config.get("config"), Mapping) else {}
    if summary is None:
        numbers = None
    else:
        numbers = summary.get("numbers") if not old_format else {k: v for k, v in summary.items() if k not in _SUMMARY_META}
    members, skipped, reasons = _skipped((summary or {}).get("skipped_members"))
    seeds = fields.get("seeds")
    elapsed = status.get("elapsed_s", (summary or {}).get("elapsed_s"))
    if not _finite(elapsed) and _finite(status.get("started")) and _finite(status.get("finished")):
        elapsed = status["finished"] - status["started"]
    return RunView(
        path=path,
        label=label,
        anchor=anchor,
        experiment=experiment,
        work=(summary or {}).get("work"),
        description=(summary or {}).get("description"),
        preset=config.get("preset"),
        command=config.get("command"),
        config=dict(fields),
        state=str(status.get("state", "unknown")),
        status=status,
        has_summary=summary is not None,
        old_format=old_format,
        seeds=str(seeds) if isinstance(seeds, int) else (f"{members} members" if members is not None else None),
        started=status.get("started"),
        elapsed_s=elapsed,
        versions=_versions(status, (summary or {}).get("environment") or {}),
        host=status.get("host"),
        claims=claims,
        counts=counts,
        counts_mismatch=_counts_mismatch((summary or {}).get("claims_held"), counts),
        figures=_figures(path, (summary or {}).get("figures"), anchor),
        numbers_json=None if numbers is None else json.dumps(numbers, indent=2, allow_nan=True, default=str, ensure_ascii=False),
        members=members,
        skipped=skipped,
        skipped_reasons=reasons,
    )


def _labels(paths: Sequence[Path]) -> list[str]:
    """The shortest trailing part of each path that tells it from the others
    (``saxe-reduction``, or ``runs-v1/saxe-reduction`` beside ``runs-v2/saxe-reduction``)."""
    parts = [p.resolve().parts for p in paths]
    labels = []
    for i, mine in enumerate(parts):
        k = 1
        while k < len(mine) and any(j != i and other[-k:] == mine[-k:] for j, other in enumerate(parts)):
            k += 1
        labels.append("/".join(mine[-k:]))
    return labels


def _same(values: Sequence[Any]) -> bool:
    keys = [json.dumps(v, sort_keys=True, default=str) if v is not _MISSING else "\0absent" for v in values]
    return len(set(keys)) == 1


def _shown(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    return json.dumps(value, default=str, allow_nan=True) if isinstance(value, (dict, list, tuple)) else fmt_number(value)


def compare(experiment: str, runs: Sequence[RunView]) -> Comparison:
    """Lays ``runs`` (two or more runs of ``experiment``) side by side, claim by claim.

    Claims are matched by id (old-format claims by their statement); the configuration fields
    compared are ``preset`` and every field of config.json's ``config``; the versions are those
    of status.json, else of summary.json's environment.
    """
    order: dict[str, tuple[str, str]] = {}
    for kind in KINDS:  # the paper's claims first, as on the rest of the page
        for run in runs:
            for claim in run.claims_of(kind):
                order.setdefault(claim.id, (kind, claim.statement))
    used = {a for run in runs for a in [run.anchor, *(c.anchor for c in run.claims)]}
    rows = []
    for claim_id, (kind, statement) in order.items():
        cells = tuple(next((c for c in run.claims if c.id == claim_id), None) for run in runs)
        verdicts = {c.held if c is not None else "absent" for c in cells}
        anchor = f"{_slug(experiment)}-{_slug(claim_id)}"
        base, n = anchor, 2
        while anchor in used:
            anchor, n = f"{base}-{n}", n + 1
        used.add(anchor)
        rows.append(ComparisonRow(claim_id, anchor, kind, statement, cells, len(verdicts) > 1))
    # config.json's preset, then every field of its config (a field called preset shown as config.preset).
    candidates = [("preset", [_MISSING if run.preset is None else run.preset for run in runs])]
    for name in dict.fromkeys(k for run in runs for k in run.config):
        candidates.append((f"config.{name}" if name == "preset" else name, [run.config.get(name, _MISSING) for run in runs]))
    config_diffs = [(name, tuple(_shown(v) for v in values)) for name, values in candidates if not _same(values)]
    version_diffs, same_versions = [], []
    for key in _VERSION_KEYS:
        values = [run.versions.get(key, _MISSING) for run in runs]
        if _same(values):
            if values[0] is not _MISSING:
                same_versions.append((key, values[0]))
        else:
            version_diffs.append((key, tuple(_shown(v) for v in values)))
    return Comparison(experiment, f"compare-{_slug(experiment)}", tuple(runs), tuple(rows), tuple(config_diffs),
                      tuple(version_diffs), tuple(same_versions))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("jaxdyn", "templates"),
        autoescape=True,  # every string from a run folder is escaped once, here and nowhere else
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_number, duration=fmt_duration, date=fmt_date)
    return env


def render_report(run_dirs: Sequence[str | Path]) -> str:
    """The report page of ``run_dirs`` as one HTML string (see the module docstring).

    Raises:
        ValueError: ``run_dirs`` is empty.
        FileNotFoundError: naming the first entry that is not a run folder.
    """
    dirs = list(dict.fromkeys(Path(d).resolve() for d in run_dirs))  # the same folder twice shows once
    if not dirs:
        raise ValueError("run_dirs: expected at least one run folder, got none")
    for d in dirs:
        if not d.is_dir() or not ((d / "config.json").exists() or (d / "status.json").exists()):
            raise FileNotFoundError(f"{d}: not a jaxdyn run directory (no config.json or status.json)")
    experiments = [str((_read_json(d / "config.json") or {}).get("experiment") or d.name) for d in dirs]
    used: set[str] = set()
    runs = [read_run(d, label=label, repeated=experiments.count(exp) > 1, used_anchors=used)
            for d, label, exp in zip(dirs, _labels(dirs), experiments)]
    groups: dict[str, list[RunView]] = {}
    for run in runs:
        groups.setdefault(run.experiment, []).append(run)
    comparisons = [compare(exp, group) for exp, group in groups.items() if len(group) > 1]
    from jaxdyn import __version__

    return _environment().get_template("report.html.j2").render(
        runs=runs,
        comparisons=comparisons,
        kinds=KINDS,
        show_unclassified=any(run.counts["unclassified"][1] for run in runs),
        built=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        version=__version__,
    )


def build_report(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Writes one self-contained HTML report of ``run_dirs`` to ``out``.

    Args:
        run_dirs: run folders (each with at least a config.json or status.json), of either format.
        out: the HTML file to write (atomically).

    Returns:
        The path written.

    Raises:
        ValueError: ``run_dirs`` is empty.
        FileNotFoundError: naming the first entry that is not a run folder.
    """
    page = render_report(run_dirs)
    out = Path(out)
    atomic_write(out, lambda p: p.write_text(page, encoding="utf-8"))
    return out


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Expands each path: a run folder itself, or a folder holding run folders.

    A path that is neither (missing, or a folder with no run folder in it) is kept as given, so
    :func:`build_report` names it.
    """
    def is_run(p: Path) -> bool:
        return (p / "config.json").exists() or (p / "status.json").exists()

    runs: list[Path] = []
    for p in map(Path, paths):
        children = sorted(c for c in p.iterdir() if is_run(c)) if p.is_dir() and not is_run(p) else []
        runs.extend(children or [p])
    return runs
