"""The trainer: dual weight selection -> SKD stage -> fine-tuning stage, and the baselines, in one loop.

Stage 1 ("skd") runs for `epochs_skd` epochs with the method's own loss on two augmented views x1, x2 of a batch:
  dual-skd     CE(A(x1), y) + lambda * T^2 * KL(B(x2) || A(x1)); B is an EMA of A that starts from its own selection
  dml          the same for A with B a trained peer (not an EMA), and symmetrically for B (deep mutual learning)
  classic-kd   CE(A(x1), y) + lambda * T^2 * KL(teacher(x2) || A(x1)); the teacher is first fine-tuned on the task
  single-ws    CE(A(x1), y) from one weight selection (Xu et al.)
  random-init  CE(A(x1), y) from timm's random initialisation
Stage 2 ("finetune") trains A alone with CE at lr * finetune_lr_scale for `epochs_finetune` epochs. Every method has
the same schedule, data, split and seed, so rows of a comparison differ only in initialisation and stage-1 loss.

Determinism: every epoch draws its shuffling, augmentation and dropout from a seed derived from (seed, stage, epoch),
so a run resumed from an epoch checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from edgeskd._io import atomic_write_json, atomic_write_text, load_tensors, save_tensors
from edgeskd._json import parse_json
from edgeskd.data.preprocess import PreprocessSpec
from edgeskd.errors import ModelError, TrainingError
from edgeskd.models import Checkpoint, StudentSpec, build_student, create_model, family_of, save_checkpoint
from edgeskd.training.augment import augment_batch
from edgeskd.training.config import TrainConfig
from edgeskd.training.evaluation import evaluate_tensors, primary_metric
from edgeskd.training.losses import distillation_loss, supervised_loss

STATE_FILE = "state.safetensors"
STATE_FORMAT = "edgeskd.train-state/1"
STAGES = ("skd", "finetune")


@dataclass
class TrainResult:
    model: nn.Module                      # A, from the best validated epoch when config.restore_best
    metrics: dict[str, Any]               # {"val": evaluate(...), "test": evaluate(...) or None}
    history: list[dict[str, Any]]         # one record per epoch (also in log.jsonl)
    checkpoint: Path | None               # model.safetensors (edgeskd checkpoint), when out_dir was given
    seconds: float
    config: TrainConfig
    preprocess: PreprocessSpec
    stopped_early: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Data:
    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    multilabel: bool


def _tensors(image_set, pre: PreprocessSpec) -> _Data:
    from edgeskd.data import to_tensors

    x, y = to_tensors(image_set, pre)
    return _Data(torch.as_tensor(x).float(), torch.as_tensor(y), list(image_set.classes), bool(image_set.multilabel))


def _epoch_seed(seed: int, stage: int, epoch: int) -> int:
    digest = hashlib.sha256(f"{seed}/{stage}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def _cosine(step: int, total: int, peak: float) -> float:
    return peak * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def check_compatible(spec: StudentSpec, teacher: nn.Module, classes: list[str]) -> None:
    """Clear errors for a teacher/student family mismatch and a label count that does not fit the head."""
    with torch.device("meta"):
        reference = create_model(spec.teacher)
    student_family, teacher_family = family_of(reference, spec.teacher), family_of(teacher)
    if student_family != teacher_family:
        raise ModelError(f"teacher is a {teacher_family} model ({type(teacher).__name__}) but the student is built from "
                         f"{spec.teacher!r}, a {student_family} model; weight selection needs one family: set the "
                         f"student's teacher to the teacher's architecture")
    if len(classes) != spec.num_classes:
        raise TrainingError(f"the dataset has {len(classes)} classes ({', '.join(classes[:8])}"
                            f"{', ...' if len(classes) > 8 else ''}) but the student head has {spec.num_classes} "
                            f"outputs (StudentSpec.num_classes={spec.num_classes}); set num_classes={len(classes)}")


def _opt_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    out = {}
    for pid, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            out[f"{prefix}{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def _load_opt(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix):
            pid, key = name[len(prefix):].split(".", 1)
            state.setdefault(int(pid), {})[key] = value
    sd["state"] = state
    opt.load_state_dict(sd)


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().clone().contiguous() for k, v in state.items()}


def _unprefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, momentum: float) -> None:
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.mul_(momentum).add_(m.detach(), alpha=1 - momentum)
        else:
            e.copy_(m)


def _make_optimizer(params, config: TrainConfig, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=generator)
    chunks = list(perm.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < 2:  # a batch of one breaks BatchNorm in train mode
        chunks = chunks[:-1]
    return chunks


def finetune_teacher(teacher: nn.Module, train: _Data, val: _Data | None, config: TrainConfig, *,
                     progress: bool = False) -> nn.Module:
    """classic-kd's teacher: a copy of `teacher` with a new head, fine-tuned with CE on the labelled training set."""
    from tqdm.auto import tqdm

    model = copy.deepcopy(teacher)
    gen = torch.Generator().manual_seed(_epoch_seed(config.seed, -1, 0))
    torch.manual_seed(_epoch_seed(config.seed, -1, 0))
    model.reset_classifier(len(train.classes))
    model.train()
    opt = _make_optimizer(model.parameters(), config, config.teacher_lr)
    per_epoch = len(_batches(len(train.x), config.batch_size, torch.Generator().manual_seed(0)))
    total, step = config.teacher_epochs * per_epoch, 0
    for epoch in tqdm(range(config.teacher_epochs), desc="teacher fine-tune", disable=not progress, leave=False):
        for idx in _batches(len(train.x), config.batch_size, gen):
            for group in opt.param_groups:
                group["lr"] = _cosine(step, total, config.teacher_lr)
            x = augment_batch(train.x[idx], config.augment, config.hflip, gen)
            loss = supervised_loss(model(x), train.y[idx], train.multilabel, config.label_smoothing)
            if not torch.isfinite(loss):
                raise TrainingError(f"teacher fine-tuning: CE loss is {loss.item()} at epoch {epoch} step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            step += 1
    return model.eval()


class _Run:
    """One training run's models, optimizers and bookkeeping."""

    def __init__(self, spec: StudentSpec, teacher: nn.Module, config: TrainConfig, train: _Data, val: _Data,
                 unlabelled: _Data | None, kd_teacher: nn.Module | None, progress: bool) -> None:
        self.spec, self.teacher, self.config = spec, teacher, config
        self.train, self.val, self.unlabelled = train, val, unlabelled
        self.progress = progress
        self.multilabel = train.multilabel
        torch.manual_seed(config.seed)
        self.a = build_student(spec, teacher)
        self.b: nn.Module | None = None
        self.kd_teacher = kd_teacher
        self.selection_report: dict[str, Any] = {}
        self._initialise()

    def _initialise(self) -> None:
        cfg = self.config
        if cfg.head_init == "zero":
            with torch.no_grad():
                for p in self.a.get_classifier().parameters():
                    p.zero_()
        if cfg.method in ("single-ws", "classic-kd"):
            from edgeskd.selection import apply_selection, select_weights

            sel = select_weights(self.teacher, self.a, cfg.strategy_a)
            apply_selection(self.a, sel)
            self.selection_report = {"a": cfg.strategy_a}
        elif cfg.method in ("dual-skd", "dml"):
            from edgeskd.selection import apply_selection, select_dual

            self.b = build_student(self.spec, self.teacher)
            if cfg.head_init == "zero":
                with torch.no_grad():
                    for p in self.b.get_classifier().parameters():
                        p.zero_()
            dual = select_dual(self.teacher, self.a, strategy_a=cfg.strategy_a, strategy_b=cfg.strategy_b)
            apply_selection(self.a, dual.a)
            apply_selection(self.b, dual.b)
            self.selection_report = {"a": cfg.strategy_a, "b": cfg.strategy_b}
            if cfg.method == "dual-skd":
                if cfg.b_init == "copy-a":
                    self.b.load_state_dict(self.a.state_dict())
                else:
                    # the head is never selected: B gets A's (random) head so the first KL targets are not noise
                    self.b.get_classifier().load_state_dict(self.a.get_classifier().state_dict())
                for p in self.b.parameters():
                    p.requires_grad_(False)
        if cfg.method == "classic-kd" and self.kd_teacher is None:
            raise TrainingError("classic-kd needs a teacher fine-tuned on the task (train() makes one)")

    def probe_b(self) -> None:
        """dual-skd with b_probe_epochs: fit only B's head on the labels, so B's own subset speaks from step 0."""
        cfg = self.config
        head = self.b.get_classifier()
        for p in head.parameters():
            p.requires_grad_(True)
        opt = _make_optimizer(head.parameters(), cfg, cfg.lr)
        gen = torch.Generator().manual_seed(_epoch_seed(cfg.seed, -2, 0))
        self.b.train()
        for _ in range(cfg.b_probe_epochs):
            for idx in _batches(len(self.train.x), cfg.batch_size, gen):
                x = augment_batch(self.train.x[idx], cfg.augment, cfg.hflip, gen)
                loss = supervised_loss(self.b(x), self.train.y[idx], self.multilabel, cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        for p in head.parameters():
            p.requires_grad_(False)

    # -- one step --------------------------------------------------------------------------------------------------
    def step_losses(self, stage: str, xl: torch.Tensor, yl: torch.Tensor, xu: torch.Tensor | None,
                    kd_scale: float, gen: torch.Generator) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Loss terms for A (and for B in dml) on one labelled batch plus an optional unlabelled batch."""
        cfg = self.config
        x_all = xl if xu is None else torch.cat([xl, xu])
        x1 = augment_batch(x_all, cfg.augment, cfg.hflip, gen)
        n = len(xl)
        terms_a: dict[str, torch.Tensor] = {}
        terms_b: dict[str, torch.Tensor] = {}
        kd_method = stage == "skd" and cfg.method in ("dual-skd", "dml", "classic-kd") and cfg.kd_weight > 0
        if not kd_method:
            logits = self.a(x1[:n])  # unlabelled images carry no signal without a KD term
            terms_a["ce"] = supervised_loss(logits, yl, self.multilabel, cfg.label_smoothing)
            return terms_a, terms_b
        x2 = augment_batch(x_all, cfg.augment, cfg.hflip, gen)
        logits_a = self.a(x1)
        terms_a["ce"] = supervised_loss(logits_a[:n], yl, self.multilabel, cfg.label_smoothing)
        if cfg.method == "dml":
            logits_b = self.b(x2)
            terms_b["ce"] = supervised_loss(logits_b[:n], yl, self.multilabel, cfg.label_smoothing)
            terms_a["kd"] = kd_scale * distillation_loss(logits_a, logits_b.detach(), cfg.temperature, self.multilabel)
            terms_b["kd"] = kd_scale * distillation_loss(logits_b, logits_a.detach(), cfg.temperature, self.multilabel)
        else:
            source = self.b if cfg.method == "dual-skd" else self.kd_teacher
            with torch.no_grad():
                target = source(x2)
            terms_a["kd"] = kd_scale * distillation_loss(logits_a, target, cfg.temperature, self.multilabel)
        return terms_a, terms_b


def _check_finite(terms: dict[str, torch.Tensor], model: str, where: str, state_path: Path | None) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value):
            kept = (f"the last good checkpoint is kept at {state_path}" if state_path and state_path.exists()
                    else "no epoch had completed, so there is no checkpoint")
            raise TrainingError(f"loss term '{name}' of model {model} is {value.item()} at {where}; training stopped "
                                f"({kept}); lower lr or kd_weight, or check the input images")


def train(spec: StudentSpec, data, teacher: nn.Module, config: TrainConfig | None = None, *,
          out_dir: str | Path | None = None, report: Callable[[int, float], None] | None = None,
          resume: bool = False, progress: bool = True, kd_teacher: nn.Module | None = None) -> TrainResult:
    """Train a student of `spec` on `data` (a DatasetSplits) with `config.method`; see the module docstring.

    report(epoch, val_metric) is called after each validation (epoch counts over both stages from 1); it may raise
    (e.g. optuna.TrialPruned) to stop the run: the epoch's state is saved first and the exception propagates.
    `kd_teacher` gives classic-kd an already fine-tuned teacher (comparisons fine-tune it once per seed).
    """
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    config.validate()
    started = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise TrainingError("--resume needs the run's output folder (out_dir)")
    classes = list(data.train.classes)
    check_compatible(spec, teacher, classes)
    if len(data.val.labels) == 0:
        raise TrainingError(f"dataset {data.name!r} has an empty validation split; the trainer validates every epoch")
    pre = PreprocessSpec.for_model(teacher, size=spec.resolution, channels=spec.in_chans)
    train_d, val_d = _tensors(data.train, pre), _tensors(data.val, pre)
    if not train_d.multilabel and (int(train_d.y.min()) < 0 or int(train_d.y.max()) >= spec.num_classes):
        raise TrainingError(f"training labels span {int(train_d.y.min())}..{int(train_d.y.max())} but the head has "
                            f"{spec.num_classes} outputs")
    unl = None
    if config.use_unlabelled and data.unlabelled is not None and len(data.unlabelled.labels):
        unl = _tensors(data.unlabelled, pre)
    monitor = primary_metric(config.monitor, train_d.multilabel)

    state_path = out / STATE_FILE if out is not None else None
    saved: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"stage": 0, "epoch": 0, "step": 0, "history": [], "best": None, "best_epoch": None,
                            "bad_epochs": 0, "stopped_early": False}
    if resume and state_path is not None and state_path.exists():
        saved, meta = _read_state(state_path, config)
    elif resume:
        raise TrainingError(f"--resume: no training state at {state_path}")

    if config.method == "classic-kd" and kd_teacher is None:
        kd_teacher = _cached_teacher(out, teacher, train_d, val_d, config, progress)
    run = _Run(spec, teacher, config, train_d, val_d, unl, kd_teacher, progress)
    if saved:
        run.a.load_state_dict(_unprefixed(saved, "A/"))
        if run.b is not None:
            run.b.load_state_dict(_unprefixed(saved, "B/"))
    elif config.method == "dual-skd" and config.b_probe_epochs and config.epochs_skd:
        run.probe_b()
    best_state = _unprefixed(saved, "best/") or None

    history: list[dict[str, Any]] = meta["history"]
    stages = [("skd", config.epochs_skd, config.lr), ("finetune", config.epochs_finetune,
                                                       config.lr * config.finetune_lr_scale)]
    total_epochs = config.epochs_skd + config.epochs_finetune
    global_epoch = sum(e for _, e, _ in stages[:meta["stage"]]) + meta["epoch"]
    bar = tqdm(total=total_epochs, initial=global_epoch, desc=f"train {config.method}", disable=not progress)
    try:
        for stage_idx in range(meta["stage"], len(stages)):
            stage, epochs, peak = stages[stage_idx]
            if meta["stopped_early"]:
                break
            trainable_b = stage == "skd" and config.method == "dml"
            opt_a = _make_optimizer(run.a.parameters(), config, peak)
            opt_b = _make_optimizer(run.b.parameters(), config, peak) if trainable_b else None
            first_epoch = meta["epoch"] if stage_idx == meta["stage"] else 0
            if saved and stage_idx == meta["stage"] and first_epoch > 0:
                _load_opt(opt_a, saved, "optA/")
                if opt_b is not None:
                    _load_opt(opt_b, saved, "optB/")
            per_epoch = len(_batches(len(train_d.x), config.batch_size, torch.Generator().manual_seed(0)))
            stage_steps = epochs * per_epoch
            for epoch in range(first_epoch, epochs):
                seed = _epoch_seed(config.seed, stage_idx, epoch)
                gen = torch.Generator().manual_seed(seed)
                torch.manual_seed(seed)  # dropout / drop-path inside the models
                run.a.train()
                if run.b is not None:
                    run.b.train()
                sums: dict[str, float] = {}
                t0 = time.perf_counter()
                batches = _batches(len(train_d.x), config.batch_size, gen)
                unl_order = torch.randperm(len(unl.x), generator=gen) if unl is not None and stage == "skd" else None
                n_unl = max(1, int(round(config.batch_size * config.unlabelled_ratio)))
                for i, idx in enumerate(tqdm(batches, desc=f"{stage} {epoch + 1}/{epochs}", leave=False,
                                             disable=not progress)):
                    step_in_stage = epoch * per_epoch + i
                    lr = _cosine(step_in_stage, stage_steps, peak)
                    for opt in (opt_a, opt_b):
                        if opt is not None:
                            for group in opt.param_groups:
                                group["lr"] = lr
                    ramp = config.kd_ramp * stage_steps
                    kd_scale = config.kd_weight * (min(1.0, (step_in_stage + 1) / ramp) if ramp >= 1 else 1.0)
                    xu = None
                    if unl_order is not None:
                        take = unl_order[(i * n_unl) % len(unl_order):][:n_unl]
                        xu = unl.x[take]
                    terms_a, terms_b = run.step_losses(stage, train_d.x[idx], train_d.y[idx], xu, kd_scale, gen)
                    where = f"stage '{stage}' epoch {epoch + 1} batch {i + 1} (global step {meta['step'] + 1})"
                    _check_finite(terms_a, "A", where, state_path)
                    _check_finite(terms_b, "B", where, state_path)
                    loss = sum(terms_a.values()) + (sum(terms_b.values()) if terms_b else 0)
                    opt_a.zero_grad(set_to_none=True)
                    if opt_b is not None:
                        opt_b.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.grad_clip:
                        nn.utils.clip_grad_norm_(run.a.parameters(), config.grad_clip)
                        if opt_b is not None:
                            nn.utils.clip_grad_norm_(run.b.parameters(), config.grad_clip)
                    opt_a.step()
                    if opt_b is not None:
                        opt_b.step()
                    if stage == "skd" and config.method == "dual-skd":
                        _ema_update(run.b, run.a, config.ema_momentum)
                    meta["step"] += 1
                    for name, value in terms_a.items():
                        sums[f"loss_{name}"] = sums.get(f"loss_{name}", 0.0) + value.item()
                    for name, value in terms_b.items():
                        sums[f"loss_b_{name}"] = sums.get(f"loss_b_{name}", 0.0) + value.item()
                global_epoch += 1
                record: dict[str, Any] = {"epoch": global_epoch, "stage": stage, "stage_epoch": epoch + 1,
                                          "step": meta["step"], "lr_end": lr,
                                          **{k: v / max(len(batches), 1) for k, v in sums.items()},
                                          "train_seconds": round(time.perf_counter() - t0, 3)}
                last_of_stage = epoch + 1 == epochs
                validate = (epoch + 1) % config.val_every == 0 or last_of_stage
                if validate:
                    vm = evaluate_tensors(run.a, val_d.x, val_d.y, val_d.classes, val_d.multilabel,
                                          batch_size=config.eval_batch_size)
                    value = vm[monitor]
                    record.update({"val_" + monitor: value, "val_accuracy": vm["accuracy"], "val_nll": vm.get("nll"),
                                   "val_ece": vm["ece"]})
                    if meta["best"] is None or (value is not None and value > meta["best"]):
                        meta["best"], meta["best_epoch"], meta["bad_epochs"] = value, global_epoch, 0
                        best_state = {k: v.detach().clone() for k, v in run.a.state_dict().items()}
                    else:
                        meta["bad_epochs"] += 1
                history.append(record)
                meta["stage"], meta["epoch"] = (stage_idx + 1, 0) if last_of_stage else (stage_idx, epoch + 1)
                stop_stage = validate and config.patience and meta["bad_epochs"] >= config.patience
                if stop_stage and not last_of_stage:
                    # early stop ends the current stage: stage 1 moves on to fine-tuning, stage 2 ends the run
                    record["early_stop"] = True
                    meta["bad_epochs"] = 0
                    meta["stage"], meta["epoch"] = stage_idx + 1, 0
                    if stage == "finetune" or config.epochs_finetune == 0:
                        meta["stopped_early"] = True
                if out is not None:
                    _write_state(state_path, run, opt_a, opt_b, best_state, meta, config)
                    _write_log(out, history)
                bar.update(1)
                bar.set_postfix({monitor: f"{record.get('val_' + monitor, float('nan')):.4f}"} if validate else {})
                if validate and report is not None:
                    report(global_epoch, float(record["val_" + monitor] or 0.0))
                if meta["stage"] != stage_idx:
                    if record.get("early_stop"):
                        bar.update(epochs - epoch - 1)
                        global_epoch += epochs - epoch - 1
                    break
    finally:
        bar.close()

    if config.restore_best and best_state is not None:
        run.a.load_state_dict(best_state)
    run.a.eval()
    metrics = {"val": evaluate_tensors(run.a, val_d.x, val_d.y, val_d.classes, val_d.multilabel,
                                       batch_size=config.eval_batch_size), "test": None}
    if len(data.test.labels):
        test_d = _tensors(data.test, pre)
        metrics["test"] = evaluate_tensors(run.a, test_d.x, test_d.y, test_d.classes, test_d.multilabel,
                                           batch_size=config.eval_batch_size)
    seconds = time.perf_counter() - started
    info = {"teacher": type(teacher).__name__, "teacher_arch": spec.teacher, "method": config.method,
            "strategies": run.selection_report, "config": config.to_dict(), "best_epoch": meta["best_epoch"],
            "monitor": monitor, "dataset": data.name,
            "metrics": {split: _summary(m) for split, m in metrics.items() if m is not None}}
    ckpt_path = None
    if out is not None:
        ckpt_path = save_checkpoint(out / "model.safetensors", Checkpoint(run.a, spec, pre, classes, info))
        atomic_write_json(out / "metrics.json", {"method": config.method, "best_epoch": meta["best_epoch"],
                                                  "monitor": monitor, **metrics})
        from edgeskd.training.plots import save_plots

        save_plots(out, history, metrics, monitor)
    return TrainResult(run.a, metrics, history, ckpt_path, seconds, config, pre, meta["stopped_early"], info)


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in ("n", "accuracy", "balanced_accuracy", "macro_f1", "auroc_macro", "ece") if k in m}


def _cached_teacher(out: Path | None, teacher: nn.Module, train_d: _Data, val_d: _Data, config: TrainConfig,
                    progress: bool) -> nn.Module:
    """Fine-tune classic-kd's teacher once per run folder (resume reuses it)."""
    path = out / "teacher_finetuned.safetensors" if out is not None else None
    if path is not None and path.exists():
        model = copy.deepcopy(teacher)
        model.reset_classifier(len(train_d.classes))
        model.load_state_dict(load_tensors(path, TrainingError, "fine-tuned teacher")[0])
        return model.eval()
    model = finetune_teacher(teacher, train_d, val_d, config, progress=progress)
    if path is not None:
        save_tensors(path, model.state_dict())
    return model


def _write_state(path: Path, run: _Run, opt_a, opt_b, best_state, meta: dict[str, Any], config: TrainConfig) -> None:
    tensors = _prefixed(run.a.state_dict(), "A/")
    if run.b is not None:
        tensors.update(_prefixed(run.b.state_dict(), "B/"))
    if best_state is not None:
        tensors.update(_prefixed(best_state, "best/"))
    if meta["epoch"] > 0:  # optimizer state only matters inside a stage; a new stage starts a new optimizer
        tensors.update(_opt_tensors(opt_a, "optA/"))
        if opt_b is not None:
            tensors.update(_opt_tensors(opt_b, "optB/"))
    header = {"format": STATE_FORMAT, "meta": json.dumps(meta, default=str), "config": json.dumps(config.to_dict())}
    save_tensors(path, tensors, header)


def _read_state(path: Path, config: TrainConfig) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, header = load_tensors(path, TrainingError, "training state")
    if header.get("format") != STATE_FORMAT:
        raise TrainingError(f"{path} is not an edgeskd training state (format {header.get('format')!r})")
    saved_config = parse_json(header.get("config"), TrainingError, f"training state {path}: 'config'")
    if saved_config != config.to_dict():
        diff = {k: (saved_config.get(k), v) for k, v in config.to_dict().items() if saved_config.get(k) != v}
        raise TrainingError(f"--resume: the run in {path.parent} used a different config (saved, now): {diff}")
    return tensors, parse_json(header.get("meta"), TrainingError, f"training state {path}: 'meta'")


def _write_log(out: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_text(out / "log.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in history))
