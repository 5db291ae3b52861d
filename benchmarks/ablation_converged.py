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
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation_skd import RES, SPLIT_SEED, append_result, make_splits  # noqa: E402  (same split and student)

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
RUNS = RESULTS / "ablation_converged_runs.jsonl"
SOURCE = "fashion-mnist"  # --data: any edgeskd data source (a MedMNIST .npz, a folder) runs the same ablation
CAPS = {"val": 1000, "test": 2000, "unlabelled_per_labelled": 9}  # sizes kept small for a 2-core machine

# curve lengths (epochs of one CE stage) and validation spacing per labelled fraction; sized for a 2-core machine
# shared with six other jobs (about 1.1 s per batch-64 step at one thread)
CURVE_EPOCHS = {0.01: 90, 0.1: 12, 1.0: 12}
CURVE_VAL_EVERY = {0.01: 3, 0.1: 1, 1.0: 1}


def curve_epochs(fraction: float) -> int:
    return CURVE_EPOCHS.get(fraction, 30)  # other fractions: pass --epochs after looking at a curve


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


def configure(source: str) -> None:
    """Point the script at a data source; results of sources other than Fashion-MNIST go to their own files."""
    global SOURCE, RUNS
    SOURCE = source
    if source != "fashion-mnist":
        RUNS = RESULTS / f"ablation_converged_{Path(source).stem}_runs.jsonl"


def _models(num_classes: int):
    from edgeskd.models import StudentSpec, load_teacher

    return (load_teacher("tf_efficientnet_lite0"),
            StudentSpec("tf_efficientnet_lite0", 0.5, 0.5, RES, num_classes=num_classes))


def _source_splits(fraction: float):
    """Any other source: its own split (MedMNIST: the file's train/val/test), `fraction` of train labelled, the rest
    unlabelled; val, test and the unlabelled pool capped (CAPS) by seeded random subsets."""
    import numpy as np

    from edgeskd.data import DatasetSplits, load_dataset

    splits = load_dataset(SOURCE, seed=SPLIT_SEED, train_fraction=fraction)
    rng = np.random.default_rng(SPLIT_SEED)

    def cap(part, n):
        if part is None or len(part.labels) <= n:
            return part
        return part.subset(np.sort(rng.permutation(len(part.labels))[:n]))

    unl_cap = CAPS["unlabelled_per_labelled"] * len(splits.train.labels)
    return DatasetSplits(splits.train, cap(splits.val, CAPS["val"]), cap(splits.test, CAPS["test"]),
                         cap(splits.unlabelled, unl_cap), f"{splits.name}-{fraction:g}")


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
              "ssl_steps": result.info.get("strategies", {}).get("ssl", {}).get("steps", 0),
              "ssl_loss": result.info.get("strategies", {}).get("ssl", {}).get("loss")}
    _append(record)
    print(f"{job['key']}: test acc {test['accuracy']:.4f} best epoch {record['best_epoch']} "
          f"({record['seconds']} s)", flush=True)
    return record


def curve(args: argparse.Namespace) -> None:
    from edgeskd.training import TrainConfig

    torch.set_num_threads(args.threads)
    for fraction in [float(f) for f in args.fractions.split(",")]:
        epochs = curve_epochs(fraction)
        key = f"curve/{fraction}/single-ws/{epochs}/0"
        if key in _done():
            continue
        data = make_splits_cached(fraction)
        teacher, spec = _models(len(data.train.classes))
        config = TrainConfig(method="single-ws", epochs_skd=epochs, epochs_finetune=0, seed=0,
                             val_every=CURVE_VAL_EVERY.get(fraction, 1), head_init="zero")
        _run_job({"key": key, "kind": "curve", "fraction": fraction, "name": "single-ws", "seed": 0,
                  "epochs": epochs}, teacher, spec, data, config)


# ablation rows in the order they run (most informative first: the machine may not get through all of them)
SSL_EPOCHS = 1  # passes of the BYOL stage over labelled + unlabelled pool (6,000 images at 1%)


def ablation_jobs(fraction: float, seeds: list[int], sizes: tuple[int, int] | None = None) -> list[dict]:
    """Rows x seeds in priority order: the candidate that could change the default and the paired single-WS seeds
    first, so that a run cut short by the machine still answers the main question. sizes = (labelled, unlabelled)
    images; read from the data when not given."""
    e = curve_epochs(fraction)
    if sizes is None:
        data = make_splits_cached(fraction)
        sizes = (len(data.train.labels), len(data.unlabelled.labels) if data.unlabelled is not None else 0)
    steps_per_epoch = math.ceil(sizes[0] / 64)
    pool = sizes[0] + sizes[1]
    ssl_steps = SSL_EPOCHS * math.ceil(pool / 64)
    # equal optimizer steps: the SSL stage's steps are taken from the CE stage
    e_equal = max(1, e - round(ssl_steps / steps_per_epoch))
    rows = {
        "single-ws": {"name": "single-ws", "epochs": e},
        "ssl-copy": {"name": "ssl-skd", "b_init": "copy-a", "epochs": e, "ssl_epochs": SSL_EPOCHS},
        "ssl-sel": {"name": "ssl-skd", "b_init": "selection", "epochs": e, "ssl_epochs": SSL_EPOCHS},
        "ssl-copy-equal": {"name": "ssl-skd", "b_init": "copy-a", "epochs": e_equal, "ssl_epochs": SSL_EPOCHS,
                           "equal_steps": True},
        "dual-skd": {"name": "dual-skd", "epochs": e},
        "classic-kd": {"name": "classic-kd", "epochs": e},
        "random-init": {"name": "random-init", "epochs": e},
    }
    s0, rest = seeds[:1], seeds[1:]
    order = ([("ssl-copy", s) for s in s0] + [("single-ws", s) for s in rest[:1]]
             + [("ssl-copy", s) for s in rest[:1]] + [("ssl-sel", s) for s in s0] + [("dual-skd", s) for s in s0]
             + [("single-ws", s) for s in rest[1:]] + [("ssl-copy", s) for s in rest[1:]]
             + [("ssl-sel", s) for s in rest] + [("dual-skd", s) for s in rest]
             + [("ssl-copy-equal", s) for s in seeds] + [("classic-kd", s) for s in seeds]
             + [("random-init", s) for s in seeds] + [("single-ws", s) for s in s0])
    out = []
    for row, seed in order:
        job = {**rows[row], "seed": seed, "fraction": fraction}
        job["key"] = job_key(job)
        out.append(job)
    return out


def job_key(job: dict) -> str:
    name = job["name"] + (f"-{job['b_init']}" if "b_init" in job else "")
    extra = f"+ssl{job['ssl_epochs']}" if "ssl_epochs" in job else ""
    return f"ablate/{job['fraction']}/{name}/{job['epochs']}{extra}/{job['seed']}"


_SPLITS: dict[float, object] = {}


def make_splits_cached(fraction: float):
    if fraction not in _SPLITS:
        _SPLITS[fraction] = make_splits(fraction) if SOURCE == "fashion-mnist" else _source_splits(fraction)
    return _SPLITS[fraction]


def config_for(job: dict):
    """TrainConfig of one ablation row. Every method's CE training runs `epochs` epochs at the same peak lr."""
    from edgeskd.training import TrainConfig

    common = dict(seed=job["seed"], val_every=CURVE_VAL_EVERY.get(job["fraction"], 1), head_init="zero",
                  teacher_epochs=10 if job["fraction"] < 0.1 else 2)
    e = job["epochs"]
    if job["name"] in ("single-ws", "random-init"):
        return TrainConfig(method=job["name"], epochs_skd=e, epochs_finetune=0, **common)
    if job["name"] in ("dual-skd", "classic-kd"):
        # the method's own two-stage schedule (80% KD stage, 20% fine-tuning at 0.3 lr), as ablation_skd ran it
        return TrainConfig(method=job["name"], epochs_skd=e - e // 5, epochs_finetune=e // 5, **common)
    if job["name"] == "ssl-skd":
        return ssl_config(job, common)
    raise SystemExit(f"unknown ablation row {job['name']}")


def ssl_config(job: dict, common: dict):
    """ssl-skd: the BYOL stage over labelled + unlabelled images, then `epochs` of CE exactly as single-ws."""
    from edgeskd.training import TrainConfig

    return TrainConfig(method="ssl-skd", epochs_skd=job["epochs"], epochs_finetune=0, use_unlabelled=True,
                       method_options={"ssl_epochs": job["ssl_epochs"], "target_init": job["b_init"]}, **common)


def ablate(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    deadline = _deadline(args.until)
    teacher = spec = None
    kd_teachers: dict[tuple, torch.nn.Module] = {}
    for fraction in [float(f) for f in args.fractions.split(",")]:
        for job in ablation_jobs(fraction, [int(s) for s in args.seeds.split(",")]):
            if args.only and job["key"] not in args.only.split(","):
                continue
            if job["key"] in _done() or _curve_alias(job) in _done():
                continue
            if deadline is not None and time.time() > deadline:
                print(f"deadline {args.until} passed: not starting {job['key']} or later rows", flush=True)
                return
            data = make_splits_cached(fraction)
            if spec is None or spec.num_classes != len(data.train.classes):
                teacher, spec = _models(len(data.train.classes))
            config = config_for(job)
            kd_teacher = None
            if config.method == "classic-kd":
                from edgeskd.data.preprocess import PreprocessSpec
                from edgeskd.training import finetune_teacher
                from edgeskd.training.trainer import _tensors

                tkey = (fraction, job["seed"])
                if tkey not in kd_teachers:
                    pre = PreprocessSpec.for_model(teacher, size=RES, channels=3)
                    kd_teachers[tkey] = finetune_teacher(teacher, _tensors(data.train, pre), None, config)
                kd_teacher = kd_teachers[tkey]
            _run_job({**job, "kind": "ablate"}, teacher, spec, data, config, kd_teacher)


def _curve_alias(job: dict) -> str:
    """The curve run is the seed-0 single-ws row (same config apart from validation spacing)."""
    if job["name"] == "single-ws" and job["seed"] == 0 and job["epochs"] == curve_epochs(job["fraction"]):
        return f"curve/{job['fraction']}/single-ws/{job['epochs']}/0"
    return ""


def _deadline(until: str) -> float | None:
    if not until:
        return None
    import datetime as dt

    hour, minute = (int(v) for v in until.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()


def _row_name(r: dict) -> str:
    name = r["name"] + (f" (B {r['b_init']})" if "b_init" in r else "")
    return name + (" equal steps" if r.get("equal_steps") else "")


def report(args: argparse.Namespace) -> str:
    records = _records()
    out = [f"# Converged-schedule ablation (issue 15): {SOURCE}, {RES} px, Lite0 0.5/0.5 student", "",
           "Generated by `python benchmarks/ablation_converged.py report` from ablation_converged_runs.jsonl "
           f"({len(records)} runs). " + (
               "Split as benchmarks/ablation_skd.py: val 1,000 training images, test 2,000 stratified test images, "
               "unlabelled pool 9x the labelled count (5,400 at 1%)" if SOURCE == "fashion-mnist" else
               f"The source's own split, val and test capped at {CAPS['val']} and {CAPS['test']} images, unlabelled "
               f"pool {CAPS['unlabelled_per_labelled']}x the labelled count") + "; head zero-initialised.", ""]
    curves = [r for r in records if r["kind"] == "curve"]
    for r in curves:
        out += [f"## Single WS convergence curve, {r['fraction']:.0%} labels ({r['n_train']} images), one cosine "
                f"schedule of {r['epochs']} epochs, seed {r['seed']}", "",
                "| epoch | " + " | ".join(str(c["epoch"]) for c in r["curve"]) + " |",
                "|---|" + "---|" * len(r["curve"]),
                "| val accuracy | " + " | ".join(f"{c['val_accuracy']:.3f}" for c in r["curve"]) + " |", "",
                f"Best val epoch {r['best_epoch']}; test accuracy of that epoch's model {r['test']['accuracy']:.3f} "
                f"({r['steps']} optimizer steps, {r['seconds']:.0f} s).", ""]
    rows: dict[tuple, list[dict]] = {}
    for r in records:
        if r["kind"] == "curve":
            r = {**r, "epochs": r["epochs"]}
        rows.setdefault((r["fraction"], _row_name(r), r["epochs"], r.get("ssl_epochs", 0)), []).append(r)
    base = {(k[0], r["seed"]): r["test"]["accuracy"] for k, rs in rows.items() if k[1] == "single-ws" for r in rs}
    out += ["## Methods at the converged schedule", "",
            "| labels | method | CE epochs | SSL epochs | optimizer steps | n seeds | test accuracy mean ± std | "
            "per seed | paired diff vs single WS (mean, per seed) | macro-F1 | ECE | s/run |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    summary = []
    order = ["single-ws", "ssl-skd (B copy-a)", "ssl-skd (B copy-a) equal steps", "ssl-skd (B selection)", "dual-skd",
             "classic-kd", "random-init"]
    for (fraction, name, epochs, ssl), rs in sorted(rows.items(), key=lambda kv: (
            kv[0][0], order.index(kv[0][1]) if kv[0][1] in order else len(order), kv[0][1:])):
        rs = sorted(rs, key=lambda r: r["seed"])
        acc = [r["test"]["accuracy"] for r in rs]
        mean, std = statistics.fmean(acc), (statistics.stdev(acc) if len(acc) > 1 else 0.0)
        diffs = [r["test"]["accuracy"] - base[(fraction, r["seed"])] for r in rs if (fraction, r["seed"]) in base]
        diff_text = ("-" if name == "single-ws" or not diffs else
                     f"{statistics.fmean(diffs):+.3f} ({', '.join(f'{d:+.3f}' for d in diffs)})")
        steps = ", ".join(sorted({str(r["steps"] + r.get("ssl_steps", 0)) for r in rs}))
        cfg = rs[0]["config"]
        shown = f"{cfg['epochs_skd']}+{cfg['epochs_finetune']}" if cfg["epochs_finetune"] else f"{epochs}"
        out.append(f"| {fraction:.0%} | {name} | {shown} | {ssl} | {steps} | {len(rs)} | {mean:.3f} ± {std:.3f} | "
                   f"{', '.join(f'{a:.3f}' for a in acc)} (seeds {','.join(str(r['seed']) for r in rs)}) | "
                   f"{diff_text} | {statistics.fmean(r['test']['macro_f1'] for r in rs):.3f} | "
                   f"{statistics.fmean(r['test']['ece'] for r in rs):.3f} | "
                   f"{statistics.fmean(r['seconds'] for r in rs):.0f} |")
        summary.append({"fraction": fraction, "method": name, "ce_epochs": epochs, "ssl_epochs": ssl,
                        "seeds": [r["seed"] for r in rs], "accuracy": acc, "mean": mean, "std": std,
                        "paired_diff_vs_single_ws": diffs})
    sizes = {r["fraction"]: (r["n_train"], r["n_unlabelled"]) for r in records}
    # 3 seeds per row at 1% and 10%; at 100% (59,000 labels, about 35 min per run here) one seed per row
    planned = [j for f in sorted(sizes) for j in ablation_jobs(f, [0, 1, 2] if f < 1 else [0], sizes[f])]
    done = _done()
    missing = [j["key"] for j in planned if j["key"] not in done and _curve_alias(j) not in done]
    out += ["", "CE epochs a+b: a epochs of the method's stage-1 loss, then b epochs of fine-tuning at 0.3x lr. s/run is "
            "wall time on a 2-core machine shared with other jobs (load average 2-13 during these runs): not "
            "comparable between rows."]
    if missing:
        out += ["", "Planned and NOT run (the machine ran out of time): " + ", ".join(missing) + "."]
    text = "\n".join(out) + "\n"
    if args.write:
        from edgeskd._io import atomic_write_json, atomic_write_text

        stem = "ablation_converged" + ("" if SOURCE == "fashion-mnist" else f"_{Path(SOURCE).stem}")
        atomic_write_text(RESULTS / f"{stem}.md", text)
        atomic_write_json(RESULTS / f"{stem}.json",
                          {"resolution": RES, "curves": [{k: r[k] for k in ("fraction", "epochs", "seed", "curve",
                                                                              "best_epoch", "test")} for r in curves],
                           "rows": summary, "not_run": missing})
    print(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curve", help="single WS val curve over a long schedule per labelled fraction")
    c.add_argument("--fractions", default="0.01,0.1")
    c.add_argument("--threads", type=int, default=1)
    c.set_defaults(func=curve)
    a = sub.add_parser("ablate", help="every method at the converged schedule, in priority order")
    a.add_argument("--fractions", default="0.01")
    a.add_argument("--seeds", default="0,1,2")
    a.add_argument("--only", default="", help="comma-separated job keys to run")
    a.add_argument("--until", default="", help="HH:MM UTC: start no job after this time")
    a.add_argument("--threads", type=int, default=1)
    a.set_defaults(func=ablate)
    r = sub.add_parser("report", help="write results/ablation_converged.{md,json}")
    r.add_argument("--no-write", dest="write", action="store_false")
    r.set_defaults(func=report)
    al = sub.add_parser("all", help="curve, then ablate (same options), then report")
    al.add_argument("--fractions", default="0.01")
    al.add_argument("--seeds", default="0,1,2")
    al.add_argument("--only", default="")
    al.add_argument("--until", default="")
    al.add_argument("--threads", type=int, default=1)
    al.set_defaults(func=lambda a: (curve(a), ablate(a), report(argparse.Namespace(write=True))))
    for sp in (c, a, r, al):
        sp.add_argument("--data", default="fashion-mnist",
                        help="data source (default fashion-mnist): a MedMNIST .npz, an image folder, a built-in name")
        sp.add_argument("--epochs", type=int, default=0,
                        help="CE epochs of the curve and of every row (default: 90 at 1%%, 12 at 10%% and 100%%)")
    args = parser.parse_args()
    configure(args.data)
    if args.epochs:
        for f in [float(v) for v in getattr(args, "fractions", "0.01").split(",")]:
            CURVE_EPOCHS[f] = args.epochs
            CURVE_VAL_EVERY.setdefault(f, max(1, args.epochs // 30))
    args.func(args)


if __name__ == "__main__":
    main()
