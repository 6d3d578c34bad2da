"""Every notebook in notebooks/ runs top to bottom at quick size (its QUICK flag set to True), and
is stored with the outputs of such a run (``python notebooks/execute.py`` regenerates them)."""

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

HERE = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(HERE.glob("*.ipynb"))
sys.path.insert(0, str(HERE))
import execute  # noqa: E402


def test_notebooks_exist():
    names = {nb.name for nb in NOTEBOOKS}
    assert {"quickstart.ipynb", "build_your_own.ipynb"} <= names, names


# These run the quick presets of experiments their own test modules run too (six rbe-*, four
# neurashed-* and local-elasticity, six saxe-*, dense-sample): about 10 minutes of CI's two cores
# together. quickstart and build_your_own, which teach the API, run in every CI run.
SLOW = {"training_response.ipynb", "neurashed.ipynb", "saxe.ipynb", "dense_sample.ipynb", "infinite_width.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_with_outputs(path):
    stored = nbformat.read(path, as_version=4)
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), f"{path.name}: stored without outputs; run python notebooks/execute.py"
    assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"], f"{path.name}: stored with an error"
    for cell in code:  # every cell at least parses (the slow tier executes them)
        compile("\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))), path.name, "exec")


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW else p for p in NOTEBOOKS],
                         ids=lambda p: p.name)
def test_notebook_runs_at_quick_size(path, tmp_path):
    nb = execute.execute(path, quick=True, workdir=tmp_path)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
