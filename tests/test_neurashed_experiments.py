"""neurashed-ib, neurashed-batch and neurashed-elasticity on small presets, and neurashed-ib killed
with SIGKILL mid-run then resumed (bitwise identical results.nc)."""

import dataclasses
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from jaxdyn import cli
from jaxdyn.experiments import ConfigError, neurashed_batch, neurashed_elasticity, neurashed_ib
from jaxdyn.experiments.neurashed_batch import NeurashedBatchConfig
from jaxdyn.experiments.neurashed_elasticity import NeurashedElasticityConfig
from jaxdyn.experiments.neurashed_ib import NeurashedIBConfig
from jaxdyn.store import execute

EVERY = 40  # neurashed-ib --quick: 2000 steps recorded every 40, a checkpoint every 40 (50 chunks)


def _checkpoint_steps(folder):
    return sorted(int(p.name[5:14]) for p in folder.glob("step_*.npz")) if folder.is_dir() else []


@pytest.fixture(scope="module")
def ib_runs(tmp_path_factory):
    """neurashed-ib --quick: SIGKILLed after its first checkpoint, resumed; and an uninterrupted run."""
    root = tmp_path_factory.mktemp("ib")
    killed, reference = root / "killed", root / "reference"
    run_path = killed / "neurashed-ib"
    proc = subprocess.Popen([sys.executable, "-m", "jaxdyn", "run", "neurashed-ib", "--quick", "--no-progress", "--out", str(killed),
                             "--checkpoint-every", str(EVERY)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if _checkpoint_steps(run_path / "checkpoints" / "call_00"):  # a checkpoint was written: kill now, mid-training
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    _, err = proc.communicate(timeout=60)
    left = _checkpoint_steps(run_path / "checkpoints" / "call_00")
    results_before_resume = (run_path / "results.nc").exists()
    assert cli.main(["run", "neurashed-ib", "--out", str(killed), "--resume", "--no-progress"]) == 0
    assert cli.main(["run", "neurashed-ib", "--quick", "--out", str(reference), "--no-progress", "--no-checkpoint"]) == 0
    return {"rc": proc.returncode, "stderr": err, "left": left, "results_before_resume": results_before_resume,
            "resumed": run_path, "reference": reference / "neurashed-ib"}


def test_ib_sigkill_then_resume_is_bitwise_identical(ib_runs):
    assert ib_runs["rc"] == -signal.SIGKILL, f"the run was not killed mid-way (rc {ib_runs['rc']}): {ib_runs['stderr'][-2000:]}"
    assert ib_runs["left"] and ib_runs["left"][-1] < 2000 and not ib_runs["results_before_resume"]
    a = xr.load_dataset(ib_runs["resumed"] / "results.nc", engine="h5netcdf")
    b = xr.load_dataset(ib_runs["reference"] / "results.nc", engine="h5netcdf")
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_ib_levels_mechanism_and_sensitivity(ib_runs):
    summary = json.loads((ib_runs["reference"] / "summary.json").read_text())
    ds = xr.load_dataset(ib_runs["reference"] / "results.nc", engine="h5netcdf")
    rows = {r["setting"]: r for r in summary["numbers"]["sensitivity"]}
    assert set(rows) == {"default", "batch=2", "batch=8", "edges=centres", "bins=10", "bins=100", "noise=0.001", "noise=0.1",
                         "estimator=plug-in", "estimator=kNN", "estimator=kNN, noise one bin"}
    d = rows["default"]
    # Level 2 at batch 1: a phase near 2 bits, then exactly 1 bit (the class) with the label.
    assert d["level2_plateau_iterations_median"] >= 100 and abs(d["level2_final_I_TX_median"] - 1) < 0.05
    assert d["level2_final_I_TY_median"] > 0.95
    # Level 1 at batch 1 collapses onto the shared node x7: no information about input or label.
    assert d["level1_final_I_TX_median"] < 0.05 and d["level1_final_I_TY_median"] < 0.05 and d["x7_lead_log10_median"] > np.log10(30)
    # The growth rates per step (in log a) that decide it: x7 fires every step (3/4), the best other node 1/4 of them.
    assert d["growth_rate_x7_vs_best_other"] == pytest.approx([0.75, 0.5])
    # Batch 2: type-specific nodes outgrow x7, and level 2 keeps both types apart (2 bits); full batch keeps all 8 types.
    assert rows["batch=2"]["x7_lead_log10_median"] < 0 and abs(rows["batch=2"]["level2_final_I_TX_median"] - 2) < 0.05
    assert abs(rows["batch=8"]["level2_final_I_TX_median"] - 3) < 0.05
    # The landed peak depends on the bins; the plateau is what is claimed.
    assert rows["bins=10"]["level2_peak_median"] < rows["default"]["level2_peak_median"] < rows["bins=100"]["level2_peak_median"]
    claims = {c["id"]: c for c in summary["claims"]}
    assert claims["level2-plateau-near-2-bits"]["held"] and claims["level2-compresses-to-1-bit"]["held"]
    assert not claims["level1-keeps-label"]["held"] and claims["level1-keeps-label"]["fraction_held"] == 0.0
    assert claims["estimators-agree-at-the-end"]["kind"] == "sanity"
    for c in summary["claims"]:
        assert c["kind"] in ("paper", "extension", "sanity") and c["threshold_source"]
        assert c["per_seed"] is None or len(c["per_seed"]) == 3
    assert ds["I_TX"].dims == ("seed", "setting", "time", "level") and ds["I_TX"].shape == (3, 8, 51, 2)
    assert ds["I_TX"].values.max() <= 3.0 + 1e-9 and ds["I_TY"].values.max() <= 1.0 + 1e-9
    # The nearest-neighbour estimator (no bins) in both noise readings, stored and claimed (extension).
    assert ds["I_TX_knn"].dims == ("seed", "time", "level", "knn_noise") and ds["I_TX_knn"].shape == (3, 51, 2, 2)
    assert list(ds["knn_noise"].values) == ["absolute", "one bin"]
    for cid, noise in (("knn-level2-compresses", "absolute"), ("knn-bin-noise-level2-compresses", "one bin")):
        assert claims[cid]["kind"] == "extension"
        final = ds["I_TX_knn"].sel(level=2, knn_noise=noise).values[:, -1]
        np.testing.assert_allclose(claims[cid]["per_seed"], np.abs(final - 1))
    assert ds["scores_level2"].dims == ("seed", "train_setting", "time", "input_type", "node2")
    assert (ds["diverged_at"].values == -1).all()
    assert "sensitivity_text" in summary["numbers"] and "per_level" in summary["numbers"]


@pytest.fixture(scope="module")
def batch():
    return execute(neurashed_batch.EXPERIMENT, NeurashedBatchConfig.quick())


@pytest.fixture(scope="module")
def elasticity():
    config = NeurashedElasticityConfig(seeds=3, ms=(10, 60), b_pairs=(2, 3), num_levels=3, levels_sweep=(3, 6), epochs=20,
                                       proportional_ratio=3.0, appendix_steps=40)
    return config, execute(neurashed_elasticity.EXPERIMENT, config)


def test_batch_trend_closed_form_and_collapse(batch):
    s = batch.numbers
    for key in ("figure5_iterations", "figure5_samples", "family_iterations", "family_samples"):
        eff = [m for m, _, _ in s[key]["effective_fraction_median_low_high"]]
        assert eff[0] < eff[-1] - 0.1, (key, eff)  # B = 1 sparser than B = 16
        # lambda(0) a+^k a-^(t-k) with the learner's counts is the simulation to rounding.
        assert s[key]["counted_closed_form_max_relative_error"] < 1e-9
    claims = {c.id: c for c in batch.claims}
    assert all(claims[f"{g}-{r}-sparser-with-smaller-batches"].held for g in ("figure5", "family") for r in ("iterations", "samples"))
    assert claims["family-collapse-small-vs-large-batch"].held and claims["family-collapse-small-vs-large-batch"].kind == "extension"
    ds = batch.dataset
    assert ds["effective_fraction_family_iterations"].dims == ("batch_size", "seed")
    assert list(ds["batch_size"].values) == [1, 4, 16]
    # The family graphs and factors are stored: their pathways can be recomputed.
    assert ds["family_edges_1_to_0"].dims[0] == "seed" and ds["family_first_level_pattern"].shape[:2] == (4, 8)
    assert np.isfinite(ds["lambda_final_family_level1"].values).all()
    assert ds["nc1_figure5"].dims == ("batch_size", "seed", "time")


def test_elasticity_limits_expansion_regimes_and_appendix(elasticity):
    config, result = elasticity
    s = result.numbers
    rows = {r["m"]: r for r in s["theorem1_over_m"]}
    # Disjoint class nodes: the simulation is the expansion (initial factors ~1e-2 vs c t ~ 40).
    assert s["expansion_largest_error_disjoint_graphs"] < 2e-3
    assert rows[60]["relative_distance_to_limit_median"] < rows[10]["relative_distance_to_limit_median"]
    # The expansion at t = 2: ((X + c(b1+b2))^L - X^L) / ((X + c b1)^L - X^L), X = c t (b2 + K b1) = 28.
    X = 2 * 2 * (3 + 2 * 2)
    expect = ((X + 10) ** 6 - X**6) / ((X + 4) ** 6 - X**6)
    assert s["theorem2_over_L"][1]["expansion_mean"] == pytest.approx(expect, rel=1e-9)
    assert s["theorem2_regime_L_over_t_to_infinity"]["expansion"][1] == pytest.approx(expect, rel=1e-9)
    # L = 3 t: the pairs (1, 3) and (2, 6), below the finite limit.
    assert s["theorem2_regime_L_proportional_to_t"]["pairs_t_L"] == [[1, 3], [2, 6]] or s["theorem2_regime_L_proportional_to_t"]["pairs_t_L"] == [(1, 3), (2, 6)]
    assert max(s["theorem2_regime_L_proportional_to_t"]["ratio_median"]) < s["theorem2_regime_L_proportional_to_t"]["finite_limit"]
    assert s["level_sum_identity_largest_relative_error"] < 1e-12
    assert s["appendix_example"]["largest_relative_error_logits"] < 1e-12 and s["appendix_example"]["largest_relative_error_update"] < 1e-12
    claims = {c.id: c for c in result.claims}
    assert claims["expansion-is-the-product-of-level-sums"].kind == "sanity" and claims["expansion-disjoint-graphs"].kind == "sanity"
    assert claims["theorem2-L-proportional-to-t-bounded"].kind == "extension"
    assert claims["appendix-example-ordering"].held
    ds = result.dataset
    assert ds["ratio_m60_b2-3_L3"].dims == ("seed", "epoch", "update_class", "other_class")
    assert ds["ratio_m60_b2-3_L3"].shape == (3, 21, 2, 2)
    assert ds["appendix_counts"].dims == ("seed", "appendix_step", "class3")


@pytest.mark.parametrize(
    "cls, overrides, message",
    [
        (NeurashedIBConfig, dict(record_every=7), "record_every: must divide"),
        (NeurashedIBConfig, dict(batch_size=3), "batch_size: must divide the 8"),
        (NeurashedIBConfig, dict(sensitivity_batch=(3,)), "sensitivity_batch: must divide the 8"),
        (NeurashedIBConfig, dict(h2_dependents=(1, 2)), "h2_dependents: must include the shared node 7"),
        (NeurashedIBConfig, dict(sampling="random"), "sampling: must be one of"),
        (NeurashedIBConfig, dict(sensitivity_edges=("middle",)), "sensitivity_edges\\[0\\]: must be one of"),
        (NeurashedBatchConfig, dict(num_steps=100), "num_steps: must be a multiple of the 8"),
        (NeurashedBatchConfig, dict(sampling="epoch"), "batch_sizes: must divide the 8"),
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
