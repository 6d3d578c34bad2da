"""Configuration field groups shared by several experiments, as frozen dataclass mixins.

An experiment's :class:`~jaxdyn.experiments.base.Config` lists a group among its bases
(``class MyConfig(GroupFields, Config)``) to take its fields with their defaults, help and
constraints, and redeclares a field only to change its default (a redeclared field keeps the
group's place and validation). Each family of experiments has its own section; the registry skips
this module (it declares no experiment). A group's cross-field rules go in a ``check`` that
calls ``super().check()``::

    @dataclasses.dataclass(frozen=True)
    class RBEResponseConfig(RBETrainingFields, ResponseMeasurementFields, Config): ...
"""

from __future__ import annotations

import dataclasses

from jaxdyn.engine.losses import LOSSES
from jaxdyn.experiments.base import ConfigError, param

# --- deep linear ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GradientFlowTime:
    """Full-batch gradient descent read as gradient flow: time in units of tau = 1/lr.

    Fields: ``lr`` (the learning rate, tau = 1/lr), ``duration`` (training time in units of tau),
    ``record_every`` (steps between records) and ``rtol`` (the ODE solver's relative tolerance).
    """

    lr: float = param(0.005, "gradient-descent learning rate (tau = 1/lr)", min=0.0, max=1.0, min_exclusive=True)
    duration: float = param(10.0, "training time in units of tau (steps = duration / lr)", min=0.0, max=1e4, min_exclusive=True)
    record_every: int = param(10, "steps between records", min=1, max=1_000_000)
    rtol: float = param(1e-7, "relative tolerance of the ODE solver", min=0.0, max=1e-2, min_exclusive=True)

    @property
    def num_steps(self) -> int:
        """Steps, rounded to a whole number of records (at least one record)."""
        return self.record_every * max(1, round(self.duration / (self.lr * self.record_every)))

    def check_steps(self, limit: int) -> None:
        """Raises ConfigError naming ``duration`` when duration / lr asks for more than ``limit`` steps."""
        if self.duration / self.lr > limit:
            raise ConfigError(f"duration: {self.duration} / lr {self.lr} asks for over {limit:,} steps; raise lr or shorten duration")


@dataclasses.dataclass(frozen=True)
class TuningCurveTask:
    """The orientation-discrimination stimuli of Saxe's three-layer net (``jaxdyn.tasks.perceptual``).

    Fields: ``num_neurons`` (tuning-curve neurons N), ``kappa`` (von Mises concentration) and
    ``theta0`` (the reference orientation the two stimuli straddle, degrees).
    """

    num_neurons: int = param(64, "hidden (tuning-curve) neurons N", min=2, max=100_000)
    kappa: float = param(2.0, "von Mises concentration of the tuning curves", min=0.0, max=1e3, min_exclusive=True)
    theta0: float = param(45.0, "reference orientation the two stimuli straddle (deg)", min=0.0, max=180.0)

    def task_constants(self, deltas, field: str = "deltas"):
        """(len(deltas),) the task constant v = d . g+ of each orientation difference (numpy; cheap).

        Raises:
            ConfigError: naming ``field`` when a difference gives identical responses (v ~ 0) or
                the tuning is so narrow that no neuron responds.
        """
        import numpy as np

        from jaxdyn.tasks.perceptual import discrimination_task

        values = []
        for delta in deltas:
            try:
                task = discrimination_task(self.num_neurons, delta, theta0_deg=self.theta0, kappa=self.kappa)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            if not task.v > 1e-12:
                raise ConfigError(f"{field}: {delta} deg gives identical population responses (v = {task.v:.3g}) with "
                                  f"{self.num_neurons} neurons and kappa={self.kappa}; the task is undefined")
            values.append(task.v)
        return np.asarray(values)


# --- neurashed ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NeurashedRulesFields:
    """The appendix's multiplicative rules of Figure 5 and its initial factors (neurashed-ib,
    neurashed-batch): g+ = base^(11/4) x, g- = base^(-1/4) x (the 7th first-level node of the
    Figure 5 graph: base^(3/4) x), lambda and eta ~ U(0, init_high)."""

    base: float = param(1.022, "the appendix's base a of g+ = a^(11/4) x, g- = a^(-1/4) x (Figure 5's 7th node: a^(3/4) x)",
                        min=1.0, max=2.0, min_exclusive=True)
    init_high: float = param(0.01, "initial lambda and eta ~ U(0, init_high)", min=0.0, max=1.0, min_exclusive=True)
# --- training response (Nakazato: rbe-*) ---------------------------------------------------------
RBE_LOSSES = ("mse", "bce")
"""The losses an RBE experiment may train with (``loss=``): names of :data:`jaxdyn.engine.losses.LOSSES`
(mse: the paper's Eq. 5; bce: binary cross-entropy on the sigmoid output)."""


@dataclasses.dataclass(frozen=True)
class RBETrainingFields:
    """SGD on random bit-string encoders: learning rate, loss, epochs and record cadence."""

    num_steps: int = param(800, "training epochs (one SGD step on one point each)", min=1, max=10_000_000)
    record_every: int = param(10, "epochs between measurements", min=1, max=1_000_000)
    lr: float = param(0.1, "SGD learning rate (the paper: 0.1)", min=0.0, max=10.0, min_exclusive=True)
    loss: str = param("mse", "training loss: mse (the paper's Eq. 5) or bce", choices=RBE_LOSSES)
    init: str = param("keras", "weight initialisation: keras (Glorot-uniform kernels, zero biases: the paper's Keras nets) "
                      "or flax (LeCun-normal kernels, zero biases)", choices=("keras", "flax"))

    def check(self) -> None:
        """Validates, after the other mixins' checks, that ``record_every`` divides ``num_steps``;
        raises :class:`ConfigError` naming ``record_every`` otherwise."""
        super().check()
        if self.num_steps % self.record_every:
            raise ConfigError(f"record_every: must divide num_steps ({self.num_steps}), got {self.record_every}")

    @property
    def loss_fn(self):
        """The engine loss named by ``loss``."""
        return LOSSES[self.loss]

    def linearised_learner(self, model, space: str):
        """The first-order Taylor model of the RBE net ``model`` around its initial weights,
        trained with this loss by SGD at the hyperparameter ``lr``: the expansion of its output f
        (``space='output'``, Eq. 10 as written) or of its logits with the sigmoid after
        (``'logit'``)."""
        from jaxdyn.engine import LinearizedLearner, hparam, optimizer

        sgd = optimizer("sgd", learning_rate=hparam("lr"))
        if space == "output":
            return LinearizedLearner(model, self.loss_fn, sgd)
        return LinearizedLearner(model.clone(return_logits=True), self.loss_fn, sgd, link="sigmoid")


@dataclasses.dataclass(frozen=True)
class ResponseMeasurementFields:
    """Where the response law is read: reported epochs, the power-law window, bootstrap size."""

    epochs: tuple[int, ...] = param((0, 200, 400, 600, 800), "epochs at which the kernel is reported (multiples of record_every)", min=0, max_len=32)
    fit_start: int = param(50, "first epoch of the power-law fit (after the initial phase)", min=1)
    n_boot: int = param(1000, "bootstrap resamples of the seeds for intervals", min=10, max=100_000)

    def check(self) -> None:
        """Validates, after the other mixins' checks (it reads ``record_every`` and ``num_steps`` of
        :class:`RBETrainingFields`), that every reported epoch is a multiple of ``record_every`` up to
        ``num_steps``, and that ``fit_start`` leaves at least three records; raises
        :class:`ConfigError` naming ``epochs`` or ``fit_start``."""
        super().check()
        for e in self.epochs:
            if e % self.record_every or e > self.num_steps:
                raise ConfigError(f"epochs: {e} must be a multiple of record_every ({self.record_every}) and <= num_steps ({self.num_steps})")
        if self.fit_start + 2 * self.record_every > self.num_steps:
            raise ConfigError(f"fit_start: {self.fit_start} leaves fewer than 3 records before num_steps ({self.num_steps})")




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
