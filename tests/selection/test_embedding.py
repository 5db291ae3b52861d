"""The embedding invariant: a small model written into a larger one of its family, at the positions a strategy
selects, with extra channels and blocks that contribute nothing, is recovered exactly by selection.

What this proves: (1) the big model computes the small model's function, which only holds if the engine's channel
graph ties every dimension that shares a channel space (a misaligned qkv, norm or shortcut would break it), and
(2) selection reads back exactly those positions, so the student equals the small model. LayerNorm'd streams (ViT,
ConvNeXt) get extra channels that keep the norm's mean and variance (see selection_helpers.extension); BatchNorm
families get zeros. Magnitude selection is tested by hiding the small model at random positions and checking that
magnitude ranking finds them (extra channels have no read weights and zero or mixed write weights). Random
selection picks a different subset per space, so it also shows that tied dimensions share one index set by
structure rather than by equal sizes."""

from __future__ import annotations

import copy

import pytest
import torch

from edgeskd.selection import apply_selection, select_weights
from selection_helpers import FAMILIES, RES, embed, pair, randomize


@pytest.mark.parametrize("strategy", ["uniform+first", "consecutive:offset=1+even", "magnitude+first",
                                      "random:seed=5+even"])
@pytest.mark.parametrize("family", FAMILIES)
def test_embedded_small_model_is_selected_back(family, strategy):
    torch.manual_seed(0)
    big, small = pair(family)
    randomize(small, seed=1)
    big.eval()
    layer = strategy.split("+")[1]
    hide = f"random:seed=7+{layer}" if strategy.startswith("magnitude") else strategy
    plan = select_weights(big, small, hide)
    embed(small, big, plan, family)

    x = torch.randn(3, 3, RES, RES)
    with torch.no_grad():
        expected = small(x)
        assert (big(x) - expected).abs().max() < 1e-4, "the embedded big model should compute the small model"

    student = randomize(copy.deepcopy(small), seed=2)
    selection = select_weights(big, student, strategy)
    if strategy.startswith("magnitude"):
        assert {k: v["indices"] for k, v in selection.report["spaces"].items()} == \
               {k: v["indices"] for k, v in plan.report["spaces"].items()}
    apply_selection(student, selection)
    student.get_classifier().load_state_dict(small.get_classifier().state_dict())
    for key, value in small.state_dict().items():
        assert torch.equal(student.state_dict()[key], value), key
    with torch.no_grad():
        diff = (student(x) - expected).abs().max().item()
    print(f"{family} {strategy}: max abs diff {diff:.2e}")
    assert diff < 1e-5
