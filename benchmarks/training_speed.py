"""Training speed: images per second per memory format / precision, against the machine's GEMM peak, and the
search's trials per hour before and after issue 13's trainer.

1. Throughput: one training step (forward, backward, AdamW) of two EfficientNet-Lite0 students (x0.5 and x1.0) at
   64 and 224 px, in three modes, in one process: fp32 (default layout), fp32 channels_last, bf16 autocast. The
   achieved fraction of peak is 3 x forward FLOPs x img/s / (measured square-GEMM FLOP/s of this device and dtype);
   3 x forward is the usual estimate of forward + backward. Also the edgeskd trainer's own img/s (single-ws: one
   forward + augmentation + bookkeeping) next to the plain step of the same model, batch and mode.
2. Trials per hour: the same fixed list of search trials (students from benchmarks/search_budget_space.yaml, the
   search's trial schedule, dual-skd) trained by the trainer of commit --before (extracted with git archive into a
   temporary folder) and by this working tree, each in its own process, one thread.

Usage:  .venv/bin/python benchmarks/training_speed.py [--device cpu|cuda] [--trials 6] [--skip-search]
        (writes benchmarks/results/training_speed.md and .json; numbers on a shared machine are noisy: the load
        average is printed with the results)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDENTS = [("Lite0 x0.5", 0.5, 0.5), ("Lite0 x1.0", 1.0, 1.0)]
MODES = ("fp32", "channels_last", "bf16")
# a fixed sample of the search_budget space (depth, width, px): the same trials before and after
TRIALS = [(0.5, 0.5, 64), (1.0, 0.5, 48), (0.5, 1.0, 64), (0.25, 0.75, 32), (0.75, 0.75, 64), (1.0, 1.0, 48)]


def gemm_peak(device, dtype, n: int = 1024, budget_s: float = 6.0) -> float:
    """FLOP/s of the best of several n x n x n matrix products (fewer when a dtype is slow here, e.g. emulated bf16
    on a CPU without bf16 instructions)."""
    import torch

    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best, spent, reps = float("inf"), 0.0, 0
    while reps < 9 and (reps < 2 or spent < budget_s):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        (a @ b).sum().item()
        dt = time.perf_counter() - t0
        if reps:  # the first product warms up
            best = min(best, dt)
        spent += dt
        reps += 1
    return 2 * n ** 3 / best


def reference_peak(peaks: dict[str, float], mode: str) -> float:
    """The peak a mode is measured against: bf16's own GEMM peak where it is faster than fp32's (native bf16 units),
    else fp32's (emulated bf16 runs on the fp32 units, and its GEMM path is slower than its convolution path)."""
    return peaks["bf16"] if mode == "bf16" and peaks["bf16"] > peaks["fp32"] else peaks["fp32"]


def step_throughputs(make_model, batch: int, res: int, device, steps: int,
                     budget_s: float = 25.0) -> dict[str, float]:
    """img/s of plain training steps (the 'timm-style' loop: forward, CE, backward, AdamW) per mode. The modes take
    turns step by step (one model each), so a change of load on a shared machine hits all of them alike."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(batch, 3, res, res, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    setups = {}
    for mode in MODES:
        cl = mode == "channels_last"
        model = make_model().to(device).to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        x = x0.contiguous(memory_format=torch.channels_last) if cl else x0
        setups[mode] = (model.train(), torch.optim.AdamW(model.parameters(), lr=1e-4), x,
                        torch.bfloat16 if mode == "bf16" else None)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for i in range(steps + 1):  # round 0 warms every mode up
        for mode, (model, opt, x, dtype) in setups.items():
            if len(times[mode]) >= 1 and sum(times[mode]) > budget_s:
                continue  # a very slow mode (emulated bf16) gets fewer steps, not hours
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times[mode].append(time.perf_counter() - t0)
    return {mode: batch / sorted(t)[len(t) // 2] for mode, t in times.items()}  # median step


def trainer_throughput(spec, batch: int, mode: str, device_name: str, n_images: int) -> float:
    """img/s of edgeskd's trainer (single-ws, stage 1 only, augmentation on) on random images, from its epoch log."""
    import numpy as np

    from edgeskd.data import DatasetSplits, ImageSet
    from edgeskd.models import load_teacher
    from edgeskd.training import TrainConfig, train

    rng = np.random.default_rng(0)
    side = spec.resolution

    def part(n):
        return ImageSet(rng.integers(0, 255, (n, side, side, 3), dtype=np.uint8), rng.integers(0, 10, n),
                        [f"c{i}" for i in range(10)])

    splits = DatasetSplits(part(n_images), part(batch), part(0), None, "random")
    config = TrainConfig(method="single-ws", epochs_skd=2, epochs_finetune=0, batch_size=batch, device=device_name,
                         precision="bf16" if mode == "bf16" else "fp32",
                         channels_last="on" if mode == "channels_last" else "off")
    result = train(spec, splits, load_teacher("tf_efficientnet_lite0"), config, progress=False)
    last = result.history[-1]  # epoch 2: warm
    return (n_images // batch) * batch / last["train_seconds"]


def throughput_table(device_name: str, quick: bool) -> dict:
    import torch

    from edgeskd.models import StudentSpec, build_student, profile_model
    from edgeskd.training.device import resolve_device

    device = resolve_device(device_name)
    peaks = {"fp32": gemm_peak(device, torch.float32), "bf16": gemm_peak(device, torch.bfloat16)}
    rows = []
    for name, depth, width in STUDENTS:
        for res in (64, 224):
            batch = 64 if res == 64 else 32
            spec = StudentSpec("tf_efficientnet_lite0", depth, width, res, num_classes=10)
            flops = 2 * profile_model(build_student(spec), res).macs
            steps = 3 if quick else (7 if res == 64 else 3)
            torch.manual_seed(0)
            ips_by_mode = step_throughputs(lambda: build_student(spec), batch, res, device, steps)
            for mode, ips in ips_by_mode.items():
                peak = reference_peak(peaks, mode)
                row = {"student": name, "px": res, "batch": batch, "mode": mode, "img_s": ips,
                       "fwd_gflop_per_img": flops / 1e9, "peak_fraction": 3 * flops * ips / peak}
                rows.append(row)
                print(json.dumps(row), flush=True)
    trainer_rows = []
    spec = StudentSpec("tf_efficientnet_lite0", 0.5, 0.5, 64, num_classes=10)
    torch.manual_seed(0)
    plain = step_throughputs(lambda: build_student(spec), 64, 64, device, 7)
    for mode in MODES:
        # about 20 s of images per epoch at the plain step's speed (emulated bf16 is very slow on some CPUs)
        n_images = int(min(640 if quick else 1280, max(128, plain[mode] * 20)) // 64 * 64)
        ours = trainer_throughput(spec, 64, mode, device_name, n_images)
        trainer_rows.append({"mode": mode, "plain_img_s": plain[mode], "trainer_img_s": ours})
        print(json.dumps(trainer_rows[-1]), flush=True)
    return {"device": str(device), "peaks_gflops": {k: v / 1e9 for k, v in peaks.items()}, "rows": rows,
            "trainer": trainer_rows,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


# -- trials per hour ---------------------------------------------------------------------------------------------------

def trials_worker(n_trials: int, n_train: int, n_val: int) -> None:
    """Runs inside a subprocess whose sys.path starts with the code under test; prints one JSON line."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from edgeskd.data import DatasetSplits, load_dataset
    from edgeskd.models import StudentSpec, load_teacher
    from edgeskd.training import TrainConfig, train

    import edgeskd

    full = load_dataset("fashion-mnist", seed=0)
    rng = np.random.default_rng(0)
    pick = lambda part, n: part.subset(np.sort(rng.permutation(len(part))[:n]))  # noqa: E731
    data = DatasetSplits(pick(full.train, n_train), pick(full.val, n_val), pick(full.test, n_val), None, "fmnist")
    teacher = load_teacher("tf_efficientnet_lite0")
    seconds, accs = [], []
    for depth, width, px in TRIALS[:n_trials]:
        spec = StudentSpec("tf_efficientnet_lite0", depth, width, px, num_classes=10)
        config = TrainConfig(method="dual-skd", batch_size=64, b_init="copy-a", epochs_skd=3, epochs_finetune=1,
                             lr=1e-3, kd_weight=1.0)
        t0 = time.perf_counter()
        result = train(spec, data, teacher, config, progress=False)
        seconds.append(time.perf_counter() - t0)
        accs.append(result.metrics["val"]["accuracy"])
        print(f"  trial {spec.depth}/{spec.width}/{px}px: {seconds[-1]:.1f} s, val acc {accs[-1]:.4f}",
              file=sys.stderr, flush=True)
    print(json.dumps({"code": str(Path(edgeskd.__file__).parent.parent), "seconds": seconds, "val_accuracy": accs,
                      "runtime": result.info.get("runtime")}))


def run_trials(code_root: Path, n_trials: int, n_train: int, n_val: int, cache_dir: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "1", "EDGESKD_CACHE_DIR": cache_dir}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--trials-worker", str(n_trials), "--train", str(n_train),
           "--val", str(n_val)]
    proc = subprocess.run(cmd, env=env, cwd=code_root, capture_output=True, text=True)
    sys.stderr.write(proc.stderr[-4000:])
    if proc.returncode != 0:
        raise SystemExit(f"trial run in {code_root} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def search_table(before: str, n_trials: int, n_train: int, n_val: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="edgeskd-before-") as tmp, \
            tempfile.TemporaryDirectory(prefix="edgeskd-cache-") as cache:
        archive = subprocess.run(["git", "archive", before, "edgeskd"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        out = {}
        # after first: its memory-format probe runs inside the measured time (the cache starts empty)
        for label, root in (("after", ROOT), ("before", Path(tmp))):
            print(f"trials with the {label} trainer ({root})", file=sys.stderr, flush=True)
            out[label] = run_trials(root, n_trials, n_train, n_val, cache)
    for label in ("before", "after"):
        out[label]["trials_per_hour"] = 3600 * len(out[label]["seconds"]) / sum(out[label]["seconds"])
    out["speedup"] = out["after"]["trials_per_hour"] / out["before"]["trials_per_hour"]
    out["before_commit"] = before
    return out


# -- report ------------------------------------------------------------------------------------------------------------

def markdown(result: dict) -> str:
    lines = [f"`{result['command']}` on {result['machine']}, {result['date']}.",
             f"Load average before / after: {result['load_before']} / {result['load_after']} (2 cores shared with other "
             f"jobs: absolute numbers are noisy; ratios come from one process, modes interleaved per model).", ""]
    t = result.get("throughput")
    if t:
        peaks = ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in t["peaks_gflops"].items())
        lines += [f"## Training images per second on {t['device']}{' (' + t['gpu'] + ')' if t['gpu'] else ''}, "
                  f"one thread" if t["device"] == "cpu" else f"## Training images per second on {t['device']}"
                  f"{' (' + t['gpu'] + ')' if t['gpu'] else ''}", "",
                  f"Measured square-GEMM peak (1024^3, best of up to 8; torch reports CPU capability "
                  f"{result['cpu_capability']}: without AVX512-BF16/AMX, bf16 is emulated, and the bf16 rows are "
                  f"then measured against the fp32 peak): {peaks}. Plain step = forward + CE + backward + "
                  f"AdamW on one batch; fraction of peak = 3 x forward FLOPs x img/s / peak of the mode's dtype.", "",
                  "| student | px | batch | fwd GFLOP/img | fp32 img/s | channels_last img/s | bf16 img/s | "
                  "channels_last / fp32 | bf16 / fp32 | peak fraction fp32 / cl / bf16 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        by = {}
        for r in t["rows"]:
            by.setdefault((r["student"], r["px"]), {})[r["mode"]] = r
        for (student, px), m in by.items():
            f, c, b = m["fp32"], m["channels_last"], m["bf16"]
            lines.append(f"| {student} | {px} | {f['batch']} | {f['fwd_gflop_per_img']:.3f} | {f['img_s']:.1f} | "
                         f"{c['img_s']:.1f} | {b['img_s']:.1f} | {c['img_s'] / f['img_s']:.2f}x | "
                         f"{b['img_s'] / f['img_s']:.2f}x | {f['peak_fraction']:.1%} / {c['peak_fraction']:.1%} / "
                         f"{b['peak_fraction']:.1%} |")
        lines += ["", "edgeskd's trainer (single-ws: augmentation, one forward, logging) vs the plain step, Lite0 x0.5, "
                      "64 px, batch 64:", "", "| mode | plain step img/s | trainer img/s | trainer / plain |",
                  "|---|---|---|---|"]
        for r in t["trainer"]:
            lines.append(f"| {r['mode']} | {r['plain_img_s']:.1f} | {r['trainer_img_s']:.1f} | "
                         f"{r['trainer_img_s'] / r['plain_img_s']:.2f} |")
        lines.append("")
    s = result.get("search")
    if s:
        n = len(s["after"]["seconds"])
        lines += [f"## Search trials per hour, before ({s['before_commit']}) and after", "",
                  f"{n} fixed trials of the search_budget space (dual-skd, trial schedule 3+1 epochs, batch 64, "
                  f"Fashion-MNIST subset), each trainer in its own process, one thread, the same machine one after "
                  f"the other. Training is 91% of a search's wall time (benchmarks/results/search_budget.md), so the "
                  f"search's own speed-up is about 1 / (0.09 + 0.91 / x).", "",
                  "| trainer | seconds per trial | trials per hour | val accuracy per trial |", "|---|---|---|---|"]
        for label in ("before", "after"):
            r = s[label]
            lines.append(f"| {label} | {', '.join(f'{v:.1f}' for v in r['seconds'])} | {r['trials_per_hour']:.1f} | "
                         f"{', '.join(f'{v:.3f}' for v in r['val_accuracy'])} |")
        x = s["speedup"]
        lines += ["", f"Trials per hour after / before: **{x:.2f}x** (goal 1.4x; search end to end about "
                      f"{1 / (0.09 + 0.91 / x):.2f}x). After-run memory format decision: "
                      f"{json.dumps((s['after'].get('runtime') or {}).get('probe'))}.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--before", default="b667c0e", help="commit whose trainer is 'before'")
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--quick", action="store_true", help="fewer timed steps")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training_speed"))
    ap.add_argument("--trials-worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--render", help="re-render the markdown from a saved .json (no measurement)")
    args = ap.parse_args()
    if args.trials_worker:
        trials_worker(args.trials_worker, args.train, args.val)
        return 0
    if args.render:
        result = json.loads(Path(args.render).read_text())
        t = result.get("throughput")
        if t:  # recompute fractions with the current reference-peak rule
            peaks = {k: v * 1e9 for k, v in t["peaks_gflops"].items()}
            for r in t["rows"]:
                r["peak_fraction"] = 3 * r["fwd_gflop_per_img"] * 1e9 * r["img_s"] / reference_peak(peaks, r["mode"])
        text = "# Training speed (benchmarks/training_speed.py)\n\n" + markdown(result)
        Path(args.render).with_suffix(".md").write_text(text)
        print(text)
        return 0

    import platform

    import torch

    torch.set_num_threads(1)
    result = {"command": "benchmarks/training_speed.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{platform.processor() or platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}"
                         f", cpu capability {torch.backends.cpu.get_cpu_capability()}",
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "load_before": " ".join(f"{v:.2f}" for v in os.getloadavg())}
    if not args.skip_throughput:
        result["throughput"] = throughput_table(args.device, args.quick)
    if not args.skip_search:
        result["search"] = search_table(args.before, args.trials, args.train, args.val)
    result["load_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from edgeskd._io import atomic_write_json, atomic_write_text

    atomic_write_json(out.with_suffix(".json"), result)
    atomic_write_text(out.with_suffix(".md"), "# Training speed (benchmarks/training_speed.py)\n\n" + markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
