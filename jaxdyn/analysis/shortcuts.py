"""Shortcut diagnostics of an image classification task: what a trivial reader of the pixels gets.

A task is only evidence about a deep net's feature construction if it cannot be solved without
features. For dense-sample faces, Yale B's images are dominated by the lighting (Georghiades,
Belhumeur & Kriegman 2001: a linear subspace classifier on raw pixels degrades as the light moves
away from the camera axis, with error rates rising sharply beyond about 50 degrees), so two cheap
readers bound how easy a face set is:

* :func:`brightness_identification`: the identity predicted from an image's mean brightness
  alone (the nearest training class mean of the mean brightness); near chance (1 / K) when no
  identity is simply brighter than the others. :func:`brightest_identity` counts, per (pose,
  light) condition, which identity is the brightest.
* :func:`pixel_linear_probe`: a ridge classifier (scikit-learn's ``RidgeClassifier``,
  one-vs-rest least squares with an L2 penalty) on the raw pixels, fitted on the training split
  and scored on the test split, overall and by the light's angle from the camera axis
  (:func:`accuracy_by_light_angle`, Georghiades et al.'s subsets 0-12, 13-25, 26-50, 51-77 and
  over 77 degrees).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

#: Upper edges (degrees) of the light-angle subsets of Georghiades et al. (2001), Yale B.
LIGHT_ANGLE_EDGES = (12.0, 25.0, 50.0, 77.0, 180.0)


def light_angle(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """Angle (degrees) between the light and the camera axis, arccos(cos az cos el); (N,)."""
    a, e = np.deg2rad(np.asarray(azimuth, np.float64)), np.deg2rad(np.asarray(elevation, np.float64))
    return np.rad2deg(np.arccos(np.clip(np.cos(a) * np.cos(e), -1.0, 1.0)))


def brightness_identification(images: np.ndarray, identity: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Test accuracy of predicting the identity from the mean brightness of an image alone.

    Each test image gets the identity whose training images' mean brightness is nearest to its
    own (a 1-D nearest-class-mean classifier).

    Args:
        images: (N, H, W) images.
        identity: (N,) labels 0..K-1.
        train, test: index arrays of the split.

    Returns:
        The accuracy in [0, 1].
    """
    b = np.asarray(images, np.float64).reshape(len(images), -1).mean(1)
    identity = np.asarray(identity)
    classes = np.unique(identity[train])
    means = np.array([b[train][identity[train] == k].mean() for k in classes])
    pred = classes[np.argmin(np.abs(b[test][:, None] - means[None, :]), axis=1)]
    return float(np.mean(pred == identity[test]))


class Brightest(NamedTuple):
    """Which identity is the brightest, condition by condition.

    Attributes:
        identity: the identity most often the brightest.
        count: in how many conditions it is.
        conditions: the number of (pose, light) conditions compared.
    """

    identity: int
    count: int
    conditions: int


def brightest_identity(images: np.ndarray, identity: np.ndarray, condition: np.ndarray) -> Brightest:
    """Per condition (e.g. a (pose, light) code), the identity with the largest mean brightness;
    returns the identity that wins most often and how often (only conditions every identity has).
    """
    b = np.asarray(images, np.float64).reshape(len(images), -1).mean(1)
    identity, condition = np.asarray(identity), np.asarray(condition)
    k = int(identity.max()) + 1
    wins = np.zeros(k, int)
    n = 0
    for c in np.unique(condition):
        here = condition == c
        if len(np.unique(identity[here])) < k:
            continue
        per = np.array([b[here & (identity == i)].mean() for i in range(k)])
        wins[int(np.argmax(per))] += 1
        n += 1
    best = int(np.argmax(wins))
    return Brightest(identity=best, count=int(wins[best]), conditions=n)


class LinearProbe(NamedTuple):
    """A raw-pixel linear classifier on a train/test split.

    Attributes:
        accuracy: test accuracy.
        correct: (n_test,) bool, per test exemplar.
        alpha: the ridge penalty used.
    """

    accuracy: float
    correct: np.ndarray
    alpha: float


def pixel_linear_probe(images: np.ndarray, identity: np.ndarray, train: np.ndarray, test: np.ndarray,
                       alpha: float = 1.0) -> LinearProbe:
    """A ridge classifier on the raw pixels (scaled to 0..1), fitted on ``train``, scored on ``test``.

    Args:
        images: (N, H, W) images.
        identity: (N,) labels.
        train, test: index arrays.
        alpha: the L2 penalty (scikit-learn's ``alpha``).

    Returns:
        :class:`LinearProbe`.
    """
    from sklearn.linear_model import RidgeClassifier

    if not alpha > 0:
        raise ValueError(f"alpha: expected a positive penalty, got {alpha!r}")
    x = np.asarray(images, np.float64).reshape(len(images), -1)
    if np.asarray(images).dtype == np.uint8:
        x = x / 255.0
    identity = np.asarray(identity)
    model = RidgeClassifier(alpha=alpha).fit(x[train], identity[train])
    correct = model.predict(x[test]) == identity[test]
    return LinearProbe(accuracy=float(np.mean(correct)), correct=correct, alpha=float(alpha))


def accuracy_by_light_angle(correct: np.ndarray, angle: np.ndarray, edges=LIGHT_ANGLE_EDGES) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy within light-angle subsets.

    Args:
        correct: (n,) bool.
        angle: (n,) light angle from the camera axis in degrees (:func:`light_angle`).
        edges: upper edges of the subsets (the first subset starts at 0).

    Returns:
        (accuracy (len(edges),), count (len(edges),)); NaN accuracy for an empty subset.
    """
    correct, angle = np.asarray(correct, bool), np.asarray(angle, np.float64)
    lo = -math.inf
    acc, count = [], []
    for hi in edges:
        here = (angle > lo) & (angle <= hi)
        count.append(int(here.sum()))
        acc.append(float(correct[here].mean()) if here.any() else math.nan)
        lo = hi
    return np.asarray(acc), np.asarray(count)
