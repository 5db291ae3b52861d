"""Cost of one SKD step relative to one plain fine-tuning step of the same student, measured in one process.

Both steps run the trainer's own code (the dual-skd method's losses from edgeskd.training.methods, backward, AdamW
step, and for SKD the method's after-step hook, the EMA update of B). plain = the fine-tuning stage (A, one augmented
view, CE); skd = the dual-skd stage (two views, A forward+backward, B forward without gradients, EMA update). Rounds
alternate between the two so machine load hits both alike; the table reports medians. Requirement: skd / plain <= 1.5.

    python benchmarks/skd_step_cost.py [--resolution 32 64] [--rounds 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn as nn


def make_data(n: int, classes: int = 10):
    from edgeskd.data import DatasetSplits, ImageSet

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.int64) % classes
    names = [f"c{i}" for i in range(classes)]
    part = ImageSet(images, labels, names)
    return DatasetSplits(part, part, part, part, "random-pixels")


def one_step(run, stage: str, opt, x, y, xu, gen) -> float:
    from edgeskd.training.methods.base import StepBatch

    t0 = time.perf_counter()
    terms, _ = run.method.losses(run, stage, StepBatch(x, y, xu, 1.0, gen))
    loss = sum(terms.values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(run.a.parameters(), 5.0)
    opt.step()
    run.method.after_step(run, stage)  # dual-skd: the EMA update of B in stage "skd", nothing in "finetune"
    return time.perf_counter() - t0


def measure(resolution: int, rounds: int, batch: int) -> dict:
    from edgeskd.data.preprocess import PreprocessSpec
    from edgeskd.models import StudentSpec, load_teacher
    from edgeskd.training import TrainConfig
    from edgeskd.training.methods import get_method
    from edgeskd.training.methods.base import Run
    from edgeskd.training.trainer import _tensors

    teacher = load_teacher("tf_efficientnet_lite0")
    spec = StudentSpec("tf_efficientnet_lite0", 0.5, 0.5, resolution, num_classes=10)
    data = make_data(batch * 2)
    pre = PreprocessSpec.for_model(teacher, size=resolution)
    train_d = _tensors(data.train, pre)
    cfg = TrainConfig(method="dual-skd")
    run = Run(spec, teacher, cfg, get_method("dual-skd"), train_d, train_d, train_d, None)
    run.a.train()
    run.b.train()
    opt = torch.optim.AdamW(run.a.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x, y = train_d.x[:batch], train_d.y[:batch]
    xu = train_d.x[batch:2 * batch]
    times: dict[str, list[float]] = {"plain": [], "skd": [], "skd+unlabelled": []}
    for r in range(rounds + 2):  # two warm-up rounds
        got = {"plain": one_step(run, "finetune", opt, x, y, None, gen),
               "skd": one_step(run, "skd", opt, x, y, None, gen),
               "skd+unlabelled": one_step(run, "skd", opt, x, y, xu, gen)}
        if r >= 2:
            for k, v in got.items():
                times[k].append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"resolution": resolution, "batch": batch, "rounds": rounds, "median_s": med,
            "ratio_skd": med["skd"] / med["plain"], "ratio_skd_unlabelled": med["skd+unlabelled"] / med["plain"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(r, args.rounds, args.batch) for r in args.resolution]
    print(f"One training step of the 0.5/0.5 EfficientNet-Lite0 student, batch {args.batch}, {args.threads} thread(s), "
          f"median of {args.rounds} alternating rounds (shared machine: timings are noisy, the ratio less so)\n")
    print("| resolution | plain step (ms) | SKD step (ms) | SKD / plain | SKD + unlabelled batch (ms) | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        m = r["median_s"]
        print(f"| {r['resolution']} | {1000 * m['plain']:.1f} | {1000 * m['skd']:.1f} | {r['ratio_skd']:.2f} | "
              f"{1000 * m['skd+unlabelled']:.1f} | {r['ratio_skd_unlabelled']:.2f} |")
    worst = max(r["ratio_skd"] for r in rows)
    print(f"\nrequirement SKD / plain <= 1.5: {'met' if worst <= 1.5 else 'NOT met'} (worst {worst:.2f}); the "
          f"unlabelled column processes twice the images per step and is shown for information")
    if args.json:
        from edgeskd._io import atomic_write_json

        atomic_write_json(args.json, {"threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
