"""Numerical faults contained (NaN data, divergence, ODE failures), summaries that say what they
skipped, atomic result files, and the two halves of the determinism statement in the README."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import xarray as xr

from jaxdyn import cli
from jaxdyn.engine import Task, losses, train
from jaxdyn.store import skipped_members, write_dataset, write_json
from jaxdyn.theory import saxe


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(1)(nn.tanh(nn.Dense(6)(x)))[:, 0]


def _task():
    def init(key):
        x = jax.random.normal(key, (12, 3))
        return {"x": x, "y": jnp.sin(x[:, 0])}

    def batch(data, key, step):
        idx = jax.random.choice(key, 12, (3,), replace=False)
        return {"x": data["x"][idx], "y": data["y"][idx], "idx": idx}

    return Task(init, batch)


OBS = {"loss": lambda s: losses.mean_squared_error(s.apply(s.params, s.data["x"]), s.data),
       "weight_norm": lambda s: sum(jnp.sum(w**2) for w in jax.tree_util.tree_leaves(s.params)),
       "idx": lambda s: s.batch["idx"]}  # the batch update `step` will use


def _train(seeds, data):
    return train(MLP(), _task(), optax.sgd(0.1), seeds=seeds, num_steps=24, loss=losses.mean_squared_error,
                 observables=OBS, record_every=1, data=data)


@pytest.fixture(scope="module")
def clean():
    keys = [jax.random.fold_in(jax.random.key(0), i) for i in range(3)]
    data = jax.tree_util.tree_map(lambda *x: np.stack(x), *[_task().init(k) for k in keys])
    return data, _train([0, 1, 2], data)


def test_nan_in_one_members_data_is_flagged_at_its_step_and_the_others_are_bitwise_unchanged(clean):
    data, reference = clean
    # Poison a sample of member 1 that its first batches do not use, so the step is non-trivial.
    idx = reference.records["idx"][1]  # (time, 3): the samples update t uses
    first_use = {int(i): int(np.argmax((idx == i).any(axis=1))) for i in range(12) if (idx == i).any()}
    sample = max(first_use, key=first_use.get)
    expected_step = first_use[sample]
    assert expected_step > 0
    poisoned = jax.tree_util.tree_map(np.array, data)
    poisoned["x"][1, sample, 0] = np.nan
    result = _train([0, 1, 2], poisoned)

    np.testing.assert_array_equal(result.diverged_at, [-1, expected_step, -1])
    # Records are taken after `t` updates: finite up to the poisoned update, NaN from then on.
    assert np.isfinite(result.records["weight_norm"][1, : expected_step + 1]).all()
    assert not np.isfinite(result.records["weight_norm"][1, expected_step + 1 :]).any()
    for k in result.records:
        np.testing.assert_array_equal(result.records[k][[0, 2]], reference.records[k][[0, 2]], err_msg=k)
    for a, b in zip(jax.tree_util.tree_leaves(result.params), jax.tree_util.tree_leaves(reference.params)):
        np.testing.assert_array_equal(a[[0, 2]], b[[0, 2]])
    print(f"NaN in sample {sample} of member 1: flagged at step {expected_step}; members 0 and 2 bitwise unchanged")


def test_a_member_alone_matches_it_inside_a_wider_ensemble_to_float_rounding(clean):
    """README, Determinism: across ensemble (vmap) widths results agree to float rounding."""
    data, reference = clean
    alone = _train([1], jax.tree_util.tree_map(lambda x: x[1:2], data))
    np.testing.assert_array_equal(alone.records["idx"][0], reference.records["idx"][1])  # same data order: same keys
    worst = 0.0
    for a, b in zip(jax.tree_util.tree_leaves(alone.params), jax.tree_util.tree_leaves(reference.params)):
        worst = max(worst, float(np.max(np.abs(a[0] - b[1]) / (np.abs(b[1]) + 1e-3))))
    loss_diff = float(np.max(np.abs(alone.records["loss"][0] - reference.records["loss"][1])))
    print(f"member 1 alone vs in a 3-wide ensemble: max relative param diff {worst:.2e}, max loss diff {loss_diff:.2e}"
          f" ({'bitwise equal' if worst == 0 and loss_diff == 0 else 'float rounding'})")
    assert worst < 1e-5 and loss_diff < 1e-6


def test_an_ode_that_fails_reports_which_member_and_why():
    # dy/dt = y^2 from y0 blows up at t = 1/y0: member 1 (y0 = 1) cannot reach t = 2.
    y0 = jnp.array([-1.0, 1.0, 0.25])
    ts = jnp.linspace(0.0, 2.0, 9)
    with jax.enable_x64(True):
        sol = saxe.solve_batch(lambda t, y, args: y**2, jnp.asarray(y0, jnp.float64), jnp.zeros(3), jnp.asarray(ts, jnp.float64),
                               rtol=1e-8, atol=1e-10, max_steps=2000)
    np.testing.assert_array_equal(np.asarray(sol.ok), [True, False, True])
    assert sol.message[1] in ("max_steps_reached", "nonfinite", "dt_min_reached") and sol.message[0] == "successful"
    with np.errstate(divide="ignore"):
        exact = np.asarray(y0)[:, None] / (1 - np.asarray(y0)[:, None] * np.asarray(ts)[None])
    np.testing.assert_allclose(np.asarray(sol.ys)[[0, 2]], exact[[0, 2]], rtol=1e-6)
    print("ODE member 1:", sol.message[1])


def test_cli_names_the_members_it_left_out(tmp_path, capsys):
    # lr 1 with beta0 100: members 0 and 2 diverge at step 3 and member 2's ODE hits the step limit.
    assert cli.main(["run", "saxe-reduction", "--quick", "--no-progress", "--out", str(tmp_path),
                     "--set", "lr=1.0", "--set", "beta0s=100,1"]) == 0
    out = capsys.readouterr().out
    assert ("2 of 4 members left out of the summary: member 0: diverged at step 3; member 2: diverged at step 3; "
            "ODE max_steps_reached") in out
    run = tmp_path / "saxe-reduction"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["skipped_members"]["skipped"] == 2
    assert summary["numbers"]["ode_failure_reasons"] == {"2": "max_steps_reached"}
    ds = xr.load_dataset(run / "results.nc")
    assert list(ds["diverged_at"].values) == [3, -1, 3, -1] and ds["ode_message"].values[2] == "max_steps_reached"
    assert skipped_members(ds) == summary["skipped_members"]


def test_skipped_members_read_any_dims_with_a_seed_axis():
    # diverged_at of (seed, encoding), as rbe-response stores it, is counted too; and the
    # experiment's own reasons (excluded_reason) are listed beside the engine's.
    ds = xr.Dataset({"diverged_at": (("seed", "encoding"), np.array([[-1, -1], [-1, 7], [-1, -1], [-1, -1]])),
                     "ode_ok": ("seed", np.array([1, 1, 0, 1], np.int8)),
                     "ode_message": ("seed", np.array(["successful"] * 2 + ["nonfinite", "successful"])),
                     "excluded_reason": ("seed", np.array(["", "", "", "outputs saturated: response undefined"]))})
    assert skipped_members(ds) == {"members": 4, "skipped": 3, "reasons": [
        {"member": 1, "reason": "diverged at step 7 (1 of its 2 conditions)"},
        {"member": 2, "reason": "ODE nonfinite"},
        {"member": 3, "reason": "outputs saturated: response undefined"}]}
    assert skipped_members(xr.Dataset({"a": ("x", np.zeros(2))})) == {"members": None, "skipped": 0, "reasons": []}


def test_members_left_out_before_a_claim_keep_the_seed_axis():
    from jaxdyn import claims

    # A claim computed on the 3 included members of 5 gets the 2 others back as NaN / not held at
    # their own indices, counted beside its own non-finite exclusions.
    c = claims.per_seed("x", "a claim", [1.0, float("nan"), 3.0], ">", 0.0, kind="sanity", why="w", threshold_source="t",
                        initial=[0.0, 0.0, 0.0])
    [out] = claims.leaving_out([c], [True, False, True, False, True], "output saturated")
    assert out.per_seed[0] == 1.0 and out.per_seed[4] == 3.0 and np.isnan(out.per_seed[1]) and np.isnan(out.per_seed[3])
    assert out.seed_held == (True, False, False, False, True) and len(out.initial_per_seed) == 5
    assert out.excluded == 3 and "2 member(s) left out: output saturated" in out.excluded_reason
    assert out.held == c.held and out.value == c.value
    assert claims.leaving_out([c], [True] * 3, "none") == [c]
    with pytest.raises(claims.ClaimError, match="per-seed values"):
        claims.leaving_out([c], [True, False], "wrong length")


def test_no_margin_from_a_spread_at_float_rounding():
    from jaxdyn import claims

    # Seeds that agree to rounding have a bootstrap SE of ~1e-16; a margin of 1e15 SE would say
    # nothing, so there is none. A real spread keeps its margin.
    same = [0.9747 + 1e-17 * i for i in range(8)]
    assert claims.per_seed("x", "s", same, ">", 0.5, kind="sanity", why="w", threshold_source="t").margin_se is None
    assert claims.check("x", "s", 0.9747, ">", 0.5, kind="sanity", why="w", threshold_source="t", se=1e-16).margin_se is None
    spread = claims.per_seed("x", "s", [0.8, 0.9, 1.0, 0.85, 0.95], ">", 0.5, kind="sanity", why="w", threshold_source="t")
    assert 1.0 < spread.margin_se < 100.0
    assert claims.check("x", "s", 0.9, ">", 0.5, kind="sanity", why="w", threshold_source="t", se=0.1).margin_se == pytest.approx(4.0)


def test_results_and_summary_are_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / "results.nc"
    good = xr.Dataset({"a": ("seed", np.arange(3.0))})
    write_dataset(path, good)
    write_json(tmp_path / "summary.json", {"n": 1})

    def crash(self, target, **kw):
        with open(target, "wb") as f:
            f.write(b"\x89HDF half a file")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", crash)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(path, xr.Dataset({"a": ("seed", np.zeros(3))}))
    monkeypatch.undo()
    np.testing.assert_array_equal(xr.load_dataset(path)["a"].values, [0.0, 1.0, 2.0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.nc", "summary.json"]  # no temporary left


def test_a_log_axis_with_nothing_positive_is_still_written(tmp_path):
    # Every member of a condition diverged (lr 10 on rbe-response): the frozen-NTK panel's lines are
    # all NaN, and matplotlib refused to draw its log axes, which failed the whole run's writing.
    import matplotlib.pyplot as plt

    from jaxdyn.store import write_figure

    fig, (bad, good) = plt.subplots(1, 2)
    steps = np.arange(1.0, 10.0)
    bad.fill_between(steps, np.full(9, np.nan), np.full(9, np.nan))
    bad.plot(steps, np.full(9, np.nan))
    bad.axhline(0.1)
    good.plot(steps, steps ** 2)
    for ax in (bad, good):
        ax.set_xscale("log")
        ax.set_yscale("log")
    write_figure(tmp_path / "f.png", fig)
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert bad.get_xscale() == "linear" and bad.get_yscale() == "log"  # only the axis with nothing to show
    assert good.get_xscale() == good.get_yscale() == "log" and not good.texts
    assert any("no positive x value" in t.get_text() for t in bad.texts)
    plt.close(fig)


def test_results_that_do_not_describe_their_variables_are_refused():
    from jaxdyn import claims
    from jaxdyn.experiments.base import Config, Experiment, Result
    from jaxdyn.store import execute, undescribed

    class C(Config):
        pass

    def make(attrs):
        def go(config, ctx):
            ds = xr.Dataset({"value": ("seed", np.arange(3.0), attrs), "diverged_at": ("seed", np.full(3, -1)),
                             "label": ("seed", np.array(["a", "b", "c"]), {"long_name": "a text label"})},
                            coords={"seed": np.arange(3)})
            return Result(ds, [claims.check("c", "a claim", 1.0, ">", 0.0, kind="sanity", why="test", threshold_source="t")], {}, {})
        return Experiment(name="described", work="test", description="attrs", config=C, run=go)

    with pytest.raises(TypeError, match="value: long_name"):
        execute(make({}), C())
    with pytest.raises(TypeError, match="value: units"):
        execute(make({"long_name": "a number"}), C())
    # Text needs no units; the run layer's conventional names (seed, diverged_at) get theirs.
    ds = execute(make({"long_name": "a number", "units": "1"}), C()).dataset
    assert undescribed(ds) == [] and ds["diverged_at"].attrs["units"] == "step" and "seed" in ds["seed"].attrs["long_name"]
