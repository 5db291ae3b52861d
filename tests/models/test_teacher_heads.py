"""Teachers with any classifier: the size is read from the weight file (or --teacher-num-classes), said in one line,
and never leaks into the student, whose head is its own. Teachers are random weights saved to safetensors (the file
format is what matters here, not what the weights learnt); each goes through `edgeskd select` and a one-epoch
`edgeskd train` on tiny data at a tiny resolution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from edgeskd.cli import main
from edgeskd.errors import ModelError
from edgeskd.models import load_teacher
from edgeskd.models.teacher import classifier_key, create_model

TEACHERS = [("resnet18", 2, 32), ("vit_small_patch16_224", 10, 32), ("vit_small_patch16_224", 21843, 32)]
IDS = ["resnet18-2-classes", "vit-s-10-classes", "vit-s-21843-classes"]


def _teacher_file(folder: Path, name: str, classes: int) -> Path:
    torch.manual_seed(0)
    model = create_model(name, num_classes=classes)
    path = folder / f"{name}-{classes}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory) -> Path:
    """root/<class>/<i>.png: 3 classes x 6 small random RGB images (a task unrelated to the teacher's classes)."""
    from PIL import Image

    root, rng = tmp_path_factory.mktemp("tiny") / "images", np.random.default_rng(0)
    for cls in ("a", "b", "c"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name,classes,resolution", TEACHERS, ids=IDS)
def test_teacher_head_from_the_file_through_select_and_train(tmp_path, tiny_images, capsys, name, classes,
                                                             resolution):
    weights = _teacher_file(tmp_path, name, classes)

    lines: list[str] = []
    teacher = load_teacher(name, weights, say=lines.append)
    assert teacher.num_classes == classes and len(lines) == 1
    assert f"a {classes}-class classifier (read from {weights}" in lines[0] and "default is 1000" in lines[0]
    # strict load: every tensor of the file, the classifier included, is in the teacher unchanged
    key = classifier_key(teacher)
    assert torch.equal(teacher.state_dict()[key], load_file(str(weights))[key])

    student = ["--depth", "0.5", "--width", "0.5", "--resolution", str(resolution)]
    assert main(["select", "--teacher", name, "--teacher-weights", str(weights), *student, "--num-classes", "3",
                 "--out", str(tmp_path / "sel"), "--json"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["teacher_num_classes"] == classes and summary["classifier_left"]
    assert f"a {classes}-class classifier" in err and len([x for x in err.splitlines() if "classifier" in x]) == 1
    selected = load_file(str(tmp_path / "sel" / "model_a.safetensors"))
    assert key not in selected  # the classifier is never selected

    assert main(["train", "--data", str(tiny_images), "--teacher", name, "--teacher-weights", str(weights),
                 *student, "--epochs-skd", "1", "--epochs-finetune", "1", "--batch-size", "8",
                 "--val-fraction", "0.25", "--test-fraction", "0.25", "--no-progress", "--json",
                 "--out", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["student"]["num_classes"] == 3 and f"a {classes}-class classifier" in err  # the student's own head
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_teacher_num_classes_flag_and_mismatch(tmp_path):
    weights = _teacher_file(tmp_path, "resnet18", 2)
    lines: list[str] = []
    assert load_teacher("resnet18", weights, teacher_num_classes=2, say=lines.append).num_classes == 2
    assert "from --teacher-num-classes" in lines[0]
    with pytest.raises(ModelError, match=r"--teacher-num-classes 5, but .*resnet18-2.safetensors has a 2-class "
                                         r"classifier \(fc.weight\)"):
        load_teacher("resnet18", weights, teacher_num_classes=5)
    # a default-sized head says nothing; a headless backbone file loads as a teacher without a classifier
    default = _teacher_file(tmp_path, "resnet18", 1000)
    lines.clear()
    assert load_teacher("resnet18", default, say=lines.append).num_classes == 1000 and lines == []
    state = {k: v for k, v in load_file(str(default)).items() if not k.startswith("fc.")}
    save_file(state, str(tmp_path / "headless.safetensors"))
    assert load_teacher("resnet18", tmp_path / "headless.safetensors", say=lines.append).num_classes == 0
    assert "no classifier" in lines[0]


def test_search_takes_teacher_num_classes():
    from edgeskd.cli import build_parser
    from edgeskd.cli.search import build_config

    args = build_parser().parse_args(["search", "--data", "x", "--teacher", "resnet18", "--teacher-weights", "t.pth",
                                      "--teacher-num-classes", "14", "--space", "tests/search/fake_space.yaml",
                                      "--run-dir", "/tmp/unused"])
    config = build_config(args)
    assert config.teacher_num_classes == 14 and "teacher_num_classes" in config.identity()
