"""The ``jaxdyn`` command: ``jaxdyn list``, ``jaxdyn run NAME [options]``, ``jaxdyn report``, ``jaxdyn bench``.

Nothing heavy is imported before the arguments are parsed: ``jaxdyn --help`` and ``jaxdyn list``
read the registry without importing JAX or any experiment. Configuration errors are reported on
one line naming the field, with exit code 2, before anything is compiled; so are errors of the run
folder (locked by another process, not writable, holding a complete run) and errors the engine
raises before compiling (memory guard, checkpoint mismatch). Runs write checkpoints between
chunks; ``--resume`` continues a run that was killed (or interrupted by SIGTERM / Ctrl-C, which
mark it ``interrupted``, exit code 130) from its last checkpoint, bitwise identical to an
uninterrupted run. Any other failure is one line with exit code 1, its traceback kept in the
run's status.json (``--debug`` raises it instead).

``--executor ray [--address ADDR] [--chunk-seeds K] [--gpus-per-task G]`` runs the members of
every training call as Ray tasks of K members (:class:`jaxdyn.engine.RayExecutor`); the run
directory is the same as a single-process run's, and status.json records the executor.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxdyn", description="Seed-ensemble experiments on how deep networks learn, theory beside simulation.")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="list the experiments")
    listing.add_argument("--markdown", action="store_true", help="as the Markdown table of the README")
    run = sub.add_parser("run", help="run an experiment and write its run directory")
    run.add_argument("name", help="experiment name (see `jaxdyn list`)")
    run.add_argument("--quick", action="store_true", help="the small preset used by the tests")
    run.add_argument("--seeds", type=str, default=None, help="ensemble size, for experiments whose members are seeds")
    run.add_argument("--out", default="runs", help="parent folder of the run directory (default: runs/)")
    run.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a configuration field; lists are comma-separated (repeatable, each field once)")
    run.add_argument("--config", dest="config_file", default=None, metavar="FILE",
                     help="configuration fields from a JSON or TOML file (validated like --set; --set applies after it)")
    run.add_argument("--show-config", action="store_true", help="print the configuration fields and exit")
    run.add_argument("--dry-run", action="store_true", help="validate the configuration, print it and exit without running")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--resume", action="store_true",
                     help="continue OUT/NAME from its last checkpoint (its saved configuration unless --quick/--set/--seeds/"
                          "--config are given, which must then match); starts afresh when there is nothing to resume")
    run.add_argument("--force", action="store_true", help="replace a complete run in OUT/NAME (its outputs are removed first)")
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
    run.add_argument("--block-width", type=int, default=None, metavar="B",
                     help="members computed together in one block (default: the engine's choice for each model and "
                          "backend); results depend on it at float rounding, never on devices or chunks")
    run.add_argument("--debug", action="store_true", help="raise unexpected errors with their traceback")
    bench = sub.add_parser("bench", help="run the benchmarks of benchmarks/ (needs a source checkout)",
                           description="Runs benchmarks/bench_{ensemble,ntk,ode,gpu}.py; arguments after -- go to the script(s).")
    bench.add_argument("suite", choices=["ensemble", "ntk", "ode", "gpu", "all"], help="which benchmark (gpu: the prepared one-GPU run; not in all)")
    bench.add_argument("--quick", action="store_true", help="a small smoke run (a minute or two per suite on 2 cores)")
    bench.add_argument("--out", default=None, help="folder for the tables and JSON (default: benchmarks/out/)")
    bench.add_argument("script_args", nargs=argparse.REMAINDER, help="-- then options of the script")
    report = sub.add_parser("report", help="one self-contained HTML page from run directories")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or folders holding them (e.g. runs/)")
    report.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    return parser


def _say(message: str) -> None:
    """``jaxdyn: MESSAGE`` on stderr in one write: Python raises an interrupt between bytecodes, so
    it can fall between print()'s text and its newline (the line then runs into the interrupt's
    message), never inside one write."""
    sys.stderr.write(f"jaxdyn: {message}\n")
    sys.stderr.flush()


def _error(message: str) -> int:
    _say(f"error: {' '.join(str(message).split())}")
    return 2


class _Interrupts:
    """SIGINT (Ctrl-C) and SIGTERM (what schedulers send before killing) raise RunInterrupted in
    the main thread, so the run is marked interrupted and its checkpoints are kept. Each is also
    remembered: Python drops an exception raised inside a garbage-collection callback, so a run
    that finishes after such a lost interrupt still ends as interrupted, with a true message."""

    def __init__(self):
        self.received: str | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame):
        self.received = "Ctrl-C" if signum == signal.SIGINT else f"signal {signal.Signals(signum).name}"
        self._raise_when_not_importing(frame)

    def _raise_when_not_importing(self, frame):
        # An exception raised while a compiled extension initialises (jaxlib's, which runs Python
        # code during its import) aborts the interpreter with SIGABRT instead of unwinding, and one
        # raised in a garbage-collection callback (jax has one) is printed and dropped: there the
        # interrupt is raised 50 ms later, re-checked until the stack is out of both.
        if _unsafe_to_raise(frame):
            self._previous.setdefault(signal.SIGALRM, signal.getsignal(signal.SIGALRM))  # restored by __exit__
            signal.signal(signal.SIGALRM, lambda _signum, later: self._raise_when_not_importing(later))
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            return
        from jaxdyn.store import RunInterrupted

        raise RunInterrupted(self.received)

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        if signal.SIGALRM in self._previous:  # a deferred interrupt's timer (see _raise_when_not_importing)
            signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def _unsafe_to_raise(frame) -> bool:
    """Whether the interrupted Python stack is inside an import or jax's garbage-collection callback."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib") or frame.f_code.co_name == "_xla_gc_callback":
            return True
        frame = frame.f_back
    return False


def _executor(args):
    """The executor of ``jaxdyn run`` from --executor/--address/--chunk-seeds/--gpus-per-task
    (None: this process).

    Raises ConfigError (bad option) or EngineConfigError (Ray not installed), before anything
    compiles or starts."""
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
        if args.chunk_seeds is None:
            return None
        from jaxdyn.engine import LocalExecutor

        return LocalExecutor(chunk_seeds=args.chunk_seeds)
    if args.address is not None and not args.address.strip():
        raise ConfigError("--address: expected a Ray address such as auto or ray://HOST:10001, got an empty string")
    from jaxdyn.engine import RayExecutor

    executor = RayExecutor(address=args.address, chunk_seeds=args.chunk_seeds or 1, num_gpus_per_task=args.gpus_per_task)
    executor.check()  # ray importable
    return executor


def _configuration(experiment, args):
    """The configuration the command line asks for, or None when it names none (then the run
    layer takes the defaults, or the saved configuration when resuming)."""
    from jaxdyn.experiments import ConfigError

    named = args.quick or args.assignments or args.seeds is not None or args.config_file is not None
    if not named:
        return None
    config = experiment.config.quick() if args.quick else experiment.config()
    if args.config_file is not None:
        config = config.with_file(args.config_file)
    assignments = list(args.assignments)
    if args.seeds is not None:
        if "seeds" not in experiment.config.field_types():
            raise ConfigError(f"--seeds: {args.name} has no seed ensemble (its members are its conditions); use --set")
        if any(a.split("=", 1)[0].strip() == "seeds" for a in assignments):
            raise ConfigError("--seeds: given twice (also as --set seeds=...); give it once")
        assignments.append(f"seeds={args.seeds}")
    config = config.with_overrides(assignments)
    if args.seeds is not None and config.seeds < 1:  # a field's 0 may mean its preset's size (dense-sample); the flag never does
        raise ConfigError(f"--seeds: expected a positive ensemble size, got {config.seeds}")
    return config


def console() -> None:
    """The ``jaxdyn`` console script: :func:`main`, and after an interrupt an immediate exit with
    code 130 (the interpreter's shutdown is skipped: with XLA threads still compiling it could
    crash and replace 130 by a signal)."""
    try:
        code = main()
    except BrokenPipeError:  # the output was piped into a command that stopped reading (head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxdyn`` command. Returns the exit code (130 after an interrupt)."""
    with _Interrupts() as interrupts:
        try:
            return _main(argv, interrupts)
        except KeyboardInterrupt as exc:  # before a run started (importing, parsing a configuration)
            _say(f"interrupted ({str(exc) or 'Ctrl-C'}) before any run started; nothing was written")
            return 130


def _main(argv, interrupts) -> int:
    args = _parser().parse_args(argv)
    if args.command == "bench":
        from jaxdyn import bench

        extra = args.script_args[1:] if args.script_args[:1] == ["--"] else args.script_args
        try:
            return bench.run(args.suite, quick=args.quick, out=args.out, extra=extra)
        except ValueError as exc:
            return _error(str(exc))

    if args.command == "list":
        from jaxdyn.experiments import index

        entries = index()
        if args.markdown:
            print(markdown_table(entries))
            return 0
        width = max(map(len, entries))
        for name, entry in entries.items():
            print(f"{name:<{width}}  [{entry.work}] {entry.description}")
        return 0

    if args.command == "report":
        from jaxdyn.report import build_report, find_runs

        try:
            path = build_report(find_runs(args.runs), args.out)
        except (FileNotFoundError, ValueError) as exc:
            return _error(str(exc))
        print(f"jaxdyn: wrote {path}")
        return 0

    return _run(args, " ".join(shlex.quote(a) for a in (["jaxdyn"] + list(sys.argv[1:] if argv is None else argv))), interrupts)


def _run(args, command: str, interrupts: _Interrupts) -> int:
    from jaxdyn import experiments
    from jaxdyn.experiments import ConfigError

    try:
        experiment = experiments.get(args.name)
        if args.show_config:
            print("\n".join(experiment.config.describe()))
            return 0
        if args.checkpoint_every is not None and args.checkpoint_every < 1:
            raise ConfigError(f"--checkpoint-every: expected a positive number of steps, got {args.checkpoint_every}")
        if args.block_width is not None and args.block_width < 1:
            raise ConfigError(f"--block-width: expected a positive number of members, got {args.block_width}")
        config = _configuration(experiment, args)
        if args.dry_run:
            executor = _executor(args)
            shown = config if config is not None else experiment.config()
            print(json.dumps({"experiment": args.name, "config": shown.to_dict(),
                              "executor": executor.describe() if executor is not None else {"kind": "local"}}, indent=2))
            return 0
        from jaxdyn.engine import EngineConfigError
        from jaxdyn.engine.checkpoint import CheckpointError
        from jaxdyn.store import RunFolderError
        from jaxdyn.store import run as run_experiment

        executor = _executor(args)
    except ConfigError as exc:
        return _error(str(exc))
    except ValueError as exc:  # EngineConfigError (Ray missing) and the like
        return _error(str(exc))

    run_path = Path(args.out) / args.name
    verb = "resuming" if args.resume else "running"
    _say(f"{verb} {args.name} -> {run_path}/")
    try:
        result, summary, path = run_experiment(
            experiment, config, out=args.out, resume=args.resume, force=args.force, progress=not args.no_progress,
            checkpoints=not args.no_checkpoint, checkpoint_every=args.checkpoint_every,
            memory_check=not args.no_memory_check, executor=executor, command=command, block_width=args.block_width,
            on_stage=lambda message: _say(f"{message} ..."))
    except KeyboardInterrupt as exc:
        if not (run_path / "status.json").exists():  # before the run layer wrote anything
            _say(f"interrupted ({str(exc) or 'Ctrl-C'}) before the run started; nothing was written")
            return 130
        checkpoints = sorted((run_path / "checkpoints").glob("call_*/step_*.npz"))
        kept = (f"{len(checkpoints)} checkpoint(s) kept in {run_path}/checkpoints/; continue with: "
                f"jaxdyn run {args.name} --out {args.out} --resume") if checkpoints else "no checkpoint had been written yet"
        _say(f"interrupted ({str(exc) or 'Ctrl-C'}); {kept}")
        return 130
    except (ConfigError, EngineConfigError, CheckpointError, RunFolderError) as exc:
        return _error(str(exc))
    except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback is in status.json
        if args.debug:
            raise
        _say(f"failed: {type(exc).__name__}: {' '.join(str(exc).split())[:500]} "
             f"(traceback in {run_path}/status.json; --debug raises it)")
        return 1
    finally:
        if executor is not None and hasattr(executor, "shutdown"):
            executor.shutdown()  # only a Ray this command started

    if interrupts.received is not None:  # an interrupt Python dropped (see _Interrupts): the run finished anyway
        _say(f"interrupted ({interrupts.received}), but the run had completed before it took effect: "
             f"{path}/ is complete")
        return 130
    if result is None:
        _say(f"{path}/ is already complete; nothing to resume")
        return 0
    print(format_claims(summary["claims"]))
    skipped = summary.get("skipped_members") or {}
    if skipped.get("skipped"):
        why = "; ".join(f"member {d['member']}: {d['reason']}" for d in skipped["reasons"][:10])
        print(f"  {skipped['skipped']} of {skipped['members']} members left out of the summary: {why}")
    print(f"jaxdyn: wrote {path}/ (config.json, results.nc, summary.json, " + ", ".join(f"{k}.png" for k in summary["figures"]) + ")")
    return 0


def markdown_table(entries) -> str:
    """The registry as the README's experiment table (``jaxdyn list --markdown``), by work."""
    order = ["Saxe", "Saxe 2014", "Nakazato", "Su", "Su, He & Su", "Hanson"]
    rank = lambda e: (order.index(e.work) if e.work in order else len(order), e.name)  # noqa: E731
    rows = ["| name | work | theory vs simulation |", "| --- | --- | --- |"]
    rows += [f"| `{e.name}` | {e.work} | {e.description} |" for e in sorted(entries.values(), key=rank)]
    return "\n".join(rows)


def format_claims(claims: list[dict]) -> str:
    """The claims as the CLI prints them: per kind, paper first; value, threshold, seeds, margin."""
    lines = []
    for kind in ("paper", "extension", "sanity"):
        group = [c for c in claims if c["kind"] == kind]
        if not group:
            continue
        held = sum(c["held"] for c in group)
        lines.append(f"  {kind} claims: {held} of {len(group)} held")
        for c in group:
            mark = "held    " if c["held"] else "NOT held"
            value = "n/a" if c["value"] is None else f"{c['value']:.4g}"
            test = "" if c["comparison"] is None else f" {c['comparison']} {c['threshold']:.4g}" if c["threshold"] is not None else ""
            seeds = ""
            if c.get("per_seed") is not None:
                n_in = len(c["per_seed"]) - c["excluded"]
                seeds = f", {sum(c['seed_held'])}/{n_in} seeds"
            margin = "" if c.get("margin_se") is None else f", margin {c['margin_se']:.1f} SE"
            initial = "" if c.get("initial") is None else f", at init {c['initial']:.4g}"
            lines.append(f"    [{mark}] {c['statement']}: {value}{test}{seeds}{margin}{initial}")
    return "\n".join(lines)


if __name__ == "__main__":
    console()
