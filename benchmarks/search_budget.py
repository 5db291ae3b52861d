"""Where a latency-gated search spends its time, and what its winner is worth next to the teacher.

Real Fashion-MNIST (Debian's dataset-fashion-mnist), the real ImageNet EfficientNet-Lite0 teacher, the real stages.
1. The teacher, fine-tuned on the same images with the same final schedule (a full-size "student" of the teacher's
   own architecture with single weight selection = the teacher's weights), is measured on the target at the largest
   search resolution. The budget is set to --budget-fraction of the teacher's p95, so the teacher is excluded.
2. A search under that budget; the table reports the share of its wall time spent on candidates that turned out
   over budget (probe only: build + ONNX export + measurement) and the training seconds they received (must be 0).
3. The winner (trained with the final schedule, re-measured) next to the teacher: test accuracy and p95.

Timings on a shared 2-core machine are noisy; the ratios are from one process and one run.
Usage: .venv/bin/python benchmarks/search_budget.py [--trials 12] [--train 1000] [--out runs/bench-search]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def subset_loader(n_train: int, n_val: int, n_test: int):
    """A load_data stage over real Fashion-MNIST, seeded subsets (the full set would take hours per trial here)."""

    def load(source: str, *, seed: int = 0, train_fraction: float = 1.0):
        from edgeskd.data import DatasetSplits, load_dataset

        full = load_dataset("fashion-mnist", seed=seed)
        rng = np.random.default_rng(seed)
        pick = lambda part, n: part.subset(np.sort(rng.permutation(len(part))[:n]))  # noqa: E731
        return DatasetSplits(train=pick(full.train, n_train), val=pick(full.val, n_val), test=pick(full.test, n_test),
                             unlabelled=None, name=f"fashion-mnist-{n_train}")

    return load


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--budget-fraction", type=float, default=0.6)
    ap.add_argument("--out", default="runs/bench-search")
    args = ap.parse_args()

    import dataclasses

    import torch

    torch.set_num_threads(1)
    from edgeskd.latency import get_target, measure_model
    from edgeskd.models import StudentSpec, load_teacher
    from edgeskd.search import SearchConfig, run_search
    from edgeskd.search.config import space_digest
    from edgeskd.search.space import load_space
    from edgeskd.search.stages import real_stages
    from edgeskd.training import TrainConfig, train

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    space_path = str(Path(__file__).with_name("search_budget_space.yaml").resolve())
    space = load_space(space_path)
    stages = dataclasses.replace(real_stages(), load_data=subset_loader(args.train, args.val, args.test))
    data = stages.load_data("fashion-mnist")
    teacher = load_teacher("tf_efficientnet_lite0")
    target = get_target("ort-cpu")
    side = max(space.student["resolution"].values())

    # 1. the teacher on this task: fine-tuned with the winner's final schedule, measured at the largest resolution
    t0 = time.perf_counter()
    full = StudentSpec("tf_efficientnet_lite0", resolution=side, num_classes=len(data.classes))
    final = {**space.fixed, **space.schedule.final, "method": "single-ws", "strategy_a": "uniform+first"}
    teacher_run = train(full, data, teacher, TrainConfig.from_dict(final), out_dir=out / "teacher", progress=False)
    teacher_m = measure_model(teacher_run.model, side, target)
    teacher_s = time.perf_counter() - t0
    budget = round(args.budget_fraction * teacher_m.stats["p95"], 3)

    # 2. the search under a budget the teacher misses
    config = SearchConfig(data="fashion-mnist", teacher="tf_efficientnet_lite0", target="ort-cpu", latency_ms=budget,
                          trials=args.trials, space=space_path, space_sha256=space_digest(space_path),
                          study="bench", run_dir=str((out / "search").resolve()), metric="accuracy")
    t1 = time.perf_counter()
    summary = run_search(config, stages=stages, show_progress=True)
    total_s = time.perf_counter() - t1
    times, wall = summary["time"], summary["search_seconds"]
    winner, test_t = summary["winner"], teacher_run.metrics["test"]

    print(f"\n## Search time (budget p95 <= {budget} ms = {args.budget_fraction} x teacher p95 on ort-cpu, "
          f"{args.trials} trials, Fashion-MNIST {args.train} train / {args.val} val / {args.test} test, 1 thread)\n")
    print("| quantity | seconds | share of search wall time |\n|---|---|---|")
    rows = [("search wall time (trials only)", wall), ("probing all candidates (build + export + measure)",
                                                       times["probe_seconds"]),
            ("candidates over budget, in total", times["infeasible_seconds"]),
            ("training given to over-budget candidates", times["infeasible_train_seconds"]),
            ("training of feasible candidates", times["train_seconds"])]
    for name, s in rows:
        print(f"| {name} | {s:.1f} | {s / wall:.1%} |")
    print(f"\ntrials: {summary['counts']}; winner final training + re-measure + export + report: "
          f"{total_s - wall:.1f} s; teacher fine-tune + measure: {teacher_s:.1f} s\n")
    print("## Winner vs teacher (test split, same final schedule)\n")
    print("| model | depth | width | px | parameters | test accuracy | p95 ms | p95 / teacher |\n|---|---|---|---|---|---|---|---|")
    tp95 = teacher_m.stats["p95"]
    print(f"| teacher EfficientNet-Lite0 (fine-tuned) | 1.0 | 1.0 | {side} | "
          f"{sum(p.numel() for p in teacher_run.model.parameters())} | {test_t['accuracy']:.4f} | {tp95:.3f} | 1.00 |")
    s = winner["student"]
    wp95 = winner["latency_ms"]["p95"]
    print(f"| search winner (trial {winner['trial']}) | {s['depth']} | {s['width']} | {s['resolution']} | "
          f"{winner['parameters']} | {winner['test']['accuracy']:.4f} | {wp95:.3f} | {wp95 / tp95:.2f} |")
    record = {"budget_ms": budget, "summary": summary, "teacher": {"p95": tp95, "test": test_t}}
    (out / "result.json").write_text(json.dumps(record, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
