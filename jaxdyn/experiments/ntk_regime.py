"""ntk-regime: the network, its linearised model and the infinite-width theory, over width.

Nakazato (Sec. I): "In the ideal case, the response can be solved and even is constant during the
training. On the contrary, the response is not constant with the finite network and it depends
on the initial condition as well." The ideal case is the infinite-width limit (the paper's
"infinite neural units in a layer"). This experiment sets three descriptions of one training run
beside each other for three model families of the project, at growing width:

* the network itself, trained by full-batch gradient descent on the squared error;
* its first-order Taylor model around the initial weights (``LinearizedLearner``), trained by the
  same engine from the same weights;
* the infinite-width theory: the function-space prediction of gradient descent from the analytic
  NTK of the same architecture (``jaxdyn.theory.kernels.from_model``), started from the member's
  own initial outputs (``jaxdyn.theory.linearized.predict_mse``).

Families: the RBE conv net (ELU, kernel 3, VALID, 3 layers; width = filters per layer) on random
16-bit strings with random 0/1 targets; the deep linear chain (two hidden layers of the width,
Gaussian weights in NTK parametrisation, no biases) on Gaussian inputs with a linear teacher; the dense-sample VGG (two
SAME conv layers of the width, an adaptive pool, one hidden layer of the width, two outputs) on
Gaussian 8x8 images with one-hot targets. The RBE net and the VGG keep their models' own
initialisation (flax's, standard parametrisation), whose NTK grows with the width; the step is
therefore set in units of the kernel, lr = lr_scale * n / lambda_max(Theta_inf(train, train)) (the loss is a mean over the n
points, so gradient descent is stable below n / lambda_max), and every width moves equally far in
function space.

Measured per member (seed) and width: the relative distance of the empirical NTK at
initialisation from the analytic one (theory: O(width^-1/2)); the relative change of the empirical
NTK over training (the paper's "constant" response in the ideal case); the distance of the
trained network's outputs (train and test points) from the linearised model's and from the
infinite-width prediction, relative to how far the network's outputs moved; and, as a check of
the code, the linearised model trained by the engine against the closed form of its own empirical
NTK (exact for a model linear in its weights).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
import xarray as xr

from jaxdyn import claims, plots
from jaxdyn import ntk as jntk
from jaxdyn.engine import LinearizedLearner, Task, hparam, losses, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.tasks import full_batch
from jaxdyn.theory import kernels as K
from jaxdyn.theory import linearized as L

FAMILIES = ("rbe", "deep-linear", "vgg")
"""The model families: the RBE conv net, the deep linear chain, the dense-sample VGG."""

_CONSTANT = ("In the ideal case, the response can be solved and even is constant during the training. On the contrary, the "
             "response is not constant with the finite network and it depends on the initial condition as well", "Sec. I")


@dataclasses.dataclass(frozen=True)
class NTKRegimeConfig(Config):
    """Configuration of ntk-regime (defaults: three families, widths 16-256)."""

    seeds: int = param(8, "members per width (independent initialisations)", min=2, max=10_000)
    families: tuple[str, ...] = param(FAMILIES, "model families", choices=FAMILIES, max_len=3)
    widths: tuple[int, ...] = param((16, 64, 256), "widths: RBE filters per layer, chain hidden width, VGG conv filters and hidden units",
                                    min=2, max=2048, max_len=8)
    num_train: int = param(16, "training points n", min=2, max=512)
    num_test: int = param(16, "test points (outputs compared, not trained on)", min=1, max=512)
    num_steps: int = param(200, "full-batch gradient-descent steps", min=1, max=100_000)
    record_every: int = param(20, "steps between records of the outputs", min=1, max=100_000)
    lr_scale: float = param(0.5, "step of the claims, in units of the stability limit: lr = lr_scale * n / lambda_max(Theta_inf)",
                            min=1e-4, max=0.99)
    lr_scales: tuple[float, ...] = param((0.1, 0.5, 0.9), "steps of the sensitivity table over step size (must include lr_scale)",
                                         min=1e-4, max=0.99, max_len=8)
    order: int = param(16, "Gauss-Hermite quadrature order of the ELU kernel (RBE net)", min=4, max=64)
    data_seed: int = param(0, "seed of the inputs and targets (shared by every member and width)", min=0, max=2**31 - 1)

    @classmethod
    def quick(cls) -> NTKRegimeConfig:
        return cls(seeds=3, families=("rbe", "deep-linear", "vgg"), widths=(8, 64), num_train=6, num_test=2, num_steps=40, lr_scales=(0.2, 0.5),
                   record_every=20, order=8)

    def check(self) -> None:
        super().check()
        if len(self.widths) < 2 or list(self.widths) != sorted(set(self.widths)):
            raise ConfigError(f"widths: give at least two increasing widths (a trend over width), got {self.widths}")
        if len(set(self.families)) != len(self.families):
            raise ConfigError(f"families: each at most once, got {self.families}")
        if self.lr_scale not in self.lr_scales or len(set(self.lr_scales)) != len(self.lr_scales):
            raise ConfigError(f"lr_scales: distinct step sizes that include lr_scale ({self.lr_scale}), got {self.lr_scales}")
        if self.num_steps % self.record_every:
            raise ConfigError(f"record_every: must divide num_steps ({self.num_steps}), got {self.record_every}")


def family_model(family: str, width: int, order: int):
    """``(model, kernels)`` of ``family`` at ``width``: the model the engine trains and the
    :class:`~jaxdyn.theory.kernels.Serial` whose ``kernel_fn`` is its infinite-width theory (see
    the module docstring)."""
    from jaxdyn.models import DenseSampleVGG, PureModel, RBEConvNet

    if family == "deep-linear":
        # One definition gives the network and its kernels: the chain as a Serial of bias-free
        # Dense layers in NTK parametrisation with Gaussian weights (the project's DeepLinear
        # with orthogonal weights has a width-independent NTK: nothing to converge).
        chain = K.serial(K.Dense(width), K.Dense(width), K.Dense(1))
        return PureModel(chain.init_fn, chain.apply_fn, stax_init=True), chain
    model = (RBEConvNet(features=width, return_logits=True) if family == "rbe" else
             DenseSampleVGG(num_classes=2, num_conv=2, conv_features=width, hidden=(width,), pool_size=2, dropout_rate=0.0))
    return model, K.from_model(model, order=order)


def family_data(family: str, config: NTKRegimeConfig) -> dict[str, np.ndarray]:
    """Inputs and targets of ``family``: ``x`` (n + m, ...) train rows first, ``y`` (n, K)."""
    rng = np.random.default_rng([config.data_seed, FAMILIES.index(family)])
    total = config.num_train + config.num_test
    if family == "rbe":
        x = rng.integers(0, 2, (total, 16)).astype(np.float32)
        y = rng.integers(0, 2, (config.num_train, 1)).astype(np.float32)
    elif family == "deep-linear":
        x = rng.normal(size=(total, 8)).astype(np.float32)
        teacher = rng.normal(size=(8, 1)) / np.sqrt(8)
        y = (x[: config.num_train] @ teacher).astype(np.float32)
    else:
        x = rng.normal(size=(total, 8, 8, 1)).astype(np.float32)
        y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, config.num_train)]
    return {"x": x, "y": y}


def _as_kk(theta: np.ndarray, n1: int, n2: int, k: int) -> np.ndarray:
    """An empirical NTK, (n1, n2) for one output or (n1, n2, K, K), as (n1, n2, K, K)."""
    return np.asarray(theta, np.float64).reshape(n1, n2, k, k)


def measure_width(ctx, family: str, width: int, config: NTKRegimeConfig) -> dict[str, Any]:
    """Trains the network and its linearised model at one width, every seed at every step size in
    one call, and compares them with the infinite-width prediction.

    Returns:
        ``lr`` (lr_scale,); ``steps`` (time,); ``f_net``, ``f_lin``, ``f_inf`` (seed, lr_scale,
        time, point, output); ``theta_initial``, ``theta_final`` (seed, lr_scale, point, point,
        output, output) the empirical NTKs; ``theta_inf`` (point, point); per-member measures (seed, lr_scale):
        ``ntk_error``, ``ntk_change``, ``gap_linearised``, ``gap_infinite``,
        ``taylor_vs_closed_form``, ``train_loss_final``, ``train_loss_initial``, ``diverged_at``;
        ``x``, ``y``. Members are independent initialisations at every step size.
    """
    model, kern = family_model(family, width, config.order)
    data = family_data(family, config)
    n, s, scales = config.num_train, config.seeds, np.asarray(config.lr_scales)
    members = s * len(scales)  # step-size-major: member l * seeds + i is seed i at step size l
    x_all, y = data["x"], data["y"]
    k = y.shape[1]
    x_train = x_all[:n]
    # Infinite-width NTK of the same architecture and initialisation (shared by all outputs).
    theta_inf = np.asarray(kern.kernel_fn(x_all, get="ntk").ntk, np.float64)  # (n + m, n + m)
    lam_max = float(np.linalg.eigvalsh(theta_inf[:n, :n])[-1])
    lrs = scales * n / lam_max
    lr_of = np.repeat(lrs, s)  # (member,)
    squeeze = family == "rbe"  # the RBE net returns (B,); the others (B, K)

    def outputs(snap):
        f = snap.apply(snap.params, snap.data["x_all"])
        return f[:, None] if squeeze else f

    each = lambda a: np.broadcast_to(a, (members, *a.shape)).copy()  # noqa: E731
    common = dict(seeds=np.arange(members), num_steps=config.num_steps, record_every=config.record_every,
                  hparams={"lr": lr_of.astype(np.float32)}, observables={"f": outputs},
                  data={"x": each(x_train), "y": each(y[:, 0] if squeeze else y), "x_all": each(x_all)})
    sgd = optimizer("sgd", learning_rate=hparam("lr"))
    net = ctx.train(model, Task(None, full_batch), sgd, loss=losses.mean_squared_error, **common)
    lin = ctx.train(LinearizedLearner(model, losses.mean_squared_error, sgd), Task(None, full_batch), **common)
    f_net = np.asarray(net.records["f"], np.float64)  # (member, time, n + m, K)
    f_lin = np.asarray(lin.records["f"], np.float64)
    steps = np.asarray(net.record_steps)

    ctx.stage("theory")
    f = jntk.apply_fn(model)
    member = lambda tree, i: jax.tree_util.tree_map(lambda a: a[i], tree)  # noqa: E731
    size = len(x_all)
    theta0 = np.stack([_as_kk(np.asarray(jntk.ntk(f, member(lin.state.learner.params0, i), x_all)), size, size, k) for i in range(members)])
    theta_t = np.stack([_as_kk(np.asarray(jntk.ntk(f, member(net.params, i), x_all)), size, size, k) for i in range(members)])
    inf_kk = theta_inf[:, :, None, None] * np.eye(k)
    frob = lambda a: np.sqrt(np.sum(a ** 2, axis=tuple(range(1, a.ndim))))  # noqa: E731

    # Function-space predictions: from each member's empirical NTK (the linearised model's closed
    # form, exact) and from the infinite-width NTK, both from the member's own initial outputs.
    pred_emp, pred_inf = [], []
    for i in range(members):
        f0 = f_net[i, 0]
        for theta, out in ((theta0[i], pred_emp), (theta_inf, pred_inf)):
            p = L.predict_mse(theta[:n, :n], y, f0[:n], steps, lr=float(lr_of[i]), normalisation="mean", theta_test=theta[n:, :n],
                              f0_test=f0[n:], gradient_descent=True)
            out.append(np.concatenate([np.asarray(p.train), np.asarray(p.test)], axis=1))
    pred_emp, pred_inf = np.stack(pred_emp), np.stack(pred_inf)  # (member, time, N, K)
    moved = frob(f_net[:, -1] - f_net[:, 0])
    per_member = {
        "ntk_error": frob(theta0 - inf_kk[None]) / np.sqrt(np.sum(inf_kk ** 2)),
        "ntk_change": frob(theta_t - theta0) / frob(theta0),
        "gap_linearised": frob(f_net[:, -1] - f_lin[:, -1]) / moved,
        "gap_infinite": frob(f_net[:, -1] - pred_inf[:, -1]) / moved,
        "taylor_vs_closed_form": np.max(np.abs(f_lin - pred_emp), axis=(1, 2, 3)) / np.max(np.abs(f_lin), axis=(1, 2, 3)),
        "train_loss_final": np.mean(np.sum((f_net[:, -1, :n] - y) ** 2, -1), -1),
        "train_loss_initial": np.mean(np.sum((f_net[:, 0, :n] - y) ** 2, -1), -1),
        "diverged_at": np.where(net.diverged_at >= 0, net.diverged_at, lin.diverged_at),
        "f_net": f_net, "f_lin": f_lin, "f_inf": pred_inf, "theta_initial": theta0, "theta_final": theta_t,
    }
    # (member, ...) -> (seed, lr_scale, ...)
    by_seed = {key: np.swapaxes(v.reshape(len(scales), s, *v.shape[1:]), 0, 1) for key, v in per_member.items()}
    return {"lr": lrs, "lambda_max": lam_max, "steps": steps, "theta_inf": theta_inf, "x": x_all, "y": y, **by_seed}


def width_slope(widths, values: np.ndarray) -> np.ndarray:
    """(seed,) slope of log(value) against log(width) for each seed (values (seed, width))."""
    lw = np.log(np.asarray(widths, np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        lv = np.log(np.asarray(values, np.float64))
    out = np.full(lv.shape[0], np.nan)
    for i, row in enumerate(lv):
        if np.isfinite(row).all():
            out[i] = np.polyfit(lw, row, 1)[0]
    return out


def family_claims(family: str, widths, m: dict[str, np.ndarray]) -> list:
    """The claims of one family from its (seed, width) measurements (the included members)."""
    wtext = f"widths {list(widths)}"
    table = lambda key: ", ".join(f"{np.nanmedian(m[key][:, j]):.3g}" for j in range(len(widths)))  # noqa: E731
    found = [
        claims.per_seed(f"{family}-kernel-constant-in-the-limit",
                        f"{family}: the NTK's change over training shrinks as the width grows (each member's slope of log "
                        f"||Theta_T - Theta_0|| / ||Theta_0|| against log width over {wtext}; median changes {table('ntk_change')})",
                        width_slope(widths, m["ntk_change"]), "<", 0.0, kind="paper", source=claims.source(*_CONSTANT),
                        threshold_source="a change that falls with width: slope below 0",
                        reading="'the ideal case' is the infinite-width limit (the paper's 'infinite neural units in a layer'); read as "
                                "the kernel's relative change over one training run falling as the width grows, at a step set in units "
                                "of the kernel so that every width trains equally far; member s of each width is paired with member s of "
                                "the others"),
        claims.per_seed(f"{family}-ntk-converges",
                        f"{family}: the empirical NTK at initialisation approaches the analytic infinite-width NTK of the same "
                        f"architecture (each member's slope of log relative Frobenius distance against log width over {wtext}; theory "
                        f"-1/2; median distances {table('ntk_error')})",
                        width_slope(widths, m["ntk_error"]), "<", 0.0, kind="extension",
                        why="the infinite-width kernel is only a theory of these networks if their kernels converge to it; a wrong "
                            "kernel (another variance, another padding) levels off instead",
                        threshold_source="convergence: a distance that falls with width (the -1/2 rate is reported, not required)"),
        claims.per_seed(f"{family}-linearised-gap-shrinks",
                        f"{family}: the trained network's outputs approach its linearised model's as the width grows (each member's "
                        f"slope of log ||f_net - f_lin|| / ||f_net(T) - f_net(0)|| at the end, train and test points, over {wtext}; "
                        f"median gaps {table('gap_linearised')})",
                        width_slope(widths, m["gap_linearised"]), "<", 0.0, kind="extension",
                        why="the lazy-training picture: a wider network stays closer to its first-order Taylor model; it can fail "
                            "where the kernel moves (feature learning) or the step is too large",
                        threshold_source="a gap that falls with width: slope below 0"),
        claims.per_seed(f"{family}-infinite-width-gap-shrinks",
                        f"{family}: the trained network's outputs approach the infinite-width prediction (analytic NTK, the member's "
                        f"own initial outputs) as the width grows (each member's slope of the relative gap at the end over {wtext}; "
                        f"median gaps {table('gap_infinite')})",
                        width_slope(widths, m["gap_infinite"]), "<", 0.0, kind="extension",
                        why="the theory neural-tangents gave for wide networks, tested against the finite ones it describes",
                        threshold_source="a gap that falls with width: slope below 0"),
        claims.per_seed(f"{family}-taylor-model-is-its-ntk",
                        f"{family}: the linearised model trained by the engine follows the closed form of gradient descent with its "
                        f"own empirical NTK at initialisation (each member's largest relative deviation over records and widths)",
                        np.max(m["taylor_vs_closed_form"], axis=1), "<", 1e-3, kind="sanity",
                        why="a model linear in its weights moves its outputs exactly as f_{s+1} = f_s - lr Theta dL/df: a check of "
                            "LinearizedLearner, jaxdyn.ntk and predict_mse together",
                        threshold_source="float32 rounding over the run (project's tolerance)"),
        claims.per_seed(f"{family}-trains", f"{family}: every width trains (each member's largest ratio of final to initial "
                        "training loss over the widths)", np.max(m["train_loss_final"] / m["train_loss_initial"], axis=1), "<", 0.5,
                        kind="sanity", initial=np.ones(m["train_loss_final"].shape[0]),
                        why="the comparisons are about a training run: a member that does not learn compares nothing",
                        threshold_source="project's tolerance: the loss at least halves"),
    ]
    return found


_PER_MEMBER = ("ntk_error", "ntk_change", "gap_linearised", "gap_infinite", "taylor_vs_closed_form", "train_loss_final", "train_loss_initial")
_TEXT = {"ntk_error": "||Theta_emp(0) - Theta_inf|| / ||Theta_inf|| on train and test points",
         "ntk_change": "||Theta_emp(T) - Theta_emp(0)|| / ||Theta_emp(0)||: the NTK's change over training",
         "gap_linearised": "||f_net(T) - f_lin(T)|| / ||f_net(T) - f_net(0)||, train and test points",
         "gap_infinite": "||f_net(T) - f_inf(T)|| / ||f_net(T) - f_net(0)||, f_inf from the analytic NTK",
         "taylor_vs_closed_form": "max |f_lin - closed form of its empirical NTK| / max |f_lin| over records",
         "train_loss_final": "training loss (mean over points of the squared error) after training",
         "train_loss_initial": "training loss at initialisation"}


def _family_dataset(family: str, config: NTKRegimeConfig, by_width: list[dict], full: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """(variables, coordinates) of one family, names suffixed with the family."""
    wd, ld, td = f"width_{family}", f"lr_scale_{family}", f"time_{family}"
    pd, od = f"point_{family}", f"output_{family}"
    coords = {wd: (wd, np.asarray(config.widths), {"long_name": f"{family}: width", "units": "1"}),
              ld: (ld, np.asarray(config.lr_scales), {"long_name": f"{family}: step in units of the stability limit n / lambda_max",
                                                       "units": "1"}),
              td: (td, by_width[0]["steps"], {"long_name": f"{family}: gradient-descent step of the records", "units": "step"})}
    fw = ("seed", wd, ld)
    variables = {f"{key}_{family}": (fw, full[key], {"long_name": f"{family}: {_TEXT[key]}", "units": "1"}) for key in _PER_MEMBER}
    variables[f"diverged_at_{family}"] = (fw, full["diverged_at"], {"long_name": f"{family}: first non-finite step of the network or "
                                                                    "its linearised model (-1: none)", "units": "step"})
    for key, text in (("f_net", "outputs of the network"), ("f_lin", "outputs of its linearised model"),
                      ("f_inf", "infinite-width prediction (analytic NTK, the member's initial outputs)")):
        variables[f"{key}_{family}"] = ((*fw, td, pd, od), np.stack([r[key] for r in by_width], 1).astype(np.float32),
                                        {"long_name": f"{family}: {text}, train points first", "units": "1"})
    for key, text in (("theta_initial", "empirical NTK Theta_emp(0) at the initial weights"),
                      ("theta_final", "empirical NTK Theta_emp(T) at the trained weights")):
        variables[f"{key}_{family}"] = ((*fw, pd, f"point2_{family}", od, f"output2_{family}"),
                                        np.stack([r[key] for r in by_width], 1).astype(np.float32),
                                        {"long_name": f"{family}: {text}, [point, point, output, output], train points first",
                                         "units": "1"})
    variables[f"theta_inf_{family}"] = ((wd, pd, f"point2_{family}"), np.stack([r["theta_inf"] for r in by_width]).astype(np.float32),
                                        {"long_name": f"{family}: analytic infinite-width NTK (shared by the outputs)", "units": "1"})
    variables[f"lr_{family}"] = ((wd, ld), np.stack([r["lr"] for r in by_width]),
                                 {"long_name": f"{family}: learning rate lr_scale * n / lambda_max(Theta_inf(train, train))", "units": "1"})
    x = by_width[0]["x"]
    variables[f"x_{family}"] = ((pd, *(f"input_{family}_{d}" for d in range(x.ndim - 1))), x,
                                {"long_name": f"{family}: inputs, train points first", "units": "1"})
    variables[f"y_{family}"] = ((f"train_point_{family}", od), by_width[0]["y"], {"long_name": f"{family}: training targets", "units": "1"})
    return variables, coords


def run(config: NTKRegimeConfig, ctx) -> Result:
    """Every family at every width: train, linearise, compare with the infinite-width theory."""
    found, numbers, variables, coords, per_family = [], {"families": {}}, {}, {}, {}
    main = list(config.lr_scales).index(config.lr_scale)
    reasons = [[] for _ in range(config.seeds)]  # why a member is left out of its family's claims
    for family in config.families:
        by_width = [measure_width(ctx, family, w, config) for w in config.widths]
        full = {key: np.stack([r[key] for r in by_width], 1) for key in (*_PER_MEMBER, "diverged_at")}  # (seed, width, lr_scale)
        m = {key: v[:, :, main] for key, v in full.items()}  # the claims' step size: (seed, width)
        include = (m["diverged_at"] < 0).all(1)
        for i, j in zip(*np.nonzero(m["diverged_at"] >= 0)):
            reasons[i].append(f"{family}: diverged at width {config.widths[j]}, step {int(m['diverged_at'][i, j])}")
        ctx.stage("analysis")
        found += claims.leaving_out(family_claims(family, config.widths, {key: m[key][include] for key in _PER_MEMBER}), include,
                                    "the network or its linearised model diverged at some width")
        numbers["families"][family] = {
            "lr": [r["lr"].tolist() for r in by_width], "lambda_max": [r["lambda_max"] for r in by_width],
            **{f"{key}_median": np.median(m[key], 0).tolist() for key in _PER_MEMBER},
            "ntk_error_slope_median": float(np.nanmedian(width_slope(config.widths, m["ntk_error"]))),
            "ntk_change_slope_median": float(np.nanmedian(width_slope(config.widths, m["ntk_change"]))),
            # The sensitivity table over step size: medians over members, [width][lr_scale].
            "by_lr_scale": {"lr_scales": list(config.lr_scales),
                            **{f"{key}_median": np.nanmedian(full[key], 0).tolist() for key in ("ntk_change", "gap_linearised", "gap_infinite")}},
        }
        per_family[family] = (by_width, m, full)
        v, c = _family_dataset(family, config, by_width, full)
        variables.update(v)
        coords.update(c)
    variables["excluded_reason"] = ("seed", np.asarray(["; ".join(r) for r in reasons]),
                                     {"long_name": "why the member is left out of a family's claims (the network or its linearised model "
                                                   "diverged at the claims' step size; '' where it is included)"})
    ds = xr.Dataset(variables, coords={"seed": np.arange(config.seeds), **coords},
                    attrs={"num_train": config.num_train, "num_test": config.num_test, "lr_scale": config.lr_scale,
                           "loss": "mean over points of the squared error summed over outputs (full batch)", "order": config.order,
                           "members": "seed s at step size l is engine seed l * seeds + s: independent initialisations per step size"})
    ctx.stage("figures")
    return Result(dataset=ds, claims=found, figures=figures(config, per_family), numbers=numbers)


def figures(config: NTKRegimeConfig, per_family: dict) -> dict:
    """Per family: the distances against width (log-log) at the claims' step size, the gaps
    against step size at every width, and one member's output over training."""
    fams = list(per_family)
    fig, axes = plots.figure(len(fams), 3, width=4.0, height=3.2)
    w = np.asarray(config.widths)
    main = list(config.lr_scales).index(config.lr_scale)
    for i, family in enumerate(fams):
        by_width, m, full = per_family[family]
        ax = axes[i, 0]
        for j, key in enumerate(("ntk_error", "ntk_change", "gap_linearised", "gap_infinite")):
            med = np.median(m[key], 0)
            lo, hi = np.quantile(m[key], 0.25, 0), np.quantile(m[key], 0.75, 0)
            ax.errorbar(w, med, yerr=[med - lo, hi - med], marker="o", color=plots.color(j), capsize=2,
                        label={"ntk_error": "NTK at init vs infinite width", "ntk_change": "NTK change over training",
                               "gap_linearised": "network vs linearised", "gap_infinite": "network vs infinite width"}[key])
        ax.plot(w, np.median(m["ntk_error"], 0)[0] * (w / w[0]) ** -0.5, ls=":", color="0.5", label="width^-1/2")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_ylabel("relative distance")
        ax.set_title(f"({chr(65 + 3 * i)}) {family}, lr_scale {config.lr_scale:g}", fontsize=9)
        ax.legend(fontsize=6, loc="best")
        ax = axes[i, 1]
        for j, width in enumerate(config.widths):
            ax.plot(config.lr_scales, np.median(full["gap_linearised"][:, j], 0), marker="o", color=plots.color(j), label=f"width {width}")
        ax.set_yscale("log")
        ax.set_xlabel("step in units of n / lambda_max")
        ax.set_ylabel("network vs linearised (median)")
        ax.set_title(f"({chr(66 + 3 * i)}) {family}: the gap against step size", fontsize=9)
        ax.legend(fontsize=6, loc="best")
        ax = axes[i, 2]
        steps = by_width[0]["steps"]
        for j, r in ((0, by_width[0]), (1, by_width[-1])):
            ax.plot(steps, r["f_net"][0, main, :, 0, 0], color=plots.color(j), label=f"network, width {config.widths[-1 if j else 0]}")
            ax.plot(steps, r["f_lin"][0, main, :, 0, 0], color=plots.color(j), ls="--", label="linearised")
            ax.plot(steps, r["f_inf"][0, main, :, 0, 0], color=plots.color(j), ls=":", label="infinite width")
        ax.set_xlabel("gradient-descent step")
        ax.set_ylabel("output at the first training point (member 0)")
        ax.set_title(f"({chr(67 + 3 * i)}) {family}: one output over training", fontsize=9)
        ax.legend(fontsize=6, loc="best")
    return {"ntk_regime": Figure(fig, "per family: the NTK's distance from the infinite-width one at initialisation and its change over "
                                      "training, and the trained network's distance from its linearised model and from the infinite-width "
                                      "prediction, against width (median and 25-75% of members); the linearised gap against the step size "
                                      "at every width; one output over training at the smallest and largest width")}


EXPERIMENT = Experiment(
    name="ntk-regime",
    work="Nakazato",
    description="network vs linearised model vs infinite-width NTK theory over width, for the RBE net, the deep linear chain and the VGG",
    config=NTKRegimeConfig,
    run=run,
)
