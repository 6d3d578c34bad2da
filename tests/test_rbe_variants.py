"""rbe-variants on its quick preset (standard and dropout nets, unbiased encoding)."""

import pytest

from jaxdyn.experiments import ConfigError
from jaxdyn.experiments import rbe_variants as V


@pytest.fixture(scope="module")
def run():
    return V.run(V.RBEVariantsConfig.quick())


def test_table_and_the_law_for_each_variant(run):
    rows = {(r["variant"], r["encoding"]): r for r in run.summary["table"]}
    assert set(rows) == {("standard", "unbiased"), ("dropout", "unbiased")}
    assert run.dataset["size"].dims == ("seed", "condition", "time") and run.dataset["size"].shape[:2] == (12, 2)
    for r in rows.values():
        assert r["tau_ci"][0] > 0.1, r["variant"]
        assert all(s < -0.02 for s in r["slopes"].values()), r
        assert r["min_kernel_r2"] > 0.9
    # The comparison with the standard net is made and reported with its number.
    claims = [c for c in run.summary["claims"] if c["claim"].startswith("dropout 0.2 makes")]
    assert len(claims) == 1 and abs(claims[0]["value"]) < 0.05


def test_dropout_response_is_measured_with_a_dropout_step(run):
    # With dropout the probe step sees a random mask, the NTK (evaluation mode) does not: it explains
    # less of the response than for the standard net, whose explanation is first-order exact.
    rows = {r["variant"]: r for r in run.summary["table"]}
    assert rows["standard"]["min_ntk_explained"] > 0.9
    assert rows["dropout"]["min_ntk_explained"] < rows["standard"]["min_ntk_explained"] - 0.05


def test_config_errors():
    with pytest.raises(ConfigError, match="deterministic"):
        V.RBEVariantsConfig(variants=("standard",), deterministic=("relu",))
    with pytest.raises(ConfigError, match="variants"):
        V.RBEVariantsConfig(variants=("wide",))
    with pytest.raises(ConfigError, match="p1s"):
        V.RBEVariantsConfig(p1s=(0.5, 0.0))
