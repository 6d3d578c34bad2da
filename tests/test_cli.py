"""The jaxdyn command: list, run, and one-line errors before anything compiles."""

import json
import subprocess
import sys

import pytest
import xarray as xr

from jaxdyn import cli
from jaxdyn.experiments import ConfigError, index
from jaxdyn.experiments.saxe_reduction import SaxeReductionConfig


def test_list_names_every_experiment(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name, entry in index().items():
        assert f"[{entry.work}] {entry.description}" in out and name in out


@pytest.mark.parametrize("args", [["--help"], ["list"], ["run", "--help"]])
def test_help_and_list_import_neither_jax_nor_an_experiment(args):
    # What makes them answer at once: the registry is read from the sources.
    code = (f"import sys\nfrom jaxdyn.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m == 'jax' or m.startswith('jaxdyn.experiments.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.strip().splitlines()[-1]
    assert loaded in ("LOADED []", "LOADED ['jaxdyn.experiments.base']"), loaded


def test_a_complete_run_is_not_replaced_without_force(tmp_path, capsys):
    args = ["run", "saxe-reduction", "--quick", "--out", str(tmp_path), "--no-progress", "--set", "lr=0.02"]
    assert cli.main(args) == 0
    run = tmp_path / "saxe-reduction"
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "custom" and config["command"].startswith("jaxdyn run saxe-reduction --quick")
    (run / "stale-figure.png").write_bytes(b"not a figure of this run")
    capsys.readouterr()
    assert cli.main(args) == 2
    assert "holds a complete run; --force replaces it" in capsys.readouterr().err
    assert (run / "stale-figure.png").exists()  # refused: nothing touched
    assert cli.main(args + ["--force"]) == 0
    assert not (run / "stale-figure.png").exists()  # --force cleared the old outputs first
    assert json.loads((run / "status.json").read_text())["state"] == "complete"


def test_config_file_is_validated_like_set(tmp_path, capsys):
    good = tmp_path / "c.toml"
    good.write_text('lr = 0.02\ndeltas = [10.0, 45.0]\n')
    assert cli.main(["run", "saxe-reduction", "--quick", "--config", str(good), "--dry-run"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["lr"] == 0.02 and shown["config"]["deltas"] == [10.0, 45.0]
    bad = tmp_path / "c.json"
    bad.write_text('{"lr": -1}')
    assert cli.main(["run", "saxe-reduction", "--config", str(bad), "--dry-run"]) == 2
    assert f"--config: {bad}: lr: must be > 0" in capsys.readouterr().err
    bad.write_text('{"kapa": 1}')
    assert cli.main(["run", "saxe-reduction", "--config", str(bad), "--dry-run"]) == 2
    assert "kapa: unknown field (did you mean kappa?)" in capsys.readouterr().err


def test_run_quick_writes_the_run_directory(tmp_path, capsys):
    assert cli.main(["run", "saxe-reduction", "--quick", "--out", str(tmp_path), "--no-progress", "--set", "lr=0.02"]) == 0
    run = tmp_path / "saxe-reduction"
    for f in ("config.json", "results.nc", "summary.json", "status.json", "alpha_beta.png", "deviation.png"):
        assert (run / f).stat().st_size > 0, f
    config = json.loads((run / "config.json").read_text())
    assert config["experiment"] == "saxe-reduction" and config["config"]["lr"] == 0.02
    assert json.loads((run / "status.json").read_text())["state"] == "complete"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["environment"]["jax"]
    ds = xr.load_dataset(run / "results.nc")
    assert ds["alpha_sim"].dims == ("seed", "time")
    assert float(ds["lr"][0]) == 0.02
    out = capsys.readouterr().out
    assert "held" in out and str(run) in out


@pytest.mark.parametrize(
    "args, field",
    [
        (["--set", "lr=abc"], "lr"),
        (["--set", "nosuchfield=1"], "nosuchfield"),
        (["--set", "deltas=5,200"], "deltas[1]"),
        (["--set", "lr"], "--set 'lr'"),
        (["--seeds", "8"], "--seeds"),
        (["--set", "lr=0.1", "--set", "lr=0.2"], "--set lr: given twice"),
        (["--set", "kapa=1"], "kapa: unknown field (did you mean kappa?)"),
    ],
)
def test_bad_configuration_is_one_line_exit_2(args, field, capsys, tmp_path):
    assert cli.main(["run", "saxe-reduction", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"jaxdyn: error: {field}")
    assert not (tmp_path / "saxe-reduction").exists()  # nothing ran


@pytest.mark.parametrize("count", ["0", " 0"])
def test_seeds_flag_is_a_positive_size(count, capsys, tmp_path):
    # dense-sample's field seeds=0 means the preset's size; --seeds 0 must not silently mean it too.
    assert cli.main(["run", "dense-sample", "--out", str(tmp_path), "--seeds", count]) == 2
    assert capsys.readouterr().err.strip() == "jaxdyn: error: --seeds: expected a positive ensemble size, got 0"


def test_unknown_experiment(capsys):
    assert cli.main(["run", "no-such-experiment"]) == 2
    err = capsys.readouterr().err
    assert "no-such-experiment" in err and "available:" in err and "saxe-reduction" in err
    assert cli.main(["run", "saxe-reductoin"]) == 2
    assert "(did you mean saxe-reduction?)" in capsys.readouterr().err


def test_console_script_exit_code():
    out = subprocess.run([sys.executable, "-m", "jaxdyn.cli", "run", "saxe-reduction", "--set", "kappa=-1"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == "jaxdyn: error: kappa: must be > 0.0, got -1.0"


def test_overrides_are_parsed_by_field_type():
    cfg = SaxeReductionConfig().with_overrides(["deltas=5, 10", "num_neurons=8", "lr=1e-3"])
    assert cfg.deltas == (5.0, 10.0) and cfg.num_neurons == 8 and cfg.lr == 1e-3
    assert SaxeReductionConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="num_neurons: expected an integer"):
        SaxeReductionConfig().with_overrides(["num_neurons=8.5"])
    lines = SaxeReductionConfig.describe()
    assert any(line.startswith("lr (float, default 0.002; > 0.0, <= 1.0)") for line in lines)
