"""Batch augmentation on preprocessed tensors, driven by one torch.Generator (so a seed fixes every draw).

Strength s scales everything: random translation up to round(s * side / 8) pixels (edge-replicated padding),
brightness and contrast jitter of +-0.2 s, and an optional horizontal flip. s = 0 returns the batch unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, strength: float, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    if strength <= 0 and not hflip:
        return x
    n, _, h, w = x.shape
    dev = x.device  # draws come from the (CPU) generator, then move: the same numbers on every device
    out = x
    if hflip:
        flip = torch.rand(n, generator=generator) < 0.5
        out = torch.where(flip.view(n, 1, 1, 1).to(dev), out.flip(-1), out)
    if strength > 0:
        pad = int(round(strength * min(h, w) / 8))
        if pad > 0:
            padded = F.pad(out, (pad, pad, pad, pad), mode="replicate")
            dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
            dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
            # slices are views, so this is one copy (measured faster on the CPU than a batched gather)
            out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
        jitter = 0.2 * strength
        brightness = ((torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * jitter).to(dev)
        contrast = (1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * jitter).to(dev)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * contrast + mean + brightness
    return out
