"""neurashed-ib, neurashed-batch and neurashed-elasticity on small presets, and neurashed-ib killed
with SIGKILL mid-run then resumed (bitwise identical results.nc)."""

import dataclasses
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from jaxdyn import cli
from jaxdyn.experiments import ConfigError
from jaxdyn.experiments import neurashed_batch, neurashed_elasticity, neurashed_ib
from jaxdyn.experiments.neurashed_batch import NeurashedBatchConfig
from jaxdyn.experiments.neurashed_elasticity import NeurashedElasticityConfig
from jaxdyn.experiments.neurashed_ib import NeurashedIBConfig
from jaxdyn.store import execute


@pytest.fixture(scope="module")
def ib():
    return execute(neurashed_ib.EXPERIMENT, NeurashedIBConfig.quick())


@pytest.fixture(scope="module")
def batch():
    return execute(neurashed_batch.EXPERIMENT, NeurashedBatchConfig.quick())


@pytest.fixture(scope="module")
def elasticity():
    config = NeurashedElasticityConfig(seeds=3, ms=(10, 60), b_pairs=(2, 3), num_levels=3, levels_sweep=(3, 6), epochs=20)
    return config, execute(neurashed_elasticity.EXPERIMENT, config)


def test_ib_fitting_then_compression(ib):
    s = ib.numbers
    # Level 2: from noise (~0 bits) up to about log2 4 = 2 bits, then down to log2 2 = 1 bit,
    # keeping the label (1 bit).
    assert s["level2_I_TX_initial_mean"] < 0.1
    assert 1.5 <= s["level2_I_TX_peak_mean"] <= 2.6
    assert abs(s["level2_I_TX_final_mean"] - 1.0) < 0.05
    assert s["level2_I_TY_final_mean"] > 0.95
    assert 100 <= s["level2_I_TX_peak_step_mean"] <= 800
    ds = ib.dataset
    assert ds["I_TX"].dims == ("seed", "time", "level") and ds["I_TX"].shape == (3, 51, 2)
    # Information is bounded by the entropies: 3 bits of input, 1 bit of label.
    assert ds["I_TX"].values.max() <= 3.0 + 1e-9 and ds["I_TY"].values.max() <= 1.0 + 1e-9
    assert (ds["diverged_at"].values == -1).all()


def test_batch_small_batches_are_sparser_and_theory_is_exact(batch):
    s = batch.numbers
    for key in ("figure5_iterations", "figure5_samples", "family_iterations", "family_samples"):
        eff = s[key]["effective_fraction_mean"]
        assert eff[0] < eff[1] - (0.1 if key == "figure5_iterations" else 0.4), (key, eff)
        # B = 1 and B = 8 (full batch) with epoch sampling: every node's count k_F is exact, so
        # lambda(0) a+^k a-^(t-k) is the simulation to rounding; a wrong rule or pathway fails.
        assert s[key]["max_abs_theory_minus_simulation"] < 1e-9
        assert s[key]["seeds_sparser_with_small_batch"] == 1.0
    assert all(c.held for c in batch.claims)
    # Full batch: all pathway nodes of a class grow alike, so the core holds only its share.
    assert s["family_iterations"]["core_share_mean"][1] < 0.5 < s["family_iterations"]["core_share_mean"][0]


def test_elasticity_limits_and_expansion(elasticity):
    config, result = elasticity
    s = result.numbers
    rows = {r["m"]: r for r in s["theorem1_over_m"]}
    # Disjoint class nodes: the simulation is the expansion (initial factors ~1e-2 vs c t ~ 40).
    assert s["expansion_largest_error_disjoint_graphs"] < 2e-3
    # Larger m: closer to the limit; more levels: larger ratio at early t.
    assert rows[60]["relative_distance_to_limit_median"] < rows[10]["relative_distance_to_limit_median"]
    ratios = [r["ratio_median"] for r in s["theorem2_over_L"]]
    assert ratios[0] < ratios[1]
    # The expansion at t = 2: ((X + c(b1+b2))^L - X^L) / ((X + c b1)^L - X^L), X = c t (b2 + K b1) = 28.
    X = 2 * 2 * (3 + 2 * 2)
    expect = ((X + 10) ** 6 - X**6) / ((X + 4) ** 6 - X**6)
    assert s["theorem2_over_L"][1]["expansion_mean"] == pytest.approx(expect, rel=1e-9)
    assert s["smallest_ratio"] > 1.0
    ds = result.dataset
    assert ds["ratio_m60_b2-3_L3"].dims == ("seed", "epoch", "update_class", "other_class")
    assert ds["ratio_m60_b2-3_L3"].shape == (3, 21, 2, 2)


@pytest.mark.parametrize(
    "cls, overrides, message",
    [
        (NeurashedIBConfig, dict(record_every=7), "record_every: must divide"),
        (NeurashedIBConfig, dict(batch_size=3), "batch_size: must divide the 8"),
        (NeurashedIBConfig, dict(h2_dependents=(1, 2)), "h2_dependents: must include the shared node 7"),
        (NeurashedIBConfig, dict(sampling="random"), "sampling: must be one of"),
        (NeurashedBatchConfig, dict(num_steps=100), "num_steps: must be a multiple of the 8"),
        (NeurashedElasticityConfig, dict(b_pairs=(2, 3, 1)), "b_pairs: expected \\(b1, b2\\) pairs"),
        (NeurashedElasticityConfig, dict(ms=(4, 10)), "ms: every m must be >= b1 \\+ b2"),
        (NeurashedElasticityConfig, dict(c=1.0), "c: must be > 1"),
    ],
)
def test_invalid_configs_name_the_field(cls, overrides, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(cls(), **overrides)


def test_ib_rejects_a_graph_breaking_its_rules():
    # h2 fires on two or more of its dependents; with only x2 and x7 it still fires on
    # (1,2,7) but not on (4,5,7): the declared pathway breaks the rule.
    with pytest.raises(ConfigError, match="h2_dependents: .*'h2' \\(level 1\\) is listed as firing"):
        execute(neurashed_ib.EXPERIMENT, dataclasses.replace(NeurashedIBConfig.quick(), h2_dependents=(2, 7)))


# ---------------------------------------------------------------------------------------------
# SIGKILL mid-run, then --resume: bitwise identical to an uninterrupted run.
# ---------------------------------------------------------------------------------------------
EVERY = 40  # neurashed-ib --quick: 2000 steps recorded every 40, a checkpoint every 40 (50 chunks)


def _checkpoint_steps(folder):
    return sorted(int(p.name[5:14]) for p in folder.glob("step_*.npz")) if folder.is_dir() else []


def test_ib_sigkill_then_resume_is_bitwise_identical(tmp_path, capsys):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    run_path = killed / "neurashed-ib"
    proc = subprocess.Popen([sys.executable, "-m", "jaxdyn", "run", "neurashed-ib", "--quick", "--no-progress", "--out", str(killed),
                             "--checkpoint-every", str(EVERY)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        steps = _checkpoint_steps(run_path / "checkpoints" / "call_00")
        if steps:  # a checkpoint was written: kill now, mid-training
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed mid-way (rc {proc.returncode}): {err[-2000:]}"
    left = _checkpoint_steps(run_path / "checkpoints" / "call_00")
    assert left and left[-1] < 2000 and not (run_path / "results.nc").exists()

    assert cli.main(["run", "neurashed-ib", "--out", str(killed), "--resume", "--no-progress"]) == 0
    assert cli.main(["run", "neurashed-ib", "--quick", "--out", str(reference), "--no-progress", "--no-checkpoint"]) == 0
    capsys.readouterr()
    a = xr.load_dataset(run_path / "results.nc", engine="h5netcdf")
    b = xr.load_dataset(reference / "neurashed-ib" / "results.nc", engine="h5netcdf")
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
