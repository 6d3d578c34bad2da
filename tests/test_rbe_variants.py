"""rbe-variants: the quick preset (the dropout net and a width sweep), the Keras initialisation, and
the paper's comparisons on known inputs."""

import jax
import numpy as np
import pytest

from jaxdyn.analysis.response import KernelFit
from jaxdyn.experiments import ConfigError
from jaxdyn.experiments import rbe_variants as V
from jaxdyn.models.rbe_conv import RBEConvNet
from jaxdyn.store import execute


@pytest.fixture(scope="module")
def run():
    return execute(V.EXPERIMENT, V.RBEVariantsConfig.quick())


def test_the_law_holds_with_dropout_in_both_spaces(run):
    (row,) = run.numbers["table"]
    assert (row["variant"], row["encoding"], row["init"]) == ("dropout", "unbiased", "keras")
    ds = run.dataset
    for name in ("response", "theta", "response_logit", "theta_logit", "probe_f"):
        assert ds[name].dims == ("seed", "condition", "time", "hamming") and ds[name].shape[:2] == (12, 1), name
    for name in ("f_source", "y_source", "dl_df"):
        assert ds[name].dims == ("seed", "condition", "time")
    assert row["tau_ci"][0] > 0.1 and row["tau_logit"] > 0.1
    assert abs(row["tau"] - row["tau_logit"] - row["tau_sigmoid_factor"]) < 0.05
    assert all(s < -0.02 for s in row["slopes"].values()), row
    # The probe step draws a dropout mask, the NTK (evaluation mode) has none: it explains less
    # than for the standard net (> 0.95 there, see test_rbe_response).
    assert row["min_ntk_explained"] < 0.9


def test_width_sweep(run):
    rows = {(r["features"], r["lr_scheme"]): r for r in run.numbers["width_sweep"]}
    assert set(rows) == {(m, k) for m in (4, 16) for k in ("fixed", "ntk", "ntk-param")}
    assert rows[(4, "fixed")]["lr"] == rows[(16, "fixed")]["lr"] == pytest.approx(0.1)
    # The wider net's NTK is larger at initialisation (standard parametrisation), but under Keras'
    # initialisation by less than the width ratio: the NTK-held rate lies between 0.1 and 0.1 * 8/16.
    th4, th16 = rows[(4, "fixed")]["theta_f_initial_median"], rows[(16, "fixed")]["theta_f_initial_median"]
    assert 1.0 < th16 / th4 < 4.0
    assert 0.05 < rows[(16, "ntk")]["lr"] < 0.1 < rows[(4, "ntk")]["lr"] < 0.2
    np.testing.assert_allclose(rows[(16, "ntk")]["lr"] / rows[(4, "ntk")]["lr"], th4 / th16, rtol=1e-6)
    # The recorded self-NTK at epoch 0 is the measured initial one (the same weights as the engine's).
    ds = run.dataset
    assert ds["width_response"].dims == ("width_seed", "width", "lr_scheme", "time", "hamming")
    ids = {c.id for c in run.claims}
    assert {"width-tau-rises-fixed-lr", "width-rise-is-ntk-scale", "width-tau-flat-ntk-held"} <= ids
    h0 = ds["width_theta"].sel(hamming=0, time=0).values  # (width_seed, width, lr_scheme)
    np.testing.assert_allclose(np.median(h0[:, 1, 0]), th16, rtol=1e-5)
    # The NTK-parametrised net, trained by its own call on the same keys, starts from the same
    # function (its records sit at their scheme's index), with an NTK that does not grow like the
    # standard one's, at one lr for every width.
    f0 = ds["width_f_source"].sel(time=0)
    np.testing.assert_allclose(f0.sel(lr_scheme="ntk-param").values, f0.sel(lr_scheme="fixed").values, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ds["width_f_source"].sel(lr_scheme="ntk-param").values, ds["width_f_source"].sel(lr_scheme="fixed").values)
    assert rows[(4, "ntk-param")]["lr"] == rows[(16, "ntk-param")]["lr"]
    t4, t16 = rows[(4, "ntk-param")]["theta_f_initial_median"], rows[(16, "ntk-param")]["theta_f_initial_median"]
    assert abs(np.log(t16 / t4)) < abs(np.log(th16 / th4))
    np.testing.assert_allclose(ds["width_theta_f_initial"].sel(lr_scheme="ntk-param").values, [t4, t16])
    got = {c.id: c for c in run.claims}
    for cid in ("width-ntk-param-kernel-aging-falls", "width-ntk-param-kernel-moves-less",
                "width-ntk-param-initial-kernel-tends-to-infinite-width"):
        assert got[cid].kind == "extension" and got[cid].margin_se is not None, cid
    # The infinite-width claim recomputes from the stored arrays alone: each member's initial
    # logit self-kernel (probe at distance 0) against its stored Theta^inf_z(x_o, x_o).
    inf = ds["width_theta_logit_infinite"]
    assert inf.dims == ("width_seed", "width") and bool((inf > 0).all())
    own = ds["width_theta_logit"].sel(hamming=0, time=0, lr_scheme="ntk-param")
    gaps = np.abs(own.values / inf.values - 1.0).mean(axis=0)  # every member is included at the quick size
    np.testing.assert_allclose([rows[(m, "ntk-param")]["gap_to_infinite_start"] for m in (4, 16)], gaps, rtol=1e-5)
    slope = np.polyfit(np.log2([4, 16]), np.log2(gaps), 1)[0]
    np.testing.assert_allclose(got["width-ntk-param-initial-kernel-tends-to-infinite-width"].value, slope, rtol=1e-5)


def test_keras_initialisation():
    x = np.zeros((2, 16), np.float32)
    keras = RBEConvNet(init_scheme="keras").init(jax.random.key(0), x)["params"]
    flax = RBEConvNet().init(jax.random.key(0), x)["params"]
    # Glorot uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)), fans with the receptive field (Keras' count).
    for name, (fan_in, fan_out) in {"conv_0": (3, 24), "conv_1": (24, 24), "dense": (80, 1)}.items():
        k = np.asarray(keras[name]["kernel"])
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(k).max() <= limit and np.abs(k).max() > 0.7 * limit, name
        np.testing.assert_array_equal(np.asarray(keras[name]["bias"]), 0.0)
    # flax's LeCun normal is not uniform: its first conv has variance 1/3, far above Glorot's 2/27.
    assert np.var(np.asarray(flax["conv_0"]["kernel"])) > 2 * np.var(np.asarray(keras["conv_0"]["kernel"]))
    with pytest.raises(ValueError, match="init_scheme"):
        RBEConvNet(init_scheme="he")


def _analysis(p1, tau, r2, slopes, tau_z=None, slopes_z=None):
    kernels = {e: KernelFit(np.ones(17), np.ones((2, 17)), s, (s - 0.001, s + 0.001), 0.99, s, 0.1) for e, s in slopes.items()}
    fits = {"kernels": kernels}
    out = {"p1": p1, "encoding": str(p1), "power_law": {"tau": tau, "r2_loglog": r2}, "fits": fits}
    if tau_z is not None:
        out["saturation"] = {"tau_logit": tau_z, "tau_sigmoid_factor": tau - tau_z}
        fits["kernels_logit"] = {e: KernelFit(np.ones(17), np.ones((2, 17)), s, (s, s), 0.99, s, 0.1) for e, s in slopes_z.items()}
    return out


def test_comparisons_read_the_right_numbers():
    results = {
        "standard": [_analysis(0.5, 0.6, 0.99, {0: -0.05, 200: -0.08, 400: -0.06}, 0.62, {0: -0.05, 200: -0.07, 400: -0.06}),
                     _analysis(0.0, 1.0, 0.999, {0: -0.05, 200: 0.2, 400: 0.3}, -0.2, {0: -0.05, 200: -0.02, 400: -0.019})],
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
    # In logit space the deterministic net does not age faster: its logit kernel grows.
    det_z = claims["standard-deterministic-ages-faster-logit"]
    assert not det_z.held and det_z.value == pytest.approx(-0.82)
    conv = claims["standard-deterministic-kernel-diverges"]
    assert conv.held and conv.value == pytest.approx(0.1 / 0.02)
    conv_z = claims["standard-deterministic-kernel-diverges-logit"]
    assert not conv_z.held and conv_z.value == pytest.approx(0.001 / 0.01)
    results["dropout"] = [_analysis(0.5, 0.3, 0.98, {0: -0.05, 200: -0.09, 400: -0.05})]
    assert not {c.id: c for c in V._comparisons(results)}["dropout-smaller-slopes"].held


def test_config_errors():
    with pytest.raises(ConfigError, match="deterministic"):
        V.RBEVariantsConfig(variants=("standard",), deterministic=("relu",))
    with pytest.raises(ConfigError, match="variants"):
        V.RBEVariantsConfig(variants=("wide",))
    with pytest.raises(ConfigError, match="p1s"):
        V.RBEVariantsConfig(p1s=(0.5, 0.0))
    with pytest.raises(ConfigError, match="other_inits"):
        V.RBEVariantsConfig(other_inits=("keras",))
    with pytest.raises(ConfigError, match="width_lr"):
        V.RBEVariantsConfig(width_lr=("sqrt",))
