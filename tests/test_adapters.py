"""Models beyond linen (pure (init, apply) pairs, equinox modules), plain flax modules without a
``train`` argument, and models with batch statistics: they train, record and get NTKs."""

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn import ntk
from jaxdyn.engine import EngineConfigError, Task, hparam, losses, optimizer, train
from jaxdyn.models.adapters import EquinoxModel, PureModel


def init_mlp(key, x):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (x.shape[-1], 8)) / np.sqrt(x.shape[-1]), "b1": jnp.zeros(8),
            "w2": jax.random.normal(k2, (8,)) / np.sqrt(8.0)}


def apply_mlp(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]


class PlainFlax(nn.Module):  # no train= argument
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(jnp.tanh(nn.Dense(8)(x)))[:, 0]


class WithBatchNorm(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        h = nn.BatchNorm(use_running_average=not train, momentum=0.5)(nn.Dense(8)(x))
        return nn.Dense(1)(jnp.tanh(h))[:, 0]


class EqxMLP(eqx.Module):
    l1: eqx.nn.Linear
    l2: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.l1, self.l2 = eqx.nn.Linear(3, 8, key=k1), eqx.nn.Linear(8, "scalar", key=k2)

    def __call__(self, x):  # one example
        return self.l2(jnp.tanh(self.l1(x)))


def task_init(key):
    x = jax.random.normal(key, (16, 3))
    return {"x": x, "y": jnp.sin(x[:, 0])}


def task_batch(data, key, step):
    idx = jax.random.choice(key, 16, (8,), replace=False)
    return {"x": data["x"][idx], "y": data["y"][idx]}


TASK = Task(task_init, task_batch)


def _train(model, steps=40):
    return train(model, TASK, optimizer("sgd", learning_rate=hparam("lr")), seeds=range(3), num_steps=steps,
                 loss=losses.mean_squared_error, hparams={"lr": 0.1}, record_every=steps,
                 observables={"loss": lambda s: losses.mean_squared_error(s.apply(s.params, s.data["x"]), s.data)})


@pytest.mark.parametrize("model", [PureModel(init_mlp, apply_mlp), PlainFlax(), EquinoxModel(EqxMLP), WithBatchNorm()],
                         ids=["pure", "plain-flax", "equinox", "batchnorm"])
def test_every_kind_of_model_trains_and_learns(model):
    result = _train(model)
    loss = result.records["loss"]
    assert (result.diverged_at == -1).all()
    assert (loss[:, -1] < 0.7 * loss[:, 0]).all(), loss  # every member learns


def test_the_pure_pair_trains_exactly_like_the_same_network_in_flax():
    # The same function from the same initial parameters: the adapter adds nothing of its own.
    class Same(nn.Module):
        @nn.compact
        def __call__(self, x):
            shapes = {"w1": (3, 8), "b1": (8,), "w2": (8,)}
            p = {k: self.param(k, nn.initializers.zeros, v) for k, v in shapes.items()}
            return apply_mlp(p, x)

    keys = jax.random.split(jax.random.key(7), 3)
    init = jax.vmap(lambda k: init_mlp(k, jnp.zeros((1, 3))))(keys)
    runs = []
    for model in (PureModel(init_mlp, apply_mlp), Same()):
        runs.append(train(model, TASK, optimizer("sgd", learning_rate=hparam("lr")), seeds=range(3), num_steps=40,
                          loss=losses.mean_squared_error, hparams={"lr": 0.1}, record_every=40, init_params=init,
                          observables={"loss": lambda s: losses.mean_squared_error(s.apply(s.params, s.data["x"]), s.data)}))
    np.testing.assert_allclose(runs[0].records["loss"], runs[1].records["loss"], rtol=1e-6)
    assert runs[0].records["loss"][0, -1] < runs[0].records["loss"][0, 0]


def test_batch_statistics_are_carried_and_updated_in_training():
    result = _train(WithBatchNorm(), steps=10)
    stats = result.state.learner.model_state["batch_stats"]
    mean = stats["BatchNorm_0"]["mean"]
    assert mean.shape == (3, 8) and np.abs(mean).max() > 0  # updated from the zeros of init
    assert not np.allclose(mean[0], mean[1])  # per member


def test_ntk_of_adapted_models_matches_its_jacobian_definition():
    x = jax.random.normal(jax.random.key(1), (5, 3))
    for model in (PureModel(init_mlp, apply_mlp), EquinoxModel(EqxMLP)):
        params = model.init({"params": jax.random.key(0)}, x)["params"]
        f = lambda p, x, model=model: model.apply({"params": p}, x)  # noqa: E731
        jac = jax.jacrev(f)(params, x)
        flat = jnp.concatenate([j.reshape(5, -1) for j in jax.tree_util.tree_leaves(jac)], axis=1)
        np.testing.assert_allclose(ntk.ntk(f, params, x, method="jacobian"), flat @ flat.T, rtol=1e-4, atol=1e-5)


def test_a_model_that_cannot_be_used_is_named_in_one_line():
    with pytest.raises(EngineConfigError, match="model: expected a flax linen Module"):
        train(object(), TASK, optimizer("sgd", learning_rate=0.1), seeds=[0], num_steps=1, loss=losses.mean_squared_error)
