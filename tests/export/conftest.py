"""Fixtures for the export tests: tiny students saved as real checkpoints, real chest X-rays, one shared bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from export_helpers import FAMILIES, make_checkpoint


@pytest.fixture(scope="session")
def xrays():
    """8 real paediatric chest X-rays with labels (pneumonia-model-package, through edgeskd.data)."""
    from edgeskd.export import load_parity_images

    return load_parity_images("chest-xray-samples", max_images=8)


@pytest.fixture(scope="session")
def resnet_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "resnet.safetensors"
    make_checkpoint(path, FAMILIES["resnet"])
    return path


@pytest.fixture(scope="session")
def resnet_bundle(tmp_path_factory, resnet_checkpoint, xrays) -> Path:
    """One exported bundle (ONNX + OpenVINO FP32/FP16), shared read-only; tests that tamper copy it first."""
    from edgeskd.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "resnet"
    export_bundle(resnet_checkpoint, out, parity_images=xrays)
    return out
