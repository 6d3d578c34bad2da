"""dense-sample at quick size: the records match direct computation, the analyses are wired, configs are checked."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import xarray as xr

from jaxdyn.analysis import layers
from jaxdyn.analysis import spectra as sp
from jaxdyn.engine import Snapshot
from jaxdyn.experiments import ConfigError, dense_sample
from jaxdyn.experiments.dense_sample import DenseSampleConfig
from jaxdyn.models import DenseSampleVGG
from jaxdyn.models.layers import capture_intermediates
from jaxdyn.store import execute
from jaxdyn.tasks import faces


@pytest.fixture(scope="module")
def quick():
    config = DenseSampleConfig.quick()
    return config, execute(dense_sample.EXPERIMENT, config)


def _model(config):
    return DenseSampleVGG(num_classes=config.num_identities, hidden=(config.hidden_width,) * 2,
                          dropout_rate=config.dropout, conv=config.conv)


def _inputs(ds, config):
    norm = ds["input_norm"].values
    probe = faces.to_input(ds["probe_images"].values, norm[0], norm[1])
    data = faces.generate_faces(config.num_identities, config.image_size, num_azimuths=config.num_azimuths,
                                num_elevations=config.num_elevations, poses=config.num_poses,
                                similarity=config.similarity, seed=config.face_seed)
    test = ds["exemplar_is_test"].values.astype(bool)
    return probe, faces.to_input(data.images[test], norm[0], norm[1]), data.identity[test], norm


def test_dataset_layout(quick):
    config, res = quick
    ds = res.dataset
    n_seeds, n_epochs = 2, config.epochs + 1
    assert ds.sizes["seed"] == n_seeds and ds.sizes["epoch"] == n_epochs
    np.testing.assert_array_equal(ds["epoch"].values, np.arange(n_epochs))
    np.testing.assert_array_equal(ds["spectra_epoch"].values, [0, 2, 4])
    assert ds["hidden"].shape == (n_seeds, n_epochs, 12, config.hidden_width)
    assert ds["conv_gram"].shape == (n_seeds, n_epochs, 5, 12, 12)
    assert ds["conv_activation"].shape == (n_seeds, n_epochs, 5, 12, 4, 4, 3)
    assert ds["esd"].shape == (n_seeds, 3, 2, config.hidden_width)
    for name in ("train_accuracy", "test_accuracy"):
        assert ((ds[name] >= 0) & (ds[name] <= 1)).all()
    # Untrained: cross-entropy near ln K.
    np.testing.assert_allclose(ds["test_loss"].values[:, 0], math.log(3), atol=0.15)
    # The stratified split is saved: 20% of each identity's 32 exemplars held out.
    is_test = ds["exemplar_is_test"].values.astype(bool)
    np.testing.assert_array_equal(np.bincount(ds["exemplar_identity"].values[is_test]), [6, 6, 6])
    np.testing.assert_array_equal(np.bincount(ds["probe_identity"].values), [4, 4, 4])
    assert (ds["diverged_at"].values == -1).all()
    # Training moved the weights: the output layer differs from its initial value.
    assert np.abs(ds["head_kernel"].values[:, -1] - ds["head_kernel"].values[:, 0]).max() > 1e-4
    np.testing.assert_allclose(ds["expected_sigma2"].values, [1 / 1200, 1 / config.hidden_width])


def test_records_match_a_direct_forward_pass(quick):
    config, res = quick
    ds = res.dataset
    probe, x_test, y_test, norm = _inputs(ds, config)
    model = _model(config)
    params = dense_sample.initial_params(model, probe[:1], [0, 1])
    for s in range(2):
        p = jax.tree_util.tree_map(lambda a: a[s], params)
        logits, inter = capture_intermediates(model, {"params": p}, probe)
        np.testing.assert_allclose(ds["hidden"].values[s, 0], inter["hidden_last"], rtol=1e-4, atol=1e-5)
        acts = [inter[f"conv_{i}"] for i in range(5)]
        np.testing.assert_allclose(ds["conv_coupling"].values[s, 0], layers.coupling_matrix(acts), atol=1e-4)
        np.testing.assert_allclose(ds["conv_gram"].values[s, 0, 2], layers.gram(acts[2]), rtol=1e-4)
        test_logits = model.apply({"params": p}, x_test)
        right = np.argmax(test_logits, -1) == y_test
        assert ds["test_accuracy"].values[s, 0] == pytest.approx(float(np.mean(right)), abs=1e-6)
        pred = np.argmax(test_logits, -1)
        confusion = np.array([[np.sum((y_test == i) & (pred == j)) for j in range(3)] for i in range(3)])
        np.testing.assert_array_equal(ds["test_confusion"].values[s, 0], confusion)
        loss = float(optax.softmax_cross_entropy_with_integer_labels(test_logits, y_test).mean())
        assert ds["test_loss"].values[s, 0] == pytest.approx(loss, rel=1e-4)
        # The spectra at epoch 0 are those of the initial dense kernels.
        for j, name in enumerate(("dense_0", "dense_1")):
            ev, _ = sp.correlation_eigenvalues(p[name]["kernel"])
            np.testing.assert_allclose(ds["esd"].values[s, 0, j], ev, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(ds["head_kernel"].values[s, 0], p["head"]["kernel"])
        np.testing.assert_allclose(ds["head_bias"].values[s, 0], p["head"]["bias"])


def test_analyses_are_wired_to_the_records(quick):
    config, res = quick
    ds = res.dataset
    # PCA timeline: total variance is the trace of the hidden layer's covariance.
    h = ds["hidden"].values[1, 3].astype(np.float64)
    assert ds["pc_total_variance"].values[1, 3] == pytest.approx(np.sum(np.var(h, 0, ddof=1)), rel=1e-6)
    # CKA diagonal is 1, and the coupling diagonal is 1 wherever the maps are not constant.
    cka = ds["conv_cka"].values
    np.testing.assert_allclose(np.diagonal(cka, axis1=-2, axis2=-1)[np.isfinite(np.diagonal(cka, axis1=-2, axis2=-1))], 1.0, atol=1e-4)
    # LLD: with 5 points the 2- and 3-logistic fits are under-determined, and say so.
    assert np.isnan(ds["lld_r2"].values[:, 1:]).all() and np.isfinite(ds["lld_fitted"].values[:, 0]).all()
    # Phases are named codes; the MP fit at init matches the lecun-normal variance 1 / fan_in.
    assert set(np.unique(ds["phase"].values)) <= set(range(len(sp.PHASES)))
    ratio = np.array(res.numbers["mp_sigma2_init_over_expected"])
    np.testing.assert_allclose(ratio, 1.0, atol=0.15)


def test_numbers_claims_and_figures(quick, tmp_path):
    config, res = quick
    json.dumps(res.numbers)  # serialisable as written by the store
    assert len(res.claims) >= 10
    for c in res.claims:
        assert c.kind in ("paper", "extension", "sanity") and c.statement
        assert (c.source is not None) == (c.kind == "paper")
    assert set(res.figures) == {"learning_curve", "pca_timeline", "pca_scatter", "layer_coupling", "spectra", "faces"}
    assert all(f.caption for f in res.figures.values())
    assert res.numbers["resolved"]["image_size"] == 12 and res.numbers["split"] == {"train": 78, "test": 18, "probe": 12}


def test_full_set_metrics_chunks_and_masks_padding():
    model = DenseSampleVGG(num_classes=3, hidden=(8,), pool_size=2, num_conv=1)
    x = np.random.default_rng(0).integers(0, 255, (11, 6, 6), dtype=np.uint8)
    y = np.array([0, 1, 2] * 3 + [0, 1], np.int32)
    params = jax.jit(model.init)(jax.random.key(0), faces.to_input(x[:1]))["params"]
    data = {"x": x, "y": y, "norm": np.array([0.0, 1.0], np.float32)}
    snap = Snapshot(params, None, 0, {}, data, {}, lambda p, xx: model.apply({"params": p}, xx))
    out = jax.jit(lambda d: dense_sample.FullSetMetrics("x", "y", 4, 3, "all")(snap._replace(data=d)))(data)
    got = np.concatenate([[out["all_loss"], out["all_accuracy"]], np.asarray(out["all_confusion"]).reshape(-1)])
    logits = jax.jit(model.apply)({"params": params}, faces.to_input(x))
    pred = np.argmax(logits, -1)
    want_loss = float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())
    confusion = [np.sum((y == i) & (pred == j)) for i in range(3) for j in range(3)]
    np.testing.assert_allclose(got, [want_loss, np.mean(pred == y)] + confusion, rtol=1e-5)


def test_one_vs_rest_balanced_accuracy():
    # 3 classes of 10: class 0 perfect; class 1 half right, its misses go to 2; class 2 all right.
    c = np.array([[10, 0, 0], [0, 5, 5], [0, 0, 10]])
    got = dense_sample.one_vs_rest_balanced_accuracy(c)
    np.testing.assert_allclose(got, [1.0, 0.5 * (0.5 + 1.0), 0.5 * (1.0 + 1 - 5 / 20)])
    # A constant guess scores 0.5 for every class.
    np.testing.assert_allclose(dense_sample.one_vs_rest_balanced_accuracy(np.array([[0, 10], [0, 10]])), [0.5, 0.5])


def test_torch_init_matches_pytorch_defaults():
    model = DenseSampleVGG(num_classes=3, hidden=(64,), pool_size=8)
    x0 = jnp.zeros((1, 8, 8, 3))
    p = dense_sample.initial_params(model, x0, [0, 1], "torch")
    shapes = jax.eval_shape(model.init, jax.random.key(0), x0)["params"]
    assert jax.tree_util.tree_structure(p) == jax.tree_util.tree_structure(shapes)
    for got, want in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(shapes)):
        assert got.shape == (2,) + want.shape
    for name, fan_in in (("conv2d_0", 27), ("dense_0", 3 * 64), ("head", 64)):
        w, b = p[name]["kernel"], p[name]["bias"]
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
        assert np.abs(b).max() <= bound and np.abs(b).std() > 0
        if w.size > 1000:
            assert w.var() == pytest.approx(bound**2 / 3, rel=0.05)  # uniform: variance 1 / (3 fan_in)
    assert not np.array_equal(p["dense_0"]["kernel"][0], p["dense_0"]["kernel"][1])


def test_config_presets_and_validation(tmp_path):
    cpu = DenseSampleConfig().resolved()
    assert (cpu["image_size"], cpu["num_poses"], cpu["seeds"], cpu["epochs"]) == (32, 5, 2, 60)
    paper = DenseSampleConfig().with_overrides(["preset=paper"]).resolved()
    assert (paper["image_size"], paper["num_poses"], paper["seeds"]) == (128, 9, 4)
    assert DenseSampleConfig().with_overrides(["preset=paper", "image_size=64"]).resolved()["image_size"] == 64
    with pytest.raises(ConfigError, match="preset"):
        DenseSampleConfig(preset="gpu")
    with pytest.raises(ConfigError, match="yale_root"):
        DenseSampleConfig(source="yale_b")
    with pytest.raises(ConfigError, match="probe_per_identity"):
        DenseSampleConfig(num_poses=1, num_azimuths=2, num_elevations=2, probe_per_identity=5)
    with pytest.raises(ConfigError, match="batch_size"):
        DenseSampleConfig(num_identities=2, num_poses=1, num_azimuths=2, num_elevations=2, probe_per_identity=2, batch_size=100)
    with pytest.raises(ConfigError, match="separation_dims"):
        DenseSampleConfig(separation_dims=80)
    with pytest.raises(ConfigError, match="lr"):
        DenseSampleConfig(lr=0.0)
    # source=yale_b reads the folder through the loader.
    folder = tmp_path / "yaleB01"
    folder.mkdir()
    for s in (1, 2):
        for az in (0, 20, -20):
            img = np.full((10, 10), 40 * s, np.uint8)
            (tmp_path / f"yaleB{s:02d}_P00A{az:+04d}E+00.pgm").write_bytes(b"P5\n10 10\n255\n" + img.tobytes())
    config = dataclasses.replace(DenseSampleConfig.quick(), source="yale_b", yale_root=str(tmp_path), num_identities=2, probe_per_identity=2)
    data = dense_sample._dataset(config, config.resolved())
    assert data.names == ("yaleB01", "yaleB02") and data.images.shape == (6, 12, 12)
