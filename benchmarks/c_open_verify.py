"""What integrity checking costs the C runtime: edgeskd_open time for a ~20 MB model, and SHA-256 throughput of the
SHA-NI and portable implementations (deploy/src/sha256.c).

    .venv/bin/python benchmarks/c_open_verify.py [--opens 15] [--repeats 10] [--out benchmarks/results/c_open_verify.md]

edgeskd_open always verifies (there is no switch to turn it off), so the unverified open time is derived: the open
reads each model file once into memory anyway (ONNX Runtime is handed the checked bytes), and what verification adds
on top is hashing those bytes plus manifest.json. "Unverified (derived)" = open - hash time of the same bytes with the
implementation the library picks (SHA-NI when the CPU has it). Opens are timed in this process through ctypes after one warm-up open (files in
the page cache); hashing is timed by deploy/build/test_sha256 (best of --repeats over the bytes in memory).
The machine is shared: read the ratios, and the load printed with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "deploy" / "build"
sys.path.insert(0, str(ROOT / "deploy" / "tools"))


def make_bundle(folder: Path) -> Path:
    """An ONNX-only bundle of a full-size EfficientNet-Lite2 student at 128 px, 2 classes (19.3 MB of float32 weights)."""
    import torch

    from edgeskd.data.preprocess import PreprocessSpec
    from edgeskd.export import export_bundle
    from edgeskd.models import Checkpoint, StudentSpec, build_student

    torch.manual_seed(0)
    spec = StudentSpec("tf_efficientnet_lite2", 1.0, 1.0, 128, num_classes=2, in_chans=3)
    model = build_student(spec).eval()
    pre = PreprocessSpec.for_model(model, size=128, channels=3)
    ckpt = Checkpoint(model, spec, pre, ["NORMAL", "PNEUMONIA"], {"note": "benchmark student"})
    return Path(export_bundle(ckpt, folder / "bundle", formats=("onnx",)).path)


def hash_seconds(path: Path, impl: str, repeats: int) -> tuple[float, str] | None:
    run = subprocess.run([str(BUILD / "test_sha256"), str(path), impl, str(repeats)], capture_output=True, text=True)
    if run.returncode != 0:
        return None  # no SHA-NI on this CPU
    _, seconds, used = run.stdout.split()
    return float(seconds), used


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--opens", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "c_open_verify.md")
    args = parser.parse_args()
    if not (BUILD / "libedgeskd.so").exists() or not (BUILD / "test_sha256").exists():
        sys.exit("c_open_verify: build the C runtime first (deploy/build.sh)")
    from cruntime import CModel

    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp))
        model_file = bundle / "model.onnx"
        size = model_file.stat().st_size
        manifest_size = (bundle / "manifest.json").stat().st_size
        CModel(bundle, threads=1).close()  # warm-up: page cache, runtime library loading
        opens = []
        for _ in range(args.opens):
            start = time.perf_counter()
            CModel(bundle, threads=1).close()
            opens.append(time.perf_counter() - start)
        hashes = {impl: hash_seconds(model_file, impl, args.repeats) for impl in ("shani", "portable")}
    open_ms = statistics.median(opens) * 1e3
    # the library takes SHA-NI whenever the CPU has it (the same CPUID test as test_sha256's)
    auto_impl = "shani" if hashes["shani"] else "portable"
    auto_s, _ = hashes[auto_impl]
    hash_ms = auto_s * 1e3 * (size + manifest_size) / size  # the manifest is hashed too (at the same rate)
    base_ms = open_ms - hash_ms
    load = os.getloadavg()
    lines = [
        "# C runtime: the cost of verifying a bundle at open",
        "",
        f"Produced by `benchmarks/c_open_verify.py --opens {args.opens} --repeats {args.repeats}` on "
        f"{_cpu()}, {os.cpu_count()} CPUs shared with other jobs (load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} at the end). ONNX Runtime backend, 1 thread.",
        "",
        f"Model: full-size EfficientNet-Lite2 student, 128 px, 2 classes, model.onnx = {size / 1e6:.1f} MB, manifest.json = "
        f"{manifest_size / 1e3:.1f} kB.",
        "",
        "| what | time | throughput |",
        "|---|---|---|",
    ]
    for impl in ("shani", "portable"):
        if hashes[impl] is None:
            lines.append(f"| sha256 of model.onnx, {impl} | not available on this CPU | |")
        else:
            s, _ = hashes[impl]
            lines.append(f"| sha256 of model.onnx, {impl} (best of {args.repeats}) | {s * 1e3:.1f} ms | "
                         f"{size / s / 1e6:.0f} MB/s |")
    lines += [
        f"| edgeskd_open, verified (median of {args.opens}; p10 {_pct(opens, 10):.1f}, p90 {_pct(opens, 90):.1f} ms)"
        f" | {open_ms:.1f} ms | |",
        f"| of which hashing ({auto_impl}, model.onnx + manifest.json) | {hash_ms:.1f} ms | |",
        f"| edgeskd_open without hashing (derived: open - hashing) | {base_ms:.1f} ms | |",
        "",
        f"Relative open cost of verification: **+{100 * hash_ms / base_ms:.0f}%** with {auto_impl} "
        f"({hash_ms:.1f} ms on {base_ms:.1f} ms)."
    ]
    if hashes["portable"] and hashes["shani"]:
        portable_ms = hashes["portable"][0] * 1e3 * (size + manifest_size) / size
        lines.append(f"With the portable implementation (a CPU without SHA-NI) it would be "
                     f"+{100 * portable_ms / base_ms:.0f}% ({portable_ms:.1f} ms).")
    lines += ["", "Reading the files is not counted as verification cost: the runtime reads each model file once "
              "either way (the checked bytes are what the backend loads).", ""]
    text = "\n".join(lines)
    print(text)
    from edgeskd._io import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)


def _pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1e3


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
