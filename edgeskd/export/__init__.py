"""Export to deployable artifacts (ONNX, OpenVINO IR, TensorRT) with parity gates, and bundles.

    export_bundle(checkpoint, out_dir, formats=("onnx", "openvino"), ...) -> BundleReport
    verify_bundle(path) -> VerifyReport        (raises ExportError with the numbers on any failure)
    load_manifest(path) -> dict
    FORMATS                                    the table of formats that drives export, parity, bench and gating
"""

from edgeskd.export.bundle import BundleReport, export_bundle
from edgeskd.export.formats import FORMATS, INT8_ARTIFACT, Artifact, Format, parse_formats
from edgeskd.export.int8 import Int8Decision
from edgeskd.export.manifest import SCHEMA_VERSION, load_manifest, manifest_schema, validate_manifest
from edgeskd.export.onnx import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx
from edgeskd.export.parity import TOLERANCES, ParityResult, Tolerance
from edgeskd.export.parity_data import ParityImages, load_parity_images
from edgeskd.export.verify import VerifyReport, verify_bundle

__all__ = [
    "Artifact", "BundleReport", "FORMATS", "Format", "INPUT_NAME", "INT8_ARTIFACT", "Int8Decision", "OPSET",
    "OUTPUT_NAME", "ParityImages", "ParityResult", "SCHEMA_VERSION", "TOLERANCES", "Tolerance", "VerifyReport",
    "export_bundle", "export_onnx", "load_manifest", "load_parity_images", "manifest_schema", "parse_formats",
    "validate_manifest", "verify_bundle",
]
