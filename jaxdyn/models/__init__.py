"""jaxdyn model layer.

Every model is a flax linen Module with a pure ``init``/``apply`` and the
common contract ``module.apply(variables, x, train=False)`` (or ``train=True,
rngs={'dropout': key}``; a module whose ``__call__`` takes no ``train`` is
called without it); inputs carry a leading batch axis. Collections other than
``'params'`` (batch statistics) are carried by the engine's gradient learner.
Models that are not linen enter through :mod:`jaxdyn.models.adapters`.
"""

from jaxdyn._lowering import use_unrolled_threefry_on_cpu
from jaxdyn.models.adapters import EquinoxModel, PureModel
from jaxdyn.models.deep_linear import (
    DeepLinear,
    deep_linear,
    end_to_end_matrix,
    params_from_matrices,
    weight_matrices,
)
from jaxdyn.models.layers import (
    PatchConv,
    adaptive_avg_pool2d,
    adaptive_pool_matrix,
    capture_intermediates,
    count_params,
    extract_patches,
)
from jaxdyn.models.neurashed import Neurashed, NeurashedLearner, NeurashedState
from jaxdyn.models.rbe_conv import RBEConvNet, RBEConvNet2D
from jaxdyn.models.vgg import DenseSampleVGG, vgg_abstract, vgg_paper

use_unrolled_threefry_on_cpu()  # faster XLA:CPU compilation, the same random bits (jaxdyn/_lowering.py)

__all__ = [
    "DeepLinear",
    "DenseSampleVGG",
    "EquinoxModel",
    "Neurashed",
    "NeurashedLearner",
    "NeurashedState",
    "PatchConv",
    "PureModel",
    "RBEConvNet",
    "RBEConvNet2D",
    "adaptive_avg_pool2d",
    "adaptive_pool_matrix",
    "capture_intermediates",
    "count_params",
    "deep_linear",
    "end_to_end_matrix",
    "extract_patches",
    "params_from_matrices",
    "vgg_abstract",
    "vgg_paper",
    "weight_matrices",
]
