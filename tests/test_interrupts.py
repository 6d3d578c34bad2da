"""Ctrl-C at any moment of ``jaxdyn run`` ends with exit code 130 and one true line, never a
traceback or a crash; the run folder then says interrupted (or complete, if it had finished)."""

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.5, 6.0], ids=["importing", "importing-jax", "early", "training"])
def test_ctrl_c_exits_130_with_a_true_message(tmp_path, delay):
    proc = subprocess.Popen([sys.executable, "-m", "jaxdyn", "run", "saxe-modes", "--quick", "--out", str(tmp_path),
                             "--no-progress", "--checkpoint-every", "50"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    if proc.poll() is not None:
        pytest.skip(f"the run finished in under {delay} s")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("jaxdyn: interrupted (Ctrl-C)"), last
    status_file = tmp_path / "saxe-modes" / "status.json"
    if status_file.exists():
        state = json.loads(status_file.read_text())["state"]
        assert state in ("interrupted", "complete"), state
        assert ("complete" in last) == (state == "complete")
        if state == "interrupted":
            kept = sorted((tmp_path / "saxe-modes" / "checkpoints").glob("call_*/step_*.npz"))
            assert ("checkpoint(s) kept" in last) == bool(kept), (last, kept)
    else:
        assert "nothing was written" in last


class _InterruptedAfterAWrite(io.StringIO):
    """A stderr on which Ctrl-C arrives just after the write of the run's first line returns, the
    moment at which print() has written a line's text but not yet its newline."""

    fired = False

    def write(self, s):
        written = super().write(s)
        if not self.fired and "running" in s:
            self.fired = True
            raise KeyboardInterrupt
        return written


def test_an_interrupt_right_after_a_line_starts_the_message_on_a_line_of_its_own(tmp_path, monkeypatch):
    from jaxdyn import cli

    stream = _InterruptedAfterAWrite()
    monkeypatch.setattr(sys, "stderr", stream)
    code = cli.main(["run", "saxe-modes", "--quick", "--out", str(tmp_path), "--no-progress"])
    assert code == 130 and stream.fired
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 2)[:2] for line in lines] == [["jaxdyn:", "running"], ["jaxdyn:", "interrupted"]], lines
    assert lines[-1].endswith("nothing was written"), lines
