"""Reading one image file into raw pixels: PNG, JPEG, BMP, TIFF (8/16-bit, grayscale or RGB) and DICOM.

Every reader returns a uint8 or uint16 array, (H, W) for grayscale or (H, W, 3) for colour, and raises a DataError
naming the file and the problem otherwise. Nothing is converted silently: alpha is dropped (it carries no pixel
intensity), palette and CMYK images become RGB, and a file whose precision Pillow would reduce is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeskd.errors import DataError, MissingDependency

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})
SUPPORTED_TEXT = "PNG, JPEG, BMP, TIFF or DICOM"


def is_dicom(path: str | os.PathLike) -> bool:
    """A .dcm/.dicom name, or a DICOM Part 10 file (the 'DICM' marker after the 128-byte preamble)."""
    path = Path(path)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def is_supported(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS or is_dicom(path)


def read_image(path: str | os.PathLike, dicom_window: tuple[float, float] | None = None) -> np.ndarray:
    """Any supported file -> uint8/uint16 array (H, W) or (H, W, 3). DICOM goes through `read_dicom`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    if is_dicom(path):
        from edgeskd.data.dicom import read_dicom

        return read_dicom(path, window=dicom_window)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise DataError(f"{path}: not a supported image file (expected {SUPPORTED_TEXT}; got suffix {suffix!r})")
    if suffix in (".tif", ".tiff") and _tiff_is_16bit_colour(path):
        return _read_tiff_16bit_colour(path)
    if suffix == ".png":
        _refuse_16bit_colour_png(path)
    return _read_with_pillow(path)


def _read_with_pillow(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise DataError(f"{path}: has {frames} frames/pages; expected a single 2-D image")
            im.load()  # decode now: truncated or corrupt files fail here, not later in training
            array = _pil_to_array(im, path)
    except DataError:
        raise
    except UnidentifiedImageError as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image is too large to read safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: unreadable or truncated image ({exc})") from exc
    if array.size == 0:
        raise DataError(f"{path}: image has no pixels (shape {array.shape})")
    return array


def _pil_to_array(im, path: Path) -> np.ndarray:
    mode = im.mode
    if mode in ("L", "RGB"):
        return np.asarray(im, dtype=np.uint8).copy()
    if mode in ("1", "LA"):
        return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    if mode in ("P", "PA", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)  # also turns big-endian I;16B into native uint16
    if mode == "I":  # 32-bit integer container; accept it when the values fit 16 bits (some 16-bit PNGs open so)
        data = np.asarray(im)
        if data.size and (data.min() < 0 or data.max() > 65535):
            raise DataError(f"{path}: 32-bit integer pixels outside 0..65535 (range {data.min()}..{data.max()}); "
                            "expected 8- or 16-bit images")
        return data.astype(np.uint16)
    raise DataError(f"{path}: unsupported pixel mode {mode!r}; expected 8- or 16-bit grayscale or RGB")


def _tiff_is_16bit_colour(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            bits = im.tag_v2.get(258) if hasattr(im, "tag_v2") else None  # BitsPerSample
            samples = im.tag_v2.get(277, 1) if hasattr(im, "tag_v2") else 1  # SamplesPerPixel
    except Exception:
        return False  # let the normal reader produce the error for a broken file
    if isinstance(bits, tuple):
        bits = max(bits)
    return bits == 16 and samples >= 3


def _read_tiff_16bit_colour(path: Path) -> np.ndarray:
    # Pillow would reduce 16-bit RGB TIFF to 8 bits; tifffile keeps the full precision.
    try:
        import tifffile
    except ImportError as exc:
        raise MissingDependency(f"{path}: 16-bit RGB TIFF needs the tifffile package (pip install tifffile)") from exc
    try:
        data = tifffile.imread(path)
    except Exception as exc:
        raise DataError(f"{path}: unreadable or truncated TIFF ({exc})") from exc
    if data.ndim != 3 or data.shape[2] not in (3, 4) or data.dtype != np.uint16:
        raise DataError(f"{path}: expected a 16-bit (H, W, 3) RGB TIFF; got {data.dtype} shape {data.shape}")
    return np.ascontiguousarray(data[:, :, :3])


def _refuse_16bit_colour_png(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(26)
    # PNG signature (8) + IHDR length/type (8) + width, height (8) + bit depth (1) + colour type (1)
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        bit_depth, colour_type = head[24], head[25]
        if bit_depth == 16 and colour_type in (2, 6):
            raise DataError(f"{path}: 16-bit RGB PNG is not supported (Pillow would reduce it to 8 bits); "
                            "save it as 16-bit RGB TIFF, 16-bit grayscale PNG or 8-bit RGB PNG")
