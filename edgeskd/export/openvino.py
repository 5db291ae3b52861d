"""ONNX -> OpenVINO IR (an .xml graph and a .bin of weights), FP32 or with weights compressed to FP16.

Runs on OpenVINO's CPU device with the inference precision pinned: on CPUs with AMX-BF16 or AVX512-BF16 OpenVINO
otherwise computes in bf16 and logits move by up to ~1e-1, which would be measured as an export error. The FP16 IR
is run at f32 inference precision too, so its parity number isolates the cost of the compressed weights.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from edgeskd._io import atomic_path
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
    ov = _openvino()
    xml_path = Path(xml_path)
    bin_path = xml_path.with_suffix(".bin")
    try:
        model = ov.convert_model(str(onnx_path))
        # save_model writes both files under one stem; write them in a private folder, then rename each into place.
        with tempfile.TemporaryDirectory(prefix=".ov-", dir=xml_path.parent) as tmp:
            staged = Path(tmp) / xml_path.name
            ov.save_model(model, str(staged), compress_to_fp16=fp16)
            for src, dst in ((staged.with_suffix(".bin"), bin_path), (staged, xml_path)):
                with atomic_path(dst) as out:
                    os.replace(src, out)
    except Exception as exc:
        raise ExportError(f"OpenVINO conversion of {onnx_path} to {xml_path} failed: {type(exc).__name__}: {exc}") from exc
    return xml_path, bin_path


def run_openvino(xml_path: str | os.PathLike, batch: np.ndarray, *, threads: int = 1) -> tuple[np.ndarray, str]:
    """Logits of an IR on the CPU device at pinned f32 inference precision, and a description of the runtime."""
    ov = _openvino()
    try:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(xml_path)), "CPU",
                                      {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION,
                                       "INFERENCE_NUM_THREADS": threads})
        used = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        if "float32" not in used and used != INFERENCE_PRECISION:
            raise ExportError(f"OpenVINO compiled {xml_path} at inference precision {used}; expected f32")
        logits = compiled(batch)[compiled.output(0)]
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"OpenVINO cannot run {xml_path}: {type(exc).__name__}: {exc}") from exc
    return np.asarray(logits), f"openvino {ov.get_version().split('-')[0]} CPU inference_precision=f32"
