"""Fixtures for the latency tests: tiny ONNX models (milliseconds to load and run) and fast protocol settings."""

from __future__ import annotations

import json

import pytest
import torch.nn as nn

FAST = dict(runs=5, seconds=0.0, warmup_s=0.02)  # protocol settings that keep each worker well under 5 s


def tiny_net(width: int = 8, classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, classes))


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    from edgeskd.export.onnx import export_onnx

    return export_onnx(tiny_net(), tmp_path_factory.mktemp("onnx") / "tiny.onnx", resolution=32)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_onnx):
    folder = tmp_path_factory.mktemp("bundle")
    (folder / "model.onnx").write_bytes(tiny_onnx.read_bytes())
    manifest = {"schema_version": 1, "model": {"files": {"onnx": "model.onnx"}},
                "preprocess": {"size": 32, "channels": 3, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                               "resize": "bilinear-antialias"}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
