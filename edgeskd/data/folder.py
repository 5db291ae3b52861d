"""Image folder trees: `root/<class>/<image>`, or `root/{train,val,test}/<class>/<image>` with the source's splits.

Class names are the folder names, sorted; label i is the i-th name. Files and folders whose names start with '.'
(.DS_Store, .git) are skipped; images may sit in sub-folders of a class folder. Any other file in a class folder
that is not a supported image is an error, not skipped: a stray file usually means a mislabelled tree.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeskd.data.dataset import ImageSet
from edgeskd.data.images import SUPPORTED_TEXT, is_dicom, is_supported, read_image
from edgeskd.errors import DataError

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def has_split_folders(root: Path) -> bool:
    """True when root holds train/ and test/ (and optionally val/) folders instead of class folders."""
    names = {p.name.lower() for p in _subdirs(root)}
    return bool(names) and names <= set(SPLIT_NAMES) and "train" in names and "test" in names


def class_files(class_dir: Path) -> list[Path]:
    """The image files of one class folder, sorted; errors on empty folders and on non-image files."""
    files = sorted(p for p in class_dir.rglob("*") if p.is_file() and _visible(p, class_dir))
    for path in files:
        if not is_supported(path):
            raise DataError(f"{path}: not an image file in class folder '{class_dir.name}' "
                            f"(expected {SUPPORTED_TEXT}); move it out of the dataset tree")
    if not files:
        raise DataError(f"{class_dir}: class folder is empty (no {SUPPORTED_TEXT} images)")
    return files


def scan_tree(root: Path) -> dict[str, list[Path]]:
    """class name -> image files, for a `root/<class>/<image>` tree."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    loose = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".") and is_supported(p)]
    if loose:
        raise DataError(f"{loose[0]}: image lies directly in {root}; expected root/<class>/<image> "
                        f"({len(loose)} such file(s))")
    classes = _subdirs(root)
    if not classes:
        raise DataError(f"{root}: no class folders; expected root/<class>/<image>")
    if len(classes) == 1:
        raise DataError(f"{root}: only one class folder ('{classes[0].name}'); a classifier needs at least 2 classes")
    return {d.name: class_files(d) for d in classes}


def read_files(files: list[Path], labels: list[int], classes: list[str], source: str, *,
               allow_mixed_sizes: bool = True, dicom_window: tuple[float, float] | None = None,
               progress: bool = False) -> ImageSet:
    from tqdm import tqdm

    images: list[np.ndarray] = []
    first: tuple[Path, tuple[int, int]] | None = None
    dicom_dtypes: dict[np.dtype, Path] = {}
    for path in tqdm(files, desc=f"reading {Path(source).name}", unit="img", disable=not progress):
        image = read_image(path, dicom_window=dicom_window)
        size = image.shape[:2]
        if first is None:
            first = (path, size)
        elif not allow_mixed_sizes and size != first[1]:
            raise DataError(f"{path}: image is {size[1]}x{size[0]} (WxH) but {first[0]} is {first[1][1]}x{first[1][0]}; "
                            "mixed image sizes are not allowed here (allow_mixed_sizes=False)")
        if is_dicom(path):
            dicom_dtypes.setdefault(image.dtype, path)
            if len(dicom_dtypes) > 1:
                a, b = dicom_dtypes.values()
                raise DataError(f"{b}: DICOM files mix windowed (uint8) and unwindowed (uint16) output (compare {a}); "
                                "give one window for all, e.g. dicom_window=(40, 400) / --dicom-window 40 400")
        images.append(image)
    return ImageSet(images=images, labels=np.asarray(labels, dtype=np.int64), classes=classes, source=source,
                    paths=[str(p) for p in files])


def load_tree(root: str | os.PathLike, **read_kw) -> ImageSet:
    """All images of a `root/<class>/<image>` tree as one labelled ImageSet."""
    root = Path(root)
    tree = scan_tree(root)
    classes = sorted(tree)
    files = [f for c in classes for f in tree[c]]
    labels = [i for i, c in enumerate(classes) for _ in tree[c]]
    return read_files(files, labels, classes, str(root), **read_kw)


def load_split_tree(root: str | os.PathLike, **read_kw) -> dict[str, ImageSet]:
    """`root/{train,val,test}/<class>/<image>` -> split name -> ImageSet, all with train's class list."""
    root = Path(root)
    dirs = {SPLIT_NAMES[p.name.lower()]: p for p in _subdirs(root)}
    trees = {split: scan_tree(folder) for split, folder in dirs.items()}
    classes = sorted(trees["train"])
    out: dict[str, ImageSet] = {}
    for split, tree in trees.items():
        unknown = sorted(set(tree) - set(classes))
        if unknown:
            raise DataError(f"{dirs[split]}: class folder(s) {unknown} are not in {dirs['train']} "
                            f"(train classes: {classes})")
        names = [c for c in classes if c in tree]
        files = [f for c in names for f in tree[c]]
        labels = [classes.index(c) for c in names for _ in tree[c]]
        out[split] = read_files(files, labels, classes, str(root), **read_kw)
    return out
