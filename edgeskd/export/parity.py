"""The parity gate: an exported artifact must compute the same logits as the PyTorch model on a real batch.

Two numbers per artifact: the largest absolute logit difference, and top-1 agreement. The allowed difference is
`atol + rtol * max|reference logit|` (trained models have larger logits than random ones, so a pure absolute bound
would be either too loose for one or too tight for the other). A top-1 disagreement on a sample whose reference
top-2 margin is within twice the allowed difference is a near-tie that the max-abs bound already permits; it is
counted (`near_ties`) but not held against the artifact. Any other disagreement fails the gate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeskd.errors import ExportError


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    min_top1: float  # fraction of samples whose top-1 must agree (near-ties excepted)

    def allowed(self, reference: np.ndarray) -> float:
        return self.atol + self.rtol * float(np.abs(reference).max(initial=0.0))


# Per precision of the artifact. fp32: runtimes reorder float sums, ~1e-6 relative in practice; the bound leaves
# room for deeper trained models. fp16: compressed weights or fp16 kernels (TensorRT) cost ~1e-3 relative.
# int8: no max-abs gate (quantisation error is large by design); it is judged by accuracy drop instead (int8.py).
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-4, min_top1=1.0),
    "fp16": Tolerance(atol=2e-2, rtol=2e-2, min_top1=1.0),
    "int8": Tolerance(atol=math.inf, rtol=0.0, min_top1=0.0),
}


@dataclass(frozen=True)
class ParityResult:
    artifact: str          # e.g. "onnx", "openvino_fp16"
    file: str
    runtime: str           # e.g. "onnxruntime 1.32.0 CPUExecutionProvider"
    precision: str
    n: int
    max_abs_diff: float
    allowed_max_abs: float
    top1_agreement: float  # raw, over all samples
    near_ties: int         # disagreements within the allowed difference (forgiven)
    min_top1: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if math.isinf(data["allowed_max_abs"]):
            data["allowed_max_abs"] = None  # JSON has no infinity; null means "not gated"
        return data

    def describe(self) -> str:
        bound = "not gated" if math.isinf(self.allowed_max_abs) else f"allowed {self.allowed_max_abs:.3g}"
        return (f"{self.artifact} ({self.file}, {self.runtime}, {self.precision}) on {self.n} images: "
                f"max |logit diff| {self.max_abs_diff:.3g} ({bound}), top-1 agreement {self.top1_agreement:.3f} "
                f"(min {self.min_top1:.3f}, {self.near_ties} near-ties forgiven)")


def compare(artifact: str, file: str, runtime: str, precision: str, reference: np.ndarray, candidate: np.ndarray,
            tolerance: Tolerance | None = None) -> ParityResult:
    """Compare logits (N, K) of an artifact with the PyTorch reference; never raises on a mismatch of numbers."""
    tol = tolerance or TOLERANCES[precision]
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if candidate.shape != reference.shape:
        raise ExportError(f"{artifact} ({file}) returned logits of shape {candidate.shape}; "
                          f"PyTorch returned {reference.shape}")
    allowed = tol.allowed(reference)
    finite = bool(np.isfinite(candidate).all())
    max_abs = float(np.abs(candidate - reference).max(initial=0.0)) if finite else math.inf
    n = reference.shape[0]
    ref_top = reference.argmax(1)
    agree = ref_top == candidate.argmax(1)
    # Margin between the reference's best and second-best logit, per sample.
    if reference.shape[1] > 1:
        top2 = np.sort(reference, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
    else:
        margin = np.full(n, np.inf)
    near_tie = ~agree & (margin <= 2 * allowed) if not math.isinf(allowed) else np.zeros(n, dtype=bool)
    effective = float((agree | near_tie).mean()) if n else 1.0
    passed = finite and max_abs <= allowed and effective >= tol.min_top1
    return ParityResult(artifact, file, runtime, precision, n, max_abs, allowed, float(agree.mean()) if n else 1.0,
                        int(near_tie.sum()), tol.min_top1, passed)


def require(result: ParityResult) -> ParityResult:
    """Raise ExportError with the numbers when the gate failed."""
    if not result.passed:
        raise ExportError(f"parity gate failed for {result.describe()}")
    return result
