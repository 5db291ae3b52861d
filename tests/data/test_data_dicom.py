"""read_dicom on pydicom's real CT/MR test slices: rescale, windowing, MONOCHROME1, and the broken files."""

from __future__ import annotations

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from edgeskd.data import load_dataset, read_dicom, read_image  # noqa: E402
from edgeskd.errors import DataError  # noqa: E402


def _modified(src, dst, **attrs):
    ds = pydicom.dcmread(src)
    for key, value in attrs.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(dst)
    return dst


def test_ct_without_window_is_lossless_uint16(dicom_file):
    path = dicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    out = read_dicom(path)
    assert out.dtype == np.uint16 and out.shape == (128, 128)
    # signed 16-bit stored values, slope 1: the fixed full-range mapping is a pure offset, nothing lost
    np.testing.assert_array_equal(out.astype(np.int64), ds.pixel_array.astype(np.int64) + 32768)


def test_ct_window_in_hounsfield_units(dicom_file):
    path = dicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    out = read_dicom(path, window=(40, 400))  # soft-tissue window: -160..240 HU
    assert out.dtype == np.uint8
    assert (out[hu <= 40 - 0.5 - 199.5] == 0).all()
    assert (out[hu > 40 - 0.5 + 199.5] == 255).all()
    inside = (hu > -160) & (hu < 239)
    assert inside.any()
    np.testing.assert_array_equal(out, _dicom_linear_window(hu, 40, 400))
    assert (np.diff(out.ravel()[np.argsort(hu.ravel(), kind="stable")].astype(int)) >= 0).all()  # monotonic in HU


def _dicom_linear_window(values, center, width):
    """PS3.3 C.11.2.1.2.1, written out from the standard, mapped to 0..255."""
    y = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    y[values <= center - 0.5 - (width - 1) / 2] = 0
    y[values > center - 0.5 + (width - 1) / 2] = 255
    return np.round(y)


def test_rescale_slope_and_intercept_are_applied(dicom_file, tmp_path):
    src = dicom_file("MR_small.dcm")
    stored = pydicom.dcmread(src).pixel_array.astype(np.float64)
    path = _modified(src, tmp_path / "rescaled.dcm", RescaleSlope="2", RescaleIntercept="-100")
    out = read_dicom(path, window=(2000, 3000))
    np.testing.assert_array_equal(out, _dicom_linear_window(stored * 2 - 100, 2000, 3000))
    assert not np.array_equal(out, read_dicom(src, window=(2000, 3000)))


def test_file_window_is_the_default(dicom_file):
    path = dicom_file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    out = read_dicom(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, read_dicom(path, window=(float(ds.WindowCenter), float(ds.WindowWidth))))


def test_monochrome1_is_inverted(dicom_file, tmp_path):
    src = dicom_file("CT_small.dcm")
    inverted = _modified(src, tmp_path / "mono1.dcm", PhotometricInterpretation="MONOCHROME1")
    np.testing.assert_array_equal(read_dicom(inverted), 65535 - read_dicom(src))
    np.testing.assert_array_equal(read_dicom(inverted, window=(40, 400)), 255 - read_dicom(src, window=(40, 400)))


def test_read_image_dispatches_dicom_by_suffix_and_by_marker(dicom_file, tmp_path):
    src = dicom_file("MR_small.dcm")
    bare = tmp_path / "slice0001"
    bare.write_bytes(src.read_bytes())
    np.testing.assert_array_equal(read_image(bare), read_dicom(src))


def test_truncated_dicom_names_the_file(dicom_file):
    with pytest.raises(DataError, match=r"MR_truncated\.dcm: cannot decode DICOM pixel data"):
        read_dicom(dicom_file("MR_truncated.dcm"))


def test_dicom_without_pixel_data(dicom_file):
    with pytest.raises(DataError, match=r"rtplan\.dcm: DICOM file has no pixel data"):
        read_dicom(dicom_file("rtplan.dcm"))


def test_not_a_dicom_file(tmp_path):
    path = tmp_path / "x.dcm"
    path.write_bytes(b"\0" * 300)
    with pytest.raises(DataError, match=r"x\.dcm: not a DICOM file"):
        read_dicom(path)


def _dicom_tree(root, dicom_file):
    ct, mr = dicom_file("CT_small.dcm"), dicom_file("MR_small.dcm")
    for cls, src in (("ct", ct), ("mr", mr)):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            _modified(src, root / cls / f"{i}.dcm", InstanceNumber=str(i + 1))
    return root


def test_folder_of_dicoms_per_class(dicom_file, tmp_path):
    root = _dicom_tree(tmp_path / "scans", dicom_file)
    splits = load_dataset(root, dicom_window=(40, 400), val_fraction=0.25, test_fraction=0.25)
    assert splits.classes == ["ct", "mr"]
    assert sum(len(p) for _, p in splits.items()) == 8
    assert all(img.dtype == np.uint8 for img in splits.train.images)
    assert splits.train.class_counts() == {"ct": 2, "mr": 2}


def test_mixed_windowed_and_unwindowed_dicoms_are_refused(dicom_file, tmp_path):
    # CT_small has no window in the file (-> uint16), MR_small has one (-> uint8): comparing them is meaningless
    root = _dicom_tree(tmp_path / "scans", dicom_file)
    with pytest.raises(DataError, match=r"mix windowed \(uint8\) and unwindowed \(uint16\)"):
        load_dataset(root)
