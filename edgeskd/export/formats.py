"""The table of export formats. One row per format drives export (what to build, from what, into which files),
the parity gate (how to run it, at which tolerance), the bundle manifest (which keys name its files), benchmarking
(which latency target runs it) and platform gating (is it usable on this machine, and is its absence an error or a
skip).

Every format is derived from the ONNX file, which is always exported first (and is what the C runtime's portable
backend reads).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeskd.errors import ExportError
from edgeskd.export.parity import TOLERANCES, Tolerance

Runner = Callable[[Path, np.ndarray], tuple[np.ndarray, str]]


@dataclass(frozen=True)
class Artifact:
    """One file set a format produces at one precision."""

    name: str                       # parity/artifact name, e.g. "openvino_fp16"
    precision: str                  # key of parity.TOLERANCES
    files: tuple[str, ...]          # bundle file names; files[0] is the one a runtime opens
    manifest_keys: tuple[str, ...]  # keys under manifest["model"]["files"], parallel to `files`
    build: Callable[[Path, Path], object] | None  # (onnx path, files[0] path); None: the ONNX export itself

    @property
    def tolerance(self) -> Tolerance:
        return TOLERANCES[self.precision]


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    target: str                      # the latency target that runs it (edgeskd bench --target)
    artifacts: tuple[Artifact, ...]
    run: Runner
    available: Callable[[], tuple[bool, str]]
    optional: bool                   # absent runtime: skip with the reason (True) or fail (False)

    def artifact(self, precision: str) -> Artifact:
        for artifact in self.artifacts:
            if artifact.precision == precision:
                return artifact
        raise ExportError(f"format {self.name!r} has no {precision} artifact; "
                          f"choose from {[a.precision for a in self.artifacts]}")


def _importable(module: str, hint: str) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        if importlib.util.find_spec(module) is None:
            return False, f"{module} is not installed ({hint})"
        return True, "ok"

    return check


def _run_onnx(path: Path, batch: np.ndarray) -> tuple[np.ndarray, str]:
    from edgeskd.export.onnx import run_onnx

    return run_onnx(path, batch)


def _run_openvino(path: Path, batch: np.ndarray) -> tuple[np.ndarray, str]:
    from edgeskd.export.openvino import run_openvino

    return run_openvino(path, batch)


def _run_tensorrt(path: Path, batch: np.ndarray) -> tuple[np.ndarray, str]:
    from edgeskd.export.tensorrt import run_engine

    return run_engine(path, batch)


def _openvino_ir(fp16: bool) -> Callable[[Path, Path], object]:
    def build(onnx_path: Path, xml_path: Path) -> object:
        from edgeskd.export.openvino import export_openvino

        return export_openvino(onnx_path, xml_path, fp16=fp16)

    return build


def _tensorrt_engine(fp16: bool) -> Callable[[Path, Path], object]:
    def build(onnx_path: Path, engine_path: Path) -> object:
        from edgeskd.export.tensorrt import build_engine

        return build_engine(onnx_path, engine_path, fp16=fp16)

    return build


def _tensorrt_available() -> tuple[bool, str]:
    from edgeskd.export.tensorrt import available

    return available()


FORMATS: dict[str, Format] = {
    "onnx": Format(
        "onnx", "ONNX (opset 17, dynamic batch, weights in one file), run by ONNX Runtime", "ort-cpu",
        (Artifact("onnx", "fp32", ("model.onnx",), ("onnx",), None),),
        _run_onnx, _importable("onnxruntime", "pip install onnxruntime"), optional=False),
    "openvino": Format(
        "openvino", "OpenVINO IR converted from the ONNX file, FP32 and FP16-compressed weights", "openvino-cpu",
        (Artifact("openvino", "fp32", ("model.xml", "model.bin"), ("openvino_xml", "openvino_bin"), _openvino_ir(False)),
         Artifact("openvino_fp16", "fp16", ("model_fp16.xml", "model_fp16.bin"),
                  ("openvino_fp16_xml", "openvino_fp16_bin"), _openvino_ir(True))),
        _run_openvino, _importable("openvino", "pip install openvino"), optional=False),
    "tensorrt": Format(
        "tensorrt", "TensorRT engine built from the ONNX file on this machine's GPU (FP16 or FP32)", "tensorrt",
        (Artifact("tensorrt", "fp16", ("model.engine",), ("tensorrt",), _tensorrt_engine(True)),
         Artifact("tensorrt", "fp32", ("model.engine",), ("tensorrt",), _tensorrt_engine(False))),
        _run_tensorrt, _tensorrt_available, optional=True),
}

# The optional INT8 model (ONNX Runtime static quantisation); built by int8.py, not from the format list.
INT8_ARTIFACT = Artifact("onnx_int8", "int8", ("model_int8.onnx",), ("onnx_int8",), None)

# Which precisions of a format a bundle gets unless told otherwise.
DEFAULT_PRECISIONS: dict[str, tuple[str, ...]] = {"onnx": ("fp32",), "openvino": ("fp32", "fp16"),
                                                  "tensorrt": ("fp16",)}


def parse_formats(formats: str | list[str] | tuple[str, ...]) -> list[str]:
    """'onnx,openvino' or a sequence -> validated names in table order; ONNX is always included (all derive from it)."""
    names = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise ExportError(f"unknown export format(s) {unknown}; choose from {', '.join(FORMATS)}")
    return [name for name in FORMATS if name in names or name == "onnx"]


def runner_for(artifact_name: str) -> Runner:
    """The runner of a named artifact (as recorded in a manifest's parity results)."""
    if artifact_name == INT8_ARTIFACT.name:
        return _run_onnx
    for fmt in FORMATS.values():
        if any(a.name == artifact_name for a in fmt.artifacts):
            return fmt.run
    raise ExportError(f"unknown artifact {artifact_name!r} in manifest; known: "
                      f"{sorted({a.name for f in FORMATS.values() for a in f.artifacts} | {INT8_ARTIFACT.name})}")


def format_of(artifact_name: str) -> Format | None:
    for fmt in FORMATS.values():
        if any(a.name == artifact_name for a in fmt.artifacts):
            return fmt
    return FORMATS["onnx"] if artifact_name == INT8_ARTIFACT.name else None
