"""The trainer: one method-agnostic loop for every training method (dual weight selection + SKD and the baselines).

Stage 1 ("skd") runs for `epochs_skd` epochs with the method's own loss on two augmented views x1, x2 of a batch.
Methods live in edgeskd/training/methods/ (one file each, a registry by name; base.py holds the protocol):
  dual-skd     CE(A(x1), y) + lambda * T^2 * KL(B(x2) || A(x1)); B is an EMA of A that starts from its own selection
  dml          the same for A with B a trained peer (not an EMA), and symmetrically for B (deep mutual learning)
  classic-kd   CE(A(x1), y) + lambda * T^2 * KL(teacher(x2) || A(x1)); the teacher is first fine-tuned on the task
  single-ws    CE(A(x1), y) from one weight selection (Xu et al.)
  random-init  CE(A(x1), y) from timm's random initialisation
The loop (_Loop) is split into stage -> epoch -> step, validation and checkpoint; train() prepares the data and the
run, and _final_evaluation restores the best epoch, evaluates and writes the outputs.
Stage 2 ("finetune") trains A alone with CE at lr * finetune_lr_scale for `epochs_finetune` epochs. Every method has
the same schedule, data, split and seed, so rows of a comparison differ only in initialisation and stage-1 loss.

Determinism: every epoch draws its shuffling, augmentation and dropout from a seed derived from (seed, stage, epoch),
so a run resumed from an epoch checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import copy
import json
import os
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
from edgeskd.models import Checkpoint, StudentSpec, create_model, family_of, save_checkpoint
from edgeskd.training.augment import augment_batch
from edgeskd.training.config import RUNTIME_FIELDS, TrainConfig
from edgeskd.training.device import (Accelerator, decide_channels_last, determinism, gather_batch,
                                     is_out_of_memory, out_of_memory_error, place)
from edgeskd.training.evaluation import evaluate_tensors, primary_metric
from edgeskd.training.losses import supervised_loss
from edgeskd.training.methods import get_method
from edgeskd.training.methods.base import (Method, Run, StepBatch, batch_indices, cosine, epoch_seed,
                                           make_optimizer)

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
    pinned: bool = False       # x, y in pinned host memory: batches are gathered there and copied asynchronously


# Preprocessed sets, kept so that the trials of a search (one process, the same DatasetSplits) preprocess each set
# once per resolution. Bounded by bytes; the entry keeps its ImageSet alive so an id is never reused for another set.
_CACHE: dict[tuple[int, str], tuple[Any, _Data]] = {}
_CACHE_BYTES = int(float(os.environ.get("EDGESKD_TENSOR_CACHE_MB", "2048")) * 2**20)


def _tensors(image_set, pre: PreprocessSpec) -> _Data:
    from edgeskd.data import to_tensors

    key = (id(image_set), json.dumps(pre.to_dict(), sort_keys=True))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is image_set and len(hit[1].x) == len(image_set.labels):
        _CACHE[key] = _CACHE.pop(key)  # most recently used last
        return hit[1]
    x, y = to_tensors(image_set, pre)
    data = _Data(torch.as_tensor(x).float(), torch.as_tensor(y), list(image_set.classes), bool(image_set.multilabel))
    size = data.x.element_size() * data.x.numel()
    if size <= _CACHE_BYTES // 2:
        _CACHE[key] = (image_set, data)
        while sum(d.x.element_size() * d.x.numel() for _, d in _CACHE.values()) > _CACHE_BYTES:
            _CACHE.pop(next(iter(_CACHE)))
    return data


def _placed(data: _Data, acc: Accelerator) -> _Data:
    """The set where the run computes (the cached CPU copy is never modified)."""
    x, pinned = place(data.x, acc)
    y = data.y.pin_memory() if pinned else data.y.to(x.device)
    return _Data(x, y, data.classes, data.multilabel, pinned)


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
            out[f"{prefix}{pid}.{key}"] = value.cpu() if torch.is_tensor(value) else torch.tensor(value)
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
    return {f"{prefix}{k}": v.detach().cpu().clone().contiguous() for k, v in state.items()}


def _unprefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def finetune_teacher(teacher: nn.Module, train: _Data, val: _Data | None, config: TrainConfig, *,
                     progress: bool = False, acc: Accelerator | None = None) -> nn.Module:
    """classic-kd's teacher: a copy of `teacher` with a new head, fine-tuned with CE on the labelled training set
    (on the config's device; the returned model stays there)."""
    from tqdm.auto import tqdm

    acc = acc or Accelerator.create(config.device, config.precision, config.deterministic)
    model = copy.deepcopy(teacher)
    gen = torch.Generator().manual_seed(epoch_seed(config.seed, -1, 0))
    torch.manual_seed(epoch_seed(config.seed, -1, 0))
    model.reset_classifier(len(train.classes))
    model.to(acc.device).train()
    data = _placed(train, acc)
    opt = make_optimizer(model.parameters(), config, config.teacher_lr)
    scaler = acc.new_scaler()
    per_epoch = len(batch_indices(len(train.x), config.batch_size, torch.Generator().manual_seed(0)))
    total, step = config.teacher_epochs * per_epoch, 0
    with determinism(acc):
        for epoch in tqdm(range(config.teacher_epochs), desc="teacher fine-tune", disable=not progress, leave=False):
            for idx in batch_indices(len(train.x), config.batch_size, gen):
                for group in opt.param_groups:
                    group["lr"] = cosine(step, total, config.teacher_lr)
                x = augment_batch(gather_batch(data.x, idx, acc.device, data.pinned), config.augment, config.hflip, gen)
                y = gather_batch(data.y, idx, acc.device, data.pinned)
                try:
                    with acc.autocast():
                        loss = supervised_loss(model(x), y, train.multilabel, config.label_smoothing)
                    if not torch.isfinite(loss):
                        raise TrainingError(f"teacher fine-tuning: CE loss is {loss.item()} at epoch {epoch} step "
                                            f"{step}{_amp_note(acc, scaler)}")
                    _backward_step(loss, [opt], [model], scaler, config.grad_clip)
                except Exception as exc:
                    if is_out_of_memory(exc):
                        raise out_of_memory_error(acc, config.batch_size, f"teacher fine-tuning step {step}",
                                                  exc) from exc
                    raise
                step += 1
    return model.eval()


def _backward_step(loss: torch.Tensor, opts: list[torch.optim.Optimizer], models: list[nn.Module],
                   scaler: torch.amp.GradScaler | None, grad_clip: float) -> None:
    """zero_grad, backward, clip, step for each (optimizer, model) pair; with a scaler under fp16 autocast."""
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
    if grad_clip:
        for opt, model in zip(opts, models):
            if scaler is not None:
                scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    for opt in opts:
        if scaler is None:
            opt.step()
        else:
            scaler.step(opt)  # skipped when the scaled gradients hold inf/NaN
    if scaler is not None:
        scaler.update()


def _amp_note(acc: Accelerator, scaler: torch.amp.GradScaler | None) -> str:
    if acc.amp_dtype is None:
        return ""
    note = f" under {acc.precision} autocast on {acc.device}"
    if scaler is not None:
        note += (f" (gradient scaler: scale {scaler.get_scale():g}, growth tracker "
                 f"{int(scaler.state_dict().get('_growth_tracker', 0))})")
    return note


def _check_finite(terms: dict[str, torch.Tensor], model: str, where: str, state_path: Path | None,
                  amp_note: str = "") -> None:
    for name, value in terms.items():
        if not torch.isfinite(value):
            kept = (f"the last good checkpoint is kept at {state_path}" if state_path and state_path.exists()
                    else "no epoch had completed, so there is no checkpoint")
            fix = "try --precision fp32, lower lr or kd_weight" if amp_note else "lower lr or kd_weight"
            raise TrainingError(f"loss term '{name}' of model {model} is {value.item()} at {where}{amp_note}; "
                                f"training stopped ({kept}); {fix}, or check the input images")


@dataclass
class _Stage:
    index: int
    name: str          # "skd" (the method's own losses) or "finetune" (CE on A)
    epochs: int
    peak_lr: float


class _Loop:
    """The method-agnostic loop: stages of epochs of steps, validation, checkpoints. `meta` is what resume restores."""

    def __init__(self, run: Run, method: Method, config: TrainConfig, monitor: str, meta: dict[str, Any],
                 saved: dict[str, torch.Tensor], out: Path | None, report, progress: bool, acc: Accelerator) -> None:
        self.run, self.method, self.config, self.monitor, self.acc = run, method, config, monitor, acc
        self.scaler = acc.new_scaler()
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        self.where = "start"
        self.meta, self.saved, self.out, self.report, self.progress = meta, saved, out, report, progress
        self.state_path = out / STATE_FILE if out is not None else None
        self.history: list[dict[str, Any]] = meta["history"]
        self.best_state = _unprefixed(saved, "best/") or None
        self.stages = [_Stage(0, "skd", config.epochs_skd, config.lr),
                       _Stage(1, "finetune", config.epochs_finetune, config.lr * config.finetune_lr_scale)]
        self.global_epoch = sum(s.epochs for s in self.stages[:meta["stage"]]) + meta["epoch"]
        self.opt_a: torch.optim.Optimizer | None = None
        self.opt_b: torch.optim.Optimizer | None = None

    def run_all(self) -> None:
        from tqdm.auto import tqdm

        total = sum(s.epochs for s in self.stages)
        self.bar = tqdm(total=total, initial=self.global_epoch, desc=f"train {self.config.method}",
                        disable=not self.progress)
        try:
            with determinism(self.acc):
                for stage in self.stages[self.meta["stage"]:]:
                    if self.meta["stopped_early"]:
                        break
                    self.run_stage(stage)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise out_of_memory_error(self.acc, self.config.batch_size, self.where, exc) from exc
            raise
        finally:
            self.bar.close()

    # -- one stage -----------------------------------------------------------------------------------------------
    def run_stage(self, stage: _Stage) -> None:
        run, config, meta = self.run, self.config, self.meta
        self.opt_a = make_optimizer(run.a.parameters(), config, stage.peak_lr)
        self.opt_b = make_optimizer(run.b.parameters(), config, stage.peak_lr) if self.method.trains_b(stage.name) \
            else None
        first_epoch = meta["epoch"] if stage.index == meta["stage"] else 0
        if self.saved and stage.index == meta["stage"] and first_epoch > 0:
            _load_opt(self.opt_a, self.saved, "optA/")
            if self.opt_b is not None:
                _load_opt(self.opt_b, self.saved, "optB/")
        per_epoch = len(batch_indices(len(run.train.x), config.batch_size, torch.Generator().manual_seed(0)))
        for epoch in range(first_epoch, stage.epochs):
            record = self.train_epoch(stage, epoch, per_epoch)
            self.global_epoch += 1
            record = {"epoch": self.global_epoch, **record}
            last_of_stage = epoch + 1 == stage.epochs
            validate = (epoch + 1) % config.val_every == 0 or last_of_stage
            if validate:
                self.validate(record)
            self.history.append(record)
            meta["stage"], meta["epoch"] = (stage.index + 1, 0) if last_of_stage else (stage.index, epoch + 1)
            stop_stage = validate and config.patience and meta["bad_epochs"] >= config.patience
            if stop_stage and not last_of_stage:
                # early stop ends the current stage: stage 1 moves on to fine-tuning, stage 2 ends the run
                record["early_stop"] = True
                meta["bad_epochs"] = 0
                meta["stage"], meta["epoch"] = stage.index + 1, 0
                if stage.name == "finetune" or config.epochs_finetune == 0:
                    meta["stopped_early"] = True
            self.save()
            self.bar.update(1)
            key = "val_" + self.monitor
            self.bar.set_postfix({self.monitor: f"{record.get(key, float('nan')):.4f}"} if validate else {})
            if validate and self.report is not None:
                self.report(self.global_epoch, float(record[key] or 0.0))
            if meta["stage"] != stage.index:
                if record.get("early_stop"):
                    self.bar.update(stage.epochs - epoch - 1)
                    self.global_epoch += stage.epochs - epoch - 1
                break

    # -- one epoch -----------------------------------------------------------------------------------------------
    def train_epoch(self, stage: _Stage, epoch: int, per_epoch: int) -> dict[str, Any]:
        from tqdm.auto import tqdm

        run, config, meta, method = self.run, self.config, self.meta, self.method
        seed = epoch_seed(config.seed, stage.index, epoch)
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # dropout / drop-path inside the models
        run.a.train()
        if run.b is not None:
            run.b.train()
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        batches = batch_indices(len(run.train.x), config.batch_size, gen)
        unl = run.unlabelled
        unl_order = torch.randperm(len(unl.x), generator=gen) if unl is not None and stage.name == "skd" else None
        n_unl = max(1, int(round(config.batch_size * config.unlabelled_ratio)))
        stage_steps = stage.epochs * per_epoch
        ramp = config.kd_ramp * stage_steps
        lr = stage.peak_lr
        for i, idx in enumerate(tqdm(batches, desc=f"{stage.name} {epoch + 1}/{stage.epochs}", leave=False,
                                     disable=not self.progress)):
            step_in_stage = epoch * per_epoch + i
            lr = cosine(step_in_stage, stage_steps, stage.peak_lr)
            for opt in (self.opt_a, self.opt_b):
                if opt is not None:
                    for group in opt.param_groups:
                        group["lr"] = lr
            kd_scale = config.kd_weight * (min(1.0, (step_in_stage + 1) / ramp) if ramp >= 1 else 1.0)
            xu = None
            if unl_order is not None:
                xu = run.batch_x(unl, unl_order[(i * n_unl) % len(unl_order):][:n_unl])
            batch = StepBatch(run.batch_x(run.train, idx), run.batch_y(run.train, idx), xu, kd_scale, gen)
            self.where = f"stage '{stage.name}' epoch {epoch + 1} batch {i + 1} (global step {meta['step'] + 1})"
            terms_a, terms_b = self.step(stage, batch, self.where)
            meta["step"] += 1
            for name, value in terms_a.items():
                sums[f"loss_{name}"] = sums.get(f"loss_{name}", 0.0) + value.item()
            for name, value in terms_b.items():
                sums[f"loss_b_{name}"] = sums.get(f"loss_b_{name}", 0.0) + value.item()
        return {"stage": stage.name, "stage_epoch": epoch + 1, "step": meta["step"], "lr_end": lr,
                **{k: v / max(len(batches), 1) for k, v in sums.items()},
                "train_seconds": round(time.perf_counter() - t0, 3)}

    def step(self, stage: _Stage, batch: StepBatch, where: str) -> tuple[dict[str, torch.Tensor], ...]:
        run = self.run
        with self.acc.autocast():
            terms_a, terms_b = self.method.losses(run, stage.name, batch)
        note = _amp_note(self.acc, self.scaler)
        _check_finite(terms_a, "A", where, self.state_path, note)
        _check_finite(terms_b, "B", where, self.state_path, note)
        loss = sum(terms_a.values()) + (sum(terms_b.values()) if terms_b else 0)
        opts, models = [self.opt_a], [run.a]
        if self.opt_b is not None:
            opts.append(self.opt_b)
            models.append(run.b)
        _backward_step(loss, opts, models, self.scaler, self.config.grad_clip)
        self.method.after_step(run, stage.name)
        return terms_a, terms_b

    # -- validation and checkpoint -------------------------------------------------------------------------------
    def validate(self, record: dict[str, Any]) -> None:
        run, meta, monitor = self.run, self.meta, self.monitor
        vm = evaluate_tensors(run.a, run.val.x, run.val.y, run.val.classes, run.val.multilabel,
                              batch_size=self.config.eval_batch_size)
        value = vm[monitor]
        record.update({"val_" + monitor: value, "val_accuracy": vm["accuracy"], "val_nll": vm.get("nll"),
                       "val_ece": vm["ece"]})
        if meta["best"] is None or (value is not None and value > meta["best"]):
            meta["best"], meta["best_epoch"], meta["bad_epochs"] = value, self.global_epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in run.a.state_dict().items()}
        else:
            meta["bad_epochs"] += 1

    def save(self) -> None:
        if self.scaler is not None:
            self.meta["scaler"] = self.scaler.state_dict()
        if self.out is not None:
            _write_state(self.state_path, self.run, self.opt_a, self.opt_b, self.best_state, self.meta, self.config)
            _write_log(self.out, self.history)


def train(spec: StudentSpec, data, teacher: nn.Module, config: TrainConfig | None = None, *,
          out_dir: str | Path | None = None, report: Callable[[int, float], None] | None = None,
          resume: bool = False, progress: bool = True, kd_teacher: nn.Module | None = None) -> TrainResult:
    """Train a student of `spec` on `data` (a DatasetSplits) with `config.method`; see the module docstring.

    report(epoch, val_metric) is called after each validation (epoch counts over both stages from 1); it may raise
    (e.g. optuna.TrialPruned) to stop the run: the epoch's state is saved first and the exception propagates.
    `kd_teacher` gives a method that needs one (classic-kd) an already fine-tuned teacher (comparisons fine-tune it
    once per seed).
    """
    config = config or TrainConfig()
    config.validate()
    method = get_method(config.method)
    acc = Accelerator.create(config.device, config.precision, config.deterministic)  # errors before any work
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

    if method.needs_kd_teacher and kd_teacher is None:
        kd_teacher = _cached_teacher(out, teacher, train_d, val_d, config, progress, acc)
    run = Run(spec, teacher, config, method, _placed(train_d, acc), val_d,
              _placed(unl, acc) if unl is not None else None,
              kd_teacher if method.needs_kd_teacher else None, progress)
    _to_device(run, acc, meta, config)
    if saved:
        run.a.load_state_dict(_unprefixed(saved, "A/"))
        if run.b is not None:
            run.b.load_state_dict(_unprefixed(saved, "B/"))
    else:
        method.prepare(run)
    loop = _Loop(run, method, config, monitor, meta, saved, out, report, progress, acc)
    loop.run_all()
    return _final_evaluation(run, loop, data, pre, config, monitor, out, started)


def _to_device(run: Run, acc: Accelerator, meta: dict[str, Any], config: TrainConfig) -> None:
    """Move the run's models to the device and settle the memory format (a resumed run keeps its recorded one)."""
    run.device = acc.device
    models = [m for m in (run.a, run.b, run.kd_teacher) if m is not None]
    for model in models:
        model.to(acc.device)
    if "runtime" in meta:
        acc.channels_last = bool(meta["runtime"]["channels_last"])
        meta["runtime"] = {**acc.describe(), "probe": {"decided_by": "resumed run"}}
    else:
        spec = run.spec
        # keyed by architecture family, not each student's shape: the layout's speed is a property of the conv kernels
        # at this resolution and batch, and a search would otherwise pay a probe for every candidate
        key = f"{spec.teacher}-family|c{spec.in_chans}"
        acc.channels_last, how = decide_channels_last(config.channels_last, run.a, key, spec.resolution,
                                                      spec.in_chans, config.batch_size, acc)
        meta["runtime"] = {**acc.describe(), "probe": how}
    run.channels_last = acc.channels_last
    if acc.channels_last:
        for model in models:
            model.to(memory_format=torch.channels_last)


def _final_evaluation(run: Run, loop: _Loop, data, pre: PreprocessSpec, config: TrainConfig, monitor: str,
                      out: Path | None, started: float) -> TrainResult:
    """Restore the best epoch, evaluate on val and test, write the checkpoint, metrics and plots."""
    meta, history = loop.meta, loop.history
    if config.restore_best and loop.best_state is not None:
        run.a.load_state_dict(loop.best_state)
    run.a.eval()
    val_d = run.val
    try:
        metrics = {"val": evaluate_tensors(run.a, val_d.x, val_d.y, val_d.classes, val_d.multilabel,
                                           batch_size=config.eval_batch_size), "test": None}
        if len(data.test.labels):
            test_d = _tensors(data.test, pre)
            metrics["test"] = evaluate_tensors(run.a, test_d.x, test_d.y, test_d.classes, test_d.multilabel,
                                               batch_size=config.eval_batch_size)
    except Exception as exc:
        if is_out_of_memory(exc):
            raise TrainingError(f"out of memory on {run.device} evaluating with eval_batch_size "
                                f"{config.eval_batch_size}; try --config with a smaller eval_batch_size, e.g. "
                                f"{max(1, config.eval_batch_size // 4)}") from exc
        raise
    # the returned model and the checkpoint are plain: CPU, default memory format
    run.a.to("cpu", memory_format=torch.contiguous_format)
    seconds = time.perf_counter() - started
    info = {"teacher": type(run.teacher).__name__, "teacher_arch": run.spec.teacher, "method": config.method,
            "strategies": run.selection_report, "config": config.to_dict(), "best_epoch": meta["best_epoch"],
            "monitor": monitor, "dataset": data.name, "runtime": meta.get("runtime"),
            "metrics": {split: _summary(m) for split, m in metrics.items() if m is not None}}
    ckpt_path = None
    if out is not None:
        ckpt_path = save_checkpoint(out / "model.safetensors", Checkpoint(run.a, run.spec, pre, val_d.classes, info))
        atomic_write_json(out / "metrics.json", {"method": config.method, "best_epoch": meta["best_epoch"],
                                                  "monitor": monitor, **metrics})
        from edgeskd.training.plots import save_plots

        save_plots(out, history, metrics, monitor)
    return TrainResult(run.a, metrics, history, ckpt_path, seconds, config, pre, meta["stopped_early"], info)


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in ("n", "accuracy", "balanced_accuracy", "macro_f1", "auroc_macro", "ece") if k in m}


def _cached_teacher(out: Path | None, teacher: nn.Module, train_d: _Data, val_d: _Data, config: TrainConfig,
                    progress: bool, acc: Accelerator) -> nn.Module:
    """Fine-tune classic-kd's teacher once per run folder (resume reuses it)."""
    path = out / "teacher_finetuned.safetensors" if out is not None else None
    if path is not None and path.exists():
        model = copy.deepcopy(teacher)
        model.reset_classifier(len(train_d.classes))
        model.load_state_dict(load_tensors(path, TrainingError, "fine-tuned teacher")[0])
        return model.eval()
    model = finetune_teacher(teacher, train_d, val_d, config, progress=progress, acc=acc)
    if path is not None:
        save_tensors(path, {k: v.cpu() for k, v in model.state_dict().items()})
    return model


def _write_state(path: Path, run: Run, opt_a, opt_b, best_state, meta: dict[str, Any], config: TrainConfig) -> None:
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
    # a key the saved run lacks had its default then (it predates the key); runtime fields may change on resume
    defaults = TrainConfig().to_dict()
    saved_config = {**defaults, **parse_json(header.get("config"), TrainingError, f"training state {path}: 'config'")}
    now = config.to_dict()
    diff = {k: (saved_config.get(k), v) for k, v in now.items()
            if k not in RUNTIME_FIELDS and saved_config.get(k) != v}
    diff.update({k: (saved_config[k], None) for k in set(saved_config) - set(now) if k != "method_options"})
    if diff:
        raise TrainingError(f"--resume: the run in {path.parent} used a different config (saved, now): {diff}")
    return tensors, parse_json(header.get("meta"), TrainingError, f"training state {path}: 'meta'")


def _write_log(out: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_text(out / "log.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in history))
