"""export_bundle end to end on real chest X-rays: every family exports, passes parity, and yields a bundle whose
manifest matches the contract the C runtime reads; failures leave nothing behind."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from edgeskd._io import sha256_file
from edgeskd.errors import DataError, ExportError
from edgeskd.export import FORMATS, export_bundle, load_manifest, verify_bundle
from export_helpers import FAMILIES, LABELS, RESOLUTION, make_checkpoint


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_exports_and_passes_parity(tmp_path, family, xrays):
    import onnx
    import openvino as ov

    ckpt = tmp_path / "student.safetensors"
    make_checkpoint(ckpt, FAMILIES[family])
    report = export_bundle(ckpt, tmp_path / "bundle", parity_images=xrays)

    assert [r.artifact for r in report.parity] == ["onnx", "openvino", "openvino_fp16"]
    for result in report.parity:
        assert result.passed and result.n == len(xrays.images) == 8
        assert result.max_abs_diff <= result.allowed_max_abs
    # OpenVINO FP32 must be run at f32: in bf16 (this CPU's default) the error is ~1e-3..1e-1, far above this bound.
    assert report.parity[1].max_abs_diff < 1e-4 and "f32" in report.parity[1].runtime

    bundle = tmp_path / "bundle"
    manifest = load_manifest(bundle)
    assert manifest["model"]["family"] == family
    assert manifest["model"]["files"] == {"onnx": "model.onnx", "openvino_xml": "model.xml",
                                          "openvino_bin": "model.bin", "tensorrt": None,
                                          "openvino_fp16_xml": "model_fp16.xml", "openvino_fp16_bin": "model_fp16.bin"}
    # ONNX: one file, dynamic batch, the pinned names; the IR keeps the names.
    graph = onnx.load(str(bundle / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert not list(bundle.glob("*.data"))
    ir = ov.Core().read_model(str(bundle / "model.xml"))
    assert ir.input(0).get_any_name() == "input" and ir.output(0).get_any_name() == "logits"
    # FP16-compressed weights make a smaller IR (norm parameters may stay FP32, so not exactly half).
    assert (bundle / "model_fp16.bin").stat().st_size < 0.8 * (bundle / "model.bin").stat().st_size
    verify_bundle(bundle)


def test_manifest_contract(resnet_bundle, xrays):
    manifest = json.loads((resnet_bundle / "manifest.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["format"] == "edgeskd.bundle"
    model_in, model_out = manifest["model"]["input"], manifest["model"]["output"]
    assert model_in["name"] == "input" and model_in["shape"] == [1, 3, RESOLUTION, RESOLUTION]
    assert model_in["dtype"] == "float32" and model_in["layout"] == "NCHW"
    assert model_in["channels"] == "RGB (grayscale replicated)"
    mean, std = manifest["preprocess"]["mean"], manifest["preprocess"]["std"]
    assert model_in["value_range"] == pytest.approx([min(-m / s for m, s in zip(mean, std)),
                                                     max((1 - m) / s for m, s in zip(mean, std))])
    assert model_out == {"name": "logits", "shape": [1, 2],
                         "meaning": "unnormalised class scores; softmax gives probabilities"}
    assert manifest["model"]["openvino_config"] == {"INFERENCE_PRECISION_HINT": "f32"}
    assert manifest["preprocess"]["size"] == RESOLUTION and manifest["preprocess"]["resize"] == "bilinear-antialias"
    assert manifest["labels"] == LABELS
    assert manifest["provenance"]["teacher"] == "resnet18"
    assert manifest["provenance"]["selection"] == {"a": "uniform-0"}
    assert manifest["provenance"]["training"]["epochs"] == 0
    assert "chest-xray-samples" in manifest["parity"]["data"]["source"]
    assert manifest["parity"]["data"]["labels_file"] == "parity_labels.npy"  # dataset names matched the labels
    assert manifest["latency"] is None and "edgeskd bench" in manifest["latency_note"]
    assert manifest["environment"]["packages"]["onnxruntime"]
    # Every file but the manifest and its digest is listed with its real hash and size, and nothing else is.
    on_disk = {p.name for p in resnet_bundle.iterdir()} - {"manifest.json", "manifest.sha256"}
    digest = (resnet_bundle / "manifest.sha256").read_text()
    assert digest == hashlib.sha256((resnet_bundle / "manifest.json").read_bytes()).hexdigest() + "  manifest.json\n"
    assert set(manifest["files"]) == on_disk
    for name, record in manifest["files"].items():
        assert record == {"sha256": sha256_file(resnet_bundle / name), "bytes": (resnet_bundle / name).stat().st_size}
    # The parity inputs are stored without pickle and are the preprocessed X-rays.
    batch = np.load(resnet_bundle / "parity_batch.npy", allow_pickle=False)
    assert batch.shape == (8, 3, RESOLUTION, RESOLUTION) and batch.dtype == np.float32
    from edgeskd.data.preprocess import PreprocessSpec, preprocess_batch

    np.testing.assert_array_equal(batch, preprocess_batch(xrays.images, PreprocessSpec(size=RESOLUTION)).numpy())


def test_c_runtime_is_copied_when_built_and_recorded_when_not(tmp_path, resnet_checkpoint, monkeypatch):
    fake = tmp_path / "deploy"
    monkeypatch.setenv("EDGESKD_DEPLOY_DIR", str(fake))
    report = export_bundle(resnet_checkpoint, tmp_path / "without", formats="onnx")
    runtime = report.manifest["runtime"]
    assert runtime["header"] is None and runtime["library"] is None and "not found" in runtime["note"]
    (fake / "include").mkdir(parents=True)
    (fake / "build").mkdir()
    (fake / "include" / "edgeskd.h").write_text("/* header */\n")
    (fake / "build" / "libedgeskd.so.0.1.0").write_bytes(b"\x7fELF fake")
    (fake / "build" / "libedgeskd.so").symlink_to("libedgeskd.so.0.1.0")
    report = export_bundle(resnet_checkpoint, tmp_path / "with", formats="onnx")
    assert report.manifest["runtime"]["library"] == "libedgeskd.so"
    assert (tmp_path / "with" / "libedgeskd.so").read_bytes() == b"\x7fELF fake"  # the file, not the symlink
    assert report.manifest["files"]["edgeskd.h"]["bytes"] == len("/* header */\n")
    verify_bundle(tmp_path / "with")


def test_parity_failure_is_an_error_and_leaves_nothing(tmp_path, resnet_checkpoint, monkeypatch):
    openvino = FORMATS["openvino"]

    def off_by_a_bit(path, batch):
        logits, runtime = openvino.run(path, batch)
        if "fp16" in path.name:
            logits = logits.copy()
            logits[3, 1] += 0.5
        return logits, runtime

    monkeypatch.setitem(FORMATS, "openvino", dataclasses.replace(openvino, run=off_by_a_bit))
    with pytest.raises(ExportError, match=r"openvino_fp16 .*max \|logit diff\| 0\.5\d* \(allowed"):
        export_bundle(resnet_checkpoint, tmp_path / "bundle")
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its temporary folder


def test_existing_bundle_needs_overwrite(tmp_path, resnet_checkpoint):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists"):
        export_bundle(resnet_checkpoint, out, formats="onnx")
    assert (out / "keep.txt").read_text() == "mine"
    export_bundle(resnet_checkpoint, out, formats="onnx", overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.onnx").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # the old folder was removed
    verify_bundle(out)


def test_tensorrt_absent_is_skipped_with_the_reason(tmp_path, resnet_checkpoint):
    from edgeskd.export.tensorrt import available

    if available()[0]:
        pytest.skip("TensorRT and a GPU are present here; the skip path does not apply")
    report = export_bundle(resnet_checkpoint, tmp_path / "bundle", formats="onnx,tensorrt")
    assert report.skipped[0]["format"] == "tensorrt" and "TensorRT" in report.skipped[0]["reason"]
    assert report.manifest["model"]["files"]["tensorrt"] is None
    assert report.manifest["skipped"] == report.skipped
    assert not (tmp_path / "bundle" / "model.engine").exists()


def test_tensorrt_engine_builds_and_passes_where_available(tmp_path, resnet_checkpoint, xrays):
    from edgeskd.export.tensorrt import available

    usable, reason = available()
    if not usable:
        pytest.skip(reason)
    report = export_bundle(resnet_checkpoint, tmp_path / "bundle", formats="onnx,tensorrt", parity_images=xrays)
    assert report.parity[-1].artifact == "tensorrt" and report.parity[-1].passed
    assert report.manifest["model"]["files"]["tensorrt"] == "model.engine"
    verify_bundle(tmp_path / "bundle")


def test_int8_decision_is_recorded_and_applied(tmp_path, resnet_checkpoint, xrays):
    report = export_bundle(resnet_checkpoint, tmp_path / "bundle", formats="onnx", parity_images=xrays, int8=True,
                           max_accuracy_drop=0.2)
    record = report.manifest["int8"]
    assert record["kept"] == report.int8.kept
    assert record["fp32_ms"] > 0 and record["int8_ms"] > 0 and record["parity"]["n"] == 8
    assert record["drop_basis"] == "labels"
    assert (tmp_path / "bundle" / "model_int8.onnx").exists() == record["kept"]
    assert (report.manifest["model"]["files"].get("onnx_int8") == "model_int8.onnx") == record["kept"]
    verify_bundle(tmp_path / "bundle")


def test_checkpoint_object_and_default_random_images(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.safetensors", FAMILIES["efficientnet"], info={})
    ckpt.model.train()
    report = export_bundle(ckpt, tmp_path / "bundle", formats=["onnx"])
    assert ckpt.model.training  # the caller's mode is restored
    data = report.manifest["parity"]["data"]
    assert data["source"].startswith("random uint8 pixels") and data["labels_file"] is None
    assert report.manifest["provenance"]["teacher"] == "tf_efficientnet_lite0"
    assert (tmp_path / "bundle" / "checkpoint.safetensors").is_file()
    verify_bundle(tmp_path / "bundle")


def test_bad_arguments_are_named(tmp_path, resnet_checkpoint):
    with pytest.raises(ExportError, match=r"unknown export format\(s\) \['coreml'\]"):
        export_bundle(resnet_checkpoint, tmp_path / "b", formats="onnx,coreml")
    with pytest.raises(DataError, match="float32"):
        export_bundle(resnet_checkpoint, tmp_path / "b", parity_images=np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ExportError, match="max_accuracy_drop"):
        export_bundle(resnet_checkpoint, tmp_path / "b", int8=True, max_accuracy_drop=5)
    assert list(tmp_path.iterdir()) == []


def test_grayscale_student_and_recorded_latency(tmp_path, xrays):
    import torch

    from edgeskd.data.preprocess import PreprocessSpec
    from edgeskd.models import Checkpoint, StudentSpec, build_student

    @dataclasses.dataclass
    class FakeMeasurement:  # any dataclass or object with to_dict() is recorded as given
        target: str
        p95_ms: float

    torch.manual_seed(0)
    spec = StudentSpec("resnet18", depth=0.5, width=0.5, resolution=RESOLUTION, num_classes=2, in_chans=1)
    ckpt = Checkpoint(build_student(spec), spec, PreprocessSpec(size=RESOLUTION, channels=1, mean=(0.5,), std=(0.25,)),
                      LABELS, {})
    report = export_bundle(ckpt, tmp_path / "bundle", formats="onnx", parity_images=xrays,
                           latency=FakeMeasurement("ort-cpu", 1.5))
    model_in = report.manifest["model"]["input"]
    assert model_in["shape"] == [1, 1, RESOLUTION, RESOLUTION] and model_in["value_range"] == [-2.0, 2.0]
    assert model_in["channels"].startswith("grayscale")
    assert report.manifest["latency"] == {"target": "ort-cpu", "p95_ms": 1.5} and report.manifest["latency_note"] is None
    verify_bundle(tmp_path / "bundle")


def test_half_precision_model_is_exported_from_a_float32_copy(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.safetensors", FAMILIES["resnet"])
    ckpt.model.half()
    report = export_bundle(ckpt, tmp_path / "bundle", formats="onnx")
    assert next(ckpt.model.parameters()).dtype.is_floating_point and next(ckpt.model.parameters()).itemsize == 2
    assert report.parity[0].passed
    verify_bundle(tmp_path / "bundle")
