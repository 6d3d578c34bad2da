"""Dense-sample faces: the generator's geometry and lighting, the Yale B loader on written PGMs, the split."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from jaxdyn.tasks import faces
from jaxdyn.tasks.faces import FaceDataError

SMALL = dict(image_size=16, num_azimuths=3, num_elevations=2, poses=2)


@pytest.fixture(scope="module")
def small():
    return faces.generate_faces(3, seed=4, **SMALL)


def test_generator_layout_and_determinism(small):
    n = 3 * 2 * 6
    assert small.images.shape == (n, 16, 16) and small.images.dtype == np.uint8
    np.testing.assert_array_equal(small.identity, np.repeat([0, 1, 2], 12))
    np.testing.assert_array_equal(small.pose[:12], np.repeat([0, 1], 6))
    az, el = faces.light_grid(3, 2)
    np.testing.assert_array_equal(small.azimuth[:6], az)
    np.testing.assert_array_equal(small.elevation[:6], el)
    again = faces.generate_faces(3, seed=4, **SMALL)
    np.testing.assert_array_equal(small.images, again.images)
    other = faces.generate_faces(3, seed=5, **SMALL)
    assert np.mean(other.images != small.images) > 0.3
    # Every exemplar differs from every other (lights, poses, identities, camera noise).
    flat = small.images.reshape(n, -1).astype(int)
    assert len({row.tobytes() for row in flat}) == n


def test_light_vectors_convention():
    v = faces.light_vectors(np.array([0.0, 90.0, -90.0, 0.0]), np.array([0.0, 0.0, 0.0, 90.0]))
    np.testing.assert_allclose(v, [[0, 0, 1], [1, 0, 0], [-1, 0, 0], [0, 1, 0]], atol=1e-6)


def test_lambertian_shading_of_a_rotated_plane():
    # A flat head (z = 0) turned by yaw theta has normal (sin theta, 0, cos theta); under a
    # frontal light its radiance is albedo * (cos theta + ambient).
    s = 16
    flat, albedo, mask = jnp.zeros((s, s)), jnp.full((s, s), 0.5), jnp.ones((s, s))
    lights = jnp.asarray(faces.light_vectors(np.array([0.0, 30.0]), np.array([0.0, 0.0])))
    render = jax.jit(faces._render_pose)
    shade = jax.jit(lambda n, a, f, d, l: faces._shade(n, a, f, d, l, 0.1, 0.3, False))
    for yaw in (0.0, 20.0):
        n, alb, face, _ = render(flat, albedo, mask, yaw, 0.0)
        np.testing.assert_allclose(n[4:12, 4:12], np.broadcast_to([np.sin(np.deg2rad(yaw)), 0, np.cos(np.deg2rad(yaw))], (8, 8, 3)), atol=1e-5)
        img = shade(n, alb, face, jnp.zeros((s, s)), lights)
        np.testing.assert_allclose(img[0, 4:12, 4:12], 0.5 * (np.cos(np.deg2rad(yaw)) + 0.1), atol=1e-5)
        np.testing.assert_allclose(img[1, 4:12, 4:12], 0.5 * (np.cos(np.deg2rad(30 - yaw)) + 0.1), atol=1e-5)
    # A plane tilted as z = 0.5 u faces left: normal (-0.5, 0, 1) / |.|.
    c = (jnp.arange(s) + 0.5) / s * 2 - 1
    tilted = jnp.broadcast_to(0.5 * c, (s, s))
    n, *_ = render(tilted, albedo, mask, 0.0, 0.0)
    np.testing.assert_allclose(n[6:10, 6:10], np.broadcast_to(np.array([-0.5, 0, 1]) / np.sqrt(1.25), (4, 4, 3)), atol=1e-4)


def test_identical_faces_and_mirror_symmetry_at_similarity_one():
    # similarity = 1 removes every individual deviation: all identities are the (left-right
    # symmetric) template, so identities coincide and a light at +a mirrors the light at -a.
    ds = faces.generate_faces(2, 24, num_azimuths=3, num_elevations=1, poses=1, similarity=1.0, noise=0.0, seed=1)
    np.testing.assert_array_equal(ds.images[ds.identity == 0], ds.images[ds.identity == 1])
    left, front, right = ds.images[:3].astype(int)
    assert np.abs(left - right[:, ::-1]).max() <= 1
    assert np.abs(front - front[:, ::-1]).max() <= 1
    assert np.abs(left - right).mean() > 10  # the side lights do differ
    # Lower similarity: the identities differ, by more at 0 than at 0.5.
    def gap(sim):
        d = faces.generate_faces(2, 24, num_azimuths=3, num_elevations=1, poses=1, similarity=sim, noise=0.0, seed=1)
        return np.abs(d.images[:3].astype(int) - d.images[3:].astype(int)).mean()
    assert 0 < gap(0.5) < gap(0.0)


def test_cast_shadows_only_darken():
    kw = dict(image_size=12, num_azimuths=3, num_elevations=1, poses=1, noise=0.0, seed=2)
    plain = faces.generate_faces(1, **kw).images.astype(int)
    shadow = faces.generate_faces(1, cast_shadows=True, **kw).images.astype(int)
    assert (shadow <= plain).all()
    assert (shadow[0] < plain[0]).sum() >= 3  # a grazing side light casts some shadow


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="similarity"):
        faces.generate_faces(2, 16, similarity=1.5)
    with pytest.raises(ValueError, match="poses"):
        faces.generate_faces(2, 16, poses=10)
    with pytest.raises(ValueError, match="image_size"):
        faces.generate_faces(2, 4)


def test_stratified_split_and_subset():
    identity = np.repeat(np.arange(4), [10, 20, 30, 7])
    split = faces.stratified_split(identity, 0.2, seed=3)
    assert np.intersect1d(split.train, split.test).size == 0
    np.testing.assert_array_equal(np.union1d(split.train, split.test), np.arange(len(identity)))
    np.testing.assert_array_equal(np.bincount(identity[split.test]), [2, 4, 6, 1])
    again = faces.stratified_split(identity, 0.2, seed=3)
    np.testing.assert_array_equal(split.test, again.test)
    assert not np.array_equal(split.test, faces.stratified_split(identity, 0.2, seed=4).test)
    sub = faces.stratified_subset(identity, 5, seed=0, pool=split.train)
    np.testing.assert_array_equal(np.bincount(identity[sub]), [5, 5, 5, 5])
    assert np.isin(sub, split.train).all()
    with pytest.raises(ValueError, match="test_fraction"):
        faces.stratified_split(identity, 1.0)
    with pytest.raises(ValueError, match="per_identity"):
        faces.stratified_subset(identity, 8)


def test_pixel_variance_known_answer():
    imgs = np.zeros((4, 2, 2), np.uint8)
    imgs[2:, 0, 0] = [0, 255]  # identity 1: pixel (0, 0) is 0 or 1 on the 0..1 scale
    v = faces.pixel_variance(imgs, np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(v[0], 0.0)
    np.testing.assert_allclose(v[1], [[0.25, 0.0], [0.0, 0.0]])


def test_task_shuffles_each_epoch_without_replacement(small):
    split = faces.stratified_split(small.identity, 0.25, seed=0)
    probe = faces.stratified_subset(small.identity, 2, seed=0)
    base = faces.task_data(small, split, probe)
    task = faces.face_task(base, batch_size=5)
    own = jax.tree_util.tree_map(lambda a: a[0], faces.member_data([7]))
    assert set(own) == {"shuffle_key"}  # the images are shared by every member, not copied per member
    data = {**base, **own}
    assert task == faces.face_task(base, batch_size=5) and hash(task) == hash(faces.face_task(base, batch_size=5))
    spe = len(split.train) // 5
    batch = jax.jit(task.batch)
    epochs = [np.concatenate([np.asarray(batch(data, None, jnp.int32(e * spe + i))["index"]) for i in range(spe)])
              for e in range(2)]
    for idx in epochs:
        assert len(np.unique(idx)) == spe * 5  # no exemplar twice in an epoch
    assert not np.array_equal(epochs[0], epochs[1])
    b = batch(data, None, jnp.int32(0))
    assert b["x"].shape == (5, 16, 16, 3) and b["x"].dtype == jnp.float32
    np.testing.assert_array_equal(b["y"], base["y_train"][np.asarray(b["index"])])
    # Standardised with the training pixels' statistics; the three channels are copies.
    np.testing.assert_allclose(b["x"][..., 0], b["x"][..., 2])
    x_all = faces.to_input(base["x_train"], base["norm"][0], base["norm"][1])
    assert abs(float(x_all.mean())) < 1e-4 and abs(float(x_all.std()) - 1) < 1e-3
    with pytest.raises(ValueError, match="batch_size"):
        faces.face_task(base, batch_size=len(split.train) + 1)


# ---------------------------------------------------------------------------
# Yale B loader on PGM files written here
# ---------------------------------------------------------------------------
def _write_pgm(path, img, binary=True):
    img = np.asarray(img)
    h, w = img.shape
    maxval = 255 if img.dtype == np.uint8 else 65535
    if binary:
        header = f"P5\n# written by the test\n{w} {h}\n{maxval}\n".encode()
        body = img.astype(">u2").tobytes() if maxval > 255 else img.tobytes()
        path.write_bytes(header + body)
    else:
        path.write_text(f"P2\n{w} {h}\n{maxval}\n" + "\n".join(" ".join(map(str, r)) for r in img) + "\n")


def _yale_tree(root, subjects=(1, 2, 3), per_folder=True):
    rng = np.random.default_rng(0)
    for s in subjects:
        folder = root / f"yaleB{s:02d}" if per_folder else root
        folder.mkdir(parents=True, exist_ok=True)
        for pose in (0, 1):
            for az, el in ((0, 0), (-35, 20), (110, -20)):
                img = np.full((12, 16), 10 * s + pose, np.uint8)
                img[0, 0] = rng.integers(0, 255)
                _write_pgm(folder / f"yaleB{s:02d}_P{pose:02d}A{az:+04d}E{el:+03d}.pgm", img)
        _write_pgm(folder / f"yaleB{s:02d}_P00_Ambient.pgm", np.zeros((12, 16), np.uint8))
        (folder / f"yaleB{s:02d}_P00.info").write_text("not an image\n")


def test_parse_yale_names():
    assert faces.parse_yale_name("yaleB03_P06A+035E+40.pgm") == dict(subject=3, pose=6, azimuth=35.0, elevation=40.0, ambient=False)
    assert faces.parse_yale_name("yaleB11_P00A-110E-20.pgm")["azimuth"] == -110.0
    info = faces.parse_yale_name("yaleB01_P00_Ambient.pgm")
    assert info["ambient"] and np.isnan(info["azimuth"])
    assert faces.parse_yale_name("yaleB01_P00A+035.pgm") is None


@pytest.mark.parametrize("per_folder", [True, False])
def test_load_yale_b(tmp_path, per_folder):
    _yale_tree(tmp_path, per_folder=per_folder)
    ds = faces.load_yale_b(tmp_path, subjects=(3, 1), image_size=8)
    assert ds.names == ("yaleB01", "yaleB03") and ds.source == "yale_b"
    assert ds.images.shape == (12, 8, 8) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.identity, np.repeat([0, 1], 6))
    np.testing.assert_array_equal(ds.pose, np.tile(np.repeat([0, 1], 3), 2))
    assert set(zip(ds.azimuth[:3].tolist(), ds.elevation[:3].tolist())) == {(0.0, 0.0), (-35.0, 20.0), (110.0, -20.0)}
    # Central 12x12 crop of a constant image resized to 8x8: the constant (away from the corner pixel).
    np.testing.assert_array_equal(ds.images[ds.identity == 1][:3, 4:, 4:], 30)
    np.testing.assert_array_equal(ds.images[ds.identity == 1][3:, 4:, 4:], 31)
    with_ambient = faces.load_yale_b(tmp_path, subjects=(1,), image_size=8, include_ambient=True)
    assert len(with_ambient.identity) == 7 and np.isnan(with_ambient.azimuth).sum() == 1
    chosen = faces.load_yale_b(tmp_path, num_subjects=2, image_size=8, seed=0)
    assert len(chosen.names) == 2 and set(chosen.names) <= {"yaleB01", "yaleB02", "yaleB03"}


def test_read_pgm_formats(tmp_path):
    img16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    _write_pgm(tmp_path / "a.pgm", img16)
    np.testing.assert_array_equal(faces.read_pgm(tmp_path / "a.pgm"), img16)
    img8 = np.arange(12, dtype=np.uint8).reshape(3, 4)
    _write_pgm(tmp_path / "b.pgm", img8, binary=False)
    np.testing.assert_array_equal(faces.read_pgm(tmp_path / "b.pgm"), img8)


def test_loader_errors_name_the_file(tmp_path):
    _yale_tree(tmp_path, subjects=(1, 2))
    bad = tmp_path / "yaleB01" / "yaleB01_P02A+000E+00.pgm"
    bad.write_bytes(b"P5\n16 12\n255\n" + bytes(50))  # truncated
    with pytest.raises(FaceDataError, match="yaleB01_P02A\\+000E\\+00.pgm: truncated PGM data"):
        faces.load_yale_b(tmp_path, subjects=(1,))
    bad.write_bytes(b"GIF89a....")
    with pytest.raises(FaceDataError, match="not a PGM"):
        faces.load_yale_b(tmp_path, subjects=(1,))
    bad.write_bytes(b"P5\n16")
    with pytest.raises(FaceDataError, match="truncated PGM header"):
        faces.load_yale_b(tmp_path, subjects=(1,))
    bad.unlink()
    odd = tmp_path / "yaleB02" / "face_07.pgm"
    _write_pgm(odd, np.zeros((4, 4), np.uint8))
    with pytest.raises(FaceDataError, match="face_07.pgm: .pgm file name is not a Yale B name"):
        faces.load_yale_b(tmp_path)
    odd.unlink()
    moved = tmp_path / "yaleB02" / "yaleB01_P01A+000E+00.pgm"
    _write_pgm(moved, np.zeros((4, 4), np.uint8))
    with pytest.raises(FaceDataError, match="subject 01 in the folder of yaleB02"):
        faces.load_yale_b(tmp_path)
    moved.unlink()
    with pytest.raises(FaceDataError, match="num_subjects=3"):
        faces.load_yale_b(tmp_path, num_subjects=3)
    with pytest.raises(FaceDataError, match="subjects \\[5\\] not found"):
        faces.load_yale_b(tmp_path, subjects=(1, 5))
    with pytest.raises(FaceDataError, match="crop"):
        faces.load_yale_b(tmp_path, subjects=(1,), crop=(0, 0, 20, 20))
    with pytest.raises(FaceDataError, match="not a directory"):
        faces.load_yale_b(tmp_path / "missing")
