"""Neural collapse NC1 = tr(Sigma_W) / tr(Sigma_B) against hand computations."""

import numpy as np
import pytest

from jaxdyn.analysis.collapse import within_class_variability


def test_nc1_by_hand_and_scale_invariance():
    h = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 2.0]])
    labels = np.array([0, 0, 1, 1])
    # Class means (1, 0) and (10, 1); within: each sample 1 from its mean -> tr Sigma_W = 1;
    # grand mean (5.5, 0.5); between: 0.5 * (4.5^2 + 0.5^2) * 2 = 20.5.
    assert within_class_variability(h, labels) == pytest.approx(1.0 / 20.5)
    stacked = np.stack([h, 1e150 * h, np.zeros_like(h)])
    out = within_class_variability(stacked, labels)
    np.testing.assert_allclose(out[:2], 1.0 / 20.5)
    assert np.isnan(out[2])  # coinciding class means
    # Collapsed classes: zero within-class spread.
    assert within_class_variability(np.array([[1.0], [1.0], [3.0], [3.0]]), labels) == 0.0
    with pytest.raises(ValueError, match="at least two classes"):
        within_class_variability(h, np.zeros(4))
