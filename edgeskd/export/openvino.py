"""ONNX -> OpenVINO IR (an .xml graph and a .bin of weights), FP32 or with weights compressed to FP16.

Runs on OpenVINO's CPU device with the inference precision pinned: on CPUs with AMX-BF16 or AVX512-BF16 OpenVINO
otherwise computes in bf16 and logits move by up to ~1e-1, which would be measured as an export error. The FP16 IR
is run at f32 inference precision too, so its parity number isolates the cost of the compressed weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeskd.errors import ExportError, MissingDependency

INFERENCE_PRECISION = "f32"


def _openvino():
    try:
        import openvino as ov
    except ImportError as exc:
        raise MissingDependency(f"OpenVINO is not installed ({exc}); pip install openvino") from exc
    return ov


def export_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike, *, fp16: bool) -> tuple[Path, Path]:
    """Convert `onnx_path` to IR at `xml_path` (+ the .bin beside it), each file written atomically."""
    from edgeskd.runtimes.openvino import save_ir

    ov = _openvino()
    xml_path = Path(xml_path)
    try:
        model = ov.convert_model(str(onnx_path))
        return save_ir(model, xml_path, compress_to_fp16=fp16)
    except Exception as exc:
        raise ExportError(f"OpenVINO conversion of {onnx_path} to {xml_path} failed: {type(exc).__name__}: {exc}") from exc


def run_openvino(xml_path: str | os.PathLike, batch: np.ndarray, *, threads: int = 1) -> tuple[np.ndarray, str]:
    """Logits of an IR on the CPU device at pinned f32 inference precision (an NNCF INT8 IR: its FakeQuantize
    layers), and a description of the runtime; through the OpenVINO runtime adapter."""
    from edgeskd.runtimes import get_adapter, predict

    adapter = get_adapter("openvino")
    try:
        precision = adapter.precision_of(xml_path)  # type: ignore[attr-defined]
        runner = adapter.open(xml_path, precision=precision, threads=threads, batch=max(1, len(batch)))
        logits = predict(runner, batch)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"OpenVINO cannot run {xml_path}: {type(exc).__name__}: {exc}") from exc
    version = str(runner.reported["version"]).split("-")[0]
    return logits, f"openvino {version} CPU inference_precision={INFERENCE_PRECISION}" + (
        " (int8 FakeQuantize)" if precision == "int8" else "")
