import numpy as np
import pytest
import torch

from edgeskd.errors import ModelError
from edgeskd.models import (StudentSpec, build_student, family_of, load_teacher, profile_model, read_state_dict)
from edgeskd.models.teacher import load_weights_strict, create_model


def _photo(name: str) -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return getattr(skimage_data, name)()


@pytest.mark.parametrize("photo, expected", [("coffee", {"cup", "espresso", "coffee mug"}),
                                             ("chelsea", {"tabby", "tiger cat", "Egyptian cat"})])
def test_lite0_teacher_recognises_real_photos(lite0_teacher, photo, expected):
    from edgeskd.data.preprocess import PreprocessSpec, preprocess
    from timm.data import ImageNetInfo

    spec = PreprocessSpec.for_model(lite0_teacher)
    with torch.no_grad():
        logits = lite0_teacher(preprocess(_photo(photo), spec).unsqueeze(0))
    names = ImageNetInfo().index_to_description
    top5 = [names(int(i)) for i in logits.topk(5).indices[0]]
    print(photo, top5)
    assert any(any(e.lower() in t.lower() for e in expected) for t in top5), top5


def test_weights_mismatch_lists_keys(tmp_path):
    from safetensors.torch import save_file

    model = create_model("resnet18")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    del state["fc.weight"]
    state["extra.weight"] = torch.zeros(3)
    state["conv1.weight"] = torch.zeros(1, 1, 1, 1)
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelError) as err:
        load_weights_strict(model, read_state_dict(tmp_path / "w.safetensors"), "w.safetensors")
    message = str(err.value)
    assert "fc.weight" in message and "extra.weight" in message and "conv1.weight" in message


def test_prefixed_pth_is_read_without_pickle(tmp_path):
    model = create_model("resnet18", num_classes=3)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "w.pth")
    state = read_state_dict(tmp_path / "w.pth")
    load_weights_strict(create_model("resnet18", num_classes=3), state, "w.pth")


class _NotATensor:
    pass


def test_pickled_object_is_refused(tmp_path):
    torch.save({"state_dict": _NotATensor()}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="evil.pt"):
        read_state_dict(tmp_path / "evil.pt")


def test_missing_weight_file_named(tmp_path):
    with pytest.raises(ModelError, match="nope.safetensors"):
        load_teacher("resnet18", tmp_path / "nope.safetensors")


@pytest.mark.parametrize("teacher, family", [("tf_efficientnet_lite0", "efficientnet"), ("vit_tiny_patch16_224", "vit"),
                                             ("convnext_atto", "convnext"), ("resnet18", "resnet"),
                                             ("resnet26", "resnet")])
def test_student_factory_shrinks_within_family(teacher, family):
    spec = StudentSpec(teacher, depth=0.5, width=0.5, resolution=64, num_classes=4)
    student = build_student(spec)
    full = build_student(StudentSpec(teacher, resolution=64, num_classes=4))
    assert family_of(student) == family == family_of(full)
    small, big = profile_model(student, 64), profile_model(full, 64)
    assert small.parameters < big.parameters and small.macs < big.macs
    assert student(torch.zeros(2, 3, 64, 64)).shape == (2, 4)


def test_unknown_family_is_refused():
    with pytest.raises(ModelError, match="not of a supported family"):
        build_student(StudentSpec("swin_tiny_patch4_window7_224"))


def test_bad_multiplier_is_refused():
    with pytest.raises(ModelError, match="depth"):
        StudentSpec("resnet18", depth=1.5)


def test_plain_stem_resnet_student_is_selectable():
    # timm's plain stem is fixed at 64 channels: the factory keeps stage 1 that wide so no extra shortcut appears
    from edgeskd.selection import select_weights

    student = build_student(StudentSpec("resnet18", depth=0.5, width=0.5, resolution=64, num_classes=3))
    assert student.layer1[0].downsample is None
    assert student.layer2[0].conv1.out_channels == 64  # 128 * 0.5
    select_weights(create_model("resnet18"), student, "uniform+first")


def test_width_that_changes_residual_structure_is_refused():
    with pytest.raises(ModelError, match="residual connection"):
        build_student(StudentSpec("efficientnet_b0", depth=0.5, width=0.25, resolution=64, num_classes=3))


def test_hub_weights_offline_is_a_clear_error(monkeypatch):
    # this machine has no route to the model hub: asking for it must fail with a one-line ModelError, not a traceback
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: patch the constant
    with pytest.raises(ModelError, match="--teacher-weights FILE"):
        load_teacher("resnet18", "hub")
