"""measure(): time an ONNX file on a target in a fresh worker process; measure_model(): the same for a PyTorch
module (exported first), through the latency cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeskd._io import sha256_file
from edgeskd.errors import LatencyError, MissingDependency
from edgeskd.latency.cache import LatencyCache, cache_key
from edgeskd.latency.fingerprint import machine_fingerprint
from edgeskd.latency.measurement import Measurement, check_settle
from edgeskd.latency.targets import Target

if TYPE_CHECKING:  # torch loads only where preprocessing runs (end-to-end timing), not in every worker
    from edgeskd.data.preprocess import PreprocessSpec

# Every thread-pool knob a runtime or its BLAS reads at load time; set before the worker process starts.
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "TBB_NUM_THREADS")
_ERRORS = {"MissingDependency": MissingDependency}


class MeasurementTimeout(LatencyError):
    """The worker ran past its time limit and was killed."""


def settings_record(*, runs: int, seconds: float, warmup_s: float, batch: int, end_to_end: bool,
                    preprocess: PreprocessSpec | None, raw_size: int | None = None,
                    settle: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validated measurement settings (also what the cache key and the remote agent see). `settle` (see
    edgeskd.latency.measurement.check_settle) lets a measurement stop after a pilot window when the verdict against a
    budget is already clear; it is in the record (and so in the cache key) only when given."""
    if int(runs) < 1:
        raise LatencyError(f"runs must be >= 1; got {runs}")
    if float(seconds) < 0 or float(warmup_s) < 0:
        raise LatencyError(f"seconds and warmup_s must be >= 0; got seconds={seconds}, warmup_s={warmup_s}")
    if int(batch) < 1:
        raise LatencyError(f"batch must be >= 1; got {batch}")
    if end_to_end and preprocess is None:
        raise LatencyError("end-to-end latency needs the preprocessing (a PreprocessSpec or a bundle's manifest)")
    record = {"runs": int(runs), "seconds": float(seconds), "warmup_s": float(warmup_s), "batch": int(batch),
              "preprocess": preprocess.to_dict() if (end_to_end and preprocess is not None) else None,
              "raw_size": int(raw_size) if (end_to_end and raw_size) else None}
    if settle is not None:
        record["settle"] = check_settle(settle, seconds=float(seconds))
    return record


def target_fingerprint(target: Target, *, token: str | None = None) -> dict[str, Any]:
    """The fingerprint a measurement on `target` will carry, known before measuring (for cache look-ups)."""
    if target.runtime == "remote":
        from edgeskd.latency.remote import remote_fingerprint

        return remote_fingerprint(target, token=token)
    return machine_fingerprint(target)


def measure(onnx_path: str | os.PathLike, target: Target, *, runs: int = 50, seconds: float = 1.0,
            warmup_s: float = 0.2, batch: int = 1, end_to_end: bool = False,
            preprocess: PreprocessSpec | None = None, timeout_s: float = 120, raw_size: int | None = None,
            artifact_sha256: str | None = None, settle: dict[str, Any] | None = None) -> Measurement:
    """Measure `onnx_path` on `target`: warm-up by time, then at least max(runs, seconds); in a fresh process with
    the target's thread count fixed before the runtime loads. `raw_size` is the side of the synthetic 8-bit image
    used for end-to-end timing (default: twice the model's input size, so the resize is part of the work).
    `settle`: stop after a pilot window when the statistic is clearly over or under a budget (check_settle)."""
    path = Path(onnx_path)
    if not path.is_file():
        raise LatencyError(f"model file {path} does not exist")
    settings = settings_record(runs=runs, seconds=seconds, warmup_s=warmup_s, batch=batch, end_to_end=end_to_end,
                               preprocess=preprocess, raw_size=raw_size, settle=settle)
    if target.runtime == "remote":
        from edgeskd.latency.remote import measure_remote

        m = measure_remote(path, target, settings, timeout_s=timeout_s)
        if artifact_sha256:
            m.artifact_sha256 = artifact_sha256
        return m
    request = {"path": str(path.resolve()), "target": target.to_dict(), "artifact_sha256": artifact_sha256,
               **settings}
    return run_worker(request, threads=target.threads, timeout_s=timeout_s, label=f"{path.name} on {target.name}")


def run_worker(request: dict[str, Any], *, threads: int, timeout_s: float, label: str) -> Measurement:
    env = dict(os.environ)
    env.update({name: str(threads) for name in _THREAD_ENV})
    with tempfile.TemporaryDirectory(prefix="edgeskd-measure-") as tmp:
        request_path, result_path = Path(tmp, "request.json"), Path(tmp, "result.json")
        request_path.write_text(json.dumps(request))
        try:
            proc = subprocess.run([sys.executable, "-m", "edgeskd.latency.worker", str(request_path), str(result_path)],
                                  env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise MeasurementTimeout(f"measuring {label} took longer than {timeout_s:g} s and was stopped") from None
        if not result_path.is_file():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            raise LatencyError(f"measurement worker for {label} died (exit {proc.returncode}): {' | '.join(tail)}")
        result = json.loads(result_path.read_text())
    if "error" in result:
        raise _ERRORS.get(result.get("type", ""), LatencyError)(f"{label}: {result['error']}")
    return Measurement.from_dict(result["measurement"])


def _in_chans(model: Any) -> int:
    import torch.nn as nn

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    return 3


def measure_model(model: Any, resolution: int, target: Target, *, cache: LatencyCache | None = None,
                  in_chans: int | None = None, calibration: Any = None, **kw: Any) -> Measurement:
    """Export `model` to a temporary ONNX file, convert it to the target's artifact (runtime and precision, through
    the runtime adapter; int8 quantised on `calibration`, training images) and measure that artifact; with `cache`, a
    candidate whose architecture (graph structure, weights ignored) was measured on the same fingerprint (runtime
    and precision included) with the same settings is not measured again."""
    from edgeskd.export.onnx import export_onnx
    from edgeskd.latency.hashing import architecture_hash

    chans = in_chans or _in_chans(model)
    with tempfile.TemporaryDirectory(prefix="edgeskd-candidate-") as tmp:
        onnx_path = export_onnx(model, Path(tmp, "model.onnx"), resolution=resolution, in_chans=chans)
        arch = architecture_hash(onnx_path)
        key = None
        if cache is not None:
            settings = settings_record(
                runs=kw.get("runs", 50), seconds=kw.get("seconds", 1.0), warmup_s=kw.get("warmup_s", 0.2),
                batch=kw.get("batch", 1), end_to_end=kw.get("end_to_end", False), preprocess=kw.get("preprocess"),
                raw_size=kw.get("raw_size"), settle=kw.get("settle"))
            key = cache_key(arch, target_fingerprint(target), settings)
            hit = cache.get(key)
            if hit is not None:
                hit.info["cache"] = "hit"
                return hit
        path = onnx_path
        if target.runtime == "torch":
            path = _torchscript(model, Path(tmp, "model.pt"), (chans, resolution, resolution))
        else:
            path = build_artifact(onnx_path, Path(tmp), target, calibration)
        m = measure(path, target, artifact_sha256=arch, **kw)
        m.info["cache"] = "miss" if cache is not None else "off"
        if cache is not None and key is not None:
            cache.put(key, m)
        return m


def build_artifact(onnx_path: Path, folder: Path, target: Target, calibration: Any = None) -> Path:
    """The file the target's runtime runs at the target's precision, built from the ONNX file by its adapter
    (fp32 ONNX Runtime: the ONNX file itself; remote targets: the ONNX file, converted on the device)."""
    if target.runtime == "remote" or (target.runtime == "onnxruntime" and target.precision == "fp32"):
        return Path(onnx_path)
    if target.runtime == "tensorrt" and target.precision != "int8":
        return Path(onnx_path)  # the worker builds the engine for the exact shape into its engine cache
    from edgeskd.runtimes import get_adapter

    adapter = get_adapter(target.runtime)
    return adapter.build(Path(onnx_path), folder / adapter.artifact_name(target.precision), target.precision,
                         calibration=calibration)


def _torchscript(model: Any, path: Path, chw: tuple[int, int, int]) -> Path:
    """Our own temporary TorchScript file for the torch targets (never a user's file)."""
    import warnings

    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript still works in torch 2.13; say so, once
        traced = torch.jit.trace(model.eval(), torch.zeros(1, *chw), check_trace=False)
        torch.jit.save(traced, str(path))
    Path(str(path) + ".json").write_text(json.dumps({"input_shape": list(chw)}))
    return path


def artifact_hash(path: str | os.PathLike) -> str:
    return sha256_file(path)
