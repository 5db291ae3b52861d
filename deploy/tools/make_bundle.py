"""Write a small edgeskd bundle (ONNX + OpenVINO IR + manifest.json) for testing and benchmarking the C runtime.

Uses `edgeskd.export.export_bundle` when the export stage provides it; until then it builds the bundle by hand
following the manifest contract (schema_version 1, format "edgeskd.bundle"), from a seeded, randomly initialised
EfficientNet-Lite0 student. The student's weights are random: the bundle exercises the pixel pipeline and the
runtimes, not accuracy.

    python deploy/tools/make_bundle.py OUT_DIR [--size 64] [--classes 2] [--channels 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

LABELS = {2: ["NORMAL", "PNEUMONIA"], 4: ["glioma", "meningioma", "notumor", "pituitary"]}


def build_model(size: int, num_classes: int, channels: int, seed: int = 0) -> Any:
    import torch

    from edgeskd.models import StudentSpec, build_student

    torch.manual_seed(seed)
    spec = StudentSpec("tf_efficientnet_lite0", 0.5, 0.5, size, num_classes=num_classes, in_chans=channels)
    return build_student(spec).eval(), spec


def make_bundle(out_dir: str | os.PathLike, *, size: int = 64, num_classes: int = 2, channels: int = 3,
                seed: int = 0) -> tuple[Path, Any]:
    """Write the bundle into `out_dir`; return (bundle path, the eval-mode torch model it was exported from)."""
    from edgeskd.data.preprocess import PreprocessSpec

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, spec = build_model(size, num_classes, channels, seed)
    labels = LABELS.get(num_classes, [f"class{i}" for i in range(num_classes)])
    pre = PreprocessSpec.for_model(model, size=size, channels=channels)
    import edgeskd.export as export

    if hasattr(export, "export_bundle"):  # the export stage's own writer, once it exists
        _call_export_bundle(export.export_bundle, model, spec, pre, labels, out)
    else:
        _write_bundle_by_hand(model, spec, pre, labels, out)
    return out, model


def _call_export_bundle(export_bundle: Any, model: Any, spec: Any, pre: Any, labels: list[str], out: Path) -> None:
    import inspect

    params = inspect.signature(export_bundle).parameters
    kwargs: dict[str, Any] = {}
    for name, value in (("spec", spec), ("preprocess", pre), ("labels", labels), ("resolution", spec.resolution),
                        ("in_chans", spec.in_chans)):
        if name in params:
            kwargs[name] = value
    export_bundle(model, out, **kwargs)


def _write_bundle_by_hand(model: Any, spec: Any, pre: Any, labels: list[str], out: Path) -> None:
    import openvino as ov

    from edgeskd._io import atomic_write_json, sha256_file
    from edgeskd.export.onnx import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx

    size, channels = spec.resolution, spec.in_chans
    onnx_path = export_onnx(model, out / "model.onnx", resolution=size, in_chans=channels, dynamic_batch=False)
    ir = ov.convert_model(str(onnx_path))
    # save_model insists on a ".xml" name: write into a private temporary folder, then rename both files in
    tmp_dir = Path(tempfile.mkdtemp(prefix=".ir.", dir=out))
    try:
        ov.save_model(ir, str(tmp_dir / "model.xml"), compress_to_fp16=False)
        os.replace(tmp_dir / "model.bin", out / "model.bin")
        os.replace(tmp_dir / "model.xml", out / "model.xml")
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    files = {"onnx": "model.onnx", "openvino_xml": "model.xml", "openvino_bin": "model.bin", "tensorrt": None}
    manifest = {
        "schema_version": 1,
        "format": "edgeskd.bundle",
        "model": {
            "files": files,
            "input": {"name": INPUT_NAME, "shape": [1, channels, size, size], "dtype": "float32", "layout": "NCHW",
                      "value_range": "normalised: (pixel/255 - mean) / std"},
            "output": {"name": OUTPUT_NAME, "shape": [1, len(labels)], "dtype": "float32",
                       "meaning": "logits; probabilities = softmax"},
            "opset": OPSET,
            "student": spec.to_dict(),
        },
        "preprocess": pre.to_dict(),
        "labels": labels,
        "sha256": {name: sha256_file(out / name) for name in files.values() if name},
    }
    atomic_write_json(out / "manifest.json", manifest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path, _ = make_bundle(args.out_dir, size=args.size, num_classes=args.classes, channels=args.channels,
                          seed=args.seed)
    print(path)


if __name__ == "__main__":
    main()
