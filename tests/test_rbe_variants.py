"""rbe-variants: the quick preset (the dropout net) and the paper's comparisons on known inputs."""

import numpy as np
import pytest

from jaxdyn.analysis.response import KernelFit
from jaxdyn.experiments import ConfigError
from jaxdyn.store import execute
from jaxdyn.experiments import rbe_variants as V


@pytest.fixture(scope="module")
def run():
    return execute(V.EXPERIMENT, V.RBEVariantsConfig.quick())


def test_the_law_holds_with_dropout(run):
    (row,) = run.numbers["table"]
    assert (row["variant"], row["encoding"]) == ("dropout", "unbiased")
    assert run.dataset["size"].dims == ("seed", "condition", "time") and run.dataset["size"].shape[:2] == (12, 1)
    assert row["tau_ci"][0] > 0.1
    assert all(s < -0.02 for s in row["slopes"].values()), row
    assert row["min_kernel_r2"] > 0.9
    # The probe step draws a dropout mask, the NTK (evaluation mode) has none: it explains less
    # than for the standard net (> 0.95 there, see test_rbe_response; 0.72 at the paper's size).
    assert row["min_ntk_explained"] < 0.9


def _analysis(p1, tau, r2, slopes):
    kernels = {e: KernelFit(np.ones(17), np.ones((2, 17)), s, (s - 0.001, s + 0.001), 0.99, s, 0.1) for e, s in slopes.items()}
    return {"p1": p1, "encoding": str(p1), "power_law": {"tau": tau, "r2_loglog": r2}, "fits": {"kernels": kernels}}


def test_comparisons_read_the_right_numbers():
    results = {
        "standard": [_analysis(0.5, 0.6, 0.99, {0: -0.05, 200: -0.08, 400: -0.06}),
                     _analysis(0.0, 1.0, 0.999, {0: -0.05, 200: 0.2, 400: 0.3})],
        "relu": [_analysis(0.5, 0.4, 0.97, {0: -0.03, 200: -0.02, 400: -0.01})],
        "dropout": [_analysis(0.5, 0.3, 0.98, {0: -0.05, 200: -0.07, 400: -0.055})],
    }
    claims = {c.id: c for c in V._comparisons(results)}
    relu = claims["elu-clearer-than-relu"]
    assert relu.held and relu.value == pytest.approx(0.02)
    drop = claims["dropout-smaller-slopes"]
    assert drop.held and drop.value == pytest.approx(-0.005)  # largest over epochs 200, 400
    det = claims["standard-deterministic-ages-faster"]
    assert det.held and det.value == pytest.approx(0.4)
    conv = claims["standard-deterministic-kernel-diverges"]
    assert conv.held and conv.value == pytest.approx(0.1 / 0.02)
    results["dropout"] = [_analysis(0.5, 0.3, 0.98, {0: -0.05, 200: -0.09, 400: -0.05})]
    assert not {c.id: c for c in V._comparisons(results)}["dropout-smaller-slopes"].held


def test_config_errors():
    with pytest.raises(ConfigError, match="deterministic"):
        V.RBEVariantsConfig(variants=("standard",), deterministic=("relu",))
    with pytest.raises(ConfigError, match="variants"):
        V.RBEVariantsConfig(variants=("wide",))
    with pytest.raises(ConfigError, match="p1s"):
        V.RBEVariantsConfig(p1s=(0.5, 0.0))
