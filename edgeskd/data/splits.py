"""Seeded, stratified splits and the `train_fraction` subset.

Every random choice uses its own generator seeded with (seed, purpose, class), so a split does not depend on the
order classes are processed in, and the train_fraction subsets are nested: for one seed, the images kept at 10 % are
among those kept at 50 %.
"""

from __future__ import annotations

import numpy as np

from edgeskd.data.dataset import DatasetSplits, ImageSet
from edgeskd.errors import DataError

_SPLIT, _FRACTION, _CARVE = 1, 2, 3  # purposes: one random stream each


def check_fractions(val_fraction: float, test_fraction: float, train_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise DataError(f"{name} must be in [0, 1); got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise DataError(f"val_fraction + test_fraction must be < 1; got {val_fraction} + {test_fraction}")
    if not 0.0 < train_fraction <= 1.0:
        raise DataError(f"train_fraction must be in (0, 1]; got {train_fraction}")


def _class_permutation(labels: np.ndarray, cls: int, seed: int, purpose: int) -> np.ndarray:
    members = np.flatnonzero(labels == cls)
    rng = np.random.default_rng([seed, purpose, cls])
    return members[rng.permutation(len(members))]


def _split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(n_val, n_test) for one class of n images. Priorities, for tiny classes such as the 16-image sample sets:
    at least one image in train; then one in test (n >= 2); then one in val (n >= 3); when the fraction is > 0."""
    min_test = 1 if test_fraction > 0 and n >= 2 else 0
    min_val = 1 if val_fraction > 0 and n >= 3 else 0
    n_val = max(round(n * val_fraction), min_val)
    n_test = max(round(n * test_fraction), min_test)
    while n_val + n_test > n - 1:  # keep every class present in train: shrink the larger share, minimums last
        if n_val > min_val and (n_val >= n_test or n_test <= min_test):
            n_val -= 1
        elif n_test > min_test:
            n_test -= 1
        else:
            break  # unreachable: the minimums never exceed n - 1
    return n_val, n_test


def _stratified_indices(images: ImageSet, seed: int, val_fraction: float, test_fraction: float,
                        purpose: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if images.multilabel:
        raise DataError(f"{images.source}: a multi-label set needs its own train/val/test splits")
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for cls in range(len(images.classes)):
        order = _class_permutation(images.labels, cls, seed, purpose)
        n_val, n_test = _split_counts(len(order), val_fraction, test_fraction)
        parts["val"].append(order[:n_val])
        parts["test"].append(order[n_val:n_val + n_test])
        parts["train"].append(order[n_val + n_test:])
    return tuple(np.sort(np.concatenate(parts[k])) for k in ("train", "val", "test"))  # type: ignore[return-value]


def stratified_split(images: ImageSet, seed: int, val_fraction: float,
                     test_fraction: float) -> tuple[ImageSet, ImageSet, ImageSet]:
    """Split one labelled set into train/val/test, per class, reproducibly for a seed."""
    train, val, test = _stratified_indices(images, seed, val_fraction, test_fraction, _SPLIT)
    return images.subset(train), images.subset(val), images.subset(test)


def carve_val(train: ImageSet, seed: int, val_fraction: float) -> tuple[ImageSet, ImageSet]:
    """A stratified validation set out of a source's train split (for sources with train/test only)."""
    keep, val, _ = _stratified_indices(train, seed, val_fraction, 0.0, _CARVE)
    return train.subset(keep), train.subset(val)


def apply_train_fraction(splits: DatasetSplits, train_fraction: float, seed: int) -> DatasetSplits:
    """Keep a stratified `train_fraction` of train (at least one image per class present); the rest becomes
    `unlabelled`. Multi-label sets are subsampled uniformly (there is no single class to stratify on)."""
    if train_fraction >= 1.0:
        return splits
    train = splits.train
    if train.multilabel:
        order = np.random.default_rng([seed, _FRACTION]).permutation(len(train))
        n_keep = max(1, round(len(order) * train_fraction))
        keep, rest = order[:n_keep], order[n_keep:]
    else:
        kept, left = [], []
        for cls in range(len(train.classes)):
            order = _class_permutation(train.labels, cls, seed, _FRACTION)
            n_keep = max(1, round(len(order) * train_fraction)) if len(order) else 0
            kept.append(order[:n_keep])
            left.append(order[n_keep:])
        keep, rest = np.concatenate(kept), np.concatenate(left)
    return DatasetSplits(train=train.subset(np.sort(keep)), val=splits.val, test=splits.test,
                         unlabelled=train.subset(np.sort(rest)), name=splits.name)
