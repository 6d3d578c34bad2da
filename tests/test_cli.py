"""The jaxdyn command: list, run, and one-line errors before anything compiles."""

import json
import subprocess
import sys

import pytest
import xarray as xr

from jaxdyn import cli
from jaxdyn.experiments import REGISTRY, ConfigError
from jaxdyn.experiments.saxe_reduction import SaxeReductionConfig


def test_list_names_every_experiment(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in REGISTRY:
        assert name in out


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
    ],
)
def test_bad_configuration_is_one_line_exit_2(args, field, capsys, tmp_path):
    assert cli.main(["run", "saxe-reduction", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"jaxdyn: error: {field}")
    assert not (tmp_path / "saxe-reduction").exists()  # nothing ran


def test_unknown_experiment(capsys):
    assert cli.main(["run", "no-such-experiment"]) == 2
    err = capsys.readouterr().err
    assert "no-such-experiment" in err and "available:" in err and "saxe-reduction" in err


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
