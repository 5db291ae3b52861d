"""Issue 15: compare the training methods at schedules where single weight selection has converged.

Same setup as benchmarks/ablation_skd.py (Fashion-MNIST at 32 px, 3 channels; teacher tf_efficientnet_lite0 with
ImageNet weights; student StudentSpec("tf_efficientnet_lite0", 0.5, 0.5, 32); the same fixed split: labelled = a
stratified fraction of the 60,000 training images, val = 1,000 other training images, unlabelled pool = up to 9x the
labelled count of the rest, test = 2,000 stratified images of the official test set).

    curve    single WS trained for a long cosine schedule (one stage, CE only), validated every few epochs: the
             val curve shows where it stops improving, and the final test accuracy is the seed-0 single-ws row
    ablate   every method at the converged schedule (CE stage of the curve's length for every method; methods that
             add a stage also get an equal-optimizer-steps row), seeds given on the command line
    report   writes results/ablation_converged.{md,json} from results/ablation_converged_runs.jsonl
    all      curve, ablate, report

Jobs append one JSON line each to results/ablation_converged_runs.jsonl when they finish; finished jobs are skipped,
so a killed run loses at most one job. Runs are deterministic (seeded per epoch by the trainer).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation_skd import RES, append_result, make_splits  # noqa: E402  (same split, same student as ablation_skd)

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
RUNS = RESULTS / "ablation_converged_runs.jsonl"

# curve lengths (epochs of one CE stage) and validation spacing per labelled fraction; sized for a 2-core machine
# shared with six other jobs (about 1.1 s per batch-64 step at one thread)
CURVE_EPOCHS = {0.01: 90, 0.1: 12}
CURVE_VAL_EVERY = {0.01: 3, 0.1: 1}


def _records() -> list[dict]:
    if not RUNS.exists():
        return []
    return [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()]


def _done() -> set[str]:
    return {r["key"] for r in _records()}


def _append(record: dict) -> None:
    # ablation_skd.append_result writes to its own file; reuse its locking by pointing it here
    import ablation_skd

    old = ablation_skd.RUNS
    ablation_skd.RUNS = RUNS
    try:
        append_result(record)
    finally:
        ablation_skd.RUNS = old


def _models():
    from edgeskd.models import StudentSpec, load_teacher

    return load_teacher("tf_efficientnet_lite0"), StudentSpec("tf_efficientnet_lite0", 0.5, 0.5, RES, num_classes=10)


def _run_job(job: dict, teacher, spec, data, config, kd_teacher=None) -> dict:
    from edgeskd.training import train

    t0 = time.perf_counter()
    result = train(spec, data, teacher, config, progress=False, kd_teacher=kd_teacher)
    test = result.metrics["test"]
    record = {**job, "config": config.to_dict(), "seconds": round(time.perf_counter() - t0, 1),
              "best_epoch": result.info["best_epoch"], "steps": result.history[-1]["step"] if result.history else 0,
              "n_train": len(data.train.labels), "n_val": len(data.val.labels), "n_test": len(data.test.labels),
              "n_unlabelled": len(data.unlabelled.labels) if data.unlabelled is not None else 0,
              "test": {k: test[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece")},
              "curve": [{"epoch": h["epoch"], "stage": h["stage"], "val_accuracy": h["val_accuracy"],
                         "val_balanced_accuracy": h.get("val_balanced_accuracy")}
                        for h in result.history if "val_accuracy" in h],
              "info": {k: v for k, v in result.info.items() if k in ("ssl", "stages", "method")}}
    _append(record)
    print(f"{job['key']}: test acc {test['accuracy']:.4f} best epoch {record['best_epoch']} "
          f"({record['seconds']} s)", flush=True)
    return record


def curve(args: argparse.Namespace) -> None:
    from edgeskd.training import TrainConfig

    torch.set_num_threads(args.threads)
    teacher, spec = _models()
    for fraction in [float(f) for f in args.fractions.split(",")]:
        epochs = CURVE_EPOCHS[fraction]
        key = f"curve/{fraction}/single-ws/{epochs}/0"
        if key in _done():
            continue
        data = make_splits(fraction)
        config = TrainConfig(method="single-ws", epochs_skd=epochs, epochs_finetune=0, seed=0,
                             val_every=CURVE_VAL_EVERY[fraction], head_init="zero")
        _run_job({"key": key, "kind": "curve", "fraction": fraction, "name": "single-ws", "seed": 0,
                  "epochs": epochs}, teacher, spec, data, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curve", help="single WS val curve over a long schedule per labelled fraction")
    c.add_argument("--fractions", default="0.01,0.1")
    c.add_argument("--threads", type=int, default=1)
    c.set_defaults(func=curve)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
