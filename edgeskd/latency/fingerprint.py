"""What a latency number depends on besides the model: the fingerprint attached to every measurement.

Two measurements are comparable only when their fingerprints are equal. The fingerprint is computable before
measuring (from the target and this machine), so the latency cache can be consulted without running anything; the
worker then asserts that the runtime really used what the fingerprint claims (provider, precision).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from typing import Any

from edgeskd.latency.targets import Target

FINGERPRINT_KEYS = ("runtime", "runtime_version", "provider", "threads", "precision", "cpu_model", "cpu_flags",
                    "gpu", "gpu_driver", "jetson_power_mode", "edgeskd_version")

# runtime -> distributions that provide it (the first one installed wins); module to import when none is.
_DISTRIBUTIONS = {
    "onnxruntime": (("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"), "onnxruntime"),
    "openvino": (("openvino",), "openvino"),
    "tensorrt": (("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-cu13"), "tensorrt"),
    "torch": (("torch",), "torch"),
}


def runtime_version(runtime: str) -> str | None:
    """The runtime's version from package metadata (cheap); from the module itself where it was installed without
    metadata (TensorRT from JetPack's apt packages); None when not installed."""
    dists, module = _DISTRIBUTIONS[runtime]
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        return str(getattr(__import__(module), "__version__", None) or "unknown")
    except ImportError:
        return None


def provider_of(target: Target) -> str:
    """The execution provider / device the target asks for (the worker asserts the runtime used it)."""
    if target.runtime == "onnxruntime":
        return str(target.options["provider"])
    if target.runtime == "openvino":
        return str(target.options.get("device", "CPU"))
    if target.runtime == "tensorrt":
        return "TensorRT"
    if target.runtime == "torch":
        return str(target.options.get("device", "cuda"))
    raise ValueError(f"no local provider for runtime {target.runtime}")


def machine_fingerprint(target: Target) -> dict[str, Any]:
    """The fingerprint a measurement of `target` made on THIS machine carries (stable keys, FINGERPRINT_KEYS)."""
    from edgeskd import __version__
    from edgeskd.doctor import cpu_info, gpu_info, jetson_power_mode

    cpu = cpu_info()
    gpus = gpu_info()
    return {
        "runtime": target.runtime,
        "runtime_version": runtime_version(target.runtime),
        "provider": provider_of(target),
        "threads": target.threads,
        "precision": target.precision,
        "cpu_model": cpu.get("model"),
        "cpu_flags": list(cpu.get("flags", [])),
        "gpu": gpus[0]["name"] if gpus else None,
        "gpu_driver": gpus[0]["driver"] if gpus else None,
        "jetson_power_mode": jetson_power_mode(),
        "edgeskd_version": __version__,
    }


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    stable = {key: fingerprint.get(key) for key in FINGERPRINT_KEYS}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ, as (a, b) pairs; empty when the fingerprints are equal."""
    return {key: (a.get(key), b.get(key)) for key in FINGERPRINT_KEYS if a.get(key) != b.get(key)}
