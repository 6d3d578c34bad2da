"""The README's Python API snippet runs as written, its Quickstart is what CI runs, and its
experiment table is the registry's."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_api_snippet_runs(tmp_path, monkeypatch):
    code = re.search(r"## Python API\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)  # the snippet's experiment run writes runs/ here
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    result = namespace["result"]
    assert result.records["loss"].shape == (256, 11)
    assert (result.diverged_at == -1).all()
    assert (tmp_path / "runs" / "saxe-reduction" / "summary.json").exists()


def test_quickstart_has_exactly_two_commands():
    text = README.read_text()
    quick = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quick, re.S)
    assert [c.strip() for c in commands] == ['pip install . && jaxdyn run saxe-reduction', 'pip install -e ".[test]" && python -m pytest']
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1].strip() in ci


def test_the_experiment_table_is_the_registry():
    from jaxdyn.cli import markdown_table
    from jaxdyn.experiments import index

    text = README.read_text()
    assert markdown_table(index()) in text, "regenerate the table with: jaxdyn list --markdown"
