"""Neurashed's data: input patterns, a mini-batch sampler, the graphs of the text and its families.

Algorithm 1 takes "input data with feature pathways": here an input type is its first-level
firing pattern with a label (:class:`Patterns`), and :class:`PatternSampler` is the engine task
that draws a mini-batch of input types at every step. Graphs are described declaratively
(node names, edges, firing rules, the pathways each input type is meant to fire) and built into
arrays by :func:`build`, which validates them (:func:`validate`): an edge to a missing node, a
node without dependents, a rule that cannot hold, or a pathway that breaks a firing rule is
rejected with a message naming the node.

The graphs of the text:

- :func:`figure5`: the information-bottleneck graph of Figure 5 (13 first-level nodes, 6
  second-level, 2 classes), with the appendix's constants (:data:`FIGURE5_BASE`, exponents).
- :func:`figures12`: a four-level, three-class graph with classes 1a, 1b, 2, 3 in the manner of
  Figures 1 and 2 (the text shows the figures, not their edges; the reading is documented there).
- :func:`appendix_example`: a graph whose logits are the appendix's worked three-class example,
  f_1 = a^2 N1 (7 N1 + 5 N2 + 2 N3) and its companions.
- :func:`theorem1_family`: the random graphs of Theorem 1 (m nodes per level, b1 shared and b2
  class-specific nodes per level).
- :func:`pathway_family_description`: random classes whose samples come in several types
  (Figures 3 and 4: implicit regularisation).

Sampling: ``sampling="iid"`` draws B input types with replacement by their weights at every step
(from the engine's per-step data key); ``sampling="epoch"`` visits every type once per epoch in
a fresh random order (uniform weights, B must divide the number of types), from a per-member
order key (:func:`order_keys`), so every class gets the same number of updates at epoch ends.
Batch sizes are per-member data (``batch_size`` in :func:`sampler_data`), so members with
different B share one compilation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.models.neurashed import (
    RULE_ALL,
    RULE_ANY,
    RULE_AT_LEAST,
    RULE_NAMES,
    GraphError,
    Neurashed,
    pathways,
)

Array = jax.Array

ORDER_STREAM = 0x4E52
"""The fold_in tag of a member's epoch-order key, ``fold_in(key(seed), ORDER_STREAM)``
(:func:`order_keys`): distinct from the engine's streams (0 init, 1 data, 2 dropout, 3 task), so
the orders are independent of the initial factors."""
SAMPLINGS = ("iid", "epoch")


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


# ----------------------------------------------------------------------------------------------
# The engine task
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PatternSampler:
    """Mini-batches of input types for :class:`~jaxdyn.models.neurashed.NeurashedLearner`.

    The member's data (its own, or shared by all members) must hold ``"graph"`` (a
    :class:`~jaxdyn.models.neurashed.Neurashed`), ``"patterns"`` (:class:`Patterns`),
    ``"batch_size"`` (int32 scalar, at most ``max_batch``) and, for epoch sampling,
    ``"order_key"`` ((2,) uint32): see :func:`sampler_data`. Each batch holds ``x`` (max_batch,
    n_0) bool first-level firing, ``label`` (max_batch,) int32 and ``index`` (max_batch,) int32
    pattern indices, -1 past the member's batch size (padding: the learner ignores it), and the
    member's ``graph``, which the learner reads at initialisation.

    Attributes:
        max_batch: the static batch capacity (the largest B of the members).
        sampling: ``"iid"`` (B types with replacement by ``weight``, from the engine's per-step
            data key; the draws depend on ``max_batch``: ``max_batch`` candidates are drawn and the
            first B used) or ``"epoch"`` (each type once per epoch in a random order).
        init: None: the data are always given to the engine (``data=`` and ``shared=``).
    """

    max_batch: int
    sampling: str = "epoch"
    init: Callable | None = None

    def __post_init__(self):
        if not isinstance(self.max_batch, (int, np.integer)) or isinstance(self.max_batch, bool) or self.max_batch < 1:
            raise ValueError(f"max_batch: expected a positive int, got {self.max_batch!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling: must be 'iid' or 'epoch', got {self.sampling!r}")
        if self.init is not None:
            raise ValueError("init: PatternSampler takes its data from data= and shared= (see sampler_data)")

    def indices(self, data: Mapping[str, Any], key: Array, step: Array) -> Array:
        """(max_batch,) int32 pattern indices of the batch at ``step``; -1 past the batch size."""
        patterns = data["patterns"]
        b = jnp.asarray(data["batch_size"], jnp.int32)
        num_patterns = patterns.weight.shape[-1]
        slots = jnp.arange(self.max_batch)
        if self.sampling == "iid":
            idx = jax.random.choice(key, num_patterns, (self.max_batch,), replace=True, p=patterns.weight)
        else:
            per_epoch = num_patterns // b
            epoch, within = step // per_epoch, step % per_epoch
            order = jax.random.fold_in(jax.random.wrap_key_data(data["order_key"]), epoch)
            perm = jax.random.permutation(order, num_patterns)
            perm = jnp.concatenate([perm, jnp.full((self.max_batch,), -1, perm.dtype)])
            idx = jax.lax.dynamic_slice(perm, (within * b,), (self.max_batch,))
        return jnp.where(slots < b, idx, -1).astype(jnp.int32)

    def batch(self, data, key, step):
        """The batch of ``step``: ``x`` (max_batch, n_0) bool, ``label`` (max_batch,) int32 and ``index``
        (max_batch,) int32, padded past the member's batch size (index -1, no firing, label -1),
        and the member's ``graph``."""
        idx = self.indices(data, key, step)
        patterns = data["patterns"]
        valid = idx >= 0
        safe = jnp.maximum(idx, 0)
        return {"x": jnp.asarray(patterns.first)[safe].astype(bool) & valid[:, None],
                "label": jnp.where(valid, jnp.asarray(patterns.label)[safe], -1).astype(jnp.int32),
                "index": idx, "graph": data["graph"]}


def order_keys(seeds: Sequence[int]) -> np.ndarray:
    """(S, 2) uint32: each member's epoch-order key, ``fold_in(key(seed), ORDER_STREAM)``."""
    return np.stack([np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.key(int(s)), ORDER_STREAM)))
                     for s in seeds]).astype(np.uint32)


def sampler_data(seeds: Sequence[int], batch_size: int | Sequence[int], *, sampling: str = "epoch",
                 num_patterns: int | Sequence[int] | None = None, graphs: Neurashed | None = None,
                 patterns: Patterns | None = None) -> dict[str, Any]:
    """The per-member data of a :class:`PatternSampler` run (leading seed axis), validated.

    Args:
        seeds: (S,) the members' integer seeds (as given to ``train``).
        batch_size: B for every member, or one per member.
        sampling: ``"iid"`` or ``"epoch"`` (then B must divide the number of patterns).
        num_patterns: the number of input types (per member when graphs differ); read from
            ``patterns`` when given.
        graphs, patterns: per-member (stacked) graphs and patterns, when members differ; leave
            None when they are shared (pass them in ``shared=``).

    Returns:
        ``{"batch_size": (S,) int32, "order_key": (S, 2) uint32[, "graph", "patterns"]}``.

    Raises:
        ValueError: naming the argument.
    """
    seeds = [int(s) for s in seeds]
    b = np.broadcast_to(np.asarray(batch_size), (len(seeds),)) if np.ndim(batch_size) == 0 else np.asarray(batch_size)
    if b.shape != (len(seeds),) or not np.issubdtype(b.dtype, np.integer) or b.min() < 1:
        raise ValueError(f"batch_size: expected a positive int or one per seed ({len(seeds)}), got {batch_size!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling: must be 'iid' or 'epoch', got {sampling!r}")
    if patterns is not None:
        num_patterns = np.shape(patterns.weight)[-1]
    if sampling == "epoch":
        if num_patterns is None:
            raise ValueError("num_patterns: needed to check that each batch size divides the number of input types")
        bad = sorted(set(int(x) for x in b if int(num_patterns) % int(x)))
        if bad:
            raise ValueError(f"batch_size: must divide the number of input types ({num_patterns}) with sampling='epoch', got {bad[0]}")
        if patterns is not None and not np.allclose(np.asarray(patterns.weight), 1.0 / num_patterns):
            raise ValueError("patterns.weight: sampling='epoch' needs uniform weights")
    data: dict[str, Any] = {"batch_size": b.astype(np.int32), "order_key": order_keys(seeds)}
    if graphs is not None:
        data["graph"] = graphs
    if patterns is not None:
        data["patterns"] = patterns
    return data


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
# The Figure 5 graph
# ----------------------------------------------------------------------------------------------

# Appendix constants of Figure 5 (right panel): g+ = base^(11/4) x, g- = base^(-1/4) x, the 7th
# first-level node g+ = base^(3/4) x, initial factors U(0, 0.01). The learner is
# :func:`jaxdyn.models.neurashed.figure5_learner`.
FIGURE5_BASE = 1.022
"""The base a of Figure 5's multiplicative rules g+ = a^(11/4) x, g- = a^(-1/4) x (Su, appendix,
Figure 5 right panel)."""
FIGURE5_PLUS_EXPONENT = 11 / 4
"""Exponent of g+ = base^(11/4) x for every node but the 7th first-level one (Su, appendix, Figure 5)."""
FIGURE5_MINUS_EXPONENT = -1 / 4
"""Exponent of g- = base^(-1/4) x, every node (Su, appendix, Figure 5)."""
FIGURE5_NODE7_PLUS_EXPONENT = 3 / 4
"""Exponent of the 7th first-level node's slower g+ = base^(3/4) x (Su, appendix, Figure 5)."""
FIGURE5_INIT_HIGH = 0.01
"""Upper end of the initial amplification factors lambda (and eta) ~ U(0, 0.01) (Su, appendix, Figure 5)."""


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
            a = np.zeros((m, m), np.int8)
            for j in range(K):
                a |= np.outer(sel[l + 1, j], sel[l, j]).astype(np.int8)
            adjs.append(a)
        adjs.append(sel[L - 1].astype(np.int8))  # (K, m): class j -> its last-level nodes
        codes, ks, ok = [], [], True
        for l in range(1, L):
            a = adjs[l - 1]
            under = sel[l - 1].astype(np.int32) @ a.T.astype(np.int32)  # (K, m): firing dependents of each node under class j
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


# ----------------------------------------------------------------------------------------------
# The three-class graphs of Figures 1-2 and of the appendix's worked example
# ----------------------------------------------------------------------------------------------

FIGURES12_TYPES = ("1a", "1b", "2", "3")
"""The input types of :func:`figures12`, in pattern order."""


def figures12_description() -> dict:
    """A four-level, three-class neurashed in the manner of Figures 1 and 2, as a :func:`build`
    description.

    The text shows the figures but not their edges; what it says of them: four levels (three of
    features and the class level), three classes, "the leftmost node in the second level is
    formed by the three leftmost nodes in the first level", class 1 has two types of samples
    (1a, 1b) "with slightly different feature pathways", pathways are "commonly shared at lower
    levels but more distinct at higher levels", and "Class 1 and Class 2 are more similar to each
    other than Class 1 and Class 3". The reading here:

    - First level x1..x10. 1a fires x1-x4, 1b x2-x5, class 2 x4-x7, class 3 x7-x10: 1a and 1b
      share three nodes, class 1 and class 2 one or two, class 2 and class 3 one (x7), class 1
      and class 3 none.
    - Second level: h1 <- x1 x2 x3 (any; 1a, 1b), h2 <- x3 x4 x5 (at least 2; 1a, 1b, 2),
      h3 <- x5 x6 x7 (at least 2; 2), h4 <- x7 x8 x9 x10 (at least 2; 3), h5 <- x1 x2 (all; 1a
      only: the slight difference of 1a and 1b).
    - Third level: g1 <- h1 h2 h5 (at least 2; class 1), g2 <- h2 h3 (all; class 2), g3 <- h4
      (class 3): distinct at the top.
    - Classes: C1 <- g1, C2 <- g2, C3 <- g3.
    """
    edges = {
        "h1": ["x1", "x2", "x3"], "h2": ["x3", "x4", "x5"], "h3": ["x5", "x6", "x7"],
        "h4": ["x7", "x8", "x9", "x10"], "h5": ["x1", "x2"],
        "g1": ["h1", "h2", "h5"], "g2": ["h2", "h3"], "g3": ["h4"],
        "C1": ["g1"], "C2": ["g2"], "C3": ["g3"],
    }
    rules = {"h1": "any", "h2": "at_least:2", "h3": "at_least:2", "h4": "at_least:2", "h5": "all",
             "g1": "at_least:2", "g2": "all", "g3": "any"}
    paths = [
        {"label": "C1", "first": ["x1", "x2", "x3", "x4"], "fires": ["h1", "h2", "h5", "g1"]},
        {"label": "C1", "first": ["x2", "x3", "x4", "x5"], "fires": ["h1", "h2", "g1"]},
        {"label": "C2", "first": ["x4", "x5", "x6", "x7"], "fires": ["h2", "h3", "g2"]},
        {"label": "C3", "first": ["x7", "x8", "x9", "x10"], "fires": ["h4", "g3"]},
    ]
    return {"levels": [[f"x{i}" for i in range(1, 11)], ["h1", "h2", "h3", "h4", "h5"], ["g1", "g2", "g3"], ["C1", "C2", "C3"]],
            "edges": edges, "rules": rules, "pathways": paths}


def figures12() -> Built:
    """The Figures 1-2 graph (see :func:`figures12_description`), built and validated; patterns
    in the order of :data:`FIGURES12_TYPES`, uniform weights."""
    return build(figures12_description())


def appendix_example_description(class3_own: int = 5) -> dict:
    """A three-level, three-class neurashed whose logits are the appendix's worked example.

    The appendix states, for additive rules g+ = x + a, g- = x from zero factors and eta = 1,
    after N1, N2, N3 updates at the three classes: f_1 = a^2 N1 (7 N1 + 5 N2 + 2 N3), f_2 =
    a^2 N2 (5 N1 + 7 N2 + 2 N3), f_3 = 2 a^2 N3 (N1 + N2 + N3) + a N3 f', and 0 off the class
    (f' "the contribution from F"). It does not draw the graph; the one here produces exactly
    those forms: one second-level node per class (firing for its class only, so it counts N_j),
    whose first-level dependents are two nodes firing for every class (s1 s2), three for
    classes 1 and 2 (p1 p2 p3), two of class 1 alone (u1 u2), two of class 2 alone (v1 v2), and
    ``class3_own`` of class 3 alone (w*, whose scores make f' = a N3 class3_own). Each class
    node depends on its class's second-level node.
    """
    first = ["s1", "s2", "p1", "p2", "p3", "u1", "u2", "v1", "v2"] + [f"w{i}" for i in range(1, class3_own + 1)]
    w = [f"w{i}" for i in range(1, class3_own + 1)]
    c1, c2, c3 = ["s1", "s2", "p1", "p2", "p3", "u1", "u2"], ["s1", "s2", "p1", "p2", "p3", "v1", "v2"], ["s1", "s2", *w]
    return {
        "levels": [first, ["h1", "h2", "h3"], ["C1", "C2", "C3"]],
        "edges": {"h1": c1, "h2": c2, "h3": c3, "C1": ["h1"], "C2": ["h2"], "C3": ["h3"]},
        "rules": {"h1": "all", "h2": "all", "h3": "all"},
        "pathways": [{"label": "C1", "first": c1, "fires": ["h1"]}, {"label": "C2", "first": c2, "fires": ["h2"]},
                     {"label": "C3", "first": c3, "fires": ["h3"]}],
    }


def appendix_example(class3_own: int = 5) -> Built:
    """The appendix's worked three-class example as a graph (see :func:`appendix_example_description`)."""
    return build(appendix_example_description(class3_own))


__all__ = [
    "FIGURE5_BASE", "FIGURE5_INIT_HIGH", "FIGURE5_MINUS_EXPONENT", "FIGURE5_NODE7_PLUS_EXPONENT", "FIGURE5_PLUS_EXPONENT",
    "FIGURES12_TYPES", "ORDER_STREAM", "Built", "Family", "GraphError", "PatternSampler", "Patterns", "appendix_example",
    "appendix_example_description", "build", "class_pathway_masks", "figure5", "figure5_description", "figures12",
    "figures12_description", "order_keys", "pathway_family_description", "sampler_data", "stack", "theorem1_family",
    "unstack", "validate",
]
