"""Executes the notebooks in place so they are stored with their outputs.

    python notebooks/execute.py [NAME.ipynb ...] [--full]

Each notebook runs top to bottom against this checkout's jaxdyn, with its first cell's flag set
to ``QUICK = True`` (the tests' size; ``--full`` runs the full size instead), and is written back
with its outputs; the flag is restored to ``QUICK = False`` in the stored source, so a reader
re-running it gets the full size. The tests (tests/test_notebooks.py) execute them again at quick
size and check that the stored outputs are complete and free of errors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent
FLAG_OFF, FLAG_ON = "QUICK = False", "QUICK = True"


def first_code_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


def execute(path: Path, *, quick: bool = True, workdir: Path | None = None) -> nbformat.NotebookNode:
    """Runs notebook ``path`` (QUICK as asked) in ``workdir`` and returns it with its outputs,
    its flag cell showing ``QUICK = False``. Raises nbclient's CellExecutionError on an error."""
    nb = nbformat.read(path, as_version=4)
    cell = first_code_cell(nb)
    if FLAG_OFF not in cell.source:
        raise ValueError(f"{path.name}: the first code cell must set {FLAG_OFF!r}")
    if quick:
        cell.source = cell.source.replace(FLAG_OFF, FLAG_ON)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    workdir = workdir or HERE
    nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    cell.source = cell.source.replace(FLAG_ON, FLAG_OFF)
    return nb


def main(argv: list[str]) -> int:
    full = "--full" in argv
    names = [a for a in argv if not a.startswith("--")]
    paths = [HERE / n for n in names] if names else sorted(HERE.glob("*.ipynb"))
    import tempfile

    for path in paths:
        with tempfile.TemporaryDirectory() as tmp:  # runs/ and figures a notebook writes go here
            nb = execute(path, quick=not full, workdir=Path(tmp))
        nbformat.write(nb, path)
        print(f"executed {path.name} ({'full' if full else 'quick'} size)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
