"""`load_dataset`: one entry point for every source, returning train/val/test (and the unlabelled rest)."""

from __future__ import annotations

import os
from pathlib import Path

from edgeskd.data.builtin import BUILTIN_DATASETS, load_builtin
from edgeskd.data.dataset import DatasetSplits
from edgeskd.data.folder import has_split_folders, load_split_tree, load_tree
from edgeskd.data.medmnist import load_medmnist
from edgeskd.data.splits import apply_train_fraction, carve_val, check_fractions, stratified_split
from edgeskd.errors import DataError


def load_dataset(source: str | os.PathLike, *, seed: int = 0, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, train_fraction: float = 1.0, allow_mixed_sizes: bool = True,
                 dicom_window: tuple[float, float] | None = None, progress: bool = False) -> DatasetSplits:
    """Load and validate a dataset and split it.

    source: a built-in name (BUILTIN_DATASETS), a MedMNIST .npz file, a `root/<class>/<image>` folder tree (PNG,
    JPEG, BMP, TIFF or DICOM files), or a `root/{train,val,test}/<class>/<image>` tree.
    Splits: the source's own when it has them (MedMNIST train/val/test; Fashion-MNIST and split trees without val
    get a seeded stratified val carved out of train, val_fraction of it; test_fraction is then unused); otherwise a
    seeded stratified split. train_fraction < 1 keeps a stratified, seed-determined part of train and returns the
    rest as `unlabelled`.
    """
    check_fractions(val_fraction, test_fraction, train_fraction)
    if dicom_window is not None and (len(dicom_window) != 2 or float(dicom_window[1]) < 1):
        raise DataError(f"dicom_window must be (centre, width) with width >= 1; got {dicom_window}")
    read_kw = {"allow_mixed_sizes": allow_mixed_sizes, "dicom_window": dicom_window, "progress": progress}
    if isinstance(source, str) and source in BUILTIN_DATASETS:
        splits = load_builtin(source, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                              allow_mixed_sizes=allow_mixed_sizes, progress=progress)
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"{path}: no such file or folder; expected an image folder tree, a MedMNIST .npz file or "
                            f"a built-in dataset name ({', '.join(sorted(BUILTIN_DATASETS))})")
        if path.is_file():
            if path.suffix.lower() != ".npz":
                raise DataError(f"{path}: unsupported dataset file; expected a MedMNIST .npz file or a folder")
            splits = load_medmnist(path)
        elif has_split_folders(path):
            parts = load_split_tree(path, **read_kw)
            train = parts["train"]
            val = parts.get("val")
            if val is None:
                train, val = carve_val(train, seed, val_fraction)
            splits = DatasetSplits(train=train, val=val, test=parts["test"], unlabelled=None, name=path.name)
        else:
            train, val, test = stratified_split(load_tree(path, **read_kw), seed, val_fraction, test_fraction)
            splits = DatasetSplits(train=train, val=val, test=test, unlabelled=None, name=path.resolve().name)
    return apply_train_fraction(splits, train_fraction, seed)
