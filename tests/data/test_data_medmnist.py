"""MedMNIST .npz: the published checks (MD5, keys, shapes, counts) and the splits they carry.

The real files cannot be downloaded here, so small files with the MedMNIST layout are written and the published
table is patched with their checksum and counts; the table's real values are checked for form.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgeskd.data import load_dataset
from edgeskd.data import medmnist as mm
from edgeskd.errors import DataError

COUNTS = (12, 4, 6)


def _write(path, rng, channels=1, size=28, n_labels=2, multilabel=False, counts=COUNTS, drop=()):
    arrays = {}
    for split, n in zip(mm.SPLITS, counts):
        shape = (n, size, size) if channels == 1 else (n, size, size, 3)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (rng.integers(0, 2, (n, n_labels), dtype=np.uint8) if multilabel
                                     else np.arange(n, dtype=np.uint8).reshape(n, 1) % n_labels)
    for key in drop:
        arrays.pop(key)
    np.savez(path, **arrays)
    return path


@pytest.fixture
def patched(monkeypatch):
    """Point the published table at a small file: patched(flag, path, size) -> the patched info."""

    def patch(flag, path, size=28):
        info = dataclasses.replace(mm.MEDMNIST[flag], counts=COUNTS, md5={size: mm.md5_file(path)}, older=())
        monkeypatch.setitem(mm.MEDMNIST, flag, info)
        return info

    return patch


def test_published_table_is_well_formed():
    assert len(mm.MEDMNIST) == 12
    for flag, info in mm.MEDMNIST.items():
        assert set(info.md5) == set(mm.SIZES), flag
        assert all(len(h) == 32 and int(h, 16) >= 0 for h in info.md5.values())
        assert info.channels in (1, 3) and len(info.labels) >= 2 and min(info.counts) > 0
    assert mm.MEDMNIST["pneumoniamnist"].counts == (4708, 524, 624)
    assert mm.MEDMNIST["chestmnist"].multilabel and len(mm.MEDMNIST["chestmnist"].labels) == 14


def test_single_label_file_uses_its_own_splits(tmp_path, rng, patched):
    path = _write(tmp_path / "pneumoniamnist.npz", rng)
    patched("pneumoniamnist", path)
    splits = load_dataset(path, train_fraction=0.5)
    assert splits.name == "pneumoniamnist" and splits.classes == ["normal", "pneumonia"]
    assert (len(splits.train) + len(splits.unlabelled), len(splits.val), len(splits.test)) == COUNTS
    assert splits.train.class_counts() == {"normal": 3, "pneumonia": 3}
    assert splits.test.labels.dtype == np.int64 and splits.test.labels.shape == (6,)
    with np.load(path) as raw:
        np.testing.assert_array_equal(splits.test.images, raw["test_images"])


def test_multilabel_and_64px_rgb_files(tmp_path, rng, patched):
    chest = _write(tmp_path / "chestmnist_64.npz", rng, size=64, n_labels=14, multilabel=True)
    patched("chestmnist", chest, size=64)
    splits = load_dataset(chest)
    assert splits.train.multilabel and splits.train.labels.shape == (12, 14)
    assert splits.summary()["splits"]["val"]["per_class"]["hernia"] == int(splits.val.labels[:, 13].sum())
    blood = _write(tmp_path / "bloodmnist.npz", rng, channels=3, n_labels=8)
    patched("bloodmnist", blood)
    assert load_dataset(blood).train.images.shape == (12, 28, 28, 3)


def test_wrong_md5(tmp_path, rng):
    path = _write(tmp_path / "pneumoniamnist.npz", rng)
    with pytest.raises(DataError, match=r"pneumoniamnist\.npz: MD5 [0-9a-f]{32} does not match the published "
                                        r"pneumoniamnist \(28 px\) checksum 28209eda62fecd6e6a2d98b1501bb15f"):
        load_dataset(path)


def test_missing_keys(tmp_path, rng, patched):
    path = _write(tmp_path / "dermamnist.npz", rng, channels=3, n_labels=7, drop=("val_labels", "test_images"))
    patched("dermamnist", path)
    with pytest.raises(DataError, match=r"dermamnist\.npz: missing key\(s\) \['val_labels', 'test_images'\]"):
        load_dataset(path)


def test_wrong_counts_shapes_and_labels(tmp_path, rng, patched):
    path = _write(tmp_path / "octmnist.npz", rng, n_labels=4, counts=(12, 4, 5))
    patched("octmnist", path)
    with pytest.raises(DataError, match=r"octmnist\.npz: test has 5 images; the published count is 6"):
        load_dataset(path)
    path = _write(tmp_path / "breastmnist.npz", rng, channels=3)
    patched("breastmnist", path)
    with pytest.raises(DataError, match=r"train_images must be uint8 \(N, 28, 28\); got uint8 \(12, 28, 28, 3\)"):
        load_dataset(path)
    path = _write(tmp_path / "retinamnist.npz", rng, channels=3, n_labels=9)
    patched("retinamnist", path)
    with pytest.raises(DataError, match=r"train_labels must lie in 0\.\.4; got 0\.\.8"):
        load_dataset(path)


def test_pickled_arrays_are_never_loaded(tmp_path, rng, patched):
    path = tmp_path / "pneumoniamnist.npz"
    objects = np.empty(12, dtype=object)
    objects[:] = [np.zeros((28, 28), np.uint8)] * 12
    np.savez(path, train_images=objects, train_labels=np.zeros((12, 1), np.uint8),
             **{f"{s}_{k}": np.zeros((n, 28, 28) if k == "images" else (n, 1), np.uint8)
                for s, n in (("val", 4), ("test", 6)) for k in ("images", "labels")})
    patched("pneumoniamnist", path)
    with pytest.raises(DataError, match="without unpickling"):
        load_dataset(path)


def test_unknown_and_3d_names(tmp_path, rng):
    with pytest.raises(DataError, match=r"mydata\.npz: not a known MedMNIST file name"):
        load_dataset(_write(tmp_path / "mydata.npz", rng))
    with pytest.raises(DataError, match=r"organmnist3d holds 3-D volumes"):
        load_dataset(_write(tmp_path / "organmnist3d.npz", rng))
    with pytest.raises(DataError, match=r"MedMNIST image size 32 is not published"):
        load_dataset(_write(tmp_path / "pathmnist_32.npz", rng))
