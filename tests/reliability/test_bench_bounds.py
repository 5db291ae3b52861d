"""`bench`: threads, batch and image size are bounded (flags raise the limits), numbers must be finite, and --save is
checked before measuring and written after the report is printed, so a measurement is never lost."""

from __future__ import annotations

import errno
import json
import os

import pytest

from edgeskd._limits import check_measure_settings, online_cores
from edgeskd.errors import EdgeskdError

FAST = ("--runs", "3", "--seconds", "0", "--warmup", "0.01")


@pytest.mark.parametrize("settings, words", [
    ({"threads": 100000}, ["threads", "limit", "--force-threads"]),
    ({"batch": 100000}, ["batch", "256", "--max-batch"]),
    ({"raw_size": 100000}, ["raw_size", "4096", "--max-image-side"]),
    ({"seconds": float("nan")}, ["seconds", "finite"]),
    ({"runs": float("inf")}, ["runs", "finite"]),
    ({"threads": 0}, ["threads", ">= 1"]),
    ({"batch": True}, ["batch", "number"]),
])
def test_limits_refuse_with_the_limit_named(settings, words):
    with pytest.raises(EdgeskdError) as info:
        check_measure_settings(settings)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_threads_limit_is_this_machines_cores():
    cores = online_cores()
    assert check_measure_settings({"threads": cores})["threads"] == cores
    with pytest.raises(EdgeskdError, match=f"limit of {cores}"):
        check_measure_settings({"threads": cores + 1})
    assert check_measure_settings({"threads": cores + 1}, force_threads=True)["threads"] == cores + 1


def test_bench_refuses_out_of_range_flags(run_cli, tiny_onnx):
    _, _, err = run_cli("bench", tiny_onnx, "--threads", str(online_cores() + 1))
    assert "--force-threads" in err
    _, _, err = run_cli("bench", tiny_onnx, "--batch", "100000")
    assert "--max-batch" in err
    _, _, err = run_cli("bench", tiny_onnx, "--raw-size", "100000")
    assert "--max-image-side" in err
    _, _, err = run_cli("bench", tiny_onnx, "--seconds", "nan")
    assert "finite" in err


def test_bench_flags_raise_the_limits(run_cli, tiny_onnx):
    _, out, _ = run_cli("bench", tiny_onnx, *FAST, "--batch", "300", "--max-batch", "300", "--json", expect=0)
    assert json.loads(out)["results"][0]["measurement"]["info"]["batch"] == 300
    run_cli("bench", tiny_onnx, *FAST, "--threads", str(online_cores() + 1), "--force-threads", expect=0)


def test_bench_save_to_an_unwritable_place_fails_before_measuring(run_cli, tiny_onnx, blocked_dir, monkeypatch):
    def no_measuring(*args, **kwargs):
        raise AssertionError("measured before checking --save")

    monkeypatch.setattr("edgeskd.latency.measure", no_measuring)
    _, _, err = run_cli("bench", tiny_onnx, "--save", blocked_dir / "report.json")
    assert "a-file" in err


def test_bench_prints_the_report_before_a_failed_save(run_cli, tiny_onnx, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "r.json"))

    monkeypatch.setattr("edgeskd._io.atomic_write_json", full_disk)
    _, out, err = run_cli("bench", tiny_onnx, *FAST, "--json", "--save", tmp_path / "r.json")
    assert json.loads(out)["results"][0]["status"] == "ok"  # the measurement reached stdout
    assert "No space left on device" in err and "--save" in err
    assert not (tmp_path / "r.json").exists()
