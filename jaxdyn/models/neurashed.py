"""Neurashed's graph model and Algorithm 1 as a learner (Su, arXiv 2112.09741, section 2).

A neurashed has ``L`` levels of nodes, numbered from the bottom: level 0 holds the lowest
features (the text's "first level"), level ``L - 1`` one node per class. Every node of level
``l >= 1`` has edges to its *dependent* nodes in level ``l - 1``. Given an input, a node fires or
not: first-level nodes are set by the input; a middle-level node fires by its *firing rule*, a
Boolean function of its dependents (here: any of them, all of them, or at least k of them); the
one last-level node that fires is the input's class. The firing nodes form the input's *feature
pathway*.

Every node ``F`` outside the last level carries an amplification factor ``lambda_F >= 0``, and
every edge from a second-last-level node ``f`` to a class node ``F_j`` a weight ``eta_fFj``.
Scores (section 2):

    S_F = lambda_F                          first-level F, firing
    S_F = lambda_F * sum_{f -> F} S_f       middle-level F, firing
    S_F = 0                                 F not firing
    Z_j = sum_{f -> F_j} eta_fFj S_f                                      (2.1)
    p_j = exp(Z_j) / sum_i exp(Z_i)

Training is Algorithm 1: sample a mini-batch of size B, let G be the union of its feature
pathways, and update lambda_F <- g+(lambda_F) for F in G (2.2), g-(lambda_F) otherwise (2.3);
eta_fF <- g+(eta_fF) when the edge f -> F is in G (f and F fire in one sample of the batch),
g- otherwise. Every g here is ``g(x) = max(scale * x + shift, 0)``, which covers the text's
multiplicative (``a x``) and additive (``x + c``) rules, per node and per edge.

:class:`NeurashedLearner` is Algorithm 1 in the engine's learner contract
(:class:`jaxdyn.engine.Learner`): ``init`` draws the factors, ``step`` applies one update,
``apply`` gives the logits Z of first-level firing patterns. Its state
(:class:`NeurashedState`) holds the member's graph beside its factors, so members with different
graphs (a random family, one draw per seed) share one compilation; the graph reaches ``init``
in the task's batch under ``"graph"`` (see :class:`jaxdyn.tasks.neurashed.PatternSampler`).

Representation (arrays only, so pathways, scores and updates run under jit and vmap):

- :class:`Neurashed`: ``adjacency[l]`` the (n_{l+1}, n_l) 0/1 matrix of edges from level l + 1
  to its dependents in level l; ``rule[i]``, ``rule_k[i]`` the rule codes (:data:`RULE_ANY`,
  :data:`RULE_ALL`, :data:`RULE_AT_LEAST`) and k of middle level i + 1.
- :class:`Amplification`: ``lam[l]`` (n_l,) for l = 0..L-2 and ``eta`` (K, n_{L-2}).
- :class:`UpdateRules`: scale and shift of g+ and g-, each an :class:`Amplification`-shaped tree.

Graphs, input patterns and the graph families of the text are built in
:mod:`jaxdyn.tasks.neurashed`; the closed forms (Theorems 1 and 2, the appendix) are in
:mod:`jaxdyn.theory.neurashed`.

Choices where the text is open:

- g applies through ``max(scale x + shift, 0)``; rules do not vary with the iteration (the text
  allows it; nothing here needs it).
- An edge f -> F_j is "firing" when f and F_j fire in the pathway of one sample of the batch
  (the union G of pathways, as subgraphs, contains the edge).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.engine.learners import Learner, tree_all_finite

Array = jax.Array
"""A JAX array (alias of ``jax.Array``)."""

RULE_ANY = 0
"""Firing-rule code (``Neurashed.rule``): the node fires when any of its dependents fires."""
RULE_ALL = 1
"""Firing-rule code (``Neurashed.rule``): the node fires when all of its dependents fire."""
RULE_AT_LEAST = 2
"""Firing-rule code (``Neurashed.rule``): the node fires when at least k of its dependents fire (k in ``Neurashed.rule_k``)."""
RULE_NAMES = {RULE_ANY: "any", RULE_ALL: "all", RULE_AT_LEAST: "at_least"}
"""``{rule code: name}``: the names of :data:`RULE_ANY`, :data:`RULE_ALL` and :data:`RULE_AT_LEAST`
(a graph description's rule codes must be keys of it)."""


class GraphError(ValueError):
    """An inconsistent neurashed description; the message names the node or pattern at fault."""


class Neurashed(NamedTuple):
    """A neurashed graph as arrays (a pytree; leaves may carry a leading graph/seed axis).

    Attributes:
        adjacency: L - 1 arrays; ``adjacency[l]`` has shape (n_{l+1}, n_l), entry [i, j] = 1 when
            node i of level l + 1 depends on node j of level l. The last one links the class
            nodes (K = n_{L-1}) to the second-last level.
        rule: L - 2 int32 arrays; ``rule[i]`` (n_{i+1},) is the firing-rule code of middle
            level i + 1: RULE_ANY, RULE_ALL or RULE_AT_LEAST.
        rule_k: L - 2 int32 arrays (n_{i+1},): the k of "at least k" (ignored for other codes).
    """

    adjacency: tuple
    rule: tuple
    rule_k: tuple

    @property
    def num_levels(self) -> int:
        return len(self.adjacency) + 1

    @property
    def widths(self) -> tuple[int, ...]:
        """(n_0, ..., n_{L-1}): nodes per level, the class level last."""
        return tuple(int(a.shape[-1]) for a in self.adjacency) + (int(self.adjacency[-1].shape[-2]),)

    @property
    def num_classes(self) -> int:
        return int(self.adjacency[-1].shape[-2])


class Amplification(NamedTuple):
    """The trainable state of a neurashed.

    Attributes:
        lam: L - 1 arrays, ``lam[l]`` (n_l,): amplification factors lambda_F of level l.
        eta: (K, n_{L-2}) weights eta_fF of the edges to the class nodes (0 off the edges).
    """

    lam: tuple
    eta: Array


class UpdateRules(NamedTuple):
    """g+(x) = max(plus_scale x + plus_shift, 0) and g-(x) = max(minus_scale x + minus_shift, 0).

    Each field is an :class:`Amplification` whose leaves broadcast to the parameter they update,
    so rules can differ per node (and per edge for eta). Made by :func:`update_rules`.
    """

    plus_scale: Amplification
    plus_shift: Amplification
    minus_scale: Amplification
    minus_shift: Amplification


class Rule(NamedTuple):
    """One affine rule g(x) = max(scale x + shift, 0). See :func:`multiplicative`, :func:`additive`."""

    scale: float
    shift: float


def multiplicative(a: float) -> Rule:
    """g(x) = a x (a > 1 for g+, 0 < a <= 1 for g-)."""
    return Rule(float(a), 0.0)


def additive(c: float) -> Rule:
    """g(x) = x + c (c > 0 for g+; c <= 0 for g-, clipped at 0)."""
    return Rule(1.0, float(c))


def identity() -> Rule:
    """g(x) = x (a legal g-: the text allows b = 1; Theorem 1 uses it)."""
    return Rule(1.0, 0.0)


# ----------------------------------------------------------------------------------------------
# Forward: pathways, scores, logits
# ----------------------------------------------------------------------------------------------


def _xp(*trees):
    """numpy when every leaf is a host array or scalar (fast eager checks, no compilation),
    jax.numpy otherwise (inside jit, or device arrays)."""
    leaves = jax.tree_util.tree_leaves(trees)
    return np if all(isinstance(x, (np.ndarray, np.generic, int, float, bool)) for x in leaves) else jnp


def thresholds(graph: Neurashed) -> tuple:
    """Number of firing dependents each middle-level node needs, per middle level: (n_l,) int32."""
    xp = _xp(graph)
    out = []
    for adj, code, k in zip(graph.adjacency[:-1], graph.rule, graph.rule_k):
        n_dep = xp.sum(xp.asarray(adj).astype(xp.int32), axis=-1)
        out.append(xp.where(code == RULE_ANY, 1, xp.where(code == RULE_ALL, n_dep, k)).astype(xp.int32))
    return tuple(out)


def pathways(graph: Neurashed, first: Array, label: Array | None = None) -> tuple:
    """Feature pathways: which nodes fire, level by level.

    Works on host (numpy) arrays without compiling anything, and under jit/vmap on jax arrays.

    Args:
        graph: one graph (no leading axis).
        first: (..., n_0) first-level firing (bool or 0/1).
        label: optional (...) int class; adds the one-hot class level (a negative label fires
            no class node: padding).

    Returns:
        Tuple of bool arrays (..., n_l) for l = 0..L-2, and (..., K) for the class level when
        ``label`` is given.
    """
    xp = _xp(graph, first, label)
    fires = [xp.asarray(first).astype(bool)]
    for adj, thr in zip(graph.adjacency[:-1], thresholds(graph)):
        adj = xp.asarray(adj).astype(xp.int32)
        count = xp.einsum("...j,ij->...i", fires[-1].astype(xp.int32), adj)
        # A node without dependents never fires (RULE_ALL would otherwise give threshold 0).
        fires.append((count >= thr) & (xp.sum(adj, -1) > 0))
    if label is not None:
        fires.append(xp.arange(graph.num_classes) == xp.asarray(label)[..., None])
    return tuple(fires)


def scores(graph: Neurashed, params: Amplification, fires: Sequence[Array]) -> tuple[tuple, Array]:
    """Scores of every node and the logits, for given pathways.

    Args:
        graph: one graph.
        params: its amplification factors and eta.
        fires: pathways as from :func:`pathways`, levels 0..L-2 with shapes (..., n_l) (a class
            level, if present, is ignored).

    Returns:
        (S, Z): S is a tuple of (..., n_l) scores for l = 0..L-2 (first level: S = lambda if
        firing; middle levels: S_F = lambda_F sum_{f->F} S_f if firing; 0 otherwise); Z is the
        (..., K) logits of (2.1).
    """
    dtype = params.lam[0].dtype
    s = params.lam[0] * fires[0].astype(dtype)
    out = [s]
    for level in range(1, graph.num_levels - 1):
        incoming = jnp.einsum("...j,ij->...i", s, jnp.asarray(graph.adjacency[level - 1]).astype(dtype))
        s = params.lam[level] * fires[level].astype(dtype) * incoming
        out.append(s)
    z = jnp.einsum("...j,kj->...k", s, params.eta * jnp.asarray(graph.adjacency[-1]).astype(dtype))
    return tuple(out), z


def logits(graph: Neurashed, params: Amplification, first: Array) -> Array:
    """Logits Z (..., K) of (2.1) for first-level firing patterns ``first`` (..., n_0)."""
    return scores(graph, params, pathways(graph, first))[1]


def probabilities(graph: Neurashed, params: Amplification, first: Array) -> Array:
    """Softmax class probabilities p_j(x), (..., K)."""
    return jax.nn.softmax(logits(graph, params, first), axis=-1)


# ----------------------------------------------------------------------------------------------
# Algorithm 1: rules, the union of a batch's pathways, one update
# ----------------------------------------------------------------------------------------------


def check_rules(plus: Rule, minus: Rule, *, eta_plus: Rule | None = None, eta_minus: Rule | None = None,
                node_plus: Mapping[tuple[int, int], Rule] | None = None,
                node_minus: Mapping[tuple[int, int], Rule] | None = None) -> None:
    """Checks the text's conditions on g+ and g- (g+ increasing with g+(x) > x for x >= 0; g-
    increasing with 0 <= g-(x) <= x); eta's g+ may be the identity (eta frozen, as in Theorem 1).

    Raises:
        GraphError: naming the rule at fault.
    """
    eta_plus = plus if eta_plus is None else eta_plus
    eta_minus = minus if eta_minus is None else eta_minus
    for name, rule in (("plus", plus), *[(f"node_plus[{k}]", r) for k, r in (node_plus or {}).items()]):
        if not (rule.scale >= 1.0 and rule.shift >= 0.0 and (rule.scale > 1.0 or rule.shift > 0.0)):
            raise GraphError(f"{name}: g+(x) = max({rule.scale} x + {rule.shift}, 0) must satisfy g+(x) > x (scale >= 1, shift >= 0, not both neutral)")
    if not (eta_plus.scale >= 1.0 and eta_plus.shift >= 0.0):
        raise GraphError(f"eta_plus: g+(x) = max({eta_plus.scale} x + {eta_plus.shift}, 0) must satisfy g+(x) >= x (scale >= 1, shift >= 0)")
    for name, rule in (("minus", minus), ("eta_minus", eta_minus), *[(f"node_minus[{k}]", r) for k, r in (node_minus or {}).items()]):
        if not (0.0 < rule.scale <= 1.0 and rule.shift <= 0.0):
            raise GraphError(f"{name}: g-(x) = max({rule.scale} x + {rule.shift}, 0) must be increasing with 0 <= g-(x) <= x (0 < scale <= 1, shift <= 0)")


def update_rules(graph: Neurashed, plus: Rule, minus: Rule, *, eta_plus: Rule | None = None, eta_minus: Rule | None = None,
                 node_plus: Mapping[tuple[int, int], Rule] | None = None, node_minus: Mapping[tuple[int, int], Rule] | None = None,
                 dtype=jnp.float32) -> UpdateRules:
    """Update rules g+ and g- for every node (and eta edge) of ``graph`` (numpy arrays).

    Args:
        graph: one graph (no leading axis; only its widths are read, so this works at trace time).
        plus, minus: the default g+ and g- of every node's lambda.
        eta_plus, eta_minus: g+ and g- of eta; default ``plus`` and ``minus``.
        node_plus, node_minus: per-node exceptions ``{(level, index): Rule}`` (0-based level
            and node index), e.g. the 7th first-level node of Figure 5 is ``(0, 6)``.
        dtype: float dtype of the rule arrays.

    Returns:
        :class:`UpdateRules` with full arrays.

    Raises:
        GraphError: a rule violates the text's conditions (:func:`check_rules`), or an exception
            names a missing node.
    """
    check_rules(plus, minus, eta_plus=eta_plus, eta_minus=eta_minus, node_plus=node_plus, node_minus=node_minus)
    eta_plus = plus if eta_plus is None else eta_plus
    eta_minus = minus if eta_minus is None else eta_minus
    widths = graph.widths

    def lam_arrays(default: Rule, field: int, exceptions):
        arrays = [np.full((n,), default[field], dtype=np.float64) for n in widths[:-1]]
        for (level, index), rule in (exceptions or {}).items():
            if not (0 <= level < len(arrays)) or not (0 <= index < arrays[level].shape[0]):
                raise GraphError(f"node ({level}, {index}): no such node with an amplification factor (levels 0..{len(arrays) - 1}, widths {widths[:-1]})")
            arrays[level][index] = rule[field]
        return tuple(a.astype(dtype) for a in arrays)

    def tree(default: Rule, eta_rule: Rule, field: int, exceptions) -> Amplification:
        eta = np.full((widths[-1], widths[-2]), eta_rule[field], dtype)
        return Amplification(lam=lam_arrays(default, field, exceptions), eta=eta)

    return UpdateRules(
        plus_scale=tree(plus, eta_plus, 0, node_plus),
        plus_shift=tree(plus, eta_plus, 1, node_plus),
        minus_scale=tree(minus, eta_minus, 0, node_minus),
        minus_shift=tree(minus, eta_minus, 1, node_minus),
    )


def init_amplification(graph: Neurashed, key: Array, *, lam_range=(0.0, 0.01), eta_range=(0.0, 0.01), dtype=jnp.float32) -> Amplification:
    """Initial lambda ~ U(lam_range) per node and eta ~ U(eta_range) per edge (0 off the edges).

    A degenerate range (lo == hi) gives the constant lo (e.g. ``eta_range=(1, 1)``).
    """
    keys = jax.random.split(key, graph.num_levels)
    lam = tuple(
        lam_range[0] + (lam_range[1] - lam_range[0]) * jax.random.uniform(k, (n,), dtype)
        for k, n in zip(keys[:-1], graph.widths[:-1])
    )
    adj = jnp.asarray(graph.adjacency[-1]).astype(dtype)
    eta = (eta_range[0] + (eta_range[1] - eta_range[0]) * jax.random.uniform(keys[-1], adj.shape, dtype)) * adj
    return Amplification(lam=lam, eta=eta)


def _affine(x, scale, shift):
    return jnp.maximum(scale * x + shift, 0.0).astype(x.dtype)


def batch_firing(graph: Neurashed, fires: Sequence[Array]) -> Amplification:
    """The union G of the pathways of a mini-batch, as a bool tree shaped like the parameters.

    Args:
        graph: one graph.
        fires: the batch's pathways, from ``pathways(graph, x, label)``: levels (B, n_l), the
            class level (B, K) last. Padding samples fire nothing (zero input, label -1).

    Returns:
        :class:`Amplification` of bools: ``lam[l]`` (n_l,) nodes in G; ``eta`` (K, n_{L-2}) edges
        f -> F_j with f and F_j firing in one sample's pathway.
    """
    lam = tuple(f.any(0) for f in fires[:-1])
    co = jnp.einsum("bk,bj->kj", fires[-1].astype(jnp.int32), fires[-2].astype(jnp.int32)) > 0
    return Amplification(lam=lam, eta=co & (jnp.asarray(graph.adjacency[-1]) > 0))


def apply_update(graph: Neurashed, params: Amplification, rules: UpdateRules, fired: Amplification) -> Amplification:
    """One step of Algorithm 1: g+ on the firing set G (``fired``), g- elsewhere (2.2, 2.3).

    eta off the graph's edges stays 0.
    """

    def update(x, f, ps, pc, ms, mc):
        return jnp.where(f, _affine(x, ps, pc), _affine(x, ms, mc))

    new = jax.tree_util.tree_map(update, params, fired, *rules)
    return new._replace(eta=new.eta * jnp.asarray(graph.adjacency[-1]).astype(new.eta.dtype))


# ----------------------------------------------------------------------------------------------
# The learner
# ----------------------------------------------------------------------------------------------


class NeurashedState(NamedTuple):
    """The state of one :class:`NeurashedLearner` member.

    Attributes:
        amp: the :class:`Amplification` factors (what observables see as ``params``).
        graph: the member's :class:`Neurashed` graph (constant during training).
        fired: :class:`Amplification`-shaped int32 counts: the number of updates in which each
            node (each eta edge) was in the batch's union of pathways G (the k_F of the
            multiplicative closed form lambda_F(t) = lambda_F(0) a+^k_F a-^(t - k_F)).
        class_fired: (K,) int32, the number of updates whose batch held a sample of each class
            (for batch size 1: the per-class update counts N_j of the appendix).
    """

    amp: Amplification
    graph: Neurashed
    fired: Amplification
    class_fired: Array


def _default_float():
    # float64 when x64 is enabled (neurashed's scores overflow float32), float32 otherwise.
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _float_dtype(requested: str | None):
    """The learner's float dtype; asking for float64 without x64 raises instead of silently
    training in float32 (the x64 flag is per process: a Ray worker needs it too)."""
    if requested is None:
        return _default_float()
    if requested == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("dtype: 'float64' needs jax.enable_x64(True) in the process that trains (around train, and in "
                         "every executor worker); neurashed's scores overflow float32")
    return jnp.dtype(requested)


@dataclasses.dataclass(frozen=True)
class NeurashedLearner(Learner):
    """Algorithm 1 of neurashed as an engine learner (hashable; compiled once per rule set).

    Each step takes the batch's first-level firing ``batch["x"]`` (B, n_0) and labels
    ``batch["label"]`` (B,) (-1 marks padding), computes every sample's feature pathway, their
    union G, and applies g+ on G and g- elsewhere. ``init`` reads the member's graph from
    ``batch["graph"]`` and draws lambda ~ U(lam_range), eta ~ U(eta_range) on the edges.

    The parameters are float64 when x64 is enabled (``with jax.enable_x64(True): ...`` around
    ``train``): multiplicative rules grow the scores like a+^t and overflow float32. A member
    whose factors become non-finite is flagged as diverged.

    Attributes:
        plus, minus: the default g+ and g- of the lambdas.
        eta_plus, eta_minus: g+ and g- of eta (None: ``plus``, ``minus``).
        node_plus, node_minus: per-node exceptions ``((level, index), Rule)`` pairs.
        lam_range, eta_range: the initial uniform ranges.
        dtype: ``"float64"`` (then training without x64 raises a clear error rather than running
            in float32), ``"float32"``, or None: float64 when x64 is on, float32 otherwise.
    """

    plus: Rule
    minus: Rule
    eta_plus: Rule | None = None
    eta_minus: Rule | None = None
    node_plus: tuple = ()
    node_minus: tuple = ()
    lam_range: tuple[float, float] = (0.0, 0.01)
    eta_range: tuple[float, float] = (0.0, 0.01)
    dtype: str | None = None

    def __post_init__(self):
        if self.dtype not in (None, "float32", "float64"):
            raise GraphError(f"dtype: expected 'float32', 'float64' or None, got {self.dtype!r}")
        for name in ("plus", "minus", "eta_plus", "eta_minus"):
            value = getattr(self, name)
            if value is not None:
                if not (isinstance(value, tuple) and len(value) == 2):
                    raise GraphError(f"{name}: expected a Rule (scale, shift), got {value!r}")
                object.__setattr__(self, name, Rule(float(value[0]), float(value[1])))
        for name in ("node_plus", "node_minus"):
            items = getattr(self, name)
            items = tuple(items.items()) if isinstance(items, Mapping) else tuple(items)
            object.__setattr__(self, name, tuple(((int(l), int(i)), Rule(float(r[0]), float(r[1]))) for (l, i), r in items))
        for name in ("lam_range", "eta_range"):
            lo, hi = (float(v) for v in getattr(self, name))
            if not (0.0 <= lo <= hi) or not np.isfinite(hi):
                raise GraphError(f"{name}: expected 0 <= lo <= hi, got ({lo}, {hi})")
            object.__setattr__(self, name, (lo, hi))
        check_rules(self.plus, self.minus, eta_plus=self.eta_plus, eta_minus=self.eta_minus,
                    node_plus=dict(self.node_plus), node_minus=dict(self.node_minus))

    def rules_for(self, graph: Neurashed, dtype=None) -> UpdateRules:
        """The :class:`UpdateRules` arrays of this learner for ``graph`` (its widths only)."""
        return update_rules(graph, self.plus, self.minus, eta_plus=self.eta_plus, eta_minus=self.eta_minus,
                            node_plus=dict(self.node_plus), node_minus=dict(self.node_minus),
                            dtype=_float_dtype(self.dtype) if dtype is None else dtype)

    def check_graph(self, graph: Neurashed) -> None:
        """Raises :class:`GraphError` when a per-node rule names a node ``graph`` lacks (call
        before training: the check otherwise happens while tracing)."""
        self.rules_for(jax.tree_util.tree_map(np.asarray, graph))

    def init(self, key, batch, hparams, params=None):
        del hparams
        graph = batch["graph"]
        amp = params if params is not None else init_amplification(
            graph, key, lam_range=self.lam_range, eta_range=self.eta_range, dtype=_float_dtype(self.dtype))
        zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, jnp.int32), amp)
        return NeurashedState(amp=amp, graph=graph, fired=zeros, class_fired=jnp.zeros((graph.num_classes,), jnp.int32))

    def union(self, state: NeurashedState, batch: Mapping[str, Array]) -> tuple[Amplification, Array]:
        """(G as a bool :class:`Amplification`, (K,) bool classes present) of ``batch``."""
        graph = state.graph
        label = jnp.asarray(batch["label"])
        x = jnp.asarray(batch["x"]) * (label >= 0)[:, None]  # padding rows fire nothing
        fires = pathways(graph, x, label)
        return batch_firing(graph, fires), fires[-1].any(0)

    def update(self, state: NeurashedState, batch: Mapping[str, Array]) -> NeurashedState:
        """Algorithm 1 on ``batch``: the new state (no key: the update is deterministic)."""
        fired, classes = self.union(state, batch)
        rules = self.rules_for(state.graph, state.amp.eta.dtype)
        amp = apply_update(state.graph, state.amp, rules, fired)
        counts = jax.tree_util.tree_map(lambda c, f: c + f.astype(jnp.int32), state.fired, fired)
        return NeurashedState(amp=amp, graph=state.graph, fired=counts, class_fired=state.class_fired + classes.astype(jnp.int32))

    def step(self, state, batch, key, hparams):
        del key, hparams
        new = self.update(state, batch)
        return new, tree_all_finite(new.amp)

    def apply(self, state, x, params=None):
        return logits(state.graph, state.amp if params is None else params, x)

    def params(self, state):
        return state.amp

    def with_params(self, state, params):
        return state._replace(amp=params)


def figure5_learner(base: float = 1.022, init_high: float = 0.01, *, plus_exponent: float = 11 / 4,
                    minus_exponent: float = -1 / 4, node7_plus_exponent: float = 3 / 4, dtype: str | None = None) -> NeurashedLearner:
    """The appendix's Figure 5 learner: g- = base^(-1/4) x, g+ = base^(11/4) x, except the 7th
    first-level node, g+ = base^(3/4) x; lambda and eta ~ U(0, init_high). eta follows the same
    g+ and g- (the appendix does not say)."""
    return NeurashedLearner(plus=multiplicative(base ** plus_exponent), minus=multiplicative(base ** minus_exponent),
                            node_plus=(((0, 6), multiplicative(base ** node7_plus_exponent)),),
                            lam_range=(0.0, init_high), eta_range=(0.0, init_high), dtype=dtype)


def theorem1_learner(c: float, init_high: float = 0.01, *, dtype: str | None = None) -> NeurashedLearner:
    """Theorem 1's learner: g+(x) = x + c, g-(x) = x for every lambda; eta held at 1 (identity
    rules, eta_range (1, 1)), so Z_j is the product over levels of the class's amplification sums."""
    return NeurashedLearner(plus=additive(c), minus=identity(), eta_plus=identity(), eta_minus=identity(),
                            lam_range=(0.0, init_high), eta_range=(1.0, 1.0), dtype=dtype)


__all__ = [
    "Amplification", "GraphError", "Neurashed", "NeurashedLearner", "NeurashedState", "RULE_ALL", "RULE_ANY",
    "RULE_AT_LEAST", "RULE_NAMES", "Rule", "UpdateRules", "additive", "apply_update", "batch_firing", "check_rules",
    "figure5_learner", "identity", "init_amplification", "logits", "multiplicative", "pathways", "probabilities",
    "scores", "theorem1_learner", "thresholds", "update_rules",
]
