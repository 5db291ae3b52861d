"""to_tensors equals per-image preprocess; the `edgeskd data` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgeskd.cli import main
from edgeskd.data import ImageSet, PreprocessSpec, load_dataset, preprocess, to_tensors
from edgeskd.errors import MissingDependency


def _mixed_images(rng) -> list[np.ndarray]:
    return [
        rng.integers(0, 256, (40, 30), dtype=np.uint8),           # gray, shrink (antialias)
        rng.integers(0, 65536, (40, 30), dtype=np.uint16),        # same shape, other dtype: its own group
        rng.integers(0, 256, (12, 20, 3), dtype=np.uint8),        # RGB, enlarge
        rng.integers(0, 256, (12, 20, 4), dtype=np.uint8),        # RGBA
        rng.integers(0, 256, (40, 30), dtype=np.uint8),           # joins the first group, not adjacent
        rng.integers(0, 256, (32, 32, 1), dtype=np.uint8),        # (H, W, 1), already at size
    ]


@pytest.mark.parametrize("spec", [PreprocessSpec(size=32), PreprocessSpec(size=24, channels=1, mean=(0.5,),
                                                                           std=(0.2,))])
def test_to_tensors_equals_per_image_preprocess(rng, spec):
    images = _mixed_images(rng)
    labels = np.array([0, 1, 2, 0, 1, 2])
    x, y = to_tensors(ImageSet(images, labels, ["a", "b", "c"]), spec)
    ref = torch.stack([preprocess(img, spec) for img in images])
    assert x.dtype == torch.float32 and x.shape == (6, spec.channels, spec.size, spec.size)
    assert (x - ref).abs().max().item() <= 1e-6
    assert y.dtype == torch.int64 and y.tolist() == labels.tolist()


def test_to_tensors_on_a_stacked_real_set_and_multilabel(rng):
    try:
        images = load_dataset("fashion-mnist").test  # 10,000 real 28x28 images, one stacked array
    except MissingDependency:  # Fashion-MNIST absent: a stacked random set takes the same code path
        images = ImageSet(rng.integers(0, 256, (500, 28, 28), dtype=np.uint8), np.zeros(500), ["a", "b"])
    spec = PreprocessSpec(size=32)
    x, _ = to_tensors(images, spec)
    pick = np.random.default_rng(0).choice(len(images), 64, replace=False)
    ref = torch.stack([preprocess(images.images[i], spec) for i in pick])
    assert (x[torch.from_numpy(pick)] - ref).abs().max().item() <= 1e-6
    multi = ImageSet(rng.integers(0, 256, (3, 8, 8), dtype=np.uint8), np.array([[1, 0], [0, 1], [1, 1]]),
                     ["p", "q"], multilabel=True)
    _, y = to_tensors(multi, PreprocessSpec(size=8))
    assert y.dtype == torch.float32 and y.tolist() == [[1, 0], [0, 1], [1, 1]]


def test_cli_table_and_json(make_tree, capsys):
    root = make_tree({"normal": 8, "pneumonia": 8})
    assert main(["data", str(root), "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "normal" in out and "pneumonia" in out and "16 images" in out
    assert main(["data", str(root), "--train-fraction", "0.5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["total"] == 16 and summary["train_fraction"] == 0.5
    assert summary["splits"]["train"]["per_class"] == {"normal": 3, "pneumonia": 3}
    assert summary["splits"]["unlabelled"]["count"] == 6


def test_cli_bad_input_exits_2_with_one_line(make_tree, capsys):
    root = make_tree({"a": 3, "b": 3})
    (root / "a" / "notes.txt").write_text("x")
    assert main(["data", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edgeskd data: error: ") and "notes.txt: not an image file" in err[-1]
    assert main(["data", str(root.parent / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
