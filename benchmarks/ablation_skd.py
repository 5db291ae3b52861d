"""Ablation of dual weight selection + SKD against the baselines on Fashion-MNIST (real images, 10 classes).

Setup (DESIGN.md 3.2, scaled to the 2-core machine): Fashion-MNIST 28x28 grayscale resized to RES px and replicated to
3 channels (the teacher's), teacher tf_efficientnet_lite0 with ImageNet weights (3.37 M backbone parameters), student
StudentSpec("tf_efficientnet_lite0", 0.5, 0.5, RES) (0.67 M backbone parameters, about 1/5).
Splits: labelled = a stratified FRACTION of the official 60,000 training images; val = 1,000 other training images
(stratified; model selection and early stopping); unlabelled = up to 9x the labelled count of the remaining training
images (only used by configurations with use_unlabelled); test = 2,000 stratified images of the official test set.
The same split for every method and seed of a fraction (the split seed is fixed), so rows differ only by method/seed.

Jobs are appended to benchmarks/results/ablation_runs.jsonl as each one finishes (a killed run loses one job), and
already finished jobs are skipped, so the script can be re-run or run as several workers:
    python benchmarks/ablation_skd.py run --phase main --worker 0/2 &
    python benchmarks/ablation_skd.py run --phase main --worker 1/2 &
    python benchmarks/ablation_skd.py report        # prints the markdown tables, writes results/ablation.{md,json}
"""

from __future__ import annotations

import argparse
import fcntl
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
RUNS = RESULTS / "ablation_runs.jsonl"
CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
RES = 32
SPLIT_SEED = 1234
SEEDS = (0, 1, 2)
# epochs (skd stage, fine-tuning stage) per labelled fraction: the 1% schedule is the pilot's 30 epochs; 10% and 100%
# are shortened to fit the machine (same number for every method)
SCHEDULES = {0.01: (24, 6), 0.1: (2, 1), 1.0: (1, 1)}
VAL_EVERY = {0.01: 3, 0.1: 1, 1.0: 1}  # validation costs forward passes over 1,000 images
BASELINES = ("random-init", "single-ws", "classic-kd", "dml")

# SKD configurations explored (overrides of TrainConfig); "skd-default" is TrainConfig's default at the time of the
# first run. Each answers one question of DESIGN.md 3.2.
VARIANTS: dict[str, dict] = {
    "skd-default": {},                                          # T 2, lambda 1 ramped over 30%, m 0.99, B from own subset
    "skd-copy-a": {"b_init": "copy-a"},                         # when B's subset enters: never (plain mean teacher)
    "skd-probe": {"b_probe_epochs": 3},                         # B's subset enters with a trained head
    "skd-unl": {"use_unlabelled": True},                        # + unlabelled images in the KD term
    "skd-unl-copy-a": {"use_unlabelled": True, "b_init": "copy-a"},
    "skd-T4": {"temperature": 4.0},                             # temperature
    "skd-lam0.5": {"kd_weight": 0.5},                           # KD weight
    "skd-m0.999": {"ema_momentum": 0.999},                      # EMA momentum
    "skd-zerohead": {"head_init": "zero"},                      # uniform first predictions (no early KD noise)
    "skd-zerohead-unl": {"head_init": "zero", "use_unlabelled": True},
}


def stratified(labels: np.ndarray, count: int, rng: np.random.Generator, exclude: np.ndarray | None = None) -> np.ndarray:
    pool = np.setdiff1d(np.arange(len(labels)), exclude) if exclude is not None else np.arange(len(labels))
    per_class = count // 10
    picked = [rng.permutation(pool[labels[pool] == c])[:per_class] for c in range(10)]
    return np.sort(np.concatenate(picked))


def make_splits(fraction: float):
    from edgeskd.data import DatasetSplits, ImageSet, fashion_mnist

    train_set, test_set = fashion_mnist()  # Debian's dataset-fashion-mnist, read by the data layer
    x_train, y_train = np.asarray(train_set.images), train_set.labels
    x_test, y_test = np.asarray(test_set.images), test_set.labels
    rng = np.random.default_rng(SPLIT_SEED)
    labelled = stratified(y_train, int(round(60000 * fraction)) if fraction < 1 else 59000, rng)
    val = stratified(y_train, 1000, rng, exclude=labelled)
    rest = np.setdiff1d(np.arange(60000), np.concatenate([labelled, val]))
    unl = rng.permutation(rest)[: 9 * len(labelled)] if len(rest) else rest
    test = stratified(y_test, 2000, rng)

    def subset(x, y, idx):
        return ImageSet(x[idx], y[idx], CLASSES, source="fashion-mnist")

    return DatasetSplits(subset(x_train, y_train, labelled), subset(x_train, y_train, val), subset(x_test, y_test, test),
                         subset(x_train, y_train, unl) if len(unl) else None, f"fashion-mnist-{fraction:g}")


def jobs(phase: str, variants: list[str]) -> list[dict]:
    out = []
    main = {f: [{"fraction": f, "seed": s, "name": n} for s in SEEDS for n in (*BASELINES, "skd-default")]
            for f in (0.01, 0.1)}
    if phase == "main":          # baselines + default SKD, 1% then 10%, 3 seeds
        out = main[0.01] + main[0.1]
    elif phase == "all":         # 1% main, then the exploration, then 10% main
        out = main[0.01] + jobs("explore", variants) + main[0.1]
    elif phase == "explore":     # every SKD variant at 1%, seed 0
        out = [{"fraction": 0.01, "seed": 0, "name": name} for name in VARIANTS]
    elif phase == "zh":          # everything again with the zero-initialised head (head_init="zero")
        out = [dict(j, head="zero") for j in main[0.01] + main[0.1]]
        out += [{"fraction": 0.01, "seed": 0, "name": n, "head": "zero"}
                for n in ("skd-unl", "skd-lam0.5", "skd-T4", "skd-copy-a", "skd-m0.999")]
    elif phase == "zerohead":    # the zero-initialised head, for single-ws and SKD, 1%
        out = [{"fraction": 0.01, "seed": s, "name": n} for s in SEEDS
               for n in ("single-ws-zerohead", "skd-zerohead")]
    elif phase == "confirm":     # chosen variants on all seeds and both fractions
        out = [{"fraction": f, "seed": s, "name": n, "head": "zero"} for f in (0.01, 0.1) for n in variants
               for s in SEEDS]
    elif phase == "long":        # schedule length: 2x epochs for single-ws and chosen variants (zero head)
        out = [{"fraction": f, "seed": s, "name": n, "epochs_scale": 2, "head": "zero"}
               for f in (0.01, 0.1) for s in SEEDS for n in ("single-ws", *variants)]
    elif phase == "full":        # 100% of the labels, 2 epochs, 1 seed (what the machine allows)
        out = [{"fraction": 1.0, "seed": 0, "name": n, "head": "zero"} for n in ("random-init", "single-ws", *variants)]
    else:
        raise SystemExit(f"unknown phase {phase}")
    return out


# the first zero-head runs had their own names; they are the same jobs as single-ws / skd-default with head "zero"
ALIASES = {"single-ws-zerohead": "single-ws", "skd-zerohead": "skd-default"}


def job_key(job: dict) -> str:
    name, head = job["name"], job.get("head", "timm")
    if name in ALIASES:
        name, head = ALIASES[name], "zero"
    return f"{job['fraction']}/{name}/{job['seed']}/x{job.get('epochs_scale', 1)}" + ("/zh" if head == "zero" else "")


def done_keys() -> set[str]:
    if not RUNS.exists():
        return set()
    return {job_key(json.loads(line)) for line in RUNS.read_text().splitlines() if line.strip()}


def append_result(record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RUNS, "a") as fh:  # one line per finished job; a lock keeps concurrent workers' lines whole
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_UN)


def config_for(job: dict):
    from edgeskd.training import TrainConfig

    skd, ft = SCHEDULES[job["fraction"]]
    scale = job.get("epochs_scale", 1)
    base = dict(epochs_skd=skd * scale, epochs_finetune=ft * scale, seed=job["seed"],
                teacher_epochs=10 if job["fraction"] < 0.1 else 1, val_every=VAL_EVERY[job["fraction"]])
    name = job["name"]
    base["head_init"] = "zero" if job.get("head") == "zero" or name in ALIASES else "timm"
    name = ALIASES.get(name, name)
    if name in VARIANTS:
        return TrainConfig(method="dual-skd", **{**base, **VARIANTS[name]})
    return TrainConfig(method=name, **base)


def run(args: argparse.Namespace) -> None:
    from edgeskd.models import StudentSpec, load_teacher, profile_model
    from edgeskd.training import finetune_teacher, train
    from edgeskd.training.trainer import _tensors

    torch.set_num_threads(args.threads)
    index, count = (int(v) for v in args.worker.split("/"))
    todo = [j for i, j in enumerate(jobs(args.phase, args.variants.split(",") if args.variants else []))
            if i % count == index and (not args.only or j["name"] in args.only.split(","))
            and (not args.fractions or str(j["fraction"]) in args.fractions.split(","))]
    teacher = load_teacher("tf_efficientnet_lite0")
    spec = StudentSpec("tf_efficientnet_lite0", 0.5, 0.5, RES, num_classes=10)
    splits: dict[float, object] = {}
    kd_teachers: dict[tuple, torch.nn.Module] = {}
    for job in todo:
        key = job_key(job)
        if key in done_keys():
            continue
        fraction = job["fraction"]
        if fraction not in splits:
            splits[fraction] = make_splits(fraction)
        data = splits[fraction]
        config = config_for(job)
        kd_teacher = None
        if config.method == "classic-kd":
            tkey = (fraction, job["seed"])
            if tkey not in kd_teachers:
                pre = __import__("edgeskd.data.preprocess", fromlist=["PreprocessSpec"]).PreprocessSpec.for_model(
                    teacher, size=RES, channels=3)
                t0 = time.perf_counter()
                kd_teachers[tkey] = finetune_teacher(teacher, _tensors(data.train, pre), None, config)
                print(f"teacher fine-tuned for {tkey} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            kd_teacher = kd_teachers[tkey]
        t0 = time.perf_counter()
        result = train(spec, data, teacher, config, progress=False, kd_teacher=kd_teacher)
        test = result.metrics["test"]
        record = {"key": key, **job, "method": config.method, "config": config.to_dict(),
                  "seconds": round(time.perf_counter() - t0, 1), "best_epoch": result.info["best_epoch"],
                  "n_train": len(data.train.labels), "n_val": len(data.val.labels), "n_test": len(data.test.labels),
                  "test": {k: test[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "auroc_macro", "ece")},
                  "val_best": max((h.get("val_balanced_accuracy") or 0) for h in result.history),
                  "student_backbone_params": profile_model(result.model, RES).backbone_parameters}
        append_result(record)
        print(f"{key}: test acc {test['accuracy']:.4f} ({record['seconds']} s)", flush=True)


def report(args: argparse.Namespace) -> str:
    records = [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()] if RUNS.exists() else []
    groups: dict[tuple, list[dict]] = {}
    unique: dict[str, dict] = {}
    for r in records:  # the same job run twice (two workers) counts once; runs are deterministic
        unique.setdefault(job_key(r), r)
    for r in unique.values():
        head = r["config"].get("head_init", "timm")
        groups.setdefault((r["fraction"], r.get("epochs_scale", 1), head, ALIASES.get(r["name"], r["name"])),
                          []).append(r)
    lines = ["| labels | epochs (skd+ft) | head init | configuration | n seeds | test accuracy mean ± std | balanced acc | "
             "macro-F1 | ECE | accuracy per seed | s/run |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    summary = []
    for (fraction, scale, head, name), rs in sorted(groups.items(),
                                                    key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], _order(kv[0][3]))):
        rs = sorted(rs, key=lambda r: r["seed"])
        acc = [r["test"]["accuracy"] for r in rs]
        mean = statistics.fmean(acc)
        std = statistics.stdev(acc) if len(acc) > 1 else 0.0
        skd, ft = rs[0]["config"]["epochs_skd"], rs[0]["config"]["epochs_finetune"]
        bal = statistics.fmean(r["test"]["balanced_accuracy"] for r in rs)
        f1 = statistics.fmean(r["test"]["macro_f1"] for r in rs)
        ece = statistics.fmean(r["test"]["ece"] for r in rs)
        secs = statistics.fmean(r["seconds"] for r in rs)
        lines.append(f"| {fraction:.0%} ({rs[0]['n_train']}) | {skd}+{ft} | {head} | {name} | {len(rs)} | {mean:.3f} ± {std:.3f} | "
                     f"{bal:.3f} | {f1:.3f} | {ece:.3f} | {', '.join(f'{a:.3f}' for a in acc)} (seeds "
                     f"{','.join(str(r['seed']) for r in rs)}) | {secs:.0f} |")
        summary.append({"fraction": fraction, "epochs_scale": scale, "head_init": head, "name": name, "n": len(rs),
                        "seeds": [r["seed"] for r in rs], "accuracy": acc, "mean": mean, "std": std,
                        "overrides": VARIANTS.get(name, {}), "epochs": [skd, ft]})
    table = "\n".join(lines)
    if args.write:
        from edgeskd._io import atomic_write_json, atomic_write_text

        atomic_write_text(RESULTS / "ablation.md", "# Ablation: dual WS + SKD vs baselines (Fashion-MNIST, "
                          f"{RES} px)\n\nGenerated by `python benchmarks/ablation_skd.py report --write` from "
                          f"ablation_runs.jsonl ({len(records)} runs).\n\n{table}\n")
        atomic_write_json(RESULTS / "ablation.json", {"resolution": RES, "split_seed": SPLIT_SEED, "rows": summary})
    print(table)
    return table


def _order(name: str) -> tuple:
    fixed = ["random-init", "single-ws", "classic-kd", "dml"]
    return (fixed.index(name), "") if name in fixed else (len(fixed), name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--phase", default="main", choices=["all", "zh", "zerohead", "main", "explore", "confirm", "long", "full"])
    p.add_argument("--variants", default="", help="comma-separated VARIANTS names for confirm/long/full")
    p.add_argument("--worker", default="0/1", help="i/n: run every n-th job starting at i")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fractions", default="", help="comma-separated labelled fractions to run, e.g. 0.1")
    p.add_argument("--only", default="", help="comma-separated job names to run (others are left for later)")
    p.set_defaults(func=run)
    r = sub.add_parser("report")
    r.add_argument("--write", action="store_true", help="also write results/ablation.md and ablation.json")
    r.set_defaults(func=report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
