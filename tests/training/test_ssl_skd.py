"""ssl-skd: the BYOL-style stage (EMA target, no labels, head untouched) and the method end to end in train()."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from edgeskd.errors import TrainingError

pytest.importorskip("edgeskd.selection")


def _student(tiny_spec, teacher):
    from edgeskd.models import build_student

    torch.manual_seed(0)
    return build_student(tiny_spec, teacher)


def test_byol_step_moves_a_and_keeps_b_an_ema_of_a(tiny_spec, lite0_teacher):
    from edgeskd.training.ssl import BYOLStage, SSLOptions

    a = _student(tiny_spec, lite0_teacher)
    b = copy.deepcopy(a)
    stage = BYOLStage(a, b, SSLOptions(momentum=0.9, batch_size=8))
    for m in stage.modules():
        m.train()
    b0 = {k: v.clone() for k, v in b.state_dict().items()}
    opt = torch.optim.AdamW(stage.online_params, lr=1e-2)
    x = torch.rand(8, 3, 32, 32)
    loss = stage.loss(x, torch.Generator().manual_seed(0))
    assert 0 <= loss.item() <= 8  # two terms of 2 - 2 cos, each in [0, 4]
    opt.zero_grad()
    loss.backward()
    head_grad = a.get_classifier().weight.grad
    assert head_grad is None or not head_grad.any()  # the classifier is not part of the self-supervised loss
    assert all(p.grad is None for p in b.parameters())  # the target gets no gradient
    opt.step()
    stage.after_step()
    a1 = a.state_dict()
    name = next(k for k, v in a1.items() if v.dtype.is_floating_point and not torch.equal(v, b0[k]))
    expected = 0.9 * b0[name] + 0.1 * a1[name]
    assert torch.allclose(b.state_dict()[name], expected, atol=1e-6)


def test_ssl_pretrain_uses_every_pool_image_and_changes_the_backbone(tiny_spec, lite0_teacher):
    from edgeskd.training.ssl import SSLOptions, ssl_pretrain

    a = _student(tiny_spec, lite0_teacher)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    pool = torch.rand(20, 3, 32, 32)
    history = ssl_pretrain(a, copy.deepcopy(a), pool, SSLOptions(epochs=2, batch_size=8))
    assert [h["ssl_steps"] for h in history] == [3, 6]  # ceil(20 / 8) steps per epoch
    assert all(math.isfinite(h["ssl_loss"]) for h in history)
    changed = [k for k, v in a.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert any("conv_stem" in k for k in changed)
    assert not any(k.startswith("classifier") for k in changed)


def test_ssl_options_are_checked():
    from edgeskd.training.ssl import SSLOptions

    with pytest.raises(TrainingError, match="invalid ssl-skd option"):
        SSLOptions(momentum=1.0).validate()


@pytest.mark.parametrize("target", ["copy-a", "selection"])
def test_ssl_skd_trains_through_the_registry(digits_splits, tiny_spec, lite0_teacher, fast_config, target):
    from edgeskd.training import train
    from edgeskd.training.methods import get_method

    assert get_method("ssl-skd").options["target_init"] == "copy-a"
    config = fast_config(method="ssl-skd", epochs_skd=1, epochs_finetune=1, use_unlabelled=True,
                         method_options={"ssl_epochs": 1, "target_init": target})
    result = train(tiny_spec, digits_splits, lite0_teacher, config, progress=False)
    ssl = result.info["strategies"]["ssl"]
    pool = len(digits_splits.train.labels) + len(digits_splits.unlabelled.labels)
    assert ssl["pool"] == pool and ssl["steps"] == math.ceil(pool / config.batch_size)
    assert ssl["target_init"] == target
    assert ("b" in result.info["strategies"]) == (target == "selection")
    assert result.metrics["test"]["accuracy"] is not None
    # the CE stages see only the labelled batch: one "ce" term per epoch record
    assert all(set(k for k in h if k.startswith("loss_")) == {"loss_ce"} for h in result.history)


def test_ssl_skd_rejects_an_unknown_target(digits_splits, tiny_spec, lite0_teacher, fast_config):
    from edgeskd.training import train

    with pytest.raises(TrainingError, match="target_init='peer'"):
        train(tiny_spec, digits_splits, lite0_teacher,
              fast_config(method="ssl-skd", method_options={"target_init": "peer"}), progress=False)
