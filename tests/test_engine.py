"""The engine: chunking, seeds, per-member hyperparameters, divergence, resume, sharding."""

import json
import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdyn.engine import EngineConfigError, Task, losses, observables, train


class TinyNet(nn.Module):
    """Two dense layers with dropout between: exercises init keys, data order and dropout keys."""

    @nn.compact
    def __call__(self, x, train=False):
        h = nn.tanh(nn.Dense(6)(x))
        h = nn.Dropout(0.25, deterministic=not train)(h)
        return nn.Dense(1)(h)[:, 0]


def _task():
    def init(key):
        x = jax.random.normal(key, (24, 3))
        return {"x": x, "y": jnp.sin(x @ jnp.array([1.0, -0.5, 0.3]))}

    def batch(data, key, step):
        idx = jax.random.permutation(key, 24)[:6]
        return {"x": data["x"][idx], "y": data["y"][idx], "idx": idx}

    return Task(init, batch)


OBS = {
    "loss": observables.batch_loss(losses.mean_squared_error),
    "pred": observables.predictions("x"),
    "first_index": lambda s: s.batch["idx"][0],
}


def _run(**kw):
    args = dict(
        seeds=[0, 1, 2],
        num_steps=30,
        loss=losses.mean_squared_error,
        observables=OBS,
        record_every=5,
        hparams={"lr": np.array([0.05, 0.1, 0.2], np.float32)},
    )
    args.update(kw)
    return train(TinyNet(), _task(), lambda h: optax.sgd(h["lr"]), **args)


@pytest.fixture(scope="module")
def reference():
    return _run()


def _assert_bitwise(a, b):
    for k in a.records:
        np.testing.assert_array_equal(a.records[k], b.records[k], err_msg=k)
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_array_equal(x, y)


def test_shapes_and_steps(reference):
    assert reference.records["loss"].shape == (3, 7)
    assert reference.records["pred"].shape == (3, 7, 24)
    np.testing.assert_array_equal(reference.record_steps, [0, 5, 10, 15, 20, 25, 30])
    assert reference.params["Dense_0"]["kernel"].shape == (3, 3, 6)
    assert (reference.diverged_at == -1).all()
    # Training reduces the loss for every member.
    assert (reference.records["loss"][:, -1] < reference.records["loss"][:, 0]).all()


def test_results_do_not_depend_on_chunk_size(reference):
    # 10 steps per chunk: 3 equal chunks; 15: two chunks; 20: a full chunk and a remainder.
    for chunk in (10, 15, 20):
        _assert_bitwise(reference, _run(chunk_steps=chunk))


def test_seeds_give_different_initialisations_and_data_orders(reference):
    kernels = reference.params["Dense_0"]["kernel"]
    assert not np.allclose(kernels[0], kernels[1])
    order = reference.records["first_index"]
    assert not (order[0] == order[1]).all() and not (order[1] == order[2]).all()
    # Same seed, same everything: determinism.
    again = _run(seeds=[0, 1, 2])
    _assert_bitwise(reference, again)


def test_learning_rate_per_member():
    r = _run(hparams={"lr": np.array([0.0, 0.1, 0.1], np.float32)})
    initial = _run(num_steps=5, record_every=5, hparams={"lr": np.zeros(3, np.float32)})
    np.testing.assert_array_equal(r.params["Dense_1"]["kernel"][0], initial.params["Dense_1"]["kernel"][0])
    assert not np.allclose(r.params["Dense_1"]["kernel"][1], initial.params["Dense_1"]["kernel"][1])


def test_diverging_member_is_flagged_and_others_untouched(reference):
    r = _run(hparams={"lr": np.array([0.05, 0.1, 1e6], np.float32)})
    assert r.diverged_at[0] == -1 and r.diverged_at[1] == -1
    assert 0 <= r.diverged_at[2] < 30
    assert not np.isfinite(r.records["loss"][2, -1])
    for k in ("loss", "pred"):
        np.testing.assert_array_equal(r.records[k][:2], reference.records[k][:2])


def test_resume_from_a_chunk_is_bitwise_identical(reference):
    saved = []
    _run(chunk_steps=10, on_chunk=lambda state, rec: saved.append((state, rec)))
    assert [s.step for s, _ in saved] == [10, 20, 30]
    state, rec = saved[0]
    state = jax.tree_util.tree_map(np.asarray, state)  # as if read back from disk
    resumed = _run(chunk_steps=10, resume_from=(state, rec))
    _assert_bitwise(reference, resumed)


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(record_every=7), "record_every"),
        (dict(num_steps=0), "num_steps"),
        (dict(chunk_steps=3), "chunk_steps"),
        (dict(seeds=[1, 1, 2]), "seeds"),
        (dict(hparams={"lr": np.ones(2)}), "hparams['lr']"),
        (dict(init_params={"w": np.ones((2, 3))}), "init_params"),
        (dict(block_width=0), "block_width"),
        (dict(executor=object()), "executor: executors are a layer above train"),
        (dict(recrod_every=10), "recrod_every: not an argument of train"),
    ],
)
def test_bad_arguments_are_rejected_before_compiling(kw, field):
    with pytest.raises(EngineConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        _run(**kw)


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np, optax
    sys.path.insert(0, {tests!r})
    from test_engine import TinyNet, _task, OBS
    from jaxdyn.engine import losses, train
    assert len(jax.devices()) == 4, jax.devices()
    def run(devices):
        return train(TinyNet(), _task(), lambda h: optax.sgd(h["lr"]), seeds=list(range(6)), num_steps=30,
                     loss=losses.mean_squared_error, observables=OBS, record_every=5,
                     hparams={{"lr": np.full(6, 0.1, np.float32)}}, devices=devices, chunk_steps=10)
    one, four = run(jax.devices()[:1]), run(jax.devices())
    diff = max(float(np.max(np.abs(one.records[k].astype(float) - four.records[k].astype(float)))) for k in ("loss", "pred"))
    pdiff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(one.params), jax.tree_util.tree_leaves(four.params)))
    same_order = bool((one.records["first_index"] == four.records["first_index"]).all())
    print(json.dumps({{"max_record_diff": diff, "max_param_diff": pdiff, "same_data_order": same_order,
                       "shape": list(four.records["pred"].shape)}}))
    """
)


def test_sharded_over_four_devices_matches_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    script = SHARDED_SCRIPT.format(tests=os.path.dirname(__file__))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print("sharded vs unsharded:", result)
    assert result["shape"] == [6, 7, 24]  # padding to 8 members removed
    assert result["same_data_order"]
    # Float32 rounding only: the members are independent, only XLA's vmap width differs.
    assert result["max_record_diff"] < 1e-5 and result["max_param_diff"] < 1e-5


def test_step_zero_records_come_from_the_chunk_program_for_every_group(monkeypatch):
    """A plan of a dense group (every 5 steps) and a sparse one (every 15): train takes the
    step-0 records from its first chunk (the initialisation's program computes none, so the
    observables compile once); they equal init_ensemble's, the sparse group's records equal the
    dense group's at the same steps, and none depends on the chunk size."""
    import jaxdyn.engine.core as core
    from jaxdyn.engine import Record, init_ensemble, prepare

    plan = [Record(OBS, every=5, dim="time"), Record({"pred_late": OBS["pred"]}, every=15, dim="late")]
    args = dict(seeds=[0, 1, 2], num_steps=30, loss=losses.mean_squared_error, record=plan,
                hparams={"lr": np.array([0.05, 0.1, 0.2], np.float32)})
    observed_at_init = []
    init_jit = core._init_jit

    def spy(*a, **k):
        observed_at_init.append(k.get("observe", True))
        return init_jit(*a, **k)

    spy.eval_shape = init_jit.eval_shape
    monkeypatch.setattr(core, "_init_jit", spy)
    whole = train(TinyNet(), _task(), lambda h: optax.sgd(h["lr"]), **args)
    halves = train(TinyNet(), _task(), lambda h: optax.sgd(h["lr"]), chunk_steps=15, **args)
    assert observed_at_init == [False, False]
    np.testing.assert_array_equal(whole.times["late"], [0, 15, 30])
    assert whole.records["pred_late"].shape == (3, 3, 24)
    _assert_bitwise(whole, halves)

    call = prepare(TinyNet(), _task(), lambda h: optax.sgd(h["lr"]), **args)
    keys = jnp.asarray(call.members.keys)
    hparams = {k: jnp.asarray(v) for k, v in call.members.hparams.items()}
    _, at_init = init_ensemble(call.spec, keys, hparams)
    for dim, names in (("time", ("loss", "pred", "first_index")), ("late", ("pred_late",))):
        for name in names:
            np.testing.assert_allclose(whole.records[name][:, 0], np.asarray(at_init[dim][name]), rtol=1e-6, atol=1e-7,
                                       err_msg=name)
    assert np.abs(whole.records["pred"][:, 0] - whole.records["pred"][:, -1]).max() > 1e-3  # training moved them
    np.testing.assert_allclose(whole.records["pred_late"], whole.records["pred"][:, ::3], rtol=1e-6, atol=1e-7)


def test_threefry_on_cpu_is_unrolled_with_the_default_lowerings_bits():
    """jaxdyn registers JAX's unrolled threefry lowering for CPU (faster to compile,
    jaxdyn/_lowering.py): no while loop in the lowered program, and the same bits as JAX's
    default rolled lowering, computed in a process that keeps it (JAXDYN_ROLLED_THREEFRY=1)."""
    script = textwrap.dedent(
        """
        import json
        import jax, numpy as np
        import jaxdyn.engine  # noqa: F401  (registers the lowering unless JAXDYN_ROLLED_THREEFRY is set)
        f = jax.jit(lambda k: jax.random.bits(jax.random.fold_in(k, 7), (5, 3)))
        key = jax.random.key(3)
        print(json.dumps({"rolled": "stablehlo.while" in f.lower(key).as_text(),
                          "bits": np.asarray(f(key)).tolist(), "normal": np.asarray(jax.random.normal(key, (4,))).tolist()}))
        """
    )
    out = {}
    for rolled in ("1", "0"):
        env = dict(os.environ, JAXDYN_ROLLED_THREEFRY=rolled, JAX_PLATFORMS="cpu")
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[rolled] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["1"]["rolled"] and not out["0"]["rolled"]
    assert out["0"]["bits"] == out["1"]["bits"] and out["0"]["normal"] == out["1"]["normal"]
