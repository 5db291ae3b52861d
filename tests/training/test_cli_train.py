"""`edgeskd train` end to end on the real chest X-ray samples (16 JPEGs), tiny student, one epoch per stage."""

from __future__ import annotations

import json

import pytest

from edgeskd.cli import main

pytest.importorskip("edgeskd.selection")

COMMON = ["--data", "chest-xray-samples", "--teacher", "tf_efficientnet_lite0", "--depth", "0.25", "--width", "0.25",
          "--resolution", "32", "--epochs-skd", "1", "--epochs-finetune", "1", "--batch-size", "8", "--val-fraction",
          "0.25", "--test-fraction", "0.25", "--no-progress"]


def _samples_or_skip():
    from edgeskd.errors import MissingDependency

    try:
        from edgeskd.data import load_dataset

        load_dataset("chest-xray-samples")
    except MissingDependency as exc:
        pytest.skip(str(exc))


def test_train_default_method_json_and_files(tmp_path, capsys):
    _samples_or_skip()
    out = tmp_path / "run"
    assert main(["train", *COMMON, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "single-ws"  # the default follows the ablation (docs/training.md)
    assert summary["student"]["num_classes"] == 2
    assert 0.0 <= summary["metrics"]["test"]["accuracy"] <= 1.0
    assert (out / "model.safetensors").exists() and (out / "log.jsonl").exists()
    # resuming a finished run changes nothing and succeeds
    assert main(["train", *COMMON, "--out", str(out), "--resume", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["metrics"] == summary["metrics"]


def test_compare_prints_one_table(tmp_path, capsys):
    _samples_or_skip()
    assert main(["train", *COMMON, "--compare", "random-init,single-ws", "--seeds", "0,1",
                 "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| method | seeds | accuracy")
    assert [line.split("|")[1].strip() for line in table[1:]] == ["random-init", "single-ws"]
    assert json.loads((tmp_path / "comparison.json").read_text())["rows"][3]["seed"] == 1


def test_bad_config_value_is_one_line_error(capsys):
    assert main(["train", *COMMON, "--ema-momentum", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeskd train: error:") and "ema_momentum=1.5" in err and "\n" not in err
