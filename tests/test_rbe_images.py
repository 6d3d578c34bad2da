"""rbe-images: the scikit-learn digits task and the quick preset of the experiment."""

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments import rbe_images as I  # noqa: E402
from jaxdyn.store import execute  # noqa: E402
from jaxdyn.tasks import digits  # noqa: E402


def test_digits_task():
    images, labels = digits.load_digits_images()
    assert images.shape == (1797, 8, 8) and images.min() == 0.0 and images.max() == 1.0
    assert set(np.unique(labels)) == set(range(10))
    data = jax.jit(digits.single_image(5 / 6, 50))(jax.random.key(0))
    idx = np.asarray(data["probe_index"])
    assert len(set(idx.tolist())) == 51  # the training image and 50 distinct others
    np.testing.assert_array_equal(np.asarray(data["probes"][0]), np.asarray(data["points"][0]))
    np.testing.assert_array_equal(np.asarray(data["probes"]), images[idx])
    d = np.abs(images[idx] - images[idx[0]]).mean((1, 2))
    np.testing.assert_allclose(np.asarray(data["probe_distance"]), d, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="num_probes"):
        digits.single_image(0.5, 1797)


@pytest.fixture(scope="module")
def run():
    return execute(I.EXPERIMENT, I.RBEImagesConfig.quick())


def test_the_law_on_images(run):
    s = run.numbers
    # Measured on this preset: tau 0.26 [0.11, 0.38]; within-seed Spearman median -0.57.
    assert s["power_law"]["tau_ci"][0] > 0.05
    last = s["kernel"][max(s["kernel"])]
    assert last["spearman_ci"][1] < -0.1 and last["fraction_of_seeds_decreasing"] >= 0.7
    assert last["profile"][-1] < last["profile"][0] - 0.1
    assert min(k["ntk_explained"] for k in s["kernel"].values()) > 0.98
    sat = s["saturation"]
    assert abs(sat["tau_output"] - sat["tau_logit"] - sat["tau_sigmoid_factor"]) < 0.05
    ds = run.dataset
    assert ds["response"].dims == ("seed", "time", "probe") and (ds["probe_distance"].values[:, 0] == 0).all()
    images, _ = digits.load_digits_images()
    np.testing.assert_array_equal(ds["x_o"].values, images[ds["probe_index"].values[:, 0]])
    ids = {c.id: c for c in run.claims}
    assert ids["aging"].held and ids["one-step-two-spaces"].held and ids["kernel-decreases"].per_seed is not None
    # At the preset's lr no member saturates: the exclusion rule leaves none out (its other side is
    # the MNIST test's lr 10, where every member does).
    assert (ds["excluded_reason"].values == "").all() and run.numbers["left_out"] == 0
    assert all(c.excluded == 0 for c in run.claims)
    # The second run, recorded every epoch up to the first record, follows the same trajectory:
    # at that epoch both runs read the same response at x_o.
    k = int(ds["time"].values[1])
    np.testing.assert_array_equal(ds["early_time"].values, np.arange(k + 1))
    np.testing.assert_allclose(ds["response_source_early"].values[:, k], ds["response"].values[:, 1, 0], rtol=1e-5)


def _idx(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, np.uint8)
    return (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()


def test_mnist_root_runs_the_protocol_on_local_idx_files(tmp_path):
    # Small idx files written here (blobs of different brightness, so distances vary).
    rng = np.random.default_rng(0)
    images = (rng.random((40, 28, 28)) < rng.random((40, 1, 1))).astype(np.uint8) * 255
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(images))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(rng.integers(0, 10, 40)))
    # early=False: the early run is the quick fixture's to test; here it would double the compilations.
    # lr = 10 saturates the members' f(x_o) (all 3 here): the exclusion rule is checked on the same run.
    cfg = I.RBEImagesConfig(seeds=3, num_steps=30, record_every=10, epochs=(10, 30), fit_start=5, n_boot=20, num_probes=20,
                            mnist_root=str(tmp_path), early=False, lr=10.0)
    assert I.RBEImagesConfig(mnist_root=str(tmp_path)).probes == 1000 and I.RBEImagesConfig().probes == 500
    result = execute(I.EXPERIMENT, cfg)
    ds = result.dataset
    assert ds["response"].shape == (3, 4, 21) and ds["x_o"].shape == (3, 28, 28)
    np.testing.assert_allclose(ds["x_o"].values, images[ds["probe_index"].values[:, 0]] / 255.0, rtol=1e-6)
    assert result.numbers["images"].startswith("MNIST train")
    # Members whose f(x_o) saturated in float32 are left out of every claim, counted, with the reason
    # stored; the seed axis of the per-seed values is kept (NaN where left out).
    f = ds["f_source"].values.astype(np.float32)
    saturated = ((f <= 0) | (f >= 1)).any(-1)
    assert saturated.any(), f
    np.testing.assert_array_equal(ds["excluded_reason"].values != "", saturated)
    assert result.numbers["left_out"] == int(saturated.sum())
    for c in result.claims:
        assert c.excluded >= int(saturated.sum()), c.id
        if c.per_seed is not None:
            assert len(c.per_seed) == 3 and all(np.isnan(c.per_seed[s]) for s in np.flatnonzero(saturated)), c.id
    # A damaged file is named in the error, before anything trains (another folder: reads are cached by folder).
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train-images-idx3-ubyte").write_bytes(_idx(images))
    (bad / "train-labels-idx1-ubyte").write_bytes(_idx(rng.integers(0, 10, 39)))
    with pytest.raises(ConfigError, match="train-labels-idx1-ubyte"):
        execute(I.EXPERIMENT, I.RBEImagesConfig(mnist_root=str(bad)))


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="num_probes"):
        I.RBEImagesConfig(num_probes=5000)
    with pytest.raises(ConfigError, match="mnist_root"):
        I.RBEImagesConfig(mnist_root=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="epochs"):
        I.RBEImagesConfig(epochs=(505,))
