"""The bundle's primary model: the artifact the device runs, at the runtime and precision the search chose
(`export --primary openvino:int8`, or the search winner's deployment).

It is built from the bundle's ONNX file by the runtime adapter (int8: calibrated on training images, never on the
parity images it is then judged on) and gated by a rule made for its precision: quantised and reduced-precision
models are not expected to match fp32 logits to 1e-4, so the gate is top-1 agreement with the PyTorch fp32 model
and the accuracy drop on the held-out parity images, with both thresholds written into the manifest.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeskd.errors import ExportError


@dataclass(frozen=True)
class PrimaryGate:
    min_top1_agreement: float   # fraction of parity images whose top-1 class matches PyTorch fp32
    max_accuracy_drop: float    # fp32 accuracy - artifact accuracy on the labelled parity images

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# Per precision. fp32: the same graph, only float reordering. bf16/fp16: ~3 significant digits; int8: quantised.
GATES: dict[str, PrimaryGate] = {
    "fp32": PrimaryGate(1.0, 0.0),
    "fp16": PrimaryGate(0.95, 0.02),
    "bf16": PrimaryGate(0.90, 0.05),
    "int8": PrimaryGate(0.90, 0.05),
}
FILE_STEM = "model_primary"


def parse_primary(text: str) -> tuple[str, str]:
    """'openvino:int8' -> ('openvino', 'int8'), the runtime by its canonical adapter name."""
    from edgeskd.runtimes import PRECISIONS, get_adapter

    runtime, sep, precision = str(text).partition(":")
    if not sep or precision.strip().lower() not in PRECISIONS:
        raise ExportError(f"--primary {text!r}: expected RUNTIME:PRECISION, e.g. openvino:int8 (precisions: "
                          f"{', '.join(PRECISIONS)})")
    return get_adapter(runtime.strip()).name, precision.strip().lower()


def calibration_record(calibration: np.ndarray | None, source: str) -> dict[str, Any] | None:
    if calibration is None:
        return None
    data = np.ascontiguousarray(calibration, dtype=np.float32)
    return {"images": int(len(data)), "sha256": "sha256:" + hashlib.sha256(data.tobytes()).hexdigest(),
            "source": source}


def held_out_rows(batch: np.ndarray, calibration: np.ndarray | None) -> np.ndarray:
    """Boolean mask of the rows of `batch` that are not (bit for bit) among the calibration images."""
    if calibration is None:
        return np.ones(len(batch), dtype=bool)
    seen = {np.ascontiguousarray(c, dtype=np.float32).tobytes() for c in calibration}
    return np.array([np.ascontiguousarray(b, dtype=np.float32).tobytes() not in seen for b in batch], dtype=bool)


def build_primary(primary: str, onnx_path: Path, folder: Path, batch: np.ndarray, reference: np.ndarray,
                  labels: np.ndarray | None, *, calibration: np.ndarray | None, calibration_source: str,
                  gate: PrimaryGate | None = None, accuracy: dict[str, Any] | None = None
                  ) -> tuple[dict[str, str], dict[str, Any]]:
    """Build, run and gate the primary artifact; returns (manifest model.files entries, manifest "primary" record).
    Raises ExportError with the numbers when the device does not support it or the gate fails."""
    from edgeskd.runtimes import get_adapter, predict

    runtime, precision = parse_primary(primary)
    adapter = get_adapter(runtime)
    why = adapter.supported().get(precision, "")
    if why:
        raise ExportError(f"primary {runtime}:{precision} is not supported on this device: {why}")
    if precision == "int8" and calibration is None:
        raise ExportError(f"primary {runtime}:int8 needs calibration images from the training split")
    path = adapter.build(onnx_path, folder / f"{FILE_STEM}{adapter.suffix}", precision, calibration=calibration)
    # Judged only on parity images that were not calibration images (the same dataset may feed both).
    held_out = held_out_rows(batch, calibration)
    if not held_out.any():
        raise ExportError(f"primary {runtime}:{precision}: every parity image is also a calibration image; give "
                          f"parity images from a held-out split")
    batch, reference = batch[held_out], reference[held_out]
    labels = labels[held_out] if labels is not None else None
    runner = adapter.open(path, precision=precision, threads=1, batch=min(len(batch), 32))
    logits = predict(runner, batch)
    gate = gate or GATES[precision]
    agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
    if labels is not None:
        drop = float((reference.argmax(1) == labels).mean() - (logits.argmax(1) == labels).mean())
        basis = "labels"
    else:
        drop = 1.0 - agreement
        basis = "top-1 changes vs PyTorch (upper bound)"
    passed = agreement >= gate.min_top1_agreement and drop <= gate.max_accuracy_drop
    files = {"primary": path.name}
    if adapter.suffix == ".xml":
        files["primary_bin"] = path.with_suffix(".bin").name
    record = {
        "runtime": runtime, "precision": precision, "files": files,
        "runtime_reported": {k: v for k, v in runner.reported.items() if isinstance(v, (str, int, float, bool))},
        "inference_precision_hint": {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}[precision]
        if runtime == "openvino" else None,
        "calibration": calibration_record(calibration, calibration_source),
        "gate": {**gate.to_dict(), "n": int(len(batch)), "top1_agreement": agreement, "accuracy_drop": drop,
                 "drop_basis": basis, "held_out": held_out.astype(int).tolist(),
                 "images": "the bundle's parity images that are not calibration images (held_out mask)",
                 "passed": passed},
        "accuracy": accuracy,
    }
    if not passed:
        raise ExportError(f"primary {runtime}:{precision} failed its gate on {len(batch)} parity images: top-1 "
                          f"agreement {agreement:.3f} (min {gate.min_top1_agreement}), accuracy drop {drop:.3f} "
                          f"(max {gate.max_accuracy_drop}, {basis})")
    return files, record


def check_primary(folder: Path, manifest: dict[str, Any], batch: np.ndarray, reference: np.ndarray,
                  labels: np.ndarray | None) -> list[str]:
    """`edgeskd verify`: rerun the primary artifact here and apply the gate recorded in the manifest."""
    from edgeskd.runtimes import get_adapter, predict

    record = manifest.get("primary")
    if not record:
        return []
    failures = []
    for key in ("runtime", "precision", "files", "gate"):
        if key not in record:
            failures.append(f"manifest primary: missing {key!r}")
    if failures:
        return failures
    if record["precision"] == "int8" and not (record.get("calibration") or {}).get("sha256"):
        failures.append("manifest primary: an int8 model must name its calibration set (hash and size)")
    adapter = get_adapter(record["runtime"])
    ok, reason = adapter.available()
    if not ok:
        return failures + [f"primary {record['runtime']}:{record['precision']}: {reason}"]
    try:
        runner = adapter.open(folder / record["files"]["primary"], precision=record["precision"], threads=1,
                              batch=min(len(batch), 32))
    except Exception as exc:  # noqa: BLE001  (any runtime failure is a verification failure, reported with its text)
        return failures + [f"primary {record['files']['primary']}: {type(exc).__name__}: {exc}"]
    gate = record["gate"]
    mask = np.array(gate.get("held_out") or [1] * len(batch), dtype=bool)
    if mask.shape != (len(batch),):
        return failures + [f"manifest primary: held_out mask has {mask.size} entries for {len(batch)} parity images"]
    batch, reference = batch[mask], reference[mask]
    labels = labels[mask] if labels is not None else None
    if not len(batch):
        return failures + ["manifest primary: no held-out parity image to check the primary model on"]
    logits = predict(runner, batch)
    agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
    drop = (float((reference.argmax(1) == labels).mean() - (logits.argmax(1) == labels).mean())
            if labels is not None else 1.0 - agreement)
    if agreement < gate["min_top1_agreement"] or drop > gate["max_accuracy_drop"]:
        failures.append(f"primary {record['files']['primary']}: top-1 agreement {agreement:.3f} (min "
                        f"{gate['min_top1_agreement']}), accuracy drop {drop:.3f} (max {gate['max_accuracy_drop']})")
    return failures
