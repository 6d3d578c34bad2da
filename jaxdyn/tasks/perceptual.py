"""Saxe's perceptual discrimination stimuli: orientation tuning curves and two-stimulus tasks.

A population of N orientation-tuned neurons with preferred orientations phi_i spread evenly over
[0, 180) deg responds to a grating at orientation theta with a von Mises tuning curve of period
180 deg. Two stimuli theta0 +- delta/2 give the population vectors g+ and g-; the smaller the
orientation difference delta, the finer (higher-precision) the task and the smaller
v = d . g+ = |g+|^2 - g+ . g-. Even spacing makes the population rotation-invariant, so |g+| = |g-|
as the three-layer reduction requires.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def preferred_orientations(num_neurons: int) -> np.ndarray:
    """(N,) preferred orientations in degrees, evenly spaced over [0, 180)."""
    return np.arange(num_neurons) * (180.0 / num_neurons)


def tuning_curve(theta_deg, preferred_deg, kappa: float) -> np.ndarray:
    """Von Mises orientation tuning, exp(kappa (cos(2 (theta - phi)) - 1)), peak 1 at theta = phi.

    Args:
        theta_deg: stimulus orientation(s) in degrees, broadcastable against ``preferred_deg``.
        preferred_deg: preferred orientation(s) in degrees.
        kappa: concentration; larger is narrower tuning.

    Returns:
        Responses with the broadcast shape.
    """
    delta = np.deg2rad(np.asarray(theta_deg, dtype=np.float64) - np.asarray(preferred_deg, dtype=np.float64))
    return np.exp(kappa * (np.cos(2.0 * delta) - 1.0))


class DiscriminationTask(NamedTuple):
    """A two-stimulus discrimination task for the three-layer linear network.

    Attributes:
        g_plus, g_minus: (N,) population responses to the two stimuli, scaled to unit norm.
        d: (N,) g_plus - g_minus.
        v: d . g_plus, the task constant of the alpha/beta ODE (larger for coarser tasks).
        x: (2, 2) one-hot inputs for the two stimuli.
        y: (2, 1) targets +c and -c.
        preferred: (N,) preferred orientations in degrees.
    """

    g_plus: np.ndarray
    g_minus: np.ndarray
    d: np.ndarray
    v: float
    x: np.ndarray
    y: np.ndarray
    preferred: np.ndarray


def discrimination_task(num_neurons: int, delta_deg: float, *, theta0_deg: float = 45.0, kappa: float = 2.0, c: float = 1.0) -> DiscriminationTask:
    """Builds the stimuli of one orientation-discrimination task.

    Args:
        num_neurons: N, hidden (tuning-curve) neurons.
        delta_deg: orientation difference between the two stimuli, in degrees (0, 90].
        theta0_deg: the reference orientation the two stimuli straddle.
        kappa: tuning-curve concentration.
        c: target size; the two stimuli map to +c and -c.

    Returns:
        A :class:`DiscriminationTask` (float64 numpy arrays).
    """
    preferred = preferred_orientations(num_neurons)
    g_plus = tuning_curve(theta0_deg + delta_deg / 2.0, preferred, kappa)
    g_minus = tuning_curve(theta0_deg - delta_deg / 2.0, preferred, kappa)
    # A common unit scale for both (their norms are equal by symmetry of the even spacing).
    scale = np.linalg.norm(g_plus)
    if not scale > 1e-30:
        # Tuning so narrow that no neuron responds: the task is undefined, not a zero vector.
        raise ValueError(f"kappa: tuning curves with kappa={kappa} and {num_neurons} neurons give no response to "
                         f"{theta0_deg + delta_deg / 2.0} deg; use more neurons or a smaller kappa")
    g_plus, g_minus = g_plus / scale, g_minus / scale
    d = g_plus - g_minus
    return DiscriminationTask(
        g_plus=g_plus,
        g_minus=g_minus,
        d=d,
        v=float(d @ g_plus),
        x=np.eye(2),
        y=np.array([[c], [-c]]),
        preferred=preferred,
    )


class ModeTask(NamedTuple):
    """A whitened multi-mode task: x_mu one-hot (Sigma_xx = I), y_mu = Sigma_yx x_mu.

    Attributes:
        x: (n, n) inputs, one per row (the identity).
        y: (n, n_out) targets, row mu = Sigma_yx x_mu.
        U: (n_out, K) output singular vectors of the modes.
        V: (n, K) input singular vectors.
        s: (K,) mode strengths.
        sigma_yx: (n_out, n) input-output correlation U diag(s) V^T.
    """

    x: np.ndarray
    y: np.ndarray
    U: np.ndarray
    V: np.ndarray
    s: np.ndarray
    sigma_yx: np.ndarray


def mode_task(strengths, *, seed: int, dim: int | None = None) -> ModeTask:
    """Builds a task with K input-output modes of strengths s_k (Saxe et al. 2014).

    Sigma_yx = U diag(s) V^T with U, V random orthonormal columns drawn from ``seed``; the
    inputs are the ``dim`` one-hot vectors, so Sigma_xx = sum_mu x_mu x_mu^T = I (whitened).

    Args:
        strengths: (K,) positive mode strengths.
        seed: integer seed of the random singular vectors.
        dim: input and output dimension n >= K; default K.

    Returns:
        A :class:`ModeTask` (float64 numpy arrays).
    """
    s = np.asarray(strengths, dtype=np.float64)
    k = len(s)
    n = k if dim is None else int(dim)
    if n < k:
        raise ValueError(f"dim: must be at least the number of modes ({k}), got {n}")
    rng = np.random.default_rng(seed)
    u_full, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v_full, _ = np.linalg.qr(rng.standard_normal((n, n)))
    U, V = u_full[:, :k], v_full[:, :k]
    sigma_yx = U @ np.diag(s) @ V.T
    x = np.eye(n)
    return ModeTask(x=x, y=x @ sigma_yx.T, U=U, V=V, s=s, sigma_yx=sigma_yx)


def steepest_flank_offset(kappa: float) -> float:
    """Offset (deg) from a neuron's preferred orientation where its tuning curve is steepest.

    For f(x) = exp(kappa (cos 2x - 1)), |f'(x)| = 2 kappa |sin 2x| f(x) is largest where
    cos 2x = (sqrt(1 + 4 kappa^2) - 1) / (2 kappa). A fine discrimination (small delta) changes
    most the neurons whose preferred orientation sits this far from the stimuli (the flanks),
    since g+_i - g-_i ~ delta f'(theta0 - phi_i).
    """
    if not kappa > 0:
        raise ValueError(f"kappa: must be > 0, got {kappa!r}")
    cos2x = (np.sqrt(1.0 + 4.0 * kappa**2) - 1.0) / (2.0 * kappa)
    return float(np.rad2deg(np.arccos(cos2x)) / 2.0)


def orientation_distance(a_deg, b_deg) -> np.ndarray:
    """Distance between orientations in degrees, modulo 180 (in [0, 90]). Broadcastable."""
    d = np.mod(np.asarray(a_deg, dtype=np.float64) - np.asarray(b_deg, dtype=np.float64), 180.0)
    return np.minimum(d, 180.0 - d)


def pooling_profiles(num_positions: int, width: float, *, num_pool: int | None = None) -> np.ndarray:
    """Gaussian spatial pooling profiles c_p, one unit vector per stimulus position.

    Pooling unit k (centre k * (P - 1) / (K - 1), in units of the position spacing) sums the
    input-layer copies at positions p with weight exp(-(p - centre_k)^2 / (2 width^2)); each
    position's profile over pooling units is normalised to unit length, so c_a . c_b is the
    overlap of positions a and b (1 for a = b, smaller the farther apart and the narrower the
    pooling).

    Args:
        num_positions: P stimulus positions.
        width: pooling width (> 0), in units of the position spacing.
        num_pool: K pooling units; default P.

    Returns:
        (P, K) array; row p is c_p.
    """
    if not width > 0:
        raise ValueError(f"width: must be > 0, got {width!r}")
    k = num_positions if num_pool is None else int(num_pool)
    centres = np.linspace(0.0, num_positions - 1.0, k) if k > 1 else np.zeros(1)
    pos = np.arange(num_positions, dtype=np.float64)
    profiles = np.exp(-((pos[:, None] - centres[None, :]) ** 2) / (2.0 * width**2))
    return profiles / np.linalg.norm(profiles, axis=1, keepdims=True)


def position_stimuli(num_positions: int) -> np.ndarray:
    """One-hot inputs of the two stimuli at every position.

    Returns:
        (P, 2, P, 2) array: entry [p, s] is the input (P, 2) for stimulus s (0: +, 1: -) shown at
        position p (one 1 at [p, s], zeros elsewhere).
    """
    x = np.zeros((num_positions, 2, num_positions, 2))
    for p in range(num_positions):
        for s in range(2):
            x[p, s, p, s] = 1.0
    return x
