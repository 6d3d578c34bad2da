"""SIGKILL at the moments most likely to corrupt a run folder, then --resume: bitwise identical.

A few kills per experiment family here (the script ``tests/kill_harness.py`` runs many more, at
random moments too); each compares every variable of results.nc and summary.json (timing aside)
with an uninterrupted run and checks that no temporary file or checkpoint is left behind.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import kill_harness  # noqa: E402

CASES = {
    "saxe-reduction": ["checkpoint-write#2", "results-write", "figure-write"],
    "neurashed-ib": ["checkpoint-saved#2", "summary-write"],
}


# neurashed-ib's kill and resume through the CLI is also in test_neurashed_experiments.py; here it
# is in the slow tier (a minute of CI's two cores).
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "neurashed-ib" else n for n in sorted(CASES)])
def test_kills_at_chosen_moments_resume_bitwise(name, tmp_path):
    every = kill_harness._default_every(name)
    kill_harness._run(kill_harness._command(name, tmp_path / "reference", every, resume=False))
    reference = tmp_path / "reference" / name
    for point in CASES[name]:
        result = kill_harness.kill_and_resume(name, reference, tmp_path / "work", point=point, every=every)
        assert result["killed"], result
        assert result["problems"] == [], result
