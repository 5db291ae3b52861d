"""The one preprocessing definition shared by training, export, the bundle manifest and the C runtime.

From raw pixels to the model's input tensor, in this order:
  1. scale to float in [0, 1]: divide by 255 for 8-bit, by 65535 for 16-bit images (`value_max` of the dtype);
  2. channels: grayscale (H, W) or (H, W, 1) is replicated to 3 channels when the model takes 3; RGB is converted to
     grayscale with ITU-R BT.601 luma weights (0.299, 0.587, 0.114) when the model takes 1; RGBA drops alpha;
  3. resize to (size, size) with bilinear interpolation, half-pixel centres (align_corners=False) and antialiasing
     when shrinking, i.e. torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True);
     the aspect ratio is not kept (medical images are usually square; crop upstream if needed);
  4. normalise each channel: (x - mean[c]) / std[c].
The C runtime (deploy/src) implements exactly these steps from the manifest's `preprocess` record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgeskd.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class PreprocessSpec:
    size: int = 224
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize: str = "bilinear-antialias"
    layout: str = "NCHW"
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise DataError(f"preprocess channels must be 1 or 3; got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise DataError(f"preprocess mean/std need {self.channels} values; got mean={self.mean}, std={self.std}")
        if any(s <= 0 for s in self.std):
            raise DataError(f"preprocess std values must be > 0; got {self.std}")
        if self.size < 8:
            raise DataError(f"preprocess size must be >= 8; got {self.size}")
        if self.resize != "bilinear-antialias":
            raise DataError(f"unsupported resize {self.resize!r}; supported: 'bilinear-antialias'")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(float(v) for v in known[key])
        return cls(**known)

    @classmethod
    def for_model(cls, model: torch.nn.Module, size: int | None = None, channels: int = 3) -> PreprocessSpec:
        """The preprocessing a timm model was pretrained with (mean/std from its pretrained config)."""
        cfg = getattr(model, "pretrained_cfg", None) or {}
        mean = tuple(cfg.get("mean", IMAGENET_MEAN))
        std = tuple(cfg.get("std", IMAGENET_STD))
        if channels == 1:
            mean = (float(np.dot(mean, LUMA_WEIGHTS)),)
            std = (float(np.dot(std, LUMA_WEIGHTS)),)
        side = size or int(cfg.get("input_size", (3, 224, 224))[-1])
        return cls(size=side, channels=channels, mean=mean, std=std)


def to_float_nchw(raw: np.ndarray, channels: int, *, replicate_gray: bool = True) -> torch.Tensor:
    """Steps 1-2 for a stack of same-shape images (N, H, W[, 1|3|4]), uint8 or uint16 -> float (N, C, H, W).

    With replicate_gray=False a grayscale stack stays one channel (the caller broadcasts it to 3 later, e.g. in the
    normalisation after a cheaper one-channel resize; the result is the same)."""
    if raw.dtype == np.uint8:
        scale = 255.0
    elif raw.dtype == np.uint16:
        scale = 65535.0
    else:
        raise DataError(f"images must be uint8 or uint16 pixel arrays; got dtype {raw.dtype}")
    if raw.ndim == 4 and raw.shape[3] == 1:
        raw = raw[..., 0]
    if raw.ndim == 4 and raw.shape[3] == 4:
        raw = raw[..., :3]  # alpha is dropped
    if raw.ndim not in (3, 4) or (raw.ndim == 4 and raw.shape[3] != 3):
        raise DataError(f"image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {raw.shape[1:]}")
    x = torch.from_numpy(np.ascontiguousarray(raw).astype(np.float32) / scale)
    if x.ndim == 3:
        x = x.unsqueeze(1)
        return x.expand(-1, 3, -1, -1) if channels == 3 and replicate_gray else x
    x = x.permute(0, 3, 1, 2)
    if channels == 1:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float32).view(1, 3, 1, 1)
        x = (x * weights).sum(1, keepdim=True)
    return x


def to_float_chw(image: np.ndarray, channels: int) -> torch.Tensor:
    """Steps 1-2 for one raw image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> float (C, H, W)."""
    return to_float_nchw(np.asarray(image)[None], channels)[0]


def preprocess(image: np.ndarray, spec: PreprocessSpec) -> torch.Tensor:
    """All four steps for one image: raw pixels -> float tensor (C, size, size)."""
    x = to_float_chw(image, spec.channels)
    if x.shape[-2:] != (spec.size, spec.size):
        x = F.interpolate(x.unsqueeze(0), size=(spec.size, spec.size), mode="bilinear", align_corners=False,
                          antialias=True).squeeze(0)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(-1, 1, 1)
    return (x - mean) / std


def preprocess_batch(images: list[np.ndarray] | np.ndarray, spec: PreprocessSpec) -> torch.Tensor:
    return torch.stack([preprocess(img, spec) for img in images])
