"""The ``jaxdyn`` command: ``jaxdyn list``, ``jaxdyn run NAME [options]``, ``jaxdyn report``, ``jaxdyn bench``.

Configuration errors are reported on one line naming the field, with exit code 2, before
anything is compiled; so are errors the engine raises before compiling (memory guard,
checkpoint mismatch). Runs write checkpoints between chunks; ``--resume`` continues a run that
was killed (or interrupted by SIGTERM / Ctrl-C, which mark it ``interrupted``) from its last
checkpoint, bitwise identical to an uninterrupted run. Any other failure is one line with exit
code 1, its traceback kept in the run's status.json (``--debug`` raises it instead).

``--executor ray [--address ADDR] [--chunk-seeds K] [--gpus-per-task G]`` runs the members of
every training call as Ray tasks of K members (:class:`jaxdyn.engine.RayExecutor`); the run
directory is the same as a single-process run's, and status.json records the executor.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import socket
import sys
from pathlib import Path


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
    run.add_argument("--dry-run", action="store_true", help="validate the configuration, print it and exit without running")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--resume", action="store_true",
                     help="continue OUT/NAME from its last checkpoint (its saved configuration unless --quick/--set/--seeds "
                          "are given, which must then match); starts afresh when there is nothing to resume")
    run.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                     help="steps between checkpoints (default: about 10 per training call)")
    run.add_argument("--no-checkpoint", action="store_true", help="write no checkpoints")
    run.add_argument("--no-memory-check", action="store_true", help="skip the engine's memory estimate and run anyway")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="where the members of each training call run: this process (local, default) or tasks on a "
                          "Ray cluster (ray; needs pip install 'jaxdyn[cluster]')")
    run.add_argument("--address", default=None, metavar="ADDR",
                     help="with --executor ray: the Ray cluster ('auto': the one `ray start` began on this node; "
                          "ray://HOST:10001: a remote one); default: start a local Ray cluster on this machine")
    run.add_argument("--chunk-seeds", type=int, default=None, metavar="K",
                     help="members per Ray task (default 1); with --executor local, train K members at a time "
                          "(less memory); results do not depend on it")
    run.add_argument("--gpus-per-task", type=float, default=0.0, metavar="G",
                     help="with --executor ray: GPUs Ray gives each task (default 0: CPU; a fraction shares a GPU)")
    run.add_argument("--force", action="store_true", help="run even if status.json says another process is running OUT/NAME")
    run.add_argument("--debug", action="store_true", help="raise unexpected errors with their traceback")
    bench = sub.add_parser("bench", help="run the benchmarks of benchmarks/ (needs a source checkout)",
                           description="Runs benchmarks/bench_{ensemble,ntk,ode}.py; arguments after -- go to the script(s).")
    bench.add_argument("suite", choices=["ensemble", "ntk", "ode", "all"], help="which benchmark")
    bench.add_argument("--quick", action="store_true", help="a small smoke run (a minute or two per suite on 2 cores)")
    bench.add_argument("--out", default=None, help="folder for the tables and JSON (default: benchmarks/out/)")
    bench.add_argument("script_args", nargs=argparse.REMAINDER, help="-- then options of the script")
    report = sub.add_parser("report", help="one self-contained HTML page from run directories")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or folders holding them (e.g. runs/)")
    report.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    return parser


def _error(message: str) -> int:
    print(f"jaxdyn: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _config_diff(saved, given) -> str:
    diffs = [f"{f.name} {getattr(saved, f.name)!r} there, {getattr(given, f.name)!r} here"
             for f in dataclasses.fields(saved) if getattr(saved, f.name) != getattr(given, f.name)]
    return "; ".join(diffs)


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM (what schedulers send before killing) raises RunInterrupted in the main thread,
    so the run is marked interrupted and its checkpoints are kept."""
    from jaxdyn.store import RunInterrupted

    def handler(signum, frame):
        raise RunInterrupted(f"signal {signal.Signals(signum).name}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _executor(args):
    """The executor of ``jaxdyn run`` from --executor/--address/--chunk-seeds/--gpus-per-task
    (None: this process).

    Raises ConfigError (bad option) or EngineConfigError (Ray not installed), before anything
    compiles or starts."""
    from jaxdyn.engine import LocalExecutor, RayExecutor
    from jaxdyn.experiments import ConfigError

    if args.chunk_seeds is not None and args.chunk_seeds < 1:
        raise ConfigError(f"--chunk-seeds: expected a positive number of members per task, got {args.chunk_seeds}")
    if not (args.gpus_per_task >= 0) or args.gpus_per_task == float("inf"):
        raise ConfigError(f"--gpus-per-task: expected a non-negative number, got {args.gpus_per_task}")
    if args.executor == "local":
        if args.address is not None:
            raise ConfigError("--address: only with --executor ray")
        if args.gpus_per_task:
            raise ConfigError("--gpus-per-task: only with --executor ray (this process uses every local device)")
        return None if args.chunk_seeds is None else LocalExecutor(chunk_seeds=args.chunk_seeds)
    if args.address is not None and not args.address.strip():
        raise ConfigError("--address: expected a Ray address such as auto or ray://HOST:10001, got an empty string")
    executor = RayExecutor(address=args.address, chunk_seeds=args.chunk_seeds or 1, num_gpus_per_task=args.gpus_per_task)
    executor.check()  # ray importable
    return executor


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxdyn`` console script. Returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "bench":
        from jaxdyn import bench

        extra = args.script_args[1:] if args.script_args[:1] == ["--"] else args.script_args
        try:
            return bench.run(args.suite, quick=args.quick, out=args.out, extra=extra)
        except ValueError as exc:
            return _error(str(exc))
    from jaxdyn import experiments
    from jaxdyn.engine import EngineConfigError
    from jaxdyn.engine.checkpoint import CheckpointError
    from jaxdyn.experiments import ConfigError
    from jaxdyn.store import read_status, run_experiment

    if args.command == "list":
        width = max(map(len, experiments.REGISTRY))
        for name, exp in experiments.REGISTRY.items():
            print(f"{name:<{width}}  [{exp.work}] {exp.description}")
        return 0

    if args.command == "report":
        from jaxdyn.report import build_report, find_runs

        try:
            path = build_report(find_runs(args.runs), args.out)
        except FileNotFoundError as exc:
            return _error(str(exc))
        print(f"jaxdyn: wrote {path}")
        return 0

    run_path = Path(args.out) / args.name
    try:
        experiment = experiments.get(args.name)
        if args.show_config:
            print("\n".join(experiment.config.describe()))
            return 0
        if args.checkpoint_every is not None and args.checkpoint_every < 1:
            raise ConfigError(f"--checkpoint-every: expected a positive number of steps, got {args.checkpoint_every}")
        executor = _executor(args)
        config = experiment.config.quick() if args.quick else experiment.config()
        assignments = list(args.assignments)
        if args.seeds is not None:
            if "seeds" not in {f.name for f in dataclasses.fields(config)}:
                raise ConfigError(f"--seeds: {args.name} has no seed ensemble (its members are its conditions); use --set")
            assignments.append(f"seeds={args.seeds}")
        config = config.with_overrides(assignments)
        status = read_status(run_path) if run_path.is_dir() else {"state": "unknown"}
        if status["state"] == "running" and not args.dry_run and not args.force:
            # Same host: its process is alive (read_status reports a dead one as interrupted).
            # Another host (shared filesystem): it cannot be checked from here.
            where = "this host" if status.get("host") == socket.gethostname() else f"host {status.get('host')}"
            raise ConfigError(f"--out: {run_path} is being run by process {status.get('pid')} on {where}; "
                              "wait for it or stop it (--force if you know that run is dead)")
        resume = False
        if args.resume and (run_path / "config.json").exists():
            saved = json.loads((run_path / "config.json").read_text())
            try:
                saved_config = experiment.config.from_dict(saved.get("config", {}))
            except ConfigError as exc:
                raise ConfigError(f"--resume: {run_path / 'config.json'}: {exc}") from None
            if args.quick or args.assignments or args.seeds is not None:
                if config != saved_config:
                    raise ConfigError(f"--resume: the configuration differs from the one being resumed ({_config_diff(saved_config, config)})")
            config = saved_config
            if status["state"] == "complete":
                print(f"jaxdyn: {run_path}/ is already complete; nothing to resume", file=sys.stderr)
                return 0
            resume = True
        elif args.resume:
            print(f"jaxdyn: nothing to resume in {run_path}/; starting afresh", file=sys.stderr)
    except (ConfigError, EngineConfigError) as exc:
        return _error(str(exc))

    if args.dry_run:
        print(json.dumps({"experiment": args.name, "config": config.to_dict(),
                          "executor": executor.describe() if executor is not None else {"kind": "local"}}, indent=2))
        return 0

    verb = "resuming" if resume else "running"
    print(f"jaxdyn: {verb} {args.name} -> {run_path}/", file=sys.stderr)
    try:
        with _sigterm_interrupts():
            result, path = run_experiment(experiment, config, args.out, progress=not args.no_progress, resume=resume,
                                          checkpoints=not args.no_checkpoint, checkpoint_every=args.checkpoint_every,
                                          memory_check=not args.no_memory_check, executor=executor)
    except KeyboardInterrupt as exc:
        print(f"jaxdyn: interrupted ({exc or 'keyboard'}); checkpoints kept in {run_path}/checkpoints/; continue with: "
              f"jaxdyn run {args.name} --out {args.out} --resume", file=sys.stderr)
        return 130
    except (ConfigError, EngineConfigError, CheckpointError) as exc:
        return _error(str(exc))
    except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback is in status.json
        if args.debug:
            raise
        print(f"jaxdyn: failed: {type(exc).__name__}: {' '.join(str(exc).split())[:500]} "
              f"(traceback in {run_path}/status.json; --debug raises it)", file=sys.stderr)
        return 1
    finally:
        if executor is not None and hasattr(executor, "shutdown"):
            executor.shutdown()  # only a Ray this command started

    claims = result.summary.get("claims", [])
    for claim in claims:
        mark = "held    " if claim["held"] else "NOT held"
        print(f"  [{mark}] {claim['claim']}: {claim['value']:.4g}")
    summary = json.loads((path / "summary.json").read_text())
    skipped = summary.get("skipped_members") or {}
    if skipped.get("skipped"):
        why = [f"member {d['member']} diverged at step {d['step']}" for d in skipped.get("diverged", [])]
        why += [f"member {d['member']}: ODE {d['reason']}" for d in skipped.get("ode_failed", [])]
        print(f"  {skipped['skipped']} of {skipped['members']} members left out of the summary: " + "; ".join(why))
    print(f"jaxdyn: wrote {path}/ (config.json, results.nc, summary.json, " + ", ".join(f"{k}.png" for k in result.figures) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
