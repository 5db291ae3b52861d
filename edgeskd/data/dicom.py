"""DICOM slices (chest X-ray, CT, MRI) to raw pixels, through pydicom.

The pipeline for a grayscale image, in DICOM's own order:
  1. modality LUT: stored values * RescaleSlope + RescaleIntercept (or the file's Modality LUT Sequence), e.g. CT
     Hounsfield units;
  2. VOI window: with a window (centre, width), the one given or else the file's first WindowCenter/WindowWidth,
     values are mapped to **uint8** 0..255 with the DICOM linear window function (PS3.3 C.11.2.1.2; the file's
     VOILUTFunction LINEAR_EXACT or SIGMOID is honoured for the file's own window);
     without any window, the full range the stored bits can hold (after step 1) is mapped linearly onto **uint16**
     0..65535, so no precision is lost and all files with the same header map the same way;
  3. MONOCHROME1 (0 = white) is inverted so that a higher value is always brighter.
Colour DICOMs (SamplesPerPixel 3) are returned as RGB (uint8 when 8 bits are stored, else uint16), unwindowed.
Multi-frame files and float pixel data are refused with a DataError.
"""

from __future__ import annotations

import math

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeskd.errors import DataError


def read_dicom(path: str | os.PathLike, window: tuple[float, float] | None = None) -> np.ndarray:
    """One DICOM file -> uint8 (windowed) or uint16 (no window) (H, W) array; RGB files -> (H, W, 3)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as exc:
        raise DataError(f"{path}: not a DICOM file ({exc})") from exc
    except Exception as exc:  # pydicom raises many types on damaged headers
        raise DataError(f"{path}: unreadable DICOM file ({type(exc).__name__}: {exc})") from exc
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise DataError(f"{path}: float pixel data is not supported; expected integer (stored) pixel data")
        raise DataError(f"{path}: DICOM file has no pixel data (SOP class {ds.get('SOPClassUID', 'unknown')})")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DataError(f"{path}: multi-frame DICOM ({frames} frames); expected a single 2-D slice per file")
    try:
        stored = ds.pixel_array
    except Exception as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        raise DataError(f"{path}: cannot decode DICOM pixel data (transfer syntax "
                        f"{getattr(syntax, 'name', syntax)}): {exc}") from exc

    samples = int(ds.get("SamplesPerPixel", 1))
    if samples == 3:
        if stored.ndim != 3 or stored.shape[2] != 3:
            raise DataError(f"{path}: colour DICOM with unexpected pixel shape {stored.shape}")
        return stored.astype(np.uint8 if int(ds.get("BitsStored", 8)) <= 8 else np.uint16)
    if samples != 1 or stored.ndim != 2:
        raise DataError(f"{path}: expected one grayscale or RGB 2-D image; got SamplesPerPixel={samples}, "
                        f"pixel shape {stored.shape}")

    values = _modality_lut(stored, ds)
    voi_function = "LINEAR"
    if window is None and "WindowCenter" in ds and "WindowWidth" in ds:
        window = (_first(ds.WindowCenter), _first(ds.WindowWidth))
        voi_function = str(ds.get("VOILUTFunction", "LINEAR")).upper() or "LINEAR"
    if window is not None:
        out = _apply_window(values, float(window[0]), float(window[1]), voi_function, path)
        top = 255
    else:
        lo, hi = _value_range(ds)
        out = np.round((np.clip(values, lo, hi) - lo) / (hi - lo) * 65535.0).astype(np.uint16)
        top = 65535
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        out = (top - out).astype(out.dtype)
    return out


def _first(value) -> float:
    """WindowCenter/WindowWidth may hold several windows; the first is the default display."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = value[0]
    return float(value)


def _modality_lut(stored: np.ndarray, ds) -> np.ndarray:
    if "ModalityLUTSequence" in ds:
        try:
            from pydicom.pixels import apply_modality_lut
        except ImportError:  # pydicom 2.x
            from pydicom.pixel_data_handlers.util import apply_modality_lut
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return stored.astype(np.float64) * slope + intercept


def _value_range(ds) -> tuple[float, float]:
    """The values the stored bits can hold, after the rescale: the fixed range for the no-window uint16 mapping."""
    bits = int(ds.get("BitsStored", 16))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1
    if "ModalityLUTSequence" in ds:
        return float(lo), float(hi)  # a LUT output range is not declared; keep the stored range
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    a, b = lo * slope + intercept, hi * slope + intercept
    return (min(a, b), max(a, b)) if a != b else (a, a + 1.0)


def _apply_window(values: np.ndarray, center: float, width: float, function: str, path: Path) -> np.ndarray:
    if not (math.isfinite(center) and math.isfinite(width)):
        raise DataError(f"{path}: DICOM window centre and width must be finite numbers; got {center}, {width}")
    if width < 1:
        raise DataError(f"{path}: DICOM window width must be >= 1; got {width}")
    if function == "SIGMOID":
        y = 255.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    elif function == "LINEAR_EXACT":
        y = ((values - center) / width + 0.5) * 255.0
    elif function == "LINEAR":
        if width == 1:
            y = np.where(values > center - 0.5, 255.0, 0.0)
        else:
            y = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    else:
        raise DataError(f"{path}: unsupported VOILUTFunction {function!r}; expected LINEAR, LINEAR_EXACT or SIGMOID")
    return np.round(np.clip(y, 0.0, 255.0)).astype(np.uint8)
