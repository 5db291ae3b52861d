"""The two containers every stage passes around: an `ImageSet` (raw pixels + labels) and its `DatasetSplits`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeskd.errors import DataError


@dataclass
class ImageSet:
    """Raw images and their labels.

    images: uint8 or uint16 arrays, each (H, W) or (H, W, 3), or one stacked (N, H, W[, 3]) array.
    labels: int64 (N,) class indices; for multi-label sets (N, L) uint8 0/1.
    classes: class (or label) names; index = label value (or label column).
    """

    images: list[np.ndarray] | np.ndarray
    labels: np.ndarray
    classes: list[str]
    multilabel: bool = False
    source: str = ""
    paths: list[str] | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels)
        n = len(self.images)
        if len(self.labels) != n:
            raise DataError(f"{self.source or 'image set'}: {n} images but {len(self.labels)} labels")
        if self.paths is not None and len(self.paths) != n:
            raise DataError(f"{self.source or 'image set'}: {n} images but {len(self.paths)} paths")
        if self.multilabel:
            if self.labels.ndim != 2 or self.labels.shape[1] != len(self.classes):
                raise DataError(f"{self.source or 'image set'}: multi-label labels must be (N, {len(self.classes)}); "
                                f"got shape {self.labels.shape}")
            self.labels = self.labels.astype(np.uint8, copy=False)
        else:
            if self.labels.ndim != 1:
                raise DataError(f"{self.source or 'image set'}: labels must be (N,) class indices; "
                                f"got shape {self.labels.shape}")
            self.labels = self.labels.astype(np.int64, copy=False)
            if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
                raise DataError(f"{self.source or 'image set'}: labels must lie in [0, {len(self.classes) - 1}]; "
                                f"got {self.labels.min()}..{self.labels.max()}")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Any) -> ImageSet:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if isinstance(self.images, np.ndarray):
            images: list[np.ndarray] | np.ndarray = self.images[idx]
        else:
            images = [self.images[i] for i in idx]
        paths = [self.paths[i] for i in idx] if self.paths is not None else None
        return ImageSet(images, self.labels[idx], list(self.classes), self.multilabel, self.source, paths)

    def class_counts(self) -> dict[str, int]:
        """Images per class; for multi-label sets, positives per label."""
        if self.multilabel:
            positives = self.labels.sum(axis=0) if len(self) else np.zeros(len(self.classes), dtype=np.int64)
            return {name: int(positives[i]) for i, name in enumerate(self.classes)}
        counts = Counter(self.labels.tolist())
        return {name: int(counts.get(i, 0)) for i, name in enumerate(self.classes)}

    def image_shapes(self) -> Counter:
        """How many images have each (H, W[, C]) shape."""
        if isinstance(self.images, np.ndarray):
            return Counter({tuple(self.images.shape[1:]): len(self.images)}) if len(self.images) else Counter()
        return Counter(tuple(img.shape) for img in self.images)


@dataclass
class DatasetSplits:
    train: ImageSet
    val: ImageSet
    test: ImageSet
    unlabelled: ImageSet | None  # train images left out by train_fraction < 1; labels kept, not for the loss
    name: str

    @property
    def classes(self) -> list[str]:
        return self.train.classes

    def items(self) -> list[tuple[str, ImageSet]]:
        parts = [("train", self.train), ("val", self.val), ("test", self.test)]
        if self.unlabelled is not None:
            parts.append(("unlabelled", self.unlabelled))
        return parts

    def summary(self) -> dict[str, Any]:
        """Counts per split and class, image shapes and dtypes: for reports and `edgeskd data --json`."""
        splits: dict[str, Any] = {}
        shapes: Counter = Counter()
        dtypes: set[str] = set()
        for name, part in self.items():
            splits[name] = {"count": len(part), "per_class": part.class_counts()}
            shapes.update(part.image_shapes())
            if isinstance(part.images, np.ndarray):
                dtypes.add(str(part.images.dtype))
            else:
                dtypes.update(str(img.dtype) for img in part.images)
        heights = [s[0] for s in shapes]
        widths = [s[1] for s in shapes]
        return {
            "name": self.name,
            "source": self.train.source,
            "classes": list(self.classes),
            "multilabel": self.train.multilabel,
            "total": sum(s["count"] for s in splits.values()),
            "splits": splits,
            "image_size": {"min_hw": [min(heights), min(widths)], "max_hw": [max(heights), max(widths)],
                           "distinct_shapes": len(shapes)} if shapes else None,
            "channels": sorted({s[2] if len(s) == 3 else 1 for s in shapes}),
            "dtypes": sorted(dtypes),
        }
