"""Linearised dynamics (jaxdyn.theory.linearized): the MSE closed forms against the diffrax ODE,
the linearised model trained by gradient descent against the discrete closed form (to float64
rounding) and against the function-space iteration for cross-entropy, and wide networks' gradient
descent approaching the linearised prediction as the width grows."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdyn import ntk as jntk
from jaxdyn.theory import kernels as K
from jaxdyn.theory import linearized as L


def mse_mean(outputs, batch):  # mean over examples of the squared error summed over outputs
    err = (outputs - batch["y"]) ** 2
    return jnp.mean(jnp.sum(err.reshape(err.shape[0], -1), axis=-1))


def _mlp(width, out=1):
    return K.serial(K.Dense(width, 1.5, 0.1), K.Erf(), K.Dense(width, 1.5, 0.1), K.Relu(), K.Dense(out, 1.0, 0.1))


def test_mse_closed_form_matches_diffrax_flow():
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(0), (7, 3), jnp.float64)
        xt = jax.random.normal(jax.random.PRNGKey(1), (4, 3), jnp.float64)
        net = _mlp(1)
        theta = net.kernel_fn(x, dtype=jnp.float64).ntk
        theta_t = net.kernel_fn(xt, x, dtype=jnp.float64).ntk
        y = jnp.sin(x[:, 0])
        f0 = 0.3 * jnp.cos(x[:, 1])
        f0t = 0.2 * xt[:, 2]
        times = jnp.array([0.0, 0.3, 1.0, 4.0, 20.0])
        for norm, loss in (("mean", mse_mean), ("half_sum", lambda f, b: 0.5 * jnp.sum((f - b["y"]) ** 2))):
            closed = L.predict_mse(theta, y, f0, times, lr=0.5, normalisation=norm, theta_test=theta_t, f0_test=f0t)
            ode = L.predict_loss(theta, y, f0, times, lr=0.5, loss=loss, theta_test=theta_t, f0_test=f0t,
                                 rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(closed.train, ode.train, rtol=0, atol=1e-8)
            np.testing.assert_allclose(closed.test, ode.test, rtol=0, atol=1e-8)
            np.testing.assert_allclose(closed.train[0], f0, atol=1e-12)
        # Long times: the training set is fitted.
        late = L.predict_mse(theta, y, f0, jnp.array([1e6]), lr=1.0)
        np.testing.assert_allclose(late.train[0], y, atol=1e-6)
        # (n, n, K, K) empirical layout with 2 outputs agrees with the shared kernel per output.
        theta4 = jnp.einsum("ij,ab->ijab", theta, jnp.eye(2))
        y2 = jnp.stack([y, -y], 1)
        a = L.predict_mse(theta, y2, jnp.zeros_like(y2), times, lr=0.5)
        b = L.predict_mse(theta4, y2, jnp.zeros_like(y2), times, lr=0.5)
        np.testing.assert_allclose(a.train, b.train, atol=1e-10)
        assert a.train.shape == (5, 7, 2)


def _train_gd(apply, params0, x, xt, loss, y, lr, steps):
    opt = optax.sgd(lr)

    def one(carry, _):
        p, s = carry
        g = jax.grad(lambda q: loss(apply(q, x), {"y": y}))(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), (apply(p, x), apply(p, xt))

    _, (tr, te) = jax.jit(lambda p: jax.lax.scan(one, (p, opt.init(p)), None, length=steps + 1))(params0)
    return tr, te  # [s] = after s steps


def test_linearised_model_under_gd_equals_discrete_closed_form():
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(0), (6, 3), jnp.float64)
        xt = jax.random.normal(jax.random.PRNGKey(1), (3, 3), jnp.float64)
        net = _mlp(16)
        _, p0 = net.init_fn(jax.random.PRNGKey(2), x.shape)
        p0 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), p0)
        f = lambda p, z: net.apply_fn(p, z)[:, 0]  # noqa: E731
        f_lin = L.linearize(f, p0)
        np.testing.assert_allclose(f_lin(p0, x), f(p0, x), rtol=1e-14)
        theta = jntk.ntk(f, p0, x, method="jacobian")
        theta_t = jntk.ntk(f, p0, xt, x, method="jacobian")
        y = jnp.tanh(x[:, 0])
        steps = 40
        lr = 0.05
        tr, te = _train_gd(f_lin, p0, x, xt, mse_mean, y, lr, steps)
        pred = L.predict_mse(theta, y, f(p0, x), jnp.arange(steps + 1), lr=lr, normalisation="mean",
                             theta_test=theta_t, f0_test=f(p0, xt), gradient_descent=True)
        np.testing.assert_allclose(pred.train, tr, rtol=0, atol=1e-10)
        np.testing.assert_allclose(pred.test, te, rtol=0, atol=1e-10)
        assert float(jnp.max(jnp.abs(tr[-1] - tr[0]))) > 0.05  # it did train
        # Cross-entropy on logits: the function-space iteration is exact for the linearised model too.
        labels = (x[:, 1] > 0).astype(jnp.float64)

        def bce(z, b):
            return jnp.mean(optax.sigmoid_binary_cross_entropy(z, b["y"]))

        tr2, te2 = _train_gd(f_lin, p0, x, xt, bce, labels, 0.5, steps)
        pred2 = L.predict_loss(theta, labels, f(p0, x), jnp.arange(steps + 1), lr=0.5, loss=bce, theta_test=theta_t,
                               f0_test=f(p0, xt), gradient_descent=True)
        np.testing.assert_allclose(pred2.train, tr2, rtol=0, atol=1e-10)
        np.testing.assert_allclose(pred2.test, te2, rtol=0, atol=1e-10)
        # ... and its flow is the small-step limit of descent: lr 0.5 x 40 steps ~ flow to time 20.
        flow = L.predict_loss(theta, labels, f(p0, x), jnp.array([20.0]), lr=1.0, loss=bce)
        assert float(jnp.max(jnp.abs(flow.train[0] - pred2.train[-1]))) < 0.05 * float(jnp.max(jnp.abs(pred2.train[-1])))


def test_wide_network_gd_approaches_linearised_prediction():
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 3))
    y = jnp.sin(2 * x[:, 0])
    steps, lr = 60, 0.2
    gaps = []
    widths = (32, 128, 512)
    for w in widths:
        net = _mlp(w)
        f = lambda p, z, net=net: net.apply_fn(p, z)[:, 0]  # noqa: E731
        ps = jax.vmap(lambda k: net.init_fn(k, x.shape)[1])(jax.random.split(jax.random.PRNGKey(w), 3))
        member_gaps = []
        for s in range(3):
            p0 = jax.tree_util.tree_map(lambda a: a[s], ps)
            tr, _ = _train_gd(f, p0, x, x[:2], mse_mean, y, lr, steps)
            theta = jntk.ntk(f, p0, x, method="jacobian")
            pred = L.predict_mse(theta, y, f(p0, x), jnp.arange(steps + 1), lr=lr, gradient_descent=True)
            member_gaps.append(float(L.trajectory_gap(tr[None], pred.train)[0]))
        gaps.append(np.mean(member_gaps))
    slope = float(np.polyfit(np.log(widths), np.log(gaps), 1)[0])
    assert gaps[0] > gaps[1] > gaps[2], gaps
    assert slope < -0.35, (slope, gaps)  # lazy training: the gap closes as the width grows


@pytest.mark.parametrize("call, match", [
    (lambda: L.predict_mse(jnp.eye(3), jnp.ones(3), jnp.zeros(3), [1.0], lr=-1.0), "lr must be"),
    (lambda: L.predict_mse(jnp.eye(3), jnp.ones(3), jnp.zeros(3), [1.0], lr=1.0, normalisation="avg"),
     "normalisation must be"),
    (lambda: L.predict_mse(jnp.eye(2), jnp.ones(3), jnp.zeros(3), [1.0], lr=1.0), "theta_train must have shape"),
    (lambda: L.predict_mse(jnp.eye(3), jnp.ones(3), jnp.zeros(2), [1.0], lr=1.0), "f0_train must have shape"),
    (lambda: L.predict_mse(jnp.eye(3), jnp.ones(3), jnp.zeros(3), [1.5], lr=1.0, gradient_descent=True),
     "step counts"),
    (lambda: L.predict_mse(jnp.eye(3), jnp.ones(3), jnp.zeros(3), [1.0], lr=1.0, theta_test=jnp.ones((2, 3))),
     "come together"),
    (lambda: L.predict_loss(jnp.eye(3), jnp.ones(3), jnp.zeros(3), [1.0], lr=1.0, loss="mse"), "loss must be"),
    (lambda: L.trajectory_gap(jnp.ones((2, 3, 4)), jnp.ones((3, 5))), "predicted must have shape"),
])
def test_bad_arguments_raise_one_line(call, match):
    with pytest.raises(ValueError, match=match) as e:
        call()
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# The linearised model trained by the engine itself (jaxdyn.engine.LinearizedLearner)
# ---------------------------------------------------------------------------------------------
def test_the_engine_trains_the_taylor_model_exactly_as_its_ntk_predicts():
    import flax.linen as nn

    from jaxdyn import ntk as ntk_module
    from jaxdyn.engine import LinearizedLearner, Task, hparam, losses, optimizer, train
    from jaxdyn.tasks import full_batch

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            return nn.Dense(1)(jnp.tanh(nn.Dense(32)(x)))[:, 0]

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 10, 2)).astype(np.float32)
    y = np.sin(x[..., 0]).astype(np.float32)
    steps, lr = 60, 0.1
    learners = {"linearised": LinearizedLearner(Net(), losses.mean_squared_error, optimizer("sgd", learning_rate=hparam("lr"))),
                "network": Net()}
    runs = {}
    for name, learner in learners.items():
        kwargs = {} if name == "linearised" else {"optimizer": optimizer("sgd", learning_rate=hparam("lr")),
                                                  "loss": losses.mean_squared_error}
        runs[name] = train(learner, Task(None, full_batch), seeds=range(3), num_steps=steps, record_every=steps // 3,
                           hparams={"lr": lr}, data={"x": x, "y": y}, block_width=1,
                           observables={"f": lambda s: s.apply(s.params, s.data["x"])}, **kwargs)
    f_lin = runs["linearised"].records["f"]  # (seed, time, n)
    np.testing.assert_array_equal(f_lin[:, 0], runs["network"].records["f"][:, 0])  # same start, same p0
    params0 = jax.tree_util.tree_map(lambda a: a[:, ...], runs["linearised"].state.learner.params0)
    f = ntk_module.apply_fn(Net())
    for member in range(3):
        p0 = jax.tree_util.tree_map(lambda a: a[member], params0)
        theta = ntk_module.ntk(f, p0, x[member])
        pred = L.predict_mse(theta, y[member], f_lin[member, 0], np.arange(0, steps + 1, steps // 3), lr=lr,
                              normalisation="mean", gradient_descent=True)
        np.testing.assert_allclose(f_lin[member], np.asarray(pred.train), atol=2e-5)
    # The network itself moves away from its linearisation (a narrow net: the kernel changes).
    assert np.abs(runs["network"].records["f"][:, -1] - f_lin[:, -1]).max() > 1e-4


def test_the_sigmoid_link_expands_the_logits():
    """link='sigmoid': the Taylor model of the logits with the sigmoid after. Its gradient descent
    moves the logits exactly by the logits' NTK at initialisation, z <- z - lr Theta_z dL/dz
    (iterated here on the host from the NTK), while the output keeps the sigmoid's saturation."""
    import flax.linen as nn

    from jaxdyn import ntk as ntk_module
    from jaxdyn.engine import LinearizedLearner, Task, hparam, losses, optimizer, train
    from jaxdyn.tasks import full_batch

    class Logits(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            return nn.Dense(1)(jnp.tanh(nn.Dense(16)(x)))[:, 0]

    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 8, 3)).astype(np.float32)
    y = (x[..., 0] > 0).astype(np.float32)
    steps, lr = 40, 0.5
    sgd = optimizer("sgd", learning_rate=hparam("lr"))
    run = train(LinearizedLearner(Logits(), losses.mean_squared_error, sgd, link="sigmoid"), Task(None, full_batch), seeds=range(2),
                num_steps=steps, record_every=steps // 4, hparams={"lr": lr}, data={"x": x, "y": y}, block_width=1,
                observables={"f": lambda s: s.apply(s.params, s.data["x"])})
    f_lin = np.asarray(run.records["f"], np.float64)  # (seed, time, n)
    assert ((f_lin > 0) & (f_lin < 1)).all()
    z_of = ntk_module.apply_fn(Logits())
    dloss = jax.grad(lambda z, t: losses.mean_squared_error(jax.nn.sigmoid(z), {"y": t}))
    for member in range(2):
        p0 = jax.tree_util.tree_map(lambda a: a[member], run.state.learner.params0)
        theta = np.asarray(ntk_module.ntk(z_of, p0, x[member]), np.float64)
        z = np.asarray(z_of(p0, x[member]), np.float64)
        np.testing.assert_allclose(f_lin[member, 0], 1 / (1 + np.exp(-z)), atol=1e-6)
        for t in range(1, steps + 1):
            z = z - lr * theta @ np.asarray(dloss(jnp.asarray(z, jnp.float32), y[member]), np.float64)
            if t % (steps // 4) == 0:
                np.testing.assert_allclose(f_lin[member, t // (steps // 4)], 1 / (1 + np.exp(-z)), atol=2e-5)
    with pytest.raises(ValueError, match="link must be one of"):
        LinearizedLearner(Logits(), losses.mean_squared_error, sgd, link="tanh")
