"""The real batch the parity gate runs on: raw images from a dataset (read by the data layer's `load_dataset`),
images passed by the caller, or, when none is given, a seeded batch of random-pixel images (and the manifest says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeskd.errors import DataError

DEFAULT_RANDOM_IMAGES = 8
DEFAULT_MAX_IMAGES = 32
RANDOM_SEED = 0


@dataclass
class ParityImages:
    images: list[np.ndarray]       # raw uint8/uint16 pixels, any size (preprocessing resizes)
    labels: np.ndarray | None      # int64 class indices into `classes`, when the source has labels
    classes: list[str] | None
    source: str                    # what the manifest records

    def __post_init__(self) -> None:
        if not self.images:
            raise DataError(f"parity data {self.source!r} holds no images")


def random_images(n: int = DEFAULT_RANDOM_IMAGES, seed: int = RANDOM_SEED, shape: tuple[int, ...] = (96, 80, 3)
                  ) -> ParityImages:
    """Seeded uniform random uint8 pixels; not a stand-in for real data, recorded as such in the manifest."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(n)]
    return ParityImages(images, None, None, f"random uint8 pixels, {n} images {shape}, numpy seed {seed} "
                                            f"(no real images were given)")


def from_arrays(images: np.ndarray | list[np.ndarray], labels: np.ndarray | list[int] | None = None,
                source: str = "images passed by the caller") -> ParityImages:
    if isinstance(images, np.ndarray):
        if images.dtype not in (np.uint8, np.uint16):
            raise DataError(f"parity images must be raw uint8/uint16 pixels; got dtype {images.dtype}")
        images = list(images)
    return ParityImages(list(images), None if labels is None else np.asarray(labels, dtype=np.int64), None, source)


def load_parity_images(dataset: str, max_images: int = DEFAULT_MAX_IMAGES, seed: int = RANDOM_SEED) -> ParityImages:
    """Up to `max_images` images of a dataset (built-in name, image folder or MedMNIST .npz; see edgeskd.data),
    held-out splits first (test, then val, then train), each in a seeded shuffle."""
    from edgeskd.data import load_dataset

    splits = load_dataset(dataset, seed=seed)
    rng = np.random.default_rng(seed)
    parts = dict(splits.items())
    images: list[np.ndarray] = []
    labels: list[int] = []
    for name in ("test", "val", "train", "unlabelled"):
        part = parts.get(name)
        if part is None or not len(part):
            continue
        for i in rng.permutation(len(part))[:max_images - len(images)]:
            images.append(np.asarray(part.images[i]))
            labels.append(-1 if part.multilabel else int(part.labels[i]))
        if len(images) >= max_images:
            break
    # Top-1 accuracy is undefined for multi-label sets; top-1 agreement with PyTorch still holds.
    has_labels = bool(labels) and min(labels) >= 0
    return ParityImages(images, np.array(labels, dtype=np.int64) if has_labels else None,
                        list(splits.classes) if has_labels else None,
                        f"dataset {dataset!r} ({len(images)} images, test/val/train in that order, seed {seed})")
