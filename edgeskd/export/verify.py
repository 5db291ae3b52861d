"""`verify_bundle`: re-check a bundle where it will run. Four checks, every failure collected and reported:

0. integrity: manifest.json is a regular file of at most 16 MB whose sha256 matches manifest.sha256 (and the
   pinned digest, when given) -- the same rules as the C runtime's edgeskd_open (edgeskd/export/integrity.py);
1. schema: manifest.json parses and matches the manifest schema;
2. files: every file the manifest lists is a regular file (no symlink) directly in the bundle with its recorded size
   and sha256, and no unlisted file is present;
3. parity: PyTorch logits are recomputed from checkpoint.safetensors on parity_batch.npy, and every artifact that
   passed at export is run again on this machine and must still pass the same tolerance. Artifacts whose runtime
   is missing here (TensorRT on a CPU machine) are reported as skipped, not as passed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeskd._io import sha256_file
from edgeskd.errors import EdgeskdError, ExportError
from edgeskd.export.bundle import CHECKPOINT_NAME
from edgeskd.export.formats import INT8_ARTIFACT, format_of, runner_for
from edgeskd.export.integrity import DIGEST_NAME, check_manifest, regular_file_problem
from edgeskd.export.integrity import manifest_sha256 as manifest_digest
from edgeskd.export.manifest import MANIFEST_NAME, load_manifest
from edgeskd.export.parity import ParityResult, compare


@dataclass
class VerifyReport:
    path: Path
    files_checked: int
    parity: list[ParityResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    manifest_sha256: str = ""  # the digest to pin (classify / verify --manifest-sha256)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "ok": True, "files_checked": self.files_checked,
                "manifest_sha256": self.manifest_sha256,
                "parity": [r.to_dict() for r in self.parity], "skipped": self.skipped}

    def lines(self) -> list[str]:
        out = [f"bundle {self.path}: OK ({self.files_checked} files match their sha256)",
               f"  manifest.json sha256 {self.manifest_sha256} (matches manifest.sha256; pin it with "
               "--manifest-sha256)"]
        out += [f"  parity ok: {r.describe()}" for r in self.parity]
        out += [f"  skipped: {s}" for s in self.skipped]
        return out


def verify_bundle(path: str | os.PathLike, *, parity: bool = True,
                  manifest_sha256: str | None = None) -> VerifyReport:
    """Raise ExportError listing every failed check (with the numbers); return the report when all pass.

    manifest_sha256: the digest manifest.json must have (pins the bundle, like the C runtime's option)."""
    folder = Path(path)
    if folder.name == MANIFEST_NAME:
        folder = folder.parent
    failures = check_manifest(folder, manifest_sha256)  # raises when the manifest must not even be read
    manifest = load_manifest(folder)  # raises on schema problems: nothing else can be trusted then
    failures += _check_files(folder, manifest)
    report = VerifyReport(folder, len(manifest["files"]), manifest_sha256=manifest_digest(folder))
    if parity and not failures:  # parity on tampered files would only repeat the hash failure
        failures += _check_parity(folder, manifest, report)
    elif not parity:
        report.skipped.append("parity (not requested)")
    if failures:
        raise ExportError(f"bundle {folder} failed verification: " + "; ".join(failures))
    return report


def _check_files(folder: Path, manifest: dict[str, Any]) -> list[str]:
    failures = []
    listed = manifest["files"]
    for name, record in listed.items():
        file = folder / name
        problem = regular_file_problem(folder, name)
        if problem:  # a symlink could point outside the bundle; the C runtime refuses it the same way
            failures.append(problem)
            continue
        if not file.is_file():
            failures.append(f"{name}: listed in the manifest but missing")
            continue
        size = file.stat().st_size
        if size != record["bytes"]:
            failures.append(f"{name}: {size} bytes, manifest says {record['bytes']}")
            continue
        digest = sha256_file(file)
        if digest != record["sha256"]:
            failures.append(f"{name}: sha256 {digest[:16]}..., manifest says {record['sha256'][:16]}...")
    present = {p.name for p in folder.iterdir()} - {MANIFEST_NAME, DIGEST_NAME}
    for name in sorted(present - set(listed)):
        failures.append(f"{name}: present in the bundle but not listed in the manifest")
    referenced = [v for v in manifest["model"]["files"].values() if v] + [manifest["parity"]["data"]["file"]]
    for name in referenced:
        if name not in listed:
            failures.append(f"{name}: named by the manifest but has no sha256 entry")
    return failures


def _check_parity(folder: Path, manifest: dict[str, Any], report: VerifyReport) -> list[str]:
    from edgeskd.models import load_checkpoint

    failures = []
    try:
        ckpt = load_checkpoint(folder / CHECKPOINT_NAME)
    except EdgeskdError as exc:
        return [f"{CHECKPOINT_NAME}: {exc}"]
    if ckpt.preprocess.to_dict() != manifest["preprocess"]:
        failures.append(f"manifest preprocess {manifest['preprocess']} differs from the checkpoint's "
                        f"{ckpt.preprocess.to_dict()}")
    if list(ckpt.labels) != manifest["labels"]:
        failures.append(f"manifest labels {manifest['labels']} differ from the checkpoint's {ckpt.labels}")
    data = manifest["parity"]["data"]
    batch = _load_npy(folder / data["file"], np.float32)
    expected = tuple(manifest["model"]["input"]["shape"][1:])
    if batch.ndim != 4 or batch.shape[1:] != expected:
        return failures + [f"{data['file']}: shape {batch.shape}, expected (N, {', '.join(map(str, expected))})"]
    with torch.no_grad():
        reference = ckpt.model.eval()(torch.from_numpy(batch)).float().numpy()
    for recorded in manifest["parity"]["results"]:
        name, file = recorded["artifact"], recorded["file"]
        fmt = format_of(name)
        if fmt is not None:
            usable, reason = fmt.available()
            if not usable:
                report.skipped.append(f"{name} ({file}): {reason}")
                continue
        try:
            logits, runtime = runner_for(name)(folder / file, batch)
        except EdgeskdError as exc:
            failures.append(f"{name} ({file}): {exc}")
            continue
        result = compare(name, file, runtime, recorded["precision"], reference, logits)
        report.parity.append(result)
        if name == INT8_ARTIFACT.name:
            failures += _check_int8(folder, manifest, reference, logits)
        elif not result.passed:
            failures.append(f"parity gate failed for {result.describe()}")
    if manifest.get("primary"):
        from edgeskd.export.primary import check_primary

        labels_file = data.get("labels_file")
        labels = _load_npy(folder / labels_file, np.int64) if labels_file else None
        failures += check_primary(folder, manifest, batch, reference, labels)
    return failures


def _check_int8(folder: Path, manifest: dict[str, Any], reference: np.ndarray, logits: np.ndarray) -> list[str]:
    """A kept INT8 model must still be within the accuracy drop it was kept under."""
    record = manifest.get("int8") or {}
    allowed = float(record.get("max_accuracy_drop", 0.0))
    labels_file = manifest["parity"]["data"].get("labels_file")
    if labels_file:
        labels = _load_npy(folder / labels_file, np.int64)
        drop = float((reference.argmax(1) == labels).mean() - (logits.argmax(1) == labels).mean())
    else:
        drop = float((reference.argmax(1) != logits.argmax(1)).mean())
    if drop > allowed:
        return [f"{INT8_ARTIFACT.files[0]}: accuracy drop {drop:.3f} exceeds the {allowed} it was kept under"]
    return []


def _load_npy(path: Path, dtype: type) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: not a readable .npy array without pickle: {exc}") from exc
    if array.dtype != dtype:
        raise ExportError(f"{path}: dtype {array.dtype}, expected {np.dtype(dtype)}")
    return array
