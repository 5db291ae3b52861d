"""The parity gate's and the INT8 rule's arithmetic, on hand-made logits."""

import math

import numpy as np
import pytest

from edgeskd.errors import ExportError
from edgeskd.export.int8 import MIN_SPEEDUP, decide
from edgeskd.export.parity import TOLERANCES, Tolerance, compare, require

REF = np.array([[2.0, -1.0, 0.5], [0.1, 3.0, -2.0], [1.0, 1.00001, 0.0]])


def _cmp(candidate, precision="fp32", tol=None):
    return compare("onnx", "model.onnx", "test", precision, REF, candidate, tol)


def test_identical_logits_pass():
    result = _cmp(REF.copy())
    assert result.passed and result.max_abs_diff == 0 and result.top1_agreement == 1.0 and result.n == 3


def test_allowed_difference_scales_with_logit_size():
    tol = TOLERANCES["fp32"]
    assert tol.allowed(REF) == pytest.approx(tol.atol + tol.rtol * 3.0)
    assert tol.allowed(REF * 100) > tol.allowed(REF)


def test_difference_above_tolerance_fails_with_numbers():
    bad = REF.copy()
    bad[1, 2] += 0.01
    result = _cmp(bad)
    assert not result.passed and result.max_abs_diff == pytest.approx(0.01)
    with pytest.raises(ExportError, match=r"max \|logit diff\| 0\.01 \(allowed 0\.0004"):
        require(result)


def test_near_tie_flip_within_tolerance_is_forgiven():
    flipped = REF.copy()
    flipped[2, 0] += 2e-5  # sample 2: top-1 changes, but by less than the allowed difference
    result = _cmp(flipped)
    assert result.top1_agreement == pytest.approx(2 / 3)
    assert result.near_ties == 1 and result.passed


def test_flip_is_forgiven_only_when_the_bound_allows_it():
    flipped = REF.copy()
    flipped[0] = [-1.0, 2.0, 0.5]  # a clear change of class on sample 0 (reference margin 1.5)
    loose = _cmp(flipped, tol=Tolerance(atol=10.0, rtol=0.0, min_top1=1.0))
    assert loose.max_abs_diff == 3.0 and loose.near_ties == 1 and loose.passed
    strict = _cmp(flipped, tol=Tolerance(atol=0.5, rtol=0.0, min_top1=1.0))
    assert not strict.passed and strict.near_ties == 0 and strict.top1_agreement == pytest.approx(2 / 3)


def test_non_finite_logits_fail():
    bad = REF.copy()
    bad[0, 0] = np.nan
    result = _cmp(bad, "fp16")
    assert not result.passed and math.isinf(result.max_abs_diff)


def test_wrong_shape_is_an_error():
    with pytest.raises(ExportError, match=r"shape \(3, 2\)"):
        _cmp(REF[:, :2])


def test_int8_is_reported_not_gated_on_max_abs():
    noisy = REF + 0.3
    result = _cmp(noisy, "int8")
    assert result.passed and result.to_dict()["allowed_max_abs"] is None


LOGITS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])


def test_int8_kept_only_when_faster_and_accurate():
    same = LOGITS.copy()
    kept = decide(2.0, 1.0, LOGITS, same, None, 0.01, 4)
    assert kept.kept and kept.speedup == 2.0 and kept.accuracy_drop == 0.0
    slow = decide(1.0, 1.0 / (MIN_SPEEDUP * 0.99), LOGITS, same, None, 0.01, 4)
    assert not slow.kept and "not faster" in slow.reason


def test_int8_dropped_when_accuracy_drop_too_large():
    one_flip = LOGITS.copy()
    one_flip[0] = [0.0, 1.0]
    no_labels = decide(2.0, 1.0, LOGITS, one_flip, None, 0.1, 4)
    assert not no_labels.kept and no_labels.accuracy_drop == 0.25 and "upper bound" in no_labels.drop_basis
    # With labels, a flip on an image PyTorch already got wrong costs no accuracy.
    labels = np.array([1, 1, 0, 1])
    with_labels = decide(2.0, 1.0, LOGITS, one_flip, labels, 0.1, 4)
    assert with_labels.kept and with_labels.accuracy_drop == -0.25 and with_labels.drop_basis == "labels"
