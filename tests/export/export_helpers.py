"""Helpers for the export tests: tiny students of every family saved as real checkpoints."""

from __future__ import annotations

from pathlib import Path

# timm teacher -> (depth, width) small enough that an export + parity round trip takes a second or two.
FAMILIES = {
    "vit": "vit_tiny_patch16_224",
    "convnext": "convnext_atto",
    "resnet": "resnet18",
    "efficientnet": "tf_efficientnet_lite0",
}
RESOLUTION = 32
LABELS = ["NORMAL", "PNEUMONIA"]


def make_checkpoint(path: Path, teacher: str, *, seed: int = 0, resolution: int = RESOLUTION, info: dict | None = None):
    import torch

    from edgeskd.data.preprocess import PreprocessSpec
    from edgeskd.models import Checkpoint, StudentSpec, build_student, save_checkpoint

    torch.manual_seed(seed)
    spec = StudentSpec(teacher, depth=0.5, width=0.5, resolution=resolution, num_classes=len(LABELS))
    model = build_student(spec).eval()
    ckpt = Checkpoint(model, spec, PreprocessSpec(size=resolution), list(LABELS),
                      info if info is not None else {"teacher": teacher, "selection": {"a": "uniform-0"},
                                                     "training": {"epochs": 0, "note": "untrained test student"}})
    save_checkpoint(path, ckpt)
    return ckpt
