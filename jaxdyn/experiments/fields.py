"""Configuration field groups shared by experiments, as frozen dataclass mixins.

An experiment's ``Config`` inherits a group (``class MyConfig(FaceSetFields, Config)``) to get
its fields, their documentation and constraints, and the helpers that go with them. The registry
does not read this module as an experiment.
"""

from __future__ import annotations

import dataclasses

from jaxdyn.experiments.base import ConfigError, param


# --- dense sample ---
@dataclasses.dataclass(frozen=True)
class FaceSetFields:
    """The dense-sample face set: generated faces or Yale B from disk, and its stratified split.

    ``image_size`` and ``num_poses`` at 0 take the experiment's preset; the experiment passes the
    resolved values to :meth:`face_dataset` and :meth:`check_faces`.
    """

    source: str = param("generated", "faces: generated (embedded) or yale_b (from yale_root)", choices=("generated", "yale_b"))
    yale_root: str = param("", "folder of Yale B .pgm files (source=yale_b)", min_len=0)
    num_identities: int = param(5, "identities (classes)", min=2, max=38)
    image_size: int = param(0, "image side in pixels (0: the preset's)", min=0, max=512)
    num_poses: int = param(0, "Yale B poses P00.. used by the generator (0: the preset's)", min=0, max=9)
    lights: str = param("yale", "generator's lights: yale (Yale B's 64 directions) or grid (num_azimuths x num_elevations)", choices=("yale", "grid"))
    num_azimuths: int = param(8, "light azimuths of the generator's grid (lights=grid)", min=1, max=32)
    num_elevations: int = param(8, "light elevations of the generator's grid (lights=grid)", min=1, max=32)
    similarity: float = param(0.5, "how alike the generated identities are (0: full spread, 1: identical)", min=0.0, max=1.0)
    cast_shadows: bool = param(False, "cast shadows in the generated faces (slower to render)")
    face_seed: int = param(0, "seed of the generated faces (and of the Yale B subject choice)", min=0)
    yale_crop: str = param("close", "Yale B crop: close (the face only, from the database's crop coordinates, as the paper) or center (the central square)", choices=("close", "center"))
    test_fraction: float = param(0.2, "held-out exemplars per identity", min=0.0, max=0.9, min_exclusive=True)
    split_seed: int = param(0, "seed of the stratified split and the probe set", min=0)

    def check_faces(self, image_size: int, num_poses: int, probe_per_identity: int, batch_size: int) -> None:
        """Cross-field rules of the face set, with the preset's values resolved. Raises
        :class:`ConfigError` naming the field."""
        if self.source == "yale_b" and not self.yale_root:
            raise ConfigError("yale_root: source=yale_b needs the folder of the Yale B .pgm files")
        if self.source == "generated":
            per_id = num_poses * self.num_lights
            if probe_per_identity > per_id:
                raise ConfigError(f"probe_per_identity: {probe_per_identity} exceeds the {per_id} exemplars per identity")
            n_train = self.num_identities * (per_id - round(self.test_fraction * per_id))
            if batch_size > n_train:
                raise ConfigError(f"batch_size: {batch_size} exceeds the {n_train} training exemplars")
            if image_size < 8:
                raise ConfigError(f"image_size: the generator needs >= 8 pixels, got {image_size}")

    @property
    def num_lights(self) -> int:
        """Light directions per pose of the generated set."""
        return 64 if self.lights == "yale" else self.num_azimuths * self.num_elevations

    def face_dataset(self, image_size: int, num_poses: int):
        """The :class:`~jaxdyn.tasks.faces.FaceDataset` these fields describe."""
        from jaxdyn.tasks import faces

        if self.source == "yale_b":
            return faces.load_yale_b(self.yale_root, num_subjects=self.num_identities, image_size=image_size,
                                     crop="close" if self.yale_crop == "close" else None, seed=self.face_seed)
        grid = dict(num_azimuths=self.num_azimuths, num_elevations=self.num_elevations) if self.lights == "grid" else {}
        return faces.generate_faces(self.num_identities, image_size, lights=self.lights, poses=num_poses,
                                    similarity=self.similarity, cast_shadows=self.cast_shadows, seed=self.face_seed, **grid)
