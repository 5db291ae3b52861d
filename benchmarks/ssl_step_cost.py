"""Cost of one ssl-skd (BYOL-style) step relative to one plain fine-tuning step of the same student, in one process.

plain = single-ws's step through the method registry (A, one augmented view of a batch, CE, backward, clip, AdamW);
ssl   = edgeskd.training.ssl.BYOLStage on the same batch: two views, A + projector + predictor forward and backward on
        both, the EMA target (B + projector) forward on both without gradients, AdamW, EMA update.
Both see the same batch of images, so the ratio is per image of the pool. Rounds alternate so machine load hits both
alike; the table reports medians.

    python benchmarks/ssl_step_cost.py [--rounds 8] [--threads 1] [--json results/ssl_step_cost.json]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from skd_step_cost import make_data  # noqa: E402  (the same random-pixel batch as skd_step_cost)


def measure(resolution: int, rounds: int, batch: int) -> dict:
    from edgeskd.data.preprocess import PreprocessSpec
    from edgeskd.models import StudentSpec, load_teacher
    from edgeskd.training import TrainConfig
    from edgeskd.training.methods import get_method
    from edgeskd.training.methods.base import Run, StepBatch
    from edgeskd.training.ssl import BYOLStage, SSLOptions
    from edgeskd.training.trainer import _tensors

    teacher = load_teacher("tf_efficientnet_lite0")
    spec = StudentSpec("tf_efficientnet_lite0", 0.5, 0.5, resolution, num_classes=10)
    data = make_data(batch)
    pre = PreprocessSpec.for_model(teacher, size=resolution)
    train_d = _tensors(data.train, pre)
    method = get_method("single-ws")
    run = Run(spec, teacher, TrainConfig(method="single-ws"), method, train_d, train_d, None, None)
    run.a.train()
    opt = torch.optim.AdamW(run.a.parameters(), lr=1e-4)
    stage = BYOLStage(copy.deepcopy(run.a), copy.deepcopy(run.a), SSLOptions())
    for m in stage.modules():
        m.train()
    ssl_opt = torch.optim.AdamW(stage.online_params, lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x, y = train_d.x[:batch], train_d.y[:batch]

    def plain_step() -> float:
        t0 = time.perf_counter()
        terms, _ = method.losses(run, "finetune", StepBatch(x, y, None, 1.0, gen))
        loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(run.a.parameters(), 5.0)
        opt.step()
        return time.perf_counter() - t0

    def ssl_step() -> float:
        t0 = time.perf_counter()
        loss = stage.loss(x, gen)
        ssl_opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(stage.online_params, 5.0)
        ssl_opt.step()
        stage.after_step()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"plain": [], "ssl": []}
    for r in range(rounds + 2):  # two warm-up rounds
        got = {"plain": plain_step(), "ssl": ssl_step()}
        if r >= 2:
            for k, v in got.items():
                times[k].append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"resolution": resolution, "batch": batch, "rounds": rounds, "median_s": med,
            "ratio_ssl": med["ssl"] / med["plain"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, nargs="+", default=[32])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(r, args.rounds, args.batch) for r in args.resolution]
    print(f"One step of the 0.5/0.5 EfficientNet-Lite0 student on a batch of {args.batch} images, {args.threads} "
          f"thread(s), median of {args.rounds} alternating rounds (shared machine: timings are noisy, the ratio less "
          f"so)\n")
    print("| resolution | plain step (ms) | ssl-skd step (ms) | ssl / plain |")
    print("|---|---|---|---|")
    for r in rows:
        m = r["median_s"]
        print(f"| {r['resolution']} | {1000 * m['plain']:.1f} | {1000 * m['ssl']:.1f} | {r['ratio_ssl']:.2f} |")
    if args.json:
        from edgeskd._io import atomic_write_json

        atomic_write_json(args.json, {"threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
