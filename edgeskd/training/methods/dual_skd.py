"""dual-skd (ours, after Tsutsumi et al.): A and B from two different weight selections; B is an EMA of A that
teaches A on a second augmented view (self-knowledge distillation)."""

from __future__ import annotations

import torch

from edgeskd.training.methods.base import (DistillationMethod, Run, StepBatch, Terms, batch_indices, ema_update,
                                           epoch_seed, make_optimizer, register_method, select_pair)


@register_method
class DualSKD(DistillationMethod):
    name = "dual-skd"
    summary = "CE(A(x1), y) + lambda * T^2 * KL(B(x2) || A(x1)); B is an EMA of A starting from its own selection"

    def init_models(self, run: Run) -> None:
        select_pair(run)
        if run.config.b_init == "copy-a":
            run.b.load_state_dict(run.a.state_dict())
        else:
            # the head is never selected: B gets A's (random) head so the first KL targets are not noise
            run.b.get_classifier().load_state_dict(run.a.get_classifier().state_dict())
        for p in run.b.parameters():
            p.requires_grad_(False)

    def prepare(self, run: Run) -> None:
        """With b_probe_epochs: fit only B's head on the labels, so B's own subset speaks from step 0."""
        cfg = run.config
        if not (cfg.b_probe_epochs and cfg.epochs_skd):
            return
        head = run.b.get_classifier()
        for p in head.parameters():
            p.requires_grad_(True)
        opt = make_optimizer(head.parameters(), cfg, cfg.lr)
        gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, -2, 0))
        run.b.train()
        for _ in range(cfg.b_probe_epochs):
            for idx in batch_indices(len(run.train.x), cfg.batch_size, gen):
                x = run.augment(run.batch_x(run.train, idx), gen)
                loss = run.ce(run.b(x), run.batch_y(run.train, idx))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        for p in head.parameters():
            p.requires_grad_(False)

    def kd_terms(self, run: Run, batch: StepBatch, logits_a: torch.Tensor, x2: torch.Tensor, terms_a: Terms,
                 terms_b: Terms) -> None:
        with torch.no_grad():
            target = run.b(x2)
        terms_a["kd"] = run.kd(logits_a, target, batch.kd_scale)

    def after_step(self, run: Run, stage: str) -> None:
        if stage == "skd":
            ema_update(run.b, run.a, run.config.ema_momentum)
