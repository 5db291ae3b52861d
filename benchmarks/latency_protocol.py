"""Latency protocol benchmark: repeatability of the measurement and how close timm students get to this CPU's peak.

    .venv/bin/python benchmarks/latency_protocol.py [--repeats 5] [--runs 100] [--seconds 2] [--target ort-cpu]

Prints two markdown tables, every number measured in this run:
1. Repeatability: the same exported student measured `--repeats` times (each in a fresh worker process, 1 thread);
   each p50 as a ratio to the median of the p50s. Requirement: all within 5% of the median.
2. Physical limit: for a few timm students, achieved FLOP/s (2 x MACs / p50) as a fraction of the single-thread
   peak FLOP/s of float32 matrix multiplies (n = 512, 1024, 2048; torch, 1 thread), timed before and after.
This is a benchmark, not a test: on a shared, throttling machine the numbers move; the script says how much.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import edgeskd.models  # noqa: E402,F401  (installs the torchvision shim timm needs here)
from edgeskd.export.onnx import export_onnx  # noqa: E402
from edgeskd.latency import get_target, measure  # noqa: E402
from edgeskd.models import StudentSpec, build_student, profile_model  # noqa: E402

STUDENTS = [  # (label, spec): small students of four families at 128 px
    ("resnet50 d0.5 w0.5", StudentSpec("resnet50", depth=0.5, width=0.5, resolution=128, num_classes=2)),
    ("efficientnet_lite0 d0.5 w0.5", StudentSpec("tf_efficientnet_lite0", depth=0.5, width=0.5, resolution=128,
                                                 num_classes=2)),
    ("convnext_tiny d0.34 w0.5", StudentSpec("convnext_tiny", depth=0.34, width=0.5, resolution=128, num_classes=2)),
    ("vit_small_patch16 d0.5 w0.5", StudentSpec("vit_small_patch16_224", depth=0.5, width=0.5, resolution=128,
                                                num_classes=2)),
]


def gemm_peaks() -> dict[int, float]:
    """Peak at three sizes; the largest figure is the CPU's single-thread float32 peak as seen in this run (on
    this shared machine the 512 product, which stays in cache and fits in a time slice, gets closest)."""
    return {n: matmul_peak_gflops(n, max(10, int(200 * (512 / n) ** 3))) for n in (512, 1024, 2048)}


def matmul_peak_gflops(n: int = 1024, repeats: int = 40) -> float:
    """Best-of-`repeats` single-thread float32 GEMM throughput (2 n^3 FLOPs per product). Many short products, best
    one kept: on shared cores most of them are interrupted, and the peak is what an uninterrupted one achieves."""
    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def repeatability(onnx_path: Path, target_name: str, repeats: int, runs: int, seconds: float) -> None:
    target = get_target(target_name, threads=1)
    rows = []
    for i in range(repeats):
        m = measure(onnx_path, target, runs=runs, seconds=seconds, warmup_s=0.5)
        rows.append((i + 1, m.stats["p50"], m.stats["p95"], m.stats["cv"], m.stats["n"]))
    median = statistics.median(r[1] for r in rows)
    print(f"\n### Repeatability: {onnx_path.name} on {target.name}, 1 thread, {repeats} fresh processes\n")
    print("| repeat | p50 ms | p50 / median | p95 ms | cv | n |")
    print("|---|---|---|---|---|---|")
    for i, p50, p95, cv, n in rows:
        print(f"| {i} | {p50:.3f} | {p50 / median:.3f} | {p95:.3f} | {cv:.3f} | {n} |")
    spread = max(abs(r[1] / median - 1) for r in rows)
    verdict = "within" if spread <= 0.05 else "OUTSIDE"
    print(f"\nmax |p50 / median - 1| = {100 * spread:.1f}% ({verdict} the 5% requirement)")


def physical_limit(target_name: str, runs: int, seconds: float, tmp: Path) -> None:
    target = get_target(target_name, threads=1)
    before = gemm_peaks()
    rows = []
    for label, spec in STUDENTS:
        torch.manual_seed(0)
        model = build_student(spec).eval()
        macs = profile_model(model, spec.resolution).macs
        path = export_onnx(model, tmp / f"{label.split()[0]}.onnx", resolution=spec.resolution)
        m = measure(path, target, runs=runs, seconds=seconds, warmup_s=0.5)
        rows.append((label, 2 * macs / 1e9, m.stats["p50"], m.stats["cv"]))
    after = gemm_peaks()
    peak = max(*before.values(), *after.values())
    shown = ", ".join(f"n={n}: {before[n]:.1f} / {after[n]:.1f}" for n in before)
    print(f"\n### Physical limit on {target.name}, 1 thread\n\nfloat32 GEMM GFLOP/s before / after the models "
          f"({shown}); peak used for the ratios: {peak:.1f} GFLOP/s\n")
    print("| student @128 px | GFLOPs | p50 ms | achieved GFLOP/s | fraction of GEMM peak | cv |")
    print("|---|---|---|---|---|---|")
    for label, gflops, p50, cv in rows:
        achieved = gflops / (p50 / 1000)
        print(f"| {label} | {gflops:.3f} | {p50:.3f} | {achieved:.1f} | {achieved / peak:.2f} | {cv:.3f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="ort-cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# Latency protocol benchmark ({time.strftime('%Y-%m-%d %H:%M')}, target {args.target})")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        label, spec = STUDENTS[1]
        path = export_onnx(build_student(spec).eval(), tmp / "repeat.onnx", resolution=spec.resolution)
        repeatability(path, args.target, args.repeats, args.runs, args.seconds)
        physical_limit(args.target, args.runs, args.seconds, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
