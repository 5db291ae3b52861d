"""The bundle manifest: schema, validation, reading, and the parts derived from a checkpoint's preprocessing.

The contract the C runtime reads (schema_version, model.files/input/output, preprocess, labels, files) is fixed by
edgeskd/schemas/manifest.schema.json; other fields may be added freely.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from edgeskd.data.preprocess import PreprocessSpec
from edgeskd.errors import ExportError

SCHEMA_VERSION = 1
BUNDLE_FORMAT = "edgeskd.bundle"
MANIFEST_NAME = "manifest.json"


@lru_cache(maxsize=1)
def manifest_schema() -> dict[str, Any]:
    text = resources.files("edgeskd").joinpath("schemas/manifest.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate_manifest(manifest: dict[str, Any], where: str = MANIFEST_NAME) -> None:
    """Raise ExportError naming every schema violation (field path and problem)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(manifest_schema())
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        problems = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors[:10])
        more = f" (+{len(errors) - 10} more)" if len(errors) > 10 else ""
        raise ExportError(f"{where} does not match the manifest schema v{SCHEMA_VERSION}: {problems}{more}")


def load_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read and schema-check a bundle's manifest; `path` is the bundle folder or its manifest.json."""
    path = Path(path)
    file = path / MANIFEST_NAME if path.is_dir() else path
    if not file.is_file():
        raise ExportError(f"{file}: no bundle manifest (expected a bundle folder with {MANIFEST_NAME})")
    from edgeskd._json import read_json

    # bounded like the C runtime's reader: 16 MiB and 64 levels, so both refuse the same manifests
    manifest = read_json(file, ExportError, "bundle manifest")
    if not isinstance(manifest, dict):
        raise ExportError(f"{file}: expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ExportError(f"{file}: schema_version {manifest.get('schema_version')!r}; this edgeskd reads "
                          f"version {SCHEMA_VERSION}")
    validate_manifest(manifest, str(file))
    return manifest


def channel_meaning(spec: PreprocessSpec) -> str:
    if spec.channels == 3:
        return "RGB (grayscale replicated)"
    return "grayscale (RGB converted with BT.601 luma weights 0.299, 0.587, 0.114)"


def value_range(spec: PreprocessSpec) -> tuple[list[float], list[list[float]]]:
    """Range of the model input after normalisation: overall [lo, hi] and per channel, for pixels in [0, 1]."""
    per_channel = [[(0.0 - m) / s, (1.0 - m) / s] for m, s in zip(spec.mean, spec.std)]
    overall = [min(lo for lo, _ in per_channel), max(hi for _, hi in per_channel)]
    return overall, per_channel


def model_io(spec: PreprocessSpec, num_classes: int, input_name: str, output_name: str) -> dict[str, Any]:
    overall, per_channel = value_range(spec)
    return {
        "input": {"name": input_name, "shape": [1, spec.channels, spec.size, spec.size], "dtype": "float32",
                  "layout": "NCHW", "value_range": overall, "value_range_per_channel": per_channel,
                  "channels": channel_meaning(spec), "dynamic_batch": True},
        "output": {"name": output_name, "shape": [1, num_classes],
                   "meaning": "unnormalised class scores; softmax gives probabilities"},
    }
