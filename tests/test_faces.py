"""Dense-sample faces: the renderer on known scenes, the head model, the shortcut diagnostics, the Yale B
loader on written PGMs, the split."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.tasks import faces
from jaxdyn.tasks.faces import FaceDataError

SMALL = dict(image_size=16, num_azimuths=3, num_elevations=2, poses=2)  # a 3 x 2 light grid


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


def test_yale_lights_and_illumination_subsets():
    az, el = faces.yale_lights()
    assert len(set(zip(az.tolist(), el.tolist()))) == 64
    assert az.min() == -130 and az.max() == 130 and el.min() == -40 and el.max() == 90
    subset = faces.light_subset(az, el)
    # By angle: Georghiades et al.'s 7, 12, 12, 14, 19, except the pair at (+-35, 40), 51.1 degrees
    # from the axis, which they count in subset 3 and the angle puts in subset 4.
    np.testing.assert_array_equal(np.bincount(subset, minlength=6)[1:], [7, 12, 10, 16, 19])
    np.testing.assert_allclose(faces.light_angle(np.array([35.0]), np.array([40.0])), 51.13, atol=0.01)
    assert faces.light_subset(np.array([np.nan]), np.array([np.nan]))[0] == 0


# ---------------------------------------------------------------------------
# The renderer on scenes whose images are known
# ---------------------------------------------------------------------------
def _plate(z, half, albedo, n=200):
    """A square plate facing +z at depth z, side 2 * half, as a FaceCloud (numpy)."""
    c = np.linspace(-half, half, n, dtype=np.float32)
    x, y = np.meshgrid(c, c)
    pos = np.stack([x, y, np.full_like(x, z)], -1).reshape(-1, 3)
    normal = np.broadcast_to(np.array([0.0, 0.0, 1.0], np.float32), pos.shape)
    return pos, normal, np.full(len(pos), albedo, np.float32)


def _cloud(*parts):
    pos, normal, albedo = (np.concatenate(p) for p in zip(*parts))
    return faces.FaceCloud(pos, normal, albedo, pos)


def _render(cloud, poses, lights_deg, size=16, cast_shadows=False, jitter=None, ambient=0.1, background=0.3):
    rot = np.stack([faces.pose_rotation(*p) for p in poses])
    lights = faces.light_vectors(*np.asarray(lights_deg, np.float32).T)
    jit = np.zeros((len(poses), len(lights), 4), np.float32) if jitter is None else jitter
    return np.asarray(faces.render_cloud(faces.FaceCloud(*(jnp.asarray(a) for a in cloud)), rot, lights, jit, ambient,
                                         background, size=size, oversample=2, margin=1.25, cast_shadows=cast_shadows))


def test_lambertian_plate_the_pose_changes_the_view_not_the_light():
    # A plate facing the frontal camera under a light 30 degrees to the side has radiance
    # albedo * (cos 30 + ambient) in every pose (the lights stay with the head), and the pose's
    # yaw foreshortens it by cos(yaw); outside it the wall has background * (cos 30 + ambient).
    cloud = _cloud(_plate(0.0, 0.4, 0.5))
    img = _render(cloud, [(0.0, 0.0), (40.0, 0.0)], [(30.0, 0.0)])
    expected = 0.5 * (np.cos(np.deg2rad(30)) + 0.1)
    wall = 0.3 * (np.cos(np.deg2rad(30)) + 0.1)
    for p in range(2):
        np.testing.assert_allclose(img[p, 0, 6:10, 6:10], expected, atol=1e-5)
        np.testing.assert_allclose(img[p, 0, 0, 0], wall, atol=1e-5)
    # Plate width in pixels: 0.8 / (2 FRAME) * 16 = 7.8 frontally, times cos 40 when turned.
    widths = [(np.abs(img[p, 0, 8] - expected) < 0.02).sum() for p in range(2)]
    assert abs(widths[0] - 0.8 / (2 * faces.FRAME) * 16) <= 1.0
    assert abs(widths[1] - 0.8 * np.cos(np.deg2rad(40)) / (2 * faces.FRAME) * 16) <= 1.0


def test_zbuffer_nearest_surface_wins_and_turning_reveals_the_far_one():
    # A small bright plate 0.3 in front of a large dark one: frontally it hides the dark plate's
    # centre; turned 60 degrees the near plate slides aside by 0.3 sin 60 and the centre shows dark.
    cloud = _cloud(_plate(0.0, 0.6, 0.2, n=300), _plate(0.3, 0.1, 0.9, n=80))
    img = _render(cloud, [(0.0, 0.0), (60.0, 0.0)], [(0.0, 0.0)], size=32)
    assert img[0, 0, 15:17, 15:17].min() > 0.9  # the near plate: 0.9 * (1 + 0.1)
    np.testing.assert_allclose(img[1, 0, 14:18, 12:14], 0.2 * 1.1, atol=1e-5)  # the far plate, left of centre


def test_cast_shadow_falls_where_the_geometry_puts_it():
    # An occluder of half-side 0.1 at z = 0.3 in front of a plate at z = 0; a light at azimuth 45
    # throws its shadow 0.3 tan 45 = 0.3 to the left (the camera sees the occluder at x = 0).
    cloud = _cloud(_plate(0.0, 0.7, 0.5, n=300), _plate(0.3, 0.1, 0.5, n=80))
    kw = dict(size=32)
    lit = _render(cloud, [(0.0, 0.0)], [(45.0, 0.0)], **kw)[0, 0]
    shadowed = _render(cloud, [(0.0, 0.0)], [(45.0, 0.0)], cast_shadows=True, **kw)[0, 0]
    col = int(round((-0.3 / faces.FRAME + 1) * 16 - 0.5))  # pixel column of x = -0.3
    np.testing.assert_allclose(lit[15:17, col], 0.5 * (np.cos(np.deg2rad(45)) + 0.1), atol=1e-5)
    np.testing.assert_allclose(shadowed[15:17, col], 0.5 * 0.1, atol=1e-5)  # ambient only
    np.testing.assert_allclose(shadowed[15:17, 28], lit[15:17, 28], atol=1e-6)  # far right: no shadow
    assert (shadowed <= lit + 1e-6).all()


def test_camera_jitter_is_an_exact_shift():
    # A shift of the camera by exactly two pixels (4 sub-pixels) moves the image by two pixels.
    cloud = _cloud(_plate(0.0, 0.3, 0.8), _plate(0.1, 0.1, 0.3, n=60))
    jitter = np.zeros((1, 2, 4), np.float32)
    jitter[0, 1, 0] = 2 * 2.0 / 16  # dx in frame half-widths: a pixel is 2 / size of them
    img = _render(cloud, [(0.0, 0.0)], [(0.0, 0.0), (0.0, 0.0)], jitter=jitter)
    np.testing.assert_allclose(img[0, 1, :, 2:14], img[0, 0, :, 4:16], atol=1e-5)


@pytest.fixture(scope="module")
def coverage_views():
    """Coverage of a full-spread identity's head at 48 px in all 9 poses (samples of albedo 1 and
    zero normal under ambient 1, a black wall), at the generator's sample density and at 2.5
    times it: (2, 9, 48, 48)."""
    params = faces.face_parameters(np.random.default_rng(1), 1.0)
    views = []
    for factor in (1.0, 2.5):
        cloud = faces.face_cloud(params, factor * faces._SAMPLES_PER_SUBPIXEL * 96 / (2 * faces.FRAME))
        white = faces.FaceCloud(*(jnp.asarray(a) for a in (cloud.position, 0 * cloud.normal, np.ones_like(cloud.albedo),
                                                            cloud.caster)))
        rot = np.stack([faces.pose_rotation(*p) for p in faces.YALE_POSES_DEG])
        views.append(np.asarray(faces.render_cloud(white, rot, faces.light_vectors(np.zeros(1), np.zeros(1)),
                                                   np.zeros((9, 1, 4), np.float32), 1.0, 0.0, size=48, oversample=2,
                                                   margin=1.25, cast_shadows=False))[:, 0])
    return np.stack(views)


def test_every_pose_is_hole_free_and_framed(coverage_views):
    # Each pixel holds the fraction of its 4 sub-pixels that a head sample reached. A sub-pixel
    # the splats missed would darken a pixel inside the head by 1/4, and 2.5 times the samples
    # would fill it; a true gap (behind an ear, say) stays in both. (At 1.25 samples per
    # sub-pixel instead of 1.6 this identity shows such holes.)
    normal, dense = coverage_views
    for p in range(9):
        head = (normal[p] > 0.5) & (dense[p] > 0.5)
        inner = head[1:-1, 1:-1] & head[:-2, 1:-1] & head[2:, 1:-1] & head[1:-1, :-2] & head[1:-1, 2:]
        diff = np.abs(normal[p] - dense[p])[1:-1, 1:-1][inner]
        assert diff.max() < 0.01, f"pose {p}: a hole ({diff.max():.2f})"
        # The head fills most of the frame, with wall in the top corners (hair and ears inside).
        cover = normal[p] > 0.5
        assert 0.5 < cover.mean() < 0.95, f"pose {p}: head covers {cover.mean():.2f}"
        assert not cover[0, 0] and not cover[0, -1]


def test_turning_left_mirrors_turning_right():
    # The camera turned 24 degrees either way round the symmetric template sees mirror images,
    # each unlike the frontal view (a rotation of the surface, re-projected).
    cloud = faces.face_cloud(faces.face_parameters(np.random.default_rng(0), 0.0), faces._SAMPLES_PER_SUBPIXEL * 48 / (2 * faces.FRAME))
    az = np.array([0.0, 40.0, -40.0], np.float32)
    img = _render(cloud, [(24.0, 0.0), (-24.0, 0.0), (0.0, 0.0)], [(a, 0.0) for a in az], size=24)
    # Light 0 is frontal, lights 1 and 2 mirror each other.
    for l, m in ((0, 0), (1, 2)):
        assert np.abs(img[0, l] - img[1, m][:, ::-1]).mean() < 0.01
    assert np.abs(img[0, 0] - img[2, 0]).mean() > 0.03
    assert np.abs(img[0, 0] - img[0, 0][:, ::-1]).mean() > 0.03


def test_identical_faces_and_mirror_symmetry_at_similarity_one():
    # similarity = 1 removes every individual deviation: all identities are the (left-right
    # symmetric) template, so identities coincide and a light at +a mirrors the light at -a.
    kw = dict(lights="grid", num_azimuths=3, num_elevations=1, poses=1, noise=0.0, jitter=(0, 0, 0), seed=1)
    ds = faces.generate_faces(2, 24, similarity=1.0, **kw)
    np.testing.assert_array_equal(ds.images[ds.identity == 0], ds.images[ds.identity == 1])
    left, front, right = ds.images[:3].astype(int)
    assert np.abs(left - right[:, ::-1]).max() <= 1
    assert np.abs(front - front[:, ::-1]).max() <= 1
    assert np.abs(left - right).mean() > 10  # the side lights do differ
    # Lower similarity: the identities differ, by more at 0 than at 0.5.
    def gap(sim):
        d = faces.generate_faces(2, 24, similarity=sim, **kw)
        return np.abs(d.images[:3].astype(int) - d.images[3:].astype(int)).mean()
    assert 0 < gap(0.5) < gap(0.0)


def test_shape_only_identities_share_one_albedo():
    # No parameter of an identity touches reflectance: every identity's samples carry exactly the
    # shared skin and hair values (no identity-specific tone), in like proportions, and the painted
    # landmarks (brows, irises, lips) darken or whiten them by the same shared amounts.
    assert not any("albedo" in k or "skin" in k or "dark" in k for k in faces.FACE_SHAPE)
    fractions = []
    for seed in range(3):
        a = faces.face_cloud(faces.face_parameters(np.random.default_rng(seed), 1.0), 20.0).albedo
        fractions.append((np.mean(a == np.float32(faces.SKIN_ALBEDO)), np.mean(a == np.float32(faces.HAIR_ALBEDO))))
        assert a.max() <= faces.SKIN_ALBEDO * 1.18 + 1e-6 and a.min() >= 0.03
    fractions = np.array(fractions)
    assert (fractions[:, 0] > 0.5).all() and (fractions[:, 1] > 0.15).all()
    assert np.ptp(fractions, axis=0).max() < 0.03


def test_cast_shadows_only_darken():
    kw = dict(image_size=16, lights="grid", num_azimuths=5, num_elevations=1, poses=1, noise=0.0, jitter=(0, 0, 0), seed=2)
    plain = faces.generate_faces(1, **kw).images.astype(int)
    shadow = faces.generate_faces(1, cast_shadows=True, **kw).images.astype(int)
    assert (shadow <= plain).all()
    # A light 55 degrees to the side throws the nose's shadow on the cheek and the head's on the wall.
    assert (shadow[1] < plain[1] - 10).sum() >= 3 and (shadow[3] < plain[3] - 10).sum() >= 3


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="similarity"):
        faces.generate_faces(2, 16, similarity=1.5)
    with pytest.raises(ValueError, match="poses"):
        faces.generate_faces(2, 16, poses=10)
    with pytest.raises(ValueError, match="image_size"):
        faces.generate_faces(2, 4)
    with pytest.raises(ValueError, match="lights"):
        faces.generate_faces(2, 16, lights="yale", num_azimuths=4)
    with pytest.raises(ValueError, match="lights"):
        faces.generate_faces(2, 16, lights="dome")
    with pytest.raises(ValueError, match="jitter"):
        faces.generate_faces(2, 16, jitter=(0.2, 0, 0))
    with pytest.raises(ValueError, match="jitter"):
        faces.generate_faces(2, 16, jitter=(0.01, 1.0))


# ---------------------------------------------------------------------------
# Shortcut diagnostics: on data whose answers are known, then on the generator
# ---------------------------------------------------------------------------
def _synthetic(images_fn, num_ids=3, poses=2, seed=0):
    """A FaceDataset of 8x8 images over Yale B's 64 lights: images_fn(identity, subset, rng) -> (8, 8) in [0, 1]."""
    rng = np.random.default_rng(seed)
    az, el = faces.yale_lights()
    subset = faces.light_subset(az, el)
    rows = [(k, p, l) for k in range(num_ids) for p in range(poses) for l in range(64)]
    images = np.stack([np.clip(images_fn(k, subset[l], rng), 0, 1) for k, p, l in rows])
    return faces.FaceDataset(
        images=np.round(images * 255).astype(np.uint8), identity=np.array([r[0] for r in rows], np.int32),
        pose=np.array([r[1] for r in rows], np.int32), azimuth=np.array([az[r[2]] for r in rows], np.float32),
        elevation=np.array([el[r[2]] for r in rows], np.float32), names=tuple(f"id{k}" for k in range(num_ids)),
        source="synthetic", attrs={})


def test_diagnostics_catch_a_brightness_shortcut():
    # Identity k is a uniform grey of level 0.3 + 0.2 k (plus a little noise): brightness alone
    # identifies it, identity k = 2 is the brightest in every condition, and standardising each
    # image removes the identity completely.
    ds = _synthetic(lambda k, s, rng: 0.3 + 0.2 * k + 0.01 * rng.standard_normal((8, 8)))
    d = faces.shortcut_diagnostics(ds)
    assert d["chance"] == pytest.approx(1 / 3, abs=0.01)
    assert d["brightness_accuracy"] == 1.0
    assert d["brightest_counts"] == [0, 0, 128] and d["brightest_fraction"] == 1.0 and d["conditions"] == 128
    assert d["standardised_linear_accuracy"] < d["chance"] + 0.15


def test_diagnostics_on_noise_and_on_a_pattern_that_fades_with_light_angle():
    noise = faces.shortcut_diagnostics(_synthetic(lambda k, s, rng: 0.5 + 0.1 * rng.standard_normal((8, 8))))
    assert noise["brightness_accuracy"] < noise["chance"] + 0.15
    assert noise["linear_accuracy"] < noise["chance"] + 0.15
    assert max(noise["brightest_counts"]) < 0.5 * noise["conditions"]
    # A fixed random pattern per identity (same mean brightness) under noise that grows with the
    # illumination subset: the linear classifier reads subset 1 perfectly and subset 5 near chance.
    patterns = np.random.default_rng(7).standard_normal((3, 8, 8))
    patterns -= patterns.mean((1, 2), keepdims=True)
    sigma = {1: 0.05, 2: 1.0, 3: 2.0, 4: 4.0, 5: 25.0}
    ds = _synthetic(lambda k, s, rng: 0.5 + 0.02 * (patterns[k] + sigma[s] * rng.standard_normal((8, 8))), poses=6)
    d = faces.shortcut_diagnostics(ds)
    acc = d["linear_accuracy_by_subset"]
    assert acc[0] == 1.0 and acc[4] < d["chance"] + 0.2
    assert d["linear_subset_spearman"] < -0.8
    assert d["test_count_by_subset"] == [int((faces.light_subset(ds.azimuth, ds.elevation)[
        faces.stratified_split(ds.identity, 0.2, 0).test] == s).sum()) for s in range(1, 6)]
    assert d["brightness_accuracy"] < d["chance"] + 0.15


def test_diagnostics_reject_a_bad_split():
    ds = _synthetic(lambda k, s, rng: rng.random((8, 8)), num_ids=2, poses=1)
    with pytest.raises(ValueError, match="split"):
        faces.shortcut_diagnostics(ds, faces.Split(train=np.arange(1), test=np.arange(1, 5)))
    with pytest.raises(ValueError, match="max_side"):
        faces.shortcut_diagnostics(ds, max_side=0)


def test_generated_faces_have_no_brightness_or_linear_shortcut():
    # The targets at 16 px for the default 5 identities x 9 poses x 64 lights: mean
    # brightness identifies no more than chance + 5%, a raw-pixel linear classifier scores at most
    # 0.85 and falls with the light's angle, and per-image standardisation keeps the identity.
    ds = faces.generate_faces(5, 16, seed=0)
    assert ds.images.shape == (5 * 576, 16, 16)
    d = faces.shortcut_diagnostics(ds)
    assert d["chance"] == pytest.approx(0.2)
    assert d["brightness_accuracy"] <= d["chance"] + 0.05
    assert d["linear_accuracy"] <= 0.85
    acc = d["linear_accuracy_by_subset"]
    assert acc[0] > acc[4] + 0.2 and d["linear_subset_spearman"] < 0
    assert d["standardised_linear_accuracy"] > d["chance"] + 0.3
    assert d["brightest_fraction"] < 0.6


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
def _write_pgm(path, img, binary=True, maxval=None):
    img = np.asarray(img)
    h, w = img.shape
    maxval = (255 if img.dtype == np.uint8 else 65535) if maxval is None else maxval
    if binary:
        header = f"P5\n# written by the test\n{w} {h}\n{maxval}\n".encode()
        body = img.astype(">u2").tobytes() if maxval > 255 else img.astype(np.uint8).tobytes()
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
    with pytest.warns(UserWarning, match=r"yaleB01_P00A-035E\+20.pgm: image size 16x12 is neither Yale B's 640x480 "
                                         r"nor the cropped set's 168x192 \(12 file\(s\) of this size\)"):
        ds = faces.load_yale_b(tmp_path, subjects=(3, 1), image_size=8)
    assert ds.names == ("yaleB01", "yaleB03") and ds.source == "yale_b"
    assert ds.images.shape == (12, 8, 8) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.identity, np.repeat([0, 1], 6))
    np.testing.assert_array_equal(ds.pose, np.tile(np.repeat([0, 1], 3), 2))
    assert set(zip(ds.azimuth[:3].tolist(), ds.elevation[:3].tolist())) == {(0.0, 0.0), (-35.0, 20.0), (110.0, -20.0)}
    # Central 12x12 crop of a constant image resized to 8x8: the constant (away from the corner pixel).
    np.testing.assert_array_equal(ds.images[ds.identity == 1][:3, 4:, 4:], 30)
    np.testing.assert_array_equal(ds.images[ds.identity == 1][3:, 4:, 4:], 31)
    with pytest.warns(UserWarning, match="image size"):
        with_ambient = faces.load_yale_b(tmp_path, subjects=(1,), image_size=8, include_ambient=True)
        chosen = faces.load_yale_b(tmp_path, num_subjects=2, image_size=8, seed=0)
    assert len(with_ambient.identity) == 7 and np.isnan(with_ambient.azimuth).sum() == 1
    assert len(chosen.names) == 2 and set(chosen.names) <= {"yaleB01", "yaleB02", "yaleB03"}


def test_read_pgm_formats(tmp_path):
    img16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    _write_pgm(tmp_path / "a.pgm", img16)
    np.testing.assert_array_equal(faces.read_pgm(tmp_path / "a.pgm"), img16)
    img8 = np.arange(12, dtype=np.uint8).reshape(3, 4)
    _write_pgm(tmp_path / "b.pgm", img8, binary=False)
    np.testing.assert_array_equal(faces.read_pgm(tmp_path / "b.pgm"), img8)


def test_duplicates_are_rejected_naming_both_paths(tmp_path):
    _yale_tree(tmp_path, subjects=(1, 2))
    name = "yaleB02_P01A-035E+20.pgm"
    copy = tmp_path / name  # the same image flat beside its subject folder
    copy.write_bytes((tmp_path / "yaleB02" / name).read_bytes())
    with pytest.raises(FaceDataError) as err:
        faces.load_yale_b(tmp_path, subjects=(1,))  # even when the subject is not chosen
    message = str(err.value)
    assert str(copy) in message and str(tmp_path / "yaleB02" / name) in message and "found twice" in message
    copy.unlink()
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / name).write_bytes((tmp_path / "yaleB02" / name).read_bytes())
    with pytest.raises(FaceDataError, match="found twice"):
        faces.load_yale_b(tmp_path, subjects=(2,))


@pytest.mark.parametrize("maxval", [255, 1023, 4095, 65535])
def test_pixels_are_scaled_by_maxval(tmp_path, maxval):
    # 8- and 16-bit files whose white is maxval: each constant image comes out as level * 255 / maxval.
    folder = tmp_path / "yaleB01"
    folder.mkdir()
    levels = (maxval, maxval // 3, 0)
    for level, light in zip(levels, ("A+000E+00", "A+000E+20", "A+000E+45")):
        img = np.full((480, 640), level, np.uint16 if maxval > 255 else np.uint8)
        _write_pgm(folder / f"yaleB01_P00{light}.pgm", img, maxval=maxval)
    ds = faces.load_yale_b(tmp_path, subjects=(1,), image_size=4)
    assert ds.images.dtype == np.uint8
    for img, level in zip(ds.images, levels):
        np.testing.assert_array_equal(img, np.round(level * 255.0 / maxval))


def test_close_crop_from_the_crop_coordinates(tmp_path):
    # Two poses of subject 1 in 80x120 frames; the face (a bright square of side 2.2 * 20) sits at
    # a different place in each, given by the .crop files: eyes 20 px apart and the mouth for P00,
    # the face centre for P01.
    folder = tmp_path / "yaleB01"
    folder.mkdir()
    coords = tmp_path / "CropCoords"
    coords.mkdir()
    lights = ("A+000E+00", "A+035E+15")
    for pose, centre in ((0, (40, 30)), (1, (75, 45))):
        names = []
        for light in lights:
            img = np.full((80, 120), 20, np.uint8)
            cx, cy = centre
            img[cy - 22:cy + 22, cx - 22:cx + 22] = 200
            name = f"yaleB01_P{pose:02d}{light}.pgm"
            _write_pgm(folder / name, img)
            names.append(name)
        (folder / f"yaleB01_P{pose:02d}.info").write_text("\n".join(names) + "\n")
        if pose == 0:  # left eyes, right eyes, mouths; centre = midway between eye midpoint and mouth
            rows = [(cx - 10, cy - 6)] * 2 + [(cx + 10, cy - 6)] * 2 + [(cx, cy + 6)] * 2
        else:
            rows = [centre] * 2
        (coords / f"yaleB01_P{pose:02d}.crop").write_text("".join(f"{x} {y}\n" for x, y in rows))
    with pytest.warns(UserWarning, match="image size 120x80"):
        ds = faces.load_yale_b(tmp_path, subjects=(1,), image_size=11, crop="close")
    assert ds.attrs["crop"] == "close"
    # The 44-px square fills the crop: every pixel bright, in both poses.
    assert ds.images.min() >= 190, ds.images.min()
    with pytest.warns(UserWarning):
        central = faces.load_yale_b(tmp_path, subjects=(1,), image_size=11)
    assert central.images.min() < 50  # the default central square shows the background
    (coords / "yaleB01_P01.crop").write_text("75 45\n")  # one row for two images
    with pytest.raises(FaceDataError, match=r"yaleB01_P01.crop: expected 2 rows"), pytest.warns(UserWarning):
        faces.load_yale_b(tmp_path, subjects=(1,), crop="close")
    (coords / "yaleB01_P01.crop").unlink()
    with pytest.raises(FaceDataError, match=r"crop='close' needs Yale B's yaleB01_P01.crop"), pytest.warns(UserWarning):
        faces.load_yale_b(tmp_path, subjects=(1,), crop="close")
    with pytest.raises(FaceDataError, match="crop: expected None, 'close'"):
        faces.load_yale_b(tmp_path, subjects=(1,), crop="tight")


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
    with pytest.raises(FaceDataError, match="crop \\(top=0, left=0, height=20, width=20\\) does not fit a 12x16"), \
            pytest.warns(UserWarning, match="image size 16x12"):
        faces.load_yale_b(tmp_path, subjects=(1,), crop=(0, 0, 20, 20))
    with pytest.raises(FaceDataError, match="not a directory"):
        faces.load_yale_b(tmp_path / "missing")
