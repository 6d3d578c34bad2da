"""The documentation site: it builds strictly from the source, its API reference covers every
public name, and its claim tables come from run folders (docs/gen_claims.py), never from typing.

The site build runs mkdocs in a subprocess with ``jax`` made unimportable: the reference is read
from the source by griffe, so the build needs neither JAX nor an accelerator.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLAIMS = DOCS / "works" / "claims"


def _load(name: str):
    """A module of docs/ (not a package: its scripts run as files)."""
    spec = importlib.util.spec_from_file_location(f"jaxdyn_docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


hooks = _load("hooks")
gen_claims = _load("gen_claims")

# Every public name is documented now; no entry may appear.
KNOWN_DOCSTRING_PROBLEMS = {'missing': (), 'unresolved': (), 'unknown_parameters': ()}


# --------------------------------------------------------------------------------------------
# The site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built as CI and the README build it (strict), with jax unimportable."""
    tmp = tmp_path_factory.mktemp("docs")
    poison = tmp / "poison" / "jax"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text('raise ImportError("the docs build must not import jax")\n')
    env = {**os.environ, "PYTHONPATH": str(tmp / "poison"), "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    out = tmp / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return proc, out


def test_site_builds_strictly_without_importing_jax(site):
    proc, out = site
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "WARNING" not in log, log[-4000:]
    assert (out / "index.html").exists() and (out / "reference" / "index.html").exists()


def _page_html(out: Path, page) -> str:
    """The built HTML of a reference page (directory URLs: name.md -> name/index.html)."""
    uri = page.src_uri
    return (out / (uri[:-3] + ".html" if uri.endswith("/index.md") else uri[:-3] + "/index.html")).read_text()


def test_reference_documents_every_public_name_once(site):
    proc, out = site
    assert proc.returncode == 0
    package = hooks.load_package()
    hooks.prepare_package(package)
    layout = hooks.build_layout(package)
    objects = hooks.documented_objects(package, layout)
    assert len(layout.pages) >= 10 and len(objects) > 300  # the package as it is, not an empty walk
    seen: dict[str, str] = {}
    for page in layout.pages:
        html = _page_html(out, page)
        for anchor in [page.module, *(f"{page.module}.{name}" for name in page.members)]:
            assert f'id="{anchor}"' in html, f"{anchor} has no anchor on {page.src_uri}"
            assert anchor not in seen, f"{anchor} documented on {seen[anchor]} and {page.src_uri}"
            seen[anchor] = page.src_uri
        for _, anchor in page.reexports:  # a re-export links to its home
            assert anchor in objects
    # The front page counts what it covers.
    index = (out / "reference" / "index.html").read_text()
    assert f"<strong>{len(objects)} public names</strong>" in index


def test_reference_has_a_field_table_for_every_experiment_config(site):
    proc, out = site
    package = hooks.load_package()
    layout = hooks.build_layout(package)
    configs = [obj for obj in hooks._walk(package) if obj.is_class and hooks._is_config_class(obj)
               and obj.path != "jaxdyn.experiments.base.Config"]
    assert len(configs) >= 10
    pages = {p.module: p for p in layout.pages}
    for cls in configs:
        html = _page_html(out, pages[layout.anchor(cls).rsplit(".", 1)[0]])
        assert f'id="{layout.anchor(cls)}"' in html and "<th>allowed</th>" in html, cls.path
        fields = [name for name, m in cls.members.items() if m.is_attribute and str(getattr(m, "value", "")).startswith("param(")]
        assert fields and all(f"<code>{name}</code>" in html for name in fields), cls.path


def test_work_pages_include_a_generated_table_for_every_experiment(site):
    proc, out = site
    package = hooks.load_package()
    registered = {e["name"] for module in hooks._walk(package) if module.is_module
                  for e in hooks.registered_experiments(module)}
    assert len(registered) >= 10
    included = {}
    for page in (DOCS / "works").glob("*.md"):
        for name in re.findall(r'--8<-- "([^"]+)\.md"', page.read_text()):
            included[name] = page.stem  # a run of another size sits in a subfolder: paper/dense-sample
    assert registered <= set(included), f"experiments without a section on a work page: {sorted(registered - set(included))}"
    for name, page in included.items():
        text = (CLAIMS / f"{name}.md").read_text()
        experiment = name.rsplit("/", 1)[-1]
        assert text.startswith(gen_claims.GENERATED.format(experiment=experiment)), f"{name}.md was not written by gen_claims.py"
        html = (out / "works" / page / "index.html").read_text()
        assert f"claims of {experiment}:" in html and "--8&lt;--" not in html and "--8<--" not in html


def test_extending_page_is_the_guide():
    # One source: the site's page includes EXTENDING.md (whose worked example tests/test_extending.py runs).
    assert (DOCS / "extending.md").read_text().strip() == '--8<-- "EXTENDING.md"'


# --------------------------------------------------------------------------------------------
# The docstrings


def test_no_new_docstring_problems():
    problems = hooks.docstring_problems()
    new = {kind: sorted(set(found) - set(KNOWN_DOCSTRING_PROBLEMS[kind])) for kind, found in problems.items()}
    assert not any(new.values()), f"new docstring problems (document these public names): {json.dumps(new, indent=1)}"


def test_docstrings_are_complete():
    problems = hooks.docstring_problems()
    assert not any(problems.values()), json.dumps(problems, indent=1)


# --------------------------------------------------------------------------------------------
# The reference's layout and docstring rewriting, on a small package written here

FAKE = {
    "__init__.py": '"""Top."""\nfrom jaxdyn import engine\nfrom jaxdyn.engine import train\n__all__ = ["engine", "train"]\n',
    "engine/__init__.py": '"""Engine."""\nfrom jaxdyn.engine._core import Task, train\n__all__ = ["Task", "train", "Missing"]\n',
    "engine/_core.py": '''"""Core."""


def train(task):
    """Trains; takes a :class:`Task`, see :func:`~jaxdyn.tools.public` and :func:`nothing_here`::

        train(task)
    """


class Task:
    """A task. See :meth:`run`."""

    def run(self):
        pass

    def _hidden(self):
        pass


def _private():
    """Never shown: :func:`also_nothing`."""
''',
    "tools.py": '''"""Tools."""
from os import path

CONST = 3


def public(a, b):
    """Adds.

    Args:
        a, b: the two numbers.
        c: not a parameter.
    """


def _hidden():
    pass
''',
    "experiments/__init__.py": '"""Experiments."""\n',
    "experiments/base.py": '''"""Base."""
import dataclasses


def param(default, help, **constraints):
    """A field."""
    return dataclasses.field(default=default, metadata=dict(help=help, **constraints))


class Config:
    """Base of configurations."""

    @classmethod
    def quick(cls):
        """The quick preset."""
        return cls()


class Experiment:
    """An experiment."""
''',
    "experiments/demo.py": '''"""demo: an experiment."""
import dataclasses

from jaxdyn.experiments.base import Config, Experiment, param

NAMES = {"p": print, "q": len}  # values are not constants, keys are


def available_kinds():
    """Computed at run time."""
    return ("x", "y")


@dataclasses.dataclass(frozen=True)
class DemoConfig(Config):
    """Configuration of demo."""

    n: int = param(3, "members", min=1, max=10)
    lr: float = param(0.1, "rate | step", min=0.0, max=1.0, min_exclusive=True)
    mode: str = param("a", "mode", choices=("a", "b"))
    xs: tuple[float, ...] = param((1.0,), "values", min=0.0, max_len=4)
    kind: str = param("x", "computed choices", choices=available_kinds())
    names: tuple[str, ...] = param(tuple(NAMES), "named constant", choices=tuple(NAMES))

    @classmethod
    def quick(cls):
        return cls(n=1, mode="b")


EXPERIMENTS = [Experiment(name="demo", work="W", description="a demo", config=DemoConfig, run=None)]
''',
}


@pytest.fixture
def fake_package(tmp_path):
    for rel, text in FAKE.items():
        path = tmp_path / "jaxdyn" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return hooks.load_package(tmp_path)


def test_layout_homes_pages_and_broken_exports(fake_package):
    layout = hooks.build_layout(fake_package)
    pages = {p.module: p for p in layout.pages}
    assert set(pages) == {"jaxdyn", "jaxdyn.engine", "jaxdyn.tools", "jaxdyn.experiments", "jaxdyn.experiments.base",
                          "jaxdyn.experiments.demo"}  # no page for the private _core
    # train is defined in _core, exported by engine and the top: documented at engine, the deepest __all__.
    assert layout.anchors["jaxdyn.engine._core.train"] == "jaxdyn.engine.train"
    assert pages["jaxdyn.engine"].members == ("Task", "train")
    assert pages["jaxdyn.engine"].broken == ("Missing",)
    assert pages["jaxdyn"].members == () and pages["jaxdyn"].reexports == (("train", "jaxdyn.engine.train"),)
    assert pages["jaxdyn.tools"].members == ("CONST", "public")  # not the import, not _hidden
    assert pages["jaxdyn.engine"].src_uri == "reference/jaxdyn/engine/index.md"
    assert pages["jaxdyn.tools"].src_uri == "reference/jaxdyn/tools.md"
    nav = hooks._nav(layout)
    assert {"jaxdyn.tools": "reference/jaxdyn/tools.md"} in nav
    assert {"jaxdyn.experiments": ["reference/jaxdyn/experiments/index.md", {"base": "reference/jaxdyn/experiments/base.md"},
                                   {"demo": "reference/jaxdyn/experiments/demo.md"}]} in nav


def test_docstring_problems_and_role_conversion(fake_package):
    problems = hooks.docstring_problems(fake_package)
    assert "jaxdyn.tools.CONST" in problems["missing"]
    assert "jaxdyn.engine.Task.run" in problems["missing"]
    assert "jaxdyn.experiments.demo.DemoConfig.quick" not in problems["missing"]  # inherits Config.quick's
    assert not any(m.startswith("jaxdyn.engine.train") for m in problems["missing"])
    assert problems["unresolved"] == ["jaxdyn.engine._core.train: :func:`nothing_here`"]  # private objects skipped
    assert problems["unknown_parameters"] == ["jaxdyn.tools.public: c"]  # "a, b:" documents both
    train = fake_package["engine._core.train"].docstring.value
    assert "[`Task`][jaxdyn.engine.Task]" in train and "[`public`][jaxdyn.tools.public]" in train
    assert "`nothing_here`" in train and ":func:" not in train
    assert "see [`public`][jaxdyn.tools.public] and `nothing_here`:\n" in train  # RST "::" read as ":"
    assert "[`run`][jaxdyn.engine.Task.run]" in fake_package["engine._core.Task"].docstring.value


def test_config_fields_table_and_experiment_docstring(fake_package):
    cls = fake_package["experiments.demo.DemoConfig"]
    table = hooks.config_fields_table(cls)
    rows = table.splitlines()
    assert rows[0] == "| field | type | default | quick | allowed | meaning |"
    assert rows[2] == "| `n` | int | `3` | `1` | 1 ≤ x ≤ 10 | members |"
    assert rows[3] == "| `lr` | float | `0.1` |  | 0.0 < x ≤ 1.0 | rate \\| step |"
    assert rows[4] == "| `mode` | str | `'a'` | `'b'` | one of `a`, `b` | mode |"
    assert rows[5] == "| `xs` | list of float | `(1.0,)` |  | each x ≥ 0.0; 1 to 4 values | values |"
    assert rows[6] == "| `kind` | str | `'x'` |  | one of `available_kinds()` | computed choices |"
    assert rows[7] == "| `names` | list of str | `('p', 'q')` |  | each one of `p`, `q`; at least 1 value | named constant |"
    hooks.prepare_package(fake_package)
    assert "| field | type |" in cls.docstring.value and "n" not in cls.members
    assert fake_package["experiments.demo.EXPERIMENTS"].docstring.value == "Registers `jaxdyn run demo` (work: W): a demo."


# --------------------------------------------------------------------------------------------
# The claim tables


def _write_run(folder: Path, config=None, status=None, summary=None):
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    if status is not None:
        (folder / "status.json").write_text(json.dumps(status))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))


def _claim(**values):
    return {**gen_claims.CLAIM_KEYS, **values}


NEW_CLAIMS = [
    _claim(id="beta-exceeds-alpha", statement="higher layers change more: beta > sqrt(2) alpha | always", kind="paper",
           source={"quote": "Higher layers change more: <b>beta</b> > sqrt(2) alpha for *all* t", "where": "poster, panel 3"},
           reading="at every recorded t > 0", held=True, value=0.031, comparison=">", threshold=0.0,
           threshold_source="the statement itself", per_seed=[0.03 + 0.001 * i for i in range(20)],
           seed_held=[True] * 20, fraction_held=1.0, required_fraction=1.0, margin_se=12.5, initial=0.0,
           initial_per_seed=[0.0] * 20, excluded=1, excluded_reason="1 member diverged"),
    _claim(id="kernel-slope-falls", statement="the kernel slope diminishes", kind="extension", why="the project's reading",
           held=False, value=-0.2, comparison="<", threshold=0.0, per_seed=[-0.5, 0.25, 1.5], seed_held=[True, False, False],
           fraction_held=1 / 3, required_fraction=0.9, margin_se=-1.25),
    _claim(id="loss-finite", statement="every loss is finite", kind="sanity", why="checks the code", held=True, value=None),
]


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    common = {"state": "complete", "started": 1.7e9, "finished": 1.7e9 + 60, "jaxdyn": "0.2.0", "jax": "0.10.2", "backend": "cpu"}
    _write_run(root / "saxe-reduction",
               config={"experiment": "saxe-reduction", "preset": "default", "command": "jaxdyn run saxe-reduction", "config": {}},
               status=common,
               summary={"experiment": "saxe-reduction", "work": "Saxe", "claims": NEW_CLAIMS, "elapsed_s": 12.3,
                        "skipped_members": {"members": 21, "skipped": 1, "reasons": [{"member": 3, "reason": "diverged at step 120"}]},
                        "environment": {"jaxdyn": "0.2.0", "jax": "0.10.2", "backend": "cpu"}})
    # Before 0.2.0: claim/held/value/threshold, NaN written as NaN, no preset or command.
    (root / "rbe-response").mkdir(parents=True)
    (root / "rbe-response" / "config.json").write_text('{"experiment": "rbe-response", "config": {}}')
    (root / "rbe-response" / "status.json").write_text(json.dumps(common))
    (root / "rbe-response" / "summary.json").write_text(
        '{"claims": [{"claim": "aging follows a power law", "held": true, "value": 0.5, "threshold": 0.1},'
        ' {"claim": "aging follows a power law", "held": false, "value": NaN, "threshold": null}],'
        ' "skipped_members": {"members": 4, "skipped": 1, "diverged": [{"member": 2, "step": 7}], "ode_failed": []}}')
    _write_run(root / "dense-sample", config={"experiment": "dense-sample", "config": {}},
               status={"state": "failed", "error": "ValueError: lr: must be > 0", "started": 1.7e9})
    # A second, later but failed, run of saxe-reduction elsewhere: the complete one is kept.
    _write_run(tmp_path / "other" / "saxe-reduction", config={"experiment": "saxe-reduction", "config": {}},
               status={"state": "failed", "started": 1.8e9, "finished": 1.8e9})
    return root


def _render(markdown_text: str) -> str:
    import markdown

    return markdown.markdown(markdown_text, extensions=["tables", "admonition", "pymdownx.details", "attr_list", "md_in_html"])


def test_claims_include_new_format(runs, tmp_path):
    written = gen_claims.write_includes([runs, tmp_path / "other"], tmp_path / "out")
    assert sorted(p.name for p in written) == ["dense-sample.md", "rbe-response.md", "saxe-reduction.md"]
    text = (tmp_path / "out" / "saxe-reduction.md").read_text()
    assert text.startswith(gen_claims.GENERATED.format(experiment="saxe-reduction"))
    assert "`jaxdyn run saxe-reduction` · preset default · state complete · 2023-11-14 22:14 UTC · 12.3 s" in text
    assert "Claims held: paper 1/1 · extension 0/1 · sanity 1/1." in text
    assert "Members left out of the summary: 1 of 21 (member 3: diverged at step 120)." in text
    html = _render(text)
    rows = re.findall(r"<tr>\s*<td>(.*?)</tr>", html, re.S)
    assert len(rows) == 3  # the "|" in a statement does not split its row
    cells = [re.findall(r"<td>(.*?)</td>", "<td>" + row) for row in rows]
    assert all(len(c) == 6 for c in cells)
    assert cells[0][2:] == ["0.031 &gt; 0", "20/20 (needs 100%)", "12.5", "held"]
    assert cells[1][2:] == ["-0.2 &lt; 0", "1/3 (needs 90%)", "-1.25", "<strong>not held</strong>"]
    assert cells[2][2:] == ["—", "—", "—", "held"]
    assert 'href="#saxe-reduction--kernel-slope-falls"' in cells[1][0]
    for claim in NEW_CLAIMS:  # every row links to its details
        assert f'id="saxe-reduction--{claim["id"]}"' in html
    # The quote is shown as text, never as markup.
    assert "&lt;b&gt;beta&lt;/b&gt;" in html and "<b>beta</b>" not in html and "<em>all</em>" not in html
    assert "— poster, panel 3" in html
    assert "Reading: at every recorded t &gt; 0" in html and "Why: the project's reading" in html
    assert "Seeds held: 1/3 (needs 90%); margin -1.25 seed-bootstrap SE" in html
    assert "At initialisation: 0 (final 0.031)" in html and "Members left out: 1 (1 member diverged)" in html
    assert "Per-seed values (seed order): -0.5, 0.25, 1.5" in html  # short lists inline
    assert '<details class="note">' in html and "Per-seed values (20 seeds, seed order)" in html  # long ones folded
    assert "0.03, 0.031, 0.032" in html


def test_claims_include_old_format_failed_run_and_duplicates(runs, tmp_path):
    gen_claims.write_includes([runs, tmp_path / "other"], tmp_path / "out")
    old = (tmp_path / "out" / "rbe-response.md").read_text()
    assert "command not recorded · preset not recorded" in old
    gen_claims.write_includes([runs], tmp_path / "stated", assumed_preset="quick")
    stated = (tmp_path / "stated" / "rbe-response.md").read_text()
    assert "preset quick (as stated to gen_claims.py; the run folder, from before jaxdyn 0.2.0, does not record it)" in stated
    assert "preset default ·" in (tmp_path / "stated" / "saxe-reduction.md").read_text()  # recorded wins
    with pytest.raises(ValueError, match="assumed_preset"):
        gen_claims.write_includes([runs], tmp_path / "stated", assumed_preset="fast")
    assert "Claims held: unclassified 1/2." in old and "Members left out of the summary: 1 of 4 (member 2: diverged at step 7)." in old
    html = _render(old)
    assert 'id="rbe-response--aging-follows-a-power-law"' in html and 'id="rbe-response--aging-follows-a-power-law-2"' in html
    assert "NaN" in html and "0.5 (threshold 0.1)" in html
    failed = (tmp_path / "out" / "dense-sample.md").read_text()
    assert "The run did not complete (state: failed; ValueError: lr: must be &gt; 0)" in failed
    assert "Claims held" not in failed
    # The complete saxe-reduction run was chosen over the later failed one.
    assert "Claims held: paper 1/1" in (tmp_path / "out" / "saxe-reduction.md").read_text()


def test_gen_claims_command_line(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert gen_claims.main([str(runs), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dense-sample.md", "rbe-response.md", "saxe-reduction.md"]
    assert gen_claims.main(["--placeholder", "saxe-depth", "--out", str(out)]) == 0
    assert "Not generated yet" in (out / "saxe-depth.md").read_text()
    capsys.readouterr()
    assert gen_claims.main([str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert gen_claims.main([str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "holds no run folder" in capsys.readouterr().err
    assert gen_claims.main(["--placeholder", "Bad Name", "--out", str(out)]) == 2
    with pytest.raises(SystemExit):
        gen_claims.main([])
    bad = tmp_path / "bad" / "x"
    bad.mkdir(parents=True)
    (bad / "config.json").write_text("{not json")
    assert gen_claims.main([str(bad), "--out", str(out)]) == 2
    assert "config.json: not valid JSON" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Release files


def _pyproject_version() -> str:
    return re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)


def test_readme_says_how_to_build_and_open_the_docs():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Documentation\n", 1)[1].split("\n## ", 1)[0]
    assert 'pip install -e ".[docs]"' in section and "mkdocs build --strict" in section  # what the site fixture runs
    assert "build/site/index.html" in section and "site_dir: build/site" in (ROOT / "mkdocs.yml").read_text()


def test_release_files_agree_with_pyproject():
    import yaml

    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = { text = "MIT" }' in pyproject and "License :: OSI Approved :: MIT License" in pyproject
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    assert citation["version"] == _pyproject_version()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{_pyproject_version()}]" in changelog and "## [0.1.0]" in changelog
    assert "jaxdyn[docs]" in pyproject.split("test = [", 1)[1].split("]\n", 1)[0] + "]"
