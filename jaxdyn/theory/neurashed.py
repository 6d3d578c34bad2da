"""Neurashed's closed forms: Theorems 1 and 2, the appendix's worked example, the multiplicative
rules' lambda(t) (Su, arXiv 2112.09741, section 3 and the appendix).

Everything here is numpy on host arrays (float64): the model itself (graphs, scores, Algorithm 1)
is :mod:`jaxdyn.models.neurashed`, the graphs and their families :mod:`jaxdyn.tasks.neurashed`.

- :func:`theorem1_expansion`: the appendix's leading-order Delta Z_j after one update at class j,
  ``(c(t+1)b2 + c(Kt+1)b1)^L - (ctb2 + cKtb1)^L``, over its class-j' counterpart, from the
  actual per-class counts; :func:`theorem1_limit` its t -> infinity limit (b1 + b2)/b1
  (Theorem 1); :func:`theorem2_ratio` the same ratio at given (t, L) pairs (Theorem 2's regimes).
- :func:`level_sum_logits`: Z_j = prod_levels sum_{F in class j's pathway} lambda_F, which is
  what (2.1) gives on the Theorem 1 family with eta = 1 (an identity of the model: Z is a
  product of level sums); the expansion is this identity at lambda = c * counts.
- :func:`appendix_logits`, :func:`appendix_update`: the worked three-class example, f_1 =
  a^2 N1 (7 N1 + 5 N2 + 2 N3) and its companions, and the changes after one update at C1.
- :func:`multiplicative_lambda`, :func:`firing_probability`, :func:`expected_lambda`: lambda_F(t)
  = lambda_F(0) a+^k_F a-^(t - k_F) of multiplicative rules, with k_F counted or expected under
  a sampling scheme (the theory line of implicit regularisation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def theorem1_limit(b1: float, b2: float) -> float:
    """Theorem 1's limit (b1 + b2) / b1 of Delta Z_j / Delta Z_j'."""
    return (float(b1) + float(b2)) / float(b1)


def _log_delta(x: np.ndarray, d: float, L: np.ndarray) -> np.ndarray:
    # log((X + d)^L - X^L) = L log X + log(expm1(L log1p(d / X))): no overflow for large L.
    return L * np.log(x) + np.log(np.expm1(L * np.log1p(d / x)))


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
    L = float(num_levels)
    x_own = c * counts[..., cls:cls + 1] * b2 + c * N * b1
    x_other = c * counts * b2 + c * N * b1
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.exp(_log_delta(x_own, c * (b1 + b2), L) - _log_delta(x_other, c * b1, L))
    ratio = np.where(N > 0, ratio, np.nan)  # before any update the expansion is undefined
    ratio[..., cls] = np.nan
    return ratio


def theorem2_ratio(t: np.ndarray, num_levels: np.ndarray, *, b1: int, b2: int, num_classes: int) -> np.ndarray:
    """The expansion's ratio after t updates at every class (equal counts), for (t, L) pairs.

    ``((X + c(b1 + b2))^L - X^L) / ((X + c b1)^L - X^L)`` with X = c t (b2 + K b1); c cancels.
    At fixed L it tends to (b1 + b2)/b1 as t grows (Theorem 1); it grows without bound when
    L / t -> infinity (the ratio is about exp(L b2 / (t (b2 + K b1)))); along L = r t it tends to
    the finite :func:`theorem2_limit_proportional` (r).

    Args:
        t, num_levels: broadcastable arrays of epochs (t >= 1) and levels L >= 1.

    Returns:
        The ratio, float64, broadcast shape.
    """
    t = np.asarray(t, np.float64)
    L = np.asarray(num_levels, np.float64)
    x = t * (b2 + num_classes * b1)
    return np.exp(_log_delta(x, b1 + b2, L) - _log_delta(x, b1, L))


def theorem2_limit_proportional(r: float, *, b1: int, b2: int, num_classes: int) -> float:
    """lim_{t -> inf} of :func:`theorem2_ratio` along L = r t (r > 0): finite.

    With X = t s, s = b2 + K b1: (X + d)^L - X^L ~ X^L (e^{r d / s} - 1), so the ratio tends to
    (e^{r (b1 + b2) / s} - 1) / (e^{r b1 / s} - 1), which exceeds (b1 + b2)/b1 but stays finite:
    L proportional to t is not "L growing sufficiently quickly".
    """
    s = b2 + num_classes * b1
    return float(np.expm1(r * (b1 + b2) / s) / np.expm1(r * b1 / s))


def level_sum_logits(lam: Sequence[np.ndarray], selected: np.ndarray) -> np.ndarray:
    """Z_j(x_j) = prod_l sum_{F selected by class j at level l} lambda_F (eta = 1).

    Args:
        lam: L arrays (..., m): the amplification factors of the L levels (seed axes allowed).
        selected: (L, K, m) bool, class j's pathway at level l.

    Returns:
        (..., K) the logits of each class on its own input.
    """
    out = None
    for level, lam_l in enumerate(lam):
        s = np.einsum("...m,km->...k", np.asarray(lam_l, np.float64), np.asarray(selected[level], np.float64))
        out = s if out is None else out * s
    return out


def appendix_logits(n1, n2, n3, *, a: float, class3_own: int = 5) -> np.ndarray:
    """The appendix's worked example: (..., 3) f_j on class j's own input after N1, N2, N3 updates.

    f_1 = a^2 N1 (7 N1 + 5 N2 + 2 N3); f_2 = a^2 N2 (5 N1 + 7 N2 + 2 N3); f_3 = 2 a^2 N3 (N1 + N2 +
    N3) + a N3 f', with f' = a N3 ``class3_own`` the contribution of class 3's own first-level
    nodes in :func:`jaxdyn.tasks.neurashed.appendix_example`.
    """
    n1, n2, n3 = (np.asarray(n, np.float64) for n in (n1, n2, n3))
    f1 = a**2 * n1 * (7 * n1 + 5 * n2 + 2 * n3)
    f2 = a**2 * n2 * (5 * n1 + 7 * n2 + 2 * n3)
    f3 = 2 * a**2 * n3 * (n1 + n2 + n3) + a * n3 * (a * n3 * class3_own)
    return np.stack(np.broadcast_arrays(f1, f2, f3), -1)


def appendix_update(n1, n2, n3, *, a: float) -> np.ndarray:
    """(..., 3) the appendix's changes of f_1, f_2, f_3 after one more update at class C1:
    7 a^2 N1 + a^2 (7 N1 + 5 N2 + 2 N3 + 7), 5 a^2 N2 and 2 a^2 N3 (as the text writes them)."""
    n1, n2, n3 = (np.asarray(n, np.float64) for n in (n1, n2, n3))
    d1 = 7 * a**2 * n1 + a**2 * (7 * n1 + 5 * n2 + 2 * n3 + 7)
    return np.stack(np.broadcast_arrays(d1, 5 * a**2 * n2, 2 * a**2 * n3), -1)


def multiplicative_lambda(lam0: np.ndarray, fired: np.ndarray, steps: int, plus: np.ndarray, minus: float) -> np.ndarray:
    """lambda(t) = lambda(0) a+^k a-^(t - k) of multiplicative rules, k = ``fired`` updates in G."""
    k = np.asarray(fired, np.float64)
    return np.asarray(lam0, np.float64) * np.exp(k * np.log(plus) + (steps - k) * np.log(minus))


def firing_probability(types_firing: np.ndarray, num_types: int, batch_size: int, sampling: str) -> np.ndarray:
    """P(a node is in a batch's union of pathways) when ``types_firing`` of the ``num_types``
    equally likely input types fire it: epoch sampling (B distinct types) 1 - C(P - n, B) / C(P, B);
    iid sampling (B draws with replacement) 1 - (1 - n / P)^B."""
    n = np.asarray(types_firing)
    if sampling == "epoch":
        return 1.0 - np.vectorize(lambda v: math.comb(num_types - int(v), batch_size))(n) / math.comb(num_types, batch_size)
    if sampling == "iid":
        return 1.0 - (1.0 - n / num_types) ** batch_size
    raise ValueError(f"sampling: must be 'iid' or 'epoch', got {sampling!r}")


def expected_lambda(lam0: np.ndarray, types_firing: np.ndarray, *, num_types: int, batch_size: int, steps: int,
                    plus: np.ndarray, minus: float, sampling: str) -> np.ndarray:
    """lambda(0) a+^E[k] a-^(t - E[k]) with E[k] = t P(node in the batch's union): the mean-count
    theory line of multiplicative rules (exact at B = 1 and full batch under epoch sampling at
    epoch ends, where k is deterministic)."""
    k = steps * firing_probability(types_firing, num_types, batch_size, sampling)
    return multiplicative_lambda(lam0, k, steps, plus, minus)


__all__ = [
    "appendix_logits", "appendix_update", "expected_lambda", "firing_probability", "level_sum_logits",
    "multiplicative_lambda", "theorem1_expansion", "theorem1_limit", "theorem2_limit_proportional", "theorem2_ratio",
]
