"""verify_bundle and `edgeskd verify`/`edgeskd export` catch tampering, schema breaks and parity drift."""

import json
import shutil

import pytest

from edgeskd._io import sha256_file
from edgeskd.cli import main
from edgeskd.errors import ExportError
from edgeskd.export import verify_bundle
from export_helpers import FAMILIES, make_checkpoint


@pytest.fixture
def bundle(tmp_path, resnet_bundle):
    copy = tmp_path / "bundle"
    shutil.copytree(resnet_bundle, copy)
    return copy


def _rewrite_manifest(bundle, change):
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_fresh_bundle_verifies_with_parity_numbers(resnet_bundle):
    report = verify_bundle(resnet_bundle)
    listed = json.loads((resnet_bundle / "manifest.json").read_text())["files"]
    assert report.files_checked == len(listed) >= 8  # + edgeskd.h and libedgeskd.so when deploy/ is built
    assert [r.artifact for r in report.parity] == ["onnx", "openvino", "openvino_fp16"]
    assert all(r.passed and r.n == 8 for r in report.parity)
    assert verify_bundle(resnet_bundle / "manifest.json").files_checked == len(listed)


def test_changed_byte_is_caught_by_hash(bundle):
    data = bytearray((bundle / "model.bin").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / "model.bin").write_bytes(bytes(data))
    with pytest.raises(ExportError, match=r"model\.bin: sha256 [0-9a-f]{16}\.\.\., manifest says"):
        verify_bundle(bundle)


def test_missing_and_unlisted_files_are_named(bundle):
    (bundle / "model_fp16.xml").unlink()
    (bundle / "notes.txt").write_text("extra")
    with pytest.raises(ExportError) as err:
        verify_bundle(bundle)
    assert "model_fp16.xml: listed in the manifest but missing" in str(err.value)
    assert "notes.txt: present in the bundle but not listed" in str(err.value)


def test_manifest_edit_is_caught_without_parity(bundle):
    """Any change to manifest.json after export (here the labels reversed) breaks manifest.sha256; --no-parity
    catches it, as the C runtime does."""
    _rewrite_manifest(bundle, lambda m: m["labels"].reverse())
    with pytest.raises(ExportError, match=r"manifest\.json: sha256 [0-9a-f]{16}\.\.\., manifest\.sha256 says"):
        verify_bundle(bundle, parity=False)


def test_schema_violation_names_the_field(bundle):
    _rewrite_manifest(bundle, lambda m: m["model"]["input"].update(dtype="uint8"))
    with pytest.raises(ExportError, match=r"manifest schema v1: model/input/dtype: 'float32' was expected"):
        verify_bundle(bundle)
    _rewrite_manifest(bundle, lambda m: m.pop("labels"))
    with pytest.raises(ExportError, match="'labels' is a required property"):
        verify_bundle(bundle)


def test_path_in_file_name_is_refused(bundle):
    _rewrite_manifest(bundle, lambda m: m["model"]["files"].update(onnx="../elsewhere.onnx"))
    with pytest.raises(ExportError, match="model/files/onnx"):
        verify_bundle(bundle)


def test_consistently_replaced_model_fails_parity_with_numbers(bundle, tmp_path):
    """Swap in another model's ONNX and fix its hash in the manifest and the manifest's digest: only the parity
    check can notice."""
    from edgeskd.export.integrity import write_manifest_digest
    from edgeskd.export.onnx import export_onnx

    other = make_checkpoint(tmp_path / "other.safetensors", FAMILIES["resnet"], seed=1)
    export_onnx(other.model, bundle / "model.onnx", resolution=other.spec.resolution)
    new = {"sha256": sha256_file(bundle / "model.onnx"), "bytes": (bundle / "model.onnx").stat().st_size}
    _rewrite_manifest(bundle, lambda m: m["files"].update({"model.onnx": new}))
    write_manifest_digest(bundle)
    with pytest.raises(ExportError, match=r"parity gate failed for onnx \(model\.onnx.*max \|logit diff\| \d"):
        verify_bundle(bundle)
    verify_bundle(bundle, parity=False)  # hashes and schema alone are consistent


def test_cli_export_then_verify(tmp_path, resnet_checkpoint, capsys):
    out = tmp_path / "bundle"
    assert main(["export", str(resnet_checkpoint), "--out", str(out), "--formats", "onnx", "--parity-data",
                 "chest-xray-samples", "--parity-images", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity"][0]["artifact"] == "onnx" and report["parity"][0]["n"] == 4
    assert main(["verify", str(out)]) == 0
    assert "OK (" in capsys.readouterr().out
    assert main(["verify", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_cli_failures_are_one_line_exit_2(tmp_path, resnet_checkpoint, capsys):
    assert main(["export", str(resnet_checkpoint), "--out", str(tmp_path / "b"), "--formats", "onnx,tflite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown export format(s) ['tflite']" in err
    assert main(["verify", str(tmp_path / "nothing")]) == 2
    assert "no bundle manifest" in capsys.readouterr().err


def test_c_runtime_reads_the_bundle_and_agrees_with_pytorch(resnet_bundle, resnet_checkpoint, tmp_path):
    """Cross-check with the C runtime's example program, when deploy/ has been built (skipped otherwise)."""
    import subprocess

    import numpy as np
    import torch
    from PIL import Image

    from edgeskd.data.preprocess import preprocess
    from edgeskd.export.bundle import deploy_dir
    from edgeskd.models import load_checkpoint

    classify = deploy_dir() / "build" / "classify"
    if not classify.is_file():
        pytest.skip(f"{classify} not built (cmake in deploy/)")
    from edgeskd.data import load_dataset

    image = np.asarray(load_dataset("chest-xray-samples").test.images[0])
    if image.ndim == 3:
        image = image[..., 0]
    Image.fromarray(image).save(tmp_path / "x.pgm")
    ckpt = load_checkpoint(resnet_checkpoint)
    with torch.no_grad():
        expected = torch.softmax(ckpt.model(preprocess(image, ckpt.preprocess)[None]), 1)[0].numpy()
    for backend in ("onnxruntime", "openvino"):
        out = subprocess.run([str(classify), str(resnet_bundle), str(tmp_path / "x.pgm"), "--backend", backend,
                              "--all"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        probs = dict(line.split() for line in out.stdout.strip().splitlines())
        got = np.array([float(probs[label]) for label in ckpt.labels])
        np.testing.assert_allclose(got, expected, atol=2e-5)  # the program prints 6 decimals
