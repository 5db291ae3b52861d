"""Real measurements in worker processes on this machine's CPU runtimes (tiny models, few runs)."""

from __future__ import annotations

import importlib.util

import pytest

from edgeskd.data.preprocess import PreprocessSpec
from edgeskd.errors import LatencyError, MissingDependency
from edgeskd.latency import LatencyCache, get_target, measure, measure_model
from edgeskd.latency.measure import MeasurementTimeout
from tests.latency.conftest import FAST, tiny_net


def test_ort_cpu_protocol_fingerprint_and_raw_samples(tiny_onnx):
    m = measure(tiny_onnx, get_target("ort-cpu"), runs=30, seconds=0.0, warmup_s=0.05)
    assert m.mode == "model" and m.stats["n"] == len(m.samples_ms) >= 30
    assert m.stats["min"] <= m.stats["p50"] <= m.stats["p95"] <= m.stats["p99"] <= m.stats["max"]
    assert m.fingerprint["provider"] == "CPUExecutionProvider" and m.fingerprint["threads"] == 1
    assert m.info["runtime_reported"]["providers"][0] == "CPUExecutionProvider"
    assert m.info["input_shape"] == [1, 3, 32, 32] and len(m.artifact_sha256) == 64


def test_seconds_floor_extends_the_run(tiny_onnx):
    m = measure(tiny_onnx, get_target("ort-cpu"), runs=1, seconds=0.3, warmup_s=0.0)
    assert sum(m.samples_ms) < 300 and m.stats["n"] > 10  # kept timing until 0.3 s passed, not just 1 run


def test_openvino_precision_is_pinned_and_asserted(tiny_onnx):
    f32 = measure(tiny_onnx, get_target("openvino-cpu"), **FAST)
    assert f32.fingerprint["precision"] == "fp32" and "float32" in f32.info["runtime_reported"]["inference_precision"]
    if "avx512_bf16" in f32.fingerprint["cpu_flags"] or "amx_bf16" in f32.fingerprint["cpu_flags"]:
        bf16 = measure(tiny_onnx, get_target("openvino-cpu:bf16"), **FAST)
        assert "bfloat16" in bf16.info["runtime_reported"]["inference_precision"]
    # This CPU has no fp16 arithmetic: OpenVINO silently runs bf16/f32 instead, which must be an error.
    with pytest.raises(LatencyError, match="reports"):
        measure(tiny_onnx, get_target("openvino-cpu:fp16"), **FAST)


def test_end_to_end_includes_preprocessing(tiny_onnx):
    spec = PreprocessSpec(size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    m = measure(tiny_onnx, get_target("ort-cpu"), end_to_end=True, preprocess=spec, raw_size=96, **FAST)
    assert m.mode == "end-to-end" and m.info["raw_image_shape"] == [96, 96, 3]
    with pytest.raises(LatencyError, match="takes"):
        measure(tiny_onnx, get_target("ort-cpu"), end_to_end=True, preprocess=PreprocessSpec(size=64), **FAST)
    with pytest.raises(LatencyError, match="needs the preprocessing"):
        measure(tiny_onnx, get_target("ort-cpu"), end_to_end=True)


def test_timeout_and_bad_inputs(tiny_onnx, tmp_path):
    with pytest.raises(MeasurementTimeout, match="longer than"):
        measure(tiny_onnx, get_target("ort-cpu"), runs=10, seconds=30, timeout_s=3)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(LatencyError, match="bad.onnx"):
        measure(bad, get_target("ort-cpu"), **FAST)
    with pytest.raises(LatencyError, match="does not exist"):
        measure(tmp_path / "none.onnx", get_target("ort-cpu"))
    with pytest.raises(LatencyError, match="runs must be"):
        measure(tiny_onnx, get_target("ort-cpu"), runs=0)


def test_provider_that_is_missing_is_not_replaced_by_cpu(tiny_onnx):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA for ONNX Runtime")
    with pytest.raises(MissingDependency, match="CUDAExecutionProvider"):
        measure(tiny_onnx, get_target("ort-cuda"), **FAST)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="TensorRT is not installed here")
def test_tensorrt_builds_caches_and_measures(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESKD_CACHE_DIR", str(tmp_path))
    first = measure(tiny_onnx, get_target("tensorrt:fp16"), **FAST)
    second = measure(tiny_onnx, get_target("tensorrt:fp16"), **FAST)
    assert first.fingerprint["provider"] == "TensorRT" and first.fingerprint["gpu"]
    assert not first.info["runtime_reported"]["engine_cache_hit"]
    assert second.info["runtime_reported"]["engine_cache_hit"]


def test_tensorrt_absent_is_a_clear_missing_dependency(tiny_onnx):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    with pytest.raises(MissingDependency, match="TensorRT is not installed"):
        measure(tiny_onnx, get_target("tensorrt"), **FAST)


def test_measure_model_uses_the_cache_across_weights(tmp_path):
    import torch

    cache = LatencyCache(tmp_path / "cache.sqlite")
    torch.manual_seed(0)
    first = measure_model(tiny_net(), 32, get_target("ort-cpu"), cache=cache, **FAST)
    torch.manual_seed(1)  # same architecture, other weights: latency cannot differ, so no second measurement
    again = measure_model(tiny_net(), 32, get_target("ort-cpu"), cache=cache, **FAST)
    assert first.info["cache"] == "miss" and again.info["cache"] == "hit"
    assert again.samples_ms == first.samples_ms and len(cache) == 1
    other = measure_model(tiny_net(width=16), 32, get_target("ort-cpu"), cache=cache, **FAST)
    assert other.info["cache"] == "miss" and len(cache) == 2
    assert first.artifact_sha256.startswith("arch-")


def test_torch_target_runs_a_traced_module():
    m = measure_model(tiny_net(), 32, get_target("torch-cpu"), **FAST)
    assert m.fingerprint["runtime"] == "torch" and m.fingerprint["provider"] == "cpu" and m.stats["n"] >= 5
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(MissingDependency, match="CUDA"):
            measure_model(tiny_net(), 32, get_target("torch-cuda"), **FAST)
