"""Consistency by structure, attention, families, errors, purity, the report and dual selection."""

from __future__ import annotations

import copy

import pytest
import torch

from edgeskd.errors import SelectionError
from edgeskd.models import StudentSpec, build_student, create_model
from edgeskd.selection import apply_selection, select_dual, select_weights
from selection_helpers import pair, randomize


def test_vit_qkv_heads_and_non_divisible_widths():
    teacher, student = pair("vit")  # 5 heads -> 2, embed 40 -> 16 (not divisible)
    randomize(teacher, 1)
    sel = select_weights(teacher, student, "uniform+first")
    attn = sel.report["spaces"]["blocks.0.attn"]
    assert attn["heads"] == [0, 4]                       # whole heads, reference spacing over heads
    assert attn["indices"] == list(range(0, 8)) + list(range(32, 40))
    qkv = sel.sources["blocks.0.attn.qkv.weight"].index[0]
    idx = torch.tensor(attn["indices"])
    assert torch.equal(qkv, torch.cat([idx, idx + 40, idx + 80]))   # q, k and v rows aligned
    embed = torch.tensor(sel.report["spaces"]["embed"]["indices"])
    for key in ("patch_embed.proj.weight", "blocks.1.mlp.fc2.weight", "blocks.0.attn.proj.weight", "norm.weight"):
        assert torch.equal(sel.sources[key].index[0], embed), key
    assert torch.equal(sel.sources["blocks.0.mlp.fc1.weight"].index[1], embed)
    assert torch.equal(sel.sources["cls_token"].index[2], embed)


def test_equal_sized_unrelated_spaces_are_not_tied():
    teacher, student = pair("resnet-bottleneck")
    sel = select_weights(teacher, student, "random:seed=1+first")
    spaces = sel.report["spaces"]
    a, b = spaces["layer1.0.conv1"], spaces["layer1.0.conv2"]   # same sizes (8 -> 4), different spaces
    assert (a["teacher_size"], a["student_size"]) == (b["teacher_size"], b["student_size"])
    assert a["indices"] != b["indices"]
    # ...while a block without downsample shares its input stream (ResNet-18-style layer1 and the stem)
    basic = select_weights(*pair("resnet-basic"), "random:seed=1+first")
    assert basic.sources["layer1.0.conv2.weight"].dims[0].space == "conv1.6"
    assert torch.equal(basic.sources["layer1.0.conv2.weight"].index[0], basic.sources["bn1.weight"].index[0])


def test_selection_is_pure_and_shares_no_storage():
    teacher, student = pair("convnext")
    randomize(teacher, 1)
    before_t = {k: v.clone() for k, v in teacher.state_dict().items()}
    before_s = {k: v.clone() for k, v in student.state_dict().items()}
    same = copy.deepcopy(teacher)
    sel = select_weights(teacher, same, "magnitude+even")
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before_t[k])
    for k, v in student.state_dict().items():
        assert torch.equal(v, before_s[k])
    sel.state_dict["stem.0.weight"].add_(1.0)
    assert torch.equal(teacher.state_dict()["stem.0.weight"], before_t["stem.0.weight"])


def test_vit_position_embedding_is_resampled_for_another_resolution():
    from timm.layers import resample_abs_pos_embed

    teacher = randomize(create_model("vit_tiny_patch16_224", img_size=64, patch_size=16, depth=2), 1)
    student = create_model("vit_tiny_patch16_224", img_size=32, patch_size=16, depth=1, num_classes=3)
    sel = select_weights(teacher, student, "uniform+first")
    assert sel.state_dict["pos_embed"].shape == (1, 1 + 4, 192)
    expected = resample_abs_pos_embed(teacher.pos_embed.detach(), [2, 2], [4, 4], num_prefix_tokens=1)
    assert torch.allclose(sel.state_dict["pos_embed"], expected)
    apply_selection(student, sel)
    assert student(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_report_and_dual_selection():
    teacher, student = pair("efficientnet")
    randomize(teacher, 1)
    dual = select_dual(teacher, student, "uniform+first", "uniform:offset=1+even")
    a, b = dual.a.report, dual.b.report
    params = sum(v.numel() for k, v in student.named_parameters() if k not in a["classifier_left"])
    assert a["kept_parameters"] == params and 0 < a["kept_fraction"] < 1
    assert {t["student"] for t in a["tensors"]} == set(dual.a.state_dict)
    assert a["classifier_left"] == ["classifier.bias", "classifier.weight"]
    assert "classifier.weight" not in dual.a.state_dict
    overlap = dual.report["overlap"]
    assert 0 < overlap["parameters"] < 1 and set(overlap["spaces"]) == set(a["spaces"])
    # spaces the student does not reduce are identical in A and B; reduced ones are disjoint with offset 1
    for name, value in overlap["spaces"].items():
        space = a["spaces"][name]
        if space["teacher_size"] == space["student_size"] and space["teacher_space"] == b["spaces"][name]["teacher_space"]:
            assert value == 1.0
        elif space["teacher_size"] % space["student_size"] == 0 and space["teacher_size"] >= 2 * space["student_size"]:
            assert value == 0.0, name
    same = select_dual(teacher, student, "uniform+first", "uniform+first").report["overlap"]
    assert same["parameters"] == 1.0 and same["channels"] == 1.0


def test_unsupported_models_get_a_clear_error():
    vgg_like = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3))
    with pytest.raises(SelectionError, match="supported"):
        select_weights(vgg_like, vgg_like)
    with pytest.raises(SelectionError, match="one family"):
        select_weights(create_model("resnet18"), create_model("vit_tiny_patch16_224"))
    with pytest.raises(SelectionError, match="grouped convolution"):
        select_weights(create_model("resnext50_32x4d"), create_model("resnext50_32x4d"))
    pooled = create_model("vit_tiny_patch16_224", img_size=32, depth=1, class_token=False, global_pool="map")
    with pytest.raises(SelectionError, match="attn_pool"):
        select_weights(pooled, copy.deepcopy(pooled))


def test_students_wider_or_deeper_than_the_teacher_are_refused():
    small, big = pair("resnet-bottleneck")[1], pair("resnet-bottleneck")[0]
    with pytest.raises(SelectionError, match="deeper|wider"):
        select_weights(small, big)
    teacher = create_model("resnet26", layers=(1, 1, 1, 1), channels=(8, 8, 8, 8))
    wide = create_model("resnet26", layers=(1, 1, 1, 1), channels=(8, 8, 8, 16))
    with pytest.raises(SelectionError, match="wider"):
        select_weights(teacher, wide)


def test_apply_selection_is_strict():
    teacher, student = pair("resnet-basic")
    sel = select_weights(teacher, student)
    del sel.state_dict["bn1.weight"]
    with pytest.raises(SelectionError, match="bn1.weight"):
        apply_selection(student, sel)


def test_factory_students_of_every_family_select(lite0_teacher):
    student = build_student(StudentSpec("tf_efficientnet_lite0", depth=0.5, width=0.5, resolution=64,
                                        num_classes=10), lite0_teacher)
    sel = select_weights(lite0_teacher, student, "magnitude+even")
    apply_selection(student, sel)
    assert 0.1 < sel.report["kept_fraction"] < 0.5
    assert sel.report["spaces"]["conv_stem"]["teacher_size"] == 32
