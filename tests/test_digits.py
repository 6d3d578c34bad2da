"""The MNIST idx loader on small idx files written here: valid, gzip, and every kind of damage named."""

import gzip

import numpy as np
import pytest

from jaxdyn.tasks import digits


def _idx(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.ascontiguousarray(array, np.uint8)
    magic = (0x08 << 8 | array.ndim) if magic is None else magic
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()


def _write(root, split="train", n=5, images=None, labels=None, gz=False):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if images is None else images
    labels = rng.integers(0, 10, n, dtype=np.uint8) if labels is None else labels
    stems = digits.MNIST_FILES[split]
    for stem, payload in zip(stems, (_idx(images), _idx(labels))):
        if gz:
            (root / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (root / stem).write_bytes(payload)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_reads_valid_files(tmp_path, gz):
    images, labels = _write(tmp_path, "t10k", n=7, gz=gz)
    got_images, got_labels = digits.load_mnist_idx(tmp_path, "t10k")
    assert got_images.shape == (7, 28, 28) and got_images.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    first, first_labels = digits.load_mnist_idx(tmp_path, "t10k", limit=3)
    np.testing.assert_array_equal(first, images[:3])
    np.testing.assert_array_equal(first_labels, labels[:3])


def test_images_in_the_form_of_the_sklearn_digits(tmp_path):
    images, labels = _write(tmp_path, "train", n=4)
    x, y = digits.load_mnist_images(str(tmp_path), "train")
    ref_x, ref_y = digits.load_digits_images()
    assert x.dtype == ref_x.dtype == np.float32 and x.ndim == ref_x.ndim == 3 and y.ndim == ref_y.ndim == 1
    np.testing.assert_allclose(x, images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(y, labels)
    assert not x.flags.writeable


def test_damage_is_named(tmp_path):
    images, labels = _write(tmp_path, "train", n=5)
    image_file = tmp_path / "train-images-idx3-ubyte"
    label_file = tmp_path / "train-labels-idx1-ubyte"
    good_images = image_file.read_bytes()

    image_file.write_bytes(b"\x01\x02" + good_images[2:])  # not two zero bytes
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: bad idx magic number 0x0102"):
        digits.load_mnist_idx(tmp_path)
    image_file.write_bytes(good_images[:-10])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: truncated idx data"):
        digits.load_mnist_idx(tmp_path)
    image_file.write_bytes(good_images + b"\x00")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: trailing bytes"):
        digits.load_mnist_idx(tmp_path)
    image_file.write_bytes(good_images[:10])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: truncated idx header"):
        digits.load_mnist_idx(tmp_path)
    image_file.write_bytes(_idx(np.zeros((5, 14, 14), np.uint8)))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: expected MNIST images .*shape \(5, 14, 14\)"):
        digits.load_mnist_idx(tmp_path)
    image_file.write_bytes(good_images)

    label_file.write_bytes(_idx(labels[:4]))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: 4 labels for the 5 images"):
        digits.load_mnist_idx(tmp_path)
    label_file.write_bytes(_idx(np.array([1, 2, 3, 4, 12], np.uint8)))
    with pytest.raises(ValueError, match="label 12 outside 0..9"):
        digits.load_mnist_idx(tmp_path)
    label_file.write_bytes(_idx(images))  # an image file where the labels should be
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: expected MNIST labels"):
        digits.load_mnist_idx(tmp_path)
    label_file.unlink()
    with pytest.raises(ValueError, match="no train-labels-idx1-ubyte"):
        digits.load_mnist_idx(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz: cannot read"):
        digits.load_mnist_idx(tmp_path)


def test_bad_arguments(tmp_path):
    _write(tmp_path, "train", n=3)
    with pytest.raises(ValueError, match="split"):
        digits.load_mnist_idx(tmp_path, "test")
    with pytest.raises(ValueError, match="limit"):
        digits.load_mnist_idx(tmp_path, limit=0)
    with pytest.raises(ValueError, match="limit: 4 exceeds the 3 images"):
        digits.load_mnist_idx(tmp_path, limit=4)
    with pytest.raises(ValueError, match="not a directory"):
        digits.load_mnist_idx(tmp_path / "missing")
