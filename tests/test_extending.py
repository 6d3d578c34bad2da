"""EXTENDING.md's worked example runs as written and writes a complete run folder."""

import json
import re
import sys
import types
from pathlib import Path

import numpy as np

GUIDE = Path(__file__).resolve().parents[1] / "EXTENDING.md"


def test_the_worked_example_runs_and_its_claim_could_fail(tmp_path):
    code = re.search(r"<!-- worked example -->\n```python\n(.*?)```", GUIDE.read_text(), re.S).group(1)
    assert 25 <= len(code.strip().splitlines()) <= 50
    module = types.ModuleType("teacher_example")
    sys.modules[module.__name__] = module  # a real module: its functions are hashable and picklable by name
    exec(compile(code, str(GUIDE), "exec"), module.__dict__)
    from jaxdyn.store import run

    result, summary, path = run(module.EXPERIMENT, out=tmp_path)
    assert (path / "error.png").stat().st_size > 0 and (path / "results.nc").exists()
    claim = summary["claims"][0]
    assert claim["held"] and claim["kind"] == "sanity" and claim["fraction_held"] == 1.0
    assert summary["figures"] == {"error": "relative weight error: simulation against the closed form"}
    assert json.loads((path / "status.json").read_text())["state"] == "complete"
    # The claim is a real comparison: against a wrong closed form (one step fewer) it fails.
    ds = result.dataset
    assert 0.05 < float(np.median(ds["error"])) < 0.9  # the students learned, but not to the end
    wrong = np.abs(ds["error"].values - ds["theory"].values * 1.01)
    assert (wrong > 1e-4).all()
