"""Dense-sample faces: time to generate the paper set and to run the shortcut diagnostics.

The paper set is 5 identities x 9 poses x 64 lights at 128 x 128 (2880 images). Each setting is
timed ``--repeats`` times, settings interleaved (so that a change in the machine's load falls on
all of them), after one untimed call that compiles the renderer; the median wall and process CPU
time are reported with the 1-minute load average seen at each repeat (the CPU time of this
process is the steadier number on a shared machine). Run from the repository root:

    python benchmarks/bench_faces.py [--size 128] [--repeats 3] [--out bench_faces.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info  # noqa: E402  (benchmarks/_common.py)

from jaxdyn.tasks import faces  # noqa: E402


def _timed(call):
    wall, cpu = time.perf_counter(), time.process_time()
    out = call()
    return out, time.perf_counter() - wall, time.process_time() - cpu, os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--identities", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    settings = {"no cast shadows": dict(cast_shadows=False), "cast shadows": dict(cast_shadows=True)}
    for kw in settings.values():  # compile the renderer for each setting
        faces.generate_faces(args.identities, args.size, **kw)
    rows: dict[str, list] = {name: [] for name in settings}
    rows["shortcut_diagnostics"] = []
    for _ in range(args.repeats):
        for name, kw in settings.items():
            ds, wall, cpu, load = _timed(lambda: faces.generate_faces(args.identities, args.size, **kw))
            rows[name].append((wall, cpu, load))
        _, wall, cpu, load = _timed(lambda: faces.shortcut_diagnostics(ds))
        rows["shortcut_diagnostics"].append((wall, cpu, load))
    result = {
        "machine": machine_info(),
        "images": int(args.identities * 9 * 64),
        "size": args.size,
        "timings": {name: {"wall_s": statistics.median(r[0] for r in rs), "cpu_s": statistics.median(r[1] for r in rs),
                           "load1": [round(r[2], 2) for r in rs]} for name, rs in rows.items()},
    }
    for name, t in result["timings"].items():
        print(f"{name:>22s}: wall {t['wall_s']:6.1f} s  cpu {t['cpu_s']:6.1f} s  load {t['load1']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
