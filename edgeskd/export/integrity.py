"""Bundle integrity shared by `export` (writes manifest.sha256) and `verify` (checks it), with the same rules as the
C runtime (deploy/src/integrity.c), so both refuse the same bundles:

- manifest.json is a regular file of at most 16 MB, and its sha256 equals the digest in manifest.sha256 beside it
  (sha256sum format: "<64 hex>  manifest.json"); a pinned digest, when given, must match too;
- every bundle file is a regular file directly inside the bundle folder (no symlinks, no sub-folders).

manifest.sha256 is what makes the manifest's own records trustworthy: the manifest holds the sha256 of every other
file, and the digest file holds the manifest's. A pinned digest (from the deployment's own configuration) also
catches a manifest rewritten together with its digest file.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from edgeskd._io import atomic_write_text
from edgeskd.errors import ExportError

MANIFEST_NAME = "manifest.json"
DIGEST_NAME = "manifest.sha256"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024  # the C runtime's limit (deploy/src/internal.h)
_HEX64 = re.compile(r"[0-9a-f]{64}")
REEXPORT = ("re-export the bundle with this edgeskd version (edgeskd export ... --overwrite), or write it with "
            "`sha256sum manifest.json > manifest.sha256` if you trust it")


def manifest_sha256(folder: str | os.PathLike) -> str:
    """sha256 (hex) of the bundle's manifest.json bytes."""
    return hashlib.sha256((Path(folder) / MANIFEST_NAME).read_bytes()).hexdigest()


def write_manifest_digest(folder: str | os.PathLike) -> str:
    """Write manifest.sha256 for the manifest.json in `folder` (atomically); return the digest."""
    digest = manifest_sha256(folder)
    atomic_write_text(Path(folder) / DIGEST_NAME, f"{digest}  {MANIFEST_NAME}\n")
    return digest


def check_pinned(pinned: str | None) -> str | None:
    """The pinned digest, normalised; ExportError when it is not 64 hex digits."""
    if pinned is None:
        return None
    value = pinned.strip().lower()
    if not _HEX64.fullmatch(value):
        raise ExportError(f"--manifest-sha256 {pinned!r} is not 64 hex digits (a sha256 of manifest.json)")
    return value


def regular_file_problem(folder: Path, name: str) -> str | None:
    """Why `name` is not acceptable as a bundle file (None when it is a regular file directly in `folder`)."""
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        return f"{name}: not a plain file name inside the bundle folder"
    path = folder / name
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None  # missing files are reported by the caller with their own message
    if stat.S_ISLNK(mode):
        return f"{name}: is a symbolic link; bundle files must be regular files inside the bundle folder"
    if not stat.S_ISREG(mode):
        return f"{name}: is not a regular file"
    return None


def check_manifest(folder: str | os.PathLike, pinned: str | None = None) -> list[str]:
    """Every integrity failure of manifest.json (one line each); raises ExportError when the manifest must not be
    read at all (a symlink, not a file, or over the 16 MB limit)."""
    folder = Path(folder)
    manifest = folder / MANIFEST_NAME
    problem = regular_file_problem(folder, MANIFEST_NAME)
    if problem:
        raise ExportError(f"bundle {folder}: {problem}")
    if not manifest.exists():
        raise ExportError(f"{manifest}: no bundle manifest (expected a bundle folder with {MANIFEST_NAME})")
    size = manifest.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ExportError(f"{manifest} is {size} bytes, over the limit of {MAX_MANIFEST_BYTES} bytes (16 MB); "
                          "expected a small JSON manifest")
    pinned = check_pinned(pinned)
    actual = manifest_sha256(folder)
    failures = []
    if pinned and actual != pinned:
        failures.append(f"{MANIFEST_NAME}: sha256 {actual[:16]}... differs from the pinned --manifest-sha256 "
                        f"{pinned[:16]}...; the bundle is not the one you pinned")
    digest_file = folder / DIGEST_NAME
    problem = regular_file_problem(folder, DIGEST_NAME)
    if problem:
        return failures + [problem]
    if not digest_file.exists():
        return failures + [f"{DIGEST_NAME} is missing, so {MANIFEST_NAME} cannot be checked (bundles exported "
                           f"before edgeskd 0.2 have none); {REEXPORT}"]
    if digest_file.stat().st_size > 4096:
        return failures + [f"{DIGEST_NAME}: over 4096 bytes; expected one sha256sum line"]
    text = digest_file.read_bytes()[:65].decode("ascii", errors="replace")
    recorded = text[:64]
    if not _HEX64.fullmatch(recorded) or (len(text) > 64 and text[64] not in " \t\n"):
        return failures + [f"{DIGEST_NAME}: does not start with 64 lower-case hex digits (sha256sum format); "
                           f"{REEXPORT}"]
    if recorded != actual:
        failures.append(f"{MANIFEST_NAME}: sha256 {actual[:16]}..., {DIGEST_NAME} says {recorded[:16]}...; the "
                        "manifest was changed after export")
    return failures
