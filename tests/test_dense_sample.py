"""dense-sample at quick size: records against direct computation, SIGKILL + resume bitwise, the local
executor against one process, per-seed verdicts, the quantities the claims read, configs checked."""

import dataclasses
import json
import math
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest
import xarray as xr

from jaxdyn import cli
from jaxdyn.analysis import layers
from jaxdyn.analysis import pca as pca_analysis
from jaxdyn.analysis import spectra as sp
from jaxdyn.engine import Snapshot
from jaxdyn.experiments import ConfigError, dense_sample
from jaxdyn.experiments.dense_sample import DenseSampleConfig
from jaxdyn.models import DenseSampleVGG
from jaxdyn.models.layers import capture_intermediates
from jaxdyn.store import run as run_into
from jaxdyn.tasks import faces

QUICK = ["--quick", "--no-progress"]
# What the engine records (per member, bitwise comparable between ways of running the members);
# the rest of results.nc is analysis, some of it pooled over seeds (the spectra's noise floor).
RECORDED = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "test_confusion", "train_confusion",
            "pc_variance", "pc_total_variance", "pc_scores", "coupling_count", "coupling_sums", "coupling_cross",
            "conv_kernel", "conv_bias", "head_kernel", "head_bias", "hidden", "conv_gram", "conv_activation", "esd",
            "dense_0_kernel", "dense_1_kernel")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted single-process run (no checkpoints: one chunk), through the run layer."""
    out = tmp_path_factory.mktemp("reference")
    result, summary, path = run_into("dense-sample", DenseSampleConfig.quick(), out=out, checkpoints=False)
    return result, summary, xr.load_dataset(path / "results.nc")


def _bitwise(a: xr.Dataset, b: xr.Dataset, names):
    for name in names:
        x, y = a[name].values, b[name].values
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if x.dtype.kind in "fc":
            np.testing.assert_array_equal(x.view(f"u{x.dtype.itemsize}"), y.view(f"u{y.dtype.itemsize}"), err_msg=name)
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_dataset_layout(reference):
    result, summary, ds = reference
    config = DenseSampleConfig.quick()
    n_seeds, n_epochs, n_all = 2, config.epochs + 1, 96
    assert ds.sizes["seed"] == n_seeds and ds.sizes["epoch"] == n_epochs
    np.testing.assert_array_equal(ds["spectra_epoch"].values, np.arange(n_epochs))  # spectra_every=1
    assert ds["pc_scores"].shape == (n_seeds, n_epochs, n_all, config.pca_components)
    assert ds["coupling_cross"].shape == (n_seeds, n_epochs, 2, 3, 5, 5)
    assert ds["conv_kernel"].shape == (n_seeds, n_epochs, 5, 3, 3, 3, 3)  # 5 x 84 = 420 numbers with the biases
    assert ds["esd"].shape == (n_seeds, n_epochs, 2, config.hidden_width)
    assert ds["dense_0_kernel"].shape == (n_seeds, n_epochs, 1200, config.hidden_width)
    assert ds["esd_conv"].shape == (n_seeds, n_epochs, 5, 27) and ds["esd_head"].shape == (n_seeds, n_epochs, 3)
    # The coupling's sums cover every exemplar and position once.
    np.testing.assert_allclose(ds["coupling_count"].values.sum((2, 3)), n_all * 12 * 12)
    np.testing.assert_array_equal(np.sort(ds["exemplar_all_index"].values), np.arange(n_all))
    assert (ds["diverged_at"].values == -1).all()
    assert set(result.figures) == {"learning_curve", "pca_timeline", "pca_scatter", "layer_coupling", "spectra", "faces"}
    json.dumps(summary)  # strict JSON
    kinds = {c["kind"] for c in summary["claims"]}
    assert kinds == {"paper", "extension", "sanity"}
    for c in summary["claims"]:
        if c["per_seed"] is not None:
            assert len(c["per_seed"]) == n_seeds and len(c["seed_held"]) == n_seeds


def test_records_match_a_direct_computation(reference):
    """At epoch 0 the weights are the initial ones: every record follows from a direct forward pass
    over all exemplars (train rows then test rows), and from the initial kernels."""
    result, _, ds = reference
    config = DenseSampleConfig.quick()
    data = config.face_dataset(config.image_size, config.num_poses)
    norm = ds["input_norm"].values
    rows = ds["exemplar_all_index"].values
    x_all = faces.to_input(data.images[rows], norm[0], norm[1])
    model = DenseSampleVGG(num_classes=3, hidden=(config.hidden_width,) * 2, dropout_rate=config.dropout, conv=config.conv)
    params = dense_sample.initial_params(model, x_all[:1], [0, 1])
    n_train = int((ds["exemplar_is_test"].values == 0).sum())
    for s in range(2):
        p = jax.tree_util.tree_map(lambda a: a[s], params)
        logits, inter = capture_intermediates(model, {"params": p}, x_all)
        h = np.asarray(inter["hidden_last"], np.float64)
        # PCA over all exemplars (not a probe subset): variances, total, and the PC1 share.
        ref = pca_analysis.pca(h)
        np.testing.assert_allclose(ds["pc_variance"].values[s, 0], ref.variance[:config.pca_components], rtol=2e-3)
        assert ds["pc_total_variance"].values[s, 0] == pytest.approx(ref.total, rel=1e-4)
        assert ds["pc_explained"].values[s, 0, 0] == pytest.approx(ref.explained[0], rel=2e-3)
        scores = ds["pc_scores"].values[s, 0, :, 0]
        assert abs(np.corrcoef(scores, ref.scores[:, 0])[0, 1]) > 0.999
        # Coupling over every exemplar and position, from the recorded sufficient statistics.
        acts = [inter[f"conv_{i}"] for i in range(5)]
        np.testing.assert_allclose(ds["conv_coupling"].values[s, 0], layers.coupling_matrix(acts), atol=2e-4)
        # Accuracy and loss of the test rows.
        y = data.identity[rows]
        test = slice(n_train, None)
        assert ds["test_accuracy"].values[s, 0] == pytest.approx(float(np.mean(np.argmax(logits[test], -1) == y[test])), abs=1e-6)
        loss = float(optax.softmax_cross_entropy_with_integer_labels(logits[test], y[test]).mean())
        assert ds["test_loss"].values[s, 0] == pytest.approx(loss, rel=1e-4)
        # Spectra of the initial kernels; conv weights as initialised.
        for j, name in enumerate(("dense_0", "dense_1")):
            ev, _ = sp.correlation_eigenvalues(p[name]["kernel"], dtype=np.float64)
            np.testing.assert_allclose(ds["esd"].values[s, 0, j], ev, rtol=1e-4, atol=1e-7)
            np.testing.assert_array_equal(ds[f"{name}_kernel"].values[s, 0], p[name]["kernel"])
        np.testing.assert_array_equal(ds["conv_kernel"].values[s, 0, 2], p["conv2d_2"]["kernel"])
        ev, _ = sp.conv_eigenvalues(np.asarray(p["conv2d_1"]["kernel"]))
        np.testing.assert_allclose(ds["esd_conv"].values[s, 0, 1], ev, rtol=1e-5, atol=1e-9)


def test_claims_read_the_right_quantities(reference):
    result, _, ds = reference
    by_id = {c.id: c for c in result.claims}
    # The spike is read on the share of variance (explained), never the absolute variance.
    share = ds["pc_explained"].values[:, :, 0]
    want = [pca_analysis.spike_ratio(x)[0] for x in share]
    np.testing.assert_allclose(by_id["pc1-share-spike"].per_seed, want)
    absolute = [pca_analysis.spike_ratio(x)[0] for x in ds["pc_variance"].values[:, :, 0]]
    assert not np.allclose(want, absolute)
    # Separation is measured in the hidden layer's PCA of all exemplars, per identity.
    scores = ds["pc_scores"].values
    labels = ds["exemplar_all_identity"].values
    direct = pca_analysis.linear_separability(scores[1, -1, :, :2], labels).min()
    assert by_id["complete-2d-separation"].per_seed[1] == pytest.approx(direct)
    assert by_id["complete-2d-separation"].initial_per_seed[1] == pytest.approx(pca_analysis.linear_separability(scores[1, 0, :, :2], labels).min())
    # The coupling profile comes from the whole-set coupling; its value at initialisation is reported.
    prof = layers.distance_profile(ds["conv_coupling"].values)
    np.testing.assert_allclose(by_id["profile-nearly-linear"].initial_per_seed, [layers.profile_linearity(p) for p in prof[:, 0]])
    # Epoch-0 accuracy against chance in binomial standard errors of the test set.
    n_test = int(ds["exemplar_is_test"].values.sum())
    z = np.abs(ds["test_accuracy"].values[:, 0].astype(np.float64) - 1 / 3) / math.sqrt((1 / 3) * (2 / 3) / n_test)
    np.testing.assert_allclose(by_id["chance-at-init"].per_seed, z, rtol=1e-6, atol=1e-6)
    assert by_id["mp-at-init"].kind == "sanity"


def _passing_measurements(num_seeds=4, k=5, epochs=61):
    """Measurements for which every claim of :func:`dense_sample.decide` holds in every seed."""
    s = np.ones(num_seeds)
    fits = {name: [None] * num_seeds for name in dense_sample.CURVES}
    return {
        "ok": np.ones(num_seeds, bool), "t10": 20 * s, "acc0_z": 0.5 * s, "rise_over_latent": 0.3 * s, "final_test": 0.99 * s,
        "acc0": 0.2 * s,
        "lld": {"r2": {n: np.tile([0.94, 0.995, 0.996], (num_seeds, 1)) for n in dense_sample.CURVES},
                "dcrit_paper": {n: 5 * s for n in dense_sample.CURVES}, "fits": fits},
        "pc1_spike_ratio": 2 * s, "pc_share": np.full((num_seeds, epochs, 10), 0.1), "pc1_peak_off_window": 0 * s,
        "separation_dims": k - 1, "first_gap": 4 * s, "separated_fraction": s, "separated_at_init": 0 * s,
        "separation_2d": np.full((num_seeds, epochs), 0.99), "coupling_change_off_window": 0 * s,
        "decorrelation_z": -5 * s, "rise_to_transition_z": 3 * s, "below_initial_z": -5 * s,
        "profile_decreasing": np.ones((num_seeds, epochs)), "profile_linearity": np.full((num_seeds, epochs), 0.99),
        "far_minus_near_slope": -0.01 * s, "weight_decorrelation_z": -5 * s, "spec_init_ks": 0.01 * s,
        "spec_noise_outliers": 0, "spec_left_random": s, "spec_left_random_init": 0 * s, "spec_phase_monotone": s,
        "spec_alpha_final_max": 4 * s, "spec_alpha_init_max": 12 * s,
    }


def test_verdicts_are_per_seed_never_on_a_seed_mean():
    config = DenseSampleConfig()
    m = _passing_measurements()
    assert all(c.held for c in dense_sample.decide(config, m))
    # Issue 17's case: one logistic explains 0.9965 of seed 0's curve and 0.9434 of seed 1's;
    # their mean (0.96997) is within 0.03 of 0.94, seed 0 is not.
    m["lld"]["r2"]["test_accuracy"][:2, 0] = [0.9965, 0.9434]
    m["final_test"] = np.array([0.99, 0.92, 0.99, 0.99])  # mean 0.9725 >= 0.95, seed 1 is not
    by_id = {c.id: c for c in dense_sample.decide(config, m)}
    for name in ("one-logistic-94", "final-accuracy"):
        c = by_id[name]
        assert not c.held and c.fraction_held == 0.75, (name, c)
    assert by_id["two-logistics-99"].held
    # A diverged member is left out, not counted against the claim.
    m["ok"] = np.array([True, False, True, True])
    assert by_id["final-accuracy"].excluded == 0
    c = {c.id: c for c in dense_sample.decide(config, m)}["final-accuracy"]
    assert c.held and c.excluded == 1


def test_sigkill_mid_run_then_resume_is_bitwise_identical(reference, tmp_path, capsys):
    _, _, ref = reference
    killed = tmp_path / "killed"
    folder = killed / "dense-sample" / "checkpoints" / "call_00"
    every = 4  # one epoch of the quick preset: checkpoints at steps 4, 8, 12, 16
    proc = subprocess.Popen([sys.executable, "-m", "jaxdyn", "run", "dense-sample", *QUICK, "--out", str(killed),
                             "--checkpoint-every", str(every)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and any(folder.glob("step_*.npz")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"not killed mid-run (rc {proc.returncode}): {err[-2000:]}"
    left = sorted(int(p.name[5:14]) for p in folder.glob("step_*.npz"))
    assert left and left[-1] < 16, left  # killed before training ended
    assert cli.main(["run", "dense-sample", "--out", str(killed), "--resume", "--no-progress"]) == 0
    status = json.loads((killed / "dense-sample" / "status.json").read_text())
    assert status["state"] == "complete" and status["restored_from"][0]["step"] == left[-1]
    resumed = xr.load_dataset(killed / "dense-sample" / "results.nc")
    assert set(resumed.variables) == set(ref.variables)
    _bitwise(resumed, ref, list(ref.variables))  # every variable, the spectra included
    assert resumed.attrs == ref.attrs


@pytest.fixture(scope="module")
def one_member_chunks(tmp_path_factory):
    out = tmp_path_factory.mktemp("executor")
    assert cli.main(["run", "dense-sample", *QUICK, "--out", str(out), "--no-checkpoint", "--executor", "local",
                     "--chunk-seeds", "1"]) == 0
    return xr.load_dataset(out / "dense-sample" / "results.nc")


def test_local_executor_members_are_those_of_a_one_member_run(one_member_chunks, tmp_path):
    # Member 1 of the chunked run is bitwise the run of seed 1 alone: the executor's split itself
    # changes nothing (same compiled width, same keys, same shared data).
    assert cli.main(["run", "dense-sample", *QUICK, "--set", "seeds=1", "--set", "seed_offset=1", "--out", str(tmp_path),
                     "--no-checkpoint"]) == 0
    alone = xr.load_dataset(tmp_path / "dense-sample" / "results.nc")
    assert int(alone["seed"].values[0]) == 1
    _bitwise(one_member_chunks.isel(seed=[1]), alone, RECORDED)


# Fixed-width member blocks: a 1-member chunk is compiled at the same block width as the
# 2-member run (padded), so the executor's split is bitwise invisible.
def test_local_executor_with_one_member_chunks_equals_the_single_process_run_bitwise(reference, one_member_chunks):
    _, _, ref = reference
    worst = max(float(np.nanmax(np.abs(one_member_chunks[n].values.astype(float) - ref[n].values.astype(float)), initial=0.0))
                for n in RECORDED)
    print(f"--executor local --chunk-seeds 1 vs one process: largest difference over the records {worst:.3g}")
    _bitwise(one_member_chunks, ref, RECORDED)


def test_full_set_pass_chunks_and_masks_padding():
    model = DenseSampleVGG(num_classes=3, hidden=(8,), pool_size=2, num_conv=2)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (11, 6, 6), dtype=np.uint8)
    y = np.array([0, 1, 2] * 3 + [0, 1], np.int32)
    params = jax.jit(model.init)(jax.random.key(0), faces.to_input(x[:1]))["params"]
    data = {"x_train": x[:7], "y_train": y[:7], "x_test": x[7:], "y_test": y[7:], "norm": np.array([0.0, 1.0], np.float32)}
    snap = Snapshot(params, None, 0, {}, data, {}, lambda p, xx: model.apply({"params": p}, xx))
    out = jax.jit(lambda d: dense_sample.FullSetPass(model, 4, 3, 3)(snap._replace(data=d)))(data)
    logits, inter = capture_intermediates(model, {"params": params}, faces.to_input(x))
    pred = np.argmax(logits, -1)
    for split, rows in (("train", slice(0, 7)), ("test", slice(7, None))):
        yy, pp = y[rows], pred[rows]
        assert float(out[f"{split}_loss"]) == pytest.approx(float(optax.softmax_cross_entropy_with_integer_labels(logits[rows], yy).mean()), rel=1e-5)
        assert float(out[f"{split}_accuracy"]) == pytest.approx(float(np.mean(pp == yy)))
        np.testing.assert_array_equal(out[f"{split}_confusion"], [[np.sum((yy == i) & (pp == j)) for j in range(3)] for i in range(3)])
    ref = pca_analysis.pca(np.asarray(inter["hidden_last"]))
    assert float(out["pc_total_variance"]) == pytest.approx(ref.total, rel=1e-5)
    np.testing.assert_allclose(out["pc_variance"], ref.variance[:3], rtol=1e-3, atol=1e-7)
    acts = [inter["conv_0"], inter["conv_1"]]
    coupling = layers.coupling_from_statistics(np.asarray(out["coupling_count"]).sum((0, 1)),
                                               np.asarray(out["coupling_sums"]).sum((0, 1)), np.asarray(out["coupling_cross"]).sum((0, 1)))
    np.testing.assert_allclose(coupling, layers.coupling_matrix(acts), atol=1e-4)
    np.testing.assert_allclose(np.asarray(out["coupling_count"]).sum(), 11 * 36)


def test_one_vs_rest_balanced_accuracy():
    c = np.array([[10, 0, 0], [0, 5, 5], [0, 0, 10]])
    got = dense_sample.one_vs_rest_balanced_accuracy(c)
    np.testing.assert_allclose(got, [1.0, 0.5 * (0.5 + 1.0), 0.5 * (1.0 + 1 - 5 / 20)])
    np.testing.assert_allclose(dense_sample.one_vs_rest_balanced_accuracy(np.array([[0, 10], [0, 10]])), [0.5, 0.5])


def test_torch_init_matches_pytorch_defaults():
    model = DenseSampleVGG(num_classes=3, hidden=(64,), pool_size=8)
    x0 = np.zeros((1, 8, 8, 3), np.float32)
    p = dense_sample.initial_params(model, x0, [0, 1], "torch")
    for name, fan_in in (("conv2d_0", 27), ("dense_0", 3 * 64), ("head", 64)):
        w, b = p[name]["kernel"], p[name]["bias"]
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
        assert np.abs(b).max() <= bound and np.abs(b).std() > 0
    assert not np.array_equal(p["dense_0"]["kernel"][0], p["dense_0"]["kernel"][1])


def test_the_default_presets_faces_meet_the_shortcut_targets():
    # Issue 17's targets on the face set a default run trains on (32 px, Yale B's 9 poses; with 5
    # poses the raw-pixel ridge classifier scored 0.909): brightness identifies no more than
    # chance + 5%, a raw-pixel linear classifier at most 0.85, falling with the light's angle.
    config = DenseSampleConfig()
    r = config.resolved()
    data_set = config.face_dataset(r["image_size"], r["num_poses"])
    d = dense_sample.task_diagnostics(data_set, faces.stratified_split(data_set.identity, config.test_fraction, config.split_seed))
    assert d["brightness_accuracy"] <= d["chance"] + 0.05
    assert d["linear_accuracy"] <= 0.85
    assert d["linear_subset_spearman"] < 0


def test_config_presets_and_validation():
    cpu = DenseSampleConfig().resolved()
    assert (cpu["image_size"], cpu["num_poses"], cpu["seeds"], cpu["epochs"], cpu["spectra_every"]) == (32, 9, 4, 60, 5)
    paper = DenseSampleConfig().with_overrides(["preset=paper"]).resolved()
    assert (paper["image_size"], paper["num_poses"], paper["seeds"]) == (128, 9, 8)
    for overrides, message in [
        (dict(preset="gpu"), "preset"),
        (dict(source="yale_b"), "yale_root"),
        (dict(num_poses=1, lights="grid", num_azimuths=2, num_elevations=2, probe_per_identity=5), "probe_per_identity"),
        (dict(spectra_every=7), "spectra_every: must divide epochs"),
        (dict(separation_dims=20), "separation_dims"),
        (dict(lld_errors="ar2"), "lld_errors"),
        (dict(lr=0.0), "lr"),
    ]:
        with pytest.raises(ConfigError, match=message):
            dataclasses.replace(DenseSampleConfig(), **overrides)
