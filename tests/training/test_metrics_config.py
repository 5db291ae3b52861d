"""Metrics checked against hand computations and scikit-learn; config validation and round trips."""

from __future__ import annotations

import numpy as np
import pytest

from edgeskd.errors import TrainingError
from edgeskd.training import TrainConfig, classification_metrics
from edgeskd.training.metrics import auroc, expected_calibration_error


def test_single_label_metrics_by_hand():
    # 3 classes, 6 images; predictions: 0,0,1,1,2,0 for truths 0,0,1,2,2,2
    labels = np.array([0, 0, 1, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 2, 0])
    probs = np.full((6, 3), 0.1)
    probs[np.arange(6), pred] = 0.8
    m = classification_metrics(probs, labels, ["a", "b", "c"], multilabel=False)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 1, 0], [1, 1, 1]]
    # sensitivities 1, 1, 1/3 -> balanced accuracy 7/9
    assert m["balanced_accuracy"] == pytest.approx(7 / 9)
    assert m["per_class"]["c"]["sensitivity"] == pytest.approx(1 / 3)
    # specificity of class a: negatives are 4 images (b, c, c, c), one of them predicted a
    assert m["per_class"]["a"]["specificity"] == pytest.approx(3 / 4)
    # F1: a = 2*2/(4+1+0) = 0.8, b = 2/(2+1) = 2/3, c = 2/(2+0+2) = 0.5
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 0.5) / 3)
    # all predictions have confidence 0.8 in one bin: ECE = |4/6 - 0.8|
    assert m["ece"] == pytest.approx(abs(4 / 6 - 0.8))


def test_auroc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.3 * y, 1)  # rounding makes ties
    assert auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert auroc(s, np.ones(200)) is None


def test_multilabel_metrics_per_label_auroc():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (100, 3))
    p = np.clip(0.6 * y + 0.5 * rng.random((100, 3)), 0, 1)
    m = classification_metrics(p, y, ["x", "y", "z"], multilabel=True)
    for c, name in enumerate("xyz"):
        assert m["per_label"][name]["auroc"] == pytest.approx(roc_auc_score(y[:, c], p[:, c]))
    assert m["accuracy"] == pytest.approx(((p >= 0.5) == y).mean())
    assert "confusion_matrix" not in m


def test_ece_zero_when_calibrated():
    conf = np.array([0.75] * 4)
    ece, table = expected_calibration_error(conf, np.array([1, 1, 1, 0]))
    assert ece == pytest.approx(0.0)
    assert sum(table["count"]) == 4


def test_config_round_trip_and_errors():
    cfg = TrainConfig(method="dml", temperature=3.0)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(TrainingError, match="unknown training method 'skd'"):
        TrainConfig(method="skd")
    with pytest.raises(TrainingError, match="ema_momentum=1.5"):
        TrainConfig(ema_momentum=1.5)
    with pytest.raises(TrainingError, match="unknown training config keys \\['tempreature'\\]"):
        TrainConfig.from_dict({"tempreature": 2})
