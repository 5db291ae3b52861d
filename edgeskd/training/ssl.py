"""The self-supervised SKD stage of `ssl-skd`: BYOL-style learning from an EMA copy on unlabelled images.

Sources (docs/training.md says the same):
  - BYOL (Grill et al., 2020): an online network (encoder + projector + predictor) regresses, with the normalised-MSE
    loss 2 - 2 cos(p, z), the projection of another augmented view made by a target network (encoder + projector)
    that is an exponential moving average of the online one; the loss is symmetrised over the two views.
  - Weight selection (Xu et al., 2024): the encoders start from weights selected from the teacher, A from its own
    subset and, for "B from its own selection", the target from a different subset.
  - Ours: the reading of the authors' chest X-ray work (SKD as self-supervision from an EMA copy) as a stage before
    fine-tuning; the small sizes (projector and predictor 256 -> 64), AdamW with a cosine schedule instead of LARS,
    a constant EMA momentum, and the augmentation (the trainer's shifts + brightness/contrast at twice the
    supervised strength: Fashion-MNIST and X-rays have no colour to jitter).

The stage sees every training image, labelled or not, and never a label. The classifier heads are untouched.
"""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeskd.errors import TrainingError
from edgeskd.training.augment import augment_batch


@dataclass(frozen=True)
class SSLOptions:
    epochs: int = 2                 # passes over the pool (labelled + unlabelled images)
    lr: float = 1e-3                # AdamW peak learning rate, cosine decay over the stage
    weight_decay: float = 0.05
    batch_size: int = 64            # images per step; each image is seen as two views
    momentum: float = 0.99          # target <- m * target + (1 - m) * online after each step
    hidden: int = 256               # projector / predictor hidden width
    dim: int = 64                   # projection width
    augment: float = 2.0            # view augmentation strength (edgeskd.training.augment)
    hflip: bool = False
    grad_clip: float = 5.0
    seed: int = 0

    def validate(self) -> None:
        bad = [k for k, ok in {"epochs": self.epochs >= 1, "lr": self.lr > 0, "batch_size": self.batch_size >= 2,
                               "momentum": 0 <= self.momentum < 1, "hidden": self.hidden >= 1, "dim": self.dim >= 1,
                               "augment": self.augment >= 0, "weight_decay": self.weight_decay >= 0}.items() if not ok]
        if bad:
            raise TrainingError("invalid ssl-skd option(s): " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))


def _mlp(width_in: int, hidden: int, width_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, width_out))


def encode(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled features before the classifier (timm's pre-logits)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z), mean over the batch; z is the target's projection (no gradient)."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


@torch.no_grad()
def _ema(target: nn.Module, online: nn.Module, momentum: float) -> None:
    for t, o in zip(target.state_dict().values(), online.state_dict().values()):
        if t.dtype.is_floating_point:
            t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
        else:
            t.copy_(o)


def _seed(seed: int, epoch: int) -> int:
    return int.from_bytes(hashlib.sha256(f"ssl/{seed}/{epoch}".encode()).digest()[:7], "little")


class BYOLStage:
    """Online A (+ projector + predictor) and target B (+ projector), B an EMA of A from the first step."""

    def __init__(self, a: nn.Module, b: nn.Module, options: SSLOptions) -> None:
        options.validate()
        if a.num_features != b.num_features:
            raise TrainingError(f"ssl-skd: A has {a.num_features} features but B has {b.num_features}; "
                                f"B must have A's architecture")
        self.a, self.b, self.options = a, b, options
        torch.manual_seed(_seed(options.seed, -1))
        device = next(a.parameters()).device
        self.projector = _mlp(a.num_features, options.hidden, options.dim).to(device)
        self.predictor = _mlp(options.dim, options.hidden, options.dim).to(device)
        self.target_projector = copy.deepcopy(self.projector)
        self.device = device
        for p in [*self.b.parameters(), *self.target_projector.parameters()]:
            p.requires_grad_(False)
        self.online_params = [*a.parameters(), *self.projector.parameters(), *self.predictor.parameters()]

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        opt = self.options
        n = len(x)
        views = torch.cat([augment_batch(x, opt.augment, opt.hflip, generator),
                           augment_batch(x, opt.augment, opt.hflip, generator)]).to(self.device, non_blocking=True)
        p = self.predictor(self.projector(encode(self.a, views)))
        with torch.no_grad():  # the EMA target costs one forward pass per view
            z = self.target_projector(encode(self.b, views))
        return byol_loss(p[:n], z[n:]) + byol_loss(p[n:], z[:n])

    def after_step(self) -> None:
        _ema(self.b, self.a, self.options.momentum)
        _ema(self.target_projector, self.projector, self.options.momentum)

    def modules(self) -> list[nn.Module]:
        return [self.a, self.b, self.projector, self.predictor, self.target_projector]


def ssl_pretrain(a: nn.Module, b: nn.Module, pool: torch.Tensor, options: SSLOptions,
                 progress: bool = False) -> list[dict[str, Any]]:
    """Run the BYOL stage in place on A (and B, the target) over `pool` (N, C, H, W); returns per-epoch records."""
    from tqdm.auto import tqdm

    stage = BYOLStage(a, b, options)
    if len(pool) < 2:
        raise TrainingError(f"ssl-skd needs at least 2 images for its self-supervised stage; got {len(pool)}")
    optimizer = torch.optim.AdamW(stage.online_params, lr=options.lr, weight_decay=options.weight_decay)
    per_epoch = math.ceil(len(pool) / options.batch_size)
    total, step, history = options.epochs * per_epoch, 0, []
    for epoch in range(options.epochs):
        gen = torch.Generator().manual_seed(_seed(options.seed, epoch))
        torch.manual_seed(_seed(options.seed, epoch))
        for m in stage.modules():
            m.train()
        chunks = [c for c in torch.randperm(len(pool), generator=gen).split(options.batch_size) if len(c) >= 2]
        losses = []
        for idx in tqdm(chunks, desc=f"ssl {epoch + 1}/{options.epochs}", leave=False, disable=not progress):
            for group in optimizer.param_groups:
                group["lr"] = options.lr * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
            loss = stage.loss(pool[idx], gen)
            if not torch.isfinite(loss):
                raise TrainingError(f"ssl-skd: BYOL loss is {loss.item()} at epoch {epoch + 1} step {step + 1}; "
                                    f"lower the ssl learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if options.grad_clip:
                nn.utils.clip_grad_norm_(stage.online_params, options.grad_clip)
            optimizer.step()
            stage.after_step()
            losses.append(loss.item())
            step += 1
        history.append({"ssl_epoch": epoch + 1, "ssl_loss": sum(losses) / max(len(losses), 1), "ssl_steps": step})
    a.eval()
    return history
