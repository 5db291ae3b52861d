"""Statistics, budget checks, comparisons, the architecture hash and the cache (no worker processes here)."""

from __future__ import annotations

import pytest

from edgeskd.errors import LatencyError
from edgeskd.latency import (LatencyCache, Measurement, architecture_hash, cache_key, check_budget, compare,
                             get_target, machine_fingerprint, summarize)


def _measurement(samples, **fingerprint_changes) -> Measurement:
    fingerprint = {**machine_fingerprint(get_target("ort-cpu")), **fingerprint_changes}
    return Measurement(stats=summarize(samples), samples_ms=list(samples), fingerprint=fingerprint, mode="model",
                       artifact_sha256="abc", info={"target": get_target("ort-cpu").to_dict()})


def test_summarize_percentiles_and_spread():
    stats = summarize([float(v) for v in range(1, 101)])
    assert stats["n"] == 100 and stats["min"] == 1 and stats["max"] == 100
    assert stats["p50"] == pytest.approx(50.5) and stats["p95"] == pytest.approx(95.05)
    assert stats["p99"] == pytest.approx(99.01) and stats["mean"] == pytest.approx(50.5)
    assert stats["cv"] == pytest.approx(stats["std"] / stats["mean"])
    with pytest.raises(LatencyError, match="no latency samples"):
        summarize([])


def test_fingerprint_has_the_required_stable_keys():
    fp = machine_fingerprint(get_target("openvino-cpu:bf16"))
    assert fp["runtime"] == "openvino" and fp["precision"] == "bf16" and fp["provider"] == "CPU"
    assert fp["runtime_version"] and fp["cpu_model"] and isinstance(fp["cpu_flags"], list)
    for key in ("threads", "gpu", "gpu_driver", "jetson_power_mode", "edgeskd_version"):
        assert key in fp


def test_round_trip_and_bad_records():
    m = _measurement([1.0, 2.0, 3.0])
    again = Measurement.from_dict(m.to_dict())
    assert again.stats == m.stats and again.samples_ms == m.samples_ms and again.fingerprint == m.fingerprint
    with pytest.raises(LatencyError, match="lacks"):
        Measurement.from_dict({"stats": {}})
    with pytest.raises(LatencyError, match="unknown statistic"):
        m.statistic("p42")


def test_check_budget_passes_fails_and_refuses_another_target():
    m = _measurement([10.0] * 19 + [30.0])
    ok, reason = check_budget(m, 20, "p50")
    assert ok and "p50 10.000 ms <= budget 20 ms" in reason
    ok, reason = check_budget(m, 20, "p99")
    assert not ok and "p99" in reason and "> budget 20 ms" in reason and "\n" not in reason
    with pytest.raises(LatencyError, match="was not made on target"):
        check_budget(m, 20, target=get_target("openvino-cpu"))
    assert check_budget(m, 40, target=get_target("openvino-cpu"), force=True)[0]
    with pytest.raises(LatencyError, match="positive"):
        check_budget(m, 0)


def test_compare_gives_ratios_and_refuses_different_fingerprints():
    fast, slow = _measurement([1.0, 1.0, 1.0]), _measurement([2.0, 2.0, 2.0])
    result = compare(slow, fast)
    assert result["ratios"]["p50"] == pytest.approx(2.0) and not result["forced"]
    other = _measurement([1.0, 1.0], threads=4)
    with pytest.raises(LatencyError, match="threads: 1 vs 4"):
        compare(slow, other)
    assert compare(slow, other, force=True)["fingerprint_diff"] == {"threads": [1, 4]}


def test_architecture_hash_ignores_weights_but_not_structure(tmp_path):
    import torch

    from edgeskd.export.onnx import export_onnx
    from tests.latency.conftest import tiny_net

    torch.manual_seed(0)
    a = export_onnx(tiny_net(), tmp_path / "a.onnx", resolution=32)
    torch.manual_seed(1)
    b = export_onnx(tiny_net(), tmp_path / "b.onnx", resolution=32)
    c = export_onnx(tiny_net(width=16), tmp_path / "c.onnx", resolution=32)
    d = export_onnx(tiny_net(), tmp_path / "d.onnx", resolution=48)
    assert a.read_bytes() != b.read_bytes()
    assert architecture_hash(a) == architecture_hash(b)
    assert len({architecture_hash(a), architecture_hash(c), architecture_hash(d)}) == 3


def test_cache_round_trip_and_keys(tmp_path):
    cache = LatencyCache(tmp_path / "latency.sqlite")
    m = _measurement([1.0, 2.0])
    fp = m.fingerprint
    key = cache_key("arch-1", fp, {"runs": 5})
    assert cache.get(key) is None
    cache.put(key, m)
    assert LatencyCache(tmp_path / "latency.sqlite").get(key).stats == m.stats  # persisted
    assert cache_key("arch-1", {**fp, "threads": 2}, {"runs": 5}) != key
    assert cache_key("arch-1", fp, {"runs": 6}) != key
    assert cache_key("arch-2", fp, {"runs": 5}) != key
    (tmp_path / "junk.sqlite").write_text("not a database" * 100)
    with pytest.raises(LatencyError, match="not a usable SQLite"):
        LatencyCache(tmp_path / "junk.sqlite")
