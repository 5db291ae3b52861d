"""The adapter interface, the registry, the Runner every adapter returns and the one timing loop.

A Runner is what an opened artifact looks like to its users: `run(x)` returns the logits (first output) of one
batch, synchronously (GPU work included), and `provider`/`precision` are what the runtime itself reports using, so
a caller can refuse a runner that silently runs something other than what was asked.
"""

from __future__ import annotations

import importlib.metadata
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeskd.errors import RuntimeAdapterError

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
MAX_SAMPLES = 200_000  # bounds memory when a very fast model meets a long timing window


@dataclass
class Runner:
    run: Callable[[np.ndarray], np.ndarray]
    input_shape: tuple[int, ...]          # including the batch dimension
    input_dtype: Any
    provider: str                         # what the runtime reports it runs on
    precision: str                        # what the runtime reports (fp32/bf16/fp16/int8)
    reported: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        version = self.reported.get("version", "")
        return f"{self.reported.get('runtime', '?')} {version} {self.provider} {self.precision}".replace("  ", " ")


class RuntimeAdapter(ABC):
    """One runtime. Subclasses set the class attributes and implement the four abstract methods."""

    name: str = ""                    # canonical runtime name, as in targets and fingerprints
    short: str = ""                   # short name used in space YAML and `--primary` (ort, openvino, ...)
    distributions: tuple[str, ...] = ()
    module: str = ""
    suffix: str = ".onnx"             # the artifact file a build writes (first file of the artifact)

    def version(self) -> str | None:
        """From package metadata (cheap); from the module where it was installed without metadata; None if absent."""
        for dist in self.distributions:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        try:
            return str(getattr(__import__(self.module), "__version__", None) or "unknown")
        except ImportError:
            return None

    @abstractmethod
    def available(self) -> tuple[bool, str]:
        """(usable here, reason)."""

    def providers(self) -> list[str]:
        """Execution providers / devices the runtime reports on this machine."""
        return []

    @abstractmethod
    def device_precisions(self) -> dict[str, str]:
        """For every precision in PRECISIONS: "" when this device supports it, else the reason it does not, decided
        from what the runtime reports (never from a CPU-name assumption)."""

    @abstractmethod
    def build(self, onnx_path: Path, out_path: Path, precision: str, *,
              calibration: np.ndarray | None = None) -> Path:
        """Build the artifact for `precision` from the ONNX file at `out_path` (written atomically); int8 needs
        `calibration`, float32 (N, C, S, S) images from the training split."""

    @abstractmethod
    def open(self, path: str | os.PathLike, *, precision: str, threads: int, batch: int,
             options: dict[str, Any] | None = None) -> Runner:
        """Load an artifact and return a Runner; raise rather than run anything other than what was asked."""

    def artifact_name(self, precision: str) -> str:
        return f"model_{self.short}_{precision}{self.suffix}"

    def supported(self) -> dict[str, str]:
        """device_precisions(), or every precision with the unavailability reason."""
        ok, reason = self.available()
        if not ok:
            return {p: reason for p in PRECISIONS}
        return self.device_precisions()


_REGISTRY: dict[str, RuntimeAdapter] = {}


def register(adapter: RuntimeAdapter) -> RuntimeAdapter:
    _REGISTRY[adapter.name] = adapter
    return adapter


def get_adapter(name: str) -> RuntimeAdapter:
    """By canonical name (onnxruntime) or short name (ort)."""
    key = str(name).strip().lower()
    for adapter in _REGISTRY.values():
        if key in (adapter.name, adapter.short):
            return adapter
    known = sorted({a.short for a in _REGISTRY.values()} | set(_REGISTRY))
    raise RuntimeAdapterError(f"unknown runtime {name!r}; expected one of {', '.join(known)}")


def list_adapters() -> list[RuntimeAdapter]:
    return list(_REGISTRY.values())


def run_protocol(step: Callable[[], Any], *, runs: int, seconds: float, warmup_s: float) -> list[float]:
    """Warm up for `warmup_s` (at least one call), then time calls (ms) until both `runs` calls and `seconds` passed.
    The one timing loop of the project (latency worker, export's INT8 A/B, benchmarks)."""
    end = time.perf_counter() + warmup_s
    step()
    while time.perf_counter() < end:
        step()
    samples: list[float] = []
    start = time.perf_counter()
    while (len(samples) < runs or time.perf_counter() - start < seconds) and len(samples) < MAX_SAMPLES:
        t0 = time.perf_counter_ns()
        step()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def predict(runner: Runner, images: np.ndarray) -> np.ndarray:
    """Logits for any number of images through a runner opened at a fixed batch (the last chunk zero-padded)."""
    batch = runner.input_shape[0]
    out = []
    for start in range(0, len(images), batch):
        chunk = np.ascontiguousarray(images[start:start + batch], dtype=runner.input_dtype)
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), dtype=chunk.dtype)])
        out.append(np.array(runner.run(chunk), dtype=np.float32, copy=True)[:n])
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def onnx_input_shape(path: str | os.PathLike, batch: int) -> tuple[str, tuple[int, ...]]:
    """(input name, static NCHW shape) of an ONNX model's single input, the batch axis set to `batch`."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise RuntimeAdapterError(f"{path}: expected a model with one input; found {[i.name for i in inputs]}")
    shape = []
    for axis, dim in enumerate(inputs[0].type.tensor_type.shape.dim):
        if axis == 0:
            shape.append(batch)
        elif dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(int(dim.dim_value))
        else:
            raise RuntimeAdapterError(f"{path}: input '{inputs[0].name}' has a symbolic size {dim.dim_param!r} at axis "
                                f"{axis}; export it with a fixed resolution")
    if len(shape) != 4:
        raise RuntimeAdapterError(f"{path}: input '{inputs[0].name}' must be NCHW (4 dimensions); got {len(shape)}")
    return inputs[0].name, tuple(shape)


def check_precision(adapter: RuntimeAdapter, precision: str) -> None:
    if precision not in PRECISIONS:
        raise RuntimeAdapterError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")


def need_calibration(adapter: RuntimeAdapter, calibration: np.ndarray | None) -> np.ndarray:
    if calibration is None or len(calibration) == 0:
        raise RuntimeAdapterError(f"{adapter.name} int8 needs calibration images from the training split; none given")
    return np.ascontiguousarray(calibration, dtype=np.float32)
