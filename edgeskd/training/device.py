"""Where and how a run computes: the device, mixed precision, the memory format, data placement, determinism.

- device: "auto" is CUDA when torch sees one, else the CPU; "cuda"/"cuda:N" without CUDA is an error naming what
  torch sees (never a silent CPU fallback).
- precision: "auto" is bf16 autocast on a CUDA device that supports it, else fp16 autocast with a gradient scaler;
  fp32 on the CPU (bf16 autocast measured slower than fp32 for the small students there, see
  benchmarks/results/training_speed.md). "fp32", "bf16", "fp16" force one.
- channels_last: "auto" decides by a short timed probe of forward+backward in both memory formats (cached per
  architecture family, resolution, batch, device, thread count and precision in $EDGESKD_CACHE_DIR or
  ~/.cache/edgeskd/memory_format.json, so a search probes once per resolution, not per candidate); "on"
  and "off" force it. With --deterministic, "auto" does not time anything and keeps the default format, so the run
  does not depend on a measurement.
- data: the preprocessed training set is kept in memory once (and reused across the trials of a search); on CUDA it
  is copied to the device when it fits in a quarter of the free memory, else pinned and copied per batch.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from edgeskd.errors import TrainingError
from edgeskd.training.config import PRECISIONS, SWITCHES  # noqa: F401 (re-exported)
PROBE_FILE = "memory_format.json"
# channels_last must be this much faster to be used (the probe's noise on a loaded machine is a few percent)
PROBE_MARGIN = 0.95


def resolve_device(name: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch.device that exists here, or a TrainingError saying why not."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        index = 0
        if name != "cuda":
            suffix = name.split(":", 1)[1]
            if not suffix.isdigit():
                raise TrainingError(f"--device {name}: expected cuda:N with N a GPU number, e.g. cuda:0")
            index = int(suffix)
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {name}: torch {torch.__version__} sees no CUDA device ({what_torch_sees()});"
                                f" use --device cpu or auto")
        count = torch.cuda.device_count()
        if index >= count:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            hint = f"; CUDA_VISIBLE_DEVICES={visible}" if visible is not None else ""
            raise TrainingError(f"--device {name}: torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1}{hint})")
        return torch.device("cuda", index)
    raise TrainingError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")


def what_torch_sees() -> str:
    """One phrase: why torch has no CUDA here (a CPU-only build, no driver/GPU, hidden by CUDA_VISIBLE_DEVICES)."""
    if torch.version.cuda is None:
        return "this torch is a CPU-only build (torch.version.cuda is None)"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    return f"built for CUDA {torch.version.cuda} but torch.cuda.is_available() is False (no GPU or driver{hidden})"


@dataclass
class Accelerator:
    """The resolved runtime choices of one run (recorded in the run's info and state)."""

    device: torch.device
    amp_dtype: torch.dtype | None      # autocast dtype; None = fp32
    channels_last: bool = False
    deterministic: bool = False

    @classmethod
    def create(cls, device: str, precision: str, deterministic: bool) -> Accelerator:
        dev = resolve_device(device)
        if precision == "auto":
            dtype = None
            if dev.type == "cuda":
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        elif precision == "fp32":
            dtype = None
        elif precision == "bf16":
            dtype = torch.bfloat16
        else:
            if dev.type != "cuda":
                raise TrainingError("precision fp16 needs a CUDA device (it needs a gradient scaler and fp16 kernels);"
                                    " on the CPU use fp32 or bf16")
            dtype = torch.float16
        return cls(dev, dtype, False, deterministic)

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def new_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 needs loss scaling (its range underflows small gradients); bf16 and fp32 do not."""
        return torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None

    def describe(self) -> dict[str, Any]:
        out = {"device": str(self.device), "precision": self.precision, "channels_last": self.channels_last,
               "deterministic": self.deterministic}
        if self.device.type == "cuda":
            out["gpu"] = torch.cuda.get_device_name(self.device)
        return out


@contextlib.contextmanager
def determinism(acc: Accelerator) -> Iterator[None]:
    """--deterministic: torch's deterministic algorithms for the run; otherwise cuDNN may pick the fastest kernels.
    The process-wide switches are restored afterwards."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
              torch.backends.cudnn.deterministic)
    if acc.deterministic:
        # cuBLAS needs a fixed workspace for reproducible GEMMs; it reads this before its first use
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif acc.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before[2]


# -- memory format ---------------------------------------------------------------------------------------------------

def _cache_file() -> Path:
    root = os.environ.get("EDGESKD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "edgeskd")
    return Path(root) / PROBE_FILE


_PROBED: dict[str, dict[str, Any]] = {}


def probe_key(model_key: str, resolution: int, batch: int, acc: Accelerator) -> str:
    where = torch.cuda.get_device_name(acc.device) if acc.device.type == "cuda" else \
        f"cpu-{torch.backends.cpu.get_cpu_capability()}-t{torch.get_num_threads()}"
    return f"{model_key}|{resolution}px|b{batch}|{where}|{acc.precision}|torch{torch.__version__}"


def _read_cache() -> dict[str, Any]:
    import json

    try:
        data = json.loads(_cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def time_step(model: nn.Module, x: torch.Tensor, acc: Accelerator, repeats: int) -> float:
    """Best seconds of one forward+backward of `model` on `x` (after one warm-up step; the minimum is the least
    disturbed by other load on a shared machine)."""
    times = []
    for i in range(repeats + 1):
        if acc.device.type == "cuda":
            torch.cuda.synchronize(acc.device)
        t0 = time.perf_counter()
        with acc.autocast():
            out = model(x)
        out.float().mean().backward()
        if acc.device.type == "cuda":
            torch.cuda.synchronize(acc.device)
        if i:
            times.append(time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
    return min(times)


def decide_channels_last(setting: str, model: nn.Module, model_key: str, resolution: int, in_chans: int, batch: int,
                         acc: Accelerator, repeats: int = 2) -> tuple[bool, dict[str, Any]]:
    """(use channels_last, how it was decided). 'auto' measures once per key and caches the answer."""
    if setting in ("on", "off"):
        return setting == "on", {"decided_by": "config"}
    if acc.deterministic:
        return False, {"decided_by": "--deterministic (no timing-dependent choice)"}
    key = probe_key(model_key, resolution, batch, acc)
    if key not in _PROBED:
        cached = _read_cache().get(key)
        if isinstance(cached, dict) and "channels_last" in cached:
            _PROBED[key] = cached
        else:
            _PROBED[key] = _probe(model, resolution, in_chans, batch, acc, repeats)
            _write_cache(key, _PROBED[key])
    result = _PROBED[key]
    return bool(result["channels_last"]), {"decided_by": "probe", "key": key, **result}


def _probe(model: nn.Module, resolution: int, in_chans: int, batch: int, acc: Accelerator,
           repeats: int) -> dict[str, Any]:
    import copy

    devices = [acc.device.index or 0] if acc.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the run's random streams must not see the probe
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, in_chans, resolution, resolution, generator=gen).to(acc.device)
        probe = copy.deepcopy(model).to(acc.device).train()
        seconds = {}
        # interleave the two formats so a load change on a shared machine hits both alike
        for fmt in ("contiguous", "channels_last", "contiguous", "channels_last"):
            mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
            probe = probe.to(memory_format=mf)
            t = time_step(probe, x.contiguous(memory_format=mf), acc, repeats)
            seconds[fmt] = min(seconds.get(fmt, t), t)
    del probe
    use = seconds["channels_last"] < PROBE_MARGIN * seconds["contiguous"]
    return {"channels_last": use, "seconds_contiguous": round(seconds["contiguous"], 5),
            "seconds_channels_last": round(seconds["channels_last"], 5)}


def _write_cache(key: str, value: dict[str, Any]) -> None:
    from edgeskd._io import atomic_write_json

    try:
        data = _read_cache()
        data[key] = value
        _cache_file().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(_cache_file(), data)
    except OSError:
        pass  # a read-only home only costs a new probe next time; the decision itself is recorded in the run


# -- data placement and errors ---------------------------------------------------------------------------------------

def place(x: torch.Tensor, acc: Accelerator) -> tuple[torch.Tensor, bool]:
    """(tensor, pinned): a whole preprocessed set on the device when it fits in a quarter of the free memory,
    else pinned host memory (copied per batch without blocking). CPU runs get the tensor unchanged."""
    if acc.device.type != "cuda":
        return x, False
    free, _ = torch.cuda.mem_get_info(acc.device)
    if x.element_size() * x.numel() < free // 4:
        return x.to(acc.device), False
    return x.pin_memory(), True


def gather_batch(t: torch.Tensor, idx: torch.Tensor, device: torch.device, pinned: bool) -> torch.Tensor:
    """Rows `idx` of a set, on `device`. From pinned memory the rows are gathered into a pinned buffer so the copy
    to the GPU does not block; a set already on the device is indexed there."""
    if pinned:
        buf = torch.empty((len(idx), *t.shape[1:]), dtype=t.dtype, pin_memory=True)
        torch.index_select(t, 0, idx, out=buf)
        return buf.to(device, non_blocking=True)
    if t.device != idx.device:
        return t[idx.to(t.device)]
    return t[idx] if t.device == device else t[idx].to(device)


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc))


def out_of_memory_error(acc: Accelerator, batch_size: int, where: str, exc: BaseException) -> TrainingError:
    smaller = max(1, batch_size // 2)
    detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return TrainingError(f"out of memory on {acc.device} with batch size {batch_size} at {where}; try "
                         f"--batch-size {smaller} (or a smaller --resolution / student) [{detail}]")
