"""Search workers on devices: which GPU each worker trains on, and a lock per device so that latency measurement
never runs on a device while a trial trains there.

- Spreading: `edgeskd search --workers K` on a machine where torch sees G GPUs (and --device is auto or cuda) gives
  worker i the GPU i mod G, by setting CUDA_VISIBLE_DEVICES for its process (inside, that GPU is cuda:0). So the
  default is one worker per GPU when K = G; K = 2G puts two workers on each GPU. --device cuda:N puts every worker
  on GPU N; --device cpu trains on the CPU.
- The lock: one per device and machine (a file under $EDGESKD_LOCK_DIR or the temp folder, so two searches on one
  machine share it). Training a trial holds it shared; measuring a candidate's latency on that device holds it
  exclusively. A measurement waits for the trials training on its device to finish their current trial, and new
  trials wait while it measures (writer preference through a second "turnstile" file, so measurements are never
  starved). A GPU target (torch-cuda, ort-cuda, tensorrt) locks the worker's GPU; a CPU target locks the CPU, which
  every CPU-training worker holds; a remote target (the latency agent on another machine) locks nothing.
- Across machines (PostgreSQL storage) each machine runs its own `edgeskd search ... --workers K`; locks are local to
  each machine, which is where the devices are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeskd.errors import SearchError

LOCK_DIR_ENV = "EDGESKD_LOCK_DIR"
DEVICE_ENV = "EDGESKD_SEARCH_DEVICE"        # the worker's --device inside its CUDA_VISIBLE_DEVICES (e.g. cuda:0)
LOCK_ENV = "EDGESKD_SEARCH_DEVICE_LOCK"     # the lock name of the device the worker trains on (e.g. gpu-3)


def lock_dir() -> Path:
    root = os.environ.get(LOCK_DIR_ENV) or os.path.join(tempfile.gettempdir(), f"edgeskd-device-locks-{os.getuid()}")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


class DeviceLock:
    """A readers-writer lock between processes on one machine: trainers share it, a measurement holds it alone."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.room = lock_dir() / f"{name}.lock"
        self.turnstile = lock_dir() / f"{name}.turnstile"

    @contextlib.contextmanager
    def _flock(self, path: Path, mode: int) -> Iterator[None]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        with self._flock(self.turnstile, fcntl.LOCK_EX):  # wait behind a measurement that is queued
            fd = os.open(self.room, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def measuring(self) -> Iterator[None]:
        with self._flock(self.turnstile, fcntl.LOCK_EX), self._flock(self.room, fcntl.LOCK_EX):
            yield


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (indices or UUIDs)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        names = [v.strip() for v in listed.split(",") if v.strip()]
        return names[:count]
    return [str(i) for i in range(count)]


def worker_assignments(device: str, workers: int) -> list[dict[str, str]]:
    """Per worker, the environment that pins it to its device: CUDA_VISIBLE_DEVICES, its --device, its lock name."""
    from edgeskd.training.device import resolve_device

    dev = resolve_device(device)  # --device cuda without CUDA: the one-line error, before any worker starts
    if dev.type != "cuda":
        return [{DEVICE_ENV: "cpu", LOCK_ENV: "cpu"} for _ in range(workers)]
    gpus = visible_gpus()
    chosen = [gpus[dev.index]] if device.startswith("cuda:") else gpus
    if not chosen:
        raise SearchError(f"--device {device}: torch sees no GPU to give the workers")
    out = []
    for i in range(workers):
        gpu = chosen[i % len(chosen)]
        out.append({"CUDA_VISIBLE_DEVICES": gpu, DEVICE_ENV: "cuda:0", LOCK_ENV: f"gpu-{gpu}"})
    return out


def training_lock_name(device: str) -> str:
    """The lock of the device a process trains on when no assignment came from the driver."""
    from edgeskd.training.device import resolve_device

    dev = resolve_device(device)
    if dev.type != "cuda":
        return "cpu"
    return f"gpu-{visible_gpus()[dev.index or 0]}"


def measurement_lock_name(target: Any) -> str | None:
    """The device a latency target measures on: 'gpu-<id>' (this process's cuda:0), 'cpu', or None (remote)."""
    runtime = getattr(target, "runtime", "")
    options = dict(getattr(target, "options", {}) or {})
    if runtime == "remote":
        return None
    on_gpu = runtime == "tensorrt" or options.get("provider") == "CUDAExecutionProvider" or \
        str(options.get("device", "")).startswith("cuda")
    if not on_gpu:
        return "cpu"
    gpus = visible_gpus()
    return f"gpu-{gpus[0]}" if gpus else "gpu-0"


def on_device(stages, device: str, train_lock: str | None = None):
    """`stages` whose trials train on `device` holding that device's lock, and whose measurements hold the lock of
    the device they measure on."""
    train_lock = train_lock or training_lock_name(device)
    inner_config, inner_train, inner_measure = stages.train_config, stages.train, stages.measure

    def train_config(values: dict[str, Any]):
        return inner_config({**values, "device": values.get("device", device)})

    def train(*args, **kwargs):
        with DeviceLock(train_lock).training():
            return inner_train(*args, **kwargs)

    def measure(model, resolution, target, cache):
        name = measurement_lock_name(target)
        if name is None:
            return inner_measure(model, resolution, target, cache)
        with DeviceLock(name).measuring():
            return inner_measure(model, resolution, target, cache)

    return dataclasses.replace(stages, train_config=train_config, train=train, measure=measure)
