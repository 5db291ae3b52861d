"""Optional INT8: ONNX Runtime static quantisation (QDQ, per-channel int8 weights, uint8 activations) calibrated on
real images, kept only when it is both faster on this machine's ONNX Runtime CPU provider and within the allowed
accuracy drop. Otherwise the decision and its numbers are reported and the file is not kept.

Accuracy drop: with labelled images, (PyTorch FP32 accuracy - INT8 accuracy). Without labels, the fraction of images
whose top-1 class changes against PyTorch: an upper bound on the accuracy drop, so the rule stays conservative.

Speed: batch-1 latency of the FP32 and the INT8 ONNX file measured in the same process, one thread, rounds
alternating between the two, median over rounds. This is a local A/B ratio for the keep/drop decision only; the
product's latency numbers come from the latency stage (separate process, fingerprinted).
"""

from __future__ import annotations

import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeskd.errors import ExportError


# "Faster" means by more than timing noise on a shared CPU: at least 5% lower median latency.
MIN_SPEEDUP = 1.05


@dataclass(frozen=True)
class Int8Decision:
    kept: bool
    reason: str
    fp32_ms: float
    int8_ms: float
    speedup: float           # fp32_ms / int8_ms
    accuracy_drop: float
    drop_basis: str          # "labels" or "top-1 changes vs PyTorch (upper bound)"
    max_accuracy_drop: float
    calibration_images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantize_int8(onnx_path: str | os.PathLike, out_path: str | os.PathLike, calibration: np.ndarray) -> Path:
    """Static INT8 QDQ quantisation of `onnx_path` calibrated on `calibration` (N, C, S, S) float32, written
    atomically (the ONNX Runtime adapter's int8 build)."""
    from edgeskd.runtimes.onnxruntime import quantize_qdq

    if len(calibration) == 0:
        raise ExportError("INT8 calibration needs at least one image")
    return quantize_qdq(onnx_path, out_path, calibration)


def ab_latency_ms(path_a: str | os.PathLike, path_b: str | os.PathLike, sample: np.ndarray, *, rounds: int = 7,
                  runs: int = 20) -> tuple[float, float]:
    """Median batch-1 latency (ms) of two ONNX files on ORT CPU at one thread, rounds alternating A, B; both opened
    through the ONNX Runtime adapter and timed by the project's one timing loop."""
    from edgeskd.runtimes import get_adapter, run_protocol

    adapter = get_adapter("onnxruntime")
    runners = [adapter.open(p, precision=adapter.precision_of(p), threads=1, batch=1)  # type: ignore[attr-defined]
               for p in (path_a, path_b)]
    x = np.ascontiguousarray(sample[:1], dtype=np.float32)
    for runner in runners:  # warm-up by time, as the latency protocol does
        run_protocol(lambda r=runner: r.run(x), runs=1, seconds=0.0, warmup_s=0.2)
    medians: list[list[float]] = [[], []]
    for _ in range(rounds):
        for i, runner in enumerate(runners):
            samples = run_protocol(lambda r=runner: r.run(x), runs=runs, seconds=0.0, warmup_s=0.0)
            medians[i].append(statistics.median(samples))
    return statistics.median(medians[0]), statistics.median(medians[1])


def decide(fp32_ms: float, int8_ms: float, reference: np.ndarray, int8_logits: np.ndarray,
           labels: np.ndarray | None, max_accuracy_drop: float, calibration_images: int) -> Int8Decision:
    """Keep INT8 only when it is faster (by MIN_SPEEDUP) AND its accuracy drop is within `max_accuracy_drop`."""
    if labels is not None:
        drop = float((reference.argmax(1) == labels).mean() - (int8_logits.argmax(1) == labels).mean())
        basis = "labels"
    else:
        drop = float((reference.argmax(1) != int8_logits.argmax(1)).mean())
        basis = "top-1 changes vs PyTorch (upper bound)"
    faster = int8_ms * MIN_SPEEDUP <= fp32_ms
    within = drop <= max_accuracy_drop
    if faster and within:
        reason = f"kept: {fp32_ms / int8_ms:.2f}x faster, accuracy drop {drop:.3f} <= {max_accuracy_drop}"
    else:
        problems = []
        if not faster:
            problems.append(f"not faster by {MIN_SPEEDUP}x ({int8_ms:.3f} ms vs FP32 {fp32_ms:.3f} ms)")
        if not within:
            problems.append(f"accuracy drop {drop:.3f} > allowed {max_accuracy_drop} ({basis})")
        reason = "dropped: " + " and ".join(problems)
    return Int8Decision(faster and within, reason, fp32_ms, int8_ms, fp32_ms / int8_ms if int8_ms > 0 else 0.0,
                        drop, basis, max_accuracy_drop, calibration_images)
