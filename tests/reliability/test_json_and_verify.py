"""JSON readers bound size (16 MiB, the C runtime's manifest limit) and nesting depth (64): a 100,000-deep array is
one line, not a RecursionError. `verify` refuses what the C runtime refuses: a model symlinked from outside the
bundle, a manifest over 16 MiB."""

from __future__ import annotations

import json
import shutil

import pytest

from edgeskd._json import MAX_JSON_BYTES, JSONLimitError, loads_bounded, read_json_object
from edgeskd.errors import ExportError

DEEP = "[" * 100_000 + "]" * 100_000


def test_deep_nesting_is_a_named_error_not_a_recursion_error():
    with pytest.raises(JSONLimitError, match="nesting deeper than the limit of 64"):
        loads_bounded(DEEP)
    assert loads_bounded("[" * 64 + "]" * 64) is not None
    assert loads_bounded('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')  # in a string


def test_size_limit_is_checked_before_reading(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(MAX_JSON_BYTES + 1)  # sparse: no 16 MiB written
    with pytest.raises(ExportError, match=f"over the {MAX_JSON_BYTES}-byte limit"):
        read_json_object(big, ExportError, "bundle manifest")


@pytest.mark.parametrize("command", [["verify"], ["bench"]])
def test_deeply_nested_manifest_is_one_line(run_cli, tmp_path, command):
    (tmp_path / "manifest.json").write_text(DEEP)
    _, _, err = run_cli(*command, tmp_path)
    assert "nesting deeper than the limit of 64" in err


def test_deeply_nested_config_files_are_one_line(run_cli, tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"lr": ' + DEEP + "}")
    _, _, err = run_cli("train", "--data", "chest-xray-samples", "--teacher", "tf_efficientnet_lite0",
                        "--config", config)
    assert "training config" in err and "nesting" in err
    _, _, err = run_cli("select", "--teacher", "tf_efficientnet_lite0", "--student-config", config,
                        "--out", tmp_path / "o")
    assert "student config" in err and "nesting" in err


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """One real exported bundle (tiny ResNet student, ONNX only)."""
    from edgeskd.data.preprocess import PreprocessSpec
    from edgeskd.export import export_bundle
    from edgeskd.models import Checkpoint, StudentSpec, build_student, save_checkpoint

    root = tmp_path_factory.mktemp("verify")
    spec = StudentSpec("resnet18", depth=0.5, width=0.5, resolution=32, num_classes=2)
    save_checkpoint(root / "ckpt.safetensors", Checkpoint(build_student(spec).eval(), spec, PreprocessSpec(size=32),
                                                          ["NORMAL", "PNEUMONIA"], {"note": "untrained test student"}))
    export_bundle(root / "ckpt.safetensors", root / "bundle", formats="onnx", progress=False)
    return root / "bundle"


def test_verify_refuses_a_model_symlinked_from_outside_the_bundle(run_cli, bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    outside = tmp_path / "outside.onnx"
    shutil.move(copy / "model.onnx", outside)
    (copy / "model.onnx").symlink_to(outside)  # same bytes, same hash: only the link gives it away
    run_cli("verify", bundle, "--no-parity", expect=0)
    _, _, err = run_cli("verify", copy, "--no-parity")
    assert "model.onnx: is a symbolic link" in err  # refused like the C runtime does, wherever the link points


def test_verify_refuses_a_manifest_over_16_mib(run_cli, bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["padding"] = "x" * MAX_JSON_BYTES  # valid JSON and schema (extra fields are allowed), but too big
    (copy / "manifest.json").write_text(json.dumps(manifest))
    _, _, err = run_cli("verify", copy, "--no-parity")
    assert "limit" in err and str(MAX_JSON_BYTES) in err


def test_checkpoint_with_a_hostile_header_is_a_named_error(tmp_path):
    import torch
    from safetensors.torch import save_file

    from edgeskd.errors import ModelError
    from edgeskd.models import load_checkpoint
    from edgeskd.models.checkpoint import FORMAT

    path = tmp_path / "hostile.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"format": FORMAT, "student": DEEP})
    with pytest.raises(ModelError, match="'student' is not valid JSON: nesting deeper than the limit of 64"):
        load_checkpoint(path)
