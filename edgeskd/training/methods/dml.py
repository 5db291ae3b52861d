"""dml: deep mutual learning between A and a trained peer B, both from their own weight selection."""

from __future__ import annotations

import torch

from edgeskd.training.methods.base import DistillationMethod, Run, StepBatch, Terms, register_method, select_pair


@register_method
class DML(DistillationMethod):
    name = "dml"
    summary = "CE + KL to the peer for A and symmetrically for B (both trained; deep mutual learning)"

    def init_models(self, run: Run) -> None:
        select_pair(run)

    def trains_b(self, stage: str) -> bool:
        return stage == "skd"

    def kd_terms(self, run: Run, batch: StepBatch, logits_a: torch.Tensor, x2: torch.Tensor, terms_a: Terms,
                 terms_b: Terms) -> None:
        logits_b = run.b(x2)
        terms_b["ce"] = run.ce(logits_b[:len(batch.xl)], batch.yl)
        terms_a["kd"] = run.kd(logits_a, logits_b.detach(), batch.kd_scale)
        terms_b["kd"] = run.kd(logits_b, logits_a.detach(), batch.kd_scale)
