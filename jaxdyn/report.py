"""``jaxdyn report``: one self-contained HTML page from run directories.

Per run: its state (complete, failed, interrupted, running), the configuration, each claim
marked held / not held with the measured number, the other summary numbers, the figures
(embedded as base64 PNG, so the page needs no network and no other files), and the versions
of jaxdyn and jax and the devices it ran on.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from jaxdyn.store import atomic_write, read_status

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.held { color: #006d3c; font-weight: 600; } .not-held { color: #b00020; font-weight: 600; }
.state { display: inline-block; padding: .1em .6em; border-radius: .8em; font-size: .85em; color: white; }
.state-complete { background: #009E73; } .state-failed, .state-interrupted { background: #D55E00; }
.state-running, .state-unknown { background: #999; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
details { margin: .5em 0; } code, pre { font-size: .88em; background: #f7f7f7; }
.toc li { margin: .15em 0; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and len(value) > 12:
        return _esc(f"[{', '.join(_fmt(v) for v in value[:12])}, ... ({len(value)} values)]")
    if isinstance(value, (list, tuple)):
        return _esc(f"[{', '.join(_fmt(v) for v in value)}]")
    if isinstance(value, dict):
        return _esc(json.dumps(value, default=str))
    return _esc(value)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_section(run_dir: Path) -> tuple[str, str, str]:
    """HTML for one run directory.

    Returns:
        (anchor id, title, HTML of the section).
    """
    run_dir = Path(run_dir)
    config = _read_json(run_dir / "config.json") or {}
    status = read_status(run_dir)  # a run whose process is gone reads as interrupted
    summary = _read_json(run_dir / "summary.json")
    name = config.get("experiment", run_dir.name)
    state = status.get("state", "unknown")
    anchor = f"run-{_esc(run_dir.name)}"
    parts = [f'<h2 id="{anchor}">{_esc(name)} <span class="state state-{_esc(state)}">{_esc(state)}</span></h2>',
             f"<p>Run directory: <code>{_esc(run_dir)}</code></p>"]
    if state != "complete":
        detail = status.get("error") or "the run did not finish (no completion was recorded)"
        parts.append(f'<p class="not-held">This run is {_esc(state)}: {_esc(detail)}. Its numbers below, if any, are incomplete.</p>')
        if status.get("traceback"):
            parts.append(f"<details><summary>traceback</summary><pre>{_esc(''.join(status['traceback']))}</pre></details>")
    if summary is not None:
        claims = summary.get("claims", [])
        if claims:
            held = sum(bool(c.get("held")) for c in claims)
            parts.append(f"<h3>Claims: {held} of {len(claims)} held</h3>")
            rows = "".join(
                f'<tr><td class="{"held" if c.get("held") else "not-held"}">{"held" if c.get("held") else "not held"}</td>'
                f"<td>{_esc(c.get('claim', ''))}</td><td>{_fmt(c.get('value'))}</td><td>{_fmt(c.get('threshold'))}</td></tr>"
                for c in claims
            )
            parts.append(f"<table><tr><th>verdict</th><th>claim</th><th>measured</th><th>threshold</th></tr>{rows}</table>")
        numbers = {k: v for k, v in summary.items() if k not in ("claims", "environment")}
        if numbers:
            rows = "".join(f"<tr><td>{_esc(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in numbers.items())
            parts.append(f"<details open><summary>Summary numbers</summary><table>{rows}</table></details>")
        env = summary.get("environment", {})
        if env:
            parts.append("<p>Ran with " + ", ".join(f"{_esc(k)} {_fmt(v)}" for k, v in env.items()) + ".</p>")
    elif state == "complete":
        parts.append('<p class="not-held">summary.json is missing.</p>')
    figures = sorted(run_dir.glob("*.png"))
    for fig in figures:
        data = base64.b64encode(fig.read_bytes()).decode("ascii")
        parts.append(f'<figure><img alt="{_esc(fig.stem)}" src="data:image/png;base64,{data}"><figcaption>{_esc(fig.stem)}</figcaption></figure>')
    if config.get("config"):
        rows = "".join(f"<tr><td>{_esc(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in config["config"].items())
        parts.append(f"<details><summary>Configuration</summary><table>{rows}</table></details>")
    return anchor, f"{name} ({state})", "\n".join(parts)


def build_report(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Writes one self-contained HTML report of ``run_dirs`` to ``out``.

    Args:
        run_dirs: run directories (each with at least a config.json or status.json).
        out: the HTML file to write.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: naming the first argument that is not a run directory.
    """
    dirs = [Path(d) for d in run_dirs]
    for d in dirs:
        if not d.is_dir() or not ((d / "config.json").exists() or (d / "status.json").exists()):
            raise FileNotFoundError(f"{d}: not a jaxdyn run directory (no config.json or status.json)")
    sections = [run_section(d) for d in dirs]
    toc = "".join(f'<li><a href="#{a}">{_esc(t)}</a></li>' for a, t, _ in sections)
    from jaxdyn import __version__

    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>jaxdyn report</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>jaxdyn report</h1><p>{len(dirs)} run(s); built {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by jaxdyn {__version__}.</p>"
        f'<ul class="toc">{toc}</ul>' + "\n".join(s for _, _, s in sections) + "</body></html>"
    )
    out = Path(out)
    atomic_write(out, lambda p: p.write_text(page))
    return out


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Expands each path: a run directory itself, or a folder holding run directories."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if (p / "config.json").exists() or (p / "status.json").exists():
            runs.append(p)
        elif p.is_dir():
            runs.extend(sorted(c for c in p.iterdir() if (c / "config.json").exists() or (c / "status.json").exists()))
        else:
            runs.append(p)  # reported as missing by build_report
    return runs
