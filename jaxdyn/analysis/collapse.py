"""Neural collapse of a representation: how much samples of one class still differ (Papyan et al. 2020).

Papyan, Han & Donoho (PNAS 2020) call NC1 the vanishing of within-class variability relative to
the spread of the class means during the terminal phase of training. Its trace form,

    NC1 = tr(Sigma_W) / tr(Sigma_B),
    Sigma_W = E_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T,   Sigma_B = E_k (mu_k - mu)(mu_k - mu)^T,

is invariant to rescaling the representation, so it can follow representations whose scale
grows by orders of magnitude (neurashed's scores).
"""

from __future__ import annotations

import numpy as np


def within_class_variability(h: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """NC1 = tr(Sigma_W) / tr(Sigma_B) of representations ``h`` (..., N, d) with classes ``labels`` (N,).

    Args:
        h: (..., N, d) representations of N samples (leading axes: seeds, times).
        labels: (N,) class of each sample (at least two classes).
        weights: (N,) sample probabilities (default uniform).

    Returns:
        (...,) the ratio; NaN where the class means coincide (tr Sigma_B = 0).
    """
    h = np.asarray(h, np.float64)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if classes.size < 2:
        raise ValueError(f"labels: need at least two classes, got {classes.tolist()}")
    w = np.full(labels.shape, 1.0 / labels.size) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    # Scale each slice by its largest entry first: the ratio is scale invariant and this keeps
    # the squares finite for scores near the float64 range.
    scale = np.max(np.abs(h), axis=(-2, -1), keepdims=True)
    h = h / np.where(scale > 0, scale, 1.0)
    mu = np.einsum("n,...nd->...d", w, h)
    within = np.zeros(h.shape[:-2])
    between = np.zeros(h.shape[:-2])
    for k in classes:
        m = labels == k
        pk = w[m].sum()
        mu_k = np.einsum("n,...nd->...d", w[m] / pk, h[..., m, :])
        within += np.einsum("n,...n->...", w[m], np.sum((h[..., m, :] - mu_k[..., None, :]) ** 2, -1))
        between += pk * np.sum((mu_k - mu) ** 2, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(between > 0, within / between, np.nan)
