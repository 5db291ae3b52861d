"""The method protocol, the registry, and the run context a method works on.

A training run has two stages (see edgeskd.training.trainer): stage 1 ("skd") uses the method's own losses, stage 2
("finetune") trains A alone with cross-entropy. A method decides, through the hooks of :class:`Method`:

- ``init_models(run)``: how A (already built, head initialised) gets its weights, and whether a model B exists
  (set ``run.b``; a B is saved in the training state and restored on resume);
- ``prepare(run)``: work before the first epoch of a fresh run (not on resume), e.g. fitting B's head;
- ``trains_b(stage)``: whether B has its own optimizer and gradients in that stage;
- ``losses(run, stage, batch)``: the loss terms of one step, for A and for B (each term is logged as loss_<name>
  or loss_b_<name>; their sum is minimised);
- ``after_step(run, stage)``: what happens after the optimizer step, e.g. B's EMA update.

Class attributes say what the loop must supply: ``needs_kd_teacher`` (a teacher fine-tuned on the task, made once
per run folder or shared by a comparison) and ``options`` (method options with their defaults, given on the command
line as ``--method-option key=value``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn as nn

from edgeskd.errors import TrainingError
from edgeskd.training.augment import augment_batch
from edgeskd.training.device import gather_batch
from edgeskd.training.losses import distillation_loss, supervised_loss

Terms = dict[str, torch.Tensor]

_REGISTRY: dict[str, Method] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: register one instance of a Method subclass under its `name`."""
    if not cls.name:
        raise TrainingError(f"method class {cls.__name__} has no name")
    _REGISTRY[cls.name] = cls()
    return cls


def registered() -> dict[str, Method]:
    return dict(_REGISTRY)


@dataclass
class StepBatch:
    """One step's inputs: a labelled batch, an optional unlabelled batch (for KD terms), the KD ramp factor and the
    generator every augmentation draw of this epoch comes from."""

    xl: torch.Tensor
    yl: torch.Tensor
    xu: torch.Tensor | None
    kd_scale: float
    gen: torch.Generator

    @property
    def x_all(self) -> torch.Tensor:
        return self.xl if self.xu is None else torch.cat([self.xl, self.xu])


class Method:
    """Base class of a training method; the defaults are plain supervised training of A (no B)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_kd_teacher: ClassVar[bool] = False
    options: ClassVar[dict[str, Any]] = {}

    def init_models(self, run: Run) -> None:
        """Give A its initial weights and create B if the method has one (run.a exists, run.b is None)."""

    def prepare(self, run: Run) -> None:
        """Work on a fresh run before its first epoch (skipped when resuming)."""

    def trains_b(self, stage: str) -> bool:
        return False

    def losses(self, run: Run, stage: str, batch: StepBatch) -> tuple[Terms, Terms]:
        """Cross-entropy of A on the labelled images (unlabelled images carry no signal without a KD term)."""
        x1 = run.augment(batch.x_all, batch.gen)
        return {"ce": run.ce(run.a(x1[:len(batch.xl)]), batch.yl)}, {}

    def after_step(self, run: Run, stage: str) -> None:
        """Called after every optimizer step."""

    def check_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """The method's options with `given` applied; unknown keys and wrong types are errors naming them."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise TrainingError(f"method {self.name!r} has no option(s) {unknown}; its options: {known}")
        out = dict(self.options)
        for key, value in given.items():
            default = self.options[key]
            if default is not None and not isinstance(value, type(default)) and not (
                    isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)):
                raise TrainingError(f"method option {key}={value!r} of {self.name!r}: expected a "
                                    f"{type(default).__name__} like the default {default!r}")
            if isinstance(value, float) and not math.isfinite(value):  # NaN/Inf: refused where it enters
                raise TrainingError(f"method option {key}={value!r} of {self.name!r}: expected a finite number")
            out[key] = float(value) if isinstance(default, float) else value
        return out


# -- shared helpers (the loop and the methods use them) ---------------------------------------------------------------

def epoch_seed(seed: int, stage: int, epoch: int) -> int:
    """The seed of one epoch's shuffling, augmentation and dropout: runs resume exactly from any epoch."""
    digest = hashlib.sha256(f"{seed}/{stage}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def cosine(step: int, total: int, peak: float) -> float:
    return peak * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def make_optimizer(params, config, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)


def batch_indices(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=generator)
    chunks = list(perm.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < 2:  # a batch of one breaks BatchNorm in train mode
        chunks = chunks[:-1]
    return chunks


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, momentum: float) -> None:
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.mul_(momentum).add_(m.detach(), alpha=1 - momentum)
        else:
            e.copy_(m)


class Run:
    """One training run's models and what a method may use: config, data, the (fine-tuned) teacher, helpers.

    `train`, `val` and `unlabelled` are preprocessed tensor sets (x, y, classes, multilabel). Models are built on the
    CPU (so the selection and the random init are the same on every device) and moved by the loop afterwards.
    """

    def __init__(self, spec, teacher: nn.Module, config, method: Method, train, val, unlabelled,
                 kd_teacher: nn.Module | None, progress: bool = False) -> None:
        from edgeskd.models import build_student

        self._build = build_student
        self.spec, self.teacher, self.config, self.method = spec, teacher, config, method
        self.train, self.val, self.unlabelled = train, val, unlabelled
        self.progress = progress
        self.multilabel = train.multilabel
        self.kd_teacher = kd_teacher
        self.options = method.check_options(dict(getattr(config, "method_options", {}) or {}))
        self.device = torch.device("cpu")
        self.channels_last = False
        self.selection_report: dict[str, Any] = {}
        torch.manual_seed(config.seed)
        self.a = self.new_student()
        self.b: nn.Module | None = None
        method.init_models(self)

    def new_student(self) -> nn.Module:
        """A fresh student of the run's spec, with the configured head initialisation."""
        model = self._build(self.spec, self.teacher)
        if self.config.head_init == "zero":
            with torch.no_grad():
                for p in model.get_classifier().parameters():
                    p.zero_()
        return model

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out = augment_batch(x, self.config.augment, self.config.hflip, gen)
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out

    def ce(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return supervised_loss(logits, y, self.multilabel, self.config.label_smoothing)

    def kd(self, student: torch.Tensor, target: torch.Tensor, scale: float) -> torch.Tensor:
        return scale * distillation_loss(student, target, self.config.temperature, self.multilabel)

    def batch_x(self, data, idx: torch.Tensor) -> torch.Tensor:
        """Images `idx` of a tensor set, on the run's device."""
        return gather_batch(data.x, idx, self.device, getattr(data, "pinned", False))

    def batch_y(self, data, idx: torch.Tensor) -> torch.Tensor:
        return gather_batch(data.y, idx, self.device, getattr(data, "pinned", False))


class DistillationMethod(Method):
    """Stage 1 is CE(A(x1), y) + KD terms on a second view x2 (`kd_terms`); stage 2, or kd_weight 0, is plain CE."""

    def losses(self, run: Run, stage: str, batch: StepBatch) -> tuple[Terms, Terms]:
        if stage != "skd" or run.config.kd_weight <= 0:
            return super().losses(run, stage, batch)
        x1 = run.augment(batch.x_all, batch.gen)
        x2 = run.augment(batch.x_all, batch.gen)
        logits_a = run.a(x1)
        terms_a = {"ce": run.ce(logits_a[:len(batch.xl)], batch.yl)}
        terms_b: Terms = {}
        self.kd_terms(run, batch, logits_a, x2, terms_a, terms_b)
        return terms_a, terms_b

    def kd_terms(self, run: Run, batch: StepBatch, logits_a: torch.Tensor, x2: torch.Tensor, terms_a: Terms,
                 terms_b: Terms) -> None:
        raise NotImplementedError


def select_single(run: Run) -> None:
    """A <- one weight selection of the teacher (strategy_a)."""
    from edgeskd.selection import apply_selection, select_weights

    apply_selection(run.a, select_weights(run.teacher, run.a, run.config.strategy_a))
    run.selection_report = {"a": run.config.strategy_a}


def select_pair(run: Run) -> None:
    """A and a new B <- two different selections of the teacher (strategy_a, strategy_b)."""
    from edgeskd.selection import apply_selection, select_dual

    run.b = run.new_student()
    dual = select_dual(run.teacher, run.a, strategy_a=run.config.strategy_a, strategy_b=run.config.strategy_b)
    apply_selection(run.a, dual.a)
    apply_selection(run.b, dual.b)
    run.selection_report = {"a": run.config.strategy_a, "b": run.config.strategy_b}
