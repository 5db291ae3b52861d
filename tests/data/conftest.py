"""Fixtures for the data-layer tests: small synthetic image trees written with Pillow, real sets found offline."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest


def save_image(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def save_png16_rgb(path: Path, array: np.ndarray) -> Path:
    """A 16-bit RGB PNG, written by hand (Pillow cannot write one)."""
    h, w, _ = array.shape
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    path.write_bytes(png)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def make_tree(tmp_path, rng):
    """make_tree({"cat": 5, "dog": 7}, size=(20, 24)) -> root/<class>/<i>.png with random 8-bit gray pixels."""

    def make(counts: dict[str, int], size: tuple[int, int] = (20, 24), root: Path | None = None,
             suffix: str = ".png") -> Path:
        root = root or tmp_path / "tree"
        for cls, n in counts.items():
            (root / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                save_image(root / cls / f"{cls}_{i:03d}{suffix}", rng.integers(0, 256, size, dtype=np.uint8))
        return root

    return make


@pytest.fixture(scope="session")
def dicom_file():
    """Path of one of the real DICOM test files shipped inside the pydicom wheel (never downloaded)."""
    pydicom_data = pytest.importorskip("pydicom.data")
    folder = Path(pydicom_data.__file__).parent / "test_files"

    def get(name: str) -> Path:
        path = folder / name
        if not path.is_file():
            pytest.skip(f"pydicom test file {name} is not in this pydicom wheel")
        return path

    return get


@pytest.fixture
def save():
    """save(path, array) writes an image with Pillow (format from the suffix)."""
    return save_image


@pytest.fixture
def save_rgb16_png():
    return save_png16_rgb
