"""The kill harness: SIGKILL a ``jaxdyn run`` at chosen and at random moments, ``--resume`` it, and
check that the run folder ends bitwise identical to an uninterrupted run's.

Chosen moments use the fault-injection points of :mod:`jaxdyn.faults` (during a checkpoint write,
right after one, during the results.nc, summary.json and figure writes, during a status write);
random moments kill the process from outside after a random delay (during compilation, training,
analysis or anything else). After each kill the run is resumed (once more if that resume is also
killed) and compared with the reference: every variable of results.nc bitwise, summary.json equal
but for its timing, no temporary file left.

    python tests/kill_harness.py --experiments saxe-reduction,neurashed-ib,dense-sample --kills 20 --out /tmp/kills

prints one line per kill and a final count; ``tests/test_kill_harness.py`` runs a few in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHOSEN = ("checkpoint-write", "checkpoint-write#2", "checkpoint-saved#2", "results-write", "summary-write", "figure-write",
          "figure-write#2", "status-write#3")


def _command(name: str, out: Path, every: int, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "jaxdyn", "run", name, "--quick", "--out", str(out), "--no-progress",
           "--checkpoint-every", str(every)]
    return cmd + (["--resume"] if resume else [])


def _run(cmd: list[str], env_extra: dict | None = None, kill_after: float | None = None, timeout: float = 900) -> int:
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {err[-2000:]}")
    return proc.returncode


def _summary(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    summary.pop("elapsed_s", None)
    return summary


def compare(reference: Path, folder: Path) -> list[str]:
    """What differs between two run folders: results.nc variables (bitwise), summary.json (timing
    aside), leftover temporary files or checkpoints, the state."""
    import xarray as xr

    problems = []
    status = json.loads((folder / "status.json").read_text())
    if status.get("state") != "complete":
        problems.append(f"state {status.get('state')}")
    a = xr.load_dataset(reference / "results.nc", engine="h5netcdf")
    b = xr.load_dataset(folder / "results.nc", engine="h5netcdf")
    if set(a.variables) != set(b.variables):
        problems.append(f"variables differ: {sorted(set(a.variables) ^ set(b.variables))}")
    for name in set(a.variables) & set(b.variables):
        x, y = a[name].values, b[name].values
        same = x.shape == y.shape and (np.array_equal(x, y, equal_nan=True) if x.dtype.kind in "fc" else np.array_equal(x, y))
        if not same:
            problems.append(f"results.nc {name} differs")
    if a.attrs != b.attrs:
        problems.append("results.nc attributes differ")
    if _summary(reference) != _summary(folder):
        problems.append("summary.json differs")
    left = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] + (["checkpoints/"] if (folder / "checkpoints").exists() else [])
    if left:
        problems.append(f"left behind: {left}")
    return problems


def kill_and_resume(name: str, reference: Path, work: Path, *, point: str | None = None, delay: float | None = None,
                    every: int) -> dict:
    """One kill (at ``point``, or after ``delay`` seconds) and the resumes until complete."""
    out = work / "runs"
    shutil.rmtree(out, ignore_errors=True)
    env = {"JAXDYN_KILL_AT": point} if point else {}
    first = _run(_command(name, out, every, resume=False), env, kill_after=delay)
    resumes = 0
    while not (out / name / "status.json").exists() or json.loads((out / name / "status.json").read_text())["state"] != "complete":
        _run(_command(name, out, every, resume=True))
        resumes += 1
        if resumes > 3:
            break
    problems = compare(reference, out / name) if (out / name / "results.nc").exists() else ["no results.nc"]
    return {"experiment": name, "point": point, "delay": delay, "killed": first == -signal.SIGKILL, "resumes": resumes,
            "problems": problems}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", default="saxe-reduction")
    parser.add_argument("--kills", type=int, default=20, help="kills in all (rounds over the experiments alternate chosen points and random moments)")
    parser.add_argument("--every", type=int, default=0, help="--checkpoint-every (0: about 10 per training call)")
    parser.add_argument("--out", default="/tmp/jaxdyn-kills")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(args.out)
    names = args.experiments.split(",")
    plans = []
    for name in names:
        ref = work / name / "reference"
        shutil.rmtree(ref, ignore_errors=True)
        start = time.perf_counter()
        every = args.every or _default_every(name)
        _run(_command(name, ref, every, resume=False))
        plans.append((name, ref / name, time.perf_counter() - start, every))
    results = []
    for k in range(args.kills):
        name, ref, seconds, every = plans[k % len(plans)]
        # Rounds over the experiments alternate: a chosen point (in CHOSEN's order), then a random
        # moment, so that any number of kills has both kinds; past CHOSEN, random only.
        round_ = k // len(plans)
        chosen = round_ // 2
        if round_ % 2 == 0 and chosen < len(CHOSEN):
            r = kill_and_resume(name, ref, work / name, point=CHOSEN[chosen], every=every)
        else:
            r = kill_and_resume(name, ref, work / name, delay=rng.uniform(0.5, seconds), every=every)
        results.append(r)
        when = r["point"] or f"after {r['delay']:.1f} s"
        print(f"{name:>22} kill {when:<22} killed={r['killed']!s:<5} resumes={r['resumes']} "
              f"{'bitwise identical' if not r['problems'] else '; '.join(r['problems'])}", flush=True)
    killed = sum(r["killed"] for r in results)
    good = sum(not r["problems"] for r in results)
    at_random = [r for r in results if r["point"] is None]
    print(f"kills attempted {len(results)} ({len(results) - len(at_random)} at chosen points, {len(at_random)} at random moments), "
          f"processes killed {killed} ({sum(r['killed'] for r in at_random)} of them at random moments), "
          f"runs identical after resume {good} of {len(results)}")
    return 0 if good == len(results) else 1


def _default_every(name: str) -> int:
    """A checkpoint interval giving a few checkpoints per training call of the quick preset."""
    from jaxdyn import experiments

    config = experiments.get(name).config.quick()
    steps = getattr(config, "num_steps", None)
    return max(1, int(steps) // 4) if isinstance(steps, int) else 10


if __name__ == "__main__":
    sys.exit(main())
