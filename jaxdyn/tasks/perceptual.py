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
