"""read_image: every supported format and depth, and a clear DataError naming the file for each bad input."""

from __future__ import annotations

import numpy as np
import pytest

from edgeskd.data import read_image
from edgeskd.errors import DataError


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_lossless_8bit_gray_and_rgb_round_trip(tmp_path, save, rng, suffix):
    gray = rng.integers(0, 256, (13, 17), dtype=np.uint8)
    rgb = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    for name, array in (("gray", gray), ("rgb", rgb)):
        out = read_image(save(tmp_path / f"{name}{suffix}", array))
        assert out.dtype == np.uint8 and out.shape == array.shape
        np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_gray_keeps_full_precision(tmp_path, save, rng, suffix):
    array = rng.integers(0, 65536, (11, 9), dtype=np.uint16)
    out = read_image(save(tmp_path / f"g16{suffix}", array))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, array)


def test_16bit_rgb_tiff_keeps_full_precision(tmp_path, rng):
    tifffile = pytest.importorskip("tifffile")
    array = rng.integers(0, 65536, (7, 5, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", array, photometric="rgb")
    out = read_image(tmp_path / "rgb16.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, array)


def test_16bit_rgb_png_is_refused_not_truncated_to_8_bits(tmp_path, rng, save_rgb16_png):
    path = save_rgb16_png(tmp_path / "rgb16.png", rng.integers(0, 65536, (4, 6, 3), dtype=np.uint16))
    with pytest.raises(DataError, match=r"rgb16\.png: 16-bit RGB PNG is not supported"):
        read_image(path)


def test_jpeg_is_read_close_to_the_source(tmp_path, save):
    ramp = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (32, 1))
    out = read_image(save(tmp_path / "ramp.jpg", ramp))
    assert out.dtype == np.uint8 and out.shape == (32, 32)
    assert np.abs(out.astype(int) - ramp).max() <= 8  # lossy, but the same picture


def test_rgba_and_palette_become_rgb(tmp_path, save, rng):
    rgba = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    out = read_image(save(tmp_path / "rgba.png", rgba))
    np.testing.assert_array_equal(out, rgba[:, :, :3])
    from PIL import Image

    Image.fromarray(rgba[:, :, :3]).convert("P").save(tmp_path / "pal.png")
    assert read_image(tmp_path / "pal.png").shape == (6, 5, 3)


def test_truncated_jpeg_names_the_file(tmp_path, save, rng):
    path = save(tmp_path / "cut.jpg", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.jpg: unreadable or truncated image"):
        read_image(path)


def test_truncated_png_names_the_file(tmp_path, save, rng):
    path = save(tmp_path / "cut.png", rng.integers(0, 256, (64, 64), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cut\.png: unreadable or truncated image"):
        read_image(path)


def test_garbage_with_an_image_suffix(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("not a picture")
    with pytest.raises(DataError, match=r"fake\.png: not a readable image"):
        read_image(path)


def test_unsupported_suffix_and_missing_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: not a supported image file .*'\.txt'"):
        read_image(tmp_path / "notes.txt")
    with pytest.raises(DataError, match=r"nothere\.png: no such image file"):
        read_image(tmp_path / "nothere.png")


def test_multipage_tiff_is_refused(tmp_path, rng):
    from PIL import Image

    pages = [Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)) for _ in range(3)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(DataError, match=r"stack\.tif: has 3 frames"):
        read_image(tmp_path / "stack.tif")
