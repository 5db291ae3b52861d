"""Training configuration: every coefficient of every method, with its default and why.

Defaults marked (ablation) were chosen by benchmarks/ablation_skd.py (results in benchmarks/results/); see
docs/training.md for what comes from the paper and what is our choice.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edgeskd.errors import TrainingError
from edgeskd.training.methods import builtin_methods, get_method, is_method

# dual-skd and ssl-skd are ours (after Tsutsumi et al.); the others are the baselines the same trainer runs for
# comparison. The default is single-ws: at converged schedules no SKD variant beat weight selection alone by more than
# the seed spread (benchmarks/results/ablation_converged.md, docs/training.md), and SKD costs more per step.
# One file per method in edgeskd/training/methods/ (the registry); this is the built-in list, read from file names.
METHODS = builtin_methods()
B_INITS = ("selection", "copy-a")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SWITCHES = ("auto", "on", "off")
# fields that only say where the run computes: a run may resume on another device
RUNTIME_FIELDS = ("device",)


@dataclass
class TrainConfig:
    method: str = "single-ws"
    method_options: dict[str, Any] = field(default_factory=dict)  # options the method declares (--method-option)
    # weight selection (edgeskd.selection strategy strings): A ships, B is the auxiliary model of dual-skd / dml
    strategy_a: str = "uniform+first"
    strategy_b: str = "uniform:offset=1+even"
    # schedule: stage 1 is SKD for dual-skd and the method's own loss for the baselines (same length for all, so
    # every method sees the same number of steps); stage 2 fine-tunes A alone with CE at a lower learning rate.
    epochs_skd: int = 24
    epochs_finetune: int = 6
    lr: float = 1e-3                 # AdamW peak learning rate of stage 1 (cosine decay per stage)
    finetune_lr_scale: float = 0.3   # stage-2 peak learning rate = lr * this
    weight_decay: float = 0.05
    batch_size: int = 64
    grad_clip: float = 5.0           # max gradient norm (0 = off)
    label_smoothing: float = 0.0     # on every CE term (single-label tasks)
    # self-knowledge distillation (dual-skd), also used by classic-kd (teacher) and dml (peer)
    temperature: float = 2.0
    kd_weight: float = 1.0           # lambda in CE + lambda * T^2 * KL
    kd_ramp: float = 0.3             # fraction of stage-1 steps over which lambda ramps linearly from 0
    ema_momentum: float = 0.99       # B <- m * B + (1 - m) * A after each step
    # classifier head of the students (ablation): "zero" zeroes it, so the first predictions are uniform; "timm"
    # keeps timm's random init, whose first logits on selected ImageNet features are huge (and so is the noise an
    # early KD target carries): it measured 10-26 points worse on Fashion-MNIST 1% for every method
    head_init: str = "zero"
    b_init: str = "selection"        # "selection": B starts from its own selected subset; "copy-a": mean teacher
    b_probe_epochs: int = 0          # epochs training only B's head on labels before SKD (B's subset gives a signal)
    # augmentation strength: 0 = none; 1 = shifts up to 1/8 of the side + brightness/contrast jitter of 0.2
    augment: float = 1.0
    hflip: bool = False              # off by default: left/right carries meaning in chest X-rays
    # data-scarce mode: the images left out by --train-fraction feed the KD term of stage 1 (no labels used)
    use_unlabelled: bool = False
    unlabelled_ratio: float = 1.0    # unlabelled images per labelled image in a batch
    # classic-kd: the teacher is first fine-tuned on the task (head replaced) for this many epochs
    teacher_epochs: int = 10
    teacher_lr: float = 3e-4
    # validation, early stopping, selection of the returned model
    monitor: str = "auto"            # val metric to maximise; auto = balanced_accuracy (auroc_macro if multi-label)
    patience: int = 0                # epochs without improvement before stopping (0 = never stop early)
    val_every: int = 1
    restore_best: bool = True        # return A from the epoch with the best val metric
    seed: int = 0
    eval_batch_size: int = 256
    # where and how to compute (edgeskd.training.device): none of these changes the method, only the arithmetic
    device: str = "auto"             # auto (CUDA when torch sees one) | cpu | cuda | cuda:N
    precision: str = "auto"          # auto: bf16 autocast on CUDA where supported, else fp16 + grad scaler; fp32 on CPU
    channels_last: str = "auto"      # auto: a timed probe decides (cached); on | off
    deterministic: bool = False      # torch's deterministic algorithms (CUDA); no timing-dependent choices

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not is_method(self.method):
            get_method(self.method)  # raises, naming the methods there are
        if not isinstance(self.method_options, dict):
            raise TrainingError(f"method_options must be a JSON object of key: value; got {self.method_options!r}")
        if self.method_options:
            get_method(self.method).check_options(self.method_options)
        if self.head_init not in ("timm", "zero"):
            raise TrainingError(f"head_init must be 'timm' or 'zero'; got {self.head_init!r}")
        if self.precision not in PRECISIONS:
            raise TrainingError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        if self.channels_last not in SWITCHES:
            raise TrainingError(f"channels_last must be one of {', '.join(SWITCHES)}; got {self.channels_last!r}")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu", "cuda")
                                                    or self.device.startswith("cuda:")):
            raise TrainingError(f"device must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        if self.b_init not in B_INITS:
            raise TrainingError(f"b_init must be one of {B_INITS}; got {self.b_init!r}")
        checks = {
            "epochs_skd": self.epochs_skd >= 0, "epochs_finetune": self.epochs_finetune >= 0,
            "lr": self.lr > 0, "finetune_lr_scale": self.finetune_lr_scale > 0, "weight_decay": self.weight_decay >= 0,
            "batch_size": self.batch_size >= 1, "temperature": self.temperature > 0, "kd_weight": self.kd_weight >= 0,
            "kd_ramp": 0 <= self.kd_ramp <= 1, "ema_momentum": 0 <= self.ema_momentum < 1,
            "label_smoothing": 0 <= self.label_smoothing < 1, "augment": self.augment >= 0,
            "unlabelled_ratio": self.unlabelled_ratio > 0, "patience": self.patience >= 0,
            "val_every": self.val_every >= 1, "teacher_epochs": self.teacher_epochs >= 1,
            "b_probe_epochs": self.b_probe_epochs >= 0, "grad_clip": self.grad_clip >= 0,
        }
        # NaN fails every comparison above, but Inf passes "> 0": refuse both by name
        checks.update({f.name: False for f in fields(self) if isinstance(getattr(self, f.name), float)
                       and not math.isfinite(getattr(self, f.name))})
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise TrainingError("invalid training config value(s): "
                                + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))
        if self.epochs_skd + self.epochs_finetune < 1:
            raise TrainingError("epochs_skd + epochs_finetune must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not out["method_options"]:
            del out["method_options"]  # runs without options keep the config (and resume check) they had before
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise TrainingError(f"unknown training config keys {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})
