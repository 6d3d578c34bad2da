"""`jaxdyn bench gpu` (benchmarks/bench_gpu.py): refuses without a GPU, runs every section at tiny
sizes on CPU when asked to, writes the Markdown table and the JSON it promises, and stops at its
hard time budget leaving what it measured.

No timing is asserted (the numbers of a CPU smoke run mean nothing); the rows' values are checked
to be measured (positive, finite) and to be the ones the table shows.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from jaxdyn import bench

SCRIPT = str(bench.benchmarks_dir() / "bench_gpu.py")
ROOT = str(bench.benchmarks_dir().parent)
CHEAP_TEST = "tests/test_bench_cli.py::test_unknown_suite_is_one_line_error"
on_cpu = pytest.mark.skipif(jax.default_backend() == "gpu", reason="checks the behaviour without a GPU backend")


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@on_cpu
def test_refuses_without_gpu_in_one_line(tmp_path):
    done = _run("--out", str(tmp_path / "out"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no GPU backend" in lines[0] and "--allow-cpu --tiny" in lines[0]
    assert not (tmp_path / "out").exists()
    # the full sizes are never run on a CPU, even when asked to allow it
    bad = _run("--allow-cpu", "--out", str(tmp_path / "out"))
    assert bad.returncode == 2 and "--allow-cpu needs --tiny" in bad.stderr


@on_cpu
def test_tiny_cpu_run_writes_the_table_and_json(tmp_path):
    out = tmp_path / "gpu"
    done = _run("--allow-cpu", "--tiny", "--out", str(out), "--tests", CHEAP_TEST)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "gpu.json").read_text())
    md = (out / "gpu.md").read_text()
    roof = data["roofline"]
    for key in ("matmul_float32_flops_per_s", "matmul_bfloat16_flops_per_s", "copy_bytes_per_s"):
        assert roof[key] > 0 and math.isfinite(roof[key])
    assert data["notes"] == [], data["notes"]  # nothing skipped or failed at tiny sizes
    assert {r["section"] for r in data["rows"]} == {"ensemble", "vgg", "ntk"}
    for row in data["rows"]:
        assert row["rate"] > 0 and math.isfinite(row["rate"])
        assert row["flops_per_unit"] > 0 and 0 < row["fraction_of_roofline"] and row["bound_by"] in ("compute", "memory")
        if row["section"] != "ntk":
            assert row["diverged"] == 0 and row["block_width"] >= 1
    vgg = next(r for r in data["rows"] if r["section"] == "vgg")
    assert vgg["paper_epoch_s"] == pytest.approx(72 * vgg["members"] / vgg["rate"])
    # the one Markdown table: its header, then one line per JSON row showing that row's rate
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| section | what | members / N | rate |") and "% roofline" in table[0]
    body = table[1:]
    assert len(body) == len(data["rows"])
    for line, row in zip(body, data["rows"]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == row["section"] and cells[1] == row["name"]
        assert float(cells[3].replace(",", "")) == pytest.approx(row["rate"], rel=0.01)
    tests = data["tests"]
    assert tests["passed"] == 1 and tests["failed"] == 0 and tests["exit_code"] == 0
    assert "--xla_gpu_deterministic_ops=true" in tests["xla_flags"]
    assert "1 passed" in md and (out / "tests.log").is_file()


@on_cpu
def test_budget_watchdog_stops_the_run_and_keeps_the_files(tmp_path):
    out = tmp_path / "gpu"
    done = _run("--allow-cpu", "--tiny", "--budget-s", "1", "--out", str(out), "--tests", "")
    assert done.returncode == 3, done.stderr[-3000:]
    data = json.loads((out / "gpu.json").read_text())
    assert any("budget" in note for note in data["notes"])
    assert "budget's watchdog" in (out / "gpu.md").read_text()


def test_gpu_suite_is_not_in_all_and_quick_is_tiny():
    assert "gpu" in bench.SUITES and "gpu" not in bench.ALL
    (line,) = bench.commands("gpu", quick=True, out="/tmp/o")
    assert Path(line[1]).name == "bench_gpu.py" and line[2:] == ["--tiny", "--out", "/tmp/o"]
