"""Handwritten digits as response-law tasks (Nakazato appendix): scikit-learn's 8x8 set, or a local MNIST.

The paper's real-image test trains a 2-D conv net on one randomly drawn MNIST image whose label is
drawn at every epoch from p(y) (p0/p1 = 1/5), and reads the training response on other images
against their distance <|x_i - x_j|> (mean absolute pixel difference). Here the images are
``sklearn.datasets.load_digits`` (1797 images of 8x8 pixels, values 0..16, read from the files
installed with scikit-learn: nothing is downloaded), scaled to [0, 1]. The paper's own images,
MNIST, are read from a local copy of its idx files by :func:`load_mnist_idx` (uint8) or
:func:`load_mnist_images` (the same form as :func:`load_digits_images`); nothing is downloaded.

Data dictionaries follow :mod:`jaxdyn.tasks.rbe` (``points``, ``weight``, ``p1``, ``group``,
``key``, ``sources``) with image-shaped arrays, plus

    probes          (P + 1, 8, 8)   probe 0 is the training image itself, then P other images
    probe_distance  (P + 1,)        mean |x_o - probe| over pixels (0 for probe 0)
    probe_index     (P + 1,) int32  index of each probe in the digits set
"""

from __future__ import annotations

import functools
import gzip
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
"""A JAX array (alias of ``jax.Array``)."""


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


MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""MNIST's idx files (LeCun et al.): ``{split: (images stem, labels stem)}``, the names
:func:`load_mnist_idx` looks for (also with ``.gz`` and with ``.idx`` for ``-idx``)."""
IDX_IMAGES_MAGIC = 0x00000803
"""The magic number an MNIST images file must carry: unsigned bytes, 3 dimensions (N, rows, columns)."""
IDX_LABELS_MAGIC = 0x00000801
"""The magic number an MNIST labels file must carry: unsigned bytes, 1 dimension (N,)."""
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> tuple[int, np.ndarray]:
    """Reads one idx file (``.gz`` compressed or not).

    The format: a 4-byte big-endian magic number (two zero bytes, a type code -- 0x08 for
    unsigned bytes -- and the number of dimensions), one 4-byte big-endian size per dimension,
    then the data in C order, and nothing after it.

    Returns:
        (magic, array of the stored shape and type).

    Raises:
        ValueError: naming the file, when it cannot be read or its header, sizes or length do not
            match.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read the idx file ({exc})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated idx header ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or code not in _IDX_DTYPES or ndim < 1:
        raise ValueError(f"{path}: bad idx magic number 0x{magic:08x} (expected 0x0000TTDD: type TT in "
                         f"{sorted(f'0x{c:02x}' for c in _IDX_DTYPES)}, DD >= 1 dimensions)")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ValueError(f"{path}: truncated idx header ({len(raw)} bytes for {ndim} dimensions)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    need = math.prod(dims) * dtype.itemsize
    if len(raw) - head != need:
        what = "truncated" if len(raw) - head < need else "trailing bytes in"
        raise ValueError(f"{path}: {what} idx data: {len(raw) - head} bytes for shape {dims} of {dtype.name} "
                         f"(need {need})")
    return magic, np.frombuffer(raw, dtype=dtype, offset=head).reshape(dims)


def _mnist_file(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (root / name).is_file():
            return root / name
    raise ValueError(f"root: no {stem} (or {stem}.gz) in {root}")


def load_mnist_idx(root: str | Path, split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from its idx files in ``root``: ``{split}-images-idx3-ubyte`` and ``{split}-labels-idx1-ubyte``.

    Either file may be gzip-compressed (``.gz``), as distributed; the images must be 28 x 28
    unsigned bytes (magic 0x00000803), the labels unsigned bytes in 0..9 (magic 0x00000801),
    as many as the images.

    Args:
        root: the folder holding the files.
        split: ``'train'`` (60,000 images) or ``'t10k'`` (10,000).
        limit: keep the first ``limit`` images (default all).

    Returns:
        (images (N, 28, 28) uint8, labels (N,) int64).

    Raises:
        ValueError: naming the file on a missing file or any mismatch of magic number, sizes,
            length or label range; naming the argument for a bad ``split`` or ``limit``.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split: expected one of {sorted(MNIST_FILES)}, got {split!r}")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit: expected a positive int or None, got {limit!r}")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root: {root} is not a directory")
    image_path, label_path = (_mnist_file(root, stem) for stem in MNIST_FILES[split])
    magic, images = read_idx(image_path)
    if magic != IDX_IMAGES_MAGIC or images.shape[1:] != (28, 28):
        raise ValueError(f"{image_path}: expected MNIST images (magic 0x{IDX_IMAGES_MAGIC:08x}, shape (N, 28, 28)), "
                         f"got magic 0x{magic:08x}, shape {images.shape}")
    magic, labels = read_idx(label_path)
    if magic != IDX_LABELS_MAGIC:
        raise ValueError(f"{label_path}: expected MNIST labels (magic 0x{IDX_LABELS_MAGIC:08x}), got magic 0x{magic:08x}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{label_path}: {labels.shape[0]} labels for the {images.shape[0]} images of {image_path.name}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{label_path}: label {int(labels.max())} outside 0..9")
    if limit is not None:
        if limit > images.shape[0]:
            raise ValueError(f"limit: {limit} exceeds the {images.shape[0]} images of {image_path}")
        images, labels = images[:limit], labels[:limit]
    return np.array(images, np.uint8), np.asarray(labels, np.int64)


@functools.lru_cache(maxsize=2)
def load_mnist_images(root: str, split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A local MNIST in the form of :func:`load_digits_images`: images (N, 28, 28) float32 in [0, 1], labels (N,) int.

    Reads :func:`load_mnist_idx` (same arguments; ``root`` as a string, the result is cached
    and read-only) and scales by 1/255. Pass the images to :func:`single_image` as ``images``.
    """
    images, labels = load_mnist_idx(root, split, limit)
    images = images.astype(np.float32) / 255.0
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


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
