"""Output folders: check they can be written before any long work starts, refuse to silently replace an earlier
run, and publish a multi-file result (a selection, a bundle) so it appears whole or not at all.

Why a probe file: permissions, read-only mounts, quotas and full disks are only reliably known by writing. A probe
of a few KiB, fsynced and removed, turns "trained an epoch, then a traceback" into a one-line error up front.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgeskd.errors import OutputError

PROBE_BYTES = 4096


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def probe_writable(folder: str | os.PathLike, what: str = "output folder", *, keep: bool = False) -> Path:
    """Write, fsync and remove a probe file in `folder`; OutputError names the folder.

    Folders created for the probe are removed again unless `keep`, so a command that fails later leaves the disk
    as it was before it.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what} {folder} is a file, not a folder")
    created = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {what} {folder}: {_reason(exc)}") from exc
    try:
        _probe(folder, what)
    finally:
        if not keep:
            for path in created:  # deepest first
                with contextlib.suppress(OSError):
                    path.rmdir()
    return folder


def _probe(folder: Path, what: str) -> None:
    probe = None
    try:
        fd, probe = tempfile.mkstemp(prefix=".edgeskd-write-probe-", dir=folder)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write to {what} {folder}: {_reason(exc)}") from exc
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                os.unlink(probe)


def probe_file_writable(path: str | os.PathLike, what: str = "output file") -> Path:
    """A file about to be written: its folder must take a probe, and the path must not be a folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name")
    try:
        probe_writable(path.parent, "folder")
    except OutputError as exc:
        raise OutputError(f"{what} {path}: {exc}") from exc
    return path


def is_nonempty_dir(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def check_output_folder(out: str | os.PathLike, *, overwrite: bool = False, resume: bool | None = None,
                        what: str = "--out") -> Path:
    """Refuse an existing non-empty `out` unless --overwrite (or --resume where the command has it), then probe it.

    `resume=None` means the command has no --resume flag, so the message names only --overwrite.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{what} {out} is a file, not a folder")
    if is_nonempty_dir(out) and not overwrite and not resume:
        hint = "--resume to continue that run or --overwrite to replace it" if resume is not None else \
            "--overwrite to replace it"
        raise OutputError(f"{what} {out} already holds files from an earlier run; use {hint}, or choose a new folder")
    return probe_writable(out, f"{what} folder")


def clear_folder(folder: Path) -> None:
    """Remove what an earlier run left in `folder` (for --overwrite of commands that write in place)."""
    for child in folder.iterdir():
        try:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        except OSError as exc:
            raise OutputError(f"--overwrite: cannot remove {child}: {_reason(exc)}") from exc


@contextlib.contextmanager
def publish_folder(final: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder to build in; on success it is renamed to `final` in one step.

    On any error the temporary folder is removed and `final` is left exactly as it was. With `overwrite`, an
    existing `final` is moved aside first and deleted only after the new folder is in place.
    """
    final = Path(final).resolve()  # "." or "out/" must still name a folder with a parent
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot create a folder beside {final}: {_reason(exc)}") from exc
    old = None
    try:
        yield tmp
        if is_nonempty_dir(final):
            if not overwrite:
                raise OutputError(f"{final} already holds files; use --overwrite to replace it")
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=parent))
            os.replace(final, old / "previous")
        elif final.is_dir():
            final.rmdir()  # an empty folder the user made for us
        try:
            os.replace(tmp, final)
        except OSError:
            if old is not None:  # put the earlier result back: the folder is as it was before the command
                os.replace(old / "previous", final)
            raise
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"cannot write {final}: {_reason(exc)}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
