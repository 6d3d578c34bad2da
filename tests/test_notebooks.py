"""Every notebook in notebooks/ runs top to bottom at quick size (its QUICK flag set to True)."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_notebooks_exist():
    assert any(nb.name == "quickstart.ipynb" for nb in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_at_quick_size(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        assert not cell.get("outputs"), f"{path.name}: stored with outputs; clear them before committing"
    sizes = next(c for c in nb.cells if c.cell_type == "code")
    assert "QUICK = False" in sizes.source, f"{path.name}: the first code cell must set QUICK = False"
    sizes.source = sizes.source.replace("QUICK = False", "QUICK = True")
    monkeypatch.chdir(tmp_path)  # anything a notebook writes lands here
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
