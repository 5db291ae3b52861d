"""`edgeskd data`, `train` and `search` read data with one shared set of options (cli/_common.add_data_options)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch

from edgeskd.cli import build_parser, main


def _options(command: str) -> dict[str, tuple]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    return {a.option_strings[0]: (a.nargs, a.type, a.default, a.metavar)
            for a in parser._actions if a.option_strings}


def test_the_three_commands_expose_the_same_data_options():
    shared = ("--train-fraction", "--val-fraction", "--test-fraction", "--same-size", "--dicom-window")
    data, train, search = _options("data"), _options("train"), _options("search")
    for flag in shared:
        assert flag in data and data[flag] == train.get(flag) == search.get(flag), flag
    # every data-reading option of `edgeskd data` (other than its positional SOURCE and --json) is in both
    assert set(data) - {"-h", "--json", "--seed"} == set(shared)


def test_options_reach_load_dataset_and_the_search_config():
    from edgeskd.cli._common import data_options
    from edgeskd.search.config import SearchConfig

    argv = ["--train-fraction", "0.5", "--val-fraction", "0.2", "--test-fraction", "0.1", "--same-size",
            "--dicom-window", "40", "400"]
    args = build_parser().parse_args(["train", "--data", "x", "--teacher", "resnet18", *argv])
    wanted = {"train_fraction": 0.5, "val_fraction": 0.2, "test_fraction": 0.1, "allow_mixed_sizes": False,
              "dicom_window": (40.0, 400.0)}
    assert data_options(args) == wanted
    search = build_parser().parse_args(["search", "--data", "x", *argv])
    config = SearchConfig(data="x", **SearchConfig.data_fields(data_options(search)))
    assert config.data_options() == wanted and config.dicom_window == [40.0, 400.0]
    # the saved config.json round-trips to the same identity (a resumed search is the same search)
    again = SearchConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.identity() == config.identity() and again.data_options() == wanted


@pytest.fixture
def mixed_ct_mr(tmp_path, dicom_file) -> Path:
    """root/ct/*.dcm and root/mr/*.dcm: pydicom's real CT and MR test slices, 6 copies each."""
    root = tmp_path / "ct-mr"
    for cls, name in (("ct", "CT_small.dcm"), ("mr", "MR_small.dcm")):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            shutil.copy(dicom_file(name), root / cls / f"{i}.dcm")
    return root


@pytest.fixture
def dicom_file():
    pydicom_data = pytest.importorskip("pydicom.data")
    folder = Path(pydicom_data.__file__).parent / "test_files"

    def get(name: str) -> Path:
        if not (folder / name).is_file():
            pytest.skip(f"pydicom test file {name} is not in this pydicom wheel")
        return folder / name

    return get


def test_train_reads_a_mixed_ct_mr_folder_with_dicom_window(tmp_path, mixed_ct_mr, capsys):
    from safetensors.torch import save_file

    from edgeskd.models.teacher import create_model

    torch.manual_seed(0)
    teacher = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in create_model("resnet18").state_dict().items()}, str(teacher))
    argv = ["train", "--data", str(mixed_ct_mr), "--teacher", "resnet18", "--teacher-weights", str(teacher),
            "--depth", "0.5", "--width", "0.5", "--resolution", "32", "--epochs-skd", "1", "--epochs-finetune", "1",
            "--batch-size", "4", "--val-fraction", "0.25", "--test-fraction", "0.25", "--no-progress", "--json"]
    assert main(argv) == 2  # without a window the folder mixes windowed MR and raw CT output
    assert "--dicom-window" in capsys.readouterr().err
    assert main([*argv, "--dicom-window", "40", "400", "--out", str(tmp_path / "run")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["student"]["num_classes"] == 2 and (tmp_path / "run" / "model.safetensors").is_file()
