"""Same architecture -> selection is the identity, for every family and strategy."""

from __future__ import annotations

import copy

import pytest
import torch

from edgeskd.selection import apply_selection, select_dual, select_weights
from selection_helpers import FAMILIES, RES, pair, randomize


@pytest.mark.parametrize("family", FAMILIES + ["mobilenetv2"])
def test_same_architecture_selects_the_teacher(family):
    if family == "mobilenetv2":
        from edgeskd.models import create_model
        teacher = create_model("mobilenetv2_100", num_classes=5)
    else:
        teacher = pair(family)[0]
    randomize(teacher, seed=1)
    x = torch.randn(2, 3, RES, RES)
    with torch.no_grad():
        expected = teacher(x)
    for strategy in ["uniform:offset=1+even", "consecutive:offset=2+first", "random:seed=3+even", "magnitude+first"]:
        student = randomize(copy.deepcopy(teacher), seed=2)
        selection = select_weights(teacher, student, strategy)
        assert selection.report["kept_fraction"] == pytest.approx(1.0)
        for key, value in selection.state_dict.items():
            assert torch.equal(value, teacher.state_dict()[key]), (strategy, key)
        apply_selection(student, selection)
        student.get_classifier().load_state_dict(teacher.get_classifier().state_dict())
        with torch.no_grad():
            assert torch.equal(student(x), expected), strategy
    dual = select_dual(teacher, student)
    assert dual.report["overlap"]["parameters"] == pytest.approx(1.0)
