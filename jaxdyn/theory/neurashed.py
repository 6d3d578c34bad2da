"""Neurashed: Su's leveled graphical model of a network's features (arXiv 2112.09741, section 2).

A neurashed has ``L`` levels of nodes, numbered from the bottom: level 0 holds the lowest
features (the text's "first level"), level ``L - 1`` holds one node per class. Every node of
level ``l >= 1`` has edges to its *dependent* nodes in level ``l - 1``. Given an input, a node
fires or not: first-level nodes are set by the input; a middle-level node fires by its *firing
rule*, a Boolean function of its dependents (here: any of them, all of them, or at least k of
them); the one last-level node that fires is the input's class. The firing nodes form the
input's *feature pathway*.

Every node ``F`` outside the last level carries an amplification factor ``lambda_F >= 0``, and
every edge from a second-last-level node ``f`` to a class node ``F_j`` a weight ``eta_fFj``.
Scores (section 2):

    S_F = lambda_F                          first-level F, firing         (score, first level)
    S_F = lambda_F * sum_{f -> F} S_f       middle-level F, firing        (score, middle levels)
    S_F = 0                                 F not firing
    Z_j = sum_{f -> F_j} eta_fFj S_f                                      (2.1)
    p_j = exp(Z_j) / sum_i exp(Z_i)

Training is Algorithm 1: sample a mini-batch of size B, let G be the union of its feature
pathways, and update lambda_F <- g+(lambda_F) for F in G (2.2), g-(lambda_F) otherwise (2.3);
eta_fF <- g+(eta_fF) when the edge f -> F is in G (both ends fire in one sample of the batch),
g- otherwise. Here every g is ``g(x) = max(scale * x + shift, 0)``, which covers the text's
multiplicative (``a x``) and additive (``x + c``) rules, per node and per edge.

Representation (everything is arrays, so scores, pathways and training run under jit and vmap,
over seeds and over stacked graphs of equal widths):

- :class:`Neurashed`: ``adjacency[l]`` is the (n_{l+1}, n_l) 0/1 matrix of edges from level
  ``l + 1`` to its dependents in level ``l``; ``rule[i]``, ``rule_k[i]`` are the rule codes
  (:data:`RULE_ANY`, :data:`RULE_ALL`, :data:`RULE_AT_LEAST`) and k of middle level ``i + 1``.
- :class:`Patterns`: the input types, as first-level firing patterns with labels and sampling
  weights.
- :class:`Amplification`: ``lam[l]`` (n_l,) for l = 0..L-2 and ``eta`` (K, n_{L-2}).
- :class:`UpdateRules`: scale and shift of g+ and g-, each an :class:`Amplification`-shaped tree.

Graphs are built from a declarative description by :func:`build` (node names, edges, rules,
class pathways), which validates them (:func:`validate`): an edge to a missing node, a node
without dependents, a rule that cannot hold, or a pathway that breaks a firing rule are rejected
with a message naming the node. :func:`theorem1_family` draws the random graphs of Theorem 1.

Choices where the text is open (all documented at their function):

- g applies to the value only through ``max(scale x + shift, 0)``; update rules do not vary
  with the iteration number (the text allows it; nothing here needs it).
- An edge f -> F_j is "firing" in Algorithm 1 when f and F_j fire in the pathway of one sample
  of the batch (the union G of pathways, as subgraphs, contains the edge).
- Mini-batches are drawn either i.i.d. with replacement from the pattern weights
  (``sampling="iid"``) or by shuffling the patterns every epoch (``sampling="epoch"``, uniform
  weights), which gives every class the same number of updates at epoch ends.
- Theorem 1 family: see :func:`theorem1_family`.
- The Figure 5 graph: see :func:`figure5`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

RULE_ANY, RULE_ALL, RULE_AT_LEAST = 0, 1, 2
RULE_NAMES = {RULE_ANY: "any", RULE_ALL: "all", RULE_AT_LEAST: "at_least"}


class GraphError(ValueError):
    """An inconsistent neurashed description; the message names the node or pattern at fault."""


# ----------------------------------------------------------------------------------------------
# Data structures
# ----------------------------------------------------------------------------------------------


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


class Patterns(NamedTuple):
    """The input types a neurashed is trained on.

    Attributes:
        first: (P, n_0) bool, the first-level firing pattern of each input type.
        label: (P,) int32 class of each type (index of its last-level node).
        weight: (P,) float sampling probabilities (sum to 1).
    """

    first: Array
    label: Array
    weight: Array


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
    so rules can differ per node (and per edge for eta). Make them with :func:`update_rules`.
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
    """Number of firing dependents each middle-level node needs, per middle level: (n_l,) int."""
    xp = _xp(graph)
    out = []
    for adj, code, k in zip(graph.adjacency[:-1], graph.rule, graph.rule_k):
        n_dep = xp.sum(adj, axis=-1).astype(xp.int32)
        out.append(xp.where(code == RULE_ANY, 1, xp.where(code == RULE_ALL, n_dep, k)))
    return tuple(out)


def pathways(graph: Neurashed, first: Array, label: Array | None = None) -> tuple:
    """Feature pathways: which nodes fire, level by level.

    Works on host (numpy) arrays without compiling anything, and under jit/vmap on jax arrays.

    Args:
        graph: one graph (no leading axis).
        first: (..., n_0) first-level firing (bool or 0/1).
        label: optional (...) int class; adds the one-hot last level.

    Returns:
        Tuple of bool arrays (..., n_l) for l = 0..L-2, and (..., K) for the class level when
        ``label`` is given.
    """
    xp = _xp(graph, first, label)
    fires = [xp.asarray(first).astype(bool)]
    for adj, thr in zip(graph.adjacency[:-1], thresholds(graph)):
        count = xp.einsum("...j,ij->...i", fires[-1].astype(xp.int32), xp.asarray(adj).astype(xp.int32))
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
        incoming = jnp.einsum("...j,ij->...i", s, graph.adjacency[level - 1].astype(dtype))
        s = params.lam[level] * fires[level].astype(dtype) * incoming
        out.append(s)
    z = jnp.einsum("...j,kj->...k", s, params.eta * graph.adjacency[-1].astype(dtype))
    return tuple(out), z


def logits(graph: Neurashed, params: Amplification, first: Array) -> Array:
    """Logits Z (..., K) of (2.1) for first-level firing patterns ``first`` (..., n_0)."""
    return scores(graph, params, pathways(graph, first))[1]


def probabilities(graph: Neurashed, params: Amplification, first: Array) -> Array:
    """Softmax class probabilities p_j(x), (..., K)."""
    return jax.nn.softmax(logits(graph, params, first), axis=-1)


# ----------------------------------------------------------------------------------------------
# Algorithm 1
# ----------------------------------------------------------------------------------------------


def update_rules(
    graph: Neurashed,
    plus: Rule,
    minus: Rule,
    *,
    eta_plus: Rule | None = None,
    eta_minus: Rule | None = None,
    node_plus: Mapping[tuple[int, int], Rule] | None = None,
    node_minus: Mapping[tuple[int, int], Rule] | None = None,
    dtype=jnp.float32,
) -> UpdateRules:
    """Update rules g+ and g- for every node (and eta edge) of ``graph``.

    Args:
        graph: one graph (no leading axis).
        plus, minus: the default g+ and g- of every node's lambda.
        eta_plus, eta_minus: g+ and g- of eta; default ``plus`` and ``minus``.
        node_plus, node_minus: per-node exceptions ``{(level, index): Rule}`` (0-based level
            and node index), e.g. the 7th first-level node of Figure 5 is ``(0, 6)``.
        dtype: float dtype of the rule arrays.

    Returns:
        :class:`UpdateRules` with full arrays.

    Raises:
        GraphError: if a rule violates the text's conditions (g+ increasing with g+(x) > x for
            x > 0; g- increasing with 0 <= g-(x) <= x), or an exception names a missing node.
    """
    eta_plus = plus if eta_plus is None else eta_plus
    eta_minus = minus if eta_minus is None else eta_minus
    widths = graph.widths
    for name, rule in (("plus", plus), *[(f"node_plus[{k}]", r) for k, r in (node_plus or {}).items()]):
        if not (rule.scale >= 1.0 and rule.shift >= 0.0 and (rule.scale > 1.0 or rule.shift > 0.0)):
            raise GraphError(f"{name}: g+(x) = max({rule.scale} x + {rule.shift}, 0) must satisfy g+(x) > x (scale >= 1, shift >= 0, not both neutral)")
    # eta may also be frozen (identity), as in the Theorem 1 setting where Z is the product of
    # the levels' amplification sums.
    if not (eta_plus.scale >= 1.0 and eta_plus.shift >= 0.0):
        raise GraphError(f"eta_plus: g+(x) = max({eta_plus.scale} x + {eta_plus.shift}, 0) must satisfy g+(x) >= x (scale >= 1, shift >= 0)")
    for name, rule in (("minus", minus), ("eta_minus", eta_minus), *[(f"node_minus[{k}]", r) for k, r in (node_minus or {}).items()]):
        if not (0.0 < rule.scale <= 1.0 and rule.shift <= 0.0):
            raise GraphError(f"{name}: g-(x) = max({rule.scale} x + {rule.shift}, 0) must be increasing with 0 <= g-(x) <= x (0 < scale <= 1, shift <= 0)")

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
    adj = graph.adjacency[-1].astype(dtype)
    eta = (eta_range[0] + (eta_range[1] - eta_range[0]) * jax.random.uniform(keys[-1], adj.shape, dtype)) * adj
    return Amplification(lam=lam, eta=eta)


def _affine(x, scale, shift):
    return jnp.maximum(scale * x + shift, 0.0).astype(x.dtype)


def batch_firing(graph: Neurashed, table: Sequence[Array], indices: Array) -> Amplification:
    """The union G of the pathways of a mini-batch, as a bool tree shaped like the parameters.

    Args:
        graph: one graph.
        table: pathways of all patterns, from ``pathways(graph, first, label)``: levels
            (P, n_l), the class level (P, K) last.
        indices: (B,) pattern indices of the batch; negative entries are ignored (padding).

    Returns:
        :class:`Amplification` of bools: ``lam[l]`` (n_l,) nodes in G; ``eta`` (K, n_{L-2}) edges
        f -> F_j with f and F_j firing in one sample's pathway.
    """
    valid = (indices >= 0)[:, None]
    rows = [t[jnp.maximum(indices, 0)] & valid for t in table]
    lam = tuple(r.any(0) for r in rows[:-1])
    co = jnp.einsum("bk,bj->kj", rows[-1].astype(jnp.int32), rows[-2].astype(jnp.int32)) > 0
    return Amplification(lam=lam, eta=co & (graph.adjacency[-1] > 0))


def apply_update(graph: Neurashed, params: Amplification, rules: UpdateRules, fired: Amplification) -> Amplification:
    """One step of Algorithm 1: g+ on the firing set G (``fired``), g- elsewhere (2.2, 2.3).

    eta off the graph's edges stays 0.
    """

    def update(x, f, ps, pc, ms, mc):
        return jnp.where(f, _affine(x, ps, pc), _affine(x, ms, mc))

    new = jax.tree_util.tree_map(update, params, fired, *rules)
    return new._replace(eta=new.eta * graph.adjacency[-1].astype(new.eta.dtype))


@jax.jit
def step(graph: Neurashed, patterns: Patterns, rules: UpdateRules, params: Amplification, indices: Array) -> Amplification:
    """Algorithm 1 on the mini-batch of pattern ``indices`` (B,): one update of all parameters."""
    table = pathways(graph, patterns.first, patterns.label)
    return apply_update(graph, params, rules, batch_firing(graph, table, indices))


class TrainResult(NamedTuple):
    """What :func:`train` returns; the seed axis leads every array.

    Attributes:
        params: final :class:`Amplification`, leaves (seed, ...).
        records: ``observe``'s pytree with leaves (seed, time, ...), recorded at step 0 and every
            ``record_every`` steps.
        record_steps: (time,) the step of each record.
        counts: (seed, time, P) int32 how many times each pattern was in a batch by then.
    """

    params: Amplification
    records: Any
    record_steps: np.ndarray
    counts: np.ndarray


def default_observe(graph: Neurashed, patterns: Patterns, params: Amplification):
    """Records the parameters themselves."""
    del graph, patterns
    return params


def _batch_indices(key, step_index, patterns: Patterns, batch_size, max_batch: int, sampling: str):
    """(max_batch,) pattern indices of the batch at ``step_index``; entries past ``batch_size``
    (a traced int, so one compilation serves every batch size) are -1 (ignored)."""
    num_patterns = patterns.weight.shape[0]
    slots = jnp.arange(max_batch)
    if sampling == "iid":
        k = jax.random.fold_in(jax.random.fold_in(key, 0), step_index)
        idx = jax.random.choice(k, num_patterns, (max_batch,), replace=True, p=patterns.weight)
    else:
        # "epoch": a fresh permutation per epoch; batch_size divides P (checked in train).
        per_epoch = num_patterns // batch_size
        epoch, within = step_index // per_epoch, step_index % per_epoch
        perm = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(key, 1), epoch), num_patterns)
        perm = jnp.concatenate([perm, jnp.full((max_batch,), -1, perm.dtype)])
        idx = jax.lax.dynamic_slice(perm, (within * batch_size,), (max_batch,))
    return jnp.where(slots < batch_size, idx, -1)


@functools.partial(jax.jit, static_argnames=("num_records", "max_batch", "sampling", "observe", "graph_axis", "init_given"))
def _train_jit(graph, patterns, rules, keys, init, lam_range, eta_range, record_every, batch_size, *, num_records, max_batch,
               sampling, observe, graph_axis, init_given):
    def member(graph, patterns, key, init_m, batch_m):
        table = pathways(graph, patterns.first, patterns.label)
        init_key, data_key = jax.random.split(key)
        params = init_m if init_given else init_amplification(
            graph, init_key, lam_range=lam_range, eta_range=eta_range, dtype=jnp.asarray(lam_range).dtype)
        num_patterns = patterns.weight.shape[0]

        def one_step(s, carry):
            params, counts = carry
            idx = _batch_indices(data_key, s, patterns, batch_m, max_batch, sampling)
            params = apply_update(graph, params, rules, batch_firing(graph, table, idx))
            counts = counts + jnp.zeros(num_patterns, jnp.int32).at[jnp.maximum(idx, 0)].add((idx >= 0).astype(jnp.int32))
            return params, counts

        def one_record(carry, r):
            # record_every is traced: one compilation serves every record spacing.
            carry = jax.lax.fori_loop(r * record_every, (r + 1) * record_every, one_step, carry)
            return carry, (observe(graph, patterns, carry[0]), carry[1])

        counts0 = jnp.zeros(num_patterns, jnp.int32)
        first = (observe(graph, patterns, params), counts0)
        (params, _), (recs, counts) = jax.lax.scan(one_record, (params, counts0), jnp.arange(num_records))
        recs = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b], 0), first[0], recs)
        counts = jnp.concatenate([counts0[None], counts], 0)
        return params, recs, counts

    in_axes = (graph_axis, graph_axis, 0, 0 if init_given else None, 0)
    return jax.vmap(member, in_axes=in_axes)(graph, patterns, keys, init, batch_size)


def train(
    graph: Neurashed,
    patterns: Patterns,
    rules: UpdateRules,
    seeds: Sequence[int] | Array,
    *,
    num_steps: int,
    batch_size: int | Sequence[int],
    record_every: int | None = None,
    sampling: str = "iid",
    lam_range: tuple[float, float] = (0.0, 0.01),
    eta_range: tuple[float, float] = (0.0, 0.01),
    init: Amplification | None = None,
    observe: Callable[[Neurashed, Patterns, Amplification], Any] = default_observe,
    dtype=jnp.float32,
    max_batch_size: int | None = None,
) -> TrainResult:
    """Algorithm 1 for an ensemble of seeds, in one jit (vmap over members, scan over steps).

    Args:
        graph: one graph (shared by all members), or graphs stacked on a leading axis of the
            same length as ``seeds`` (one per member; then ``patterns`` must be stacked too).
        patterns: the input types (stacked with the graphs, or shared).
        rules: :class:`UpdateRules` shared by all members (from :func:`update_rules`).
        seeds: (S,) distinct non-negative ints, one member each; member i draws its initial
            factors and its mini-batches from its seed.
        num_steps: iterations of Algorithm 1 per member.
        batch_size: B, samples per mini-batch; or one B per seed (members with different batch
            sizes share one compilation, as do different ``num_steps`` with the same number of
            records).
        record_every: steps between records (must divide ``num_steps``); default ``num_steps``.
        sampling: ``"iid"`` (B patterns drawn with replacement by ``weight``) or ``"epoch"``
            (every pattern once per epoch in a fresh random order; B must divide P and the
            weights must be uniform).
        lam_range, eta_range: initial U(lo, hi) of lambda and eta (ignored with ``init``).
        init: explicit initial parameters, leaves (S, ...).
        observe: ``observe(graph, patterns, params) -> pytree`` recorded (jit-compatible and
            hashable: a module-level function, not a fresh lambda, to reuse the compilation).
        dtype: float dtype of the parameters (float64 needs ``jax.enable_x64``).
        max_batch_size: the static batch capacity (default the largest B); give the same value
            to calls with different B to reuse one compilation. With ``sampling="iid"`` the
            draws depend on it (``max_batch_size`` candidates are drawn, the first B used).

    Returns:
        :class:`TrainResult`.

    Raises:
        GraphError / ValueError: on inconsistent arguments, before compiling.
    """
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or seeds.size == 0 or not np.issubdtype(seeds.dtype, np.integer) or seeds.min() < 0:
        raise ValueError(f"seeds: expected a non-empty 1-D list of non-negative ints, got {seeds!r}")
    if len(np.unique(seeds)) != seeds.size:
        raise ValueError("seeds: must be distinct")
    record_every = num_steps if record_every is None else record_every
    for name, value in (("num_steps", num_steps), ("record_every", record_every)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    batch = np.broadcast_to(np.asarray(batch_size), seeds.shape) if np.ndim(batch_size) == 0 else np.asarray(batch_size)
    if batch.shape != seeds.shape or not np.issubdtype(batch.dtype, np.integer) or batch.min() < 1:
        raise ValueError(f"batch_size: expected a positive int or one per seed ({seeds.size}), got {batch_size!r}")
    if num_steps % record_every:
        raise ValueError(f"record_every: must divide num_steps ({num_steps}), got {record_every}")
    if sampling not in ("iid", "epoch"):
        raise ValueError(f"sampling: must be 'iid' or 'epoch', got {sampling!r}")
    stacked = np.ndim(graph.adjacency[0]) == 3
    if stacked and np.shape(graph.adjacency[0])[0] != seeds.size:
        raise ValueError(f"graph: stacked graphs need one per seed ({seeds.size}), got {np.shape(graph.adjacency[0])[0]}")
    if stacked != (np.ndim(patterns.first) == 3):
        raise ValueError("patterns: must be stacked (leading axis per seed) exactly when the graphs are")
    num_patterns = np.shape(patterns.weight)[-1]
    max_batch = int(batch.max()) if max_batch_size is None else int(max_batch_size)
    if max_batch < batch.max():
        raise ValueError(f"max_batch_size: must be >= every batch size ({batch.max()}), got {max_batch_size}")
    if sampling == "epoch":
        bad = sorted(set((batch[num_patterns % batch != 0]).tolist()))
        if bad:
            raise ValueError(f"batch_size: must divide the number of patterns ({num_patterns}) with sampling='epoch', got {bad[0]}")
        w = np.asarray(patterns.weight)
        if not np.allclose(w, 1.0 / num_patterns):
            raise ValueError("patterns.weight: sampling='epoch' needs uniform weights")
    keys = jnp.asarray(np.stack([np.asarray(jax.random.key_data(jax.random.key(int(s)))) for s in seeds]))
    keys = jax.random.wrap_key_data(keys)
    params, recs, counts = _train_jit(
        graph, patterns, rules, keys, init, jnp.asarray(lam_range, dtype), jnp.asarray(eta_range, dtype),
        jnp.int32(record_every), jnp.asarray(batch, jnp.int32), num_records=num_steps // record_every,
        max_batch=max_batch, sampling=sampling, observe=observe, graph_axis=0 if stacked else None,
        init_given=init is not None,
    )
    return TrainResult(
        params=jax.device_get(params),
        records=jax.device_get(recs),
        record_steps=np.arange(0, num_steps + 1, record_every),
        counts=np.asarray(counts),
    )


# ----------------------------------------------------------------------------------------------
# Validation and the declarative builder
# ----------------------------------------------------------------------------------------------


def _node_name(names, level: int, index: int) -> str:
    if names is not None:
        return f"{names[level][index]!r} (level {level})"
    return f"node {index} of level {level}"


def _rule_text(code: int, k: int, n_dep: int) -> str:
    if code == RULE_ANY:
        return f"'any' (at least 1 of {n_dep})"
    if code == RULE_ALL:
        return f"'all' ({n_dep} of {n_dep})"
    return f"'at least {k}' of {n_dep}"


def validate(graph: Neurashed, patterns: Patterns | None = None, *, expected: Sequence[Sequence[np.ndarray]] | None = None,
             names: Sequence[Sequence[str]] | None = None) -> None:
    """Checks a single (unstacked) graph and its patterns; raises :class:`GraphError` if inconsistent.

    Checks: 0/1 adjacency with chained shapes; every node above level 0 has a dependent; rule
    codes known and "at least k" with 1 <= k <= number of dependents; patterns of the right
    width, labels of existing classes, weights a distribution; every pattern's pathway reaches
    its class node (the class node has a firing dependent); and, when ``expected`` is given
    (per pattern, a bool array per middle level), that the firing rules produce exactly those
    middle-level pathways.

    Args:
        graph: one graph.
        patterns: optional input types.
        expected: optional, ``expected[p][i]`` (n_{i+1},) bool: the pathway the description
            claims for pattern p at middle level i + 1.
        names: optional node names per level, used in messages.
    """
    adjs = [np.asarray(a) for a in graph.adjacency]
    if len(adjs) < 1:
        raise GraphError("levels: a neurashed needs at least two levels (features and classes)")
    for l, a in enumerate(adjs):
        if a.ndim != 2:
            raise GraphError(f"adjacency[{l}]: expected a matrix (one graph), got shape {a.shape}")
        if not np.isin(a, (0, 1)).all():
            raise GraphError(f"adjacency[{l}]: entries must be 0 or 1")
        if l > 0 and a.shape[1] != adjs[l - 1].shape[0]:
            raise GraphError(f"adjacency[{l}]: has {a.shape[1]} columns but level {l} has {adjs[l - 1].shape[0]} nodes")
        n_dep = a.sum(1)
        for i in np.flatnonzero(n_dep == 0):
            raise GraphError(f"{_node_name(names, l + 1, i)} has no dependent nodes in level {l}: it can never fire")
    if len(graph.rule) != len(adjs) - 1 or len(graph.rule_k) != len(adjs) - 1:
        raise GraphError(f"rule: expected one rule array per middle level ({len(adjs) - 1}), got {len(graph.rule)}")
    for i, (code, k) in enumerate(zip(graph.rule, graph.rule_k)):
        code, k = np.asarray(code), np.asarray(k)
        n_dep = adjs[i].sum(1)
        if code.shape != (adjs[i].shape[0],) or k.shape != code.shape:
            raise GraphError(f"rule[{i}]: expected shape ({adjs[i].shape[0]},) for level {i + 1}, got {code.shape}")
        for j in range(code.shape[0]):
            if code[j] not in RULE_NAMES:
                raise GraphError(f"{_node_name(names, i + 1, j)}: unknown rule code {code[j]} (0 any, 1 all, 2 at_least)")
            if code[j] == RULE_AT_LEAST and not 1 <= k[j] <= n_dep[j]:
                raise GraphError(f"{_node_name(names, i + 1, j)}: rule 'at least {k[j]}' needs between 1 and its {n_dep[j]} dependents")
    if patterns is None:
        return
    first, label, weight = (np.asarray(x) for x in patterns)
    widths = [a.shape[1] for a in adjs] + [adjs[-1].shape[0]]
    if first.ndim != 2 or first.shape[1] != widths[0]:
        raise GraphError(f"patterns.first: expected shape (P, {widths[0]}), got {first.shape}")
    if label.shape != (first.shape[0],) or weight.shape != (first.shape[0],):
        raise GraphError(f"patterns: label and weight need shape ({first.shape[0]},), got {label.shape} and {weight.shape}")
    if label.min(initial=0) < 0 or label.max(initial=0) >= widths[-1]:
        raise GraphError(f"patterns.label: classes are 0..{widths[-1] - 1}, got {sorted(set(label.tolist()))}")
    if (weight < 0).any() or not np.isclose(weight.sum(), 1.0, atol=1e-5):
        raise GraphError(f"patterns.weight: must be non-negative and sum to 1, got sum {weight.sum()}")
    table = [np.asarray(t) for t in pathways(jax.tree_util.tree_map(np.asarray, graph), first, label)]
    for p in range(first.shape[0]):
        if not first[p].any():
            raise GraphError(f"pattern {p}: no first-level node fires")
        if expected is not None:
            for i in range(len(adjs) - 1):
                want = np.asarray(expected[p][i]).astype(bool)
                got = table[i + 1][p]
                for j in np.flatnonzero(want != got):
                    deps = np.flatnonzero(adjs[i][j])
                    firing = [int(d) for d in deps if table[i][p][d]]
                    dep_names = [names[i][d] if names is not None else str(d) for d in firing]
                    rule = _rule_text(int(np.asarray(graph.rule[i])[j]), int(np.asarray(graph.rule_k[i])[j]), len(deps))
                    state = "firing" if want[j] else "not firing"
                    raise GraphError(
                        f"pattern {p} (class {int(label[p])}): {_node_name(names, i + 1, j)} is listed as {state}, but its rule "
                        f"{rule} sees {len(firing)} firing dependent(s) {dep_names}: the pathway breaks the firing rule")
        cls = int(label[p])
        if not (adjs[-1][cls] * table[-2][p]).any():
            raise GraphError(f"pattern {p}: its pathway does not reach its class node {_node_name(names, len(adjs), cls)} "
                             f"(no firing dependent of the class node in level {len(adjs) - 1})")


class Built(NamedTuple):
    """A graph built from a description: the arrays, the patterns and the node names per level."""

    graph: Neurashed
    patterns: Patterns
    names: tuple


def _parse_rule(node: str, rule: Any) -> tuple[int, int]:
    if isinstance(rule, (int, np.integer)) and not isinstance(rule, bool):
        return RULE_AT_LEAST, int(rule)
    if isinstance(rule, str):
        text = rule.strip().lower().replace(" ", "_")
        if text == "any":
            return RULE_ANY, 1
        if text == "all":
            return RULE_ALL, 0
        for prefix in ("at_least:", "at_least_", "at_least"):
            if text.startswith(prefix) and text[len(prefix):].isdigit():
                return RULE_AT_LEAST, int(text[len(prefix):])
    if isinstance(rule, (tuple, list)) and len(rule) == 2 and rule[0] in ("at_least", "at least"):
        return RULE_AT_LEAST, int(rule[1])
    raise GraphError(f"rules[{node!r}]: expected 'any', 'all', 'at_least:K' or an int K, got {rule!r}")


def build(description: Mapping[str, Any]) -> Built:
    """A neurashed from a declarative description, validated.

    The description (plain data, JSON-able)::

        {"levels": [["x1", "x2", ...], ["h1", ...], ["class1", "class2"]],   # bottom to top
         "edges": {"h1": ["x1", "x2"], ..., "class1": ["h1", ...]},          # node -> dependents
         "rules": {"h2": "at_least:2"},              # middle levels; default "any"
         "pathways": [{"label": "class1", "first": ["x1", "x2"],              # input types
                       "fires": ["h1", "h2"],        # optional: the middle-level nodes that fire
                       "weight": 1.0}, ...]}         # optional: relative sampling weight

    Every node above the first level must appear in ``edges``; dependents must be in the level
    directly below. When ``fires`` is given, the firing rules must produce exactly it.

    Returns:
        :class:`Built` (graph, patterns with normalised weights, names).

    Raises:
        GraphError: naming the node or pathway at fault.
    """
    for key in ("levels", "edges", "pathways"):
        if key not in description:
            raise GraphError(f"description: missing {key!r} (needs levels, edges, pathways; rules optional)")
    unknown = set(description) - {"levels", "edges", "rules", "pathways"}
    if unknown:
        raise GraphError(f"description: unknown keys {sorted(unknown)}")
    levels = [list(level) for level in description["levels"]]
    if len(levels) < 2 or any(len(level) == 0 for level in levels):
        raise GraphError("levels: need at least two non-empty levels (first-level features ... class nodes)")
    where: dict[str, tuple[int, int]] = {}
    for l, level in enumerate(levels):
        for i, name in enumerate(level):
            if not isinstance(name, str):
                raise GraphError(f"levels[{l}][{i}]: node names must be strings, got {name!r}")
            if name in where:
                raise GraphError(f"levels: node name {name!r} appears twice")
            where[name] = (l, i)
    edges = description["edges"]
    adjs = [np.zeros((len(levels[l + 1]), len(levels[l])), np.int32) for l in range(len(levels) - 1)]
    for node, deps in edges.items():
        if node not in where:
            raise GraphError(f"edges: {node!r} is not a node of any level")
        l, i = where[node]
        if l == 0:
            raise GraphError(f"edges: {node!r} is a first-level node; first-level nodes have no dependents")
        if isinstance(deps, str):
            raise GraphError(f"edges[{node!r}]: expected a list of node names, got the string {deps!r}")
        for dep in deps:
            if dep not in where:
                raise GraphError(f"edges[{node!r}]: edge to missing node {dep!r}")
            dl, dj = where[dep]
            if dl != l - 1:
                raise GraphError(f"edges[{node!r}]: dependent {dep!r} is in level {dl}, not in level {l - 1} directly below")
            if adjs[l - 1][i, dj]:
                raise GraphError(f"edges[{node!r}]: dependent {dep!r} listed twice")
            adjs[l - 1][i, dj] = 1
    rules = dict(description.get("rules") or {})
    codes = [np.zeros(len(levels[l]), np.int32) for l in range(1, len(levels) - 1)]
    ks = [np.ones(len(levels[l]), np.int32) for l in range(1, len(levels) - 1)]
    for node, rule in rules.items():
        if node not in where:
            raise GraphError(f"rules: {node!r} is not a node of any level")
        l, i = where[node]
        if not 0 < l < len(levels) - 1:
            raise GraphError(f"rules[{node!r}]: only middle-level nodes have firing rules (it is in level {l})")
        codes[l - 1][i], ks[l - 1][i] = _parse_rule(node, rule)
    graph = Neurashed(adjacency=tuple(adjs), rule=tuple(codes), rule_k=tuple(ks))
    paths = list(description["pathways"])
    if not paths:
        raise GraphError("pathways: need at least one input type")
    first = np.zeros((len(paths), len(levels[0])), bool)
    label = np.zeros(len(paths), np.int32)
    weight = np.ones(len(paths), np.float64)
    expected = []
    any_fires = any("fires" in p for p in paths)
    for p, spec in enumerate(paths):
        bad = set(spec) - {"label", "first", "fires", "weight"}
        if bad:
            raise GraphError(f"pathways[{p}]: unknown keys {sorted(bad)}")
        if spec.get("label") not in where or where[spec["label"]][0] != len(levels) - 1:
            raise GraphError(f"pathways[{p}]: label {spec.get('label')!r} is not a class (last-level) node {levels[-1]}")
        label[p] = where[spec["label"]][1]
        for node in spec.get("first", ()):
            if node not in where:
                raise GraphError(f"pathways[{p}]: first-level node {node!r} does not exist")
            if where[node][0] != 0:
                raise GraphError(f"pathways[{p}]: {node!r} in 'first' is not a first-level node")
            first[p, where[node][1]] = True
        weight[p] = float(spec.get("weight", 1.0))
        if weight[p] <= 0:
            raise GraphError(f"pathways[{p}]: weight must be > 0, got {weight[p]}")
        if any_fires:
            mids = [np.zeros(len(levels[l]), bool) for l in range(1, len(levels) - 1)]
            for node in spec.get("fires", ()):
                if node not in where or not 0 < where[node][0] < len(levels) - 1:
                    raise GraphError(f"pathways[{p}]: {node!r} in 'fires' is not a middle-level node")
                mids[where[node][0] - 1][where[node][1]] = True
            expected.append(mids)
    patterns = Patterns(first=first, label=label, weight=(weight / weight.sum()).astype(np.float32))
    names = tuple(tuple(level) for level in levels)
    validate(graph, patterns, expected=expected if any_fires else None, names=names)
    return Built(graph=graph, patterns=patterns, names=names)


def stack(items: Sequence[Any]) -> Any:
    """Stacks equally shaped graphs (or patterns, or parameters) on a new leading axis (numpy)."""
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *items)


def unstack(tree: Any, index: int) -> Any:
    """Member ``index`` of a stacked tree."""
    return jax.tree_util.tree_map(lambda x: x[index], tree)


# ----------------------------------------------------------------------------------------------
# The Figure 5 model
# ----------------------------------------------------------------------------------------------

#: Appendix constants of Figure 5 (right panel).
FIGURE5_BASE = 1.022
FIGURE5_PLUS_EXPONENT = 11 / 4
FIGURE5_MINUS_EXPONENT = -1 / 4
FIGURE5_NODE7_PLUS_EXPONENT = 3 / 4


def figure5_description(b_dependents: Sequence[int] = (1, 2, 3, 4, 5, 6, 7)) -> dict:
    """The Figure 5 neurashed as a :func:`build` description.

    Reading of the text (it gives the firing patterns and rules, not the edges):

    - First level: 13 nodes x1..x13. Class 1 fires (1,2,7), (2,3,7), (4,5,7), (5,6,7); class 2
      the mirror images (13,12,7), (12,11,7), (10,9,7), (9,8,7). The 7th node is the middle
      one, shared by all eight pathways; this is why the appendix gives it alone a slower g+
      (it fires in every mini-batch).
    - Second level: 6 nodes, h1 h2 h3 for class 1 and their mirrors h4 h5 h6 (h6 mirrors h1).
      h1 depends on x1 x2 x3 and h3 on x4 x5 x6 ("fire on one or more"); so h1 fires for the
      type-a inputs (1,2,7), (2,3,7) and h3 for the type-b inputs (4,5,7), (5,6,7), as the
      appendix says. h2 ("two or more", the dominant node) depends on ``b_dependents`` among
      x1..x7, which must include x7 and meet every class-1 pattern in two nodes; default all of
      x1..x7. Its threshold of two keeps it silent on class-2 inputs, where only the shared x7
      fires among its dependents.
    - Last level: class1 depends on h1 h2 h3, class2 on h4 h5 h6.
    """
    first = [f"x{i}" for i in range(1, 14)]
    mirror = {i: 14 - i for i in range(1, 14)}
    b = [int(i) for i in b_dependents]
    edges = {
        "h1": ["x1", "x2", "x3"],
        "h2": [f"x{i}" for i in b],
        "h3": ["x4", "x5", "x6"],
        "h6": ["x13", "x12", "x11"],
        "h5": [f"x{mirror[i]}" for i in b],
        "h4": ["x10", "x9", "x8"],
        "class1": ["h1", "h2", "h3"],
        "class2": ["h4", "h5", "h6"],
    }
    class1 = [((1, 2, 7), ("h1", "h2")), ((2, 3, 7), ("h1", "h2")), ((4, 5, 7), ("h2", "h3")), ((5, 6, 7), ("h2", "h3"))]
    mirror_h = {"h1": "h6", "h2": "h5", "h3": "h4"}
    pathways_ = [{"label": "class1", "first": [f"x{i}" for i in xs], "fires": list(hs)} for xs, hs in class1]
    pathways_ += [{"label": "class2", "first": [f"x{mirror[i]}" for i in xs], "fires": [mirror_h[h] for h in hs]} for xs, hs in class1]
    return {
        "levels": [first, ["h1", "h2", "h3", "h4", "h5", "h6"], ["class1", "class2"]],
        "edges": edges,
        "rules": {"h1": "any", "h2": "at_least:2", "h3": "any", "h4": "any", "h5": "at_least:2", "h6": "any"},
        "pathways": pathways_,
    }


def figure5(b_dependents: Sequence[int] = (1, 2, 3, 4, 5, 6, 7)) -> Built:
    """The Figure 5 graph (see :func:`figure5_description`), built and validated."""
    return build(figure5_description(b_dependents))


def figure5_rules(graph: Neurashed, base: float = FIGURE5_BASE, dtype=jnp.float32) -> UpdateRules:
    """The appendix's rules: g- = base^(-1/4) x, g+ = base^(11/4) x, except the 7th first-level
    node, g+ = base^(3/4) x. eta follows the same g+ and g- (the appendix does not say)."""
    return update_rules(
        graph,
        multiplicative(base ** FIGURE5_PLUS_EXPONENT),
        multiplicative(base ** FIGURE5_MINUS_EXPONENT),
        node_plus={(0, 6): multiplicative(base ** FIGURE5_NODE7_PLUS_EXPONENT)},
        dtype=dtype,
    )


# ----------------------------------------------------------------------------------------------
# The Theorem 1 family
# ----------------------------------------------------------------------------------------------


class Family(NamedTuple):
    """A random graph of Theorem 1 with its patterns (one per class) and the selected nodes.

    Attributes:
        graph: the graph (L lambda levels plus the class level).
        patterns: K patterns, pattern j of class j, uniform weights.
        shared: (L, b1) int, the b1 nodes selected for all classes at each level.
        specific: (L, K, b2) int, the b2 nodes selected for each class at each level.
    """

    graph: Neurashed
    patterns: Patterns
    shared: np.ndarray
    specific: np.ndarray


def theorem1_family(rng: np.random.Generator | int, *, m: int, b1: int, b2: int, num_classes: int, num_levels: int,
                    max_tries: int = 100) -> Family:
    """Draws a neurashed of the Theorem 1 family.

    The text: "m nodes in each level; select b1 nodes uniformly at random at each level except
    the last; next, for each class, select b2 nodes uniformly at random at each level except
    the last; last, for each class, draw edges from the b1 + b2 selected nodes to those in the
    consecutive levels." Readings:

    - ``num_levels`` = L counts the levels with amplification factors (the L of the theorem's
      expansion); the class level comes on top, class j linked to its b1 + b2 nodes.
    - The b2 nodes of each class are drawn independently of the other classes among the
      m - b1 nodes not shared, so two classes may pick the same node when m is small (the
      reason the theorem needs m large); edges of each class join all of its selected nodes
      in one level to all of its selected nodes in the next.
    - Class j's input fires its selected first-level nodes, and its pathway is its selected
      nodes at every level. The firing rule of a node selected by classes S is "at least t"
      with t the fewest firing dependents it has under a class of S; the draw is rejected (and
      redrawn) if a class outside S would reach t too.

    Args:
        rng: numpy Generator or seed.
        m, b1, b2: nodes per level, shared nodes, class-specific nodes per class.
        num_classes: K >= 2.
        num_levels: L >= 1.

    Returns:
        :class:`Family`, validated.
    """
    rng = np.random.default_rng(rng)
    for name, value, lo in (("m", m, 1), ("b1", b1, 1), ("b2", b2, 1), ("num_classes", num_classes, 2), ("num_levels", num_levels, 1)):
        if not isinstance(value, (int, np.integer)) or value < lo:
            raise GraphError(f"{name}: expected an int >= {lo}, got {value!r}")
    if m < b1 + b2:
        raise GraphError(f"m: needs m >= b1 + b2 = {b1 + b2}, got {m}")
    L, K = num_levels, num_classes
    for _ in range(max_tries):
        shared = np.stack([rng.choice(m, b1, replace=False) for _ in range(L)])
        specific = np.empty((L, K, b2), np.int64)
        for l in range(L):
            rest = np.setdiff1d(np.arange(m), shared[l])
            for j in range(K):
                specific[l, j] = rng.choice(rest, b2, replace=False)
        sel = np.zeros((L, K, m), bool)
        for l in range(L):
            sel[l, :, shared[l]] = True
            for j in range(K):
                sel[l, j, specific[l, j]] = True
        adjs = []
        for l in range(L - 1):
            a = np.zeros((m, m), np.int32)
            for j in range(K):
                a |= np.outer(sel[l + 1, j], sel[l, j]).astype(np.int32)
            adjs.append(a)
        adjs.append(sel[L - 1].astype(np.int32))  # (K, m): class j -> its last-level nodes
        codes, ks, ok = [], [], True
        for l in range(1, L):
            a = adjs[l - 1]
            under = sel[l - 1].astype(np.int32) @ a.T  # (K, m): firing dependents of each node under class j
            chosen = sel[l]  # (K, m)
            big = np.iinfo(np.int32).max
            t = np.where(chosen, under, big).min(0)
            t = np.where(chosen.any(0), t, 1)
            outside = np.where(~chosen, under, -1).max(0)
            if (chosen.any(0) & (outside >= t)).any():
                ok = False
                break
            codes.append(np.full(m, RULE_AT_LEAST, np.int32))
            ks.append(np.maximum(t, 1).astype(np.int32))
        if not ok:
            continue
        # Unselected nodes above level 0 have no dependents and never fire (see pathways).
        graph = Neurashed(adjacency=tuple(adjs), rule=tuple(codes), rule_k=tuple(ks))
        patterns = Patterns(first=sel[0].copy(), label=np.arange(K, dtype=np.int32), weight=np.full((K,), 1.0 / K, np.float32))
        expected = [[sel[l, j] for l in range(1, L)] for j in range(K)]
        _validate_family(graph, patterns, expected)
        return Family(graph=graph, patterns=patterns, shared=shared, specific=specific)
    raise GraphError(f"theorem1_family: no consistent draw in {max_tries} tries (m = {m} is too small for b1 = {b1}, b2 = {b2}, K = {K})")


def _validate_family(graph: Neurashed, patterns: Patterns, expected) -> None:
    """Like :func:`validate` but allowing unselected nodes without dependents (they never fire)."""
    table = pathways(graph, patterns.first, patterns.label)
    for j, exp in enumerate(expected):
        for i, want in enumerate(exp):
            if not np.array_equal(table[i + 1][j], want):
                raise GraphError(f"theorem1_family: class {j}'s pathway at level {i + 1} breaks the firing rules")


def theorem1_expansion(counts: np.ndarray, *, c: float, b1: int, b2: int, num_levels: int, cls: int = 0) -> np.ndarray:
    """Leading-order prediction of Delta Z_j / Delta Z_j' after one update at class ``cls``.

    With g+ = x + c, g- = x, eta fixed and small initial factors, after n_j updates at each class
    j (N = sum_j n_j) the shared nodes of a level sum to c N b1 and class j's own nodes to
    c n_j b2, so Z_j(x_j) = prod_levels (c n_j b2 + c N b1) and one more update at class ``cls``
    gives (the text's expansion, with t per class when the n_j are equal)

        Delta Z_cls = (c (n_cls + 1) b2 + c (N + 1) b1)^L - (c n_cls b2 + c N b1)^L
        Delta Z_j'  = (c n_j' b2 + c (N + 1) b1)^L - (c n_j' b2 + c N b1)^L.

    Args:
        counts: (..., K) updates per class so far.

    Returns:
        (..., K) ratios Delta Z_cls / Delta Z_j' for every j' (NaN at j' = cls, and where no
        update has happened yet).
    """
    counts = np.asarray(counts, np.float64)
    N = counts.sum(-1, keepdims=True)
    L = num_levels
    # (X + d)^L - X^L = X^L expm1(L log1p(d / X)); ratios taken in logs (no overflow for large L).
    x_own = c * counts[..., cls:cls + 1] * b2 + c * N * b1
    x_other = c * counts * b2 + c * N * b1
    with np.errstate(divide="ignore", invalid="ignore"):
        log_own = L * np.log(x_own) + np.log(np.expm1(L * np.log1p(c * (b1 + b2) / x_own)))
        log_other = L * np.log(x_other) + np.log(np.expm1(L * np.log1p(c * b1 / x_other)))
        ratio = np.exp(log_own - log_other)
    ratio = np.where(N > 0, ratio, np.nan)  # before any update the expansion is undefined
    ratio[..., cls] = np.nan
    return ratio


# ----------------------------------------------------------------------------------------------
# Classes with several feature pathways (Figures 3 and 4)
# ----------------------------------------------------------------------------------------------


def pathway_family_description(rng: np.random.Generator | int, *, num_classes: int = 2, types_per_class: int = 4,
                               num_levels: int = 3, shared: int = 1, core: int = 2, pool: int = 6,
                               peculiar: int = 2) -> dict:
    """A random :func:`build` description of classes whose samples come in several types.

    Figures 3 and 4 of the text: the samples of one class have similar but not identical
    pathways. At each of ``num_levels`` levels with amplification factors, every class has
    ``core`` nodes that fire for all its samples and a pool of ``pool`` nodes from which each of
    its ``types_per_class`` sample types fires a random subset of ``peculiar`` (the same pool
    positions at every level, so a type's peculiar features form a chain); ``shared`` nodes per
    level fire for every sample of every class. Edges: a shared node depends on the shared
    nodes and all cores below; a core node on its class's core below; pool node j on pool node
    j of its class below; every middle node fires on "any". Class k depends on the shared nodes,
    its core and its pool in the last of these levels.

    Returns:
        The description (node names ``s{l}_{i}``, ``c{k}_{l}_{i}``, ``p{k}_{l}_{j}``, ``class{k}``).
    """
    rng = np.random.default_rng(rng)
    if not 1 <= peculiar <= pool:
        raise GraphError(f"peculiar: must be between 1 and pool ({pool}), got {peculiar}")
    for name, value in (("num_classes", num_classes), ("types_per_class", types_per_class), ("num_levels", num_levels),
                        ("core", core)):
        if value < 1:
            raise GraphError(f"{name}: must be >= 1, got {value}")
    K, L = num_classes, num_levels
    S = lambda l, i: f"s{l}_{i}"  # noqa: E731
    C = lambda k, l, i: f"c{k}_{l}_{i}"  # noqa: E731
    Pn = lambda k, l, j: f"p{k}_{l}_{j}"  # noqa: E731
    levels = []
    for l in range(L):
        names = [S(l, i) for i in range(shared)]
        for k in range(K):
            names += [C(k, l, i) for i in range(core)] + [Pn(k, l, j) for j in range(pool)]
        levels.append(names)
    levels.append([f"class{k}" for k in range(K)])
    edges = {}
    for l in range(1, L):
        for i in range(shared):
            edges[S(l, i)] = [S(l - 1, q) for q in range(shared)] + [C(k, l - 1, q) for k in range(K) for q in range(core)]
        for k in range(K):
            for i in range(core):
                edges[C(k, l, i)] = [C(k, l - 1, q) for q in range(core)]
            for j in range(pool):
                edges[Pn(k, l, j)] = [Pn(k, l - 1, j)]
    pathways_ = []
    for k in range(K):
        edges[f"class{k}"] = [S(L - 1, i) for i in range(shared)] + [C(k, L - 1, i) for i in range(core)] + [Pn(k, L - 1, j) for j in range(pool)]
        for _ in range(types_per_class):
            picks = sorted(rng.choice(pool, peculiar, replace=False).tolist())
            first = [S(0, i) for i in range(shared)] + [C(k, 0, i) for i in range(core)] + [Pn(k, 0, j) for j in picks]
            fires = [S(l, i) for l in range(1, L) for i in range(shared)] + [C(k, l, i) for l in range(1, L) for i in range(core)]
            fires += [Pn(k, l, j) for l in range(1, L) for j in picks]
            pathways_.append({"label": f"class{k}", "first": first, "fires": fires})
    # Pool nodes above level 0 that no type uses still have their chain dependent: they never fire.
    return {"levels": levels, "edges": edges, "pathways": pathways_}


def class_pathway_masks(graph: Neurashed, patterns: Patterns) -> tuple:
    """Which nodes belong to each class's pathways, and which to all of them.

    Returns:
        (union, core): tuples over levels 0..L-2 of (K, n_l) bool: ``union[l][k]`` nodes firing
        for some input type of class k, ``core[l][k]`` nodes firing for every type of class k.
    """
    graph, patterns = jax.tree_util.tree_map(np.asarray, (graph, patterns))
    table = pathways(graph, patterns.first)
    label = patterns.label
    union, core = [], []
    for t in table:
        union.append(np.stack([t[label == k].any(0) for k in range(graph.num_classes)]))
        core.append(np.stack([t[label == k].all(0) for k in range(graph.num_classes)]))
    return tuple(union), tuple(core)
