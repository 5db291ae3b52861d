"""What this machine offers edgeskd: package versions, runtimes and their execution providers, CPU features, GPUs.

Used by `edgeskd doctor` and by the latency fingerprint (edgeskd.latency), so both read the machine the same way.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import subprocess
from functools import lru_cache
from typing import Any

PACKAGES = ("edgeskd", "torch", "torchvision", "timm", "numpy", "onnx", "onnxscript", "onnxruntime", "openvino",
            "optuna", "safetensors", "pydicom", "tensorrt", "pycuda", "psycopg2-binary")
_INTERESTING_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16",
                      "amx_int8", "amx_tile", "f16c", "neon", "asimd", "sve")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """CPU model, logical cores and the SIMD/matrix flags that change which kernels runtimes pick."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    import os

    return {
        "model": model,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "flags": sorted(f for f in _INTERESTING_FLAGS if f in flags),
    }


@lru_cache(maxsize=1)
def gpu_info() -> list[dict[str, str]]:
    """NVIDIA GPUs from nvidia-smi (name, driver, memory, compute capability); [] when none."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            gpus.append(dict(zip(("name", "driver", "memory", "compute_capability"), parts)))
    return gpus


@lru_cache(maxsize=1)
def jetson_power_mode() -> str | None:
    """The nvpmodel power mode on a Jetson (it changes latency several-fold); None elsewhere."""
    if not shutil.which("nvpmodel"):
        return None
    try:
        out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def runtimes() -> dict[str, Any]:
    """Inference runtimes importable here and what each can run on."""
    found: dict[str, Any] = {}
    try:
        import onnxruntime as ort

        found["onnxruntime"] = {"version": ort.__version__, "providers": ort.get_available_providers()}
    except ImportError as exc:
        found["onnxruntime"] = {"error": str(exc)}
    try:
        import openvino as ov

        found["openvino"] = {"version": ov.get_version(), "devices": ov.Core().available_devices}
    except ImportError as exc:
        found["openvino"] = {"error": str(exc)}
    try:
        import tensorrt as trt  # type: ignore[import-not-found]

        found["tensorrt"] = {"version": trt.__version__}
    except ImportError:
        found["tensorrt"] = {"error": "not installed (optional extra: pip install 'edgeskd[tensorrt]' on a GPU machine)"}
    try:
        import torch

        found["torch"] = {"version": torch.__version__, "cuda_available": torch.cuda.is_available(),
                          "cuda": torch.version.cuda}
    except ImportError as exc:
        found["torch"] = {"error": str(exc)}
    return found


def report() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "cpu": cpu_info(),
        "gpus": gpu_info(),
        "jetson_power_mode": jetson_power_mode(),
        "runtimes": runtimes(),
    }
