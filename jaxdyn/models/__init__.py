"""jaxdyn model layer.

Every model is a flax linen Module with a pure ``init``/``apply`` and the
common contract ``module.apply(variables, x, train=False)`` (or ``train=True,
rngs={'dropout': key}``); inputs carry a leading batch axis; the only
variable collection is ``'params'`` (plus the optional, opt-in
``'intermediates'`` collection from ``sow``).
"""

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

__all__ = [
    "DeepLinear",
    "DenseSampleVGG",
    "Neurashed",
    "NeurashedLearner",
    "NeurashedState",
    "PatchConv",
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
