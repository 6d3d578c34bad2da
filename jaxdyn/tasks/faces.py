"""Dense-sample faces: a face generator, a Yale Face Database B loader, and the stratified split.

Hanson, Yadav & Hanson's dense-sample task (arXiv 2307.10991) takes a few identities (5) with
hundreds of exemplars each: the Yale Face Database B, where every subject is photographed in 9
poses under 64 light directions (576 images per subject). Two sources give the same
:class:`FaceDataset`:

* :func:`generate_faces` -- the embedded default. Each identity is a smooth random 3-D face-like
  height surface z(u, v) with its own albedo, built from a shared template (rounded head, nose,
  eye sockets, brows, cheeks, mouth, chin) plus identity-specific deviations whose size is set by
  ``similarity``, plus a random smooth field. It is rendered orthographically in 9 poses (head
  rotations of 0, 12 and 24 degrees, as Yale B's P00-P08) under a grid of light directions
  (azimuth x elevation, 8 x 8 = 64 by default, spanning Yale B's range) with Lambertian shading

      I(x) = rho(x) * (max(0, n(x) . l) * s(x) + ambient),

  where rho is the albedo, n the unit normal, l the unit light direction and s(x) in {0, 1} the
  optional cast-shadow mask; then camera noise and 8-bit quantisation, as in the PGM originals.
* :func:`load_yale_b` -- the real database, when a user has it: ``yaleBNN_PxxA+aaaE+ee.pgm``
  files, flat or one folder per subject.

Images are stored as grey ``uint8`` (N, H, W); :func:`to_input` turns them into the net's
float32 (N, H, W, 3) input (grey replicated to three channels, as the paper's net expects).
:func:`stratified_split` splits by exemplar within each identity; :func:`task_data` gives the
arrays every ensemble member shares (the engine's ``shared=``, sent to the device once),
:func:`member_data` each member's own shuffle key, and :func:`face_task` the engine task
(:class:`FaceTask`) with epoch-wise shuffling.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np


Array = jax.Array

# Yale B poses: P00 frontal, P01-P05 about 12 degrees off the camera axis, P06-P08 about 24
# degrees. Directions around the axis are our choice (Yale B does not state them per pose);
# each pose is (yaw, pitch) in degrees: yaw turns the head about the vertical axis.
YALE_POSES_DEG: tuple[tuple[float, float], ...] = (
    (0.0, 0.0),
    *((12.0 * math.cos(math.radians(a)), 12.0 * math.sin(math.radians(a))) for a in (0, 72, 144, 216, 288)),
    *((24.0 * math.cos(math.radians(a)), 24.0 * math.sin(math.radians(a))) for a in (0, 120, 240)),
)


class FaceDataset(NamedTuple):
    """Face images with their labels, identity-major.

    Attributes:
        images: (N, H, W) uint8 grey images.
        identity: (N,) int32 class label in 0..K-1.
        pose: (N,) int32 pose index (Yale B's Pxx).
        azimuth: (N,) float32 light azimuth in degrees (positive: light from the subject's right
            as seen by the camera, i.e. image right).
        elevation: (N,) float32 light elevation in degrees (positive: from above).
        names: (K,) identity names (``'face0'``... or ``'yaleB03'``...).
        source: ``'generated'`` or ``'yale_b'``.
        attrs: the parameters that produced the set (JSON-serialisable scalars and strings).
    """

    images: np.ndarray
    identity: np.ndarray
    pose: np.ndarray
    azimuth: np.ndarray
    elevation: np.ndarray
    names: tuple[str, ...]
    source: str
    attrs: dict[str, Any]

    @property
    def num_identities(self) -> int:
        return len(self.names)

    def subset(self, index: np.ndarray) -> "FaceDataset":
        """The exemplars at ``index`` (1-D int array), same identities and names."""
        index = np.asarray(index)
        return self._replace(images=self.images[index], identity=self.identity[index], pose=self.pose[index],
                             azimuth=self.azimuth[index], elevation=self.elevation[index])


# ---------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------
def light_grid(num_azimuths: int = 8, num_elevations: int = 8, max_azimuth: float = 110.0,
               min_elevation: float = -35.0, max_elevation: float = 70.0) -> tuple[np.ndarray, np.ndarray]:
    """A grid of light directions spanning Yale B's range (azimuth -130..130, elevation -40..90).

    Returns:
        (azimuth, elevation): two (num_azimuths * num_elevations,) float32 arrays in degrees,
        azimuth-major.
    """
    for name, n in (("num_azimuths", num_azimuths), ("num_elevations", num_elevations)):
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{name}: expected a positive int, got {n!r}")
    az = np.linspace(-max_azimuth, max_azimuth, num_azimuths) if num_azimuths > 1 else np.zeros(1)
    el = np.linspace(min_elevation, max_elevation, num_elevations) if num_elevations > 1 else np.zeros(1)
    a, e = np.meshgrid(az, el, indexing="ij")
    return a.ravel().astype(np.float32), e.ravel().astype(np.float32)


def light_vectors(azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
    """Unit light directions (L, 3) in camera coordinates (x right, y up, z towards the camera).

    Azimuth 0, elevation 0 is the camera axis; azimuth turns the light about the vertical axis,
    elevation raises it.
    """
    a = np.deg2rad(np.asarray(azimuth_deg, np.float64))
    e = np.deg2rad(np.asarray(elevation_deg, np.float64))
    return np.stack([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)], axis=-1).astype(np.float32)


# Template parameters: (base value, spread across identities). Deviations are
# spread * (1 - similarity) * N(0, 1); lengths are in units of the half image side.
_SHAPE = {
    "face_a": (0.74, 0.05), "face_b": (0.93, 0.04), "depth": (0.55, 0.10),
    "nose_v": (-0.02, 0.05), "nose_len": (0.20, 0.04), "nose_w": (0.07, 0.018), "nose_amp": (0.20, 0.06),
    "tip_v": (-0.20, 0.04), "tip_amp": (0.08, 0.04), "wing_u": (0.09, 0.02),
    "eye_u": (0.28, 0.035), "eye_v": (0.18, 0.035), "eye_amp": (-0.10, 0.04), "eye_su": (0.12, 0.02),
    "brow_v": (0.32, 0.035), "brow_amp": (0.05, 0.03),
    "cheek_u": (0.38, 0.04), "cheek_v": (-0.12, 0.05), "cheek_amp": (0.06, 0.04), "cheek_s": (0.14, 0.03),
    "mouth_v": (-0.47, 0.04), "mouth_w": (0.14, 0.03), "lip_amp": (0.035, 0.015),
    "chin_v": (-0.72, 0.05), "chin_amp": (0.05, 0.04),
    "skin": (0.62, 0.10), "brow_dark": (0.55, 0.20), "lip_dark": (0.25, 0.12), "beard": (0.15, 0.20),
}


def _identity_parameters(rng: np.random.Generator, scale: float) -> dict[str, float]:
    return {k: float(base + scale * spread * rng.standard_normal()) for k, (base, spread) in _SHAPE.items()}


def _gauss(u, v, u0, v0, su, sv):
    return np.exp(-((u - u0) ** 2 / (2 * su**2) + (v - v0) ** 2 / (2 * sv**2)))


def face_surface(size: int, rng: np.random.Generator, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One identity's height map, albedo and face mask on a ``size x size`` grid.

    The head is a rounded cap of half-axes (face_a, face_b, depth); the features are Gaussian
    bumps and dips; a random smooth field of 8 Gaussians (amplitude ``0.03 * scale``) adds
    individuality beyond the template.

    Args:
        size: grid side.
        rng: numpy Generator (the identity's own stream).
        scale: size of the identity's deviations from the template (1 - similarity).

    Returns:
        (height (size, size), albedo (size, size), mask (size, size)) float32; row 0 is the top.
    """
    p = _identity_parameters(rng, scale)
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    u, v = np.meshgrid(c, -c)  # v up: row 0 is v = +1
    a, b, depth = max(p["face_a"], 0.4), max(p["face_b"], 0.6), max(p["depth"], 0.2)
    r2 = (u / a) ** 2 + (v / b) ** 2
    inside = r2 < 1.0
    # A paraboloid-like cap (slope <= 2 depth / a at the rim) rather than an ellipsoid, whose
    # infinite rim slope would fold over itself under the 24-degree poses.
    q = np.clip(1.0 - r2, 0.0, None)
    head = depth * q * (1.0 + 0.3 * r2)
    g = _gauss
    z = head
    z = z + p["nose_amp"] * g(u, v, 0.0, p["nose_v"], abs(p["nose_w"]) + 0.02, abs(p["nose_len"]) + 0.05)
    z = z + p["tip_amp"] * g(u, v, 0.0, p["tip_v"], 0.09, 0.07)
    for side in (-1.0, 1.0):
        z = z + 0.035 * g(u, v, side * abs(p["wing_u"]), p["tip_v"] - 0.03, 0.04, 0.035)
        z = z + p["eye_amp"] * g(u, v, side * p["eye_u"], p["eye_v"], abs(p["eye_su"]) + 0.03, 0.07)
        z = z + 0.03 * g(u, v, side * p["eye_u"], p["eye_v"] - 0.01, 0.05, 0.035)  # eyeball
        z = z + p["brow_amp"] * g(u, v, side * 0.27, p["brow_v"], 0.16, 0.05)
        z = z + p["cheek_amp"] * g(u, v, side * p["cheek_u"], p["cheek_v"], abs(p["cheek_s"]) + 0.04, 0.12)
    mw = abs(p["mouth_w"]) + 0.05
    z = z + p["lip_amp"] * g(u, v, 0.0, p["mouth_v"] + 0.035, mw, 0.03)
    z = z + 1.1 * p["lip_amp"] * g(u, v, 0.0, p["mouth_v"] - 0.04, mw * 0.9, 0.035)
    z = z - 0.02 * g(u, v, 0.0, p["mouth_v"], mw, 0.012)
    z = z + p["chin_amp"] * g(u, v, 0.0, p["chin_v"], 0.15, 0.08)
    for _ in range(8):  # individual smooth relief
        u0, v0 = rng.uniform(-0.6, 0.6), rng.uniform(-0.8, 0.7)
        s = rng.uniform(0.08, 0.25)
        z = z + 0.03 * scale * rng.standard_normal() * g(u, v, u0, v0, s, s)

    rho = np.full_like(u, np.clip(p["skin"], 0.25, 0.95))
    for side in (-1.0, 1.0):
        rho = rho * (1.0 - np.clip(p["brow_dark"], 0.0, 0.9) * g(u, v, side * 0.27, p["brow_v"] + 0.04, 0.13, 0.025))
        rho = rho * (1.0 - 0.75 * g(u, v, side * p["eye_u"], p["eye_v"] - 0.01, 0.035, 0.03))  # iris
    rho = rho * (1.0 - np.clip(p["lip_dark"], 0.0, 0.8) * g(u, v, 0.0, p["mouth_v"], mw, 0.05))
    rho = rho * (1.0 - np.clip(p["beard"], 0.0, 0.6) * g(u, v, 0.0, -0.65, 0.35, 0.2))
    for _ in range(6):  # individual albedo blotches
        u0, v0 = rng.uniform(-0.6, 0.6), rng.uniform(-0.8, 0.7)
        s = rng.uniform(0.1, 0.3)
        rho = rho * (1.0 + 0.08 * scale * rng.standard_normal() * g(u, v, u0, v0, s, s))
    z = np.where(inside, z, 0.0)
    return z.astype(np.float32), np.clip(rho, 0.02, 1.0).astype(np.float32), inside.astype(np.float32)


def _rotation(yaw_deg, pitch_deg):
    cy, sy = jnp.cos(jnp.deg2rad(yaw_deg)), jnp.sin(jnp.deg2rad(yaw_deg))
    cp, sp = jnp.cos(jnp.deg2rad(pitch_deg)), jnp.sin(jnp.deg2rad(pitch_deg))
    r_yaw = jnp.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = jnp.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return r_pitch @ r_yaw


def _sample(img, u, v):
    """Bilinear sample of (S, S) ``img`` at head coordinates (u, v) in [-1, 1] (v up)."""
    s = img.shape[0]
    col = (u + 1.0) * 0.5 * s - 0.5
    row = (1.0 - v) * 0.5 * s - 0.5
    return jax.scipy.ndimage.map_coordinates(img, [row, col], order=1, mode="nearest")


def _render_pose(height, albedo, mask, yaw, pitch):
    """Camera-frame normals (S, S, 3), albedo, face mask and depth of one rotated head.

    Orthographic camera: the head point S = (u, v, z(u, v)) appears at (R S)_xy. Each pixel finds
    its head point by fixed-point iteration (u, v) += target - (R S)_xy, which converges for the
    small Yale B rotations (the map is close to the identity).
    """
    s = height.shape[0]
    c = (jnp.arange(s) + 0.5) / s * 2.0 - 1.0
    x, y = jnp.meshgrid(c, -c)
    dz_dv, dz_du = jnp.gradient(height, -2.0 / s, 2.0 / s)  # rows go down in v
    normal = jnp.stack([-dz_du, -dz_dv, jnp.ones_like(height)], -1)
    normal = normal / jnp.linalg.norm(normal, axis=-1, keepdims=True)
    rot = _rotation(yaw, pitch)

    def step(uv, _):
        u, v = uv
        z = _sample(height, u, v)
        p = jnp.einsum("ij,jhw->ihw", rot, jnp.stack([u, v, z]))
        return (u + (x - p[0]), v + (y - p[1])), None

    (u, v), _ = jax.lax.scan(step, (x, y), None, length=12)
    z = _sample(height, u, v)
    p = jnp.einsum("ij,jhw->ihw", rot, jnp.stack([u, v, z]))
    converged = (jnp.abs(p[0] - x) + jnp.abs(p[1] - y)) < 2.0 / s
    n = jnp.stack([_sample(normal[..., k], u, v) for k in range(3)], -1)
    n = jnp.einsum("ij,hwj->hwi", rot, n)
    n = n / jnp.maximum(jnp.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
    face = (_sample(mask, u, v) > 0.5) & converged
    return n, _sample(albedo, u, v), face, jnp.where(face, p[2], 0.0)


def _cast_shadow(depth, face, light, steps: int = 24, reach: float = 0.8):
    """(S, S) 1.0 where lit, 0.0 where the head blocks the light (marching towards the light)."""
    s = depth.shape[0]
    c = (jnp.arange(s) + 0.5) / s * 2.0 - 1.0
    x, y = jnp.meshgrid(c, -c)
    planar = jnp.sqrt(light[0] ** 2 + light[1] ** 2)
    # Parameter t along the light ray; planar distance t * planar covers `reach` half-sides.
    dt = reach / steps / jnp.maximum(planar, 1e-3)
    ts = dt * (jnp.arange(steps) + 1.0)

    def blocked(t):
        dq = _sample(depth, x + t * light[0], y + t * light[1])
        return dq > depth + t * light[2] + 1.5 / s

    hit = jax.vmap(blocked)(ts).any(0)
    return jnp.where(face & (planar > 1e-3), ~hit, True).astype(jnp.float32)


def _shade(n, albedo, face, depth, lights, ambient, background, cast_shadows):
    """(L, S, S) Lambertian images of one rendered pose under every light."""

    def one(light):
        lam = jnp.maximum(jnp.einsum("hwk,k->hw", n, light), 0.0)
        if cast_shadows:
            lam = lam * _cast_shadow(depth, face, light)
        img = albedo * (lam + ambient)
        wall = background * (jnp.maximum(light[2], 0.0) + ambient)
        return jnp.where(face, img, wall)

    return jax.vmap(one)(lights)


@functools.partial(jax.jit, static_argnames=("ambient", "background", "cast_shadows", "oversample"))
def _render_identity(height, albedo, mask, angles, lights, *, ambient, background, cast_shadows, oversample):
    """(P, L, S / oversample, S / oversample) images of one identity in every pose and light."""

    def pose(angle):
        n, alb, face, depth = _render_pose(height, albedo, mask, angle[0], angle[1])
        return _shade(n, alb, face, depth, lights, ambient, background, cast_shadows)

    imgs = jax.lax.map(pose, angles)
    if oversample > 1:
        s = imgs.shape[-1] // oversample
        imgs = imgs.reshape(imgs.shape[:2] + (s, oversample, s, oversample)).mean((3, 5))
    return imgs


def generate_faces(
    num_identities: int = 5,
    image_size: int = 128,
    *,
    num_azimuths: int = 8,
    num_elevations: int = 8,
    poses: Sequence[int] | int = 9,
    similarity: float = 0.5,
    cast_shadows: bool = False,
    ambient: float = 0.08,
    noise: float = 0.01,
    background: float = 0.3,
    oversample: int = 1,
    seed: int = 0,
) -> FaceDataset:
    """Renders a dense-sample face set: K identities x poses x lights, deterministic from ``seed``.

    Args:
        num_identities: K.
        image_size: output side in pixels (square images).
        num_azimuths, num_elevations: the light grid (see :func:`light_grid`); 8 x 8 = 64 as
            Yale B.
        poses: the number of Yale B poses to use (the first n of P00..P08), or explicit indices.
        similarity: in [0, 1]; identities deviate from the common template by
            ``1 - similarity`` times the population spread (1: all identical, the task is
            impossible; 0: full spread).
        cast_shadows: march each pixel towards the light and darken it where the head occludes
            the light (nose and brow shadows); off by default for speed.
        ambient: ambient light fraction added to the Lambertian term.
        noise: std of Gaussian camera noise in intensity units (1 = white), before 8-bit
            quantisation; drawn per image, so every exemplar is distinct.
        background: albedo of the flat wall behind the head.
        oversample: render at ``oversample * image_size`` and average-pool down (anti-aliasing).
        seed: all randomness (identities, noise) derives from it.

    Returns:
        A :class:`FaceDataset` with N = K * len(poses) * num_azimuths * num_elevations images,
        ordered identity, pose, light.
    """
    if not isinstance(num_identities, (int, np.integer)) or num_identities < 1:
        raise ValueError(f"num_identities: expected a positive int, got {num_identities!r}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"image_size: expected an int >= 8, got {image_size!r}")
    if not 0.0 <= float(similarity) <= 1.0:
        raise ValueError(f"similarity: expected a number in [0, 1], got {similarity!r}")
    if not isinstance(oversample, (int, np.integer)) or oversample < 1:
        raise ValueError(f"oversample: expected a positive int, got {oversample!r}")
    pose_idx = list(range(poses)) if isinstance(poses, (int, np.integer)) else [int(p) for p in poses]
    if not pose_idx or any(p < 0 or p >= len(YALE_POSES_DEG) for p in pose_idx):
        raise ValueError(f"poses: expected 1..{len(YALE_POSES_DEG)} or indices in 0..{len(YALE_POSES_DEG) - 1}, got {poses!r}")
    az, el = light_grid(num_azimuths, num_elevations)
    lights = jnp.asarray(light_vectors(az, el))
    s = int(image_size) * int(oversample)
    root = np.random.SeedSequence(seed)
    id_seq, noise_seq = root.spawn(2)
    surfaces = [face_surface(s, np.random.default_rng(q), 1.0 - float(similarity)) for q in id_seq.spawn(num_identities)]
    height, albedo, mask = (jnp.asarray(np.stack(t)) for t in zip(*surfaces))
    angles = jnp.asarray([YALE_POSES_DEG[p] for p in pose_idx], jnp.float32)

    opts = dict(ambient=float(ambient), background=float(background), cast_shadows=bool(cast_shadows),
                oversample=int(oversample))
    imgs = np.stack([np.asarray(_render_identity(height[k], albedo[k], mask[k], angles, lights, **opts))
                     for k in range(num_identities)])
    imgs = imgs.reshape(-1, image_size, image_size)
    rng = np.random.default_rng(noise_seq)
    imgs = imgs + noise * rng.standard_normal(imgs.shape).astype(np.float32)
    images = np.clip(np.round(imgs * 255.0), 0, 255).astype(np.uint8)
    n_pose, n_light = len(pose_idx), len(az)
    identity = np.repeat(np.arange(num_identities, dtype=np.int32), n_pose * n_light)
    pose = np.tile(np.repeat(np.asarray(pose_idx, np.int32), n_light), num_identities)
    return FaceDataset(
        images=images,
        identity=identity,
        pose=pose,
        azimuth=np.tile(az, num_identities * n_pose),
        elevation=np.tile(el, num_identities * n_pose),
        names=tuple(f"face{k}" for k in range(num_identities)),
        source="generated",
        attrs=dict(similarity=float(similarity), cast_shadows=int(bool(cast_shadows)), ambient=float(ambient),
                   noise=float(noise), background=float(background), oversample=int(oversample), seed=int(seed),
                   num_azimuths=int(num_azimuths), num_elevations=int(num_elevations),
                   poses=",".join(map(str, pose_idx))),
    )


# ---------------------------------------------------------------------------
# Yale Face Database B loader
# ---------------------------------------------------------------------------
class FaceDataError(ValueError):
    """A face file is corrupt, truncated or misnamed; the message names the file."""


YALE_NAME = re.compile(r"^yaleB(?P<subject>\d{2})_P(?P<pose>\d{2})A(?P<az>[+-]\d{3})E(?P<el>[+-]\d{2})\.pgm$")
YALE_AMBIENT = re.compile(r"^yaleB(?P<subject>\d{2})_P(?P<pose>\d{2})_Ambient\.pgm$")


def parse_yale_name(name: str) -> dict[str, Any] | None:
    """Parses a Yale B file name.

    Returns:
        ``{'subject', 'pose', 'azimuth', 'elevation', 'ambient'}`` (ambient images have azimuth
        and elevation NaN), or None when the name is not a Yale B image name.
    """
    m = YALE_NAME.match(name)
    if m:
        return dict(subject=int(m["subject"]), pose=int(m["pose"]), azimuth=float(int(m["az"])),
                    elevation=float(int(m["el"])), ambient=False)
    m = YALE_AMBIENT.match(name)
    if m:
        return dict(subject=int(m["subject"]), pose=int(m["pose"]), azimuth=float("nan"), elevation=float("nan"),
                    ambient=True)
    return None


def read_pgm(path: str | Path) -> np.ndarray:
    """Reads a binary (P5) or ASCII (P2) PGM file.

    Returns:
        (H, W) array, uint8 when maxval < 256, else uint16.

    Raises:
        FaceDataError: naming the file, when its header is malformed or its data truncated.
    """
    path = Path(path)
    raw = path.read_bytes()
    tokens: list[bytes] = []
    pos = 0
    # Header: magic, width, height, maxval, separated by whitespace, '#' comments to end of line.
    while len(tokens) < 4:
        while pos < len(raw) and raw[pos:pos + 1].isspace():
            pos += 1
        if pos < len(raw) and raw[pos:pos + 1] == b"#":
            while pos < len(raw) and raw[pos:pos + 1] not in (b"\n", b"\r"):
                pos += 1
            continue
        start = pos
        while pos < len(raw) and not raw[pos:pos + 1].isspace() and raw[pos:pos + 1] != b"#":
            pos += 1
        if start == pos:
            raise FaceDataError(f"{path}: truncated PGM header (found {len(tokens)} of 4 fields)")
        tokens.append(raw[start:pos])
        if len(tokens) == 1 and tokens[0] not in (b"P5", b"P2"):
            raise FaceDataError(f"{path}: not a PGM file (magic {tokens[0][:8]!r}, expected b'P5' or b'P2')")
    magic = tokens[0]
    try:
        width, height, maxval = (int(t) for t in tokens[1:])
    except ValueError:
        raise FaceDataError(f"{path}: malformed PGM header {b' '.join(tokens)!r}") from None
    if width < 1 or height < 1 or not 0 < maxval < 65536:
        raise FaceDataError(f"{path}: invalid PGM header: width {width}, height {height}, maxval {maxval}")
    n = width * height
    if magic == b"P5":
        pos += 1  # exactly one whitespace byte ends the header
        dtype = np.dtype(np.uint8) if maxval < 256 else np.dtype(">u2")
        need = n * dtype.itemsize
        if len(raw) - pos < need:
            raise FaceDataError(f"{path}: truncated PGM data: {len(raw) - pos} bytes for {width}x{height} pixels (need {need})")
        data = np.frombuffer(raw, dtype=dtype, count=n, offset=pos)
    else:
        try:
            data = np.array(raw[pos:].split()[:n], dtype=np.int64)
        except ValueError:
            raise FaceDataError(f"{path}: non-numeric pixel in ASCII PGM") from None
        if data.size < n:
            raise FaceDataError(f"{path}: truncated PGM data: {data.size} pixels for {width}x{height}")
    if data.max(initial=0) > maxval:
        raise FaceDataError(f"{path}: pixel value {int(data.max())} exceeds maxval {maxval}")
    out_dtype = np.uint8 if maxval < 256 else np.uint16
    return data.reshape(height, width).astype(out_dtype)


def _crop_resize(img: np.ndarray, crop: tuple[int, int, int, int] | None, size: int, path: Path) -> np.ndarray:
    h, w = img.shape
    if crop is None:  # the central square
        side = min(h, w)
        crop = ((h - side) // 2, (w - side) // 2, side, side)
    top, left, ch, cw = crop
    if top < 0 or left < 0 or ch < 1 or cw < 1 or top + ch > h or left + cw > w:
        raise FaceDataError(f"{path}: crop (top={top}, left={left}, height={ch}, width={cw}) does not fit a {h}x{w} image")
    patch = img[top:top + ch, left:left + cw].astype(np.float32)
    out = jax.image.resize(jnp.asarray(patch), (size, size), method="linear", antialias=True)
    return np.asarray(out)


def load_yale_b(
    root: str | Path,
    *,
    num_subjects: int = 5,
    subjects: Sequence[int] | None = None,
    image_size: int = 128,
    crop: tuple[int, int, int, int] | None = None,
    include_ambient: bool = False,
    seed: int = 0,
) -> FaceDataset:
    """Loads Yale Face Database B / Extended Yale B images from ``root``.

    ``root`` holds ``yaleBNN_PxxA+aaaE+ee.pgm`` files, either directly or in one folder per
    subject (``yaleBNN/``). Files that are not ``.pgm`` (``.info``, ``.bad``, ...) are ignored;
    a ``.pgm`` whose name is not a Yale B name, or that sits in another subject's folder, is an
    error.

    Args:
        root: the folder.
        num_subjects: K subjects drawn at random (with ``seed``) among those present, as the
            paper did; ignored when ``subjects`` is given.
        subjects: explicit subject numbers (e.g. ``(1, 2, 3, 5, 7)``).
        image_size: output side; each image is cropped then resized (linear, antialiased).
        crop: ``(top, left, height, width)`` in original pixels; default the central square.
        include_ambient: keep the ``_Ambient`` images (no light direction; NaN az/el).
        seed: for the random choice of subjects.

    Returns:
        A :class:`FaceDataset` (source ``'yale_b'``), identity k = the k-th chosen subject in
        increasing subject number, exemplars sorted by (subject, pose, azimuth, elevation).

    Raises:
        FaceDataError: naming the file, for corrupt, truncated or misnamed files, or when too
            few subjects are present.
    """
    root = Path(root)
    if not root.is_dir():
        raise FaceDataError(f"{root}: not a directory")
    entries = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() != ".pgm":
            continue
        info = parse_yale_name(path.name)
        if info is None:
            raise FaceDataError(f"{path}: .pgm file name is not a Yale B name (expected yaleBNN_PxxA+aaaE+ee.pgm)")
        folder = path.parent.name
        if path.parent != root and re.fullmatch(r"yaleB\d{2}", folder) and int(folder[5:]) != info["subject"]:
            raise FaceDataError(f"{path}: subject {info['subject']:02d} in the folder of {folder}")
        if info["ambient"] and not include_ambient:
            continue
        entries.append((info, path))
    present = sorted({info["subject"] for info, _ in entries})
    if not present:
        raise FaceDataError(f"{root}: no Yale B images found")
    if subjects is None:
        if num_subjects > len(present):
            raise FaceDataError(f"{root}: num_subjects={num_subjects} but only {len(present)} subjects present ({present})")
        chosen = sorted(np.random.default_rng(seed).choice(present, size=num_subjects, replace=False).tolist())
    else:
        chosen = sorted(int(s) for s in subjects)
        missing = [s for s in chosen if s not in present]
        if missing:
            raise FaceDataError(f"{root}: subjects {missing} not found; present: {present}")
    order = {s: k for k, s in enumerate(chosen)}
    entries = [(i, p) for i, p in entries if i["subject"] in order]
    entries.sort(key=lambda e: (e[0]["subject"], e[0]["pose"], np.nan_to_num(e[0]["azimuth"], nan=-1e9),
                                np.nan_to_num(e[0]["elevation"], nan=-1e9)))
    images = []
    for info, path in entries:
        img = read_pgm(path).astype(np.float32)
        if img.dtype != np.uint8 and img.max() > 255:
            img = img * (255.0 / 65535.0)
        images.append(_crop_resize(img, crop, image_size, path))
    return FaceDataset(
        images=np.clip(np.round(np.stack(images)), 0, 255).astype(np.uint8),
        identity=np.array([order[i["subject"]] for i, _ in entries], np.int32),
        pose=np.array([i["pose"] for i, _ in entries], np.int32),
        azimuth=np.array([i["azimuth"] for i, _ in entries], np.float32),
        elevation=np.array([i["elevation"] for i, _ in entries], np.float32),
        names=tuple(f"yaleB{s:02d}" for s in chosen),
        source="yale_b",
        attrs=dict(root=str(root), crop="" if crop is None else ",".join(map(str, crop)),
                   include_ambient=int(bool(include_ambient)), seed=int(seed)),
    )


# ---------------------------------------------------------------------------
# Split, probe, preprocessing, engine task
# ---------------------------------------------------------------------------
class Split(NamedTuple):
    """Indices into a :class:`FaceDataset`: ``train`` (n_train,) and ``test`` (n_test,), sorted."""

    train: np.ndarray
    test: np.ndarray


def stratified_split(identity: np.ndarray, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Splits exemplars into train and test within each identity.

    Each identity k with n_k exemplars puts ``round(test_fraction * n_k)`` of them (at least one
    when ``test_fraction > 0`` and n_k >= 2, at most n_k - 1) into the test set, drawn at random.

    Args:
        identity: (N,) int labels.
        test_fraction: in [0, 1).
        seed: the split's own seed (the same for every ensemble member).

    Returns:
        :class:`Split`.
    """
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction: expected a number in [0, 1), got {test_fraction!r}")
    identity = np.asarray(identity)
    rng = np.random.default_rng(seed)
    test = []
    for k in np.unique(identity):
        members = np.flatnonzero(identity == k)
        n_test = int(round(test_fraction * len(members)))
        if test_fraction > 0 and len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        test.extend(rng.choice(members, size=n_test, replace=False).tolist())
    test = np.sort(np.asarray(test, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(identity)), test)
    return Split(train=train, test=test)


def stratified_subset(identity: np.ndarray, per_identity: int, seed: int = 0, pool: np.ndarray | None = None) -> np.ndarray:
    """``per_identity`` exemplars of each identity drawn from ``pool`` (default all), sorted.

    Returns:
        (K * per_identity,) int indices, identity-major.
    """
    identity = np.asarray(identity)
    pool = np.arange(len(identity)) if pool is None else np.asarray(pool)
    rng = np.random.default_rng(seed)
    out = []
    for k in np.unique(identity):
        members = pool[identity[pool] == k]
        if len(members) < per_identity:
            raise ValueError(f"per_identity: identity {k} has only {len(members)} exemplars, asked for {per_identity}")
        out.append(np.sort(rng.choice(members, size=per_identity, replace=False)))
    return np.concatenate(out)


def to_input(images: Array, mean: float | Array = 0.0, std: float | Array = 1.0) -> Array:
    """uint8 grey (..., H, W) -> float32 (..., H, W, 3): ``(img / 255 - mean) / std``, replicated."""
    x = (jnp.asarray(images, jnp.float32) / 255.0 - mean) / std
    return jnp.repeat(x[..., None], 3, axis=-1)


def pixel_variance(images: np.ndarray, identity: np.ndarray, num_identities: int | None = None) -> np.ndarray:
    """Per-identity pixel-wise variance across exemplars (the paper's Figures 15-16).

    Args:
        images: (N, H, W) images (any dtype; computed in float64 on the 0..1 scale when uint8).
        identity: (N,) labels.

    Returns:
        (K, H, W) float32 variance of each pixel over identity k's exemplars.
    """
    x = np.asarray(images, np.float64)
    if np.asarray(images).dtype == np.uint8:
        x = x / 255.0
    identity = np.asarray(identity)
    k = int(identity.max()) + 1 if num_identities is None else int(num_identities)
    return np.stack([x[identity == c].var(axis=0) if (identity == c).any() else np.zeros(x.shape[1:])
                     for c in range(k)]).astype(np.float32)


def task_data(dataset: FaceDataset, split: Split, probe: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays every ensemble member trains and is observed on: pass them as ``shared=``.

    They are the same for all members (only the shuffle order differs, see :func:`member_data`),
    so the engine sends them to the device once and never copies them per member nor into a
    checkpoint.

    Returns:
        ``x_train`` (n_train, H, W) uint8, ``y_train`` (n_train,) int32, ``x_test``, ``y_test``,
        ``x_probe`` (P, H, W), ``y_probe`` (P,), and ``norm`` (2,) float32: the training pixels'
        mean and std on the 0..1 scale, used by :func:`to_input`.
    """
    tr = dataset.images[split.train].astype(np.float64) / 255.0
    return {
        "x_train": dataset.images[split.train],
        "y_train": dataset.identity[split.train].astype(np.int32),
        "x_test": dataset.images[split.test],
        "y_test": dataset.identity[split.test].astype(np.int32),
        "x_probe": dataset.images[probe],
        "y_probe": dataset.identity[probe].astype(np.int32),
        "norm": np.array([tr.mean(), max(tr.std(), 1e-6)], np.float32),
    }


@dataclasses.dataclass(frozen=True)
class FaceTask:
    """An engine task with epoch-wise shuffling (each exemplar once per epoch); hashable, so the
    training program compiles once per (n_train, batch_size).

    Epoch e of a member uses the permutation ``permutation(fold_in(shuffle_key, e), n_train)``
    and step s takes its ``s mod steps_per_epoch``-th block of ``batch_size`` indices
    (``steps_per_epoch = n_train // batch_size``; the remainder of each epoch's permutation is
    skipped). The member's data is ``{"shuffle_key": (2,) uint32}`` (:func:`member_data`); the
    images are the shared data of :func:`task_data`.

    Attributes:
        n_train: training exemplars.
        batch_size: examples per step.
    """

    n_train: int
    batch_size: int

    @property
    def steps_per_epoch(self) -> int:
        return self.n_train // self.batch_size

    def init(self, key: Array) -> dict[str, Array]:
        """The member's own data when ``train`` is not given ``data=``: its shuffle key."""
        return {"shuffle_key": jax.random.key_data(jax.random.fold_in(key, 0))}

    def batch(self, data: dict[str, Array], key: Array, step: Array) -> dict[str, Array]:
        """``x`` (B, H, W, 3) float32, ``y`` (B,) int32 and ``index`` (B,), rows of ``x_train``."""
        del key  # the order comes from the member's shuffle key, one permutation per epoch
        spe = self.steps_per_epoch
        epoch, pos = step // spe, step % spe
        perm = jax.random.permutation(jax.random.fold_in(jax.random.wrap_key_data(data["shuffle_key"]), epoch), self.n_train)
        idx = jax.lax.dynamic_slice(perm, (pos * self.batch_size,), (self.batch_size,))
        x = to_input(data["x_train"][idx], data["norm"][0], data["norm"][1])
        return {"x": x, "y": data["y_train"][idx], "index": idx}


def face_task(base: dict[str, np.ndarray], batch_size: int) -> FaceTask:
    """The :class:`FaceTask` of the training set in ``base`` (from :func:`task_data`).

    Raises:
        ValueError: ``batch_size`` outside 1..n_train.
    """
    n_train = int(np.shape(base["y_train"])[0])
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= n_train:
        raise ValueError(f"batch_size: expected 1..{n_train} (training exemplars), got {batch_size!r}")
    return FaceTask(n_train=n_train, batch_size=int(batch_size))


def member_data(seeds: Sequence[int]) -> dict[str, np.ndarray]:
    """Each member's own data: its ``shuffle_key`` (seed, 2) uint32, ``fold_in(key(s), 0x5EED)``.

    Pass it as ``data=`` to :func:`jaxdyn.engine.train`, with :func:`task_data` as ``shared=``.
    """
    keys = [np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.key(int(s)), 0x5EED))) for s in seeds]
    if not keys:
        raise ValueError("seeds: expected at least one seed")
    return {"shuffle_key": np.stack(keys)}
