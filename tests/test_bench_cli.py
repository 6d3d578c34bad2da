"""`jaxdyn bench`: the suites resolve to the checkout's scripts and each script parses its options.

Speed itself is never asserted in tests (it is measured in benchmarks/ and recorded in
benchmarks/RESULTS.md).
"""

import subprocess
import sys

import pytest

from jaxdyn import bench
from jaxdyn.cli import main


def test_every_suite_is_a_script_of_the_checkout():
    lines = bench.commands("all", quick=True, out="/tmp/x", extra=["--help"])
    assert [line[1].rsplit("/", 1)[1] for line in lines] == [bench.SUITES[name][0] for name in bench.ALL]
    assert set(bench.ALL) == set(bench.SUITES) - {"gpu"}  # all = the CPU suites
    for line in lines:
        assert line[0] == sys.executable and line[-3:] == ["--out", "/tmp/x", "--help"]


# Runs a script with ArgumentParser.parse_args replaced by: parse (exit 2 on a bad option), then stop.
_PARSE_ONLY = (
    "import argparse, runpy, sys\n"
    "parse = argparse.ArgumentParser.parse_args\n"
    "def parse_then_stop(self, *a, **k):\n"
    "    parse(self, *a, **k)\n"
    "    print('parsed')\n"
    "    sys.exit(0)\n"
    "argparse.ArgumentParser.parse_args = parse_then_stop\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@pytest.mark.parametrize("suite", sorted(bench.SUITES))
def test_quick_options_are_accepted_by_the_script(suite):
    (line,) = bench.commands(suite, quick=True, out="/tmp/jaxdyn-bench-test")
    done = subprocess.run([line[0], "-c", _PARSE_ONLY] + line[1:], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "parsed" in done.stdout, done.stderr[-2000:]
    bad = subprocess.run([line[0], "-c", _PARSE_ONLY] + line[1:] + ["--no-such-option"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--no-such-option" in bad.stderr


def test_unknown_suite_is_one_line_error(capsys):
    with pytest.raises(ValueError, match="suite must be one of"):
        bench.commands("nope")
    with pytest.raises(SystemExit):
        main(["bench", "nope"])
    assert "invalid choice" in capsys.readouterr().err


def test_module_entry_point_runs_a_suite_and_rejects_unknown_ones():
    # `python -m jaxdyn.bench` reaches every suite, gpu included (refused without a GPU: exit 2)
    import jax

    if jax.default_backend() != "gpu":
        done = subprocess.run([sys.executable, "-m", "jaxdyn.bench", "gpu", "--out", "/tmp/jaxdyn-bench-gpu-refused"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "no GPU backend" in done.stderr
    bad = subprocess.run([sys.executable, "-m", "jaxdyn.bench", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
