"""PCA of a hidden layer over training: the PCA timeline, 2-D projections, and when each class separates.

Hanson et al. (2023) run a PCA of the last hidden layer (1024 units) over all classes and
exemplars at every epoch: the variance of the leading components over epochs (their "PCA
timeline", Figures 13 and 16) spikes at the phase transition, and the 2-D projections show one
identity separating first (epoch 22) and the others by epochs 26-30 (Figures 9, 10, 14).

Definitions used here:

* PCA at epoch t: the eigen-decomposition of the covariance of the (N, D) activations H_t
  (rows centred), computed by SVD: variance_j = s_j^2 / (N - 1). The timeline is
  variance_j(t) for the leading j, and explained_j(t) = variance_j / total variance. The
  absolute variance grows with the activations' scale (which training changes), so a "spike"
  is read on the share explained_j, which does not.
* :func:`device_pca` computes the leading components with jax.numpy inside the engine's scan
  (all exemplars at every epoch, without recording the (N, D) activations).
* Projections: each epoch's scores on its own first PCs; the sign of each PC is chosen to agree
  with the previous epoch (correlation of scores > 0) so the scatter does not flip.
* Separation of identity k at epoch t, by one of two scores computed in the space of the first
  ``dims`` PCs of epoch t (``dims=None``: all D units). The silhouette: the mean over k's points
  of

      s_i = (b_i - a_i) / max(a_i, b_i),

  a_i the mean Euclidean distance from point i to the other points of its identity, b_i the
  smallest mean distance to the points of another identity; s ranges over [-1, 1]: near 0 when
  k overlaps another identity, near 1 when k is a tight cluster far from every other. Or the
  linear separability: the balanced accuracy of Fisher's one-vs-rest discriminant (1: a
  hyperplane splits k from the rest). Identity k *separates* at the first epoch from which its
  score stays >= ``threshold`` for ``persist`` consecutive records.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class PCA(NamedTuple):
    """PCA of one (N, D) matrix.

    Attributes:
        variance: (r,) variance along each PC, descending (r = min(N - 1, D)).
        explained: (r,) variance / total variance.
        components: (r, D) unit PC directions.
        scores: (N, r) centred data projected on the PCs.
        mean: (D,) column means.
        total: total variance (trace of the covariance).
    """

    variance: np.ndarray
    explained: np.ndarray
    components: np.ndarray
    scores: np.ndarray
    mean: np.ndarray
    total: float


def pca(x: np.ndarray) -> PCA:
    """PCA of ``x`` (N, D) by SVD of the centred rows; variances use N - 1."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x: expected (N, D) with N >= 2, got shape {x.shape}")
    mean = x.mean(0)
    xc = x - mean
    n, d = x.shape
    r = min(n - 1, d)
    if n <= d:
        # Few examples, many units (the probe set): eigendecomposition of the (N, N) Gram
        # matrix, Xc Xc^T = U S^2 U^T, is much cheaper than the SVD of Xc.
        evals, u = np.linalg.eigh(xc @ xc.T)
        order = np.argsort(evals)[::-1][:r]
        s = np.sqrt(np.clip(evals[order], 0.0, None))
        u = u[:, order]
        safe = np.where(s > 1e-12 * max(s.max(initial=0.0), 1e-300), s, np.inf)
        vt = (xc.T @ u / safe).T
    else:
        u, s, vt = np.linalg.svd(xc, full_matrices=False)
        u, s, vt = u[:, :r], s[:r], vt[:r]
    var = s**2 / (n - 1)
    total = float(np.sum(xc**2) / (n - 1))
    explained = var / total if total > 0 else np.zeros_like(var)
    return PCA(variance=var, explained=explained, components=vt, scores=u * s, mean=mean, total=total)


def device_pca(h: jax.Array, num_components: int, *, block: int | None = None, iterations: int = 12) -> dict[str, jax.Array]:
    """The leading PCs of (N, D) activations with jax.numpy, inside a jit (and a vmap).

    A full eigendecomposition of the (D, D) covariance every epoch would cost seconds per member
    on a CPU; only the leading C components are needed, so they are found by block subspace
    iteration (Halko, Martinsson & Tropp 2011, Algorithm 4.4): Q = qr(Xc Omega), then
    ``iterations`` times Q = qr(Xc qr(Xc^T Q)), with a fixed Gaussian start Omega (D, b), b =
    ``block`` (default 3 C) columns; then the exact SVD of the small Q^T Xc. The error of the
    j-th variance falls as (s_{b+1} / s_j)^(4 iterations); the total variance is exact. With
    the fixed start the result is deterministic (bitwise reproducible).

    Args:
        h: (N, D) activations.
        num_components: C leading PCs returned (C <= min(N - 1, D)).
        block: the subspace's width b >= C (default min(3 C, N, D)).
        iterations: subspace iterations.

    Returns:
        ``{"variance": (C,), "total": (), "scores": (N, C)}``: variance along each leading PC
        (descending, divided by N - 1), the total variance (trace of the covariance), and the
        centred rows projected on the leading PCs, each PC's sign chosen so that
        sum_i s_i |s_i| > 0 (align them over time on the host, :func:`align_signs`).
    """
    n, d = h.shape
    if not 1 <= num_components <= min(n - 1, d):
        raise ValueError(f"num_components: expected 1..{min(n - 1, d)} for activations of shape {h.shape}, got {num_components}")
    b = min(3 * num_components, n, d) if block is None else int(block)
    if not num_components <= b <= min(n, d):
        raise ValueError(f"block: expected {num_components}..{min(n, d)}, got {block}")
    hp = jax.lax.Precision.HIGHEST
    x = jnp.asarray(h, jnp.float32)
    xc = x - jnp.mean(x, axis=0)
    total = jnp.sum(xc * xc) / (n - 1)
    omega = jax.random.normal(jax.random.key(0x9CA), (d, b), jnp.float32)
    q, _ = jnp.linalg.qr(jnp.matmul(xc, omega, precision=hp))

    def power(q, _):
        z, _ = jnp.linalg.qr(jnp.matmul(xc.T, q, precision=hp))
        q, _ = jnp.linalg.qr(jnp.matmul(xc, z, precision=hp))
        return q, None

    q, _ = jax.lax.scan(power, q, None, length=iterations)
    small = jnp.matmul(q.T, xc, precision=hp)  # (b, D): Xc ~ Q small
    # An SVD, not eigh: on XLA:CPU (jax 0.10.2) a LAPACK syevd call running beside the conv
    # forward passes of other observables hung the program (measured); gesdd did not.
    u, sv, _ = jnp.linalg.svd(small, full_matrices=False)  # descending
    u, sv = u[:, :num_components], sv[:num_components]
    scores = jnp.matmul(q, u, precision=hp) * sv
    # A sign convention (each PC's scores weighted towards positive: sum s |s| > 0), so that
    # runs whose float rounding differs do not return opposite signs of the same component.
    sign = jnp.where(jnp.sum(scores * jnp.abs(scores), axis=0) < 0, -1.0, 1.0)
    return {"variance": sv * sv / (n - 1), "total": total, "scores": scores * sign}


def align_signs(scores: np.ndarray) -> np.ndarray:
    """(T, N, C) scores with each PC's sign flipped where it anticorrelates with the previous
    record's (so a scatter over epochs does not flip); the first record is kept."""
    out = np.array(scores, np.float64, copy=True)
    for t in range(1, out.shape[0]):
        flip = np.sum(out[t] * out[t - 1], axis=0) < 0
        out[t, :, flip] *= -1.0
    return out


def spike_ratio(share: np.ndarray) -> tuple[float, int]:
    """(peak / final, epoch index of the peak) of a share-of-variance curve (T,).

    A ratio well above 1 is a spike: the component took a larger share of the variance at some
    epoch than it keeps at the end. Read it on the share explained_j, never the absolute
    variance (which grows with the activation scale).
    """
    share = np.asarray(share, np.float64)
    i = int(np.nanargmax(share))
    final = share[-1]
    return (float(share[i] / final) if final > 0 else float("inf")), i


class PCATimeline(NamedTuple):
    """PCA at every recorded epoch.

    Attributes:
        variance: (T, C) variance of the leading C PCs at each epoch.
        explained: (T, C) fraction of the total variance.
        total: (T,) total variance.
        projections: (T, N, dims) scores on the first ``dims`` PCs, signs aligned over time.
    """

    variance: np.ndarray
    explained: np.ndarray
    total: np.ndarray
    projections: np.ndarray


def pca_timeline(features: np.ndarray, num_components: int = 10, dims: int = 2) -> PCATimeline:
    """PCA of the activations at each epoch.

    Args:
        features: (T, N, D) activations of N probe examples at T epochs.
        num_components: C leading PCs kept in the timeline (padded with 0 if fewer exist).
        dims: number of PCs in ``projections``.

    Returns:
        :class:`PCATimeline`.
    """
    features = np.asarray(features)
    if features.ndim != 3:
        raise ValueError(f"features: expected (T, N, D), got shape {features.shape}")
    t_len, n, _ = features.shape
    var = np.zeros((t_len, num_components))
    exp = np.zeros((t_len, num_components))
    total = np.zeros(t_len)
    proj = np.zeros((t_len, n, dims))
    prev = None
    for t in range(t_len):
        p = pca(features[t])
        c = min(num_components, p.variance.size)
        var[t, :c], exp[t, :c], total[t] = p.variance[:c], p.explained[:c], p.total
        d = min(dims, p.scores.shape[1])
        sc = p.scores[:, :d].copy()
        if prev is not None:
            for j in range(d):
                if np.dot(sc[:, j], prev[:, j]) < 0:
                    sc[:, j] = -sc[:, j]
        proj[t, :, :d] = sc
        prev = proj[t]
    return PCATimeline(variance=var, explained=exp, total=total, projections=proj)


def silhouette_per_class(x: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Mean silhouette of each class's points (Euclidean distances).

    Args:
        x: (N, d) points.
        labels: (N,) ints in 0..K-1; each class needs >= 2 points and there must be >= 2 classes.

    Returns:
        (K,) mean over each class's points of s_i = (b_i - a_i) / max(a_i, b_i); 0 for points
        whose a_i = b_i = 0 (all coincide).
    """
    x = np.asarray(x, np.float64)
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    counts = np.bincount(labels, minlength=k)
    if (counts < 2).any() or k < 2:
        raise ValueError(f"labels: every class needs >= 2 points and >= 2 classes, got counts {counts.tolist()}")
    sq = np.sum(x**2, 1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0))
    onehot = np.eye(k)[labels]  # (N, K)
    sums = dist @ onehot  # (N, K): summed distance to each class
    own = labels
    a = sums[np.arange(len(x)), own] / (counts[own] - 1)
    mean_other = sums / counts[None, :]
    mean_other[np.arange(len(x)), own] = np.inf
    b = mean_other.min(1)
    denom = np.maximum(a, b)
    s = np.where(denom > 0, (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    return np.bincount(labels, weights=s, minlength=k) / counts


def linear_separability(x: np.ndarray, labels: np.ndarray, num_classes: int | None = None,
                        ridge: float = 1e-6) -> np.ndarray:
    """One-vs-rest linear separability of each class: the balanced accuracy of Fisher's discriminant.

    For class k: w = (S_w + ridge tr(S_w)/d I)^-1 (mu_k - mu_rest), with S_w the pooled
    within-group covariance of {k, rest}; the points are projected on w and the threshold with
    the best balanced accuracy 0.5 (TPR + TNR) is taken. 1.0 means a hyperplane separates k
    from every other class; about 0.5 means no linear direction does. Meaningful when N >> d
    (with N <= d + 1 any labelling is separable), so use it in a few PCs.

    Args:
        x: (N, d) points.
        labels: (N,) ints in 0..K-1.

    Returns:
        (K,) balanced accuracies in [0.5, 1].
    """
    x = np.asarray(x, np.float64)
    labels = np.asarray(labels)
    k_all = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    d = x.shape[1]
    out = np.zeros(k_all)
    for k in range(k_all):
        pos = labels == k
        if pos.all() or not pos.any():
            raise ValueError(f"labels: class {k} must have members and non-members")
        mu1, mu0 = x[pos].mean(0), x[~pos].mean(0)
        xc = np.where(pos[:, None], x - mu1, x - mu0)
        sw = xc.T @ xc / len(x)
        sw = sw + (ridge * np.trace(sw) / d + 1e-300) * np.eye(d)
        proj = x @ np.linalg.solve(sw, mu1 - mu0)
        # Balanced accuracy of "proj > threshold" for every threshold between sorted values.
        order = np.argsort(proj, kind="stable")
        is_pos = pos[order].astype(float)
        n_pos, n_neg = is_pos.sum(), (1 - is_pos).sum()
        neg_below = np.concatenate([[0.0], np.cumsum(1 - is_pos)])  # negatives at or below each cut
        pos_above = n_pos - np.concatenate([[0.0], np.cumsum(is_pos)])
        valid = np.concatenate([[True], np.diff(proj[order]) > 0, [True]])  # cuts between distinct values
        bal = 0.5 * (pos_above / n_pos + neg_below / n_neg)
        out[k] = float(np.max(bal[valid]))
    return out


def separation_scores(features: np.ndarray, labels: np.ndarray, dims: int | None = 2,
                      metric: str = "silhouette") -> np.ndarray:
    """Per-class separation score at each epoch, in the first ``dims`` PCs of that epoch.

    Args:
        features: (T, N, D) activations.
        labels: (N,) class of each probe example.
        dims: PCs to keep (None: the full D-dimensional space).
        metric: ``'silhouette'`` (:func:`silhouette_per_class`) or ``'linear'``
            (:func:`linear_separability`).

    Returns:
        (T, K) scores.
    """
    if metric not in ("silhouette", "linear"):
        raise ValueError(f"metric: expected silhouette or linear, got {metric!r}")
    score = silhouette_per_class if metric == "silhouette" else linear_separability
    features = np.asarray(features, np.float64)
    out = []
    for h in features:
        x = h if dims is None else pca(h).scores[:, :dims]
        out.append(score(x, labels))
    return np.stack(out)


def first_separation(scores: np.ndarray, times: np.ndarray, threshold: float = 0.5, persist: int = 3) -> np.ndarray:
    """The time each class first separates: ``scores`` >= threshold for ``persist`` records in a row.

    Args:
        scores: (T, K) separation scores (e.g. :func:`separation_scores`).
        times: (T,) the record times (epochs).
        threshold: the separation level.
        persist: consecutive records required (a run cut by the end of training counts if it
            reaches the last record).

    Returns:
        (K,) float times; NaN for a class that never separates.
    """
    scores = np.asarray(scores)
    times = np.asarray(times, np.float64)
    above = scores >= threshold
    t_len, k = above.shape
    out = np.full(k, np.nan)
    for c in range(k):
        for t in range(t_len):
            window = above[t:t + persist, c]
            if window.all():
                out[c] = times[t]
                break
    return out
