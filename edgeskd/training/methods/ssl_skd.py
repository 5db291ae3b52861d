"""ssl-skd: SKD read as self-supervision from an EMA copy (BYOL-style), then cross-entropy training of A.

Before the first epoch (``prepare``), A (online, + projector + predictor) learns on two augmented views of every
training image, labelled or not (the labelled set plus the unlabelled pool when the run has one), to predict the
projection that an EMA target B makes of the other view; no label is used. Then stage 1 and stage 2 train A with
cross-entropy exactly as single-ws does. B starts as a copy of A (``target_init=copy-a``, BYOL) or from its own
weight selection (``target_init=selection``, strategy_b: the dual-selection reading). The stage itself is
edgeskd.training.ssl; docs/training.md says which parts come from BYOL, from weight selection, and which are ours.
"""

from __future__ import annotations

import copy

import torch

from edgeskd.errors import TrainingError
from edgeskd.training.methods.base import Method, Run, StepBatch, Terms, register_method, select_pair, select_single

TARGET_INITS = ("copy-a", "selection")


@register_method
class SSLSKD(Method):
    name = "ssl-skd"
    summary = ("BYOL-style stage on every training image (online A + projector + predictor, EMA target B), then CE "
               "on A")
    options = {"ssl_epochs": 2, "ssl_lr": 1e-3, "ssl_momentum": 0.99, "ssl_augment": 2.0, "ssl_hidden": 256,
               "ssl_dim": 64, "target_init": "copy-a"}

    def init_models(self, run: Run) -> None:
        target = run.options["target_init"]
        if target not in TARGET_INITS:
            raise TrainingError(f"ssl-skd option target_init={target!r}; expected one of {', '.join(TARGET_INITS)}")
        if target == "selection":
            select_pair(run)  # A from strategy_a, B from strategy_b
            run.ssl_target = run.b
        else:
            select_single(run)
            run.ssl_target = None  # a copy of A, made when the stage starts
        run.b = None  # B only lives through the self-supervised stage; the loop trains and saves A alone

    def prepare(self, run: Run) -> None:
        from edgeskd.training.ssl import SSLOptions, ssl_pretrain

        opt, cfg = run.options, run.config
        target = getattr(run, "ssl_target", None)
        target = copy.deepcopy(run.a) if target is None else target.to(next(run.a.parameters()).device)
        pool = run.train.x if run.unlabelled is None else torch.cat([run.train.x, run.unlabelled.x])
        options = SSLOptions(epochs=opt["ssl_epochs"], lr=opt["ssl_lr"], weight_decay=cfg.weight_decay,
                             batch_size=cfg.batch_size, momentum=opt["ssl_momentum"], hidden=opt["ssl_hidden"],
                             dim=opt["ssl_dim"], augment=opt["ssl_augment"], hflip=cfg.hflip,
                             grad_clip=cfg.grad_clip, seed=cfg.seed)
        history = ssl_pretrain(run.a, target, pool, options, progress=run.progress)
        run.selection_report["ssl"] = {"target_init": opt["target_init"], "pool": len(pool),
                                       "steps": history[-1]["ssl_steps"], "loss": [h["ssl_loss"] for h in history]}
        run.ssl_target = None
        run.a.train()

    def losses(self, run: Run, stage: str, batch: StepBatch) -> tuple[Terms, Terms]:
        # CE on the labelled images only; the unlabelled pool was used by the self-supervised stage
        return {"ce": run.ce(run.a(run.augment(batch.xl, batch.gen)), batch.yl)}, {}
