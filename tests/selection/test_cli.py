"""`edgeskd select` end to end: files, report, JSON output, errors as one line with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch

from edgeskd.cli import main
from edgeskd.selection import Selection, apply_selection, load_selection


def test_help_explains_the_strategies(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["select", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for word in ("uniform", "consecutive", "random", "magnitude", "first", "even", "--student-config", "offset"):
        assert word in out


def test_select_lite0_writes_both_models_and_report(lite0_teacher, tmp_path, capsys):
    from edgeskd.models import StudentSpec, build_student

    out = tmp_path / "sel"
    rc = main(["select", "--teacher", "tf_efficientnet_lite0", "--depth", "0.5", "--width", "0.5", "--resolution",
               "64", "--num-classes", "4", "--strategy-b", "magnitude+even", "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["strategy_a"] == "uniform+first" and summary["strategy_b"] == "magnitude+even"
    assert 0.1 < summary["kept_fraction"] < 0.5 and 0 <= summary["overlap_parameters"] < 1
    assert sorted(p.name for p in out.iterdir()) == ["model_a.safetensors", "model_b.safetensors", "selection.json"]
    report = json.loads((out / "selection.json").read_text())
    assert set(report) >= {"a", "b", "overlap", "teacher", "student"}
    spec = StudentSpec.from_dict(report["student"]["spec"])
    for name in ("a", "b"):
        state, meta = load_selection(out / f"model_{name}.safetensors")
        assert meta["model"] == name and meta["strategy"] == report[name]["strategy"]
        student = build_student(spec)
        apply_selection(student, Selection(state, meta["strategy"], report[name]))
        assert student(torch.zeros(1, 3, 64, 64)).shape == (1, 4)


def test_select_by_student_name_with_teacher_file(tmp_path, capsys):
    from safetensors.torch import save_file

    from edgeskd.models import create_model

    teacher = create_model("vit_tiny_patch16_224")
    save_file(teacher.state_dict(), str(tmp_path / "t.safetensors"))
    rc = main(["select", "--teacher", "vit_tiny_patch16_224", "--teacher-weights", str(tmp_path / "t.safetensors"),
               "--student", "vit_tiny_patch16_224", "--resolution", "64", "--out", str(tmp_path / "o")])
    assert rc == 0
    assert "model A" in capsys.readouterr().out
    state, meta = load_selection(tmp_path / "o" / "model_a.safetensors")
    assert state["pos_embed"].shape == (1, 17, 192) and meta["student"]["name"] == "vit_tiny_patch16_224"


@pytest.mark.parametrize("argv, words", [
    (["--strategy-a", "sideways+first"], ["sideways", "uniform"]),
    (["--width", "1.5"], ["width"]),
    (["--student", "resnet18"], ["family"]),
])
def test_bad_input_is_one_line_exit_2(lite0_teacher, tmp_path, capsys, argv, words):
    rc = main(["select", "--teacher", "tf_efficientnet_lite0", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("edgeskd select: error:"), err
    assert all(w in err for w in words), err
    assert not (tmp_path / "o").exists()
