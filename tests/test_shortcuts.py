"""Shortcut diagnostics of a face set: brightness alone, and a raw-pixel linear classifier by light angle."""

import numpy as np
import pytest

from jaxdyn.analysis import shortcuts


def _set(brightness_step, rng, n=40, size=6):
    identity = np.repeat(np.arange(3), n)
    images = rng.integers(60, 120, (3 * n, size, size)).astype(np.float64)
    images += brightness_step * identity[:, None, None]
    return np.clip(images, 0, 255).astype(np.uint8), identity


def test_brightness_identifies_only_when_an_identity_is_brighter():
    rng = np.random.default_rng(0)
    train, test = np.arange(0, 120, 2), np.arange(1, 120, 2)
    images, identity = _set(60.0, rng)
    assert shortcuts.brightness_identification(images, identity, train, test) == 1.0
    images, identity = _set(0.0, rng)
    assert shortcuts.brightness_identification(images, identity, train, test) < 1 / 3 + 0.2
    # Which identity is the brightest, condition by condition.
    images, identity = _set(60.0, rng)
    condition = np.tile(np.arange(40), 3)
    b = shortcuts.brightest_identity(images, identity, condition)
    assert (b.identity, b.count, b.conditions) == (2, 40, 40)


def test_pixel_probe_and_light_angle_subsets():
    rng = np.random.default_rng(1)
    identity = np.repeat(np.arange(2), 50)
    patterns = rng.standard_normal((2, 64))
    x = patterns[identity] + 0.3 * rng.standard_normal((100, 64))
    train, test = np.arange(0, 100, 2), np.arange(1, 100, 2)
    probe = shortcuts.pixel_linear_probe(x.reshape(100, 8, 8), identity, train, test)
    assert probe.accuracy > 0.95 and probe.correct.shape == (50,)
    noise = rng.standard_normal((100, 8, 8))
    assert shortcuts.pixel_linear_probe(noise, identity, train, test).accuracy < 0.8
    assert shortcuts.light_angle(np.array([0.0, 90.0, 30.0]), np.array([0.0, 0.0, 40.0])) == pytest.approx(
        [0.0, 90.0, np.rad2deg(np.arccos(np.cos(np.deg2rad(30)) * np.cos(np.deg2rad(40))))])
    acc, count = shortcuts.accuracy_by_light_angle(np.array([1, 1, 0, 0, 1], bool), np.array([5.0, 20.0, 60.0, 100.0, 110.0]))
    np.testing.assert_array_equal(count, [1, 1, 0, 1, 2])
    np.testing.assert_allclose(acc, [1.0, 1.0, np.nan, 0.0, 0.5])
    with pytest.raises(ValueError, match="alpha"):
        shortcuts.pixel_linear_probe(noise, identity, train, test, alpha=0.0)
