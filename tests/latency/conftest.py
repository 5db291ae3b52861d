"""Fixtures for the latency tests: tiny ONNX models (milliseconds to load and run) and fast protocol settings."""

from __future__ import annotations

import json

import pytest
import torch.nn as nn

FAST = dict(runs=5, seconds=0.0, warmup_s=0.02)  # protocol settings that keep each worker well under 5 s


def tiny_net(width: int = 8, classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, classes))


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    from edgeskd.export.onnx import export_onnx

    return export_onnx(tiny_net(), tmp_path_factory.mktemp("onnx") / "tiny.onnx", resolution=32)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_onnx):
    folder = tmp_path_factory.mktemp("bundle")
    (folder / "model.onnx").write_bytes(tiny_onnx.read_bytes())
    manifest = {"schema_version": 1, "model": {"files": {"onnx": "model.onnx"}},
                "preprocess": {"size": 32, "channels": 3, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                               "resize": "bilinear-antialias"}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


# --- What the runtimes report about this device -------------------------------------------------------------------
# Tests about precisions/providers decide what to expect from these reports, never from the CPU they were written on;
# the fake reports below cover the supported and the unsupported branch on every machine.

@pytest.fixture(scope="session")
def openvino_cpu_precisions() -> set[str]:
    """Precisions OpenVINO's CPU plugin reports it computes in here (OPTIMIZATION_CAPABILITIES)."""
    return openvino_precisions()


def openvino_precisions() -> set[str]:
    """The float precisions (fp32/bf16/fp16) the OpenVINO adapter says this CPU computes in."""
    from edgeskd.runtimes import get_adapter

    report = get_adapter("openvino").device_precisions("CPU")
    return {p for p in ("fp32", "bf16", "fp16") if report[p] == ""}


@pytest.fixture(scope="session")
def unsupported_target(openvino_cpu_precisions) -> str:
    """A target this machine's runtimes report they cannot run, so a measurement of it must fail."""
    import onnxruntime

    for precision in ("fp16", "bf16"):
        if precision not in openvino_cpu_precisions:
            return f"openvino-cpu:{precision}"
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return "ort-cuda"
    pytest.skip("OpenVINO reports fp16 and bf16 on this CPU and ONNX Runtime has CUDA: no target here is unsupported")


class _FakeType:
    def __init__(self, name: str):
        self.name = name

    def get_type_name(self) -> str:
        return self.name


class _FakeCompiled:
    def __init__(self, precision_hint: str, threads: int):
        self.properties = {"INFERENCE_PRECISION_HINT": _FakeType(precision_hint), "EXECUTION_DEVICES": ["CPU"],
                           "INFERENCE_NUM_THREADS": threads}

    def get_property(self, name):
        return self.properties[name]

    def create_infer_request(self):
        return object()


class _FakeDim:
    is_dynamic = False

    def __init__(self, n: int):
        self.n = n

    def get_length(self) -> int:
        return self.n


class _FakeShape(list):
    rank = _FakeDim(4)


class _FakeInput:
    any_name = "input"

    def get_partial_shape(self):
        return _FakeShape([_FakeDim(1), _FakeDim(3), _FakeDim(32), _FakeDim(32)])


class _FakeModel:
    inputs = [_FakeInput()]

    def reshape(self, shapes):
        pass

    def get_ops(self):
        return []


def _fake_openvino(capabilities: list[str]):
    """An `openvino` module whose CPU reports `capabilities` and, like the real CPU plugin, compiles at the asked
    precision only where it reports that capability (f32 otherwise)."""
    import types

    hint_capability = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}

    class Core:
        available_devices = ["CPU"]

        def get_property(self, device, name):
            assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
            return list(capabilities)

        def read_model(self, path):
            return _FakeModel()

        def compile_model(self, model, device, config):
            asked = config["INFERENCE_PRECISION_HINT"]
            used = asked if hint_capability[asked] in capabilities else "f32"
            return _FakeCompiled(used, config["INFERENCE_NUM_THREADS"])

    return types.SimpleNamespace(Core=Core, get_version=lambda: "fake")


@pytest.fixture(params=[["FP32", "INT8", "BIN", "EXPORT_IMPORT"],
                        ["FP32", "BF16", "FP16", "INT8", "BIN", "EXPORT_IMPORT"]],
                ids=["cpu-without-fp16-bf16", "cpu-with-fp16-bf16"])
def fake_openvino_report(request, monkeypatch) -> set[str]:
    """Replace `openvino` in this process by one whose CPU reports the parametrised capabilities; yields them."""
    import sys

    monkeypatch.setitem(sys.modules, "openvino", _fake_openvino(request.param))
    return set(request.param)


@pytest.fixture(params=[["CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]],
                ids=["ort-without-cuda", "ort-reports-cuda"])
def fake_ort_providers(request, monkeypatch) -> list[str]:
    """Make ONNX Runtime in this process report the parametrised providers (the session itself stays real)."""
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(request.param))
    return request.param
