"""`export_bundle`: checkpoint -> a verified, self-describing bundle folder.

The bundle is built in a temporary folder beside the target and renamed into place only after every artifact has
passed its parity gate and the manifest has passed its schema, so a failed export leaves nothing behind that could
be taken for a good bundle. Contents:

    model.onnx                     always (every other format is converted from it)
    model.xml / model.bin          OpenVINO IR, FP32 weights
    model_fp16.xml / .bin          OpenVINO IR, FP16-compressed weights
    model.engine                   TensorRT engine (only when built here, on the GPU that will run it)
    model_int8.onnx                only when INT8 was asked for, is faster here and within the accuracy drop
    checkpoint.safetensors         the PyTorch checkpoint, so `edgeskd verify` can recompute reference logits
    parity_batch.npy               the preprocessed parity inputs, float32 (N, C, S, S), no pickle
    parity_labels.npy              their labels (int64), when the parity images had labels
    edgeskd.h, libedgeskd.so       the C runtime, when deploy/ has been built
    manifest.json                  everything else, with sha256 and size of every file above
    manifest.sha256                sha256 of manifest.json (sha256sum format), checked by verify and the C runtime
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeskd._io import atomic_path, atomic_write_json, sha256_file
from edgeskd.errors import ExportError, MissingDependency
from edgeskd.export.formats import DEFAULT_PRECISIONS, FORMATS, INT8_ARTIFACT, parse_formats
from edgeskd.export.int8 import Int8Decision, ab_latency_ms, decide, quantize_int8
from edgeskd.export.integrity import write_manifest_digest
from edgeskd.export.manifest import BUNDLE_FORMAT, MANIFEST_NAME, SCHEMA_VERSION, model_io, validate_manifest
from edgeskd.export.onnx import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx, run_onnx
from edgeskd.export.openvino import INFERENCE_PRECISION
from edgeskd.export.parity import TOLERANCES, ParityResult, compare, require
from edgeskd.export.parity_data import ParityImages, from_arrays, random_images
from edgeskd.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

CHECKPOINT_NAME = "checkpoint.safetensors"
PARITY_BATCH_NAME = "parity_batch.npy"
PARITY_LABELS_NAME = "parity_labels.npy"
HEADER_NAME = "edgeskd.h"
LIBRARY_NAME = "libedgeskd.so"


@dataclass
class BundleReport:
    path: Path
    manifest: dict[str, Any]
    parity: list[ParityResult]
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"format", "reason"}
    int8: Int8Decision | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "parity": [r.to_dict() for r in self.parity], "skipped": self.skipped,
                "int8": self.int8.to_dict() if self.int8 else None, "files": self.manifest["files"],
                "runtime": self.manifest["runtime"]}

    def lines(self) -> list[str]:
        out = [f"bundle {self.path}"]
        out += [f"  parity ok: {r.describe()}" for r in self.parity]
        out += [f"  skipped {s['format']}: {s['reason']}" for s in self.skipped]
        if self.int8:
            out.append(f"  int8 {self.int8.reason}")
        primary = self.manifest.get("primary")
        if primary:
            gate = primary["gate"]
            out.append(f"  primary {primary['runtime']}:{primary['precision']} ({primary['files']['primary']}): top-1 "
                       f"agreement {gate['top1_agreement']:.3f} (min {gate['min_top1_agreement']}), accuracy drop "
                       f"{gate['accuracy_drop']:.3f} (max {gate['max_accuracy_drop']}) on {gate['n']} parity images")
        out.append(f"  C runtime: {self.manifest['runtime']['note']}")
        return out


def export_bundle(checkpoint: Checkpoint | str | os.PathLike, out_dir: str | os.PathLike, *,
                  formats: str | tuple[str, ...] | list[str] = ("onnx", "openvino"),
                  parity_images: np.ndarray | list[np.ndarray] | ParityImages | None = None,
                  latency: Any = None, int8: bool = False, max_accuracy_drop: float = 0.01,
                  overwrite: bool = False, parity_labels: np.ndarray | list[int] | None = None,
                  tensorrt_precision: str = "fp16", progress: bool = False, primary: str | None = None,
                  calibration: np.ndarray | None = None, calibration_source: str = "training split",
                  primary_accuracy: dict[str, Any] | None = None) -> BundleReport:
    """Export a checkpoint to every requested format, gate each artifact on parity with PyTorch, write the bundle.

    parity_images: raw uint8/uint16 images (any size) that go through the checkpoint's preprocessing for the
    real-batch parity check; default: a seeded batch of random-pixel images (recorded as such in the manifest).
    parity_labels: their class indices (into the checkpoint's labels), used for the INT8 accuracy drop.
    latency: a latency Measurement (anything with to_dict(), a dataclass) or a dict, recorded as given.
    primary: "RUNTIME:PRECISION" (e.g. "openvino:int8"): the artifact the device runs, built by the runtime adapter
    and gated for its precision (edgeskd.export.primary); int8 needs `calibration`, preprocessed training images
    (N, C, S, S) float32, whose hash and size the manifest records; primary_accuracy: the search's numbers for it.
    Raises ExportError (with the numbers) when any artifact fails parity; no bundle is written then.
    """
    from tqdm import tqdm

    names = parse_formats(formats)
    if tensorrt_precision not in ("fp16", "fp32"):
        raise ExportError(f"tensorrt_precision must be 'fp16' or 'fp32'; got {tensorrt_precision!r}")
    if not 0 <= max_accuracy_drop <= 1:
        raise ExportError(f"max_accuracy_drop must be a fraction in [0, 1]; got {max_accuracy_drop}")
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target} exists and is not a folder")
    if target.exists() and not overwrite:
        raise ExportError(f"{target} already exists; choose another --out or pass --overwrite (overwrite=True)")
    latency_record = _latency_dict(latency)

    ckpt, checkpoint_file = (load_checkpoint(checkpoint), Path(checkpoint)) if isinstance(checkpoint, (str, os.PathLike)) \
        else (checkpoint, None)
    parity_set = _parity_set(parity_images, parity_labels)
    batch = _preprocess(parity_set, ckpt)
    labels = _labels_for_model(parity_set, ckpt.labels)
    model = _cpu_float32(ckpt.model)
    was_training = model.training

    steps = 2 + sum(len(_precisions(n, tensorrt_precision)) for n in names if n != "onnx") + int(int8)
    bar = tqdm(total=steps, desc="export", unit="step", disable=not progress, file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        model.eval()
        with torch.no_grad():
            reference = model(torch.from_numpy(batch)).float().numpy()
        results: list[ParityResult] = []
        files: dict[str, str | None] = {"onnx": None, "openvino_xml": None, "openvino_bin": None, "tensorrt": None}
        skipped: list[dict[str, str]] = []
        extra: dict[str, Any] = {}

        bar.set_description("export onnx")
        onnx_path = export_onnx(model, tmp / FORMATS["onnx"].artifacts[0].files[0], resolution=ckpt.spec.resolution,
                                in_chans=ckpt.spec.in_chans)
        _gate(FORMATS["onnx"].artifacts[0], FORMATS["onnx"].run, tmp, batch, reference, results, files)
        bar.update()

        for name in names[1:]:
            fmt = FORMATS[name]
            usable, reason = fmt.available()
            if not usable:
                if not fmt.optional:
                    raise MissingDependency(f"cannot export {name}: {reason}")
                skipped.append({"format": name, "reason": reason})
                bar.update(len(_precisions(name, tensorrt_precision)))
                continue
            for precision in _precisions(name, tensorrt_precision):
                artifact = fmt.artifact(precision)
                bar.set_description(f"export {artifact.name}")
                artifact.build(onnx_path, tmp / artifact.files[0])
                _gate(artifact, fmt.run, tmp, batch, reference, results, files)
                bar.update()
            if name == "tensorrt":
                from edgeskd.export.tensorrt import build_info

                extra["tensorrt"] = {**build_info(), "precision": tensorrt_precision,
                                     "note": "engines run only on the GPU model and TensorRT version they were built with"}

        decision = None
        if int8:
            bar.set_description("int8")
            decision, int8_result = _int8(onnx_path, tmp, batch, reference, labels, max_accuracy_drop)
            extra["int8"] = {**decision.to_dict(), "parity": int8_result.to_dict(),
                             "calibration": "the parity images (calibration set = evaluation set; small sets "
                                            "make the drop estimate coarse)"}
            if decision.kept:
                results.append(int8_result)
                files[INT8_ARTIFACT.manifest_keys[0]] = INT8_ARTIFACT.files[0]
            bar.update()

        if primary:
            from edgeskd.export.primary import build_primary

            bar.set_description(f"primary {primary}")
            primary_files, extra["primary"] = build_primary(
                primary, onnx_path, tmp, batch, reference, labels, calibration=calibration,
                calibration_source=calibration_source, accuracy=primary_accuracy)
            files.update(primary_files)

        bar.set_description("bundle")
        _write_npy(tmp / PARITY_BATCH_NAME, batch)
        if labels is not None:
            _write_npy(tmp / PARITY_LABELS_NAME, labels)
        _copy_checkpoint(dataclasses.replace(ckpt, model=model), checkpoint_file, tmp / CHECKPOINT_NAME)
        runtime = _copy_c_runtime(tmp)
        manifest = _manifest(ckpt, files, results, skipped, extra, parity_set, batch, labels, latency_record,
                             runtime, tmp)
        validate_manifest(manifest, f"{target / MANIFEST_NAME} (about to be written)")
        atomic_write_json(tmp / MANIFEST_NAME, manifest)
        write_manifest_digest(tmp)  # the manifest's own integrity (see edgeskd/export/integrity.py)
        _publish(tmp, target, overwrite)
        bar.update()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
        model.train(was_training)
    return BundleReport(target, manifest, results, skipped, decision)


def _cpu_float32(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself when it is already float32 on the CPU (the export's reference), else a converted copy, so
    the caller's model is never moved."""
    tensors = list(model.parameters()) + list(model.buffers())
    if all(t.device.type == "cpu" and (t.dtype == torch.float32 or not t.is_floating_point()) for t in tensors):
        return model
    import copy

    return copy.deepcopy(model).cpu().float()


def _precisions(name: str, tensorrt_precision: str) -> tuple[str, ...]:
    return (tensorrt_precision,) if name == "tensorrt" else DEFAULT_PRECISIONS[name]


def _gate(artifact, run, folder: Path, batch: np.ndarray, reference: np.ndarray, results: list[ParityResult],
          files: dict[str, str | None]) -> None:
    """Run one artifact on the parity batch; raise with the numbers unless it matches PyTorch."""
    logits, runtime = run(folder / artifact.files[0], batch)
    results.append(require(compare(artifact.name, artifact.files[0], runtime, artifact.precision, reference, logits)))
    files.update(zip(artifact.manifest_keys, artifact.files))


def _int8(onnx_path: Path, folder: Path, batch: np.ndarray, reference: np.ndarray, labels: np.ndarray | None,
          max_accuracy_drop: float) -> tuple[Int8Decision, ParityResult]:
    path = quantize_int8(onnx_path, folder / INT8_ARTIFACT.files[0], batch)
    logits, runtime = run_onnx(path, batch)
    result = compare(INT8_ARTIFACT.name, INT8_ARTIFACT.files[0], runtime, "int8", reference, logits)
    fp32_ms, int8_ms = ab_latency_ms(onnx_path, path, batch)
    decision = decide(fp32_ms, int8_ms, reference, logits, labels, max_accuracy_drop, len(batch))
    if not decision.kept:
        path.unlink()
    return decision, result


def _parity_set(images, labels) -> ParityImages:
    if images is None:
        if labels is not None:
            raise ExportError("parity_labels given without parity_images")
        return random_images()
    if isinstance(images, ParityImages):
        return images
    return from_arrays(images, labels)


def _preprocess(parity: ParityImages, ckpt: Checkpoint) -> np.ndarray:
    from edgeskd.data.preprocess import preprocess_batch

    spec = ckpt.preprocess
    if spec.size != ckpt.spec.resolution or spec.channels != ckpt.spec.in_chans:
        raise ExportError(f"checkpoint preprocessing makes {spec.channels}x{spec.size}x{spec.size} inputs but the "
                          f"student takes {ckpt.spec.in_chans}x{ckpt.spec.resolution}x{ckpt.spec.resolution}")
    return np.ascontiguousarray(preprocess_batch(parity.images, spec).numpy(), dtype=np.float32)


def _labels_for_model(parity: ParityImages, model_labels: list[str]) -> np.ndarray | None:
    """Parity labels as indices into the model's labels; None when they cannot be matched by name."""
    if parity.labels is None:
        return None
    if parity.classes is None:  # caller-given indices are already the model's
        if parity.labels.min(initial=0) < 0 or parity.labels.max(initial=0) >= len(model_labels):
            raise ExportError(f"parity labels must be class indices in [0, {len(model_labels) - 1}]")
        return parity.labels
    # Match class names case-insensitively (folder names are often lower case, model labels upper case).
    index = {name.casefold(): i for i, name in enumerate(model_labels)}
    if not all(name.casefold() in index for name in parity.classes):
        return None  # a different label set: accuracy is undefined, top-1 agreement still holds
    return np.array([index[parity.classes[i].casefold()] for i in parity.labels], dtype=np.int64)


def _latency_dict(latency: Any) -> dict[str, Any] | None:
    if latency is None or isinstance(latency, dict):
        return latency
    if hasattr(latency, "to_dict"):
        return latency.to_dict()
    if dataclasses.is_dataclass(latency):
        return dataclasses.asdict(latency)
    raise ExportError(f"latency must be a Measurement, a dataclass or a dict; got {type(latency).__name__}")


def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def _copy_checkpoint(ckpt: Checkpoint, source: Path | None, dest: Path) -> None:
    if source is None:
        save_checkpoint(dest, ckpt)
        return
    with atomic_path(dest, suffix=".safetensors") as tmp:
        shutil.copyfile(source, tmp)


def deploy_dir() -> Path:
    """Where the C runtime is built: $EDGESKD_DEPLOY_DIR, else deploy/ beside the package (a source checkout)."""
    env = os.environ.get("EDGESKD_DEPLOY_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "deploy"


def _copy_c_runtime(folder: Path) -> dict[str, Any]:
    root = deploy_dir()
    header, library = root / "include" / HEADER_NAME, root / "build" / LIBRARY_NAME
    record: dict[str, Any] = {"header": None, "library": None, "source": str(root)}
    missing = []
    for src, key in ((header, "header"), (library, "library")):
        if src.is_file():
            with atomic_path(folder / src.name) as tmp:
                shutil.copyfile(src.resolve(), tmp)  # resolve: libedgeskd.so is often a symlink to a versioned name
            record[key] = src.name
        else:
            missing.append(str(src))
    record["note"] = ("header and library included" if not missing else
                      f"not included: {', '.join(missing)} not found (build deploy/ with CMake, then export again)")
    return record


def _manifest(ckpt: Checkpoint, files: dict[str, str | None], results: list[ParityResult],
              skipped: list[dict[str, str]], extra: dict[str, Any], parity_set: ParityImages, batch: np.ndarray,
              labels: np.ndarray | None, latency: dict[str, Any] | None, runtime: dict[str, Any],
              folder: Path) -> dict[str, Any]:
    from edgeskd import __version__
    from edgeskd.doctor import cpu_info, package_versions
    from edgeskd.models import family_of

    info = ckpt.info or {}
    hashes = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
              for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST_NAME}
    return {
        "schema_version": SCHEMA_VERSION,
        "format": BUNDLE_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "edgeskd_version": __version__,
        "model": {"files": files, **model_io(ckpt.preprocess, ckpt.spec.num_classes, INPUT_NAME, OUTPUT_NAME),
                  "family": family_of(ckpt.model, ckpt.spec.teacher), "student": ckpt.spec.to_dict(),
                  "onnx_opset": OPSET, **({"tensorrt": extra["tensorrt"]} if "tensorrt" in extra else {}),
                  **({"openvino_config": {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION}}
                     if files.get("openvino_xml") else {})},
        "preprocess": ckpt.preprocess.to_dict(),
        "labels": list(ckpt.labels),
        "provenance": {"teacher": info.get("teacher", ckpt.spec.teacher),
                       "selection": info.get("selection", info.get("selection_strategies")),
                       "training": info.get("training", info.get("training_summary")),
                       "checkpoint": CHECKPOINT_NAME, "info": info},
        "parity": {"data": {"source": parity_set.source, "n": int(batch.shape[0]), "file": PARITY_BATCH_NAME,
                            "labels_file": PARITY_LABELS_NAME if labels is not None else None,
                            "shape": list(batch.shape), "dtype": "float32",
                            "note": "inputs after the manifest's preprocessing; references are recomputed from "
                                    f"{CHECKPOINT_NAME} with PyTorch"},
                   "tolerances": {k: {"atol": v.atol if np.isfinite(v.atol) else None, "rtol": v.rtol,
                                      "min_top1": v.min_top1} for k, v in TOLERANCES.items()},
                   "results": [r.to_dict() for r in results]},
        "int8": extra.get("int8"),
        "primary": extra.get("primary"),
        "skipped": skipped,
        "latency": latency,
        "latency_note": None if latency else "not measured at export; run 'edgeskd bench' on the target",
        "runtime": runtime,
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpu": cpu_info()["model"], "packages": package_versions()},
        "files": hashes,
    }


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Rename the finished folder onto `target`; an old bundle is moved aside first and removed only afterwards."""
    # Temporary names are created private (0700/0600); a bundle is meant to be read by the service that runs it.
    tmp.chmod(0o755)
    for file in tmp.iterdir():
        file.chmod(0o755 if file.suffix == ".so" else 0o644)
    if not target.exists():
        os.replace(tmp, target)
        return
    if not overwrite:
        raise ExportError(f"{target} appeared while exporting; not overwriting it")
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
