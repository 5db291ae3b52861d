"""The runtime adapter registry: what each adapter reports here, and int8 artifacts built from ONNX that really
contain quantisation structure and stay close to fp32 on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeskd.errors import RuntimeAdapterError
from edgeskd.runtimes import PRECISIONS, get_adapter, list_adapters, predict


def _tiny(tmp_path):
    from edgeskd.export.onnx import export_onnx

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3),
                                torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(8, 3)).eval()
    return model, export_onnx(model, tmp_path / "m.onnx", resolution=24, in_chans=3)


def test_registry_names_and_reports():
    names = {a.name for a in list_adapters()}
    assert {"onnxruntime", "openvino", "tensorrt", "torch"} <= names
    assert get_adapter("ort") is get_adapter("onnxruntime")
    with pytest.raises(RuntimeAdapterError, match="unknown runtime 'nope'"):
        get_adapter("nope")
    for adapter in list_adapters():
        report = adapter.supported()
        assert set(report) == set(PRECISIONS)
        ok, reason = adapter.available()
        if not ok:  # an absent runtime supports nothing, and says why
            assert all(r == reason for r in report.values())


def test_openvino_precisions_follow_the_device_capabilities():
    """Decided from OPTIMIZATION_CAPABILITIES, whatever this CPU is."""
    import openvino as ov

    caps = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    report = get_adapter("openvino").supported()
    assert (report["bf16"] == "") == ("BF16" in caps)
    assert (report["fp16"] == "") == ("FP16" in caps)
    assert report["fp32"] == ""


@pytest.mark.parametrize("runtime", ["ort", "openvino"])
def test_int8_artifact_has_quantisation_and_tracks_fp32(tmp_path, runtime):
    adapter = get_adapter(runtime)
    if adapter.supported()["int8"]:
        pytest.skip(f"{runtime} int8 unsupported here: {adapter.supported()['int8']}")
    model, onnx_path = _tiny(tmp_path)
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((16, 3, 24, 24)).astype(np.float32)
    held_out = rng.standard_normal((10, 3, 24, 24)).astype(np.float32)
    path = adapter.build(onnx_path, tmp_path / adapter.artifact_name("int8"), "int8", calibration=calibration)
    assert adapter.precision_of(path) == "int8"
    runner = adapter.open(path, precision="int8", threads=1, batch=4)
    assert runner.precision == "int8"
    logits = predict(runner, held_out)
    reference = model(torch.from_numpy(held_out)).detach().numpy()
    assert logits.shape == reference.shape
    assert not np.array_equal(logits, reference)  # quantised: not bit-identical to fp32
    assert np.abs(logits - reference).max() < 0.2 * np.abs(reference).max() + 0.05
    with pytest.raises(RuntimeAdapterError, match="int8"):
        adapter.open(path, precision="fp32", threads=1, batch=1) if runtime == "ort" else \
            adapter.build(onnx_path, tmp_path / "x.xml", "int8", calibration=None)


def test_int8_without_calibration_is_refused(tmp_path):
    _, onnx_path = _tiny(tmp_path)
    with pytest.raises(RuntimeAdapterError, match="calibration images from the training split"):
        get_adapter("ort").build(onnx_path, tmp_path / "q.onnx", "int8")
