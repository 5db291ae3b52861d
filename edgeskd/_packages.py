"""Locate data shipped inside installed PyPI packages without importing them (light: no torch or timm)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgeskd.errors import MissingDependency


def package_dir(package: str, pip_name: str) -> Path:
    """Folder of an installed package, found without importing it (data packages may declare heavy deps)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(f"package {pip_name!r} is not installed; install it with: pip install --no-deps {pip_name}")
    return Path(next(iter(spec.submodule_search_locations)))
