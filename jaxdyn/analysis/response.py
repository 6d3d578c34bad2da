"""Fits of the training response law (Nakazato Eq. 8) and of prediction curves.

    Delta(x_o, x_h) / (y_o - f(x_o))  ~  e^(-tau) K(x_o, x_h, e)

(the paper writes e^-tau for the power law epoch^-tau). From recorded normalised responses
R[seed, time, probe] with the Hamming distance h of each probe this module gives:

* the response size S(e) = R at h = 0 (the response of x_o on itself), per seed;
* the response kernel K(h, e) = <R(h, e)> / <R(0, e)>, the seed-mean profile normalised by the
  size, and its slope per bit (a straight-line fit over h), with bootstrap intervals over seeds;
* the aging exponent tau of S(e) ~ A e^(-tau) after the initial phase, fitted on the seed-mean
  curve in log-log coordinates, with a bootstrap interval over seeds and per-seed exponents;
* how much of the measured response the NTK explains (1 - SS_res / SS_tot);
* turning points of prediction curves (the minority's turn, splits).

The measurement itself is :class:`ResponseObservable`, an engine observable (a frozen dataclass,
hashable, so the training program compiles once) that computes the one-step response, the
source's output and label, and the NTK of every source from one setup. Everything else is numpy
(host-side analysis of recorded arrays); bootstrap draws use an explicit
``numpy.random.Generator`` seed.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from jaxdyn import ntk


@dataclasses.dataclass(frozen=True)
class ResponseObservable:
    """Engine observable: the normalised one-step training response of every source point.

    For each source x_s (``data[sources]``, (S, ...)) one SGD step on (x_s, y_s) is taken from the
    current parameters (not applied to the training run) and Delta(x_s, probe) / (y_s - f(x_s))
    (Nakazato Eq. 5) is read on ``data[probes]``: (P, ...) shared by every source, or (S, P, ...)
    one probe set per source. The label y_s ~ Bernoulli(p1_s) is drawn from the source's encoding
    (``data['p1'][s]``) with a key derived from ``data['key']`` and the step, so the measurement
    sees the training distribution's labels; the dropout mask of the step (models with dropout)
    comes from the same key. Every record comes from one setup (one label draw, one set of keys,
    one SGD step).

    With ``logit=True`` (a model with a ``logits`` method, f = sigmoid(z)) the same step is also
    read in logit space, which separates what the network's kernel does from the sigmoid's
    saturation: Theta_f(x_s, x) = sigma'(z_s) sigma'(z_x) Theta_z(x_s, x), so the output-space
    self-response is the logit-space one times the sigmoid factor (f_s (1 - f_s))^2.

    Attributes:
        model: the flax model being trained (hashable).
        loss: the training loss in engine form (a module-level function).
        lr: learning rate of the probe step; None: the member's ``hparams['lr']``.
        sources, probes: keys of the member's data.
        ntk_output: also record ``theta``, the NTK Theta(x_s, probe) of the same f.
        output: model method giving f (e.g. ``'logits'``); None: the model's output.
        logit: also record the logit-space response, the NTK of the logits and the outputs at
            the probes (see Returns).

    Returns (when called on a :class:`~jaxdyn.engine.Snapshot`), all from the same step:
        ``response`` (S, P): Delta f(probe) / (y_s - f(x_s)); ``source`` (S, 2): [f(x_s), y_s];
        ``theta`` (S, P): Theta_f(x_s, probe); with ``logit``: ``response_logit`` (S, P):
        Delta z(probe) / ((y_s - f(x_s)) sigma'(z_s)), ``theta_logit`` (S, P): Theta_z(x_s, probe),
        ``probe_f`` (S, P): f(probe) before the step.
    """

    model: Any
    loss: Callable
    lr: float | None = None
    sources: str = "sources"
    probes: str = "probes"
    ntk_output: bool = True
    output: str | None = None
    logit: bool = False

    def __post_init__(self):
        if self.logit and self.output is not None:
            raise ValueError(f"logit: the logit-space records read f = sigmoid(logits) of the model's own output; got output={self.output!r}")

    @property
    def dims(self) -> dict[str, tuple[str, ...]]:
        pair = ("source", "probe")
        return {"response": pair, "source": ("source", "field"), "theta": pair, "response_logit": pair,
                "theta_logit": pair, "probe_f": pair}

    @property
    def attrs(self) -> dict[str, dict[str, str]]:
        return {
            "response": {"long_name": "normalised one-step response Delta f(probe) / (y_s - f(x_s))", "units": "1"},
            "source": {"long_name": "[f(x_s), y_s]: the source's output and the label of the probe step", "units": "1"},
            "theta": {"long_name": "empirical NTK Theta_f(x_s, probe) of the output f", "units": "1"},
            "response_logit": {"long_name": "logit-space response Delta z(probe) / ((y_s - f(x_s)) sigma'(z_s))", "units": "1"},
            "theta_logit": {"long_name": "empirical NTK Theta_z(x_s, probe) of the logits z", "units": "1"},
            "probe_f": {"long_name": "output f(probe) before the probe step", "units": "1"},
        }

    def __call__(self, snap) -> dict[str, jax.Array]:
        f = ntk.apply_fn(self.model, method=self.output)
        f_train = ntk.apply_fn(self.model, method=self.output, train=True)
        data = snap.data
        xs = data[self.sources]
        n_src = xs.shape[0]
        pr = data[self.probes]
        pr = jnp.broadcast_to(pr, (n_src,) + pr.shape) if pr.ndim == xs.ndim else pr
        base = jax.random.fold_in(jax.random.wrap_key_data(data["key"]), snap.step)
        keys = jax.random.split(base, 2 * n_src).reshape((n_src, 2) + base.shape)
        p1 = data["p1"][:n_src]
        f_s = f(snap.params, xs)
        y = jax.vmap(lambda k, p: jax.random.bernoulli(k[0], p))(keys, p1).astype(f_s.dtype)
        rate = snap.hparams["lr"] if self.lr is None else self.lr

        def one(x_s, y_s, k, probe_set):
            batch = {"x": x_s[None], "y": jnp.reshape(y_s, (1,))}
            return ntk.normalised_response(f, snap.params, self.loss, batch, probe_set, rate, f_train=f_train, key=k[1])

        out = {"response": jax.vmap(one)(xs, y, keys, pr), "source": jnp.stack([f_s, y], axis=-1)}
        if self.ntk_output:
            out["theta"] = jax.vmap(lambda x_s, probe_set: ntk.ntk(f, snap.params, x_s[None], probe_set, batch_size=None)[0])(xs, pr)
        if self.logit:
            z = ntk.apply_fn(self.model, method="logits")

            def one_logit(x_s, y_s, f_o, k, probe_set):
                batch = {"x": x_s[None], "y": jnp.reshape(y_s, (1,))}
                dz = ntk.training_response(z, snap.params, self.loss, batch, probe_set, rate, f_train=f_train, key=k[1])
                return dz / ((y_s - f_o) * f_o * (1.0 - f_o))

            out["response_logit"] = jax.vmap(one_logit)(xs, y, f_s, keys, pr)
            out["theta_logit"] = jax.vmap(lambda x_s, probe_set: ntk.ntk(z, snap.params, x_s[None], probe_set, batch_size=None)[0])(xs, pr)
            out["probe_f"] = jax.vmap(lambda probe_set: f(snap.params, probe_set))(pr)
        return out


@functools.partial(jax.jit, static_argnums=0)
def _point_kernels(model, params, x):
    f_out, f_logit = ntk.apply_fn(model), ntk.apply_fn(model, method="logits")
    one = lambda p, xx: (ntk.ntk(f_out, p, xx, batch_size=None), ntk.ntk(f_logit, p, xx, batch_size=None))  # noqa: E731
    return jax.vmap(one)(params, x)


def point_kernels(model, params, x) -> tuple[np.ndarray, np.ndarray]:
    """The NTK of the output f and of the logits z on every member's points.

    Args:
        model: a flax model with a ``logits`` method (:class:`~jaxdyn.models.rbe_conv.RBEConvNet`).
        params: parameters with leaves (member, ...).
        x: (member, n, ...) the points.

    Returns:
        (Theta_f, Theta_z), each (member, n, n) float64.
    """
    theta_f, theta_z = _point_kernels(model, params, jnp.asarray(x))
    return np.asarray(theta_f, np.float64), np.asarray(theta_z, np.float64)


@dataclasses.dataclass(frozen=True)
class PointKernels:
    """Engine observable: the NTK of the output f and of the logits z on the member's training
    points ``data[points]`` (n, ...). Returns ``{"kernel_output": (n, n), "kernel_logit": (n, n)}``.

    Attributes:
        model: the flax model (with a ``logits`` method).
        points: key of the points in the member's data.
    """

    model: Any
    points: str = "points"

    @property
    def dims(self) -> dict[str, tuple[str, ...]]:
        return {"kernel_output": ("point", "point2"), "kernel_logit": ("point", "point2")}

    @property
    def attrs(self) -> dict[str, dict[str, str]]:
        return {"kernel_output": {"long_name": "empirical NTK Theta_f(x_i, x_j) of the output f on the training points", "units": "1"},
                "kernel_logit": {"long_name": "empirical NTK Theta_z(x_i, x_j) of the logits z on the training points", "units": "1"}}

    def __call__(self, snap) -> dict[str, jax.Array]:
        x = snap.data[self.points]
        f_out, f_logit = ntk.apply_fn(self.model), ntk.apply_fn(self.model, method="logits")
        return {"kernel_output": ntk.ntk(f_out, snap.params, x, batch_size=None),
                "kernel_logit": ntk.ntk(f_logit, snap.params, x, batch_size=None)}


def smooth_log_time(t: np.ndarray, curves: np.ndarray, width: float = 0.15) -> np.ndarray:
    """Gaussian kernel smoothing of curves along time in log(t + dt) (dt the first record
    spacing), so early fast changes keep their resolution while late noise is averaged.

    Args:
        t: (time,) epochs, increasing from 0.
        curves: (..., time) values.
        width: the kernel's standard deviation in natural-log units (0.15: about 15% of t).

    Returns:
        (..., time) smoothed curves (NaN-free input assumed).
    """
    t = np.asarray(t, np.float64)
    dt = t[1] - t[0] if t.size > 1 else 1.0
    u = np.log(t + dt)
    w = np.exp(-0.5 * ((u[:, None] - u[None, :]) / width) ** 2)
    w /= w.sum(1, keepdims=True)
    return np.asarray(curves, np.float64) @ w.T


def loss_derivative(loss: Callable, f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dL/df of the engine loss ``loss`` for one output, at recorded outputs ``f`` and labels ``y``
    (any shape, the same for both): the loss gradient of the probe step."""
    f = jnp.asarray(f)
    y = jnp.asarray(y)
    g = jax.vmap(jax.grad(lambda o, t: loss(o[None], {"y": t[None]})))(f.ravel(), y.ravel())
    return np.asarray(g).reshape(f.shape)


def single_point_records(result, num_encodings: int, loss: Callable, probe_h: np.ndarray) -> dict[str, np.ndarray]:
    """The records of a single-point response run (members encoding-major, as
    :func:`jaxdyn.tasks.rbe.single_point_members` lays them out) by seed and encoding.

    Args:
        result: the engine's ``EnsembleResult`` with a :class:`ResponseObservable` recorded.
        num_encodings: encodings E (members are E x seeds).
        loss: the training loss (for dL/df of the probe step).
        probe_h: (probe,) Hamming distance of every probe from x_o.

    Returns:
        ``response``, ``theta`` (and, when recorded, ``response_logit``, ``theta_logit``,
        ``probe_f``) (seed, encoding, time, probe); ``f_source``, ``y_source``, ``dl_df`` (seed,
        encoding, time); ``probe_h`` (probe,); ``steps`` (time,); ``diverged_at`` and
        ``nonfinite_at`` (seed, encoding): the engine's first non-finite update and first
        non-finite record (-1: none).
    """
    from jaxdyn.tasks.rbe import split_conditions

    split = lambda a: split_conditions(a, num_encodings)  # noqa: E731
    src = split(result.records["source"][:, :, 0])  # (seed, enc, time, 2)
    f_s, y_s = src[..., 0], src[..., 1]
    out = {
        "response": split(result.records["response"][:, :, 0]),
        "theta": split(result.records["theta"][:, :, 0]),
        "f_source": f_s,
        "y_source": y_s,
        "dl_df": loss_derivative(loss, f_s, y_s),
        "probe_h": np.asarray(probe_h),
        "steps": result.record_steps,
        "diverged_at": split(result.diverged_at),
        "nonfinite_at": split(result.nonfinite_at),
    }
    for name in ("response_logit", "theta_logit", "probe_f"):
        if name in result.records:
            out[name] = split(result.records[name][:, :, 0])
    return out


class Exclusions(NamedTuple):
    """Which members the law's analysis leaves out (:func:`member_exclusions`), and why.

    Attributes:
        included: (seed, encoding) bool.
        reason: (seed, encoding) str, every reason named ("" where none).
        dataset_reason: (seed, encoding) str, the reasons beside the engine's own flags
            (divergence, non-finite records), for a dataset's ``excluded_reason`` next to the
            ``diverged_at`` and ``nonfinite_at`` that the run layer reads itself.
    """

    included: np.ndarray
    reason: np.ndarray
    dataset_reason: np.ndarray


def member_exclusions(sim: dict[str, np.ndarray]) -> Exclusions:
    """Which members the law's analysis leaves out, and why.

    A member is left out when its training diverged, when any of its records is non-finite, or
    when its output at x_o saturates: f(x_o) = 0 or 1 in float32 at a recorded step makes the
    sigmoid factor (f(1-f))^2 zero and the logit-space response (divided by sigma'(z_o)) and
    the normalised response (divided by y_o - f(x_o), once f reaches the label) undefined, so
    every claim's input is undefined for that member.

    Args:
        sim: from :func:`single_point_records` (``diverged_at``, ``nonfinite_at`` and
            ``f_source`` are read; ``steps`` names the steps).

    Returns:
        :class:`Exclusions`.
    """
    diverged = np.asarray(sim["diverged_at"])
    nonfinite = np.asarray(sim.get("nonfinite_at", np.full_like(diverged, -1)))
    f = np.asarray(sim["f_source"], np.float32)  # (seed, enc, time)
    saturated = (f <= 0.0) | (f >= 1.0)
    steps = np.asarray(sim["steps"])
    reason = np.full(diverged.shape, "", dtype=object)
    dataset_reason = np.full(diverged.shape, "", dtype=object)
    for idx in np.ndindex(diverged.shape):
        saturation = ""
        if saturated[idx].any():
            t = int(np.argmax(saturated[idx]))
            saturation = (f"output saturated from step {int(steps[t])} (f(x_o) = {float(f[idx][t]):g} in float32: the sigmoid "
                          "factor is 0 and the normalised responses undefined)")
        why = [f"diverged at step {int(diverged[idx])}"] if diverged[idx] >= 0 else []
        why += [saturation] if saturation else []
        why += [f"records non-finite from step {int(nonfinite[idx])}"] if nonfinite[idx] >= 0 else []
        reason[idx], dataset_reason[idx] = "; ".join(why), saturation
    included = (diverged < 0) & (nonfinite < 0) & ~saturated.any(axis=-1)
    return Exclusions(included, reason.astype(str), dataset_reason.astype(str))


def infinite_width_profiles(model, x_o: np.ndarray, probes: np.ndarray, probe_h: np.ndarray, *, order: int) -> dict[str, np.ndarray]:
    """The infinite-width NTKs of an RBE net's logits from each member's x_o to its probes, as
    kernels over Hamming distance beside the measured ones.

    Two infinite-width networks of the same convolutional architecture and initialisation
    (``jaxdyn.theory.kernels.from_model``): the net itself (its activation) and the "infinite
    linear network" (the same layers without activations).

    Args:
        model: the RBE net (:class:`~jaxdyn.models.RBEConvNet`).
        x_o: (seed, bit) each member's training point; probes: (seed, probe, bit).
        probe_h: (probe,) Hamming distance of each probe from x_o.
        order: Gauss-Hermite order of a non-closed-form activation (ELU).

    Returns:
        ``theta_network``, ``theta_linear`` (seed, probe) NTKs Theta_inf(x_o, probe) and
        ``kernel_network``, ``kernel_linear`` (seed, h) their normalised kernels
        K(h) = Theta(x_o, x_h) / Theta(x_o, x_o) averaged over the probes at each distance.
    """
    from jaxdyn.theory import kernels as K

    network = infinite_width_network(model, order=order, input_shape=np.shape(x_o)[1:])
    linear = K.serial(*[layer for layer in network.layers if isinstance(layer, (K.Conv, K.Dense, K.Flatten))])
    out = {}
    for name, kern in (("network", network), ("linear", linear)):
        theta = np.stack([np.asarray(kern.kernel_fn(np.asarray(x_o[s:s + 1], np.float32), np.asarray(probes[s], np.float32),
                                                    get="ntk").ntk[0], np.float64) for s in range(len(x_o))])
        prof = profile(theta, probe_h)
        out[f"theta_{name}"] = theta
        out[f"kernel_{name}"] = prof / prof[:, :1]
    return out


def infinite_width_network(model, *, order: int, input_shape: tuple[int, ...]):
    """The :class:`~jaxdyn.theory.kernels.Serial` of an RBE net's logits at infinite width: the
    same layers and initialisation (``jaxdyn.theory.kernels.from_model``), no dropout; a
    non-closed-form activation (ELU) by Gauss-Hermite quadrature of ``order``."""
    from jaxdyn.theory import kernels as K

    return K.from_model(model.clone(return_logits=True, dropout_rate=0.0), order=order, input_shape=tuple(input_shape))


def infinite_width_point_kernels(model, points: np.ndarray, *, order: int) -> np.ndarray:
    """The infinite-width NTK of an RBE net's logits on each member's training points.

    Args:
        model: the RBE net (:class:`~jaxdyn.models.RBEConvNet`).
        points: (member, n, bit) each member's training strings.
        order: Gauss-Hermite order of a non-closed-form activation (ELU).

    Returns:
        (member, n, n) Theta_inf(x_i, x_j), float64: the logit-space kernel that the empirical
        ``kernel_logit`` of :class:`PointKernels` tends to as the width grows.
    """
    points = np.asarray(points, np.float32)
    network = infinite_width_network(model, order=order, input_shape=points.shape[2:])
    return np.stack([np.asarray(network.kernel_fn(points[m], get="ntk").ntk, np.float64) for m in range(points.shape[0])])


def add_wide_and_linearised(theory: dict, ok: dict, sim: dict[str, np.ndarray], theta_infinite: np.ndarray | None, *, lr: float,
                            loss: str, num_groups: int) -> None:
    """Sets two curves beside the group theories of ``jaxdyn.theory.meanfield.group_theories``, in
    place: ``theory[space]["linearised"]``, the group means of the Taylor model trained in that
    space (``sim["f_linearised_<space>"]``, (member, time, n)), and ``theory["logit"]
    ["kernel_infinite"]``, Eq. 10 in logit space with ``theta_infinite`` (member, n, n), from
    each member's initial predictions ``sim["f"][:, 0]``. ``ok`` gets the matching (member,)
    flags (the Taylor model: finite throughout; the ODE: the solver's success).

    ``sim`` also holds ``group``, ``p1``, ``weight`` (member, n) and ``steps`` (time,)."""
    from jaxdyn.theory import meanfield

    for space in list(theory):
        key = f"f_linearised_{space}"
        if key in sim:
            f_lin = np.asarray(sim[key], np.float64)
            theory[space]["linearised"] = np.stack([meanfield.group_means(f_lin[m], sim["group"][m], num_groups) for m in range(len(f_lin))])
            ok[space]["linearised"] = np.isfinite(f_lin).all(axis=(1, 2))
    if theta_infinite is not None and "logit" in theory:
        curves, solved = meanfield.kernel_group_curves(theta_infinite, sim["f"][:, 0], sim["group"], sim["p1"], sim["weight"], sim["steps"],
                                                       lr=lr, loss=loss, space="logit", num_groups=num_groups)
        theory["logit"]["kernel_infinite"], ok["logit"]["kernel_infinite"] = curves, solved


def kernel_similarity(measured: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(...,) 1 - sum_h (K - K_ref)^2 / sum_h (K - mean_h K)^2: the share of the measured kernel's
    variation over Hamming distance that ``reference`` reproduces as it is (no fit; 1 for the same
    shape, below 0 when it does worse than a flat kernel). Both (..., h), normalised at h = 0."""
    measured, reference = np.asarray(measured, np.float64), np.asarray(reference, np.float64)
    resid = np.nansum((measured - reference) ** 2, axis=-1)
    spread = np.nansum((measured - np.nanmean(measured, axis=-1, keepdims=True)) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - resid / spread


def _reason_kind(reason: str) -> str:
    """A member's exclusion reason without its steps and values ("diverged; output saturated")."""
    return "; ".join(part.split(" at ")[0].split(" from ")[0] for part in reason.split("; "))


def reason_kinds(reasons: np.ndarray) -> list[str]:
    """The distinct kinds of the exclusion reasons ``reasons`` (any shape), sorted."""
    return sorted({_reason_kind(str(w)) for w in np.asarray(reasons).ravel()})


def to_profiles(sim: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Single-point records with every per-probe array (``response``, ``theta``, ``response_logit``,
    ``theta_logit``, ``probe_f``) replaced by its mean over the probes at each Hamming distance
    (:func:`profile`), and ``probe_h`` = 0..B: the same analysis on a 17-point probe set, small
    enough to store for many conditions."""
    out = dict(sim)
    for name in ("response", "theta", "response_logit", "theta_logit", "probe_f"):
        if name in sim:
            out[name] = profile(np.asarray(sim[name], np.float64), sim["probe_h"]).astype(np.float32)
    out["probe_h"] = np.arange(int(np.max(sim["probe_h"])) + 1)
    return out


def join_early(early: dict[str, np.ndarray], sim: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The records of a short dense run (epochs 0..k, every epoch) joined before a long run's
    (epochs 0, k, 2k, ...): time-resolved arrays get epochs 1..k-1 inserted, so a log time axis
    starts at epoch 1. Both runs must be of the same members (same keys: their trajectories are
    identical step for step). Returns a dict like ``sim`` with ``steps`` (time,) joined."""
    k = len(early["steps"]) - 1
    if not np.array_equal(early["steps"], np.arange(k + 1)) or sim["steps"][1] != k:
        raise ValueError(f"early: expected a run recorded every epoch up to the long run's first record ({sim['steps'][1]})")
    out = dict(sim)
    for name, a in sim.items():
        if isinstance(a, np.ndarray) and name in early and a.ndim >= 3 and name not in ("diverged_at",):
            out[name] = np.concatenate([a[:, :, :1], early[name][:, :, 1:k], a[:, :, 1:]], axis=2)
    out["steps"] = np.concatenate([sim["steps"][:1], early["steps"][1:k], sim["steps"][1:]])
    return out


def ntk_prediction(theta: np.ndarray, dl_df: np.ndarray, y_source: np.ndarray, f_source: np.ndarray, lr: float) -> np.ndarray:
    """The NTK's first-order normalised response -lr Theta dL/df / (y_o - f(x_o)).

    Args:
        theta: (..., probe) NTK Theta(x_o, probe); dl_df, y_source, f_source: (...) at the probe step.

    Returns:
        (..., probe), comparable with the recorded normalised response.
    """
    factor = -lr * dl_df / (y_source - f_source)
    return theta * factor[..., None]


class PowerLawFit(NamedTuple):
    """S(t) = amplitude * t^(-tau) fitted in log-log coordinates.

    Attributes:
        tau: the decay exponent (positive for a decay) of the seed-mean curve.
        amplitude: the prefactor A.
        r2: coefficient of determination of the log-log line.
        ci: (low, high) bootstrap interval of tau over seeds (``level``).
        stderr: bootstrap standard deviation of tau.
        per_seed: (seed,) exponents fitted to each seed's curve (NaN where the curve has
            non-positive values in the window).
        local_early, local_late: exponents fitted on the first and second half (in log t) of
            the window: equal for a pure power law, their gap measures the curvature.
        t_min, t_max: the fit window (inclusive).
        level: confidence level of ``ci``.
    """

    tau: float
    amplitude: float
    r2: float
    ci: tuple[float, float]
    stderr: float
    per_seed: np.ndarray
    local_early: float
    local_late: float
    t_min: float
    t_max: float
    level: float

    def to_dict(self) -> dict[str, Any]:
        """The fit as JSON-ready floats and lists: ``tau``, ``tau_ci``, ``tau_stderr``, ``amplitude``,
        ``r2_loglog``, the two local exponents, the mean and SEM of the finite per-seed exponents,
        ``fit_window`` and ``ci_level``."""
        finite = self.per_seed[np.isfinite(self.per_seed)]
        return {
            "tau": self.tau, "tau_ci": list(self.ci), "tau_stderr": self.stderr, "amplitude": self.amplitude,
            "r2_loglog": self.r2, "tau_local_early": self.local_early, "tau_local_late": self.local_late,
            "tau_per_seed_mean": float(np.mean(finite)) if finite.size else float("nan"),
            "tau_per_seed_sem": float(scipy.stats.sem(finite)) if finite.size > 1 else float("nan"),
            "fit_window": [self.t_min, self.t_max], "ci_level": self.level,
        }


class LineFit(NamedTuple):
    """y = intercept + slope * x."""

    slope: float
    intercept: float
    r2: float


def line_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> LineFit:
    """Weighted least-squares straight line through (x, y), both (n,). Weights default to 1."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = np.ones_like(x) if w is None else np.asarray(w, np.float64)
    w = w / w.sum()
    xm, ym = np.sum(w * x), np.sum(w * y)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = np.sum(w * (x - xm) * (y - ym)) / sxx
    intercept = ym - slope * xm
    ss_tot = np.sum(w * (y - ym) ** 2)
    ss_res = np.sum(w * (y - intercept - slope * x) ** 2)
    return LineFit(float(slope), float(intercept), float(1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan"))


def _loglog(t: np.ndarray, s: np.ndarray) -> LineFit:
    # Weights 1/t: records are uniform in t, so each decade of t counts equally.
    ok = (s > 0) & np.isfinite(s)
    if ok.sum() < 3:
        return LineFit(float("nan"), float("nan"), float("nan"))
    return line_fit(np.log(t[ok]), np.log(s[ok]), 1.0 / t[ok])


def power_law_fit(t: np.ndarray, sizes: np.ndarray, t_min: float, t_max: float | None = None, *,
                  n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> PowerLawFit:
    """The aging exponent: S(t) ~ A t^(-tau) on t_min <= t <= t_max.

    Args:
        t: (time,) epochs (steps) of the records.
        sizes: (seed, time) response sizes.
        t_min, t_max: the fit window (after the initial phase); t_max default the last record.
        n_boot: bootstrap resamples of the seeds for the interval.
        level: confidence level.
        seed: seed of the bootstrap generator.

    Returns:
        A :class:`PowerLawFit`.
    """
    t = np.asarray(t, np.float64)
    sizes = np.asarray(sizes, np.float64)
    t_max = float(t[-1]) if t_max is None else float(t_max)
    win = (t >= t_min) & (t <= t_max) & (t > 0)
    if win.sum() < 3:
        raise ValueError(f"the fit window [{t_min}, {t_max}] holds {int(win.sum())} records; need >= 3")
    tw, sw = t[win], sizes[:, win]
    fit = _loglog(tw, np.nanmean(sw, 0))
    rng = np.random.default_rng(seed)
    n = sw.shape[0]
    boots = np.array([-_loglog(tw, np.nanmean(sw[rng.integers(0, n, n)], 0)).slope for _ in range(n_boot)])
    boots = boots[np.isfinite(boots)]
    alpha = (1.0 - level) / 2.0
    ci = (float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))) if boots.size else (np.nan, np.nan)
    per_seed = np.array([-_loglog(tw, s).slope for s in sw])
    mid = np.exp(0.5 * (np.log(tw[0]) + np.log(tw[-1])))
    early = _loglog(tw[tw <= mid], np.nanmean(sw[:, tw <= mid], 0))
    late = _loglog(tw[tw >= mid], np.nanmean(sw[:, tw >= mid], 0))
    return PowerLawFit(
        tau=-fit.slope, amplitude=float(np.exp(fit.intercept)), r2=fit.r2, ci=ci,
        stderr=float(np.std(boots)) if boots.size else float("nan"), per_seed=per_seed,
        local_early=-early.slope, local_late=-late.slope, t_min=float(tw[0]), t_max=float(tw[-1]), level=level,
    )


def profile(response: np.ndarray, h: np.ndarray, num_h: int | None = None) -> np.ndarray:
    """Mean response at each Hamming distance.

    Args:
        response: (..., probe) normalised responses.
        h: (probe,) int distance of each probe.
        num_h: number of distances (default max(h) + 1).

    Returns:
        (..., num_h) mean over the probes at each distance (NaN where none).
    """
    h = np.asarray(h)
    num_h = int(h.max()) + 1 if num_h is None else num_h
    out = np.full(response.shape[:-1] + (num_h,), np.nan)
    for k in range(num_h):
        sel = h == k
        if sel.any():
            out[..., k] = np.mean(response[..., sel], axis=-1)
    return out


class KernelFit(NamedTuple):
    """The response kernel at one epoch.

    Attributes:
        kernel: (num_h,) K(h) = <R(h)> / <R(0)>, seed means.
        kernel_ci: (2, num_h) bootstrap interval over seeds.
        slope: slope of K per bit (straight line over h), negative for a decreasing kernel.
        slope_ci: bootstrap interval of the slope.
        r2: linearity, R^2 of the straight line.
        raw_slope: slope of the unnormalised profile <R(h)> per bit.
        size: <R(0)>.
    """

    kernel: np.ndarray
    kernel_ci: np.ndarray
    slope: float
    slope_ci: tuple[float, float]
    r2: float
    raw_slope: float
    size: float

    def to_dict(self) -> dict[str, Any]:
        """The fit as JSON-ready floats and lists: ``slope``, ``slope_ci``, ``r2_linear``,
        ``raw_slope``, ``size`` and the (num_h,) ``kernel`` (its interval is left out)."""
        return {"slope": self.slope, "slope_ci": list(self.slope_ci), "r2_linear": self.r2,
                "raw_slope": self.raw_slope, "size": self.size, "kernel": self.kernel.tolist()}


def kernel_fit(prof: np.ndarray, distances: np.ndarray | None = None, *, n_boot: int = 1000, level: float = 0.95,
               seed: int = 0) -> KernelFit:
    """Normalised kernel and its slope from per-seed profiles.

    Args:
        prof: (seed, num_h) per-seed mean response at each distance (from :func:`profile`).
        distances: (num_h,) the distances (default 0..num_h-1); K is normalised at the first.

    Returns:
        A :class:`KernelFit`.
    """
    prof = np.asarray(prof, np.float64)
    d = np.arange(prof.shape[1], dtype=np.float64) if distances is None else np.asarray(distances, np.float64)

    def kern(p):
        m = np.nanmean(p, 0)
        return m / m[0]

    k = kern(prof)
    fit = line_fit(d, k)
    rng = np.random.default_rng(seed)
    n = prof.shape[0]
    ks = np.array([kern(prof[rng.integers(0, n, n)]) for _ in range(n_boot)])
    slopes = np.array([line_fit(d, kk).slope for kk in ks])
    alpha = (1.0 - level) / 2.0
    return KernelFit(
        kernel=k, kernel_ci=np.nanquantile(ks, [alpha, 1 - alpha], axis=0), slope=fit.slope,
        slope_ci=(float(np.nanquantile(slopes, alpha)), float(np.nanquantile(slopes, 1 - alpha))),
        r2=fit.r2, raw_slope=line_fit(d, np.nanmean(prof, 0)).slope, size=float(np.nanmean(prof[:, 0])),
    )


def explained_fraction(measured: np.ndarray, predicted: np.ndarray) -> float:
    """1 - sum (measured - predicted)^2 / sum (measured - mean)^2 over all entries (NaN-safe)."""
    m, p = np.asarray(measured, np.float64), np.asarray(predicted, np.float64)
    ok = np.isfinite(m) & np.isfinite(p)
    m, p = m[ok], p[ok]
    ss_tot = np.sum((m - m.mean()) ** 2)
    return float(1.0 - np.sum((m - p) ** 2) / ss_tot) if ss_tot > 0 else float("nan")


def relative_error(measured: np.ndarray, predicted: np.ndarray) -> float:
    """||measured - predicted|| / ||measured|| over all entries (NaN-safe)."""
    m, p = np.asarray(measured, np.float64), np.asarray(predicted, np.float64)
    ok = np.isfinite(m) & np.isfinite(p)
    return float(np.linalg.norm(m[ok] - p[ok]) / np.linalg.norm(m[ok]))


def turning_point(t: np.ndarray, curve: np.ndarray, kind: str = "min", *, after: float | None = None,
                  margin: float = 0.0) -> tuple[float, float]:
    """Where a prediction curve turns: its minimum (``kind='min'``) or maximum.

    Args:
        t: (time,) steps.
        curve: (time,) values.
        after: only consider t >= after.
        margin: the turn counts only if the curve moves by more than ``margin`` both before
            (from its start in the window) and after the extremum (to its end); otherwise NaN.

    Returns:
        (t of the extremum or NaN, the depth: the smaller of the two moves).
    """
    t, c = np.asarray(t, np.float64), np.asarray(curve, np.float64)
    sel = np.ones_like(t, bool) if after is None else t >= after
    if sel.sum() < 3 or not np.all(np.isfinite(c[sel])):
        return float("nan"), float("nan")
    ts, cs = t[sel], c[sel]
    sign = 1.0 if kind == "min" else -1.0
    i = int(np.argmin(sign * cs))
    depth = min(sign * (cs[0] - cs[i]), sign * (cs[-1] - cs[i]))
    if i == 0 or i == len(cs) - 1 or depth <= margin:
        return float("nan"), float(depth)
    return float(ts[i]), float(depth)


# ---------------------------------------------------------------------------------------------
# The law per encoding, and its claims (rbe-response, rbe-variants)
# ---------------------------------------------------------------------------------------------
FIT_STARTS = (10, 20, 50, 100)
"""Epochs at which the power-law fit may start in :func:`fit_start_table`, tau's sensitivity
table (a start is used when at least three records lie at or after it)."""
FROZEN_NTK_TOLERANCE = 0.1
"""Relative error ||R - R_hat|| / ||R|| (:func:`frozen_ntk_errors`) up to which the NTK frozen at
epoch e0 is counted as still predicting the response; :func:`horizon` measures how long it does.
A project tolerance, not the paper's."""


def sigmoid_factor(f: np.ndarray) -> np.ndarray:
    """(f (1 - f))^2 = sigma'(z)^2: the factor between the output-space and the logit-space
    self-response (and self-NTK) of a sigmoid output f = sigma(z)."""
    f = np.asarray(f, np.float64)
    return (f * (1.0 - f)) ** 2


def per_seed_kernels(prof: np.ndarray, distances: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each seed's kernel K_s(h) = R_s(h) / R_s(0), its slope per bit and linearity.

    Args:
        prof: (seed, num_h) per-seed mean response at each distance (:func:`profile`).

    Returns:
        (slope (seed,), R^2 (seed,)) of a straight line through each seed's kernel.
    """
    prof = np.asarray(prof, np.float64)
    d = np.arange(prof.shape[1], dtype=np.float64) if distances is None else np.asarray(distances, np.float64)
    fits = [line_fit(d, p / p[0]) if np.all(np.isfinite(p)) and p[0] != 0 else LineFit(np.nan, np.nan, np.nan) for p in prof]
    return np.array([f.slope for f in fits]), np.array([f.r2 for f in fits])


def exponent_drift(t: np.ndarray, sizes: np.ndarray, t_min: float, *, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """How far a power-law fit is from one exponent: |tau_late - tau_early| / |tau| on the
    seed-mean curve (first and second half of the window in log t), with its seed bootstrap.

    Args:
        t: (time,) epochs; sizes: (seed, time); t_min: start of the window.

    Returns:
        ``{"value", "se", "upper95", "early", "late"}``: the drift, its bootstrap standard error
        and 95th percentile, and the two local exponents.
    """
    t = np.asarray(t, np.float64)
    sizes = np.asarray(sizes, np.float64)
    win = (t >= t_min) & (t > 0)
    tw, sw = t[win], sizes[:, win]
    mid = np.exp(0.5 * (np.log(tw[0]) + np.log(tw[-1])))

    def drift(mean):
        early = -_loglog(tw[tw <= mid], mean[tw <= mid]).slope
        late = -_loglog(tw[tw >= mid], mean[tw >= mid]).slope
        whole = -_loglog(tw, mean).slope
        return abs(late - early) / max(abs(whole), 1e-12), early, late

    value, early, late = drift(np.nanmean(sw, 0))
    rng = np.random.default_rng(seed)
    n = sw.shape[0]
    boots = np.array([drift(np.nanmean(sw[rng.integers(0, n, n)], 0))[0] for _ in range(n_boot)])
    boots = boots[np.isfinite(boots)]
    return {"value": float(value), "se": float(np.std(boots, ddof=1)) if boots.size > 1 else float("nan"),
            "upper95": float(np.quantile(boots, 0.95)) if boots.size else float("nan"), "early": float(early), "late": float(late)}


def fit_start_table(t: np.ndarray, sizes: np.ndarray, starts=FIT_STARTS, *, n_boot: int = 200, seed: int = 0) -> dict[int, dict]:
    """tau's sensitivity to where the fit starts: ``{start: {"tau", "tau_ci", "r2"}}`` for every
    start that leaves at least three records (sizes (seed, time) at epochs t (time,))."""
    out = {}
    for start in starts:
        if int(np.sum(np.asarray(t) >= start)) >= 3:
            fit = power_law_fit(t, sizes, start, n_boot=n_boot, seed=seed)
            out[int(start)] = {"tau": fit.tau, "tau_ci": list(fit.ci), "r2": fit.r2}
    return out


def windowed_exponents(t: np.ndarray, sizes: np.ndarray, t_min: float, *, n_boot: int = 200, seed: int = 0) -> list[dict]:
    """Local exponents on windows doubling from ``t_min`` ([t_min, 2 t_min], [2 t_min, 4 t_min],
    ... the last one ending at the last record), each with its seed-bootstrap interval."""
    t = np.asarray(t, np.float64)
    out, lo = [], float(t_min)
    while lo < t[-1]:
        hi = min(2 * lo, float(t[-1]))
        if int(np.sum((t >= lo) & (t <= hi))) >= 3:
            fit = power_law_fit(t, sizes, lo, hi, n_boot=n_boot, seed=seed)
            out.append({"window": [lo, hi], "tau": fit.tau, "tau_ci": list(fit.ci)})
        lo = hi
    return out


def frozen_ntk_errors(response: np.ndarray, theta: np.ndarray, dl_df: np.ndarray, y_source: np.ndarray,
                      f_source: np.ndarray, lr: float, starts: np.ndarray) -> np.ndarray:
    """How well the NTK measured at epoch e0 predicts the response at later epochs.

    The first-order response of the current step with the kernel frozen at e0:
    R_hat(e) = -lr Theta(e0) dL/df(e) / (y(e) - f(e)); the error is ||R(e) - R_hat(e)|| / ||R(e)||
    over the probes, for every seed.

    Args:
        response, theta: (seed, time, probe); dl_df, y_source, f_source: (seed, time).
        starts: (start,) time indices e0.

    Returns:
        (seed, start, time) relative errors (NaN before e0).
    """
    out = np.full((response.shape[0], len(starts), response.shape[1]), np.nan)
    factor = -lr * dl_df / (y_source - f_source)  # (seed, time)
    for j, i0 in enumerate(starts):
        pred = theta[:, i0][:, None, :] * factor[:, i0:, None]
        err = np.linalg.norm(response[:, i0:] - pred, axis=-1) / np.linalg.norm(response[:, i0:], axis=-1)
        out[:, j, i0:] = err
    return out


def horizon(errors: np.ndarray, steps: np.ndarray, i0: int, tolerance: float) -> np.ndarray:
    """Epochs from e0 = steps[i0] until the error first exceeds ``tolerance``, per seed
    (errors (seed, time)); the run's remaining length where it never does."""
    steps = np.asarray(steps, np.float64)
    out = np.full(errors.shape[0], steps[-1] - steps[i0])
    for s in range(errors.shape[0]):
        bad = np.flatnonzero(errors[s, i0 + 1:] > tolerance)
        if bad.size:
            out[s] = steps[i0 + 1 + bad[0]] - steps[i0]
    return out


def kernel_ode_skill(sim: dict[str, np.ndarray], e: int, p1: float, starts: np.ndarray, window: int, *, lr: float,
                     loss: str, space: str) -> np.ndarray:
    """How well the kernel ODE started from the network predicts its outputs over the next window.

    From each start e0 (time index) the kernel ODE (Eq. 10 with one training point, the label
    replaced by its mean p1) is integrated from the network's f(x_o) with the NTK measured at e0
    (of f in output space, of the logits in logit space: ``jaxdyn.theory.meanfield``); the probes
    follow the source through the kernel's column, f_p(t) - f_p(e0) = Theta(p, o) / Theta(o, o)
    (f_o(t) - f_o(e0)) (in z for logit space). Skill = 1 - RMS(ODE - network) / RMS(network(e0)
    - network) over the window's records after e0 and all probes: > 0 when the ODE beats
    "nothing changes", 1 for a perfect prediction.

    Args:
        sim: single-point records with ``probe_f`` and (logit space) ``theta_logit``.
        e: encoding index; p1: its label probability.
        starts: (start,) time indices; window: records per window.
        space: 'output' or 'logit'.

    Returns:
        (seed, start) skill.
    """
    from jaxdyn.theory import meanfield

    steps = np.asarray(sim["steps"], np.float64)
    h0 = np.asarray(sim["probe_h"]) == 0
    theta = sim["theta"][:, e] if space == "output" else sim["theta_logit"][:, e]  # (seed, time, probe)
    f_p = np.asarray(sim["probe_f"][:, e], np.float64)
    n_seed = theta.shape[0]
    if n_seed == 0:  # every member left out (saturated or diverged): nothing to integrate
        return np.full((0, len(starts)), np.nan)
    ts = steps[:window + 1] - steps[0]
    th_oo = np.stack([theta[:, i0][:, h0].mean(-1) for i0 in starts], 1).reshape(-1)  # (seed * start,)
    f_o0 = np.stack([f_p[:, i0][:, h0].mean(-1) for i0 in starts], 1).reshape(-1)
    m = th_oo.size
    sol = meanfield.solve_kernel(th_oo[:, None, None], np.clip(f_o0, 1e-6, 1 - 1e-6)[:, None], np.full((m, 1), p1),
                                 np.ones((m, 1)), ts, lr=lr, loss=loss, space=space)
    f_ode_o = np.asarray(sol.ys, np.float64)[:, :, 0].reshape(n_seed, len(starts), -1)  # (seed, start, window + 1)
    skill = np.full((n_seed, len(starts)), np.nan)
    logit = lambda f: np.log(f) - np.log1p(-f)  # noqa: E731
    for j, i0 in enumerate(starts):
        net = f_p[:, i0:i0 + window + 1]  # (seed, w + 1, probe)
        col = theta[:, i0] / th_oo.reshape(n_seed, -1)[:, j, None]  # (seed, probe)
        if space == "output":
            pred = net[:, :1] + col[:, None, :] * (f_ode_o[:, j, :, None] - f_ode_o[:, j, :1, None])
        else:
            zc = np.clip(f_ode_o[:, j], 1e-7, 1 - 1e-7)
            z0 = logit(np.clip(net[:, :1], 1e-7, 1 - 1e-7))
            pred = 1.0 / (1.0 + np.exp(-(z0 + col[:, None, :] * (logit(zc)[:, :, None] - logit(zc)[:, :1, None]))))
        err_ode = np.sqrt(np.mean((pred[:, 1:] - net[:, 1:]) ** 2, axis=(1, 2)))
        err_0 = np.sqrt(np.mean((net[:, :1] - net[:, 1:]) ** 2, axis=(1, 2)))
        skill[:, j] = 1.0 - err_ode / err_0
    return skill


def analyse_encodings(sim: dict[str, np.ndarray], p1s, *, epochs, fit_start: int, lr: float, loss: str,
                      n_boot: int, kernel_ode: bool = True) -> list[dict[str, Any]]:
    """The law's fits per encoding, in output space and (when recorded) logit space.

    Args:
        sim: from :func:`single_point_records`.
        p1s: (encoding,) p(y=1) of each encoding.
        epochs: epochs at which the kernel is reported.
        fit_start: first epoch of the power-law fit.
        loss: the loss's name ('mse' or 'bce'), for the kernel ODE.
        kernel_ode: also integrate the kernel ODE from every reported epoch (needs ``probe_f``).

    Returns one dict per encoding with JSON-ready entries (``power_law``, ``kernels``,
    ``ntk_explained``, ``saturation``, ...) and ``per_seed`` / ``fits`` holding arrays and fit
    objects for claims and figures (see the code for the keys).
    """
    from jaxdyn.tasks.rbe import encoding_name

    steps = np.asarray(sim["steps"])
    ok, why, _ = member_exclusions(sim)  # (seed, enc)
    has_logit = "response_logit" in sim
    prof = profile(sim["response"], sim["probe_h"])  # (seed, enc, time, H)
    prof_z = profile(sim["response_logit"], sim["probe_h"]) if has_logit else None
    pred = ntk_prediction(sim["theta"], sim["dl_df"], sim["y_source"], sim["f_source"], lr)
    idx = [int(np.searchsorted(steps, ep)) for ep in epochs]
    out = []
    for e, p1 in enumerate(p1s):
        rows = ok[:, e]
        sizes = prof[rows, e, :, 0]
        pl = power_law_fit(steps, sizes, fit_start, n_boot=n_boot, seed=e)
        kernels, explained, rel = {}, {}, {}
        slopes, r2s = {}, {}
        for ep, i in zip(epochs, idx):
            kernels[int(ep)] = kernel_fit(prof[rows, e, i], n_boot=n_boot, seed=100 + e)
            explained[int(ep)] = explained_fraction(sim["response"][rows, e, i], pred[rows, e, i])
            rel[int(ep)] = relative_error(sim["response"][rows, e, i], pred[rows, e, i])
            slopes[int(ep)], r2s[int(ep)] = per_seed_kernels(prof[rows, e, i])
        # The ensemble |slope| between successive reported epochs, with a paired seed bootstrap.
        changes = []
        rng = np.random.default_rng(300 + e)
        n = int(rows.sum())
        draws = rng.integers(0, n, (n_boot, n))
        for a_ep, b_ep in zip(epochs[:-1], epochs[1:]):
            ia, ib = idx[list(epochs).index(a_ep)], idx[list(epochs).index(b_ep)]
            pa, pb = prof[rows, e, ia], prof[rows, e, ib]

            def abs_slope(p):
                m = np.nanmean(p, 0)
                return abs(line_fit(np.arange(p.shape[-1]), m / m[0]).slope)

            boot = np.array([abs_slope(pb[d]) - abs_slope(pa[d]) for d in draws])
            changes.append({"from": int(a_ep), "to": int(b_ep), "change": abs_slope(pb) - abs_slope(pa),
                            "se": float(np.std(boot, ddof=1)), "ci": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]})
        entry: dict[str, Any] = {
            "encoding": encoding_name(p1), "p1": float(p1), "members": int(rows.sum()), "diverged": int((sim["diverged_at"][:, e] >= 0).sum()),
            "included": rows.tolist(), "left_out": int((~rows).sum()), "left_out_reasons": reason_kinds(why[~rows, e]),
            "power_law": pl.to_dict(), "kernels": {k: v.to_dict() for k, v in kernels.items()},
            "slope_changes": changes,
            "ntk_explained": explained, "ntk_relative_error": rel,
            "drift": exponent_drift(steps, sizes, fit_start, n_boot=n_boot, seed=200 + e),
            "fit_starts": fit_start_table(steps, sizes, n_boot=min(n_boot, 200), seed=e),
            "windows": windowed_exponents(steps, sizes, fit_start, n_boot=min(n_boot, 200), seed=e),
        }
        per_seed: dict[str, Any] = {"tau": pl.per_seed, "slopes": slopes, "r2": r2s}
        fits: dict[str, Any] = {"power_law": pl, "kernels": kernels}
        # The frozen NTK: the kernel of epoch e0 predicting the response at later epochs.
        starts = np.asarray(idx[:-1]) if len(idx) > 1 else np.asarray(idx)
        errs = frozen_ntk_errors(sim["response"][rows, e], sim["theta"][rows, e], sim["dl_df"][rows, e],
                                 sim["y_source"][rows, e], sim["f_source"][rows, e], lr, starts)
        nxt = np.asarray(idx[1:]) if len(idx) > 1 else np.asarray(idx)
        at_next = np.stack([errs[:, j, nxt[j]] for j in range(len(starts))], 1)  # (seed, start)
        hz = np.stack([horizon(errs[:, j], steps, i0, FROZEN_NTK_TOLERANCE) for j, i0 in enumerate(starts)], 1)
        entry["frozen_ntk"] = {"tolerance": FROZEN_NTK_TOLERANCE,
                               "starts": [int(steps[i]) for i in starts], "next": [int(steps[i]) for i in nxt],
                               "error_at_next_median": np.median(at_next, 0).tolist(),
                               "horizon_median": np.median(hz, 0).tolist()}
        per_seed["frozen_error_at_next"] = at_next
        per_seed["frozen_errors"] = errs
        if has_logit:
            sz = prof_z[rows, e, :, 0]
            sig = sigmoid_factor(sim["f_source"][rows, e])
            h0 = np.asarray(sim["probe_h"]) == 0
            th_z = np.asarray(sim["theta_logit"][rows, e][..., h0].mean(-1), np.float64)
            th_f = np.asarray(sim["theta"][rows, e][..., h0].mean(-1), np.float64)
            pl_z = power_law_fit(steps, sz, fit_start, n_boot=n_boot, seed=10 + e)
            pl_sig = power_law_fit(steps, sig, fit_start, n_boot=n_boot, seed=20 + e)
            pl_thz = power_law_fit(steps, th_z, fit_start, n_boot=n_boot, seed=30 + e)
            pl_thf = power_law_fit(steps, th_f, fit_start, n_boot=n_boot, seed=40 + e)
            kernels_z, slopes_z = {}, {}
            for ep, i in zip(epochs, idx):
                kernels_z[int(ep)] = kernel_fit(prof_z[rows, e, i], n_boot=n_boot, seed=110 + e)
                slopes_z[int(ep)] = per_seed_kernels(prof_z[rows, e, i])[0]
            growth = th_z[:, -1] / th_z[:, 0]
            # The two readings are of one step: sigma(z_o + Delta z_o) - f_o = Delta f_o exactly.
            f_o = np.asarray(sim["f_source"][rows, e], np.float64)
            gap_y = np.asarray(sim["y_source"][rows, e], np.float64) - f_o
            d_f = np.asarray(sim["response"][rows, e][..., h0].mean(-1), np.float64) * gap_y
            d_z = np.asarray(sim["response_logit"][rows, e][..., h0].mean(-1), np.float64) * gap_y * f_o * (1 - f_o)
            z_o = np.log(f_o) - np.log1p(-f_o)
            same_step = np.max(np.abs(1.0 / (1.0 + np.exp(-(z_o + d_z))) - f_o - d_f), axis=1)
            entry["saturation"] = {
                "tau_output": pl.tau, "tau_logit": pl_z.tau, "tau_sigmoid_factor": pl_sig.tau,
                "tau_theta_logit": pl_thz.tau, "tau_theta_output": pl_thf.tau,
                "tau_logit_ci": list(pl_z.ci), "tau_sigmoid_factor_ci": list(pl_sig.ci), "tau_theta_logit_ci": list(pl_thz.ci),
                "theta_logit_growth_median": float(np.median(growth)),
                "theta_logit_growth_ci": ([float(np.quantile(growth, 0.025)), float(np.quantile(growth, 0.975))] if growth.size
                                          else [float("nan")] * 2),
                "sigmoid_factor_start_end": [float(np.mean(sig[:, 0])), float(np.mean(sig[:, -1]))],
                "kernel_logit_slopes": {k: v.slope for k, v in kernels_z.items()},
                "kernel_logit_slope_ci": {k: list(v.slope_ci) for k, v in kernels_z.items()},
            }
            entry["kernels_logit"] = {k: v.to_dict() for k, v in kernels_z.items()}
            per_seed.update(tau_logit=pl_z.per_seed, tau_sigmoid=pl_sig.per_seed, tau_theta_logit=pl_thz.per_seed,
                            theta_logit_growth=growth, slopes_logit=slopes_z, same_step=same_step, sizes_logit=sz, sigmoid=sig, theta_logit_self=th_z)
            fits.update(power_law_logit=pl_z, power_law_sigmoid=pl_sig, power_law_theta_logit=pl_thz, kernels_logit=kernels_z)
            if kernel_ode and "probe_f" in sim and len(idx) > 1:
                window = int(idx[1] - idx[0])
                skills = {}
                for space in ("output", "logit"):
                    sub = {**sim, **{k: sim[k][rows] for k in ("theta", "theta_logit", "probe_f")}}
                    skills[space] = kernel_ode_skill(sub, e, p1, np.asarray(idx[:-1]), window, lr=lr, loss=loss, space=space)
                    per_seed[f"kernel_ode_skill_{space}"] = skills[space]
                entry["kernel_ode"] = {"starts": [int(steps[i]) for i in idx[:-1]], "window_epochs": int(steps[window] - steps[0]),
                                       **{f"skill_median_{sp}": np.median(v, 0).tolist() for sp, v in skills.items()}}
        entry["per_seed"] = per_seed
        entry["fits"] = fits
        out.append(entry)
    return out


_AGING = ("After the initial training phase, the size shows the power law like decay", "Sec. III, Fig. 1A and C, Eq. 8")
_LINEAR = ("The kernel is almost linear against the Hamming distance between the training input, x_o, and the affected one",
           "Sec. III, Fig. 1B and D, Eq. 8")
MAJORITY = 0.5
"""``required_fraction`` of the seed-by-seed claims read on the paper's averaged curves: a claim
holds when at least half of the included seeds show it (the project's reading of a statement
about an average, so that no verdict rests on a mean that no seed shows)."""
_MAJORITY_WHY = ("the paper's curves are averages over its tests; a statement about the average is read as holding for at least "
                 "half of the seeds, so that no verdict rests on a mean that no seed shows")


def law_claims(a: dict[str, Any], label: str, slug: str, *, fit_start: int) -> list:
    """The law's claims for one encoding (Eq. 8): power-law aging (in output space, as measured,
    and in logit space, the network's part), one exponent, decreasing and linear kernel, the
    frozen NTK and the kernel ODE. ``label`` names the condition in statements, ``slug`` in ids."""
    from jaxdyn import claims

    pl, ps = a["power_law"], a["per_seed"]
    aging = claims.source(*_AGING)
    linear = claims.source(*_LINEAR)
    epochs = sorted(a["kernels"])
    slopes = np.stack([ps["slopes"][ep] for ep in epochs], 1)  # (seed, epoch)
    r2 = np.stack([ps["r2"][ep] for ep in epochs], 1)
    found = [
        claims.per_seed(f"{slug}-aging", f"{label}: the response size decays as a power law after the initial phase "
                        f"(each seed's exponent tau of S(e) = R(h=0) over epochs {fit_start}..end, output space as measured)",
                        ps["tau"], ">", 0.0, kind="paper", source=aging, required_fraction=MAJORITY,
                        threshold_source="a decay: an exponent above 0", reading=_MAJORITY_WHY),
        claims.check(f"{slug}-aging-loglog", f"{label}: the seed-mean decay is a straight line on log-log axes (R^2 over the fit window)",
                     pl["r2_loglog"], ">=", 0.95, kind="paper", source=aging,
                     threshold_source="project's reading of 'power law like': a straight log-log line, R^2 >= 0.95",
                     reading="on the seed-mean curve, as the paper's Fig. 1 averages its tests"),
        claims.check(f"{slug}-one-exponent", f"{label}: one exponent over the whole window (drift |tau_late - tau_early| / tau of the "
                     f"seed-mean curve = {a['drift']['value']:.3g}; decided on its 95th seed-bootstrap percentile)",
                     a["drift"]["upper95"], "<", 0.25, kind="extension",
                     why="a power law has one exponent at every scale; a drifting local exponent means another form",
                     threshold_source="project's tolerance on the drift of the local exponent; the bootstrap percentile gives the "
                                      "margin beyond the measured drift", se=a["drift"]["se"]),
        claims.per_seed(f"{slug}-kernel-decreases", f"{label}: the kernel decreases with Hamming distance at every reported epoch "
                        "(each seed's largest slope per bit of K(h) = R(h)/R(0) over the reported epochs)",
                        slopes.max(1), "<", 0.0, kind="paper", source=linear, required_fraction=MAJORITY,
                        threshold_source="a decreasing kernel: slope below 0", initial=slopes[:, 0], reading=_MAJORITY_WHY),
        claims.per_seed(f"{slug}-kernel-linear", f"{label}: the kernel is almost linear in Hamming distance (each seed's smallest R^2 of a "
                        "line through K(h) over the reported epochs)", r2.min(1), ">=", 0.9, kind="paper", source=linear,
                        required_fraction=MAJORITY, threshold_source="project's reading of 'almost linear': R^2 >= 0.9",
                        initial=r2[:, 0], reading=_MAJORITY_WHY),
        claims.check(f"{slug}-ntk-explains", f"{label}: the NTK's first-order response (Eq. 4-5) explains the measured one-step response "
                     "at every reported epoch (smallest fraction of variance explained)", min(a["ntk_explained"].values()), ">=", 0.9,
                     kind="sanity", why="one SGD step against its own first-order expansion: true at small lr by construction",
                     threshold_source="project's tolerance"),
    ]
    fz = a["frozen_ntk"]
    late = [j for j, e0 in enumerate(fz["starts"]) if e0 >= fit_start] or list(range(len(fz["starts"])))
    found.append(claims.per_seed(
        f"{slug}-frozen-ntk", f"{label}: the NTK measured at a reported epoch after the initial phase still predicts the response at "
        f"the next one (each seed's largest relative error ||R - R_hat|| / ||R|| over starts {[fz['starts'][j] for j in late]} -> "
        f"{[fz['next'][j] for j in late]}; median horizons within {fz['tolerance']:g} from each reported epoch: "
        f"{[round(h) if np.isfinite(h) else None for h in fz['horizon_median']]} epochs)", ps["frozen_error_at_next"][:, late].max(1), "<",
        fz["tolerance"], kind="extension", required_fraction=MAJORITY,
        why="Eq. 4 ties the response to the NTK at the same weights (a sanity check); whether the kernel of one epoch predicts "
            "later responses is the question the aging answers, and it can fail",
        threshold_source="project's tolerance (10% relative error)"))
    if "saturation" in a:
        found.append(claims.per_seed(
            f"{slug}-aging-logit", f"{label}: the aging belongs to the network: the logit-space response Delta z / ((y - f) sigma'(z)) "
            f"decays as a power law (each seed's exponent over epochs {fit_start}..end; seed-mean fits: output space "
            f"{a['saturation']['tau_output']:.3g}, logit space {a['saturation']['tau_logit']:.3g}, sigmoid factor "
            f"{a['saturation']['tau_sigmoid_factor']:.3g}; per seed tau_f - tau_z - tau_sigma has median "
            f"{np.median(ps['tau'] - ps['tau_logit'] - ps['tau_sigmoid']):.2g})",
            ps["tau_logit"], ">", 0.0, kind="paper", source=aging, required_fraction=MAJORITY,
            threshold_source="a decay: an exponent above 0",
            reading="the output passes through a sigmoid, so the output-space response is the logit-space one times "
                    "(f(1-f))^2; read on the logit-space part, which is the network's kernel, not the saturation. " + _MAJORITY_WHY))
        slopes_z = np.stack([ps["slopes_logit"][ep] for ep in epochs], 1)
        found.append(claims.per_seed(
            f"{slug}-kernel-decreases-logit", f"{label}: in logit space (the network's part) the kernel K_z(h) = R_z(h)/R_z(0) "
            "decreases with Hamming distance at every reported epoch (each seed's largest slope per bit over the reported epochs)",
            slopes_z.max(1), "<", 0.0, kind="paper", source=linear, required_fraction=MAJORITY, initial=slopes_z[:, 0],
            threshold_source="a decreasing kernel: slope below 0",
            reading="the output-space kernel is K_f(h) = [sigma'(z_h) / sigma'(z_o)] K_z(h): read without the sigmoid's ratio. " + _MAJORITY_WHY))
        found.append(claims.per_seed(
            f"{slug}-one-step-two-spaces", f"{label}: the output- and logit-space responses are readings of one step: "
            "sigma(z_o + Delta z_o) - f_o = Delta f_o (each seed's largest absolute mismatch over records)",
            ps["same_step"], "<", 1e-5, kind="sanity",
            why="true by construction when both spaces read the same SGD step (same label, same dropout mask): a check of the observable",
            threshold_source="float32 rounding of f (project's tolerance)"))
        if "kernel_ode" in a:
            ko = a["kernel_ode"]
            after = [j for j, e0 in enumerate(ko["starts"]) if e0 >= fit_start] or list(range(len(ko["starts"])))
            for space in ("output", "logit"):
                sk = ps[f"kernel_ode_skill_{space}"][:, after]
                found.append(claims.per_seed(
                    f"{slug}-kernel-ode-{space}", f"{label}: the kernel ODE ({space} space, Eq. 10 with the NTK measured at each "
                    f"reported epoch after the initial phase) started from the network predicts its outputs over the next "
                    f"{ko['window_epochs']} epochs better than 'nothing changes' (each seed's smallest skill 1 - RMS(ODE - net) / "
                    f"RMS(net(e0) - net) over starts {[ko['starts'][j] for j in after]}; median skills from every reported epoch: "
                    f"{[round(x, 2) if np.isfinite(x) else None for x in ko[f'skill_median_{space}']]})",
                    sk.min(1), ">", 0.0, kind="extension", required_fraction=MAJORITY,
                    why="a prediction of the NTK that can fail: the fixed-kernel dynamics over a window, not one step",
                    threshold_source="the no-change baseline (skill 0)"))
    return claims.leaving_out(found, a["included"], "; ".join(a["left_out_reasons"]))
