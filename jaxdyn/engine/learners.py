"""Learners: the update rule of an ensemble member, as a concern of its own.

A learner is what :func:`jaxdyn.engine.train` applies at every step, in the manner of optax's
``GradientTransformation``: pure functions of an explicit state,

    state = learner.init(key, batch, hparams, params=None)     # one member, no seed axis
    state, finite = learner.step(state, batch, key, hparams)   # one update
    outputs = learner.apply(state, x, params=None)             # evaluation mode
    params = learner.params(state)                              # what observables see

``finite`` is a bool scalar: False flags the member as diverged at that step (the engine records
the first such step in ``diverged_at``). ``hparams`` are the member's own hyperparameters,
``{name: scalar}`` traced arrays, so members with different learning rates share one compiled
program.

The engine compiles once per training specification, so a learner must be hashable and compared
by value: write it as a frozen dataclass (as :class:`GradientLearner` is), whose fields are
themselves hashable (flax modules, module-level functions, :class:`Optimizer`). Algorithm 1 of
neurashed is a learner too (:class:`jaxdyn.models.neurashed.NeurashedLearner`).

:class:`GradientLearner` is the default: a flax model, a loss ``loss(outputs, batch) -> scalar``
and an optax optimizer. The optimizer is best given as :func:`optimizer` (an optax function by
name whose arguments may name per-member hyperparameters with :func:`hparam`), which is hashable;
an optax ``GradientTransformation`` or a function ``hparams -> GradientTransformation`` works too
(compiled again whenever a new one is passed, since closures compare by identity).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

PyTree = Any
"""A pytree of arrays (nested dicts, lists, tuples of arrays), e.g. a model's parameters."""
Array = jax.Array
"""A JAX array (alias of ``jax.Array``)."""


class Learner:
    """Base of the learners: the contract the engine relies on (see the module docstring).

    Subclasses are frozen dataclasses implementing :meth:`init`, :meth:`step`, :meth:`apply` and
    :meth:`params`; every method acts on one member (no seed axis) and must be jit-compatible.
    """

    def init(self, key: Array, batch: Mapping[str, Array], hparams: Mapping[str, Array], params: PyTree | None = None) -> PyTree:
        """The member's initial state; ``params`` (given initial parameters) replaces the drawn ones."""
        raise NotImplementedError

    def step(self, state: PyTree, batch: Mapping[str, Array], key: Array, hparams: Mapping[str, Array]) -> tuple[PyTree, Array]:
        """One update on ``batch`` (``key``: the member's random key for this step). Returns
        ``(state, finite)``, ``finite`` a bool scalar (False: the member diverged here)."""
        raise NotImplementedError

    def apply(self, state: PyTree, x: Array, params: PyTree | None = None) -> Array:
        """Outputs on inputs ``x`` (B, ...) in evaluation mode, with ``params`` instead of the
        state's own when given (observables use it to evaluate perturbed parameters)."""
        raise NotImplementedError

    def params(self, state: PyTree) -> PyTree:
        """The parameters observables see as ``Snapshot.params``."""
        raise NotImplementedError

    def with_params(self, state: PyTree, params: PyTree) -> PyTree:
        """``state`` with its parameters replaced (used when initial parameters are given)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Hparam:
    """A reference to the member's hyperparameter ``name`` inside an :class:`Optimizer`."""

    name: str


def hparam(name: str) -> Hparam:
    """Marks an optimizer argument as the member's own hyperparameter ``hparams[name]``:
    ``optimizer("sgd", learning_rate=hparam("lr"))``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"hparam: expected a hyperparameter name, got {name!r}")
    return Hparam(name)


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """An optax optimizer by name, built inside the compiled step from the member's hyperparameters.

    Hashable and compared by value, so two equal optimizers share one compilation. Call it with a
    member's hyperparameters to get the ``GradientTransformation``.

    Attributes:
        name: an optax function (``"sgd"``, ``"adam"``, ``"chain"`` is not supported: compose
            with a function ``hparams -> GradientTransformation`` instead).
        kwargs: ``((argument, value), ...)``; a value :class:`Hparam` reads ``hparams[name]``.
    """

    name: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self, hparams: Mapping[str, Array]) -> optax.GradientTransformation:
        fn = getattr(optax, self.name)
        args = {k: (hparams[v.name] if isinstance(v, Hparam) else v) for k, v in self.kwargs}
        return fn(**args)

    def hparam_names(self) -> tuple[str, ...]:
        """The per-member hyperparameters this optimizer reads."""
        return tuple(v.name for _, v in self.kwargs if isinstance(v, Hparam))


def optimizer(name: str, **kwargs: Any) -> Optimizer:
    """An optax optimizer by name, e.g. ``optimizer("sgd", learning_rate=hparam("lr"), momentum=0.9)``.

    Raises:
        ValueError: ``name`` is not an optax optimizer, or an argument does not exist or is not
            hashable; before anything compiles.
    """
    fn = getattr(optax, name, None) if isinstance(name, str) else None
    if fn is None or not callable(fn):
        raise ValueError(f"optimizer: {name!r} is not an optax function (e.g. 'sgd', 'adam', 'adamw', 'rmsprop')")
    params = inspect.signature(fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        for key in kwargs:
            if key not in params:
                raise ValueError(f"optimizer: optax.{name} has no argument {key!r}; it takes {', '.join(params)}")
    for key, value in kwargs.items():
        try:
            hash(value)
        except TypeError:
            raise ValueError(f"optimizer: argument {key}={value!r} is not hashable; pass a number, a tuple or hparam('name')") from None
    return Optimizer(name, tuple(sorted(kwargs.items())))


def build_optimizer(opt: Any, hparams: Mapping[str, Array]) -> optax.GradientTransformation:
    """The ``GradientTransformation`` of ``opt`` (an :class:`Optimizer`, a ``GradientTransformation``
    or a function of the member's hyperparameters) for one member."""
    if isinstance(opt, optax.GradientTransformation):
        return opt
    return opt(hparams)


def tree_all_finite(tree: PyTree) -> Array:
    """True when every leaf of ``tree`` is finite everywhere (a bool scalar)."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


@functools.cache
def _call_takes_train(cls: type) -> bool:
    """Whether a flax module class's ``__call__`` takes a ``train`` argument (dropout, batch norm)."""
    owner = next((c for c in cls.__mro__ if c is not object and "__call__" in vars(c)), None)
    if owner is None:  # no __call__ of its own (an adapter with init/apply only)
        return False
    try:
        params = inspect.signature(vars(owner)["__call__"]).parameters
    except (TypeError, ValueError):
        return False
    return "train" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def call_kwargs(model: Any, train: bool) -> dict[str, Any]:
    """``{'train': train}`` for modules whose ``__call__`` takes it; ``{}`` for plain modules
    (which then have no training mode: no dropout, no batch statistics)."""
    return {"train": train} if _call_takes_train(type(model)) else {}


class GradientState(NamedTuple):
    """The state of a :class:`GradientLearner` member.

    Attributes:
        params: the model's ``'params'`` collection.
        opt_state: the optimizer's state.
        model_state: the model's other variable collections (e.g. ``{'batch_stats': ...}`` of
            batch normalisation), updated by every training step; ``{}`` for most models.
    """

    params: PyTree
    opt_state: PyTree
    model_state: PyTree


@dataclasses.dataclass(frozen=True)
class GradientLearner(Learner):
    """Gradient training of a flax model: ``params <- optimizer(grad of loss(model(x), batch))``.

    Attributes:
        model: a flax linen Module, called as ``model.apply(variables, x, train=...)`` when its
            ``__call__`` takes ``train`` (then with ``rngs={'dropout': key}`` in training), else as
            ``model.apply(variables, x)``. Variable collections other than ``'params'`` (batch
            statistics) are carried in :attr:`GradientState.model_state` and updated in training.
        loss: ``loss(outputs, batch) -> scalar``; the batch holds the input under ``'x'``.
        optimizer: an :class:`Optimizer` (hashable: compiled once), an optax
            ``GradientTransformation``, or a function ``hparams -> GradientTransformation``.
    """

    model: Any
    loss: Callable[[Array, Mapping[str, Array]], Array]
    optimizer: Any

    def _variables(self, state: GradientState, params: PyTree | None = None) -> dict:
        return {"params": state.params if params is None else params, **state.model_state}

    def init(self, key, batch, hparams, params=None):
        model_state = {}
        init = functools.partial(self.model.init, **call_kwargs(self.model, False))
        # With given parameters the model is initialised only when it has other collections
        # (batch statistics), known from the abstract init's structure without computing it.
        if params is None or set(jax.eval_shape(init, {"params": key}, batch["x"])) - {"params", "intermediates"}:
            variables = dict(init({"params": key}, batch["x"]))
            variables.pop("intermediates", None)
            drawn = variables.pop("params")
            params = drawn if params is None else params
            model_state = variables
        opt_state = build_optimizer(self.optimizer, hparams).init(params)
        return GradientState(params=params, opt_state=opt_state, model_state=model_state)

    def step(self, state, batch, key, hparams):
        opt = build_optimizer(self.optimizer, hparams)
        mutable = [k for k in state.model_state]

        def objective(params):
            variables = self._variables(state, params)
            kwargs = call_kwargs(self.model, True)
            if kwargs:
                kwargs["rngs"] = {"dropout": key}
            if mutable:
                outputs, updated = self.model.apply(variables, batch["x"], mutable=mutable, **kwargs)
            else:
                outputs, updated = self.model.apply(variables, batch["x"], **kwargs), {}
            return self.loss(outputs, batch), updated

        (value, model_state), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(value) & tree_all_finite(grads)
        return GradientState(params=params, opt_state=opt_state, model_state={**state.model_state, **model_state}), finite

    def apply(self, state, x, params=None):
        return self.model.apply(self._variables(state, params), x, **call_kwargs(self.model, False))

    def params(self, state):
        return state.params

    def with_params(self, state, params):
        return state._replace(params=params)


def as_learner(learner_or_model: Any, optimizer: Any = None, loss: Callable | None = None) -> Learner:
    """A :class:`Learner` from ``train``'s first arguments: a learner as it is, or a flax model
    with its optimizer and loss as a :class:`GradientLearner`.

    Raises:
        ValueError: a model without ``optimizer`` and ``loss``, or a learner with them.
    """
    if isinstance(learner_or_model, Learner):
        if optimizer is not None or loss is not None:
            raise ValueError("optimizer, loss: a Learner brings its own update rule; pass them to the learner instead")
        return learner_or_model
    if optimizer is None or loss is None:
        raise ValueError("learner: expected a jaxdyn Learner, or a model with optimizer= and loss= "
                         f"(got {type(learner_or_model).__name__} with optimizer={optimizer!r}, loss={loss!r})")
    if not callable(getattr(learner_or_model, "init", None)) or not callable(getattr(learner_or_model, "apply", None)):
        raise ValueError(f"model: expected a flax linen Module (with init and apply), got {type(learner_or_model).__name__}; "
                         "for a pure (init, apply) pair or an equinox module use jaxdyn.models.adapters")
    return GradientLearner(learner_or_model, loss, optimizer)


class LinearizedState(NamedTuple):
    """The state of a :class:`LinearizedLearner` member.

    Attributes:
        params: the parameters p being trained.
        opt_state: the optimizer's state.
        params0: the expansion point p0 (the member's initial parameters), fixed.
    """

    params: PyTree
    opt_state: PyTree
    params0: PyTree


LINKS: dict[str | None, Callable[[Array], Array]] = {None: lambda z: z, "sigmoid": jax.nn.sigmoid}
"""The output links :class:`LinearizedLearner` may apply after the expansion."""


@dataclasses.dataclass(frozen=True)
class LinearizedLearner(Learner):
    """Gradient training of the first-order Taylor model of a flax model around each member's
    initial parameters p0: ``f_lin(p, x) = f(p0, x) + J(p0) (p - p0)``, evaluated with one
    ``jax.jvp`` (the Jacobian is never formed).

    Trained by the same engine and optimizer as the network itself (:class:`GradientLearner`),
    it is the model whose function-space dynamics the empirical NTK at initialisation predicts
    exactly (``jaxdyn.theory.linearized``). The expansion is in evaluation mode: no dropout, and
    models with batch statistics are refused.

    Attributes:
        model, loss, optimizer: as for :class:`GradientLearner`.
        link: None (the model's output is expanded) or ``"sigmoid"``: the model returns logits z,
            the expansion is of z and the learner's output is ``sigmoid(z_lin)`` (the Taylor model
            in logit space, which keeps the output's saturation; its NTK is the logits').
    """

    model: Any
    loss: Callable[[Array, Mapping[str, Array]], Array]
    optimizer: Any
    link: str | None = None

    def __post_init__(self):
        if self.link not in LINKS:
            raise ValueError(f"LinearizedLearner: link must be one of {sorted(LINKS, key=str)}, got {self.link!r}")

    def _f(self, params, x):
        return self.model.apply({"params": params}, x, **call_kwargs(self.model, False))

    def init(self, key, batch, hparams, params=None):
        init = functools.partial(self.model.init, **call_kwargs(self.model, False))
        if params is None:
            variables = dict(init({"params": key}, batch["x"]))
            variables.pop("intermediates", None)
            params = variables.pop("params")
            if variables:
                raise ValueError(f"LinearizedLearner: the model has collections {sorted(variables)} besides params; "
                                 "the linearised model is taken in evaluation mode, without batch statistics")
        opt_state = build_optimizer(self.optimizer, hparams).init(params)
        return LinearizedState(params=params, opt_state=opt_state, params0=params)

    def apply(self, state, x, params=None):
        p = state.params if params is None else params
        delta = jax.tree_util.tree_map(lambda a, b: a - b, p, state.params0)
        y0, dy = jax.jvp(lambda q: self._f(q, x), (state.params0,), (delta,))
        return LINKS[self.link](y0 + dy)

    def step(self, state, batch, key, hparams):
        opt = build_optimizer(self.optimizer, hparams)
        value, grads = jax.value_and_grad(lambda p: self.loss(self.apply(state, batch["x"], params=p), batch))(state.params)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(value) & tree_all_finite(grads)
        return state._replace(params=params, opt_state=opt_state), finite

    def params(self, state):
        return state.params

    def with_params(self, state, params):
        return state._replace(params=params)
