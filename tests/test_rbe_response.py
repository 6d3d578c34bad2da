"""rbe-response on its quick preset: the law's qualitative features with margins."""

import dataclasses

import numpy as np
import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.store import execute
from jaxdyn.experiments import rbe_response as R


@pytest.fixture(scope="module")
def run():
    return execute(R.EXPERIMENT, R.RBEResponseConfig.quick())


def test_dataset_layout(run):
    cfg = R.RBEResponseConfig.quick()
    ds = run.dataset
    assert ds["response"].dims == ("seed", "encoding", "time", "probe")
    assert ds["response"].shape == (cfg.seeds, 3, cfg.num_steps // cfg.record_every + 1, 17 * cfg.probes_per_distance)
    np.testing.assert_array_equal(ds["time"].values, np.arange(0, cfg.num_steps + 1, cfg.record_every))
    assert sorted(set(ds["hamming"].values.tolist())) == list(range(17))
    assert (ds["diverged_at"].values < 0).all()
    # Labels of the probe step follow the encoding: about half are 1 when unbiased, 80% when biased.
    y = ds["y_source"].values
    assert abs(y[:, 0].mean() - 0.5) < 0.06 and abs(y[:, 1].mean() - 0.8) < 0.06 and (y[:, 2] == 0).all()


def noisy(run):
    return [e for e in run.numbers["encodings"] if 0 < e["p1"] < 1]


def test_size_decays_as_a_power_law(run):
    for enc in run.numbers["encodings"]:
        pl = enc["power_law"]
        # Measured on this preset: tau 0.45 (unbiased), 0.22 (biased); a response that does not
        # age (tau = 0) or a sign error (negative sizes: no log-log fit) fails these.
        assert pl["tau_ci"][0] > 0.08, enc["encoding"]
        assert pl["r2_loglog"] > 0.85
        size = enc["kernels"]
        first, last = size[min(size)]["size"], size[max(size)]["size"]
        assert 0 < last < 0.4 * first
    # The unbiased response ages faster than the biased one (paired seeds).
    taus = {e["encoding"]: e["power_law"] for e in run.numbers["encodings"]}
    assert taus["unbiased"]["tau"] > taus["biased p0/p1=0.25"]["tau"] + 0.1
    # Deterministic encoding (paper Fig. 7): a clear power law with a larger exponent (~1.0 here).
    det = taus["deterministic y=0"]
    assert det["tau_ci"][0] > taus["unbiased"]["tau_ci"][1] + 0.2 and det["r2_loglog"] > 0.98


def test_kernel_decreases_linearly_in_hamming_distance(run):
    for enc in noisy(run):
        for epoch, k in enc["kernels"].items():
            assert k["slope_ci"][1] < -0.02, (enc["encoding"], epoch)
            assert k["r2_linear"] > 0.95
            kern = np.asarray(k["kernel"])
            assert kern[0] == pytest.approx(1.0) and kern[16] < 0.5


def test_ntk_explains_the_response(run):
    for enc in run.numbers["encodings"]:
        explained = enc["ntk_explained"]
        assert min(explained.values()) > 0.9
        # First order in lr: the NTK explains more as the response shrinks with age.
        assert explained[max(explained)] > 0.99 and explained[max(explained)] > explained[0]


def test_claims_and_config_errors(run):
    for c in run.claims:
        assert c.kind in ("paper", "extension", "sanity") and c.threshold_source and np.isfinite(c.value)
        assert (c.source is not None) == (c.kind == "paper")
    assert "response_law" in run.figures and "ntk_vs_response" in run.figures
    with pytest.raises(ConfigError, match="epochs"):
        dataclasses.replace(R.RBEResponseConfig.quick(), epochs=(0, 15))
    with pytest.raises(ConfigError, match="p1s"):
        R.RBEResponseConfig(p1s=(0.5, 1.5))
    with pytest.raises(ConfigError, match="loss"):
        R.RBEResponseConfig(loss="hinge")
