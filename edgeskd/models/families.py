"""Model families edgeskd knows, in one registry (after timm's): how to recognise a timm model of the family and how
to build a smaller student of the same family. Weight selection and export look families up here too, so a family
the registry does not know is refused everywhere with the same clear error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from edgeskd._compat import import_timm
from edgeskd.errors import ModelError

timm = import_timm()


@dataclass(frozen=True)
class Family:
    name: str
    model_class: type
    # (teacher timm name, teacher module, depth multiplier, width multiplier, explicit timm kwargs, common kwargs)
    build_student: Callable[..., nn.Module]
    description: str


_FAMILIES: dict[str, Family] = {}


def register_family(name: str, model_class: type, description: str):
    """Decorator: register the student builder of a family."""

    def wrap(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _FAMILIES[name] = Family(name, model_class, build, description)
        return build

    return wrap


def list_families() -> list[str]:
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    if name not in _FAMILIES:
        raise ModelError(f"unknown model family {name!r}; supported: {', '.join(list_families())}")
    return _FAMILIES[name]


def family_of(model: nn.Module, name: str | None = None) -> str:
    """The registered family of a timm model instance; a clear error for any other model."""
    for family in _FAMILIES.values():
        if type(model) is family.model_class:
            return family.name
    label = name or type(model).__name__
    raise ModelError(
        f"model {label!r} ({type(model).__module__}.{type(model).__name__}) is not of a supported family; "
        f"supported: {', '.join(f'{f.name} ({f.description})' for f in _FAMILIES.values())}"
    )


def _scaled(value: int, multiplier: float, divisor: int = 8, minimum: int = 8) -> int:
    """Scale a channel count and round to a multiple of `divisor` (not below `minimum`), as timm does for widths."""
    scaled = max(minimum, int(value * multiplier + divisor / 2) // divisor * divisor)
    if scaled < 0.9 * value * multiplier:
        scaled += divisor
    return scaled


def _depth(value: int, multiplier: float) -> int:
    return max(1, int(round(value * multiplier)))


# --- ViT / DeiT -----------------------------------------------------------------------------------------------------
from timm.models.vision_transformer import VisionTransformer  # noqa: E402


@register_family("vit", VisionTransformer, "ViT/DeiT (timm VisionTransformer)")
def _vit_student(name: str, teacher: nn.Module, depth: float, width: float, arch: dict, common: dict) -> nn.Module:
    heads = teacher.blocks[0].attn.num_heads
    head_dim = teacher.embed_dim // heads
    student_heads = max(1, int(round(heads * width)))
    mlp_ratio = teacher.blocks[0].mlp.fc1.out_features / teacher.embed_dim
    kwargs = dict(
        depth=_depth(len(teacher.blocks), depth),
        num_heads=student_heads,
        embed_dim=student_heads * head_dim,  # head_dim is kept: the selection keeps whole heads
        mlp_ratio=mlp_ratio,
    )
    kwargs.update(arch)
    return timm.create_model(name, pretrained=False, **kwargs, **common)


# --- ConvNeXt -------------------------------------------------------------------------------------------------------
from timm.models.convnext import ConvNeXt  # noqa: E402


@register_family("convnext", ConvNeXt, "ConvNeXt (timm ConvNeXt)")
def _convnext_student(name: str, teacher: nn.Module, depth: float, width: float, arch: dict, common: dict):
    depths = [len(stage.blocks) for stage in teacher.stages]
    dims = [stage.blocks[0].conv_dw.in_channels for stage in teacher.stages]
    kwargs = dict(depths=tuple(_depth(d, depth) for d in depths), dims=tuple(_scaled(c, width) for c in dims))
    kwargs.update(arch)
    return timm.create_model(name, pretrained=False, **kwargs, **common)


# --- ResNet ---------------------------------------------------------------------------------------------------------
from timm.models.resnet import ResNet  # noqa: E402


@register_family("resnet", ResNet, "ResNet with basic or bottleneck blocks (timm ResNet)")
def _resnet_student(name: str, teacher: nn.Module, depth: float, width: float, arch: dict, common: dict):
    stages = [teacher.layer1, teacher.layer2, teacher.layer3, teacher.layer4]
    layers = [len(stage) for stage in stages]
    first = stages[0][0]
    expansion = type(first).expansion
    # stage width = output channels / block expansion
    channels = [stage[0].conv1.out_channels if expansion == 1 else stage[-1].conv3.out_channels // expansion
                for stage in stages]
    # timm's stem_width: a plain 7x7 stem ignores it (always 64 wide); a deep stem's middle conv is stem_width wide
    plain_stem = isinstance(teacher.conv1, nn.Conv2d)
    stem = teacher.conv1.out_channels if plain_stem else teacher.conv1[3].out_channels
    student_channels = [_scaled(c, width) for c in channels]
    if plain_stem and expansion == 1 and channels[0] == stem:
        # timm fixes a plain stem at 64 channels; a narrower first stage would need a projection shortcut that the
        # teacher's first stage does not have, so that stage keeps the stem's width.
        student_channels[0] = stem
    kwargs = dict(
        layers=tuple(_depth(n, depth) for n in layers),
        channels=tuple(student_channels),
        stem_width=_scaled(stem, width),
    )
    kwargs.update(arch)
    return timm.create_model(name, pretrained=False, **kwargs, **common)


# --- EfficientNet / MobileNet (timm EfficientNet class: depthwise separable, inverted residual, SE) -----------------
from timm.models import efficientnet as _effnet  # noqa: E402
from timm.models.efficientnet import EfficientNet  # noqa: E402

# timm's entry points fix their multipliers, so a student is built through the generator behind the entry point,
# with the teacher's own multipliers scaled. (generator, channel multiplier, depth multiplier)
_EFFNET_GENERATORS: dict[str, tuple[Callable, float, float]] = {
    **{f"tf_efficientnet_lite{i}": (_effnet._gen_efficientnet_lite, c, d)
       for i, (c, d) in enumerate([(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8)])},
    **{f"efficientnet_lite{i}": (_effnet._gen_efficientnet_lite, c, d)
       for i, (c, d) in enumerate([(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8)])},
    **{f"{p}efficientnet_b{i}": (_effnet._gen_efficientnet, c, d)
       for p in ("", "tf_")
       for i, (c, d) in enumerate([(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8)])},
    "mobilenetv2_100": (_effnet._gen_mobilenet_v2, 1.0, 1.0),
    "mobilenetv2_140": (_effnet._gen_mobilenet_v2, 1.4, 1.0),
    "mnasnet_100": (_effnet._gen_mnasnet_b1, 1.0, 1.0),
}


@register_family("efficientnet", EfficientNet,
                 "EfficientNet / EfficientNet-Lite / MobileNetV2-style depthwise separable nets (timm EfficientNet)")
def _effnet_student(name: str, teacher: nn.Module, depth: float, width: float, arch: dict, common: dict):
    if name not in _EFFNET_GENERATORS:
        raise ModelError(
            f"cannot build a reduced student of {name!r}: EfficientNet-family students are built for "
            f"{', '.join(sorted(_EFFNET_GENERATORS))}"
        )
    generator, base_channels, base_depth = _EFFNET_GENERATORS[name]
    kwargs = dict(channel_multiplier=base_channels * width, depth_multiplier=base_depth * depth)
    kwargs.update(arch)
    # timm's generators take `variant` for the default config only; the architecture comes from the multipliers.
    student = generator(name, pretrained=False, **kwargs, **common)
    # Channel rounding can make a block's input and output widths equal in the student but not in the teacher (or
    # the reverse), which adds or removes a residual connection: then the student is no longer a reduced teacher.
    for s_idx, (t_stage, s_stage) in enumerate(zip(teacher.blocks, student.blocks)):
        for b_idx, (t_block, s_block) in enumerate(zip(t_stage, s_stage)):
            if getattr(t_block, "has_skip", None) != getattr(s_block, "has_skip", None):
                raise ModelError(
                    f"width {width} gives {name} block {s_idx}.{b_idx} a residual connection structure the teacher "
                    f"does not have (channel rounding); choose another width, e.g. 0.5")
    return student

