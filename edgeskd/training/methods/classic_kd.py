"""classic-kd: A from one weight selection, distilled from the teacher after the teacher is fine-tuned on the task."""

from __future__ import annotations

import torch

from edgeskd.errors import TrainingError
from edgeskd.training.methods.base import DistillationMethod, Run, StepBatch, Terms, register_method, select_single


@register_method
class ClassicKD(DistillationMethod):
    name = "classic-kd"
    summary = "CE(A(x1), y) + lambda * T^2 * KL(teacher(x2) || A(x1)); the teacher is first fine-tuned on the task"
    needs_kd_teacher = True

    def init_models(self, run: Run) -> None:
        select_single(run)
        if run.kd_teacher is None:
            raise TrainingError("classic-kd needs a teacher fine-tuned on the task (train() makes one)")

    def kd_terms(self, run: Run, batch: StepBatch, logits_a: torch.Tensor, x2: torch.Tensor, terms_a: Terms,
                 terms_b: Terms) -> None:
        with torch.no_grad():
            target = run.kd_teacher(x2)
        terms_a["kd"] = run.kd(logits_a, target, batch.kd_scale)
