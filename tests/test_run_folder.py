"""The run layer's folder: one writer at a time, strict JSON, no temporary left behind, true errors."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jaxdyn import cli
from jaxdyn.store import atomic_write, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A stand-in experiment without JAX: it sleeps, so the two processes overlap, then returns a tiny Result.
RACER = textwrap.dedent("""
    import os, sys, time
    import numpy as np, xarray as xr
    from jaxdyn import claims
    from jaxdyn.experiments.base import Config, Experiment, Figure, Result
    from jaxdyn.store import RunFolderError, run

    class C(Config):
        pass

    def go(config, ctx):
        time.sleep(0.3)
        ds = xr.Dataset({{"who": ("seed", np.array([os.getpid()]), {{"long_name": "writer's process id", "units": "1"}})}})
        return Result(ds, [claims.check("c", "a claim", 1.0, ">", 0.0, kind="sanity", why="test", threshold_source="t")], {{}},
                      {{"pid": os.getpid()}})

    exp = Experiment(name="race", work="test", description="two writers", config=C, run=go)
    go_file = {go!r}
    while not os.path.exists(go_file):  # the barrier: both start together
        time.sleep(0.001)
    try:
        run(exp, out={out!r})
        print("ran", os.getpid())
    except RunFolderError as exc:
        print("refused", exc)
""")


def test_two_processes_released_together_never_share_a_run_folder(tmp_path):
    outcomes = []
    for attempt in range(6):
        out = tmp_path / f"out{attempt}"
        go = tmp_path / f"go{attempt}"
        code = RACER.format(go=str(go), out=str(out))
        procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        go.touch()
        results = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [r[1][-1500:] for r in results]
        lines = sorted(r[0].strip() for r in results)
        ran = [line for line in lines if line.startswith("ran")]
        refused = [line for line in lines if line.startswith("refused")]
        assert len(ran) == 1 and len(refused) == 1, lines
        # The second was refused whether the first was still running or had finished.
        assert "is being run by process" in refused[0] or "holds a complete run" in refused[0], refused
        outcomes.append("while running" if "being run" in refused[0] else "after it finished")
        # The folder holds one run, whole: its results and summary are the winner's.
        winner = int(ran[0].split()[1])
        summary = json.loads((out / "race" / "summary.json").read_text())
        import xarray as xr

        assert summary["numbers"]["pid"] == winner
        assert int(xr.load_dataset(out / "race" / "results.nc")["who"].values[0]) == winner
        assert json.loads((out / "race" / "status.json").read_text())["pid"] == winner
    print("second process refused:", {k: outcomes.count(k) for k in set(outcomes)})


def test_summary_is_strict_json_with_null_for_nan(tmp_path):
    write_json(tmp_path / "s.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": np.float32("nan"), "d": np.arange(2)})
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": None, "d": [0, 1]}


def test_concurrent_atomic_writes_use_their_own_temporaries(tmp_path):
    # Two writers of one file at once (two processes writing the same figure): each through its own
    # temporary, so the file is one of the two, whole, and nothing is left.
    target = tmp_path / "fig.png"
    seen = []

    def slow(payload):
        def write(p):
            seen.append(p.name)
            if len(seen) == 1:  # the first writer is overtaken by a second in the middle
                atomic_write(target, slow(b"second"))
            p.write_bytes(payload)
        return write

    atomic_write(target, slow(b"first"))
    assert len(set(seen)) == 2 and target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


@pytest.mark.parametrize("make", ["file", "unwritable", "nul"])
def test_a_bad_out_is_one_true_line_and_exit_2(tmp_path, capsys, make):
    if make == "file":
        out = tmp_path / "a-file"
        out.write_text("x")
        expected = "exists and is not a folder"
        out = str(out)
    elif make == "unwritable":
        if os.geteuid() == 0:  # root writes anywhere but in sysfs
            out = "/sys/jaxdyn-test-out"
            if not os.path.isdir("/sys") or os.path.exists(out):
                pytest.skip("no sysfs to refuse even root")
        else:
            ro = tmp_path / "ro"
            ro.mkdir()
            ro.chmod(0o500)
            out = str(ro / "sub")
        expected = "cannot create"
    else:
        out, expected = str(tmp_path / "a\x00b"), "NUL character"
    assert cli.main(["run", "saxe-reduction", "--quick", "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("jaxdyn: error: --out:") and expected in err[-1], err
    assert len([line for line in err if "error" in line]) == 1
