"""rbe-images: the scikit-learn digits task and the quick preset of the experiment."""

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")

from jaxdyn.experiments import ConfigError
from jaxdyn.store import execute  # noqa: E402
from jaxdyn.experiments import rbe_images as I  # noqa: E402
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
    # Measured on this preset: tau 0.25 [0.17, 0.33]; within-seed Spearman -0.51 [-0.63, -0.34].
    assert s["power_law"]["tau_ci"][0] > 0.05
    last = s["kernel"][max(s["kernel"])]
    assert last["spearman_ci"][1] < -0.1 and last["fraction_of_seeds_decreasing"] >= 0.7
    assert last["profile"][-1] < last["profile"][0] - 0.1
    assert min(k["ntk_explained"] for k in s["kernel"].values()) > 0.98
    ds = run.dataset
    assert ds["response"].dims == ("seed", "time", "probe") and (ds["probe_distance"].values[:, 0] == 0).all()


def test_config_errors():
    with pytest.raises(ConfigError, match="num_probes"):
        I.RBEImagesConfig(num_probes=5000)
    with pytest.raises(ConfigError, match="epochs"):
        I.RBEImagesConfig(epochs=(505,))
