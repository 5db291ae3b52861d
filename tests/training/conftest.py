"""Fixtures for the training tests: a tiny real dataset (scikit-learn's digits) and a tiny student."""

from __future__ import annotations

import numpy as np
import pytest


def _digits_splits(n_train: int = 60, n_val: int = 30, n_test: int = 30, n_unl: int = 40, classes: int = 4):
    from sklearn.datasets import load_digits

    from edgeskd.data import DatasetSplits, ImageSet

    digits = load_digits()
    keep = digits.target < classes
    images = (digits.images[keep] * 16).clip(0, 255).astype(np.uint8)
    labels = digits.target[keep].astype(np.int64)
    names = [f"digit{i}" for i in range(classes)]
    cuts = np.cumsum([0, n_train, n_val, n_test, n_unl])

    def part(i: int):
        return ImageSet(images[cuts[i]:cuts[i + 1]], labels[cuts[i]:cuts[i + 1]], names, source="digits")

    return DatasetSplits(part(0), part(1), part(2), part(3), "digits-4")


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory):
    """The memory-format probe caches its answers; tests keep theirs out of the user's ~/.cache."""
    import os

    before = os.environ.get("EDGESKD_CACHE_DIR")
    os.environ["EDGESKD_CACHE_DIR"] = str(tmp_path_factory.mktemp("edgeskd-cache"))
    yield
    if before is None:
        os.environ.pop("EDGESKD_CACHE_DIR", None)
    else:
        os.environ["EDGESKD_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def digits_splits():
    return _digits_splits()


@pytest.fixture(scope="session")
def tiny_spec():
    from edgeskd.models import StudentSpec

    return StudentSpec("tf_efficientnet_lite0", 0.25, 0.25, 32, num_classes=4)


@pytest.fixture
def fast_config():
    from edgeskd.training import TrainConfig

    def make(**changes):
        base = dict(epochs_skd=2, epochs_finetune=1, batch_size=32, teacher_epochs=1, eval_batch_size=64)
        return TrainConfig(**{**base, **changes})

    return make
