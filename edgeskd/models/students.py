"""The student factory: one function builds any student from a small serialisable spec.

A student is the teacher's timm architecture with fewer blocks per stage (`depth`), fewer channels (`width`), and
optionally an input resolution of its own. `arch` holds explicit timm keyword arguments that win over the
multipliers (e.g. {"embed_dim": 192, "num_heads": 3, "depth": 12} for a ViT-Ti-shaped student).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from edgeskd._io import read_json_object
from edgeskd.errors import ModelError
from edgeskd.models.families import family_of, get_family
from edgeskd.models.teacher import create_model


@dataclass(frozen=True)
class StudentSpec:
    teacher: str                  # timm name of the teacher's architecture; the student has the same family
    depth: float = 1.0            # multiplier on blocks (per stage for hierarchical families), at least 1 per stage
    width: float = 1.0            # multiplier on channels (ViT: on heads, head_dim kept)
    resolution: int = 224         # input side length the student is trained and exported at
    num_classes: int = 1000
    in_chans: int = 3
    arch: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.depth <= 1.0 or not 0 < self.width <= 1.0:
            raise ModelError(f"student depth and width multipliers must be in (0, 1]; got depth={self.depth}, "
                             f"width={self.width}")
        if self.resolution < 16:
            raise ModelError(f"student resolution must be >= 16 pixels; got {self.resolution}")
        if self.num_classes < 1:
            raise ModelError(f"num_classes must be >= 1; got {self.num_classes}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentSpec:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ModelError(f"unknown student config keys {sorted(unknown)}; expected {sorted(cls.__dataclass_fields__)}")
        if "teacher" not in data:
            raise ModelError("student config needs 'teacher' (the timm name of the teacher architecture)")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str) -> StudentSpec:
        return cls.from_dict(read_json_object(path, ModelError, "student config"))


def _common_kwargs(spec: StudentSpec, family: str) -> dict[str, Any]:
    common: dict[str, Any] = dict(num_classes=spec.num_classes, in_chans=spec.in_chans)
    if family == "vit":
        common["img_size"] = spec.resolution
    return common


def teacher_architecture(name: str, num_classes: int | None = None, resolution: int | None = None) -> nn.Module:
    """An untrained instance of the teacher's architecture (for shapes, the family and the student builder)."""
    model = create_model(name)
    if resolution is not None and family_of(model, name) == "vit" and resolution != model.patch_embed.img_size[0]:
        model = create_model(name, img_size=resolution)
    if num_classes is not None:
        model.reset_classifier(num_classes)
    return model


# Smallest input side a family's downsampling survives (ConvNeXt: stride-4 stem, then three stride-2 stages).
_MIN_RESOLUTION = {"convnext": 32}


def check_resolution(spec: StudentSpec, family: str, reference: nn.Module) -> None:
    """A resolution below the family's minimum is an error here, not a shape error deep inside timm."""
    minimum = _MIN_RESOLUTION.get(family, 16)
    if family == "vit":
        patch = int(reference.patch_embed.patch_size[0])
        minimum = max(minimum, patch)  # at least one patch
    if spec.resolution < minimum:
        raise ModelError(f"student resolution {spec.resolution} is below the {family} family's minimum of "
                         f"{minimum} pixels")


def build_student(spec: StudentSpec, teacher: nn.Module | None = None) -> nn.Module:
    """Build the (randomly initialised) student described by `spec`."""
    reference = teacher if teacher is not None else create_model(spec.teacher)
    family = get_family(family_of(reference, spec.teacher))
    check_resolution(spec, family.name, reference)
    try:
        return family.build_student(spec.teacher, reference, spec.depth, spec.width, dict(spec.arch),
                                    _common_kwargs(spec, family.name))
    except ModelError:
        raise
    except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
        raise ModelError(f"cannot build a {family.name} student of {spec.teacher} with {spec.to_dict()}: {exc}") from exc


def count_parameters(model: nn.Module, *, backbone_only: bool = False) -> int:
    """Trainable parameter count; `backbone_only` leaves out the classifier (it changes with the task)."""
    skip = set()
    if backbone_only and hasattr(model, "get_classifier"):
        skip = {id(p) for p in model.get_classifier().parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def count_macs(model: nn.Module, resolution: int, in_chans: int = 3) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, in_chans, resolution, resolution))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops() // 2)


@dataclass(frozen=True)
class ModelProfile:
    parameters: int
    backbone_parameters: int
    macs: int
    resolution: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def profile_model(model: nn.Module, resolution: int, in_chans: int = 3) -> ModelProfile:
    return ModelProfile(count_parameters(model), count_parameters(model, backbone_only=True),
                        count_macs(model, resolution, in_chans), resolution)
