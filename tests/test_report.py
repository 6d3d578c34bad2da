"""jaxdyn report: one self-contained HTML page from real quick runs."""

import html
import json
import re
import shutil
import subprocess

import pytest

from jaxdyn import experiments
from jaxdyn.report import build_report, find_runs
from jaxdyn.store import RunDir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    experiments.run("saxe-reduction", experiments.get("saxe-reduction").config.quick(), out=str(out))
    # A run that crashed: status says so, there is no summary.
    crashed = RunDir(out, "crashed-run")
    crashed.start({"lr": 0.1})
    crashed.fail(RuntimeError("device lost"))
    # A run killed before it could record anything but its start.
    RunDir(out, "killed-run").start({"lr": 0.1})
    page = build_report(find_runs([out]), out / "report.html")
    return out, page, page.read_text()


def test_report_holds_claims_figures_and_versions(report):
    out, page, text = report
    summary = json.loads((out / "saxe-reduction" / "summary.json").read_text())
    held = sum(c["held"] for c in summary["claims"])
    assert f"Claims: {held} of {len(summary['claims'])} held" in text
    for claim in summary["claims"]:
        assert html.escape(claim["claim"]) in text
    # Figures are embedded, not linked: the page stands alone.
    assert text.count("data:image/png;base64,") == 2
    assert not re.search(r'src="(?!data:)', text)
    assert "jax" in text and "cpu" in text.lower()


def test_failed_and_interrupted_runs_show_as_such(report):
    _, _, text = report
    assert "crashed-run" in text and "RuntimeError: device lost" in text
    assert "state-failed" in text and "state-running" in text  # the killed run never finished
    assert "did not finish" in text


def test_missing_run_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        build_report([tmp_path / "nope"], tmp_path / "r.html")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); the HTML is checked above without it")
def test_report_renders_in_headless_chromium(report, tmp_path):
    _, page, _ = report
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "Claims:" in dom.stdout, dom.stderr[-2000:]
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()],
                   capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000


def test_report_command(report, tmp_path, capsys):
    from jaxdyn import cli

    out, _, _ = report
    assert cli.main(["report", str(out), "--out", str(tmp_path / "r.html")]) == 0
    assert "Claims:" in (tmp_path / "r.html").read_text()
    assert cli.main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "x.html")]) == 2
    assert "not a jaxdyn run directory" in capsys.readouterr().err
