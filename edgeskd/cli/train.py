"""`edgeskd train`: dual weight selection + SKD + fine-tuning, a baseline, or a comparison of several methods."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeskd.cli._common import (add_data_options, add_json_flag, add_teacher_num_classes, data_options,
                                 print_json)

# TrainConfig fields exposed as --flags (others through --config FILE.json)
_FLAGS = ("epochs_skd", "epochs_finetune", "lr", "finetune_lr_scale", "weight_decay", "batch_size", "temperature",
          "kd_weight", "kd_ramp", "ema_momentum", "head_init", "b_init", "b_probe_epochs", "label_smoothing", "augment",
          "unlabelled_ratio", "teacher_epochs", "patience", "monitor", "strategy_a", "strategy_b")


def add_device_flags(p: argparse.ArgumentParser) -> None:
    """--device, --precision, --channels-last, --deterministic (shared by train and search)."""
    p.add_argument("--device", default=None,
                   help="auto (CUDA when torch sees one, else CPU) | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto: bf16 autocast on CUDA where supported, else fp16 + gradient scaler; fp32 on CPU")
    p.add_argument("--channels-last", default=None, choices=("auto", "on", "off"),
                   help="memory format; auto decides by a short timed probe, cached per model/device/resolution")
    p.add_argument("--deterministic", action="store_true",
                   help="torch deterministic algorithms (CUDA) and no timing-dependent choices; see docs/training.md")


def register(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    from edgeskd.training.config import METHODS, TrainConfig

    defaults = TrainConfig()
    p = sub.add_parser(name, help=help_text, description=help_text,
                       epilog="Example: edgeskd train --data chest-xray-samples --teacher tf_efficientnet_lite0 "
                              "--resolution 64 --out runs/cxr   |   add --compare random-init,single-ws,dual-skd "
                              "--seeds 0,1,2 for a comparison table")
    p.add_argument("--data", required=True, help="dataset: a folder, a MedMNIST .npz, or a built-in source "
                                                 "(chest-xray-samples, brain-mri-samples, fashion-mnist)")
    p.add_argument("--teacher", required=True, help="timm name of the teacher, e.g. tf_efficientnet_lite0")
    p.add_argument("--teacher-weights",
                   help="teacher weight file (.safetensors/.pth/.pt), or 'hub' to download through timm "
                        "(online machines)")
    add_teacher_num_classes(p)
    who = p.add_mutually_exclusive_group()
    who.add_argument("--student", help="timm name of the student architecture (same family as the teacher)")
    who.add_argument("--student-config", help="StudentSpec JSON file")
    p.add_argument("--depth", type=float, default=0.5, help="student depth multiplier (default 0.5)")
    p.add_argument("--width", type=float, default=0.5, help="student width multiplier (default 0.5)")
    p.add_argument("--resolution", type=int, help="student input side in pixels (default: the teacher's)")
    p.add_argument("--method", default=defaults.method,
                   help=f"{', '.join(METHODS)} (default {defaults.method}; one file per method in "
                        f"edgeskd/training/methods/)")
    p.add_argument("--method-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option the method declares (repeatable; VALUE is read as JSON, else as a string)")
    p.add_argument("--compare", help="comma-separated methods to run side by side on the same split and seeds")
    p.add_argument("--seeds", default=None, help="comma-separated seeds for --compare (default: --seed)")
    p.add_argument("--seed", type=int, default=0)
    add_data_options(p)  # --train-fraction, --val-fraction, --test-fraction, --same-size, --dicom-window
    p.add_argument("--use-unlabelled", action="store_true",
                   help="feed the training images left out by --train-fraction to the KD term, or to "
                        "ssl-skd's self-supervised stage (no labels)")
    p.add_argument("--config", help="TrainConfig JSON file; flags given on the command line win")
    add_device_flags(p)
    for name in _FLAGS:
        value = getattr(defaults, name)
        p.add_argument("--" + name.replace("_", "-"), type=type(value), default=None,
                       help=f"TrainConfig.{name} (default {value})")
    p.add_argument("--out", help="output folder: checkpoint, state, log.jsonl, metrics.json, plots")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the earlier run in --out and start again (without it, a non-empty --out is refused)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_json_flag(p)
    p.set_defaults(func=run)
    return p


def build_config(args: argparse.Namespace):
    from edgeskd._io import read_json_object
    from edgeskd.errors import TrainingError
    from edgeskd.training import TrainConfig

    values = read_json_object(args.config, TrainingError, "training config") if args.config else {}
    for name in _FLAGS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    values.update(method=args.method, seed=args.seed)
    if args.method_option:
        values["method_options"] = {**values.get("method_options", {}), **parse_options(args.method_option)}
    if args.use_unlabelled:
        values["use_unlabelled"] = True
    values.update(device_values(args))
    return TrainConfig.from_dict(values)  # unknown keys in --config are an error naming them


def _prepare_out(args: argparse.Namespace) -> None:
    """Refuse to replace an earlier run silently, and find an unwritable --out before any epoch is trained."""
    from edgeskd._folders import check_output_folder
    from edgeskd.errors import TrainingError

    if args.resume and args.overwrite:
        raise TrainingError("choose one of --resume (continue the run in --out) and --overwrite (replace it)")
    if not args.out:
        if args.resume or args.overwrite:
            raise TrainingError("--resume/--overwrite need --out")
        return
    check_output_folder(args.out, overwrite=args.overwrite, resume=args.resume)


def device_values(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the device flags set (only those given)."""
    out = {k: getattr(args, k) for k in ("device", "precision", "channels_last") if getattr(args, k, None)}
    if getattr(args, "deterministic", False):
        out["deterministic"] = True
    return out


def parse_options(items: list[str]) -> dict:
    """["k=v", ...] -> {k: v}; v is JSON when it parses (numbers, true/false), else the string itself."""
    import json

    from edgeskd.errors import TrainingError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TrainingError(f"--method-option {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from edgeskd.data import load_dataset
    from edgeskd.errors import TrainingError
    from edgeskd.models import StudentSpec, load_teacher
    from edgeskd.training import compare_methods, format_table, train

    config = build_config(args)
    from edgeskd.training.device import resolve_device

    resolve_device(config.device)  # --device cuda without CUDA fails here, before the data and teacher load
    _prepare_out(args)
    data = load_dataset(args.data, seed=args.seed, **data_options(args))
    teacher = load_teacher(args.teacher, args.teacher_weights, teacher_num_classes=args.teacher_num_classes)
    num_classes = len(data.train.classes)
    default_side = int(teacher.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
    resolution = args.resolution if args.resolution is not None else default_side  # 0 is an error, not the default
    if args.student_config:
        spec = StudentSpec.from_json(args.student_config)
    elif args.student:
        spec = StudentSpec(args.student, 1.0, 1.0, resolution, num_classes=num_classes)
    else:
        spec = StudentSpec(args.teacher, args.depth, args.width, resolution, num_classes=num_classes)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.overwrite and Path(args.out).is_dir():  # only now: a bad dataset or teacher keeps the earlier run
        from edgeskd._folders import clear_folder

        clear_folder(Path(args.out))
    progress = not args.no_progress and not args.json and sys.stderr.isatty()

    if args.compare:
        if args.resume:
            raise TrainingError("--resume applies to one run; re-run --compare without it")
        methods = [m.strip() for m in args.compare.split(",") if m.strip()]
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
        rows = compare_methods(methods, spec, data, teacher, config, seeds, out_dir=args.out, progress=progress)
        table = format_table(rows)
        if args.out:
            from edgeskd._io import atomic_write_json, atomic_write_text
            from edgeskd.cli._output import writing

            with writing("comparison"):
                atomic_write_json(Path(args.out) / "comparison.json", {"rows": rows, "config": config.to_dict()})
                atomic_write_text(Path(args.out) / "comparison.md", table + "\n")
        if args.json:
            print_json({"dataset": data.name, "student": spec.to_dict(), "rows": rows})
        else:
            print(f"dataset {data.name}: {len(data.train.labels)} train / {len(data.val.labels)} val / "
                  f"{len(data.test.labels)} test images; seeds {seeds}; test metrics")
            print(table)
        return 0

    result = train(spec, data, teacher, config, out_dir=args.out, resume=args.resume, progress=progress)
    summary = {"method": config.method, "dataset": data.name, "student": spec.to_dict(),
               "checkpoint": str(result.checkpoint) if result.checkpoint else None,
               "seconds": round(result.seconds, 1), "best_epoch": result.info.get("best_epoch"),
               "stopped_early": result.stopped_early, "metrics": result.info["metrics"]}
    if args.json:
        print_json(summary)
    else:
        for split, m in result.info["metrics"].items():
            print(f"{split}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in m.items()))
        if result.checkpoint:
            print(f"checkpoint: {result.checkpoint}")
    return 0
