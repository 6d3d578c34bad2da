"""The ``jaxdyn`` command: ``jaxdyn list`` and ``jaxdyn run NAME [options]``.

Configuration errors are reported on one line naming the field, with exit code 2, before
anything is compiled.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxdyn", description="Seed-ensemble experiments on how deep networks learn, theory beside simulation.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments")
    run = sub.add_parser("run", help="run an experiment and write its run directory")
    run.add_argument("name", help="experiment name (see `jaxdyn list`)")
    run.add_argument("--quick", action="store_true", help="the small preset used by the tests")
    run.add_argument("--seeds", type=int, default=None, help="ensemble size, for experiments whose members are seeds")
    run.add_argument("--out", default="runs", help="parent folder of the run directory (default: runs/)")
    run.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a configuration field; lists are comma-separated (repeatable)")
    run.add_argument("--show-config", action="store_true", help="print the configuration fields and exit")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _error(message: str) -> int:
    print(f"jaxdyn: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxdyn`` console script. Returns the exit code."""
    args = _parser().parse_args(argv)
    from jaxdyn import experiments
    from jaxdyn.experiments import ConfigError

    if args.command == "list":
        width = max(map(len, experiments.REGISTRY))
        for name, exp in experiments.REGISTRY.items():
            print(f"{name:<{width}}  [{exp.work}] {exp.description}")
        return 0

    try:
        experiment = experiments.get(args.name)
        if args.show_config:
            print("\n".join(experiment.config.describe()))
            return 0
        config = experiment.config.quick() if args.quick else experiment.config()
        assignments = list(args.assignments)
        if args.seeds is not None:
            if "seeds" not in {f.name for f in dataclasses.fields(config)}:
                raise ConfigError(f"--seeds: {args.name} has no seed ensemble (its members are its conditions); use --set")
            assignments.append(f"seeds={args.seeds}")
        config = config.with_overrides(assignments)
    except ConfigError as exc:
        return _error(str(exc))

    print(f"jaxdyn: running {args.name} -> {args.out}/{args.name}/", file=sys.stderr)
    result, path = experiments.run(args.name, config, out=args.out, progress=not args.no_progress)
    claims = result.summary.get("claims", [])
    for claim in claims:
        mark = "held    " if claim["held"] else "NOT held"
        print(f"  [{mark}] {claim['claim']}: {claim['value']:.4g}")
    print(f"jaxdyn: wrote {path}/ (config.json, results.nc, summary.json, " + ", ".join(f"{k}.png" for k in result.figures) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
