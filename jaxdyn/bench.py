"""``jaxdyn bench``: runs the benchmark scripts of ``benchmarks/`` in a source checkout.

The benchmarks compare jaxdyn with the obvious alternatives (a Python loop over seeds, the
torch.func ensemble, neural-tangents in its own environment, a scipy loop) in one process per
suite and write Markdown tables and JSON under ``benchmarks/out/`` (or ``--out``). They live
beside the package, not in it, because they import the peers (PyTorch, neural-tangents) that
jaxdyn itself never needs; so this command needs a checkout (``pip install -e .``).

``gpu`` is the one-command GPU run of issue 20 (``benchmarks/bench_gpu.py``: roofline, ensembles,
the paper's VGG, the NTK and the device tests inside a hard time budget, under 8 minutes on one
H200). Without a GPU backend it refuses with exit status 2 unless given ``--allow-cpu --tiny``;
``all`` does not include it. ``python -m jaxdyn.bench SUITE [--quick] [--out DIR] [-- ARGS]``
runs any suite, ``gpu`` included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

# suite -> (script, arguments of the quick preset: a smoke run of a minute or two on 2 cores)
SUITES = {
    "ensemble": ("bench_ensemble.py", ["--models", "rbe", "--seeds", "1,16", "--batches", "1", "--repeats", "3"]),
    "ntk": ("bench_ntk.py", ["--quick"]),
    "ode": ("bench_ode.py", ["--members", "1000", "--scipy-members", "100", "--repeats", "1"]),
    "gpu": ("bench_gpu.py", ["--tiny"]),
}
"""Suite name -> (script in benchmarks/, the arguments of its --quick smoke run)."""
# What 'all' runs: the CPU suites (gpu refuses without a GPU backend).
ALL = ("ensemble", "ntk", "ode")
"""The suites `jaxdyn bench all` runs (the CPU ones)."""


def benchmarks_dir() -> Path:
    """The checkout's ``benchmarks/`` folder, next to the ``jaxdyn`` package."""
    return Path(__file__).resolve().parents[1] / "benchmarks"


def commands(suite: str, *, quick: bool = False, out: str | None = None, extra: list[str] | None = None) -> list[list[str]]:
    """The command lines ``jaxdyn bench`` runs for ``suite`` (a name of :data:`SUITES` or ``'all'``).

    Raises:
        ValueError: unknown suite, or no ``benchmarks/`` folder beside the package.
    """
    if suite != "all" and suite not in SUITES:
        raise ValueError(f"suite must be one of {sorted(SUITES) + ['all']}, got {suite!r}")
    folder = benchmarks_dir()
    names = list(ALL) if suite == "all" else [suite]
    lines = []
    for name in names:
        script, quick_args = SUITES[name]
        path = folder / script
        if not path.is_file():
            raise ValueError(f"benchmark script {path} not found: `jaxdyn bench` needs a source checkout "
                             "(git clone ... && pip install -e '.[bench]')")
        line = [sys.executable, str(path)] + (quick_args if quick else [])
        if out is not None:
            line += ["--out", out]
        lines.append(line + list(extra or []))
    return lines


def run(suite: str, *, quick: bool = False, out: str | None = None, extra: list[str] | None = None) -> int:
    """Runs the suite's scripts one after the other; returns the first non-zero exit status, else 0."""
    for line in commands(suite, quick=quick, out=out, extra=extra):
        print("$ " + " ".join(line[1:]), flush=True)
        code = subprocess.call(line)
        if code:
            return code
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m jaxdyn.bench SUITE [--quick] [--out DIR] [-- script options]``; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m jaxdyn.bench", description="Runs a benchmark suite of benchmarks/.")
    ap.add_argument("suite", choices=[*SUITES, "all"], help="which benchmark ('all': the CPU suites)")
    ap.add_argument("--quick", action="store_true", help="the suite's small smoke preset")
    ap.add_argument("--out", default=None, help="folder for the tables and JSON (default: benchmarks/out/)")
    ap.add_argument("script_args", nargs=argparse.REMAINDER, help="-- then options of the script")
    args = ap.parse_args(argv)
    extra = args.script_args[1:] if args.script_args[:1] == ["--"] else args.script_args
    try:
        return run(args.suite, quick=args.quick, out=args.out, extra=extra)
    except ValueError as exc:
        print(f"jaxdyn bench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
