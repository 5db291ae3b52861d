"""Folder trees, seeded stratified splits, train_fraction, and the tree errors."""

from __future__ import annotations

import numpy as np
import pytest

from edgeskd.data import ImageSet, load_dataset
from edgeskd.data.splits import _split_counts
from edgeskd.errors import DataError


def _names(part: ImageSet) -> set[str]:
    return {p.rsplit("/", 1)[-1] for p in part.paths}


def test_tree_loads_with_sorted_classes_and_right_labels(make_tree):
    root = make_tree({"pneumonia": 10, "normal": 20})
    splits = load_dataset(root)
    assert splits.classes == ["normal", "pneumonia"]
    for _, part in splits.items():
        for path, label in zip(part.paths, part.labels):
            assert path.split("/")[-2] == part.classes[label]
    total = {k: sum(p.class_counts()[k] for _, p in splits.items()) for k in splits.classes}
    assert total == {"normal": 20, "pneumonia": 10}
    assert splits.test.class_counts() == {"normal": 3, "pneumonia": 2}  # 15 % of each class, rounded
    assert splits.val.class_counts() == {"normal": 3, "pneumonia": 2}
    all_names = [n for _, p in splits.items() for n in _names(p)]
    assert len(all_names) == len(set(all_names)) == 30  # disjoint and complete


def test_split_is_reproducible_for_a_seed_and_changes_with_it(make_tree):
    root = make_tree({"a": 12, "b": 12, "c": 12})
    first, again, other = load_dataset(root, seed=3), load_dataset(root, seed=3), load_dataset(root, seed=4)
    assert _names(first.test) == _names(again.test) and _names(first.val) == _names(again.val)
    assert _names(first.test) != _names(other.test)


def test_tiny_classes_keep_one_image_in_each_split():
    assert _split_counts(3, 0.15, 0.15) == (1, 1)
    assert _split_counts(8, 0.15, 0.15) == (1, 1)
    assert _split_counts(2, 0.15, 0.15) == (0, 1)  # one train image stays
    assert _split_counts(1, 0.15, 0.15) == (0, 0)
    assert _split_counts(100, 0.1, 0.2) == (10, 20)
    assert _split_counts(10, 0.0, 0.2) == (0, 2)
    for n in range(1, 40):
        n_val, n_test = _split_counts(n, 0.3, 0.3)
        assert n - n_val - n_test >= 1


def test_train_fraction_is_stratified_nested_and_deterministic(make_tree):
    root = make_tree({"a": 40, "b": 20})
    full = load_dataset(root, seed=1)
    half = load_dataset(root, seed=1, train_fraction=0.5)
    tenth = load_dataset(root, seed=1, train_fraction=0.1)
    assert full.unlabelled is None
    assert half.train.class_counts() == {"a": 14, "b": 7}
    assert tenth.train.class_counts() == {"a": 3, "b": 1}
    assert _names(tenth.train) < _names(half.train) < _names(full.train)
    assert _names(half.train) | _names(half.unlabelled) == _names(full.train)
    assert not _names(half.train) & _names(half.unlabelled)
    assert _names(half.val) == _names(full.val) and _names(half.test) == _names(full.test)  # eval sets unchanged
    assert _names(load_dataset(root, seed=1, train_fraction=0.5).train) == _names(half.train)


def test_bad_fractions_are_refused(make_tree):
    root = make_tree({"a": 4, "b": 4})
    for kw in ({"train_fraction": 0}, {"train_fraction": 1.5}, {"val_fraction": 0.6, "test_fraction": 0.5},
               {"val_fraction": -0.1}):
        with pytest.raises(DataError, match="fraction"):
            load_dataset(root, **kw)


def test_own_split_folders_are_used_and_val_is_carved_when_missing(make_tree, tmp_path):
    root = tmp_path / "ds"
    make_tree({"x": 10, "y": 10}, root=root / "train")
    make_tree({"x": 3, "y": 2}, root=root / "test")
    splits = load_dataset(root, val_fraction=0.2)
    assert len(splits.test) == 5 and splits.test.class_counts() == {"x": 3, "y": 2}
    assert splits.val.class_counts() == {"x": 2, "y": 2} and len(splits.train) == 16
    make_tree({"x": 1, "y": 1}, root=root / "val")
    assert len(load_dataset(root).val) == 2


def test_unknown_class_in_a_split_folder(make_tree, tmp_path):
    root = tmp_path / "ds"
    make_tree({"x": 3, "y": 3}, root=root / "train")
    make_tree({"x": 1, "z": 1}, root=root / "test")
    with pytest.raises(DataError, match=r"class folder\(s\) \['z'\] are not in"):
        load_dataset(root)


def test_hidden_files_are_skipped_and_subfolders_read(make_tree, save, rng):
    root = make_tree({"a": 3, "b": 3})
    (root / "a" / ".DS_Store").write_bytes(b"\0\1junk")
    save(root / "b" / "more" / "deep.png", rng.integers(0, 256, (20, 24), dtype=np.uint8))
    splits = load_dataset(root)
    assert sum(len(p) for _, p in splits.items()) == 7


def test_empty_class_folder(make_tree):
    root = make_tree({"a": 3, "b": 3})
    (root / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: class folder is empty"):
        load_dataset(root)


def test_one_class_only(make_tree):
    with pytest.raises(DataError, match=r"only one class folder \('solo'\)"):
        load_dataset(make_tree({"solo": 5}))


def test_non_image_file_in_a_class_folder(make_tree):
    root = make_tree({"a": 3, "b": 3})
    (root / "b" / "labels.csv").write_text("x,y\n")
    with pytest.raises(DataError, match=r"labels\.csv: not an image file in class folder 'b'"):
        load_dataset(root)


def test_truncated_image_in_a_tree_names_it(make_tree):
    root = make_tree({"a": 3, "b": 3})
    bad = root / "a" / "a_001.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(DataError, match=r"a_001\.png: unreadable or truncated image"):
        load_dataset(root)


def test_mixed_sizes_refused_only_when_asked(make_tree, save, rng):
    root = make_tree({"a": 3, "b": 3}, size=(20, 24))
    save(root / "b" / "b_zzz.png", rng.integers(0, 256, (30, 24), dtype=np.uint8))
    assert len(load_dataset(root).train) == 3  # allowed by default
    with pytest.raises(DataError, match=r"b_zzz\.png: image is 24x30 \(WxH\) but .* is 24x20"):
        load_dataset(root, allow_mixed_sizes=False)


def test_loose_images_in_root_and_missing_source(make_tree, save, rng, tmp_path):
    root = make_tree({"a": 3, "b": 3})
    save(root / "stray.png", rng.integers(0, 256, (20, 24), dtype=np.uint8))
    with pytest.raises(DataError, match=r"stray\.png: image lies directly in"):
        load_dataset(root)
    with pytest.raises(DataError, match=r"nope: no such file or folder"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "data.csv").write_text("x")
    with pytest.raises(DataError, match=r"data\.csv: unsupported dataset file"):
        load_dataset(tmp_path / "data.csv")


def test_imageset_subset_and_summary(make_tree):
    splits = load_dataset(make_tree({"a": 6, "b": 4}))
    sub = splits.train.subset([0, 2])
    assert len(sub) == 2 and sub.paths == [splits.train.paths[0], splits.train.paths[2]]
    summary = splits.summary()
    assert summary["total"] == 10 and summary["splits"]["train"]["count"] == len(splits.train)
    assert summary["image_size"] == {"min_hw": [20, 24], "max_hw": [20, 24], "distinct_shapes": 1}
    assert summary["dtypes"] == ["uint8"] and summary["channels"] == [1]
    with pytest.raises(DataError, match="3 images but 2 labels"):
        ImageSet(images=[np.zeros((2, 2), np.uint8)] * 3, labels=np.array([0, 1]), classes=["a", "b"])
