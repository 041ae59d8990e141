"""Temperature scaling (METHOD.md, 'Calibration') on hand-worked and simulated cases."""

import math

import numpy as np
import pytest

from core.training.calibration import calibrated_probabilities, fit_temperature, nll


def test_nll_hand_worked():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 0])
    # softmax([1, 0]) at tau = 2: p0 = e/(e+1); softmax([0, .5]): p0 = 1/(1+e^.5)
    expected = -(math.log(math.e / (math.e + 1)) + math.log(1 / (1 + math.exp(0.5)))) / 2
    assert nll(logits, labels, 2.0) == pytest.approx(expected, abs=1e-12)


def test_fit_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(scale=3.0, size=(20_000, 6))
    p = np.exp(true_logits - true_logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(6, p=row) for row in p])
    assert fit_temperature(true_logits * 2.5, labels) == pytest.approx(2.5, rel=0.05)  # over-confident by 2.5
    assert fit_temperature(true_logits / 2.0, labels) == pytest.approx(0.5, rel=0.05)  # under-confident


def test_calibration_keeps_the_ranking_and_sums_to_one():
    logits = np.random.default_rng(1).normal(size=(50, 7))
    probs = calibrated_probabilities(logits, 0.3)
    assert np.allclose(probs.sum(1), 1, atol=1e-6)
    assert (np.argsort(-probs, axis=1, kind="stable") == np.argsort(-logits, axis=1, kind="stable")).all()
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        calibrated_probabilities(logits, float("nan"))


def test_nothing_to_fit_on_is_no_change():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
