"""MedMNIST `.npz` files the user already has (never downloaded), checked against the published values.

A file is recognised by its name, as published on Zenodo: `<flag>.npz` (28 px) or `<flag>_<size>.npz` (MedMNIST+,
64/128/224 px). Before use it is checked: MD5 against the published checksum (MedMNIST v3 values, plus the v2
checksums of the 28-px files that v3 re-released), the six keys, image shapes and dtype, label shapes, label values
and the per-split counts. The file is read with allow_pickle=False. The 3-D sets (`*mnist3d`) are volumes and are
refused: edgeskd classifies 2-D images.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeskd.data.dataset import DatasetSplits, ImageSet
from edgeskd.errors import DataError

SPLITS = ("train", "val", "test")
KEYS = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels"))
SIZES = (28, 64, 128, 224)

_ORGANS = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left",
           "lung-right", "pancreas", "spleen")


@dataclass(frozen=True)
class MedMNISTInfo:
    labels: tuple[str, ...]
    channels: int
    counts: tuple[int, int, int]  # train, val, test
    md5: dict[int, str]  # image size -> published MD5 (v3)
    multilabel: bool = False
    # older releases of the 28-px file: (md5, counts)
    older: tuple[tuple[str, tuple[int, int, int]], ...] = field(default=())


# Published by the MedMNIST authors (medmnist/info.py, v3.0.2 and v2.1.0; Zenodo records 10519652 and 6496656).
MEDMNIST: dict[str, MedMNISTInfo] = {
    "pathmnist": MedMNISTInfo(
        ("adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
         "cancer-associated stroma", "colorectal adenocarcinoma epithelium"), 3, (89996, 10004, 7180),
        {28: "a8b06965200029087d5bd730944a56c1", 64: "55aa9c1e0525abe5a6b9d8343a507616",
         128: "ac42d08fb904d92c244187169d1fd1d9", 224: "2c51a510bcdc9cf8ddb2af93af1eadec"}),
    "chestmnist": MedMNISTInfo(
        ("atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia", "pneumothorax",
         "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia"), 1, (78468, 11219, 22433),
        {28: "02c8a6516a18b556561a56cbdd36c4a8", 64: "9de6cd0b934ebb5b7426cfba5efbae16",
         128: "db107e5590b27930b62dbaf558aebee3", 224: "45bd33e6f06c3e8cdb481c74a89152aa"}, multilabel=True),
    "dermamnist": MedMNISTInfo(
        ("actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma", "benign keratosis-like lesions",
         "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions"), 3, (7007, 1003, 2005),
        {28: "0744692d530f8e62ec473284d019b0c7", 64: "b70a2f5635c6199aeaa28c31d7202e1f",
         128: "2defd784463fa5243564e855ed717de1", 224: "8974907d8e169bef5f5b96bc506ae45d"}),
    "octmnist": MedMNISTInfo(
        ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"), 1, (97477, 10832, 1000),
        {28: "c68d92d5b585d8d81f7112f81e2d0842", 64: "e229e9440236b774d9f0dfef9d07bdaf",
         128: "0a97e76651ace45c5d943ee3f65b63ae", 224: "abc493b6d529d5de7569faaef2773ba3"}),
    "pneumoniamnist": MedMNISTInfo(
        ("normal", "pneumonia"), 1, (4708, 524, 624),
        {28: "28209eda62fecd6e6a2d98b1501bb15f", 64: "8f4eceb4ccffa70c672198ea285246c6",
         128: "05b46931834c231683c68f40c47b2971", 224: "d6a3c71de1b945ea11211b03746c1fe1"}),
    "retinamnist": MedMNISTInfo(
        ("0", "1", "2", "3", "4"), 3, (1080, 120, 400),
        {28: "bd4c0672f1bba3e3a89f0e4e876791e4", 64: "afda852cc34dcda56f86ad2b2457dbcc",
         128: "e48e916a24454daf90583d4e6efb1a18", 224: "eae7e3b6f3fcbda4ae613ebdcbe35348"}),
    "breastmnist": MedMNISTInfo(
        ("malignant", "normal, benign"), 1, (546, 78, 156),
        {28: "750601b1f35ba3300ea97c75c52ff8f6", 64: "742edef2a1fd1524b2efff4bd7ba9364",
         128: "363e4b3f8d712e9b5de15470a2aaadf1", 224: "b56378a6eefa9fed602bb16d192d4c8b"}),
    "bloodmnist": MedMNISTInfo(
        ("basophil", "eosinophil", "erythroblast",
         "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte", "monocyte",
         "neutrophil", "platelet"), 3, (11959, 1712, 3421),
        {28: "7053d0359d879ad8a5505303e11de1dc", 64: "2b94928a2ae4916078ca51e05b6b800b",
         128: "adace1e0ed228fccda1f39692059dd4c", 224: "b718ff6835fcbdb22ba9eacccd7b2601"}),
    "tissuemnist": MedMNISTInfo(
        ("Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule", "Glomerular endothelial cells",
         "Interstitial endothelial cells", "Leukocytes", "Podocytes", "Proximal Tubule Segments",
         "Thick Ascending Limb"), 1, (165466, 23640, 47280),
        {28: "ebe78ee8b05294063de985d821c1c34b", 64: "123ece2eba09d0aa5d698fda57103344",
         128: "61b955355d7425a89687b06cca3ce0c2", 224: "b077128c4a949f0a4eb01517f9037b9c"}),
    "organamnist": MedMNISTInfo(
        _ORGANS, 1, (34561, 6491, 17778),
        {28: "68e3f8846a6bd62f0c9bf841c0d9eacc", 64: "2dcccc29b88e6da5a01161ef20cda288",
         128: "eeae80d0a227a8d099027e1b3cfd3b60", 224: "50747347e05c87dd3aaf92c49f9f3170"},
        older=(("866b832ed4eeba67bfb9edee1d5544e6", (34581, 6491, 17778)),)),
    "organcmnist": MedMNISTInfo(
        _ORGANS, 1, (12975, 2392, 8216),
        {28: "b9ceb9546e10131b32923c5bbeaea2b1", 64: "3ce34a8724ea6f548e6db4744d03b6a9",
         128: "773c1f009daa3fe5d9a2a201b2a7ed94", 224: "050f5e875dc056f6768abf94ec9995d1"},
        older=(("0afa5834fb105f7705a7d93372119a21", (13000, 2392, 8268)),)),
    "organsmnist": MedMNISTInfo(
        _ORGANS, 1, (13932, 2452, 8827),
        {28: "9ab87b696fb54e2a387ebe992d6ed5f1", 64: "53a6d115339d874c25e309a994ff46d3",
         128: "ded0c5fa01a95dc4978b956f613e9b8e", 224: "b354719e553fbbb2513d5533f52a4cb1"},
        older=(("e5c39f1af030238290b9557d9503af9d", (13940, 2452, 8829)),)),
}

_NAME = re.compile(r"^(?P<flag>[a-z0-9]+?)(?:_(?P<size>\d+))?\.npz$")


def identify(path: Path) -> tuple[str, int]:
    """(flag, image size) from a published MedMNIST file name, or a DataError saying what names are known."""
    match = _NAME.match(path.name.lower())
    flag = match["flag"] if match else ""
    if flag.endswith("mnist3d"):
        raise DataError(f"{path}: {flag} holds 3-D volumes; edgeskd classifies 2-D images (use a 2-D MedMNIST set)")
    if not match or flag not in MEDMNIST:
        raise DataError(f"{path}: not a known MedMNIST file name; expected <flag>.npz or <flag>_<size>.npz with flag "
                        f"in {sorted(MEDMNIST)} and size in {list(SIZES[1:])}, as downloaded from Zenodo")
    size = int(match["size"]) if match["size"] else 28
    if size not in SIZES:
        raise DataError(f"{path}: MedMNIST image size {size} is not published; expected one of {list(SIZES)}")
    return flag, size


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_medmnist(path: str | os.PathLike, check_md5: bool = True) -> DatasetSplits:
    """A MedMNIST .npz -> its own train/val/test splits, after every published check passes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such MedMNIST file")
    flag, size = identify(path)
    info = MEDMNIST[flag]
    counts = info.counts
    if check_md5:
        digest = md5_file(path)
        releases = {info.md5[size]: info.counts}
        if size == 28:
            releases.update(dict(info.older))
        if digest not in releases:
            raise DataError(f"{path}: MD5 {digest} does not match the published {flag} ({size} px) checksum "
                            f"{' or '.join(releases)}; the file is damaged or not the published release")
        counts = releases[digest]
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{path}: unreadable .npz file ({exc})") from exc
    with archive:
        missing = [k for k in KEYS if k not in archive.files]
        if missing:
            raise DataError(f"{path}: missing key(s) {missing}; a MedMNIST file has {list(KEYS)} "
                            f"(found {sorted(archive.files)})")
        parts = {split: _check_split(path, archive, split, info, size, expected)
                 for split, expected in zip(SPLITS, counts)}
    return DatasetSplits(train=parts["train"], val=parts["val"], test=parts["test"], unlabelled=None,
                         name=path.stem.lower())


def _check_split(path: Path, archive, split: str, info: MedMNISTInfo, size: int, expected: int) -> ImageSet:
    try:
        images = archive[f"{split}_images"]
        labels = archive[f"{split}_labels"]
    except ValueError as exc:  # object arrays would need pickle: refused
        raise DataError(f"{path}: {split} arrays cannot be read without unpickling ({exc})") from exc
    shape = (size, size) if info.channels == 1 else (size, size, 3)
    if images.dtype != np.uint8 or images.shape[1:] != shape:
        raise DataError(f"{path}: {split}_images must be uint8 (N, {', '.join(map(str, shape))}); "
                        f"got {images.dtype} {images.shape}")
    if len(images) != expected:
        raise DataError(f"{path}: {split} has {len(images)} images; the published count is {expected}")
    n_labels = len(info.labels)
    want = (expected, n_labels) if info.multilabel else (expected, 1)
    if labels.shape != want:
        raise DataError(f"{path}: {split}_labels must have shape {want}; got {labels.shape}")
    if info.multilabel:
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise DataError(f"{path}: {split}_labels of a multi-label set must be 0/1")
        labels = labels.astype(np.uint8)
    else:
        labels = labels.reshape(-1).astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
            raise DataError(f"{path}: {split}_labels must lie in 0..{n_labels - 1}; "
                            f"got {labels.min()}..{labels.max()}")
    return ImageSet(images=images, labels=labels, classes=list(info.labels), multilabel=info.multilabel,
                    source=str(path))
