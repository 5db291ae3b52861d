"""Non-finite numbers are refused where they enter (teacher weights, DICOM windows, learning rates), and a resolution
of 0 or below the family's minimum is an error, never "the default"."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgeskd.errors import DataError, ModelError, TrainingError

LITE0 = ("--teacher", "tf_efficientnet_lite0")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_teacher_weights_with_nan_or_inf_name_the_first_bad_tensor(tmp_path, bad):
    from safetensors.torch import save_file

    from edgeskd.models import create_model, load_teacher

    state = {k: v.clone() for k, v in create_model("resnet18").state_dict().items()}
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = bad
    state["layer3.0.conv1.weight"][0, 0, 0, 0] = bad
    path = tmp_path / "teacher.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelError, match=r"tensor 'layer2\.0\.conv1\.weight' holds 1 NaN/Inf"):
        load_teacher("resnet18", path)


def test_select_with_nan_teacher_weights_is_one_line_and_writes_nothing(run_cli, tmp_path):
    from safetensors.torch import save_file

    from edgeskd.models import create_model

    state = {k: v.clone() for k, v in create_model("resnet18").state_dict().items()}
    state["conv1.weight"][:] = math.nan
    save_file(state, str(tmp_path / "t.safetensors"))
    _, _, err = run_cli("select", "--teacher", "resnet18", "--teacher-weights", tmp_path / "t.safetensors",
                        "--out", tmp_path / "sel")
    assert "conv1.weight" in err and not (tmp_path / "sel").exists()


@pytest.mark.parametrize("window", [("nan", "400"), ("40", "inf"), ("40", "0")])
def test_dicom_window_must_be_finite(run_cli, window):
    _, _, err = run_cli("data", "chest-xray-samples", "--dicom-window", *window)
    assert "--dicom-window" in err


def test_dicom_window_function_refuses_nan(tmp_path):
    from edgeskd.data.dicom import _apply_window

    values = np.arange(10, dtype=np.float64)
    with pytest.raises(DataError, match="finite"):
        _apply_window(values, math.nan, 400.0, "LINEAR", tmp_path / "x.dcm")
    assert _apply_window(values, 5.0, 10.0, "LINEAR", tmp_path / "x.dcm").max() > 0


@pytest.mark.parametrize("flag, value", [("--lr", "nan"), ("--lr", "inf"), ("--temperature", "nan"),
                                         ("--weight-decay", "inf"), ("--finetune-lr-scale", "-1")])
def test_learning_rates_and_other_config_numbers_must_be_finite(run_cli, tmp_path, flag, value):
    _, _, err = run_cli("train", "--data", "chest-xray-samples", *LITE0, flag, value, "--out", tmp_path / "run")
    assert flag.lstrip("-").replace("-", "_") in err and not (tmp_path / "run").exists()


def test_training_config_refuses_inf_in_code():
    from edgeskd.training import TrainConfig

    with pytest.raises(TrainingError, match="lr=inf"):
        TrainConfig(lr=math.inf)


def test_train_resolution_zero_is_an_error_not_the_default(run_cli, tmp_path):
    _, _, err = run_cli("train", "--data", "chest-xray-samples", *LITE0, "--resolution", "0",
                        "--out", tmp_path / "run")
    assert "resolution" in err and ">= 16" in err


def test_resolution_below_the_family_minimum(tmp_path):
    from edgeskd.models import StudentSpec, build_student

    with pytest.raises(ModelError, match="below the convnext family's minimum of 32 pixels"):
        build_student(StudentSpec("convnext_atto", 0.5, 0.5, resolution=16, num_classes=2))
    with pytest.raises(ModelError, match=">= 16"):
        StudentSpec("convnext_atto", 0.5, 0.5, resolution=0)
    model = build_student(StudentSpec("convnext_atto", 0.5, 0.5, resolution=32, num_classes=2))
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 2)


@pytest.mark.parametrize("flag, value", [("--latency-ms", "nan"), ("--latency-ms", "inf"), ("--latency-ms", "0"),
                                         ("--timeout", "nan"), ("--train-fraction", "nan"), ("--workers", "0")])
def test_search_budget_and_limits_must_be_finite(run_cli, tmp_path, flag, value):
    _, _, err = run_cli("search", flag, value, "--run-dir", tmp_path / "run")
    assert flag in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag, value", [("--max-accuracy-drop", "nan"), ("--parity-images", "0")])
def test_export_numbers_must_be_in_range(run_cli, tmp_path, flag, value):
    _, _, err = run_cli("export", tmp_path / "c.safetensors", "--out", tmp_path / "b", flag, value)
    assert flag in err
