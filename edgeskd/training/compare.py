"""Run several methods on the same data, split and seeds, and tabulate their test metrics."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.nn as nn

from edgeskd.data.preprocess import PreprocessSpec
from edgeskd.errors import TrainingError
from edgeskd.models import StudentSpec
from edgeskd.training.config import TrainConfig
from edgeskd.training.methods import available_methods, get_method, is_method
from edgeskd.training.trainer import _tensors, finetune_teacher, train

TABLE_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc_macro", "ece")


def compare_methods(methods: list[str], spec: StudentSpec, data, teacher: nn.Module, base_config: TrainConfig,
                    seeds: list[int], *, out_dir: str | Path | None = None, progress: bool = True,
                    on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """One row per (method, seed): {"method", "seed", "seconds", "val": {...}, "test": {...}} (summary metrics).

    A method that needs a fine-tuned teacher (classic-kd) gets one made once per seed and shared. `on_row` sees each
    row as soon as it exists. Method options of `base_config` go only to the method they belong to (they are
    checked against that method's declared options).
    """
    unknown = [m for m in methods if not is_method(m)]
    if unknown:
        raise TrainingError(f"unknown method(s) {unknown}; expected some of {', '.join(available_methods())}")
    rows = []
    for seed in seeds:
        kd_teacher = None
        for method in methods:
            needs_teacher = get_method(method).needs_kd_teacher
            options = base_config.method_options if method == base_config.method else {}
            config = base_config.replace(method=method, seed=seed, method_options=options)
            if needs_teacher and kd_teacher is None:
                pre = PreprocessSpec.for_model(teacher, size=spec.resolution, channels=spec.in_chans)
                kd_teacher = finetune_teacher(teacher, _tensors(data.train, pre), None, config, progress=progress)
            run_dir = Path(out_dir) / f"{method}-seed{seed}" if out_dir is not None else None
            result = train(spec, data, teacher, config, out_dir=run_dir, progress=progress,
                           kd_teacher=kd_teacher if needs_teacher else None)
            row = {"method": method, "seed": seed, "seconds": round(result.seconds, 1),
                   "best_epoch": result.info.get("best_epoch"),
                   **{split: {k: m.get(k) for k in TABLE_METRICS} for split, m in result.metrics.items() if m}}
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def summarise(rows: list[dict[str, Any]], split: str = "test") -> list[dict[str, Any]]:
    """Mean and sample standard deviation per method (in the order methods first appear)."""
    order = list(dict.fromkeys(r["method"] for r in rows))
    out = []
    for method in order:
        mine = [r for r in rows if r["method"] == method and r.get(split)]
        entry: dict[str, Any] = {"method": method, "n": len(mine), "seeds": [r["seed"] for r in mine]}
        for key in TABLE_METRICS:
            values = [r[split][key] for r in mine if r[split].get(key) is not None]
            entry[key] = {"mean": statistics.fmean(values) if values else None,
                          "std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else None,
                          "values": values}
        out.append(entry)
    return out


def format_table(rows: list[dict[str, Any]], split: str = "test") -> str:
    """A markdown table: one line per method, mean +- std over seeds, per-seed accuracy."""
    lines = [f"| method | seeds | {' | '.join(TABLE_METRICS)} | accuracy per seed |",
             "|---|---|" + "---|" * len(TABLE_METRICS) + "---|"]
    for entry in summarise(rows, split):
        cells = []
        for key in TABLE_METRICS:
            s = entry[key]
            cells.append("n/a" if s["mean"] is None else f"{s['mean']:.3f} ± {s['std']:.3f}")
        per_seed = ", ".join(f"{v:.3f}" for v in entry["accuracy"]["values"])
        lines.append(f"| {entry['method']} | {entry['n']} | {' | '.join(cells)} | {per_seed} |")
    return "\n".join(lines)
