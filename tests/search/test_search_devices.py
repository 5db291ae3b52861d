"""Search workers on devices: GPU assignment per worker and the per-device measurement lock (issue 13, req. 3).

The GPU assignment is tested with torch's device count faked (this machine may have no GPU); the lock is real
(flock between threads, which hold separate open files).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time

import pytest
import torch

from edgeskd.search import devices


@pytest.fixture(autouse=True)
def private_locks(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.LOCK_DIR_ENV, str(tmp_path / "locks"))


def _fake_gpus(monkeypatch, count: int, visible: str | None = None):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)


def test_workers_spread_over_gpus_round_robin(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    places = devices.worker_assignments("auto", 3)
    assert [p["CUDA_VISIBLE_DEVICES"] for p in places] == ["0", "1", "0"]
    assert {p[devices.DEVICE_ENV] for p in places} == {"cuda:0"}
    assert [p[devices.LOCK_ENV] for p in places] == ["gpu-0", "gpu-1", "gpu-0"]
    _fake_gpus(monkeypatch, 2, visible="3,5")  # the parent's own restriction is respected
    assert [p["CUDA_VISIBLE_DEVICES"] for p in devices.worker_assignments("cuda", 2)] == ["3", "5"]
    assert [p["CUDA_VISIBLE_DEVICES"] for p in devices.worker_assignments("cuda:1", 2)] == ["5", "5"]


def test_cpu_workers_and_cuda_without_gpus(monkeypatch):
    from edgeskd.errors import TrainingError

    _fake_gpus(monkeypatch, 0)
    assert devices.worker_assignments("auto", 2) == [{devices.DEVICE_ENV: "cpu", devices.LOCK_ENV: "cpu"}] * 2
    with pytest.raises(TrainingError, match="sees no CUDA device"):
        devices.worker_assignments("cuda", 2)


def test_measurement_lock_follows_the_target(monkeypatch):
    from edgeskd.latency import get_target

    _fake_gpus(monkeypatch, 1, visible="7")
    assert devices.measurement_lock_name(get_target("ort-cpu")) == "cpu"
    for name in ("torch-cuda", "ort-cuda", "tensorrt"):
        assert devices.measurement_lock_name(get_target(name)) == "gpu-7"
    assert devices.measurement_lock_name(get_target("remote://10.0.0.2:8765/ort-cpu")) is None


def test_measurement_waits_for_training_and_blocks_new_training():
    lock = devices.DeviceLock("gpu-0")
    events: list[str] = []
    training = threading.Event()
    release = threading.Event()

    def trainer(name: str, hold: threading.Event | None) -> None:
        with lock.training():
            events.append(f"{name} trains")
            training.set()
            if hold is not None:
                hold.wait(10)
            events.append(f"{name} done")

    def measurer() -> None:
        with lock.measuring():
            events.append("measure")
            time.sleep(0.2)
            events.append("measure done")

    first = threading.Thread(target=trainer, args=("t1", release))
    first.start()
    training.wait(10)
    m = threading.Thread(target=measurer)
    m.start()
    time.sleep(0.3)
    second = threading.Thread(target=trainer, args=("t2", None))  # arrives while the measurement is queued
    second.start()
    time.sleep(0.3)
    assert events == ["t1 trains"]  # neither the measurement nor a new training started
    release.set()
    for t in (first, m, second):
        t.join(10)
    assert events == ["t1 trains", "t1 done", "measure", "measure done", "t2 trains", "t2 done"]


def test_on_device_sets_the_device_and_holds_the_locks(monkeypatch):
    from types import SimpleNamespace

    from edgeskd.search.stages import Stages

    _fake_gpus(monkeypatch, 0)
    seen = {}

    def room_free(name: str, mode: int) -> bool:
        fd = os.open(devices.lock_dir() / f"{name}.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    def measure(model, resolution, target, cache, **options):
        seen["measure_shared_free"] = room_free("cpu", fcntl.LOCK_SH)   # exclusive: not even a reader gets in
        return "m"

    def train(*args, **kwargs):
        seen["train_shared_free"] = room_free("cpu", fcntl.LOCK_SH)     # shared: other trainers may join
        seen["train_exclusive_free"] = room_free("cpu", fcntl.LOCK_EX)  # but no measurement
        return "r"

    nothing = lambda *a, **k: None  # noqa: E731
    stages = Stages(nothing, nothing, nothing, nothing, nothing, nothing, measure, nothing, lambda v: v, train,
                    nothing)
    wrapped = devices.on_device(stages, "cpu")
    assert wrapped.train_config({"lr": 0.1}) == {"lr": 0.1, "device": "cpu"}
    assert wrapped.train_config({"device": "cuda:1"})["device"] == "cuda:1"  # a space may pin it
    assert wrapped.measure(None, 32, SimpleNamespace(runtime="onnxruntime", options={}), None) == "m"
    assert wrapped.train() == "r"
    assert seen == {"measure_shared_free": False, "train_shared_free": True, "train_exclusive_free": False}
