"""The 8x8 handwritten digits that ship with scikit-learn, as response-law tasks (Nakazato appendix).

The paper's real-image test trains a 2-D conv net on one randomly drawn MNIST image whose label is
drawn at every epoch from p(y) (p0/p1 = 1/5), and reads the training response on other images
against their distance <|x_i - x_j|> (mean absolute pixel difference). Here the images are
``sklearn.datasets.load_digits`` (1797 images of 8x8 pixels, values 0..16, read from the files
installed with scikit-learn: nothing is downloaded), scaled to [0, 1].

Data dictionaries follow :mod:`jaxdyn.tasks.rbe` (``points``, ``weight``, ``p1``, ``group``,
``key``, ``sources``) with image-shaped arrays, plus

    probes          (P + 1, 8, 8)   probe 0 is the training image itself, then P other images
    probe_distance  (P + 1,)        mean |x_o - probe| over pixels (0 for probe 0)
    probe_index     (P + 1,) int32  index of each probe in the digits set
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


@functools.lru_cache(maxsize=1)
def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """The scikit-learn digits: images (1797, 8, 8) float32 in [0, 1] and labels (1797,) int.

    Raises:
        ImportError: when scikit-learn is not installed (``pip install scikit-learn``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the digits task needs scikit-learn (pip install scikit-learn); "
                          "its 8x8 digits ship with the package, nothing is downloaded") from exc
    d = load_digits()
    images = (np.asarray(d.images, np.float32) / 16.0)
    images.setflags(write=False)
    return images, np.asarray(d.target)


def image_distance(a: Array, b: Array) -> Array:
    """Mean absolute pixel difference <|a - b|> over the last two axes; broadcasts. (..., H, W) -> (...)."""
    return jnp.mean(jnp.abs(a - b), axis=(-2, -1))


def single_image(p1: float, num_probes: int, images: np.ndarray | None = None):
    """One training image drawn at random, label y ~ Bernoulli(p1) each step; ``num_probes`` others.

    Args:
        p1: p(y = 1) (the paper's p0/p1 = 1/5 is p1 = 5/6).
        num_probes: other images on which the response is read (drawn without replacement).
        images: (N, H, W) images; default :func:`load_digits_images`.

    Returns:
        ``init(key) -> data`` for :func:`jaxdyn.tasks.rbe.encoder_task`.
    """
    if not 0.0 <= p1 <= 1.0:
        raise ValueError(f"p1 must be a probability in [0, 1], got {p1!r}")
    imgs = load_digits_images()[0] if images is None else np.asarray(images, np.float32)
    n = imgs.shape[0]
    if not 1 <= num_probes < n:
        raise ValueError(f"num_probes must be in [1, {n - 1}], got {num_probes!r}")
    table = jnp.asarray(imgs)

    def init(key):
        k_o, k_p, k_data = jax.random.split(key, 3)
        o = jax.random.randint(k_o, (), 0, n)
        # Other images: a random permutation of the rest (skip o by shifting indices >= o).
        others = jax.random.permutation(k_p, n - 1)[:num_probes]
        others = jnp.where(others >= o, others + 1, others)
        index = jnp.concatenate([o[None], others]).astype(jnp.int32)
        x_o = table[o][None]
        probes = table[index]
        return {
            "points": x_o, "weight": jnp.ones(1), "p1": jnp.full(1, p1, jnp.float32), "group": jnp.zeros(1, jnp.int32),
            "key": jax.random.key_data(k_data), "sources": x_o, "probes": probes,
            "probe_distance": image_distance(probes, x_o), "probe_index": index,
        }

    return init
