from __future__ import annotations

import pytest

from edgeskd.errors import LatencyError
from edgeskd.latency import get_target, list_targets
from edgeskd.latency.targets import profiles_dir

SHIPPED = ("ort-cpu", "openvino-cpu", "openvino-cpu-bf16", "tensorrt-fp16", "torch-cuda", "jetson-orin-remote")


def test_builtin_names_resolve_with_canonical_names():
    t = get_target("openvino-cpu:bfloat16")
    assert (t.name, t.runtime, t.precision, t.threads) == ("openvino-cpu:bf16", "openvino", "bf16", 1)
    assert get_target("ort-cpu").options["provider"] == "CPUExecutionProvider"
    assert get_target("tensorrt:fp16").precision == "fp16"
    assert get_target("openvino-cpu", precision="f32").name == "openvino-cpu"
    assert get_target("ort-cpu", threads=3).threads == 3


def test_every_shipped_profile_loads_and_is_listed():
    assert profiles_dir() is not None
    names = list_targets()
    for name in SHIPPED:
        assert name in names
        target = get_target(name)
        assert target.options["profile"].endswith(f"{name}.yaml")
    assert get_target("openvino-cpu").precision == "fp32"  # pinned: OpenVINO would pick bf16 here by itself
    assert get_target("openvino-cpu-bf16").name == "openvino-cpu:bf16"
    jetson = get_target("jetson-orin-remote")
    assert jetson.runtime == "remote" and jetson.budget_ms == 20
    assert jetson.options["device_target"] == "tensorrt:fp16"


def test_remote_urls():
    t = get_target("remote://10.0.0.7:8765")
    assert t.options == {"url": "http://10.0.0.7:8765", "device_target": "ort-cpu"}
    t = get_target("remote://jetson.local:9000/openvino-cpu", precision="bf16")
    assert t.name == "remote://jetson.local:9000/openvino-cpu:bf16" and t.precision == "bf16"


@pytest.mark.parametrize("bad, message", [
    ("ort-gpu", "unknown target"), ("ort-cpu:fp16", "does not support precision"),
    ("openvino-cpu:int4", "unknown precision"), ("remote:/host", "must look like"),
    ("remote://h:1/remote://x:2", "cannot name another remote"), ("missing.yaml", "does not exist"),
])
def test_bad_target_names_are_clear_errors(bad, message):
    with pytest.raises(LatencyError, match=message):
        get_target(bad)


def test_profile_file_with_overrides_and_errors(tmp_path):
    good = tmp_path / "nuc.yaml"
    good.write_text("target: openvino-cpu\nprecision: bf16\nthreads: 2\nstatistic: p99\nbudget_ms: 15\n")
    t = get_target(str(good), threads=1)
    assert (t.precision, t.threads, t.statistic, t.budget_ms) == ("bf16", 1, "p99", 15.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: ort-cpu\nthread: 2\n")
    with pytest.raises(LatencyError, match="unknown keys"):
        get_target(str(bad))
    bad.write_text("target: ort-cpu\nstatistic: p42\n")
    with pytest.raises(LatencyError, match="statistic"):
        get_target(str(bad))
    with pytest.raises(LatencyError, match="threads must be >= 1"):
        get_target("ort-cpu", threads=0)
