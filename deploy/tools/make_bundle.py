"""Write a small edgeskd bundle (ONNX + OpenVINO IR + manifest.json) for testing and benchmarking the C runtime.

The bundle comes from the export stage (`edgeskd.export.export_bundle`, parity-gated against PyTorch) for a seeded,
randomly initialised EfficientNet-Lite0 student: it exercises the pixel pipeline and the runtimes, not accuracy.

    python deploy/tools/make_bundle.py OUT_DIR [--size 64] [--classes 2] [--channels 3]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

LABELS = {2: ["NORMAL", "PNEUMONIA"], 4: ["glioma", "meningioma", "notumor", "pituitary"]}


def build_model(size: int, num_classes: int, channels: int, seed: int = 0) -> tuple[Any, Any]:
    """The eval-mode student and its StudentSpec."""
    import torch

    from edgeskd.models import StudentSpec, build_student

    torch.manual_seed(seed)
    spec = StudentSpec("tf_efficientnet_lite0", 0.5, 0.5, size, num_classes=num_classes, in_chans=channels)
    return build_student(spec).eval(), spec


def make_bundle(out_dir: str | os.PathLike, *, size: int = 64, num_classes: int = 2, channels: int = 3,
                seed: int = 0) -> tuple[Path, Any]:
    """Write the bundle into `out_dir` (must not exist); return (bundle path, the eval-mode torch model)."""
    from edgeskd.data.preprocess import PreprocessSpec
    from edgeskd.export import export_bundle
    from edgeskd.models import Checkpoint

    model, spec = build_model(size, num_classes, channels, seed)
    labels = LABELS.get(num_classes, [f"class{i}" for i in range(num_classes)])
    pre = PreprocessSpec.for_model(model, size=size, channels=channels)
    report = export_bundle(Checkpoint(model, spec, pre, labels, {"note": "random-init test student"}), out_dir,
                           formats=("onnx", "openvino"))
    return Path(report.path) if hasattr(report, "path") else Path(out_dir), model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
