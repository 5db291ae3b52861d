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

Repetitions (issue 14): `--repetitions 3 --before-src DIR` runs the same search 3 times (search seeds 0, 1, 2; same
data, same budget) with the code in DIR (an older edgeskd tree, e.g. `git archive b667c0e edgeskd | tar -x -C DIR`)
and with this tree, interleaved (before 0, after 0, before 1, ...) so machine load drifts over both alike, each in
its own process at one thread. The teacher is only measured (untrained; latency does not depend on weights) to set
the budget, once, in this process. Per run: trials that trained a feasible candidate out of those counted, the
probing share of the search wall time (latency map + per-trial probes), and the winner's test accuracy; then the
mean and spread over repetitions. Writes a markdown table (--results).
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

    def load(source: str, *, seed: int = 0, train_fraction: float = 1.0, **_split_options):
        # the subsets below are the split: the search's own split options (val/test fraction, ...) do not apply
        from edgeskd.data import DatasetSplits, load_dataset

        full = load_dataset("fashion-mnist", seed=seed)
        rng = np.random.default_rng(seed)
        pick = lambda part, n: part.subset(np.sort(rng.permutation(len(part))[:n]))  # noqa: E731
        return DatasetSplits(train=pick(full.train, n_train), val=pick(full.val, n_val), test=pick(full.test, n_test),
                             unlabelled=None, name=f"fashion-mnist-{n_train}")

    return load


def one_run(args) -> int:
    """Child of --repetitions: one search with the edgeskd package under --src; writes result.json."""
    import dataclasses

    # The venv's editable install answers `import edgeskd` before sys.path does: drop its finder, put --src first.
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")
                        and "__editable__" not in getattr(type(f), "__module__", "")]
    sys.path.insert(0, args.src)

    import torch

    torch.set_num_threads(1)
    import edgeskd
    import edgeskd.errors
    from edgeskd.search import SearchConfig, run_search
    from edgeskd.search.config import space_digest
    from edgeskd.search.stages import real_stages

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    space_path = str(Path(__file__).with_name("search_budget_space.yaml").resolve())
    stages = dataclasses.replace(real_stages(), load_data=subset_loader(args.train, args.val, args.test))
    config = SearchConfig(data="fashion-mnist", teacher="tf_efficientnet_lite0", target="ort-cpu",
                          latency_ms=args.budget_ms, trials=args.trials, space=space_path,
                          space_sha256=space_digest(space_path), study="bench", run_dir=str((out / "search").resolve()),
                          metric="accuracy", seed=args.seed, statistic=args.statistic)
    t0 = time.perf_counter()
    try:
        summary = run_search(config, stages=stages, show_progress=False)
    except edgeskd.errors.SearchError as exc:
        # e.g. the winner missed the budget when re-measured after final training (noise on a loaded machine):
        # the summary is written all the same, with the winner's metrics; the table says it missed
        summary = json.loads((out / "search" / "summary.json").read_text())
        if not summary.get("winner"):
            raise
        print(f"search ended with: {exc}", file=sys.stderr)
    counts = summary["counts"]
    trained = counts.get("completed", 0) + counts.get("pruned-metric", 0)   # feasible and trained (both versions)
    counted = trained + counts.get("failed", 0) + (0 if "trained" in summary else counts.get("pruned-latency", 0))
    record = {"edgeskd": str(Path(edgeskd.__file__).parent), "seed": args.seed, "budget_ms": args.budget_ms,
              "counts": counts, "trained_feasible": trained, "counted": counted,
              "search_seconds": summary["search_seconds"], "probe_seconds": summary["time"]["probe_seconds"],
              "map": summary.get("latency_map"), "total_seconds": round(time.perf_counter() - t0, 1),
              "test_accuracy": summary["winner"]["test"]["accuracy"], "winner": summary["winner"]["student"],
              "winner_latency": summary["winner"]["latency_ms"][args.statistic], "statistic": args.statistic,
              "winner_ok": summary["winner"]["budget_ok"]}
    (out / "result.json").write_text(json.dumps(record, indent=2, default=str))
    return 0


def repetitions(args) -> int:
    import os
    import subprocess

    import torch

    torch.set_num_threads(1)
    from edgeskd.latency import get_target, measure_model
    from edgeskd.models import StudentSpec, build_student, load_teacher
    from edgeskd.search.space import load_space

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = load_space(str(Path(__file__).with_name("search_budget_space.yaml").resolve()))
    side = max(space.student["resolution"].values())
    teacher = load_teacher("tf_efficientnet_lite0")
    full = build_student(StudentSpec("tf_efficientnet_lite0", resolution=side, num_classes=10), teacher)
    stat = args.statistic
    if args.budget_ms:  # a second process continuing the same comparison: the teacher measured by the first
        teacher_p95, budget = args.budget_ms / args.budget_fraction, args.budget_ms
    else:
        teacher_p95 = measure_model(full, side, get_target("ort-cpu")).stats[stat]
        budget = round(args.budget_fraction * teacher_p95, 3)
    print(f"teacher {stat} {teacher_p95:.3f} ms at {side} px -> budget {budget} ms", flush=True)
    here = str(Path(__file__).resolve().parents[1])
    trees = ([("before", str(Path(args.before_src).resolve()))] if args.before_src else []) + [("after", here)]
    results: dict[str, list[dict]] = {name: [] for name, _ in trees}
    for rep in range(args.first_rep, args.repetitions):
        for name, tree in trees:
            run_out = out / f"{name}-{rep}"
            cmd = [sys.executable, __file__, "--one", "--src", tree, "--seed", str(rep), "--budget-ms", str(budget), "--out",
                   str(run_out), "--trials", str(args.trials), "--train", str(args.train), "--val", str(args.val),
                   "--test", str(args.test), "--statistic", stat]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{name} rep {rep} failed ({proc.returncode}): {proc.stderr[-1500:]}", flush=True)
                continue
            r = json.loads((run_out / "result.json").read_text())
            assert Path(r["edgeskd"]).parent == Path(tree), f"{name} ran {r['edgeskd']}, not {tree}"
            results[name].append(r)
            print(f"{name} rep {rep}: {time.perf_counter() - t0:.0f} s, counts {r['counts']}, probe "
                  f"{r['probe_seconds'] / r['search_seconds']:.1%}, test acc {r['test_accuracy']:.4f}", flush=True)
            write_tables(args, out, budget, teacher_p95, side, results)
    return 0


def write_tables(args, out: Path, budget: float, teacher_p95: float, side: int, results: dict) -> None:
    """The tables so far (written after every run, so a cut-off benchmark still leaves its numbers)."""
    import statistics

    stat = args.statistic
    (out / "repetitions.json").write_text(json.dumps({"budget_ms": budget, "teacher_p95": teacher_p95,
                                                      "results": results}, indent=2, default=str))

    def spread(xs: list[float]) -> str:
        return f"{statistics.mean(xs):.4f} +- {statistics.stdev(xs):.4f}" if len(xs) > 1 else (
            f"{xs[0]:.4f}" if xs else "n/a")

    lines = [f"Budget {stat} <= {budget} ms ({args.budget_fraction} x the untrained teacher's {stat} {teacher_p95:.3f} ms "
             f"at {side} px on ort-cpu), {args.trials} trials, Fashion-MNIST {args.train} train / {args.val} val / "
             f"{args.test} test, one thread, search seeds 0..{args.repetitions - 1}.", "",
             "| code | rep | trials counted | trained a feasible candidate | outcomes | latency map (measured / "
             f"known) | probing s | search wall s | probing share | winner (d, w, px) | winner {stat} ms (re-measured) | "
             "test accuracy |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, rs in results.items():
        for r in rs:
            m = r["map"]
            map_text = f"{m['measured']} / {m['size']}" if m else "none (trials probe)"
            w = r["winner"]
            lines.append(f"| {name} | {r['seed']} | {r['counted']} | {r['trained_feasible']} "
                         f"({r['trained_feasible'] / max(1, r['counted']):.0%}) | "
                         + ", ".join(f"{v} {k}" for k, v in r["counts"].items())
                         + f" | {map_text} | "
                         f"{r['probe_seconds']:.1f} | {r['search_seconds']:.1f} | "
                         f"{r['probe_seconds'] / r['search_seconds']:.1%} | {w['depth']}, {w['width']}, "
                         f"{w['resolution']} | {r['winner_latency']:.3f}{'' if r['winner_ok'] else ' MISSED'} | "
                         f"{r['test_accuracy']:.4f} |")
    lines += ["", "| code | runs | feasible trained / counted | probing share (mean +- sd) | best test accuracy "
              "(mean +- sd) |", "|---|---|---|---|---|"]
    for name, rs in results.items():
        if not rs:
            continue
        lines.append(f"| {name} | {len(rs)} | {sum(r['trained_feasible'] for r in rs)} / "
                     f"{sum(r['counted'] for r in rs)} | "
                     f"{spread([r['probe_seconds'] / r['search_seconds'] for r in rs])} | "
                     f"{spread([r['test_accuracy'] for r in rs])} |")
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    if args.results:
        Path(args.results).write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--budget-fraction", type=float, default=0.6)
    ap.add_argument("--statistic", default="p95", help="latency statistic of the budget (repetitions only)")
    ap.add_argument("--out", default="runs/bench-search")
    ap.add_argument("--repetitions", type=int, default=0, help="compare runs (see the module docstring)")
    ap.add_argument("--before-src", default=None, help="folder holding an older edgeskd package to compare with")
    ap.add_argument("--results", default=None, help="write the repetition tables here (markdown)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)   # child of --repetitions
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--src", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--first-rep", type=int, default=0, help="start at this repetition (with --budget-ms of the "
                    "process that ran the earlier ones)")
    ap.add_argument("--merge", nargs="+", default=None, help="write the tables of these repetitions.json files")
    ap.add_argument("--budget-ms", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one_run(args)
    if args.merge:
        runs = [json.loads(Path(f).read_text()) for f in args.merge]
        results: dict[str, list[dict]] = {}
        for r in runs:
            for name, rs in r["results"].items():
                results.setdefault(name, []).extend(rs)
        for rs in results.values():
            rs.sort(key=lambda r: r["seed"])
        write_tables(args, Path(args.out), runs[0]["budget_ms"], runs[0]["teacher_p95"], 64, results)
        return 0
    if args.repetitions:
        return repetitions(args)

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
