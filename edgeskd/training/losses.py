"""Loss terms. Every KD term is temperature-scaled and multiplied by T^2 (Hinton et al.) so that its gradient scale
does not change with T."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def supervised_loss(logits: torch.Tensor, target: torch.Tensor, multilabel: bool, smoothing: float) -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, target.float())
    return F.cross_entropy(logits, target, label_smoothing=smoothing)


def distillation_loss(student: torch.Tensor, target: torch.Tensor, temperature: float, multilabel: bool) -> torch.Tensor:
    """T^2 * KL(target || student) on temperature-softened outputs; `target` must already be detached.

    Multi-label outputs are treated as independent Bernoulli distributions (KL summed over labels, mean over images).
    """
    t = temperature
    if multilabel:
        p = torch.sigmoid(target / t)
        log_q1, log_q0 = F.logsigmoid(student / t), F.logsigmoid(-student / t)
        log_p1, log_p0 = F.logsigmoid(target / t), F.logsigmoid(-target / t)
        kl = p * (log_p1 - log_q1) + (1 - p) * (log_p0 - log_q0)
        return t * t * kl.sum(1).mean()
    return t * t * F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(target / t, dim=1),
                            reduction="batchmean", log_target=True)
