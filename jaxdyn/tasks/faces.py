"""Dense-sample faces: a face generator, a Yale Face Database B loader, shortcut diagnostics, the split.

Hanson, Yadav & Hanson's dense-sample task (arXiv 2307.10991) takes a few identities (5) with
hundreds of exemplars each: the Yale Face Database B, where every subject is photographed in 9
poses under 64 light directions (576 images per subject). Two sources give the same
:class:`FaceDataset`:

* :func:`generate_faces` -- the embedded default. Each identity is a 3-D head (:func:`face_cloud`):
  a superellipsoid skull with a tapered jaw and the relief of nose, eye sockets and eyeballs,
  brows, cheekbones, lips and chin, a hair shell above a hairline, two ear flaps and a neck.
  Identities differ in shape only (:data:`FACE_SHAPE`); all share one albedo (skin, hair, the
  painted brows, irises and lips), so lighting, not skin, dominates the pixels, as in Yale B.
  The head is sampled densely and rendered (:func:`render_cloud`) by splatting the samples into
  a z-buffer: a Yale B pose rotates the camera about the head and re-projects the surface (the
  nearest sample wins; no image is warped), under Yale B's 64 light directions
  (:data:`YALE_LIGHTS_DEG`) with Lambertian shading

      I(x) = rho(x) * (max(0, n(x) . l) * s(x) + ambient),

  where rho is the albedo, n the unit normal, l the unit light direction and s(x) in [0, 1]
  the optional cast-shadow term from a shadow map per light; then each image's camera sways a
  little (Yale B gives a face position per image), camera noise and 8-bit quantisation, as in
  the PGM originals. There is no brightness normalisation: the exposure is fixed.
* :func:`load_yale_b` -- the real database, when a user has it: ``yaleBNN_PxxA+aaaE+ee.pgm``
  files, flat or one folder per subject, optionally close-cropped to the face from the
  database's own crop coordinates.

:func:`shortcut_diagnostics` checks a set for shortcuts a network could take instead of learning
faces: identity from mean brightness alone, a raw-pixel linear classifier overall and by
Georghiades et al.'s illumination subsets (:func:`light_subset`), and how often one identity is
the brightest. Measured on the default generated set (5 x 576, seed 0, split 80/20): at 32 px
brightness 0.15 (chance 0.20) and linear 0.78 (0.88 and 0.92 in subsets 1-2, 0.67 in subset
5); at 128 px 0.14 and 0.81 (0.88, 0.92 ... 0.71); with cast shadows at 128 px 0.17 and 0.73.

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
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
"""A JAX array (alias of ``jax.Array``)."""

YALE_POSES_DEG: tuple[tuple[float, float], ...] = (
    (0.0, 0.0),
    *((12.0 * math.cos(math.radians(a)), 12.0 * math.sin(math.radians(a))) for a in (0, 72, 144, 216, 288)),
    *((24.0 * math.cos(math.radians(a)), 24.0 * math.sin(math.radians(a))) for a in (0, 120, 240)),
)
"""Yale B's 9 poses as (yaw, pitch) in degrees (yaw turns the head about the vertical axis): P00
frontal, P01-P05 about 12 degrees off the camera axis, P06-P08 about 24 degrees. Yale B states only
those angles; the directions around the axis are the project's choice."""


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

    def subset(self, index: np.ndarray) -> FaceDataset:
        """The exemplars at ``index`` (1-D int array), same identities and names."""
        index = np.asarray(index)
        return self._replace(images=self.images[index], identity=self.identity[index], pose=self.pose[index],
                             azimuth=self.azimuth[index], elevation=self.elevation[index])


# ---------------------------------------------------------------------------
# Light directions
# ---------------------------------------------------------------------------
YALE_LIGHTS_DEG: tuple[tuple[int, int], ...] = (
    (0, 0), (0, 20), (0, 45), (0, 90), (0, -20), (0, -35),
    *((side * a, e) for side in (1, -1) for a, e in (
        (5, 10), (5, -10), (10, 0), (10, -20), (15, 20), (20, 10), (20, -10), (20, -40), (25, 0), (35, 15),
        (35, 40), (35, 65), (35, -20), (50, 0), (50, -40), (60, 20), (60, -20), (70, 0), (70, 45), (70, -35),
        (85, 20), (85, -20), (95, 0), (110, 15), (110, 40), (110, 65), (110, -20), (120, 0), (130, 20))),
)
"""Yale B's 64 strobe directions (azimuth, elevation) in integer degrees, as its file names give
them (``yaleBNN_PxxA+aaaE+ee.pgm``); the same 64 in every pose."""
LIGHT_SUBSET_EDGES_DEG: tuple[float, ...] = (12.0, 25.0, 50.0, 77.0)
"""Upper edges, in degrees of a light's angle to the camera axis, of Yale B's illumination subsets
1-4 (Georghiades, Belhumeur & Kriegman 2001); subset 5 is beyond 77 degrees."""


def yale_lights() -> tuple[np.ndarray, np.ndarray]:
    """Yale B's 64 light directions.

    Returns:
        (azimuth, elevation): two (64,) float32 arrays in degrees, in the order of
        :data:`YALE_LIGHTS_DEG` (seven of them within 12 degrees of the camera axis, 19 beyond 77).
    """
    a = np.asarray(YALE_LIGHTS_DEG, np.float32)
    return a[:, 0].copy(), a[:, 1].copy()


def light_grid(num_azimuths: int = 8, num_elevations: int = 8, max_azimuth: float = 110.0,
               min_elevation: float = -35.0, max_elevation: float = 70.0) -> tuple[np.ndarray, np.ndarray]:
    """A regular grid of light directions inside Yale B's range (azimuth -130..130, elevation -40..90).

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
    """Unit light directions (L, 3) in head coordinates (x right, y up, z towards the P00 camera).

    Azimuth 0, elevation 0 is the frontal camera axis; azimuth turns the light about the vertical
    axis (positive: image right), elevation raises it.
    """
    a = np.deg2rad(np.asarray(azimuth_deg, np.float64))
    e = np.deg2rad(np.asarray(elevation_deg, np.float64))
    return np.stack([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)], axis=-1).astype(np.float32)


def light_angle(azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
    """Angle in degrees between each light and the camera axis, arccos(cos a cos e); (N,) -> (N,)."""
    a = np.deg2rad(np.asarray(azimuth_deg, np.float64))
    e = np.deg2rad(np.asarray(elevation_deg, np.float64))
    return np.rad2deg(np.arccos(np.clip(np.cos(a) * np.cos(e), -1.0, 1.0)))


def light_subset(azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
    """Georghiades et al.'s illumination subset (1..5) of each light by its angle to the camera axis.

    Subset s holds angles in (edge[s-2], edge[s-1]] of :data:`LIGHT_SUBSET_EDGES_DEG` (subset 1:
    0-12 degrees, 2: 13-25, 3: 26-50, 4: 51-77, 5: beyond). Lights with no direction (NaN, the
    ambient images) get 0. (N,) -> (N,) int.
    """
    angle = np.round(light_angle(azimuth_deg, elevation_deg), 6)  # (25, 0) is 25 degrees, not 25 + 1e-14
    subset = np.digitize(angle, LIGHT_SUBSET_EDGES_DEG, right=True) + 1
    return np.where(np.isnan(angle), 0, subset).astype(np.int64)


# ---------------------------------------------------------------------------
# Generator: a 3-D head model rendered by point splatting with a z-buffer and shadow maps
# ---------------------------------------------------------------------------
FRAME = 0.82
"""Half the side of the view, in scene units: the P00 camera sees x, y in [-FRAME, FRAME]."""
HEAD_Y = 0.12
"""Height of the head centre in scene units: the head is centred at (0, HEAD_Y, 0)."""
# The albedo every identity shares (identities differ in shape only); the wall is ``background``.
SKIN_ALBEDO = 0.72
"""Reflectance of the skin shared by every identity (ears, neck, the face before ``_skin_albedo``
paints brows, eyes, nostrils and lips relative to the landmarks)."""
HAIR_ALBEDO = 0.16
"""Reflectance of the hair shell, shared by every identity."""
# How many splatted surface samples per sub-pixel side: enough that no surface shows holes in the
# 24-degree poses (checked by the tests).
_SAMPLES_PER_SUBPIXEL = 1.6

FACE_SHAPE: dict[str, tuple[float, float]] = {
    # head: a superellipsoid of half-axes (ax, ay, az), exponents p (horizontal) and q (vertical)
    "head_ax": (0.60, 0.03), "head_ay": (0.92, 0.035), "head_az": (0.78, 0.04),
    "head_p": (2.4, 0.10), "head_q": (3.0, 0.20), "jaw": (0.22, 0.06),
    "chin_v": (-0.80, 0.03), "chin_amp": (0.05, 0.02), "chin_w": (0.16, 0.03),
    "nose_bridge_v": (0.16, 0.03), "nose_tip_v": (-0.24, 0.03), "nose_amp": (0.13, 0.025),
    "nose_w": (0.15, 0.02), "nose_bridge_w": (0.075, 0.01), "nose_tip_r": (0.06, 0.01), "alar_w": (0.12, 0.015),
    "eye_u": (0.40, 0.03), "eye_v": (0.20, 0.025), "socket_depth": (0.075, 0.02),
    "socket_su": (0.15, 0.02), "socket_sv": (0.085, 0.012),
    "brow_v": (0.36, 0.025), "brow_amp": (0.035, 0.015),
    "cheek_u": (0.56, 0.04), "cheek_v": (-0.05, 0.04), "cheek_amp": (0.045, 0.02),
    "mouth_v": (-0.50, 0.03), "mouth_w": (0.20, 0.03), "lip_amp": (0.03, 0.01), "maxilla_amp": (0.05, 0.015),
    "forehead_amp": (0.03, 0.02),
    # ears: two-sided flaps; hair: a shell over the cranium (a shared style with small variations)
    "ear_v": (-0.02, 0.04), "ear_h": (0.55, 0.05), "ear_w": (0.30, 0.015), "ear_angle": (22.0, 3.0),
    "ear_phi": (97.0, 4.0),
    "hairline_v": (0.62, 0.02), "temple_recess": (0.3, 0.1), "hair_volume": (0.06, 0.01),
    "neck_r": (0.40, 0.03),
}
"""The identity shape parameters: ``{name: (template value, spread across identities)}``; an
identity's value is template + (1 - similarity) * spread * N(0, 1) (:func:`face_parameters`).
Lengths are scene units; facial feature positions are in layout coordinates u = x / head_ax,
v = (y - HEAD_Y) / head_ay. There are no albedo parameters: identities differ in 3-D shape only."""


class FaceCloud(NamedTuple):
    """A head as splatted surface samples (head coordinates: x right, y up, z towards the P00 camera).

    Attributes:
        position: (M, 3) float32 sample positions.
        normal: (M, 3) float32 outward unit normals.
        albedo: (M,) float32 reflectance.
        caster: (M', 3) float32 a sparser subset of ``position`` that casts the shadows.
    """

    position: Array
    normal: Array
    albedo: Array
    caster: Array


def face_parameters(rng: np.random.Generator, scale: float) -> dict[str, float]:
    """One identity's shape: each :data:`FACE_SHAPE` entry ``template + scale * spread * N(0, 1)``."""
    return {k: float(base + scale * spread * rng.standard_normal()) for k, (base, spread) in FACE_SHAPE.items()}


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(u, v, u0, v0, su, sv):
    return np.exp(-0.5 * (((u - u0) / su) ** 2 + ((v - v0) / sv) ** 2))


def _grid_normals(p, hint):
    """Unit normals (A, B, 3) of a parametric grid of points ``p`` (A, B, 3), on the side of ``hint``."""
    n = np.cross(np.gradient(p, axis=0), np.gradient(p, axis=1))
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    return n * np.where(np.sum(n * hint, -1, keepdims=True) < 0, -1.0, 1.0)


def _head_point(phi, theta, p):
    """The bare head (superellipsoid, tapered jaw) in direction (phi, theta) from its centre.

    Returns (point relative to the centre (..., 3), unit direction (..., 3), u, v) where (u, v) are
    the layout coordinates before the jaw taper.
    """
    dx, dy, dz = np.cos(theta) * np.sin(phi), np.sin(theta), np.cos(theta) * np.cos(phi)
    hp, hq = p["head_p"], p["head_q"]
    horizontal = (np.abs(dx / p["head_ax"]) ** hp + np.abs(dz / p["head_az"]) ** hp) ** (hq / hp)
    r = (horizontal + np.abs(dy / p["head_ay"]) ** hq) ** (-1.0 / hq)
    x, y, z = r * dx, r * dy, r * dz
    u, v = x / p["head_ax"], y / p["head_ay"]
    x = x * (1.0 - p["jaw"] * _smoothstep(-0.05, -1.0, v))
    return np.stack([x, y, z], -1), np.stack([dx, dy, dz], -1), u, v


def _relief(u, v, p):
    """Outward displacement of the facial features at layout coordinates (u, v)."""
    g = _gauss
    nb, nt = p["nose_bridge_v"], p["nose_tip_v"]
    t = np.clip((nb - v) / (nb - nt), 0.0, 1.0)  # 0 at the bridge, 1 at the tip
    width = p["nose_bridge_w"] + (p["nose_w"] - p["nose_bridge_w"]) * t
    profile = p["nose_amp"] * (0.25 + 0.75 * t ** 1.3) * _smoothstep(nb + 0.08, nb - 0.02, v)
    profile = profile * np.where(v < nt, np.exp(-0.5 * ((v - nt) / 0.04) ** 2), 1.0)
    d = profile * np.exp(-0.5 * (u / width) ** 2)
    d = d + 0.3 * p["nose_amp"] * g(u, v, 0.0, nt + 0.01, p["nose_tip_r"], 0.9 * p["nose_tip_r"])
    d = d - 0.02 * g(u, v, 0.0, nb + 0.05, 0.09, 0.05)  # nasion
    for side in (-1.0, 1.0):
        d = d + 0.22 * p["nose_amp"] * g(u, v, side * p["alar_w"], nt - 0.02, 0.06, 0.05)
        d = d - p["socket_depth"] * g(u, v, side * p["eye_u"], p["eye_v"], p["socket_su"], p["socket_sv"])
        d = d + 0.6 * p["socket_depth"] * g(u, v, side * p["eye_u"], p["eye_v"] - 0.005, 0.075, 0.045)  # eyeball
        d = d + p["brow_amp"] * g(u, v, side * 0.3, p["brow_v"], 0.22, 0.05)
        d = d + p["cheek_amp"] * g(u, v, side * p["cheek_u"], p["cheek_v"], 0.13, 0.10)
        d = d - 0.025 * g(u, v, side * 0.55, -0.38, 0.13, 0.10)  # below the cheekbone
        d = d - 0.02 * g(u, v, side * 0.82, 0.35, 0.12, 0.15)  # temple
    mv, mw = p["mouth_v"], p["mouth_w"]
    d = d + p["maxilla_amp"] * g(u, v, 0.0, mv + 0.05, 0.28, 0.16)
    d = d + p["lip_amp"] * g(u, v, 0.0, mv + 0.035, mw, 0.03)
    d = d + 1.15 * p["lip_amp"] * g(u, v, 0.0, mv - 0.045, 0.85 * mw, 0.035)
    d = d - 0.012 * g(u, v, 0.0, mv, mw, 0.012)  # between the lips
    d = d - 0.015 * g(u, v, 0.0, mv - 0.13, 0.15, 0.035)  # labiomental fold
    d = d + p["chin_amp"] * g(u, v, 0.0, p["chin_v"], p["chin_w"], 0.09)
    d = d + p["forehead_amp"] * g(u, v, 0.0, 0.65, 0.35, 0.2)
    return d


def _skin_albedo(u, v, p):
    """The shared albedo of the face, painted relative to the landmarks (brows, irises, nostrils, lips)."""
    g = _gauss
    a = np.full_like(u, SKIN_ALBEDO)
    for side in (-1.0, 1.0):
        du = u - side * 0.33
        a = a * (1.0 - 0.6 * g(du, v + 0.6 * du ** 2, 0.0, p["brow_v"] + 0.03, 0.17, 0.028))  # eyebrow
        a = a * (1.0 + 0.18 * g(u, v, side * p["eye_u"], p["eye_v"], 0.09, 0.032))  # white of the eye
        a = a * (1.0 - 0.8 * g(u, v, side * p["eye_u"], p["eye_v"], 0.04, 0.036))  # iris
        a = a * (1.0 - 0.6 * g(u, v, side * 0.07, p["nose_tip_v"] - 0.07, 0.03, 0.02))  # nostril
    a = a * (1.0 - 0.3 * g(u, v, 0.0, p["mouth_v"], 0.95 * p["mouth_w"], 0.05))  # lips
    return np.clip(a, 0.03, 0.95)


def _hairline(phi_abs_deg, p):
    """Elevation (degrees) of the hair's lower edge at |azimuth| ``phi_abs_deg`` around the head."""
    th0 = np.rad2deg(np.arcsin(np.clip(p["hairline_v"], -0.9, 0.95)))
    knots = np.array([0.0, 30.0, 50.0, 68.0, 78.0, 86.0, 110.0, 125.0, 150.0, 181.0])
    values = np.array([th0, th0 + 3.0, th0 - 8.0 + 25.0 * p["temple_recess"], 8.0, -8.0, 18.0, 16.0, -20.0, -40.0, -40.0])
    return np.interp(phi_abs_deg, knots, values)


def face_cloud(params: dict[str, float], density: float) -> FaceCloud:
    """One identity's head as surface samples: skin, hair shell, ears, neck.

    The skin is a superellipsoid (half-axes ``head_ax, head_ay, head_az``) with a tapered jaw and
    Gaussian relief for the nose, eye sockets and eyeballs, brows, cheekbones, lips, chin and
    forehead; the hair is a shell above an identity-specific hairline; each ear a two-sided flap
    with a rim and a bowl; the neck a cylinder. The albedo is the same function of the face's
    layout for every identity (``_skin_albedo``, :data:`HAIR_ALBEDO`). Each head is scaled
    so that its outline (``head_ax * head_ay``) fills the frame alike, as a close crop framing
    each subject would.

    Args:
        params: the :data:`FACE_SHAPE` entries (:func:`face_parameters`).
        density: samples per scene unit along each surface direction.

    Returns:
        :class:`FaceCloud` of numpy float32 arrays; M grows with ``density``
        (and a little with the hairline).
    """
    p = params
    centre = np.array([0.0, HEAD_Y, 0.0])
    # Skin and hair share one (theta, phi) grid; the back of the head (|phi| > 125 deg) is never
    # seen by the Yale B poses and only shades itself.
    phi = np.linspace(-math.radians(125), math.radians(125), int(math.ceil(3.4 * density)), dtype=np.float32)
    theta = np.linspace(math.radians(-80), math.radians(89), int(math.ceil(2.8 * density)), dtype=np.float32)
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    base, direction, u, v = _head_point(ph, th, p)
    front = _smoothstep(0.15, 0.5, direction[..., 2])
    skin = base + (front * _relief(u, v, p))[..., None] * direction + centre
    skin_n = _grid_normals(skin, direction)
    skin_a = np.where(front > 0, _skin_albedo(u, v, p), SKIN_ALBEDO)
    ramp = _smoothstep(-1.0, 7.0, np.rad2deg(th) - _hairline(np.abs(np.rad2deg(ph)), p))
    volume = p["hair_volume"] * (0.55 + 0.45 * _smoothstep(-0.3, 0.9, np.sin(th)))
    strands = 0.003 * np.sin(np.abs(ph) * 70.0 + 4.0 * np.sin(th * 9.0)) * ramp  # left-right symmetric
    # Below the hairline the shell dips under the skin, so the hair's edge grows out of it.
    hair = skin + (volume * ramp - 0.015 * (1.0 - ramp) + strands)[..., None] * direction
    hair_n = _grid_normals(hair, direction)
    # Hair wholly under the skin is never seen and never the nearest surface to a light: leave it
    # out. (The skin under the hair stays: it fills the hair shell's sparser spots.)
    parts = [(skin, skin_n, skin_a, np.ones(ramp.shape, bool)), (hair, hair_n, np.full_like(ramp, HAIR_ALBEDO), ramp > 0.0)]

    tilt = math.radians(12.0)  # ears lean back
    e_up = np.array([0.0, math.cos(tilt), -math.sin(tilt)])
    s_grid = np.linspace(0.0, 1.0, int(math.ceil(0.45 * density)), dtype=np.float32)
    t_grid = np.linspace(-1.0, 1.0, int(math.ceil(0.7 * density)), dtype=np.float32)
    t_e, s_e = np.meshgrid(t_grid, s_grid, indexing="ij")
    rr = ((s_e - 0.55) / 0.55) ** 2 + (t_e * np.where(t_e > 0, 1.0, 1.15)) ** 2  # outline, lobe narrower
    inside = rr <= 1.0
    bowl = -0.03 * (1.0 - rr) * inside + 0.012 * np.exp(-0.5 * ((np.sqrt(np.minimum(rr, 1.0)) - 0.88) / 0.06) ** 2)
    for side in (-1.0, 1.0):
        attach, _, _, _ = _head_point(side * np.deg2rad(p["ear_phi"]), np.arcsin(np.clip(p["ear_v"], -0.5, 0.5)), p)
        attach = attach + centre - np.array([side * 0.04, 0.0, 0.0])  # root inside the head
        angle = np.deg2rad(p["ear_angle"])
        e_out = np.array([side * np.sin(angle), 0.0, -np.cos(angle)])
        e_n = side * np.cross(e_out, e_up)
        e_n = e_n / np.linalg.norm(e_n)
        reach = p["ear_w"] * (0.1 + s_e)
        flap = attach + reach[..., None] * e_out + (0.5 * p["ear_h"] * t_e)[..., None] * e_up + bowl[..., None] * e_n
        hidden = attach - np.array([side * 0.15, 0.0, 0.0])  # samples outside the outline go inside the head
        for face_side in (1.0, -1.0):
            q = flap - (0.0 if face_side > 0 else 0.012) * e_n
            n = _grid_normals(q, np.broadcast_to(face_side * e_n, q.shape))
            parts.append((np.where(inside[..., None], q, hidden), n, np.full(q.shape[:-1], SKIN_ALBEDO), inside))

    neck_phi = np.linspace(-math.radians(130), math.radians(130), int(math.ceil(1.9 * density)), dtype=np.float32)
    neck_y = np.linspace(HEAD_Y - 0.35, -1.6, int(math.ceil(1.5 * density)), dtype=np.float32)
    ny, nphi = np.meshgrid(neck_y, neck_phi, indexing="ij")
    neck = np.stack([p["neck_r"] * np.sin(nphi), ny, -0.12 + 0.95 * p["neck_r"] * np.cos(nphi)], -1)
    neck_n = _grid_normals(neck, np.stack([np.sin(nphi), np.zeros_like(ny), np.cos(nphi)], -1))
    parts.append((neck, neck_n, np.full(ny.shape, SKIN_ALBEDO), np.ones(ny.shape, bool)))

    scale = np.float32(np.sqrt(FACE_SHAPE["head_ax"][0] * FACE_SHAPE["head_ay"][0] / (p["head_ax"] * p["head_ay"])))
    position = np.concatenate([q[keep] for q, _, _, keep in parts]) * scale
    caster = np.concatenate([q[::2, ::2][keep[::2, ::2]] for q, _, _, keep in parts]) * scale
    normal = np.concatenate([n[keep] for _, n, _, keep in parts])
    albedo = np.concatenate([a[keep] for _, _, a, keep in parts])
    return FaceCloud(position.astype(np.float32), normal.astype(np.float32), albedo.astype(np.float32),
                     caster.astype(np.float32))


def _pad_cloud(cloud: FaceCloud, size: int, caster_size: int) -> FaceCloud:
    """``cloud`` padded to ``size`` samples (``caster_size`` casters) at the head's centre, where no
    camera or light ever sees them, so that identities share one compiled renderer."""
    hidden = np.array([0.0, HEAD_Y, 0.0], np.float32)
    extra, extra_c = size - len(cloud.position), caster_size - len(cloud.caster)
    return FaceCloud(np.concatenate([cloud.position, np.broadcast_to(hidden, (extra, 3))]),
                     np.concatenate([cloud.normal, np.zeros((extra, 3), np.float32)]),
                     np.concatenate([cloud.albedo, np.zeros(extra, np.float32)]),
                     np.concatenate([cloud.caster, np.broadcast_to(hidden, (extra_c, 3))]))


def pose_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(3, 3) float32 rotation taking head coordinates to a pose's camera coordinates.

    Yaw about the vertical axis, then pitch about the horizontal one: positive yaw turns the
    nose towards image right, positive pitch turns it down. Equivalently the camera moves around
    the fixed head (and the fixed lights).
    """
    cy, sy = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    cp, sp = math.cos(math.radians(pitch_deg)), math.sin(math.radians(pitch_deg))
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return (r_pitch @ r_yaw).astype(np.float32)


def _zbuffer(x, y, depth, res):
    """Nearest sample per pixel: x, y in [-1, 1] (y up), larger ``depth`` nearer. (M,) -> (res*res,) x 2.

    Returns the winning sample's index (-1 where none falls) and its depth (-inf there).
    """
    col = jnp.floor((x + 1.0) * 0.5 * res).astype(jnp.int32)
    row = jnp.floor((1.0 - y) * 0.5 * res).astype(jnp.int32)
    inside = (col >= 0) & (col < res) & (row >= 0) & (row < res)
    flat = jnp.where(inside, row * res + col, res * res)  # one spare bin for samples outside
    nearest = jnp.full(res * res + 1, -jnp.inf, depth.dtype).at[flat].max(depth)
    index = jnp.where(depth >= nearest[flat], jnp.arange(x.shape[0], dtype=jnp.int32), -1)
    winner = jnp.full(res * res + 1, -1, jnp.int32).at[flat].max(index)
    return winner[:-1], nearest[:-1]


def _light_basis(light):
    """Two unit vectors completing ``light`` (3,) to an orthonormal frame (the shadow map's axes)."""
    helper = jnp.where(jnp.abs(light[1]) > 0.9, jnp.array([0.0, 0.0, 1.0]), jnp.array([0.0, 1.0, 0.0]))
    e1 = jnp.cross(helper, light)
    e1 = e1 / jnp.linalg.norm(e1)
    return e1, jnp.cross(light, e1)


@functools.partial(jax.jit, static_argnames=("size", "oversample", "margin", "cast_shadows"))
def render_cloud(cloud: FaceCloud, rotations: Array, lights: Array, jitter: Array, ambient: float | Array,
                 background: float | Array, *, size: int, oversample: int = 2, margin: float = 1.25,
                 cast_shadows: bool = True, wall_z: float = -1.6, shadow_extent: float = 1.8) -> Array:
    """Renders a head in every pose and light: orthographic camera, z-buffer, Lambertian shading.

    Each pose's camera sees the head rotated by ``rotations[p]`` (head -> camera coordinates)
    over a canvas ``margin`` times the frame; the nearest sample wins each sub-pixel, and pixels
    that no sample reaches show a Lambertian wall (albedo ``background``) at z = ``wall_z``
    behind the head. The lights stay fixed to the head (Yale B's strobes are on the rig and its
    file names give each light relative to the frontal camera), so a pose changes the view, not
    the lighting. A sample at x with normal n and albedo rho under light l has radiance

        rho * (max(0, n . l) * s(x, l) + ambient),

    where s is the fraction of a 2 x 2 shadow-map neighbourhood that sees the light
    (``cast_shadows``; else 1). Each image is then taken by a camera moved within the plane of
    the canvas by ``jitter[p, l] = (dx, dy, roll, log zoom)`` (dx, dy in frame half-widths, roll
    in radians) -- an exact rigid motion of an orthographic camera, the subject's small sway --
    and ``oversample x oversample`` sub-pixels are averaged into each pixel.

    Args:
        cloud: :class:`FaceCloud`.
        rotations: (P, 3, 3) pose rotations (:func:`pose_rotation`).
        lights: (L, 3) unit light directions in head coordinates (:func:`light_vectors`).
        jitter: (P, L, 4) camera motions; zeros for none.
        ambient, background: scalars.
        size: output side in pixels; oversample: sub-pixels per pixel side; margin: canvas /
            frame (must cover the jitter); cast_shadows: shadow maps on or off (static).

    Returns:
        (P, L, size, size) float32 radiance (1 = a white surface facing the light).
    """
    sub = size * oversample
    canvas = int(math.ceil(sub * margin / 2)) * 2
    half = canvas / sub  # the canvas' half-side in frame half-widths
    c = ((jnp.arange(canvas) + 0.5) / canvas * 2.0 - 1.0) * half
    cx, cy = (a.reshape(-1) for a in jnp.meshgrid(c, -c))

    def view(rot):
        cam = cloud.position @ rot.T
        winner, _ = _zbuffer(cam[:, 0] / (FRAME * half), cam[:, 1] / (FRAME * half), cam[:, 2], canvas)
        hit = winner >= 0
        w = jnp.maximum(winner, 0)
        origin = FRAME * jnp.stack([cx, cy, jnp.zeros_like(cx)], -1) @ rot  # pixel centres, head coordinates
        wall = origin + ((wall_z - origin[:, 2]) / rot[2, 2])[:, None] * rot[2][None, :]  # along the view ray
        point = jnp.where(hit[:, None], cloud.position[w], wall)
        normal = jnp.where(hit[:, None], cloud.normal[w], jnp.array([0.0, 0.0, 1.0]))
        albedo = jnp.where(hit, cloud.albedo[w], background)
        return point, normal, albedo

    points, normals, albedos = jax.lax.map(view, rotations)  # (P, canvas**2, ...)
    texel = 2.0 * shadow_extent / sub
    o = (jnp.arange(sub) + 0.5) / sub * 2.0 - 1.0
    ox, oy = jnp.meshgrid(o, -o)

    def shade(args):
        light, jit = args
        lam = jnp.maximum(jnp.einsum("pmk,k->pm", normals, light), 0.0)
        if cast_shadows:
            e1, e2 = _light_basis(light)
            caster = cloud.caster
            _, smap = _zbuffer(caster @ e1 / shadow_extent, caster @ e2 / shadow_extent, caster @ light, sub)
            q = points + 1.5 * texel * normals  # normal offset against self-shadowing
            fc = (q @ e1 / shadow_extent + 1.0) * 0.5 * sub - 0.5
            fr = (1.0 - q @ e2 / shadow_extent) * 0.5 * sub - 0.5
            depth = q @ light
            c0, r0 = jnp.floor(fc), jnp.floor(fr)
            wc, wr = fc - c0, fr - r0
            lit = 0.0
            for dr, dc, weight in ((0, 0, (1 - wr) * (1 - wc)), (0, 1, (1 - wr) * wc), (1, 0, wr * (1 - wc)), (1, 1, wr * wc)):
                cc, rr = (c0 + dc).astype(jnp.int32), (r0 + dr).astype(jnp.int32)
                ok = (cc >= 0) & (cc < sub) & (rr >= 0) & (rr < sub)
                nearest = jnp.where(ok, smap[jnp.clip(rr, 0, sub - 1) * sub + jnp.clip(cc, 0, sub - 1)], -jnp.inf)
                lit = lit + weight * (depth >= nearest - texel)
            lam = lam * lit
        radiance = (albedos * (lam + ambient)).reshape(-1, canvas, canvas)

        def camera(img, j):
            zoom = jnp.exp(j[3])
            x = zoom * (jnp.cos(j[2]) * ox - jnp.sin(j[2]) * oy) + j[0]
            y = zoom * (jnp.sin(j[2]) * ox + jnp.cos(j[2]) * oy) + j[1]
            coords = [(1.0 - y / half) * 0.5 * canvas - 0.5, (x / half + 1.0) * 0.5 * canvas - 0.5]
            return jax.scipy.ndimage.map_coordinates(img, coords, order=1, mode="nearest")

        out = jax.vmap(camera)(radiance, jit)
        return out.reshape(-1, size, oversample, size, oversample).mean((2, 4))

    return jnp.swapaxes(jax.lax.map(shade, (lights, jnp.swapaxes(jitter, 0, 1))), 0, 1)


def _check_jitter(jitter) -> tuple[float, float, float]:
    try:
        values = tuple(float(j) for j in jitter)
    except TypeError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(j) and j >= 0 for j in values) or values[0] > 0.05 \
            or values[1] > 5.0 or values[2] > 0.05:
        raise ValueError(f"jitter: expected (shift, roll, zoom) with 0 <= shift <= 0.05 (image sides), 0 <= roll <= 5 "
                         f"(degrees), 0 <= zoom <= 0.05, got {jitter!r}")
    return values


def generate_faces(
    num_identities: int = 5,
    image_size: int = 128,
    *,
    num_azimuths: int | None = None,
    num_elevations: int | None = None,
    lights: str | None = None,
    poses: Sequence[int] | int = 9,
    similarity: float = 0.5,
    cast_shadows: bool = False,
    ambient: float = 0.05,
    noise: float = 0.01,
    background: float = 0.3,
    jitter: Sequence[float] = (0.01, 1.0, 0.01),
    oversample: int = 2,
    seed: int = 0,
) -> FaceDataset:
    """Renders a dense-sample face set: K identities x poses x lights, deterministic from ``seed``.

    Each identity is a 3-D head (:func:`face_cloud`) whose shape -- head proportions, jaw, nose,
    eye sockets, brows, cheekbones, lips, chin, ears, hairline -- is drawn around a template;
    all identities share one albedo, so no identity is brighter or darker by its skin. Each is
    rendered (:func:`render_cloud`) in Yale B's poses (the camera rotated about the head, the
    surface re-projected through a z-buffer) under Yale B's light directions with Lambertian
    shading, optionally cast shadows (shadow maps), a small sway of the subject per image
    (``jitter``), camera noise and 8-bit quantisation. The exposure is fixed: images are not
    normalised in brightness, so dark lights give dark images, as in Yale B.

    Args:
        num_identities: K.
        image_size: output side in pixels (square images), at least 8.
        num_azimuths, num_elevations: a regular light grid (:func:`light_grid`, 8 each when only
            one is given) instead of Yale B's lights.
        lights: ``'yale'`` (Yale B's 64 directions, :func:`yale_lights`; the default when no
            grid size is given) or ``'grid'``.
        poses: the number of Yale B poses to use (the first n of P00..P08), or explicit indices.
        similarity: in [0, 1]; identities deviate from the template by ``1 - similarity`` times
            the population spread of :data:`FACE_SHAPE` (1: all identical; 0: full spread).
        cast_shadows: shadow maps (the nose's and brows' shadows, the head's on the neck and wall).
        ambient: ambient light added to the Lambertian term.
        noise: std of Gaussian camera noise (intensity units, 1 = white) before quantisation;
            drawn per image, so every exemplar is distinct.
        background: albedo of the wall behind the head.
        jitter: (shift, roll, zoom) standard deviations of each image's camera motion: shift
            as a fraction of the image side, roll in degrees, zoom as a fraction (draws are
            clipped at 3 std). Yale B gives a face position per image; (0, 0, 0) aligns all.
        oversample: sub-pixels per pixel side (anti-aliasing).
        seed: all randomness (identities, jitter, noise) derives from it.

    Returns:
        A :class:`FaceDataset` with N = K * len(poses) * L images, ordered identity, pose, light.
    """
    if not isinstance(num_identities, (int, np.integer)) or num_identities < 1:
        raise ValueError(f"num_identities: expected a positive int, got {num_identities!r}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"image_size: expected an int >= 8, got {image_size!r}")
    if not 0.0 <= float(similarity) <= 1.0:
        raise ValueError(f"similarity: expected a number in [0, 1], got {similarity!r}")
    if not isinstance(oversample, (int, np.integer)) or oversample < 1:
        raise ValueError(f"oversample: expected a positive int, got {oversample!r}")
    if lights is None:
        lights = "yale" if num_azimuths is None and num_elevations is None else "grid"
    if lights == "yale":
        if num_azimuths is not None or num_elevations is not None:
            raise ValueError("lights: 'yale' uses Yale B's 64 directions; num_azimuths/num_elevations need lights='grid'")
        az, el = yale_lights()
    elif lights == "grid":
        az, el = light_grid(8 if num_azimuths is None else num_azimuths, 8 if num_elevations is None else num_elevations)
    else:
        raise ValueError(f"lights: expected 'yale' or 'grid', got {lights!r}")
    pose_idx = list(range(poses)) if isinstance(poses, (int, np.integer)) else [int(p) for p in poses]
    if not pose_idx or any(p < 0 or p >= len(YALE_POSES_DEG) for p in pose_idx):
        raise ValueError(f"poses: expected 1..{len(YALE_POSES_DEG)} or indices in 0..{len(YALE_POSES_DEG) - 1}, got {poses!r}")
    shift, roll, zoom = _check_jitter(jitter)

    light_dirs = jnp.asarray(light_vectors(az, el))
    rotations = jnp.asarray(np.stack([pose_rotation(*YALE_POSES_DEG[p]) for p in pose_idx]))
    n_pose, n_light = len(pose_idx), len(az)
    sub = int(image_size) * int(oversample)
    density = float(_SAMPLES_PER_SUBPIXEL * sub / (2.0 * FRAME))
    # Canvas: room for a 3-std camera motion (shift in half-widths plus the corner's swing).
    margin = 1.0 + 2.0 * 3.0 * shift + math.sqrt(2.0) * 3.0 * (math.radians(roll) + zoom) + 2.0 / sub
    margin = math.ceil(margin * 20.0) / 20.0  # few distinct compilations
    root = np.random.SeedSequence(seed)
    id_seq, noise_seq, jitter_seq = root.spawn(3)
    jitter_rng = np.random.default_rng(jitter_seq)
    scale = 1.0 - float(similarity)
    std = np.array([2.0 * shift, 2.0 * shift, math.radians(roll), zoom], np.float32)
    clouds = [face_cloud(face_parameters(np.random.default_rng(q), scale), density) for q in id_seq.spawn(num_identities)]
    # One sample count for every identity (rounded up, so that similar calls share compilations).
    size = -(-max(len(c.position) for c in clouds) // 8192) * 8192
    caster_size = -(-max(len(c.caster) for c in clouds) // 2048) * 2048
    imgs = []
    for cloud in clouds:
        cloud = FaceCloud(*(jnp.asarray(a) for a in _pad_cloud(cloud, size, caster_size)))
        motion = np.clip(jitter_rng.standard_normal((n_pose, n_light, 4)), -3.0, 3.0).astype(np.float32) * std
        imgs.append(np.asarray(render_cloud(cloud, rotations, light_dirs, jnp.asarray(motion), float(ambient),
                                            float(background), size=int(image_size), oversample=int(oversample),
                                            margin=margin, cast_shadows=bool(cast_shadows))))
    imgs = np.stack(imgs).reshape(-1, image_size, image_size)
    imgs = imgs + noise * np.random.default_rng(noise_seq).standard_normal(imgs.shape).astype(np.float32)
    images = np.clip(np.round(imgs * 255.0), 0, 255).astype(np.uint8)
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
                   lights=lights, num_lights=int(n_light), num_azimuths=int(num_azimuths or 0),
                   num_elevations=int(num_elevations or 0), jitter=",".join(f"{j:g}" for j in (shift, roll, zoom)),
                   poses=",".join(map(str, pose_idx)), generator="splat-zbuffer-v2"),
    )


# ---------------------------------------------------------------------------
# Shortcut diagnostics
# ---------------------------------------------------------------------------
def _block_mean(x: np.ndarray, max_side: int) -> np.ndarray:
    """(N, H, W) -> (N, H / f, W / f) means over f x f blocks, f the least integer with H / f <= max_side."""
    n, h, w = x.shape
    f = max(1, -(-max(h, w) // max_side))
    if f == 1:
        return x
    h2, w2 = h // f, w // f
    return x[:, :h2 * f, :w2 * f].reshape(n, h2, f, w2, f).mean((2, 4))


def shortcut_diagnostics(dataset: FaceDataset, split: Split | None = None, *, test_fraction: float = 0.2,
                         seed: int = 0, max_side: int = 64) -> dict[str, Any]:
    """Cheap checks that identity is not readable off a shortcut, on a train/test split of ``dataset``.

    * Brightness: a one-dimensional classifier of identity from each image's mean pixel value
      (k nearest neighbours on the training images' brightness, k = sqrt(n_train)), scored on
      the test images, against chance (the test set's largest class fraction).
    * A raw-pixel linear classifier: ridge regression onto +-1 one-hot identities, the largest
      score wins (scikit-learn's ``RidgeCV``, one penalty chosen by leave-one-out among 1e-3..1e3) on
      the pixels in [0, 1], block-averaged to at most ``max_side`` per side, scored on the test
      set overall and by the light's illumination subset (:func:`light_subset`: angle to the
      camera axis 0-12, 13-25, 26-50, 51-77, beyond 77 degrees); and the same classifier on
      images each standardised to zero mean and unit variance, which shows whether identity
      survives brightness normalisation.
    * Brightest identity: for each (pose, azimuth, elevation) condition that every identity has,
      which identity's image has the highest mean brightness; counted per identity.

    Args:
        dataset: :class:`FaceDataset` (N, H, W).
        split: train/test indices; default :func:`stratified_split` with ``test_fraction``, ``seed``.
        max_side: pixel grid side for the linear classifiers (cost grows with its square).

    Returns:
        JSON-serialisable dict: ``chance``, ``brightness_accuracy``, ``linear_accuracy``,
        ``linear_alpha``, ``linear_accuracy_by_subset`` (5 floats, NaN for an empty subset),
        ``test_count_by_subset``, ``linear_subset_spearman`` (rank correlation of accuracy with
        the subset number; negative when accuracy falls with the light's angle),
        ``standardised_linear_accuracy``, ``brightest_counts`` (K,), ``brightest_fraction``
        (the largest count over the number of conditions), ``conditions``, ``pixels``.
    """
    try:
        from scipy.stats import spearmanr
        from sklearn.linear_model import RidgeCV
        from sklearn.neighbors import KNeighborsClassifier
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("shortcut_diagnostics needs scikit-learn (pip install scikit-learn)") from exc
    if split is None:
        split = stratified_split(dataset.identity, test_fraction, seed)
    train, test = np.asarray(split.train), np.asarray(split.test)
    if len(train) < 2 or len(test) < 1:
        raise ValueError(f"split: expected >= 2 training and >= 1 test exemplars, got {len(train)} and {len(test)}")
    if not isinstance(max_side, (int, np.integer)) or max_side < 1:
        raise ValueError(f"max_side: expected a positive int, got {max_side!r}")
    y = np.asarray(dataset.identity)
    x = np.asarray(dataset.images, np.float32)
    if np.asarray(dataset.images).dtype == np.uint8:
        x = x / 255.0
    brightness = x.mean((1, 2))
    chance = float(np.bincount(y[test]).max() / len(test))

    k = max(1, min(len(train), int(round(math.sqrt(len(train))))))
    knn = KNeighborsClassifier(n_neighbors=k).fit(brightness[train, None], y[train])
    brightness_accuracy = float(np.mean(knn.predict(brightness[test, None]) == y[test]))

    pixels = _block_mean(x, int(max_side)).reshape(len(x), -1)
    num_ids = int(y.max()) + 1
    alphas = np.logspace(-3, 3, 7)
    targets = 2.0 * np.eye(num_ids)[y[train]] - 1.0  # +-1 one-hot, as scikit-learn's RidgeClassifier

    def ridge_classifier(features):
        # Leave-one-out over the penalties through the eigendecomposition of the n x n Gram matrix:
        # the cheap route when pixels outnumber training images.
        fit = RidgeCV(alphas=alphas, gcv_mode="eigen").fit(features[train], targets)
        return fit, fit.predict(features[test]).argmax(1) == y[test]

    ridge, correct = ridge_classifier(pixels)
    subset = light_subset(dataset.azimuth[test], dataset.elevation[test])
    by_subset = [float(correct[subset == s].mean()) if (subset == s).any() else float("nan") for s in range(1, 6)]
    counts = [int((subset == s).sum()) for s in range(1, 6)]
    present = [s for s in range(5) if counts[s] > 0]
    present_acc = [by_subset[s] for s in present]
    # Undefined (NaN) with fewer than 3 subsets or when every subset scores the same.
    rho = float(spearmanr(present, present_acc)[0]) if len(present) >= 3 and np.ptp(present_acc) > 0 else float("nan")
    standard = (pixels - pixels.mean(1, keepdims=True)) / np.maximum(pixels.std(1, keepdims=True), 1e-6)
    standardised_accuracy = float(np.mean(ridge_classifier(standard)[1]))

    conditions: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(dataset.pose.tolist(), np.nan_to_num(dataset.azimuth, nan=1e9).tolist(),
                                np.nan_to_num(dataset.elevation, nan=1e9).tolist())):
        conditions.setdefault(key, []).append(i)
    brightest = np.zeros(num_ids, np.int64)
    complete = 0
    for members in conditions.values():
        members = np.asarray(members)
        if len(members) != num_ids or set(y[members].tolist()) != set(range(num_ids)):
            continue  # a condition some identity lacks (or has twice) is not comparable
        brightest[y[members[np.argmax(brightness[members])]]] += 1
        complete += 1
    return {
        "chance": chance,
        "brightness_accuracy": brightness_accuracy,
        "linear_accuracy": float(correct.mean()),
        "linear_alpha": float(ridge.alpha_),
        "linear_accuracy_by_subset": by_subset,
        "test_count_by_subset": counts,
        "linear_subset_spearman": rho,
        "standardised_linear_accuracy": standardised_accuracy,
        "brightest_counts": brightest.tolist(),
        "brightest_fraction": float(brightest.max() / complete) if complete else float("nan"),
        "conditions": int(complete),
        "pixels": int(pixels.shape[1]),
    }


# ---------------------------------------------------------------------------
# Yale Face Database B loader
# ---------------------------------------------------------------------------
class FaceDataError(ValueError):
    """A face file is corrupt, truncated or misnamed; the message names the file."""


YALE_NAME = re.compile(r"^yaleB(?P<subject>\d{2})_P(?P<pose>\d{2})A(?P<az>[+-]\d{3})E(?P<el>[+-]\d{2})\.pgm$")
"""A Yale B image file name, ``yaleBNN_PxxA+aaaE+ee.pgm``: groups ``subject``, ``pose``, ``az`` and
``el`` (the light's azimuth and elevation in degrees), read by :func:`parse_yale_name`."""
YALE_AMBIENT = re.compile(r"^yaleB(?P<subject>\d{2})_P(?P<pose>\d{2})_Ambient\.pgm$")
"""A Yale B ambient (no strobe) image file name, ``yaleBNN_Pxx_Ambient.pgm``: groups ``subject`` and ``pose``."""


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


def read_pgm(path: str | Path, *, with_maxval: bool = False) -> np.ndarray | tuple[np.ndarray, int]:
    """Reads a binary (P5) or ASCII (P2) PGM file.

    Returns:
        (H, W) array, uint8 when maxval < 256, else uint16; with ``with_maxval``, the pair
        (array, maxval) -- the value that stands for white.

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
    image = data.reshape(height, width).astype(out_dtype)
    return (image, maxval) if with_maxval else image


YALE_SIZES: dict[tuple[int, int], str] = {(480, 640): "full 640x480", (192, 168): "cropped 168x192"}
"""Yale B's two image layouts, ``{(height, width): description}``: the full frames and the cropped
set (CroppedYale); an image of any other shape is loaded with a warning."""
CLOSE_CROP_SCALE = 2.2
"""Side of ``crop='close'``'s square, in interocular distances, centred midway between the eyes'
midpoint and the mouth. Eyes to mouth is about 1.1 interocular distances on an adult face, so the
square reaches about half an interocular distance above the eyes (the brows) and below the mouth
(the chin), and about the cheeks at the sides: the face without hair, ears or background."""
_COORDS_NAME = re.compile(r"^yaleB(?P<subject>\d{2})_P(?P<pose>\d{2})\.(?P<kind>crop|info)$")


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


def _read_crop_coords(crop_path: Path, info_path: Path, frontal: bool) -> dict[str, np.ndarray]:
    """Yale B's CropCoords for one (subject, pose): image name -> (x, y) rows (3 for P00, else 1).

    ``yaleBNN_PMM.info`` lists the set's image names; ``yaleBNN_PMM.crop`` holds two columns (x,
    y) in the same order: for P00 the left eyes, then the right eyes, then the mouths (3 blocks
    of one row per image); for other poses one face centre per image.
    """
    names = [Path(line.strip()).name for line in info_path.read_text(errors="replace").splitlines() if line.strip()]
    try:
        rows = np.loadtxt(crop_path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise FaceDataError(f"{crop_path}: not two numeric columns ({exc})") from None
    blocks = 3 if frontal else 1
    if rows.shape != (blocks * len(names), 2):
        raise FaceDataError(f"{crop_path}: expected {blocks * len(names)} rows of (x, y) for the {len(names)} images "
                            f"of {info_path.name}, found shape {rows.shape}")
    return {name: rows[k::len(names)][:blocks] for k, name in enumerate(names)}


def _close_boxes(entries, coord_files, shapes) -> list[tuple[int, int, int, int]]:
    """One square (top, left, side, side) per entry from the CropCoords files (see :data:`CLOSE_CROP_SCALE`)."""
    coords: dict[tuple[int, int], dict[str, np.ndarray]] = {}

    def coords_of(subject: int, pose: int) -> dict[str, np.ndarray]:
        key = (subject, pose)
        if key not in coords:
            files = coord_files.get(key, {})
            for copies in files.values():
                if len(copies) > 1:
                    raise FaceDataError(f"{copies[0]} and {copies[1]}: the same crop-coordinate file found twice; keep one")
            if "crop" not in files or "info" not in files:
                raise FaceDataError(f"crop='close' needs Yale B's yaleB{subject:02d}_P{pose:02d}.crop (CropCoords/) and "
                                    f"yaleB{subject:02d}_P{pose:02d}.info under the root; pass crop=(top, left, height, "
                                    f"width) instead (the cropped set CroppedYale is already cropped: crop=None)")
            coords[key] = _read_crop_coords(files["crop"][0], files["info"][0], frontal=pose == 0)
        return coords[key]

    eye_distance: dict[int, float] = {}
    boxes = []
    for (info, path), (h, w) in zip(entries, shapes):
        subject = info["subject"]
        if subject not in eye_distance:  # the subject's frontal eyes set the scale for every pose
            frontal = coords_of(subject, 0)
            eye_distance[subject] = float(np.mean([np.linalg.norm(r[1] - r[0]) for r in frontal.values()]))
        rows = coords_of(subject, info["pose"]).get(path.name)
        if rows is None:
            raise FaceDataError(f"{path}: not listed in yaleB{subject:02d}_P{info['pose']:02d}.info, so crop='close' "
                                f"has no face position for it")
        centre = 0.5 * (0.5 * (rows[0] + rows[1]) + rows[2]) if info["pose"] == 0 else rows[0]
        side = int(round(CLOSE_CROP_SCALE * eye_distance[subject]))
        if not 1 <= side <= min(h, w):
            raise FaceDataError(f"{path}: crop='close' square of side {side} does not fit a {h}x{w} image")
        # Keep the square inside the frame (shifted, not shrunk, near an edge).
        left = int(np.clip(round(centre[0] - side / 2), 0, w - side))
        top = int(np.clip(round(centre[1] - side / 2), 0, h - side))
        boxes.append((top, left, side, side))
    return boxes


def load_yale_b(
    root: str | Path,
    *,
    num_subjects: int = 5,
    subjects: Sequence[int] | None = None,
    image_size: int = 128,
    crop: tuple[int, int, int, int] | str | None = None,
    include_ambient: bool = False,
    seed: int = 0,
) -> FaceDataset:
    """Loads Yale Face Database B / Extended Yale B images from ``root``.

    ``root`` holds ``yaleBNN_PxxA+aaaE+ee.pgm`` files, either directly or in one folder per
    subject (``yaleBNN/``). Files that are not ``.pgm`` (``.info``, ``.bad``, ...) are ignored;
    a ``.pgm`` whose name is not a Yale B name, that sits in another subject's folder, or whose
    name occurs twice under ``root`` (flat and in a subfolder, say: one copy could land in the
    training set and the other in the test set) is an error. Pixel values are scaled by each
    file's maxval to 0..255 (16-bit PGMs included). An image whose size is neither Yale B's
    640x480 nor the cropped set's 168x192 is loaded with a warning.

    Args:
        root: the folder.
        num_subjects: K subjects drawn at random (with ``seed``) among those present, as the
            paper did; ignored when ``subjects`` is given.
        subjects: explicit subject numbers (e.g. ``(1, 2, 3, 5, 7)``).
        image_size: output side; each image is cropped then resized (linear, antialiased).
        crop: ``None`` (the central square), ``(top, left, height, width)`` in original pixels,
            or ``'close'``: the face only, as the paper's close crop -- per image, a square of
            :data:`CLOSE_CROP_SCALE` times the subject's mean frontal interocular distance,
            centred midway between the eyes and the mouth (P00) or on the face centre (other
            poses), read from the database's own ``CropCoords/yaleBNN_PMM.crop`` files and the
            ``yaleBNN_PMM.info`` lists they follow.
        include_ambient: keep the ``_Ambient`` images (no light direction; NaN az/el).
        seed: for the random choice of subjects.

    Returns:
        A :class:`FaceDataset` (source ``'yale_b'``), identity k = the k-th chosen subject in
        increasing subject number, exemplars sorted by (subject, pose, azimuth, elevation).

    Raises:
        FaceDataError: naming the file(s), for corrupt, truncated, misnamed or duplicated files,
            missing crop coordinates, or when too few subjects are present.
    """
    root = Path(root)
    if not root.is_dir():
        raise FaceDataError(f"{root}: not a directory")
    if not (crop is None or crop == "close" or (isinstance(crop, (tuple, list)) and len(crop) == 4)):
        raise FaceDataError(f"crop: expected None, 'close' or (top, left, height, width), got {crop!r}")
    entries = []
    seen: dict[str, Path] = {}
    coord_files: dict[tuple[int, int], dict[str, list[Path]]] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        m = _COORDS_NAME.match(path.name)
        if m:
            coord_files.setdefault((int(m["subject"]), int(m["pose"])), {}).setdefault(m["kind"], []).append(path)
            continue
        if path.suffix.lower() != ".pgm":
            continue
        info = parse_yale_name(path.name)
        if info is None:
            raise FaceDataError(f"{path}: .pgm file name is not a Yale B name (expected yaleBNN_PxxA+aaaE+ee.pgm)")
        folder = path.parent.name
        if path.parent != root and re.fullmatch(r"yaleB\d{2}", folder) and int(folder[5:]) != info["subject"]:
            raise FaceDataError(f"{path}: subject {info['subject']:02d} in the folder of {folder}")
        if path.name in seen:
            raise FaceDataError(f"{seen[path.name]} and {path}: the same Yale B image found twice (a copy could land "
                                f"in both the training and the test set); keep one")
        seen[path.name] = path
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
    raw = []
    odd_sizes: dict[tuple[int, int], list[Path]] = {}
    for _, path in entries:
        data, maxval = read_pgm(path, with_maxval=True)
        raw.append(data.astype(np.float32) * np.float32(255.0 / maxval))  # white is maxval, 8-bit or 16-bit
        if data.shape not in YALE_SIZES:
            odd_sizes.setdefault(data.shape, []).append(path)
    for (h, w), paths in odd_sizes.items():
        warnings.warn(f"{paths[0]}: image size {w}x{h} is neither Yale B's 640x480 nor the cropped set's 168x192 "
                      f"({len(paths)} file(s) of this size)", stacklevel=2)
    if crop == "close":
        boxes = _close_boxes(entries, coord_files, [img.shape for img in raw])
    else:
        boxes = [None if crop is None else tuple(int(c) for c in crop)] * len(entries)
    images = [_crop_resize(img, box, image_size, path) for img, box, (_, path) in zip(raw, boxes, entries)]
    return FaceDataset(
        images=np.clip(np.round(np.stack(images)), 0, 255).astype(np.uint8),
        identity=np.array([order[i["subject"]] for i, _ in entries], np.int32),
        pose=np.array([i["pose"] for i, _ in entries], np.int32),
        azimuth=np.array([i["azimuth"] for i, _ in entries], np.float32),
        elevation=np.array([i["elevation"] for i, _ in entries], np.float32),
        names=tuple(f"yaleB{s:02d}" for s in chosen),
        source="yale_b",
        attrs=dict(root=str(root), crop="" if crop is None else crop if isinstance(crop, str) else ",".join(map(str, crop)),
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
